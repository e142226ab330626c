package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paperpipe/paperpipe/paper"
)

// TLDRRunKey is the LockRun key of a run writing TL;DRs of model and prompt version: PruneTLDRs
// leaves that version alone while a run holds it, and a run cannot start while a prune deletes it.
func TLDRRunKey(model, promptVersion string) string { return "tldr:" + model + ":" + promptVersion }

// TLDRVersion is one model and prompt version of the stored TL;DRs.
type TLDRVersion struct {
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version"`
	// TLDRs is how many are stored, Current how many of them are of their paper's current text.
	TLDRs   int64 `json:"tldrs"`
	Current int64 `json:"current"`
	// Bytes is what they take in the table and its primary key: the rows with their headers and
	// line pointers, and an index entry each (tldrBytesSQL); TOAST and free space not counted.
	Bytes int64 `json:"bytes"`
	// LastWritten is when the newest of them was written.
	LastWritten time.Time `json:"last_written"`
	// OpenBatchJobs are the ids of the open Batch API jobs that write this version.
	OpenBatchJobs []int64 `json:"open_batch_jobs,omitempty"`
}

// tldrBytesSQL is what row t of tldrs takes on disk, about: the heap tuple (pg_column_size of
// the row is its header and data) and its line pointer, and its primary-key entry (an 8-byte
// index tuple header and the key, aligned to 8, and a line pointer).
const tldrBytesSQL = `(pg_column_size(t.*) + 4 +
	(8 + pg_column_size(t.paper_id) + pg_column_size(t.model) + pg_column_size(t.prompt_version) + 7) / 8 * 8 + 4)`

// TLDRVersions lists the model and prompt versions of the stored TL;DRs, the most recently
// written first. It reads the whole table (tens of seconds on tens of millions of TL;DRs).
func (s *Store) TLDRVersions(ctx context.Context) (_ []TLDRVersion, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rows, err := s.pool.Query(ctx, `
		SELECT v.model, v.prompt_version, v.n, v.current, v.bytes, v.last,
			coalesce((SELECT array_agg(j.id ORDER BY j.id) FROM batch_jobs j WHERE j.kind = 'chat'
				AND j.model = v.model AND j.prompt_version = v.prompt_version AND j.status IN `+openJobStatuses+`), '{}')
		FROM (SELECT t.model, t.prompt_version, count(*) AS n, count(*) FILTER (WHERE p.content_hash = t.content_hash) AS current,
				sum(`+tldrBytesSQL+`)::bigint AS bytes, max(t.created_at) AS last
			FROM tldrs t JOIN papers p ON p.id = t.paper_id
			GROUP BY t.model, t.prompt_version) v
		ORDER BY v.last DESC, v.model, v.prompt_version`)
	if err != nil {
		return nil, fmt.Errorf("list TL;DR versions: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (TLDRVersion, error) {
		var v TLDRVersion
		err := r.Scan(&v.Model, &v.PromptVersion, &v.TLDRs, &v.Current, &v.Bytes, &v.LastWritten, &v.OpenBatchJobs)
		if len(v.OpenBatchJobs) == 0 {
			v.OpenBatchJobs = nil
		}
		return v, err
	})
	if err != nil {
		return nil, fmt.Errorf("list TL;DR versions: %w", err)
	}
	return out, nil
}

// TLDRKeep names TL;DR versions a prune keeps: the versions of Model, or only its PromptVersion
// when that is not "".
type TLDRKeep struct {
	Model, PromptVersion string
}

func (k TLDRKeep) keeps(v TLDRVersion) bool {
	return k.Model == v.Model && (k.PromptVersion == "" || k.PromptVersion == v.PromptVersion)
}

