package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/pgvector/pgvector-go"

	"github.com/paperpipe/paperpipe/paper"
)

// Selection chooses the papers a re-processing run considers, and the work it is for.
type Selection struct {
	// Work is the target: Model and PromptVersion for TL;DRs ("" when the run writes none),
	// SpaceID for embeddings (0 when the run embeds nothing). A paper is selected when it lacks
	// a result of its current text for one of them, and is not in an open batch job for it.
	Work paper.Work
	// Since keeps papers stored, or whose text (title, abstract) changed, at or after this time
	// (their updated_at; a change of metadata alone does not date it, and no output is made
	// from metadata). A change
	// is dated when its write began; its transaction commits later (up to RowLockTimeout per
	// locked row the write meets), so a run that picks up where an earlier one started should
	// go back a margin (a minute is safe) before that start, by the database's clock (which
	// dates the changes), not another machine's. Defaults to the zero time: every paper.
	Since time.Time
	// IDs keeps only these (canonical) papers. Defaults to nil: every paper.
	IDs []string
}

// StalePaper is a paper that needs work under a Selection.
type StalePaper struct {
	paper.Abstract
	// ContentHash is the hash of the stored text, the one a result must be made from.
	ContentHash string
	// NeedTLDR and NeedEmbedding say which outputs of Selection.Work are missing.
	NeedTLDR, NeedEmbedding bool
}

// openJobStatuses are the batch job statuses whose papers must not be sent again.
const openJobStatuses = "('preparing', 'submitted')"

// staleSQL selects, after a keyset position, the papers that need work. $1 last id, $2 page
// size, $3 model, $4 prompt version, $5 space id, $6 since, $7 ids (NULL: any). A text stored
// before migration 00008 has no time (text_at '-infinity'); it was read before its row was
// last written, so updated_at dates it when it is published again — not the time the queue
// stores that message, which would make it newer than a text read meanwhile.
var staleSQL = `
	SELECT p.id, p.title, p.abstract, p.authors, p.categories, p.published, coalesce(p.url, ''),
		coalesce(p.source, ''), p.content_hash, coalesce(nullif(p.text_at, '-infinity'), p.updated_at),
		` + lacksTLDRPageSQL + ` AND NOT ` + heldTLDRSQL + ` AS need_tldr,
		` + lacksEmbeddingSQL + ` AND NOT ` + heldEmbeddingSQL + ` AS need_embedding` + staleFromSQL

// lacksTLDRSQL and lacksEmbeddingSQL say, in staleCountSQL, that paper p lacks its output; a
// TL;DR the API will not give of its text for the target (withheld_tldrs, RecordWithheld — its
// content filter withheld it, or the model refused: joined as wh) is not lacked, for each run
// bought the same refusal again. lacksTLDRPageSQL says it in staleSQL, whose lateral joins
// probe each paper: the record is looked up for the papers without a TL;DR only. heldTLDRSQL
// and heldEmbeddingSQL that an open batch job of the target holds p's current text (heldTLDR
// and heldEmbedding of paper p and parameters $3, $4, $5, as staleSQL and PendingFor number
// them).
const (
	lacksTLDRSQL      = `($3::text <> '' AND tl.found IS NULL AND wh.found IS NULL)`
	lacksEmbeddingSQL = `($5::bigint <> 0 AND em.found IS NULL)`
)

var (
	lacksTLDRPageSQL = `($3::text <> '' AND tl.found IS NULL AND NOT ` + withheldTLDRSQL + `)`
	heldTLDRSQL      = heldTLDR("p.id", "p.content_hash", "$3", "$4")
	withheldTLDRSQL  = withheldTLDR("p.id", "p.content_hash", "$3", "$4::text")
	heldEmbeddingSQL = heldEmbedding("p.id", "p.content_hash", "$5")
)

// withheldTLDR is the SQL condition that the API will not give the TL;DR of paper id's text hash
// under chat model model and prompt version prompt (each argument an SQL expression): a record
// of withheld_tldrs (RecordWithheld: its content filter withheld it, or the model refused),
// which whoever computes what a paper needs (StalePapers, CountStale, PendingFor, UpsertPapers)
// leaves out, or the same refusal is bought again: a paper published by a run for its vector,
// or ingested again unchanged, had its TL;DR asked for with it. A primary-key probe.
func withheldTLDR(id, hash, model, prompt string) string {
	return `EXISTS (SELECT 1 FROM withheld_tldrs w
			WHERE w.paper_id = ` + id + ` AND w.model = ` + model + ` AND w.prompt_version = ` + prompt + ` AND w.content_hash = ` + hash + `)`
}

// heldTLDR is the SQL condition that an open batch job for the TL;DRs of chat model model and
// prompt version prompt holds paper id's text hash (each argument an SQL expression): its
// TL;DR is bought by that job, and whoever computes what a paper needs (StalePapers,
// PendingFor, UpsertPapers) leaves it out, or it would be paid for twice. It is an indexed
// lookup of the paper's items (batch_items_paper_id) and their jobs.
func heldTLDR(id, hash, model, prompt string) string {
	return `EXISTS (SELECT 1 FROM batch_items bi JOIN batch_jobs j ON j.id = bi.job_id
			WHERE bi.paper_id = ` + id + ` AND bi.content_hash = ` + hash + ` AND j.kind = 'chat'
				AND j.model = ` + model + ` AND j.prompt_version = ` + prompt + ` AND j.status IN ` + openJobStatuses + `)`
}

