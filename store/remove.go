package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/paperpipe/paperpipe/paper"
)

// RemoveBatch is how many papers RemovePapers removes per transaction: each holds the papers
// table against other writes (not reads) while it runs, a few tens of milliseconds.
const RemoveBatch = 500

// RemovedPaper is one stored paper RemovePapers removed (or, on a dry run, would remove), with
// the outputs that went with it.
type RemovedPaper struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	// TLDRs and Embeddings count its TL;DRs (of every model and prompt version) and vectors (of
	// every space); BatchItems its places in Batch API jobs (an open job's answer for it is
	// then not stored).
	TLDRs      int `json:"tldrs"`
	Embeddings int `json:"embeddings"`
	BatchItems int `json:"batch_items"`
}

// RemoveTotals sums a RemovePapers call.
type RemoveTotals struct {
	Papers     int `json:"papers"`
	TLDRs      int `json:"tldrs"`
	Embeddings int `json:"embeddings"`
	BatchItems int `json:"batch_items"`
	// NotStored counts the ids given that no stored paper has (a typo, or a paper still
	// queued): a message of theirs queued before the removal is not stored either.
	NotStored int `json:"not_stored"`
}

// RemovePapers removes the papers ids name (each at most once), with their TL;DRs, their
// vectors in every space and their items in Batch API jobs, RemoveBatch papers per
// transaction, calling each (when not nil) with the stored papers of each batch once it is
// committed; a failure leaves the batches before it removed (an id PostgreSQL cannot hold, not
// UTF-8 or with a NUL, is refused, paper.ErrInvalid, before any). Every id is recorded as removed,
// stored or not, so that a message of the paper whose text the queue dated no later than the
// removal — queued, in a worker's hands, dead-lettered and replayed — is not stored
// (UpsertPapers reports it Removed), and no TL;DR or vector is saved for it (they need their
// paper); a message published after the removal stores it again, as a new paper.
//
// With dryRun, nothing is written, and each is called with what would go.
func (s *Store) RemovePapers(ctx context.Context, ids []string, dryRun bool, each func([]RemovedPaper) error) (_ RemoveTotals, err error) {
	defer func() { err = unavailable(ctx, err) }()
	var tot RemoveTotals
	seen := make(map[string]bool, len(ids))
	uniq := make([]string, 0, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			uniq = append(uniq, id)
		}
	}
	// An id PostgreSQL cannot hold is refused before any batch: found at its own, it failed
	// there (22021) after the batches before it were removed.
	for _, id := range uniq {
		if err := validText(id); err != nil {
			return tot, fmt.Errorf("remove: an id: %w (nothing removed)", err)
		}
	}
	for chunk := range slices.Chunk(uniq, RemoveBatch) {
		var got []RemovedPaper
		var err error
		if dryRun {
			got, err = removalOf(ctx, s.pool, chunk)
		} else {
			got, err = s.removeBatch(ctx, chunk)
		}
		if err != nil {
			return tot, fmt.Errorf("remove %s (%s removed before): %w", papersN(len(chunk)), strconv.Itoa(tot.Papers), err)
		}
		tot.Papers += len(got)
		tot.NotStored += len(chunk) - len(got)
		for _, p := range got {
			tot.TLDRs += p.TLDRs
			tot.Embeddings += p.Embeddings
			tot.BatchItems += p.BatchItems
		}
		if each != nil && len(got) > 0 {
			if err := each(got); err != nil {
				return tot, err
			}
		}
	}
	return tot, nil
}

// removeLockTries is how many times removeBatch tries a batch whose lock wait timed out or
// deadlocked.
const removeLockTries = 5

// removeBatch removes one batch in a transaction that first takes the papers table in SHARE
// ROW EXCLUSIVE mode: reads and the saves of TL;DRs and vectors go on, while an UpsertPapers
// running waits to commit first (its paper is then removed) and one starting waits for the
// removal's end (it then reads the removal, see removedBefore). Without it, a paper a worker
// inserted while the removal ran was not seen by its DELETE and stayed. The table lock and
// every row lock are waited for at most RowLockTimeout, so that the workers' writes queued
// behind the removal are not held longer; a timed-out wait, or a deadlock, is tried again.
func (s *Store) removeBatch(ctx context.Context, ids []string) ([]RemovedPaper, error) {
	begin := "BEGIN; SET LOCAL lock_timeout = " + strconv.FormatInt(s.rowLockTimeout.Milliseconds(), 10) +
		"; LOCK TABLE papers IN SHARE ROW EXCLUSIVE MODE"
	for try := 1; ; try++ {
		var out []RemovedPaper
		err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{BeginQuery: begin}, func(tx pgx.Tx) error {
			var err error
			if out, err = removalOf(ctx, tx, ids); err != nil {
				return err
			}
			// Dated by the clock now, once the lock is held (now() is the transaction's start,
			// before the wait): a message the queue stored while the removal waited is of it.
			if _, err := tx.Exec(ctx, `
				INSERT INTO removed_papers (id, removed_at) SELECT id, clock_timestamp() FROM unnest($1::text[]) AS t(id)
				ON CONFLICT (id) DO UPDATE SET removed_at = excluded.removed_at`, ids); err != nil {
				return fmt.Errorf("record the removal: %w", err)
			}
			if _, err := tx.Exec(ctx, `DELETE FROM papers WHERE id = ANY($1)`, ids); err != nil {
				return fmt.Errorf("delete the papers: %w", err)
			}
			return nil
		})
		err = s.rowLockTimedOut(err)
		// A deadlock with a writer of the papers' outputs (a prune of TL;DRs, a save, locking
		// rows of tldrs or papers in another order than the DELETE's cascade) aborted the batch,
		// which changed nothing: it is tried again, as a timed-out wait is.
		var pgErr *pgconn.PgError
		deadlock := errors.As(err, &pgErr) && pgErr.Code == "40P01"
		if err == nil || !errors.Is(err, paper.ErrLocked) && !deadlock || try == removeLockTries || ctx.Err() != nil {
			return out, err
		}
	}
}