// PruneOptions says which TL;DRs PruneTLDRs removes.
type PruneOptions struct {
	// Current is the configured model and prompt version, kept whether or not any TL;DR of it
	// is stored yet.
	Current TLDRKeep
	// Keep are the other versions kept, those the user names: each must name a stored version
	// (ErrKeepMatchesNothing). Every version neither Current nor kept has its TL;DRs removed.
	Keep []TLDRKeep
	// Force removes also the TL;DRs that are the only ones of their paper's current text among
	// the versions kept: the paper then shows no TL;DR until one of a kept version is written.
	// Without it they stay (PruneResult.Sole counts them).
	Force bool
	// Recent leaves a version not kept whose newest TL;DR was written less than Recent before the
	// prune started (PrunedVersion.Recent): a worker or a run may still write it — a prune run
	// without the workers' settings would remove the version they write. 0 leaves none for that.
	Recent time.Duration
	// DryRun counts what would be removed, and removes nothing.
	DryRun bool
	// BatchSize is how many TL;DRs one transaction removes; 0 is 5,000.
	BatchSize int
	// Progress, when set, is called after each batch with what was removed so far.
	Progress func(PruneResult)
}

// PrunedVersion is what PruneTLDRs removed, or would remove, of one version.
type PrunedVersion struct {
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version"`
	TLDRs         int64  `json:"tldrs"`
	Bytes         int64  `json:"bytes"`
	// Sole are the TL;DRs of the version left because no kept version has a TL;DR of their
	// paper's current text (PruneOptions.Force removes them).
	Sole int64 `json:"sole,omitempty"`
	// WrittenMeanwhile are the TL;DRs of the version written while the prune ran (since it
	// started: their created_at) that it left, behind its pass or ahead of it as their paper's
	// only one: a worker or a run still writes the version (the prune was not run with their
	// settings), and the next prune removes them.
	WrittenMeanwhile int64 `json:"written_meanwhile,omitempty"`
	// Skipped says why none (or no more) of the version's TL;DRs were removed: a run writes it
	// now, or open Batch API jobs will, or it was written within PruneOptions.Recent ("" when it
	// was pruned).
	Skipped string `json:"skipped,omitempty"`
	// Recent is set when the version was left for having been written within
	// PruneOptions.Recent.
	Recent bool `json:"recent,omitempty"`
}

// PruneResult is what PruneTLDRs removed (or, in a dry run, would remove).
type PruneResult struct {
	Versions []PrunedVersion `json:"versions"`
	TLDRs    int64           `json:"tldrs"`
	Bytes    int64           `json:"bytes"`
	Sole     int64           `json:"sole"`
	// WrittenMeanwhile sums the versions' PrunedVersion.WrittenMeanwhile.
	WrittenMeanwhile int64 `json:"written_meanwhile"`
}

func (r *PruneResult) version(model, prompt string) *PrunedVersion {
	for i := range r.Versions {
		if r.Versions[i].Model == model && r.Versions[i].PromptVersion == prompt {
			return &r.Versions[i]
		}
	}
	r.Versions = append(r.Versions, PrunedVersion{Model: model, PromptVersion: prompt})
	return &r.Versions[len(r.Versions)-1]
}

// ErrKeepMatchesNothing means a version to keep names no stored TL;DR version (a typo would
// otherwise have its TL;DRs removed). It wraps paper.ErrInvalid.
var ErrKeepMatchesNothing = fmt.Errorf("no stored TL;DR is of it: %w", paper.ErrInvalid)

// pruneLocksSQL takes, for each version of $1/$2, its run's lock (TLDRRunKey) to the end of the
// transaction when no run holds it, and says whether it did and which open Batch API jobs write
// the version.
const pruneLocksSQL = `SELECT v.m, v.p,
	pg_try_advisory_xact_lock(hashtextextended('paperpipe.run.' || current_schema() || '.' || 'tldr:' || v.m || ':' || v.p, 0)),
	coalesce((SELECT array_agg(j.id ORDER BY j.id) FROM batch_jobs j WHERE j.kind = 'chat'
		AND j.model = v.m AND j.prompt_version = v.p AND j.status IN ` + openJobStatuses + `), '{}')
	FROM unnest($1::text[], $2::text[]) AS v(m, p) ORDER BY v.m, v.p`