// heldEmbedding is heldTLDR for the vectors of embedding space space.
func heldEmbedding(id, hash, space string) string {
	return `EXISTS (SELECT 1 FROM batch_items bi JOIN batch_jobs j ON j.id = bi.job_id
			WHERE bi.paper_id = ` + id + ` AND bi.content_hash = ` + hash + ` AND j.kind = 'embedding'
				AND j.space_id = ` + space + ` AND j.status IN ` + openJobStatuses + `)`
}

// staleFromSQL is staleSQL's FROM and WHERE.
const staleFromSQL = `
	FROM papers p
	LEFT JOIN LATERAL (SELECT true AS found FROM tldrs t WHERE t.paper_id = p.id AND t.model = $3
		AND t.prompt_version = $4::text AND t.content_hash = p.content_hash LIMIT 1) tl ON true
	LEFT JOIN LATERAL (SELECT true AS found FROM embeddings e WHERE e.space_id = $5 AND e.paper_id = p.id
		AND e.content_hash = p.content_hash LIMIT 1) em ON true
	WHERE p.id > $1 AND p.updated_at >= $6 AND ($7::text[] IS NULL OR p.id = ANY($7))`

// stalePageSQL is staleSQL's next page: $2 rows after $1.
var stalePageSQL = staleSQL + `
	ORDER BY p.id LIMIT $2`

// staleCountFromSQL is staleFromSQL with plain outer joins: a paper has at most one TL;DR of a
// model and prompt version and one vector in a space (their primary keys), so they join the
// same rows, and the planner may read the target's TL;DRs and the space's keys once and hash
// them (a count of the archive) or probe each paper's (a few: --ids, a recent --since). The
// lateral joins of a page allowed only the probes, two per paper: at 300,000 papers 2.3M buffer
// reads against 0.28M, and the statement took 23–38 s against 14–25 s on the shared 2-core
// machine at a load of 17 to 25 (its reads of papers, the same in both, dominate there).
const staleCountFromSQL = `
	FROM papers p
	LEFT JOIN (SELECT t.paper_id, t.content_hash, true AS found FROM tldrs t
		WHERE t.model = $3 AND t.prompt_version = $4::text) tl ON tl.paper_id = p.id AND tl.content_hash = p.content_hash
	LEFT JOIN (SELECT e.paper_id, e.content_hash, true AS found FROM embeddings e
		WHERE e.space_id = $5) em ON em.paper_id = p.id AND em.content_hash = p.content_hash
	LEFT JOIN (SELECT w.paper_id, w.content_hash, true AS found FROM withheld_tldrs w
		WHERE w.model = $3 AND w.prompt_version = $4::text) wh ON wh.paper_id = p.id AND wh.content_hash = p.content_hash
	WHERE p.id > $1 AND p.updated_at >= $6 AND ($7::text[] IS NULL OR p.id = ANY($7))`

// staleCountSQL counts what staleSQL selects, the papers lacking an output that open batch
// jobs hold, and those lacking a TL;DR the API withheld; $1 is the empty string and $2 unused.
var staleCountSQL = `SELECT count(*) FILTER (WHERE need_tldr OR need_embedding),
	count(*) FILTER (WHERE need_tldr), count(*) FILTER (WHERE need_embedding),
	count(*) FILTER (WHERE held_tldr OR held_embedding), count(*) FILTER (WHERE held_tldr),
	count(*) FILTER (WHERE held_embedding), count(*) FILTER (WHERE withheld_tldr)
FROM (SELECT lacks_tldr AND NOT held_tldr AS need_tldr, lacks_embedding AND NOT held_embedding AS need_embedding,
		lacks_tldr AND held_tldr AS held_tldr, lacks_embedding AND held_embedding AS held_embedding, withheld_tldr
	FROM (SELECT ` + lacksTLDRSQL + ` AS lacks_tldr, ` + lacksTLDRSQL + ` AND ` + heldTLDRSQL + ` AS held_tldr,
			($3::text <> '' AND tl.found IS NULL AND wh.found) AS withheld_tldr,
			` + lacksEmbeddingSQL + ` AS lacks_embedding, ` + lacksEmbeddingSQL + ` AND ` + heldEmbeddingSQL + ` AS held_embedding
		` + staleCountFromSQL + ` AND $2::int >= 0) paper) page`

// StalePapers calls fn with the papers that need work under sel, in pages of at most pageSize
// (defaults to 500), in id order. It pages by id (keyset), so memory is bounded by one page
// whatever the size of the archive, and fn may write to the store: no query is open while it
// runs. An error from fn stops the walk and is returned.
func (s *Store) StalePapers(ctx context.Context, sel Selection, pageSize int, fn func([]StalePaper) error) error {
	if pageSize <= 0 {
		pageSize = 500
	}
	var ids []string
	if sel.IDs != nil {
		ids = sel.IDs
		if len(ids) == 0 {
			return nil
		}
	}
	since := sel.Since
	if since.IsZero() {
		since = time.Unix(0, 0)
	}
	last := ""
	for {
		// Scan a larger window than a page: most papers of a mostly-done archive are not stale.
		rows, err := s.pool.Query(ctx, stalePageSQL, last, pageSize*4, sel.Work.Model, sel.Work.PromptVersion,
			sel.Work.SpaceID, since, ids)
		if err != nil {
			return unavailable(ctx, fmt.Errorf("select stale papers: %w", err))
		}
		var (
			page    []StalePaper
			scanned int
		)
		for rows.Next() {
			scanned++
			var (
				sp                StalePaper
				published, textAt pgtype.Timestamptz
			)
			if err := rows.Scan(&sp.ID, &sp.Title, &sp.Abstract.Abstract, &sp.Authors, &sp.Categories, &published,
				&sp.URL, &sp.Source, &sp.ContentHash, &textAt, &sp.NeedTLDR, &sp.NeedEmbedding); err != nil {
				rows.Close()
				return unavailable(ctx, fmt.Errorf("select stale papers: %w", err))
			}
			if published.Valid {
				sp.Published = published.Time
			}
			if textAt.Valid { // the stored text's date travels with a message made of it
				sp.TextAt = textAt.Time
			}
			last = sp.ID
			if sp.NeedTLDR || sp.NeedEmbedding {
				page = append(page, sp)
			}
		}
		if err := rows.Err(); err != nil {
			return unavailable(ctx, fmt.Errorf("select stale papers: %w", err))
		}
		for len(page) > 0 {
			n := min(len(page), pageSize)
			if err := fn(page[:n]); err != nil {
				return err
			}
			page = page[n:]
		}
		if scanned < pageSize*4 {
			return nil
		}
	}
}