// removalOf returns the stored papers of ids with the counts of their outputs, in ids' order.
func removalOf(ctx context.Context, q querier, ids []string) ([]RemovedPaper, error) {
	rows, err := q.Query(ctx, `
		SELECT p.id, p.title,
			(SELECT count(*) FROM tldrs t WHERE t.paper_id = p.id),
			(SELECT count(*) FROM embeddings e WHERE e.paper_id = p.id),
			(SELECT count(*) FROM batch_items b WHERE b.paper_id = p.id)
		FROM unnest($1::text[]) WITH ORDINALITY AS i(id, n) JOIN papers p ON p.id = i.id
		ORDER BY i.n`, ids)
	if err != nil {
		return nil, fmt.Errorf("read the papers: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (RemovedPaper, error) {
		var p RemovedPaper
		err := r.Scan(&p.ID, &p.Title, &p.TLDRs, &p.Embeddings, &p.BatchItems)
		return p, err
	})
	if err != nil {
		return nil, fmt.Errorf("read the papers: %w", err)
	}
	return out, nil
}

// Removed reports whether the paper id was removed (RemovePapers) and not stored again since:
// a worker holding its message asks before it buys the paper's TL;DR. One primary-key probe of
// removed_papers.
func (s *Store) Removed(ctx context.Context, id string) (_ bool, err error) {
	defer func() { err = unavailable(ctx, err) }()
	var removed bool
	if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM removed_papers WHERE id = $1)`, id).Scan(&removed); err != nil {
		return false, fmt.Errorf("read the removal of paper %s: %w", id, err)
	}
	return removed, nil
}

// lastRemovalSQL is LastRemoval's statement: the last entry of removed_papers_removed_at
// (00018). It read the table whole, which holds every id ever given to a removal, stored or not,
// and not ingested again: after removing a wrong file of a million papers, 250–500 ms of a
// parallel scan (three backends) each second per worker, for good; 0.4 ms from the index.
const lastRemovalSQL = `SELECT max(removed_at) FROM removed_papers`

// LastRemoval is the time of the latest removal (RemovePapers) of a paper not stored again
// since; the zero time when there is none. A worker reads it about once a second to know
// whether the messages it holds need asking about (Removed).
func (s *Store) LastRemoval(ctx context.Context) (_ time.Time, err error) {
	defer func() { err = unavailable(ctx, err) }()
	var at *time.Time
	if err := s.pool.QueryRow(ctx, lastRemovalSQL).Scan(&at); err != nil {
		return time.Time{}, fmt.Errorf("read the latest removal: %w", err)
	}
	if at == nil {
		return time.Time{}, nil
	}
	return *at, nil
}

// removedBefore reports, per copy of papers, whether its paper was removed (RemovePapers) no
// earlier than its text was read (Abstract.TextAt; a zero TextAt is now, after any removal),
// and the removed papers of the others, which the call stores again.
func removedBefore(ctx context.Context, q querier, papers []paper.Abstract) (refused []bool, revived []string, err error) {
	refused = make([]bool, len(papers))
	ids := make([]string, len(papers))
	for i, a := range papers {
		ids[i] = a.ID
	}
	rows, err := q.Query(ctx, `SELECT id, removed_at FROM removed_papers WHERE id = ANY($1)`, ids)
	if err != nil {
		return nil, nil, fmt.Errorf("upsert %s: read removals: %w", papersN(len(papers)), err)
	}
	removed := make(map[string]time.Time)
	var (
		id string
		at time.Time
	)
	if _, err := pgx.ForEachRow(rows, []any{&id, &at}, func() error {
		removed[id] = at
		return nil
	}); err != nil {
		return nil, nil, fmt.Errorf("upsert %s: read removals: %w", papersN(len(papers)), err)
	}
	for i, a := range papers {
		at, ok := removed[a.ID]
		switch {
		case !ok:
		case !a.TextAt.IsZero() && !a.TextAt.After(at):
			refused[i] = true
		case !slices.Contains(revived, a.ID):
			revived = append(revived, a.ID)
		}
	}
	return refused, revived, nil
}

// forgetRemoval deletes the removal records of the papers ids, stored again: a later message
// of an older text is then refused by the stored text's date, as any older text is.
func forgetRemoval(ctx context.Context, q querier, ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if _, err := q.Exec(ctx, `DELETE FROM removed_papers WHERE id = ANY($1)`, ids); err != nil {
		return fmt.Errorf("upsert %s: forget their removal: %w", papersN(len(ids)), err)
	}
	return nil
}