// PruneTLDRs removes the TL;DRs of every version not kept (opts.Keep) — the outputs of models
// and prompts no longer used, which nothing else removes — in transactions of opts.BatchSize
// TL;DRs in key order, each taking row locks on those TL;DRs only, so that workers (which write
// the configured version) and readers do not wait for it, and the work stops between two of
// them when ctx ends (what was removed stays removed; a later prune goes on).
//
// A version is left alone, and its result says why, while a `paperpipe reprocess` writes it
// (it holds the TLDRRunKey lock; each transaction takes that lock, so no run of the version
// starts while one removes it) or while open Batch API jobs write it (their answers, paid for,
// would be stored after the prune). Unless opts.Force, a TL;DR that is the only one of its
// paper's current text among the versions that stay — what the paper shows — is left too.
//
// The space the rows took is reusable by later rows of tldrs once VACUUM has been through it,
// which PruneTLDRs runs at its end (VACUUM does not lock out reads or writes); the table's files
// do not shrink (VACUUM FULL tldrs, or pg_repack, returns the space to the file system).
func (s *Store) PruneTLDRs(ctx context.Context, opts PruneOptions) (res PruneResult, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if opts.BatchSize <= 0 {
		opts.BatchSize = 5000
	}
	versions, err := s.TLDRVersions(ctx)
	if err != nil {
		return res, fmt.Errorf("prune TL;DRs: %w", err)
	}
	for _, k := range opts.Keep {
		found := false
		for _, v := range versions {
			found = found || k.keeps(v)
		}
		if !found {
			name := k.Model
			if k.PromptVersion != "" {
				name += " " + k.PromptVersion
			}
			return res, fmt.Errorf("prune TL;DRs: keep %s: %w", name, ErrKeepMatchesNothing)
		}
	}
	// The database's clock, which dated the TL;DRs.
	var now time.Time
	if err := s.pool.QueryRow(ctx, "SELECT statement_timestamp()").Scan(&now); err != nil {
		return res, fmt.Errorf("prune TL;DRs: %w", err)
	}
	var models, prompts []string
	for _, v := range versions {
		kept := opts.Current.Model != "" && opts.Current.keeps(v)
		for _, k := range opts.Keep {
			kept = kept || k.keeps(v)
		}
		if ago := now.Sub(v.LastWritten); !kept && opts.Recent > 0 && ago < opts.Recent {
			pv := res.version(v.Model, v.PromptVersion)
			pv.Recent = true
			pv.Skipped = fmt.Sprintf("its newest TL;DR was written %s ago: a worker or a run may still write it", max(ago, 0).Round(time.Second))
			continue
		}
		if !kept {
			models, prompts = append(models, v.Model), append(prompts, v.PromptVersion)
			res.version(v.Model, v.PromptVersion)
		}
	}
	if len(models) == 0 {
		return res, nil
	}
	if opts.DryRun {
		err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
			models, prompts, err = pruneLocks(ctx, tx, models, prompts, &res)
			if err != nil || len(models) == 0 {
				return err
			}
			// The rows the batches below remove, found by joins: the whole table is read.
			rows, err := tx.Query(ctx, `SELECT t.model, t.prompt_version, count(*) FILTER (WHERE t.gone),
					coalesce(sum(t.bytes) FILTER (WHERE t.gone), 0)::bigint, count(*)
				FROM (SELECT t.model, t.prompt_version, `+tldrBytesSQL+` AS bytes,
						$3::bool OR p.content_hash IS DISTINCT FROM t.content_hash OR k.paper_id IS NOT NULL AS gone
					FROM tldrs t
					LEFT JOIN papers p ON p.id = t.paper_id
					LEFT JOIN (SELECT DISTINCT k.paper_id FROM tldrs k JOIN papers p ON p.id = k.paper_id AND p.content_hash = k.content_hash
						WHERE (k.model, k.prompt_version) NOT IN (SELECT * FROM unnest($1::text[], $2::text[]))) k ON k.paper_id = t.paper_id
					WHERE (t.model, t.prompt_version) IN (SELECT * FROM unnest($1::text[], $2::text[]))) t
				GROUP BY t.model, t.prompt_version`, models, prompts, opts.Force)
			if err != nil {
				return err
			}
			var m, p string
			var n, bytes, all int64
			_, err = pgx.ForEachRow(rows, []any{&m, &p, &n, &bytes, &all}, func() error {
				v := res.version(m, p)
				v.TLDRs, v.Bytes, v.Sole = n, bytes, all-n
				return nil
			})
			return err
		})
		if err != nil {
			return res, fmt.Errorf("prune TL;DRs (dry run): %w", err)
		}
		res.total()
		return res, nil
	}
	// The TL;DRs written from here on (created_at, set by every write) are those a worker or a
	// run writes while the prune runs; what was there before and stays is what the pass left.
	var started time.Time
	if err := s.pool.QueryRow(ctx, "SELECT statement_timestamp()").Scan(&started); err != nil {
		return res, fmt.Errorf("prune TL;DRs: %w", err)
	}
	after := [3]string{"", "", ""}
	retries := 0
	for len(models) > 0 {
		if err := ctx.Err(); err != nil {
			return res, err
		}
		var done bool
		err := s.writeTx(ctx, "LOCK TABLE papers IN ACCESS SHARE MODE; LOCK TABLE tldrs IN ROW EXCLUSIVE MODE", func(tx pgx.Tx) error {
			var err error
			models, prompts, err = pruneLocks(ctx, tx, models, prompts, &res)
			if err != nil || len(models) == 0 {
				return err
			}
			// c: the next TL;DRs of the versions removed, in key order (the batch may end inside a
			// paper's). d: those removed — unless forced, of a text their paper no longer has, or of a
			// paper with a TL;DR of its current text in a version that stays. Looked up row by row
			// (LATERAL … LIMIT 1): as EXISTS under OR, the planner hashed whole tables per batch.
			rows, err := tx.Query(ctx, `
				WITH c AS MATERIALIZED (
					SELECT t.paper_id, t.model, t.prompt_version, t.content_hash FROM tldrs t
					WHERE (t.paper_id, t.model, t.prompt_version) > ($4, $5, $6)
					AND (t.model, t.prompt_version) IN (SELECT * FROM unnest($1::text[], $2::text[]))
					ORDER BY t.paper_id, t.model, t.prompt_version LIMIT $7
				), d AS (
					SELECT t.paper_id, t.model, t.prompt_version FROM c
					JOIN tldrs t ON t.paper_id = c.paper_id AND t.model = c.model AND t.prompt_version = c.prompt_version
					LEFT JOIN papers p ON p.id = t.paper_id
					LEFT JOIN LATERAL (SELECT true AS found FROM tldrs k WHERE k.paper_id = t.paper_id AND k.content_hash = p.content_hash
						AND (k.model, k.prompt_version) NOT IN (SELECT * FROM unnest($1::text[], $2::text[])) LIMIT 1) k ON true
					WHERE $3::bool OR p.content_hash IS DISTINCT FROM t.content_hash OR k.found
					ORDER BY t.paper_id, t.model, t.prompt_version
					FOR UPDATE OF t
				), del AS (
					DELETE FROM tldrs t USING d
					WHERE t.paper_id = d.paper_id AND t.model = d.model AND t.prompt_version = d.prompt_version
					RETURNING t.model, t.prompt_version, `+tldrBytesSQL+` AS bytes
				), last AS (
					SELECT paper_id, model, prompt_version FROM c
					ORDER BY paper_id DESC, model DESC, prompt_version DESC LIMIT 1
				)
				SELECT l.paper_id, l.model, l.prompt_version, x.model, x.prompt_version, coalesce(x.n, 0), coalesce(x.bytes, 0)
				FROM last l LEFT JOIN (SELECT model, prompt_version, count(*) AS n, sum(bytes)::bigint AS bytes
					FROM del GROUP BY model, prompt_version) x ON true`,
				models, prompts, opts.Force, after[0], after[1], after[2], opts.BatchSize)
			if err != nil {
				return err
			}
			var last [3]string
			var m, p *string
			var n, bytes int64
			found := false
			_, err = pgx.ForEachRow(rows, []any{&last[0], &last[1], &last[2], &m, &p, &n, &bytes}, func() error {
				found = true
				if m != nil {
					v := res.version(*m, *p)
					v.TLDRs += n
					v.Bytes += bytes
				}
				return nil
			})
			if err != nil {
				return err
			}
			if !found {
				done = true
				return nil
			}
			after = last
			return nil
		})
		if err != nil {
			// A lock wait that ran out, or a deadlock with a removal of papers: the batch
			// changed nothing, and is tried again.
			var pgErr *pgconn.PgError
			if (errors.Is(err, paper.ErrLocked) || errors.As(err, &pgErr) && pgErr.Code == "40P01") && retries < 3 && ctx.Err() == nil {
				retries++
				continue
			}
			res.total()
			return res, fmt.Errorf("prune TL;DRs: %w", err)
		}
		retries = 0
		res.total()
		if opts.Progress != nil {
			opts.Progress(res)
		}
		if done {
			break
		}
	}
	// What stays of the versions removed: TL;DRs that are their paper's only one, and those
	// written behind the prune's pass.
	if err := s.countLeft(ctx, &res, opts.Force, started); err != nil {
		return res, err
	}
	res.total()
	if res.TLDRs > 0 {
		if _, err := s.pool.Exec(ctx, "VACUUM (ANALYZE) tldrs"); err != nil {
			return res, fmt.Errorf("prune TL;DRs: vacuum tldrs: %w", err)
		}
	}
	return res, nil
}