// StaleCounts is how much work a Selection holds.
type StaleCounts struct {
	Papers     int64 `json:"papers"`     // papers needing anything
	TLDRs      int64 `json:"tldrs"`      // papers needing a TL;DR
	Embeddings int64 `json:"embeddings"` // papers needing an embedding
	// InBatch counts the papers lacking an output of the target that open batch jobs of the
	// target hold (not counted above: they are not to be sent again); InBatchTLDRs and
	// InBatchEmbeddings per output.
	InBatch           int64 `json:"in_batch"`
	InBatchTLDRs      int64 `json:"in_batch_tldrs"`
	InBatchEmbeddings int64 `json:"in_batch_embeddings"`
	// Withheld counts the papers lacking a TL;DR of the target whose TL;DR the API withheld for
	// their text (RecordWithheld; not counted in TLDRs: they are not asked for again).
	Withheld int64 `json:"withheld_tldrs"`
}

// CountStale counts the papers StalePapers would return for sel, in one query.
func (s *Store) CountStale(ctx context.Context, sel Selection) (StaleCounts, error) {
	var ids []string
	if sel.IDs != nil {
		if len(sel.IDs) == 0 {
			return StaleCounts{}, nil
		}
		ids = sel.IDs
	}
	since := sel.Since
	if since.IsZero() {
		since = time.Unix(0, 0)
	}
	var c StaleCounts
	err := s.pool.QueryRow(ctx, staleCountSQL, "", 0, sel.Work.Model, sel.Work.PromptVersion, sel.Work.SpaceID, since, ids).
		Scan(&c.Papers, &c.TLDRs, &c.Embeddings, &c.InBatch, &c.InBatchTLDRs, &c.InBatchEmbeddings, &c.Withheld)
	if err != nil {
		return StaleCounts{}, fmt.Errorf("count stale papers: %w", statementTimedOut(err))
	}
	return c, nil
}

// ResolveSpace finds an embedding space by what a user typed: its id, its name
// (model/dimensions/template), or its model when one space has that model, with its coverage
// (Embedded, Papers: a count over the archive). No match is paper.ErrNotFound; a model with
// several spaces is paper.ErrAmbiguous.
func (s *Store) ResolveSpace(ctx context.Context, ref string) (SpaceInfo, error) {
	sp, err := s.FindSpace(ctx, ref)
	if err != nil {
		return SpaceInfo{}, err
	}
	if err := s.pool.QueryRow(ctx, `SELECT `+spaceCoverageColumns+` FROM embedding_spaces s WHERE s.id = $1`, sp.ID).
		Scan(&sp.Embedded, &sp.Papers); err != nil {
		return SpaceInfo{}, fmt.Errorf("count the coverage of space %d: %w", sp.ID, err)
	}
	return sp, nil
}

// FindSpace is ResolveSpace without the coverage: Embedded and Papers are zero. It reads only
// embedding_spaces, where counting the coverage reads a space's every vector and paper.
func (s *Store) FindSpace(ctx context.Context, ref string) (SpaceInfo, error) {
	ref = strings.TrimSpace(ref)
	spaces, err := s.listSpaces(ctx, false)
	if err != nil {
		return SpaceInfo{}, err
	}
	if id, err := strconv.ParseInt(ref, 10, 64); err == nil {
		for _, sp := range spaces {
			if sp.ID == id {
				return sp, nil
			}
		}
	}
	var byModel []SpaceInfo
	for _, sp := range spaces {
		if sp.Name() == ref {
			return sp, nil
		}
		if sp.Model == ref {
			byModel = append(byModel, sp)
		}
	}
	switch len(byModel) {
	case 0:
		return SpaceInfo{}, fmt.Errorf("no embedding space is %q (see `paperpipe spaces`): %w", ref, paper.ErrNotFound)
	case 1:
		return byModel[0], nil
	}
	names := make([]string, len(byModel))
	for i, sp := range byModel {
		names[i] = strconv.FormatInt(sp.ID, 10) + " " + sp.Name()
	}
	return SpaceInfo{}, fmt.Errorf("model %s has %d spaces (%s); name one by id or full name: %w",
		ref, len(byModel), strings.Join(names, ", "), paper.ErrAmbiguous)
}

// LoadResult is what LoadEmbeddings did with its input.
type LoadResult struct {
	// Loaded counts vectors stored (or already stored as given).
	Loaded int
	// Unknown lists the paper ids that are not in the store; their vectors were skipped.
	Unknown []string
	// Stale counts vectors given with a content hash that is not their paper's current one;
	// they were skipped.
	Stale int
}

// LoadEmbeddings stores precomputed vectors in space spaceID with COPY: the rows are copied
// into a temporary staging table, then inserted from it in one statement, so a big load costs
// a few round trips per call rather than one statement per vector. A vector without a
// ContentHash is taken as made from its paper's current text; one with a different hash than
// the current one is skipped as stale. Of several vectors of one paper, the last of its current
// text is loaded. Unknown papers are skipped and listed. Vectors of the
// wrong dimension fail the call with paper.ErrSpaceMismatch before anything is written; a
// space that does not exist (dropped, by this process or another: a load into a space
// DropSpace is dropping waits for the drop) with paper.ErrSpaceDropped and paper.ErrNotFound.
// A paper whose row another session holds locked is waited for Config.RowLockTimeout at most:
// then the call fails, nothing written, with paper.ErrLocked (a *paper.LockedError naming the
// locked papers when the store can tell), and can be made again. Callers stream a large file through it in chunks of a few thousand vectors.
func (s *Store) LoadEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (LoadResult, error) {
	var res LoadResult
	if len(embs) == 0 {
		return res, nil
	}
	sp, err := s.space(ctx, spaceID)
	if errors.Is(err, paper.ErrNotFound) {
		return res, fmt.Errorf("load embeddings: embedding space %d: %w: %w", spaceID, paper.ErrSpaceDropped, paper.ErrNotFound)
	}
	if err != nil {
		return res, fmt.Errorf("load embeddings: %w", err)
	}
	for i, e := range embs {
		if e.ContentHash == "" {
			e.ContentHash = "-" // validated below; replaced by the current hash in SQL
		}
		if err := validateEmbedding(e, sp); err != nil {
			return res, fmt.Errorf("load embeddings: record %d: %w", i+1, err)
		}
	}
	err = pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// The space's row first, before any table, as SaveEmbeddings does: DropSpace holds it
		// while it deletes the space's vectors, and a load that held embeddings while its
		// foreign key check waited for the row deadlocked with the drop's DROP INDEX. This
		// one waits for the drop, then finds the space gone.
		var one int
		err := tx.QueryRow(ctx, "SELECT 1 FROM embedding_spaces WHERE id = $1 FOR KEY SHARE", spaceID).Scan(&one)
		if errors.Is(err, pgx.ErrNoRows) {
			return paper.ErrSpaceDropped
		}
		if err != nil {
			return fmt.Errorf("lock the space: %w", err)
		}
		// Like embeddings (migration 00006), the staging rows keep their vectors in the row.
		if _, err := tx.Exec(ctx, `CREATE TEMP TABLE embeddings_load (
				n int, paper_id text, content_hash text, embedding vector, truncated bool)
				WITH (toast_tuple_target = 8160) ON COMMIT DROP`); err != nil {
			return fmt.Errorf("create staging table: %w", err)
		}
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"embeddings_load"},
			[]string{"n", "paper_id", "content_hash", "embedding", "truncated"},
			pgx.CopyFromSlice(len(embs), func(i int) ([]any, error) {
				e := embs[i]
				return []any{i, e.PaperID, e.ContentHash, pgvector.NewVector(e.Vector), e.Truncated}, nil
			}))
		if err != nil {
			return fmt.Errorf("copy: %w", err)
		}
		// Share-lock the papers first, in id order, as SaveEmbeddings does (see
		// saveSummariesSQL): the next statement then classifies against texts that cannot
		// change before this transaction ends, so a vector of an old text never replaces one
		// of a new text that another worker saved meanwhile.
		// A paper row another session holds locked (a transaction left open) is waited for
		// RowLockTimeout at most, as a worker's save waits: the caller says what it waits for.
		// One round trip (a statement without arguments goes as a simple query).
		if _, err := tx.Exec(ctx, `SET LOCAL lock_timeout = `+strconv.FormatInt(s.rowLockTimeout.Milliseconds(), 10)+`;
				SELECT FROM papers WHERE id IN (SELECT paper_id FROM embeddings_load) ORDER BY id FOR SHARE;
				SET LOCAL lock_timeout = DEFAULT`); err != nil {
			if err := s.rowLockTimedOut(err); errors.Is(err, paper.ErrLocked) {
				return err
			}
			return fmt.Errorf("lock papers: %w", err)
		}
		// One vector a paper: the last of its current text (or given without a text), as
		// SaveEmbeddings keeps the current text's of two; the last one only when none is.
		// The first of two texts was the current one, and the stale one after it took its
		// place and was skipped, the paper left without the vector the file had.
		rows, err := tx.Query(ctx, `
			WITH input AS (
				SELECT DISTINCT ON (l.paper_id) l.* FROM embeddings_load l LEFT JOIN papers p ON p.id = l.paper_id
				ORDER BY l.paper_id, coalesce(l.content_hash = '' OR l.content_hash = p.content_hash, false) DESC, l.n DESC
			), classified AS (
				SELECT i.*, p.content_hash AS current,
					CASE WHEN p.id IS NULL THEN 'unknown'
						WHEN i.content_hash <> '' AND i.content_hash <> p.content_hash THEN 'stale'
						ELSE 'fresh' END AS class
				FROM input i LEFT JOIN papers p ON p.id = i.paper_id
			), saved AS (
				INSERT INTO embeddings AS e (space_id, paper_id, content_hash, embedding, truncated)
				SELECT $1::bigint, paper_id, current, embedding, truncated FROM classified
				WHERE class = 'fresh' ORDER BY paper_id
				ON CONFLICT (space_id, paper_id) DO UPDATE SET
					content_hash = excluded.content_hash,
					embedding = excluded.embedding,
					truncated = excluded.truncated,
					created_at = now()
				WHERE (e.content_hash, e.truncated) IS DISTINCT FROM (excluded.content_hash, excluded.truncated)
					OR e.embedding <> excluded.embedding
			)
			SELECT paper_id, class FROM classified WHERE class <> 'fresh'
			UNION ALL SELECT '', 'fresh:' || count(*) FROM classified WHERE class = 'fresh'`, spaceID)
		if err != nil {
			return fmt.Errorf("insert from staging table: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var id, class string
			if err := rows.Scan(&id, &class); err != nil {
				return fmt.Errorf("read result: %w", err)
			}
			switch {
			case class == "unknown":
				res.Unknown = append(res.Unknown, id)
			case class == "stale":
				res.Stale++
			case strings.HasPrefix(class, "fresh:"):
				res.Loaded, _ = strconv.Atoi(strings.TrimPrefix(class, "fresh:"))
			}
		}
		return rows.Err()
	})
	if errors.Is(err, paper.ErrSpaceDropped) { // the space's row is gone: nothing else returns it
		s.uncacheSpace(spaceID)
		return LoadResult{}, fmt.Errorf("load %s: embedding space %d (%s) was dropped (`paperpipe spaces drop`): %w: %w",
			countOf(len(embs), "embedding", "embeddings"), spaceID, sp.Name(), paper.ErrSpaceDropped, paper.ErrNotFound)
	}
	if errors.Is(err, paper.ErrLocked) {
		var ids []string
		seen := make(map[string]bool, len(embs))
		for _, e := range embs {
			if !seen[e.PaperID] {
				seen[e.PaperID] = true
				ids = append(ids, e.PaperID)
			}
		}
		err = s.lockedError(ctx, ids, err)
	}
	if err != nil {
		return LoadResult{}, fmt.Errorf("load %s into space %s: %w", countOf(len(embs), "embedding", "embeddings"), sp.Name(), err)
	}
	return res, nil
}