// countLeft counts, for each version pruned (not skipped), the TL;DRs left of it: those the
// pass left as the only one of their paper's current text among the versions that stay (none
// when forced: the prune removed them), which were there when it started (written before
// started; the paper may have been given a TL;DR of a version that stays since, or a new text:
// the next prune removes them), and those written while it ran (from started on), behind its
// pass or left by it.
func (s *Store) countLeft(ctx context.Context, res *PruneResult, forced bool, started time.Time) error {
	var models, prompts []string
	for _, v := range res.Versions {
		if v.Skipped == "" {
			models, prompts = append(models, v.Model), append(prompts, v.PromptVersion)
		}
	}
	if len(models) == 0 {
		return nil
	}
	rows, err := s.pool.Query(ctx, `SELECT t.model, t.prompt_version, count(*) FILTER (WHERE NOT $3::bool AND t.created_at < $4), count(*)
		FROM tldrs t
		WHERE (t.model, t.prompt_version) IN (SELECT * FROM unnest($1::text[], $2::text[]))
		GROUP BY t.model, t.prompt_version`, models, prompts, forced, started)
	if err != nil {
		return fmt.Errorf("prune TL;DRs: count what is left: %w", err)
	}
	var m, p string
	var sole, all int64
	_, err = pgx.ForEachRow(rows, []any{&m, &p, &sole, &all}, func() error {
		v := res.version(m, p)
		v.Sole, v.WrittenMeanwhile = sole, all-sole
		return nil
	})
	if err != nil {
		return fmt.Errorf("prune TL;DRs: count what is left: %w", err)
	}
	return nil
}