// The batch job statuses (see migration 00003_archive.sql).
const (
	BatchPreparing = "preparing" // items recorded; input not uploaded or batch not created yet
	BatchSubmitted = "submitted" // the OpenAI batch exists
	BatchDone      = "done"      // results stored
	BatchFailed    = "failed"    // the batch failed, expired or was cancelled; results that came are stored
)

// BatchJob is one OpenAI Batch API job, as recorded in batch_jobs.
type BatchJob struct {
	ID int64 `json:"id"`
	// OpenAIID is the OpenAI batch id; "" until the batch is created.
	OpenAIID string `json:"openai_batch_id,omitempty"`
	// Kind is paper.KindChat (TL;DRs) or paper.KindEmbedding.
	Kind string `json:"kind"`
	// Target is the work key the job belongs to (see BatchTarget).
	Target        string `json:"target"`
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version,omitempty"`
	SpaceID       int64  `json:"space_id,omitempty"`
	InputFileID   string `json:"input_file_id,omitempty"`
	OutputFileID  string `json:"output_file_id,omitempty"`
	ErrorFileID   string `json:"error_file_id,omitempty"`
	// Status is BatchPreparing, BatchSubmitted, BatchDone or BatchFailed; OpenAIStatus the
	// batch's own status as last seen (validating, in_progress, completed …).
	Status       string    `json:"status"`
	OpenAIStatus string    `json:"openai_status,omitempty"`
	Total        int       `json:"total"`
	Completed    int       `json:"completed"`
	Failed       int       `json:"failed"`
	Stored       int       `json:"stored"`
	CreatedAt    time.Time `json:"created_at"`
	UpdatedAt    time.Time `json:"updated_at"`
}

// Open reports whether the job is still open: preparing or submitted (openJobStatuses).
func (j BatchJob) Open() bool { return j.Status == BatchPreparing || j.Status == BatchSubmitted }

// BatchItem is one paper of a batch job.
type BatchItem struct {
	PaperID     string
	ContentHash string
	Truncated   bool
}

// BatchTarget returns the work key of batch jobs: "chat:<model>:<prompt version>" for
// TL;DRs, "embedding:<space id>" for embeddings.
func BatchTarget(kind, model, promptVersion string, spaceID int64) string {
	if kind == paper.KindEmbedding {
		return "embedding:" + itoa(spaceID)
	}
	return "chat:" + model + ":" + promptVersion
}

const batchJobColumns = `id, coalesce(openai_batch_id, ''), kind, target, model, prompt_version, coalesce(space_id, 0),
	coalesce(input_file_id, ''), coalesce(output_file_id, ''), coalesce(error_file_id, ''), status, openai_status,
	total, completed, failed, stored, created_at, updated_at`

func scanBatchJob(r pgx.CollectableRow) (BatchJob, error) {
	var j BatchJob
	err := r.Scan(&j.ID, &j.OpenAIID, &j.Kind, &j.Target, &j.Model, &j.PromptVersion, &j.SpaceID,
		&j.InputFileID, &j.OutputFileID, &j.ErrorFileID, &j.Status, &j.OpenAIStatus,
		&j.Total, &j.Completed, &j.Failed, &j.Stored, &j.CreatedAt, &j.UpdatedAt)
	return j, err
}

// UpdateBatchJob saves a job's OpenAI ids, statuses and counts (Total among them: the requests
// uploaded, fewer than the papers claimed when some changed meanwhile). A job that is done or
// failed is not changed any more.
func (s *Store) UpdateBatchJob(ctx context.Context, j BatchJob) error {
	return unavailable(ctx, updateBatchJob(ctx, s.pool, j))
}

func updateBatchJob(ctx context.Context, db querier, j BatchJob) error {
	tag, err := db.Exec(ctx, `UPDATE batch_jobs SET
			openai_batch_id = NULLIF($2, ''), input_file_id = NULLIF($3, ''), output_file_id = NULLIF($4, ''),
			error_file_id = NULLIF($5, ''), status = $6, openai_status = $7, completed = $8, failed = $9,
			stored = $10, total = $11, updated_at = now()
		WHERE id = $1 AND status IN `+openJobStatuses,
		j.ID, j.OpenAIID, j.InputFileID, j.OutputFileID, j.ErrorFileID, j.Status, j.OpenAIStatus,
		j.Completed, j.Failed, j.Stored, j.Total)
	if err != nil {
		return fmt.Errorf("update batch job %d: %w", j.ID, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("update batch job %d: no open job with this id: %w", j.ID, paper.ErrNotFound)
	}
	return nil
}

// RecordBatchUpload saves job j as UpdateBatchJob does, once its input file is uploaded, and
// removes from it, in the same transaction, the papers leftOut of the upload (their text
// changed after the job was recorded): the job's batch does not hold them, so the job must not
// hold their outputs, not even when their text goes back to what it recorded.
func (s *Store) RecordBatchUpload(ctx context.Context, j BatchJob, leftOut []string) (err error) {
	defer func() { err = unavailable(ctx, err) }()
	return pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := updateBatchJob(ctx, tx, j); err != nil {
			return err
		}
		if len(leftOut) == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM batch_items WHERE job_id = $1 AND paper_id = ANY($2)`, j.ID, leftOut); err != nil {
			return fmt.Errorf("batch job %d: remove the papers left out of its upload: %w", j.ID, err)
		}
		return nil
	})
}

// FinishBatchJob closes a job (status BatchDone or BatchFailed, with its final counts) and
// records its API usage, in one transaction, so a job's usage is counted exactly once however
// often the collection of its results is retried. A job that is already closed is left alone
// and its usage not recorded again. The job's papers (batch_items) go with its close: they
// only kept them out of other work while it was open, and a row per paper per output of every
// `reprocess --batch-api` run would otherwise stay for good (the job's row, with its counts,
// stays).
func (s *Store) FinishBatchJob(ctx context.Context, j BatchJob, usage []paper.Usage) error {
	if j.Status != BatchDone && j.Status != BatchFailed {
		return fmt.Errorf("finish batch job %d: status %q: %w", j.ID, j.Status, paper.ErrInvalid)
	}
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE batch_jobs SET output_file_id = NULLIF($2, ''), error_file_id = NULLIF($3, ''),
				status = $4, openai_status = $5, completed = $6, failed = $7, stored = $8, updated_at = now()
			WHERE id = $1 AND status IN `+openJobStatuses,
			j.ID, j.OutputFileID, j.ErrorFileID, j.Status, j.OpenAIStatus, j.Completed, j.Failed, j.Stored)
		if err != nil {
			return fmt.Errorf("close: %w", err)
		}
		if tag.RowsAffected() == 0 {
			return nil
		}
		if _, err := tx.Exec(ctx, `DELETE FROM batch_items WHERE job_id = $1`, j.ID); err != nil {
			return fmt.Errorf("remove its papers: %w", err)
		}
		return recordUsage(ctx, tx, usage)
	})
	if err != nil {
		return unavailable(ctx, fmt.Errorf("finish batch job %d: %w", j.ID, err))
	}
	return nil
}

// BatchJobs lists batch jobs: when target is not "", the open ones of target, oldest first (the
// order a runner resumes them in); otherwise every job, open or not, newest first.
func (s *Store) BatchJobs(ctx context.Context, target string) ([]BatchJob, error) {
	q := `SELECT ` + batchJobColumns + ` FROM batch_jobs ORDER BY id DESC`
	args := []any{}
	if target != "" {
		q = `SELECT ` + batchJobColumns + ` FROM batch_jobs WHERE target = $1 AND status IN ` + openJobStatuses + ` ORDER BY id`
		args = append(args, target)
	}
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, unavailable(ctx, fmt.Errorf("list batch jobs: %w", err))
	}
	jobs, err := pgx.CollectRows(rows, scanBatchJob)
	if err != nil {
		return nil, unavailable(ctx, fmt.Errorf("list batch jobs: %w", err))
	}
	return jobs, nil
}

// BatchJobItem is a paper of a batch job with its stored text.
type BatchJobItem struct {
	BatchItem
	// Abstract is the paper as stored now; its ContentHash may differ from the item's when
	// the paper changed after the job was created.
	Abstract paper.Abstract
}

// BatchJobItems calls fn with the papers of job id in pages of at most pageSize (defaults to
// 1000), in paper id order; papers deleted since are left out.
func (s *Store) BatchJobItems(ctx context.Context, id int64, pageSize int, fn func([]BatchJobItem) error) error {
	if pageSize <= 0 {
		pageSize = 1000
	}
	last := ""
	for {
		rows, err := s.pool.Query(ctx, `SELECT bi.paper_id, bi.content_hash, bi.truncated, p.title, p.abstract
			FROM batch_items bi JOIN papers p ON p.id = bi.paper_id
			WHERE bi.job_id = $1 AND bi.paper_id > $2 ORDER BY bi.paper_id LIMIT $3`, id, last, pageSize)
		if err != nil {
			return unavailable(ctx, fmt.Errorf("read items of batch job %d: %w", id, err))
		}
		page, err := pgx.CollectRows(rows, scanBatchJobItem)
		if err != nil {
			return unavailable(ctx, fmt.Errorf("read items of batch job %d: %w", id, err))
		}
		if len(page) == 0 {
			return nil
		}
		if err := fn(page); err != nil {
			return err
		}
		if len(page) < pageSize {
			return nil
		}
		last = page[len(page)-1].PaperID
	}
}