func (r *PruneResult) total() {
	r.TLDRs, r.Bytes, r.Sole, r.WrittenMeanwhile = 0, 0, 0, 0
	for _, v := range r.Versions {
		r.TLDRs += v.TLDRs
		r.Bytes += v.Bytes
		r.Sole += v.Sole
		r.WrittenMeanwhile += v.WrittenMeanwhile
	}
}

// pruneLocks takes, in tx, the run lock of each version of models/prompts, and returns those it
// may remove: the others (a run writes them now, or open Batch API jobs will) are marked
// skipped in res.
func pruneLocks(ctx context.Context, tx pgx.Tx, models, prompts []string, res *PruneResult) (freeModels, freePrompts []string, err error) {
	rows, err := tx.Query(ctx, pruneLocksSQL, models, prompts)
	if err != nil {
		return nil, nil, fmt.Errorf("lock the versions' runs: %w", err)
	}
	var m, p string
	var free bool
	var jobs []int64
	_, err = pgx.ForEachRow(rows, []any{&m, &p, &free, &jobs}, func() error {
		switch {
		case !free:
			res.version(m, p).Skipped = "a `paperpipe reprocess`, `import` or `import-tldrs` is writing it"
		case len(jobs) > 0:
			res.version(m, p).Skipped = OpenBatchJobs(jobs) + " will write it"
		default:
			freeModels, freePrompts = append(freeModels, m), append(freePrompts, p)
		}
		return nil
	})
	if err != nil {
		return nil, nil, fmt.Errorf("lock the versions' runs: %w", err)
	}
	return freeModels, freePrompts, nil
}

// OpenBatchJobs names open Batch API jobs by id: "open Batch API job 3", "open Batch API jobs
// 3, 4".
func OpenBatchJobs(ids []int64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = itoa(id)
	}
	noun := "jobs"
	if len(ids) == 1 {
		noun = "job"
	}
	return "open Batch API " + noun + " " + strings.Join(s, ", ")
}