// BatchItemsOf returns the items of job id for the given papers, with the papers' stored
// text, by paper id; papers that are not in the job (or no longer exist) are absent.
func (s *Store) BatchItemsOf(ctx context.Context, id int64, paperIDs []string) (_ map[string]BatchJobItem, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rows, err := s.pool.Query(ctx, `SELECT bi.paper_id, bi.content_hash, bi.truncated, p.title, p.abstract
		FROM batch_items bi JOIN papers p ON p.id = bi.paper_id
		WHERE bi.job_id = $1 AND bi.paper_id = ANY($2)`, id, paperIDs)
	if err != nil {
		return nil, fmt.Errorf("read items of batch job %d: %w", id, err)
	}
	items, err := pgx.CollectRows(rows, scanBatchJobItem)
	if err != nil {
		return nil, fmt.Errorf("read items of batch job %d: %w", id, err)
	}
	out := make(map[string]BatchJobItem, len(items))
	for _, it := range items {
		out[it.PaperID] = it
	}
	return out, nil
}

func scanBatchJobItem(r pgx.CollectableRow) (BatchJobItem, error) {
	var it BatchJobItem
	err := r.Scan(&it.PaperID, &it.ContentHash, &it.Truncated, &it.Abstract.Title, &it.Abstract.Abstract)
	it.Abstract.ID = it.PaperID
	return it, err
}

// ErrRunInProgress means another process holds a re-processing run's lock.
var ErrRunInProgress = errors.New("another run writing the same outputs is in progress")

// runLockSQL is the advisory lock key of LockRun's key $1, per schema.
const runLockSQL = "hashtextextended('paperpipe.run.' || current_schema() || '.' || $1, 0)"

// spaceRunFree reports whether no run (LockRun of SpaceRunKey(id)) is filling space id, and
// then holds that run lock to the end of q's transaction (on the pool, it is released at once),
// so that no run starts filling the space meanwhile.
func spaceRunFree(ctx context.Context, q querier, id int64) (bool, error) {
	var free bool
	if err := q.QueryRow(ctx, "SELECT pg_try_advisory_xact_lock("+runLockSQL+")", SpaceRunKey(id)).Scan(&free); err != nil {
		return false, fmt.Errorf("look up runs filling the space: %w", err)
	}
	return free, nil
}

// SpaceFilling reports whether a run (a `paperpipe reprocess` or `fit`, in any process) is
// filling space id now: it holds the LockRun of SpaceRunKey(id).
func (s *Store) SpaceFilling(ctx context.Context, id int64) (bool, error) {
	free, err := spaceRunFree(ctx, s.pool, id)
	if err != nil {
		return false, fmt.Errorf("embedding space %d: %w", id, unavailable(ctx, err))
	}
	return !free, nil
}

// SpaceRunKey is the LockRun key of a run writing vectors into space id: DropSpace refuses the
// space while a run holds it.
func SpaceRunKey(id int64) string { return "space:" + itoa(id) }

// LockRun takes a session advisory lock named by key (an output a re-processing run writes) on
// a connection of its own, so that two runs writing it (in one schema) never work side by side. It returns an error
// wrapping ErrRunInProgress when another session holds the lock, and otherwise a function that
// releases it (the lock also ends with the connection). HoldRun also tells when the lock is lost.
func (s *Store) LockRun(ctx context.Context, key string) (unlock func(), err error) {
	l, err := s.HoldRun(ctx, key)
	if err != nil {
		return nil, err
	}
	return l.Unlock, nil
}

// ErrLockLost means a run's lock (HoldRun) was lost: the database ended the session that held
// it (its client cut off for longer than the connection's TCP keepalive allows, a restart, a
// pg_terminate_backend), and another session holds it now.
var ErrLockLost = errors.New("lost its lock: the database ended the session that held it, and another run holds it now")

// runLockCheckInterval is how often a RunLock asks its session whether it still lives, and
// runLockCheckTimeout how long it waits for the answer: a connection cut off answers nothing,
// and the server ends its session (and so frees the lock) about a minute after (KeepaliveIdle
// and the probes after it).
var (
	runLockCheckInterval = 10 * time.Second
	runLockCheckTimeout  = 15 * time.Second
)

// RunLock is a re-processing run's lock (HoldRun). Its methods are safe for concurrent use.
type RunLock struct {
	key  string
	pool *pgxpool.Pool
	conn *pgxpool.Conn // nil while the lock's session is gone and the lock not taken again
	// sess is the session that last held the lock: given up (conn nil), it may still hold it
	// on the server (a connection gone silent), and is ended before the lock is taken again.
	sess   lockSession
	ctx    context.Context
	cancel context.CancelCauseFunc
	stop   chan struct{}
	done   chan struct{}
	mu     sync.Mutex // conn and lost: one statement at a time
	lost   error
	once   sync.Once
}

// HoldRun takes the lock LockRun takes, and watches its session every 10 s. A session that is
// gone or does not answer within 15 s (a restart, the holder cut off) is given up (and ended
// on the server when it still holds the lock there), and the lock taken again on a new one —
// as soon as the database can be reached — unless another session has taken it meanwhile:
// then the context HoldRun returns, derived from ctx, ends with a
// cause wrapping ErrLockLost, so that the run stops rather than work beside another one.
func (s *Store) HoldRun(ctx context.Context, key string) (*RunLock, error) {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, fmt.Errorf("lock run %s: %w", key, err)
	}
	ok, sess, err := tryRunLock(ctx, conn, key)
	if err != nil {
		discard(conn) // whether it was taken is unknown: closing the connection ends it either way
		return nil, fmt.Errorf("lock run %s: %w", key, err)
	}
	if !ok {
		conn.Release()
		return nil, fmt.Errorf("%s: %w", key, ErrRunInProgress)
	}
	l := &RunLock{key: key, pool: s.pool, conn: conn, sess: sess, stop: make(chan struct{}), done: make(chan struct{})}
	l.ctx, l.cancel = context.WithCancelCause(ctx)
	go l.watch()
	return l, nil
}

// lockSession names a server session: its pid and its start, since a pid is reused.
type lockSession struct {
	pid   int32
	start time.Time
}

// tryRunLock tries the lock of key on conn, and returns whether it took it and conn's session.
func tryRunLock(ctx context.Context, conn *pgxpool.Conn, key string) (bool, lockSession, error) {
	var ok *bool
	var sess lockSession
	err := conn.QueryRow(ctx, "SELECT "+trySessionLockSQL(runLockSQL)+`, pg_backend_pid(),
		(SELECT backend_start FROM pg_stat_activity WHERE pid = pg_backend_pid())`, key).Scan(&ok, &sess.pid, &sess.start)
	if err != nil {
		return false, sess, err
	}
	taken, err := sessionLockTaken(ok)
	return taken, sess, err
}

// endFormerSession ends sess, a session of the lock's that was given up, when it still holds
// the lock of key (its connection went silent, but the server has not ended it yet): held
// reports whether it held it, ended whether it is gone now (the lock is then free to be taken
// again).
func endFormerSession(ctx context.Context, conn *pgxpool.Conn, key string, sess lockSession) (held, ended bool, err error) {
	if sess.pid == 0 {
		return false, false, nil
	}
	err = conn.QueryRow(ctx, `SELECT count(*) > 0, coalesce(bool_or(pg_terminate_backend(a.pid, 5000)), false)
		FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
		WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
			AND ((l.classid::int8 << 32) | l.objid::int8) = `+runLockSQL+` AND a.pid = $2 AND a.backend_start = $3`,
		key, sess.pid, sess.start).Scan(&held, &ended)
	return held, ended, err
}

// Context ends when the lock is lost (its cause wraps ErrLockLost) or the context HoldRun was
// given ends.
func (l *RunLock) Context() context.Context { return l.ctx }

func (l *RunLock) watch() {
	defer close(l.done)
	t := time.NewTicker(runLockCheckInterval)
	defer t.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-l.ctx.Done():
			return
		case <-t.C:
			if errors.Is(l.Check(), ErrLockLost) {
				return
			}
		}
	}
}

// Check asks the lock's session whether it still holds the lock and, when that session is gone,
// takes the lock again on a new one. It returns nil when the lock is held, an error wrapping
// ErrLockLost when another session holds it (then and from then on: the lock's Context ends),
// and another error when the database cannot be reached to tell (the next Check tries again).
func (l *RunLock) Check() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.lost != nil {
		return l.lost
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(l.ctx), runLockCheckTimeout)
	defer cancel()
	var why error
	if l.conn != nil {
		var held bool
		var pid int32
		err := l.conn.QueryRow(ctx, `SELECT `+sessionHoldsLockSQL(runLockSQL)+`, pg_backend_pid()`, l.key).Scan(&held, &pid)
		if err == nil && pid != l.sess.pid {
			// The connection that took the lock answers from another session: a pooler hands
			// its statements to whichever server session is free, and the lock's session to
			// other clients. Nothing is held for this run (and ending that session would end
			// another client's work).
			l.lost = fmt.Errorf("run %s %w: its connection took it on database session %d and now reaches session %d: %w",
				l.key, ErrLockLost, l.sess.pid, pid, ErrSessionShared)
			l.cancel(l.lost)
			return l.lost
		}
		if err == nil && held {
			return nil
		}
		why = err
		if err == nil {
			why = errors.New("its session no longer holds it")
		}
		discard(l.conn) // gone, or no use: closed, its session ends on the server too
		l.conn = nil
	}
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("run %s: cannot tell whether its lock is held: %w", l.key, errors.Join(why, err))
	}
	ok, sess, err := tryRunLock(ctx, conn, l.key)
	if err == nil && !ok {
		// Held: by the session given up, when its connection went silent but the server has
		// not ended it (no other run can have it then), which is ended and the lock taken again.
		var held, ended bool
		held, ended, err = endFormerSession(ctx, conn, l.key, l.sess)
		switch {
		case err == nil && ended:
			ok, sess, err = tryRunLock(ctx, conn, l.key)
		case err == nil && held:
			err = fmt.Errorf("its former session (pid %d) still holds it and was not ended", l.sess.pid)
		}
	}
	if err != nil {
		discard(conn)
		return fmt.Errorf("run %s: cannot tell whether its lock is held: %w", l.key, errors.Join(why, err))
	}
	if ok {
		l.conn, l.sess = conn, sess // the lock again, on a session of its own
		return nil
	}
	conn.Release()
	if why == nil {
		why = errors.New("its session was gone")
	}
	l.lost = fmt.Errorf("run %s %w (%v)", l.key, ErrLockLost, why)
	l.cancel(l.lost)
	return l.lost
}

// Unlock releases the lock (a lost one: nothing) and stops watching it. It is safe to call
// more than once.
func (l *RunLock) Unlock() {
	l.once.Do(func() {
		close(l.stop)
		<-l.done
		l.mu.Lock()
		defer l.mu.Unlock()
		defer l.cancel(nil)
		if l.conn == nil {
			return
		}
		if _, err := l.conn.Exec(context.WithoutCancel(l.ctx), "SELECT pg_advisory_unlock("+runLockSQL+")", l.key); err != nil {
			discard(l.conn) // a pooled connection must never keep the lock
			return
		}
		l.conn.Release()
		l.conn = nil
	})
}
