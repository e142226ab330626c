package store

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/pgvector/pgvector-go"
	"golang.org/x/text/unicode/norm"

	"github.com/paperpipe/paperpipe/paper"
)

// recordSQL selects papers as paper.Record: the latest TL;DR of the current text (any model),
// and whether the active space holds a vector of the current text.
const recordSQL = `SELECT p.id, p.title, p.abstract, p.authors, p.categories, p.published,
	coalesce(p.url, ''), coalesce(p.source, ''), p.content_hash, p.created_at,
	t.model, t.prompt_version, t.tldr, t.validation, t.input_tokens, t.output_tokens,
	em.found IS NOT NULL
FROM papers p
LEFT JOIN LATERAL (SELECT * FROM tldrs t WHERE t.paper_id = p.id AND t.content_hash = p.content_hash
	ORDER BY t.created_at DESC, t.model, t.prompt_version LIMIT 1) t ON true
LEFT JOIN LATERAL (SELECT true AS found FROM embeddings e WHERE e.space_id = (` + activeSpaceCondition + `)
	AND e.paper_id = p.id AND e.content_hash = p.content_hash LIMIT 1) em ON true`

func scanRecord(r pgx.CollectableRow) (paper.Record, error) {
	var (
		rec                           paper.Record
		published                     pgtype.Timestamptz
		model, prompt, tldr, validity *string
		inTok, outTok                 *int
	)
	err := r.Scan(&rec.ID, &rec.Title, &rec.Abstract.Abstract, &rec.Authors, &rec.Categories, &published,
		&rec.URL, &rec.Source, &rec.ContentHash, &rec.CreatedAt,
		&model, &prompt, &tldr, &validity, &inTok, &outTok, &rec.Embedded)
	if err != nil {
		return paper.Record{}, err
	}
	if published.Valid {
		rec.Published = published.Time
	}
	if tldr != nil {
		rec.TLDR = &paper.Summary{
			PaperID: rec.ID, Text: *tldr, Model: *model, PromptVersion: *prompt,
			ContentHash: rec.ContentHash, Validation: *validity,
			Usage: paper.Usage{Model: *model, Kind: paper.KindChat, InputTokens: *inTok, OutputTokens: *outTok},
		}
	}
	return rec, nil
}

// Paper returns the stored paper id with its latest TL;DR of the current text;
// paper.ErrNotFound when there is none. id must be canonical (see Resolve).
func (s *Store) Paper(ctx context.Context, id string) (_ paper.Record, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rows, err := s.pool.Query(ctx, recordSQL+` WHERE p.id = $1`, id)
	if err != nil {
		return paper.Record{}, fmt.Errorf("read paper %s: %w", id, err)
	}
	rec, err := pgx.CollectExactlyOneRow(rows, scanRecord)
	if err != nil {
		return paper.Record{}, notFound(err, "paper %s", id)
	}
	return rec, nil
}

// Summaries returns every stored TL;DR of paper id (every model and prompt version, current or
// stale text), newest first; paper.ErrNotFound when the paper does not exist.
func (s *Store) Summaries(ctx context.Context, id string) (_ []paper.Summary, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rows, err := s.pool.Query(ctx, `SELECT p.id, t.model, t.prompt_version, t.content_hash, t.tldr, t.validation,
			t.input_tokens, t.output_tokens
		FROM papers p LEFT JOIN tldrs t ON t.paper_id = p.id
		WHERE p.id = $1 ORDER BY t.created_at DESC, t.model, t.prompt_version`, id)
	if err != nil {
		return nil, fmt.Errorf("read summaries of %s: %w", id, err)
	}
	var (
		out   []paper.Summary
		found bool
	)
	for rows.Next() {
		found = true
		var (
			pid                              string
			model, prompt, hash, text, valid *string
			inTok, outTok                    *int
		)
		if err := rows.Scan(&pid, &model, &prompt, &hash, &text, &valid, &inTok, &outTok); err != nil {
			rows.Close()
			return nil, fmt.Errorf("read summaries of %s: %w", id, err)
		}
		if model == nil { // the paper has no TL;DR
			continue
		}
		out = append(out, paper.Summary{
			PaperID: pid, Text: *text, Model: *model, PromptVersion: *prompt, ContentHash: *hash, Validation: *valid,
			Usage: paper.Usage{Model: *model, Kind: paper.KindChat, InputTokens: *inTok, OutputTokens: *outTok},
		})
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read summaries of %s: %w", id, err)
	}
	if !found {
		return nil, fmt.Errorf("paper %s: %w", id, paper.ErrNotFound)
	}
	return out, nil
}

// maxCandidates is how many matches an ambiguous Resolve lists.
const maxCandidates = 5

// Resolve turns what a user typed into a paper id. ref is tried first as an id, as given and
// in canonical form (so "2401.01234v2" finds arxiv:2401.01234); an exact id match wins. Otherwise
// ref is a title fragment, matched case-insensitively, with or without accents (unaccent, as
// keyword search folds them: "nystrom" finds "Nyström"), across a soft hyphen or a zero-width
// character (paperpipe_visible: "Cooperation" finds "Co\u00adoperation", as a search does) and
// literally (% and _ are not wildcards): one match is the answer, and among several a title
// equal to ref wins. The fragment is read in NFC, the form titles are stored in (ingest):
// "nai\u0308ve", as macOS and PDF text give it, finds "naïve" as a search does. No match is
// paper.ErrNotFound; several are an error wrapping paper.ErrAmbiguous that lists up to five
// candidates as "id  title" lines.
func (s *Store) Resolve(ctx context.Context, ref string) (_ string, err error) {
	defer func() { err = unavailable(ctx, err) }()
	ref = strings.TrimSpace(ref)
	if ref == "" {
		return "", fmt.Errorf("resolve paper: empty reference: %w", paper.ErrInvalid)
	}
	if err := validText(ref); err != nil {
		return "", fmt.Errorf("resolve paper: %w", err)
	}
	ids := []string{ref}
	if c, err := paper.CanonicalID(ref); err == nil && c != ref {
		ids = append(ids, c)
	}
	var id string
	err = s.pool.QueryRow(ctx, `SELECT id FROM papers WHERE id = ANY($1::text[])
		ORDER BY array_position($1::text[], id) LIMIT 1`, ids).Scan(&id)
	if err == nil {
		return id, nil
	}
	if !errors.Is(err, pgx.ErrNoRows) {
		return "", fmt.Errorf("resolve paper %q: %w", ref, err)
	}

	frag := norm.NFC.String(ref)
	rows, err := s.pool.Query(ctx, `SELECT id, title, exact, count(*) OVER ()
		FROM papers, LATERAL (SELECT CASE WHEN title ~ '[^[:ascii:]]' THEN paperpipe_unaccent(title) ELSE title END AS folded) f,
			LATERAL (SELECT lower(f.folded) = lower(paperpipe_unaccent($1)) AS exact) e
		WHERE f.folded ILIKE '%' || `+likeLiteral(`paperpipe_unaccent($1)`)+` || '%' ESCAPE '\'
		ORDER BY exact DESC, created_at DESC, id LIMIT $2`,
		frag, maxCandidates)
	if err != nil {
		return "", fmt.Errorf("resolve paper %q: %w", ref, err)
	}
	type match struct {
		id, title string
		exact     bool
		total     int64
	}
	matches, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (match, error) {
		var m match
		err := r.Scan(&m.id, &m.title, &m.exact, &m.total)
		return m, err
	})
	if err != nil {
		return "", fmt.Errorf("resolve paper %q: %w", ref, err)
	}
	switch {
	case len(matches) == 0:
		return "", fmt.Errorf("no paper has the id or a title containing %q: %w", ref, paper.ErrNotFound)
	case len(matches) == 1:
		return matches[0].id, nil
	case matches[0].exact && !matches[1].exact:
		return matches[0].id, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "%d papers have a title containing %q; use an id or a longer fragment:", matches[0].total, ref)
	for _, m := range matches {
		fmt.Fprintf(&b, "\n  %s  %s", m.id, m.title)
	}
	if rest := matches[0].total - int64(len(matches)); rest > 0 {
		fmt.Fprintf(&b, "\n  … and %d more", rest)
	}
	return "", fmt.Errorf("%s: %w", b.String(), paper.ErrAmbiguous)
}

// likeLiteral is the SQL of text (SQL) made to match literally in a LIKE pattern with ESCAPE
// '\'. It escapes the folded fragment, not the fragment before folding: unaccent folds the
// fullwidth ％ ＿ ＼ to % _ \, which escaped before would be wildcards and an escape.
func likeLiteral(text string) string {
	return `replace(replace(replace(` + text + `, '\', '\\'), '%', '\%'), '_', '\_')`
}

// Related returns the k papers nearest to paper id in space spaceID by cosine similarity,
// nearest first, excluding the paper itself; paper.ErrNotFound when the space holds no vector
// of the paper. k must be 1 to 1000.
func (s *Store) Related(ctx context.Context, spaceID int64, id string, k int) (_ []paper.Hit, err error) {
	defer func() { err = unavailable(ctx, err) }()
	sp, vec, err := s.relatedInput(ctx, spaceID, id, k)
	if err != nil {
		return nil, fmt.Errorf("related to %s: %w", id, err)
	}
	hits, err := s.knn(ctx, sp, vec, id, k)
	if err != nil {
		return nil, fmt.Errorf("related to %s in space %s: %w", id, sp.Name(), err)
	}
	return hits, nil
}

// EmbeddedIn returns the spaces that hold a vector of paper id's current text, by id (none
// when the paper is unknown).
func (s *Store) EmbeddedIn(ctx context.Context, id string) (_ []paper.Space, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rows, err := s.pool.Query(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces s
		WHERE EXISTS (SELECT 1 FROM embeddings e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
			WHERE e.space_id = s.id AND e.paper_id = $1)
		ORDER BY s.id`, id)
	if err != nil {
		return nil, fmt.Errorf("spaces of %s: %w", id, err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (paper.Space, error) {
		sp, err := scanSpace(r)
		return sp.Space, err
	})
	if err != nil {
		return nil, fmt.Errorf("spaces of %s: %w", id, err)
	}
	return out, nil
}

// Search returns the k papers nearest to vec in space spaceID by cosine similarity, nearest
// first. A vector whose length is not the space's dimension is an error wrapping
// paper.ErrSpaceMismatch. k must be 1 to 1000.
func (s *Store) Search(ctx context.Context, spaceID int64, vec []float32, k int) (_ []paper.Hit, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if err := checkK(k); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	sp, err := s.space(ctx, spaceID)
	if err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	if err := validateEmbedding(paper.Embedding{PaperID: "query", ContentHash: "-", Vector: vec}, sp); err != nil {
		return nil, fmt.Errorf("search: %w", err)
	}
	hits, err := s.knn(ctx, sp, pgvector.NewVector(vec), "", k)
	if err != nil {
		return nil, fmt.Errorf("search space %s: %w", sp.Name(), err)
	}
	return hits, nil
}

// ExplainRelated returns the query plan (EXPLAIN, text format) of the exact statement Related
// runs for paper id, with the same settings, so tests and operators can check that it uses the
// space's HNSW index.
func (s *Store) ExplainRelated(ctx context.Context, spaceID int64, id string, k int) (string, error) {
	sp, vec, err := s.relatedInput(ctx, spaceID, id, k)
	if err != nil {
		return "", fmt.Errorf("explain related to %s: %w", id, err)
	}
	q, ef := knnQuery(sp), s.efFor(sp, k)
	lines, err := searchRows(ctx, s, ef, "EXPLAIN (FORMAT TEXT) "+q.SQL, q.Args(vec, id, k, ef), pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("explain related to %s in space %s: %w", id, sp.Name(), err)
	}
	return strings.Join(lines, "\n"), nil
}

// RelatedVector is Related's first step, alone: paper id's vector in space spaceID, which
// Related then asks the space's statement for; for the benchmarks' sweep, whose related
// questions time both steps as Related does.
func (s *Store) RelatedVector(ctx context.Context, spaceID int64, id string, k int) (_ []float32, err error) {
	defer func() { err = unavailable(ctx, err) }()
	_, vec, err := s.relatedInput(ctx, spaceID, id, k)
	if err != nil {
		return nil, fmt.Errorf("related to %s: %w", id, err)
	}
	return vec.Slice(), nil
}

// relatedInput checks k and returns the space and paper id's vector in it.
func (s *Store) relatedInput(ctx context.Context, spaceID int64, id string, k int) (spaceRow, pgvector.Vector, error) {
	if err := checkK(k); err != nil {
		return spaceRow{}, pgvector.Vector{}, err
	}
	sp, err := s.space(ctx, spaceID)
	if err != nil {
		return spaceRow{}, pgvector.Vector{}, err
	}
	var vec pgvector.Vector
	err = s.pool.QueryRow(ctx, "SELECT embedding FROM embeddings WHERE space_id = $1 AND paper_id = $2", spaceID, id).Scan(&vec)
	if err != nil {
		return spaceRow{}, pgvector.Vector{}, notFound(err, "no vector of paper %s in space %s", id, sp.Name())
	}
	return sp, vec, nil
}

func checkK(k int) error {
	if k < 1 || k > MaxK {
		return fmt.Errorf("k is %d, want 1 to %d: %w", k, MaxK, paper.ErrInvalid)
	}
	return nil
}

// knnStatement is the nearest-neighbour statement the store runs for a space: $1 the query
// vector, $2 a paper id to leave out ("" for none), $3 k, $4 the candidates the index scan
// returns. dist is the exact cosine distance of a row's vector to $1 (e.g. "(embedding::
// vector(768)) <=> $1::vector(768)"); order is what the space's index orders rows by — dist
// itself, with $4 = k, or an approximation of it — the halfvec distance, whose 2k candidates,
// or the Hamming distance of binary codes, whose ef_search candidates, are then re-ranked by
// dist (vectorSQL.candidates). The inner query repeats the index expression and the literal
// space_id predicate, so the planner answers it with an index scan on the space's partial HNSW
// index; the outer query adds titles and TL;DRs (with their models) to the k rows. filter is a further condition on
// the scanned rows of embeddings (" AND ...", "" for none), checked as the index scan returns
// them, so the scan goes on past the rows it drops (see searchOptionsSQL). The expressions must
// be trusted SQL, never user input.
func knnStatement(dist, order string, spaceID int64, filter string) string {
	return `SELECT n.paper_id, p.title, coalesce(t.tldr, ''), coalesce(t.model, ''), 1 - n.dist
FROM (
	SELECT paper_id, dist FROM (
		SELECT paper_id, ` + dist + ` AS dist
		FROM embeddings
		WHERE space_id = ` + itoa(spaceID) + ` AND paper_id <> $2` + filter + `
		ORDER BY ` + order + `
		LIMIT $4
	) c
	ORDER BY dist, paper_id
	LIMIT $3
) n
JOIN papers p ON p.id = n.paper_id
` + latestTLDRJoin + `
ORDER BY n.dist, n.paper_id`
}

// KNNQuery is the store's nearest-neighbour statement for one space and index kind, with its
// arguments; it is exported for the benchmarks, which sweep hnsw.ef_search over the store's
// own statement (RunKNN).
type KNNQuery struct {
	// SQL is the statement (knnStatement).
	SQL string
	v   vectorSQL
}

// NewKNNQuery returns the statement Related and Search run for space spaceID of dims
// dimensions indexed as kind.
func NewKNNQuery(spaceID int64, dims int, kind IndexKind) KNNQuery {
	return knnQuery(spaceRow{Space: paper.Space{ID: spaceID, Dimensions: dims}, index: kind})
}

// knnQuery is the nearest-neighbour statement of space sp.
func knnQuery(sp spaceRow) KNNQuery {
	v := vectorSQLFor(sp, "$1")
	return KNNQuery{SQL: knnStatement(v.dist, v.order, sp.ID, ""), v: v}
}

// Args returns the statement's arguments for k results nearest to vec, leaving out paper
// exclude ("" for none), when hnsw.ef_search is ef.
func (q KNNQuery) Args(vec pgvector.Vector, exclude string, k, ef int) []any {
	return []any{vec, exclude, k, q.v.candidates(k, ef)}
}

// knn runs space sp's nearest-neighbour statement at the store's ef_search.
func (s *Store) knn(ctx context.Context, sp spaceRow, vec pgvector.Vector, exclude string, k int) ([]paper.Hit, error) {
	return s.runKNN(ctx, knnQuery(sp), vec, exclude, k, s.efFor(sp, k))
}

// RunKNN runs q for the k papers nearest to vec, leaving out paper exclude ("" for none), with
// hnsw.ef_search ef, in the transaction Related and Search use: for the benchmarks' sweep.
func (s *Store) RunKNN(ctx context.Context, q KNNQuery, vec []float32, exclude string, k, ef int) ([]paper.Hit, error) {
	return s.runKNN(ctx, q, pgvector.NewVector(vec), exclude, k, ef)
}

func (s *Store) runKNN(ctx context.Context, q KNNQuery, vec pgvector.Vector, exclude string, k, ef int) ([]paper.Hit, error) {
	return searchRows(ctx, s, ef, q.SQL, q.Args(vec, exclude, k, ef), scanHit)
}

// efFor is the hnsw.ef_search of a query for k results in space sp: the configured one, else
// the default of the space's index kind, and never below k (the index scan returns at most
// ef_search rows).
func (s *Store) efFor(sp spaceRow, k int) int {
	ef := s.ef
	if ef == 0 {
		ef = DefaultEFSearch(sp.index)
	}
	return max(ef, k)
}

// DefaultEFSearch is the hnsw.ef_search queries of a space with index kind run with unless
// Config.EFSearch says otherwise: 160 on every kind. At 1M × 768 (bench/results/
// SUMMARY-full-knn-1M-related.md) related papers reached recall@10 0.958 on IndexHNSWHalfvec and
// 0.952 on IndexHNSW at 160 (0.926 and 0.931 at 100) with p99 9.8 ms on 2 cores; IndexHNSWBinary,
// whose candidates are chosen by 1-bit codes and re-ranked exactly, 0.94–0.98 over six builds. At
// 100k the extra candidates cost well under a millisecond. The kind is kept as a parameter: the
// kinds' needs differed before, and may again.
func DefaultEFSearch(IndexKind) int { return 160 }

// searchOptionsSQL sets, for the rest of the transaction, what every vector query runs with:
// hnsw.ef_search ($1); iterative index scans in strict order (pgvector 0.8), so that a scan
// whose ef_search rows lose one to a filter — Related leaves out the paper itself, and when k
// reaches ef_search that paper is one of them — goes on walking the graph for more instead of
// returning fewer than asked (hnsw.max_scan_tuples, 20,000 by default, bounds the walk); custom
// plans (a generic plan of a prepared statement would not know the LIMITs, and could walk away
// from the space's partial index); no parallel workers (the windows of tieredMatches must run
// in order, which a parallel append does not keep); and read-only.
const searchOptionsSQL = `SELECT set_config('hnsw.ef_search', $1, true),
	set_config('hnsw.iterative_scan', 'strict_order', true),
	set_config('plan_cache_mode', 'force_custom_plan', true),
	set_config('max_parallel_workers_per_gather', '0', true),
	set_config('transaction_read_only', 'on', true)`

// searchRows runs one vector query with hnsw.ef_search ef (see searchOptionsSQL) and returns its
// rows, in one round trip: the options and the statement go to PostgreSQL as one pipeline,
// which it runs as one implicit transaction, so the options hold for the statement and end
// with it. (BEGIN, set_config, the query and COMMIT one after another cost four round trips,
// measured 0.22 ms here against 0.08 ms for the pipeline.)
func searchRows[T any](ctx context.Context, s *Store, ef int, sql string, args []any, scan pgx.RowToFunc[T]) ([]T, error) {
	b := &pgx.Batch{}
	b.Queue(searchOptionsSQL, strconv.Itoa(ef))
	b.Queue(sql, args...)
	br := s.pool.SendBatch(ctx, b)
	defer br.Close()
	if _, err := br.Exec(); err != nil {
		return nil, fmt.Errorf("set search options: %w", err)
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	out, err := pgx.CollectRows(rows, scan)
	if err != nil {
		return nil, err
	}
	return out, br.Close()
}

// Cursor marks a position in List's order (newest first); it is opaque to callers, who pass on
// the string from Encode.
type Cursor struct {
	createdAt time.Time
	id        string
}

// Encode returns the cursor as a URL-safe string.
func (c *Cursor) Encode() string {
	return base64.RawURLEncoding.EncodeToString([]byte(strconv.FormatInt(c.createdAt.UnixMicro(), 10) + "|" + c.id))
}

// maxCursorMicros is the last microsecond of the year 9999 since the Unix epoch.
const maxCursorMicros = 253402300799999999

// DecodeCursor parses a string made by Cursor.Encode; anything else is an error wrapping
// paper.ErrInvalid.
func DecodeCursor(s string) (*Cursor, error) {
	b, err := base64.RawURLEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("decode cursor: %w", paper.ErrInvalid)
	}
	ts, id, ok := strings.Cut(string(b), "|")
	// The id goes to PostgreSQL as text, which holds neither invalid UTF-8 nor NUL: a cursor
	// altered by hand must be refused here, not fail there as a server error.
	if !ok || id == "" || !utf8.ValidString(id) || strings.ContainsRune(id, 0) {
		return nil, fmt.Errorf("decode cursor: %w", paper.ErrInvalid)
	}
	us, err := strconv.ParseInt(ts, 10, 64)
	// A paper's created_at is a time this store wrote: from 1970 to the year 9999 covers every
	// cursor Encode made, and keeps an altered one within what PostgreSQL holds.
	if err != nil || us < 0 || us > maxCursorMicros {
		return nil, fmt.Errorf("decode cursor: %w", paper.ErrInvalid)
	}
	return &Cursor{createdAt: time.UnixMicro(us).UTC(), id: id}, nil
}

// MaxListLimit bounds one page of List and ListFiltered, and the categories of Categories.
const MaxListLimit = 1000

// List returns up to limit papers, newest first (by creation, then id), after the position
// before (nil for the first page), and the cursor of the next page, nil on the last one.
// limit must be 1 to 1000.
func (s *Store) List(ctx context.Context, limit int, before *Cursor) (_ []paper.Record, _ *Cursor, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if limit < 1 || limit > MaxListLimit {
		return nil, nil, fmt.Errorf("list papers: limit is %d, want 1 to %d: %w", limit, MaxListLimit, paper.ErrInvalid)
	}
	var rows pgx.Rows
	if before == nil {
		rows, err = s.pool.Query(ctx, recordSQL+` ORDER BY p.created_at DESC, p.id DESC LIMIT $1`, limit+1)
	} else {
		rows, err = s.pool.Query(ctx, recordSQL+` WHERE (p.created_at, p.id) < ($2, $3)
			ORDER BY p.created_at DESC, p.id DESC LIMIT $1`, limit+1, before.createdAt, before.id)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("list papers: %w", err)
	}
	recs, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return nil, nil, fmt.Errorf("list papers: %w", err)
	}
	if len(recs) <= limit {
		return recs, nil, nil
	}
	recs = recs[:limit]
	lastRec := recs[limit-1]
	return recs, &Cursor{createdAt: lastRec.CreatedAt, id: lastRec.ID}, nil
}

// Counts is how much of the archive has the outputs of a Work.
type Counts struct {
	Papers int64 `json:"papers"`
	// WithTLDR counts papers with a TL;DR of Work's model and prompt version for their current text.
	WithTLDR int64 `json:"with_tldr"`
	// WithEmbedding counts papers with a vector of their current text in Work's space.
	WithEmbedding int64 `json:"with_embedding"`
	// TLDRsTotal counts every stored TL;DR, of any model, prompt version or text.
	TLDRsTotal int64 `json:"tldrs_total"`
	// TLDRsWithheld counts the papers without a TL;DR of Work's model and prompt version whose
	// TL;DR the API withheld for their current text (RecordWithheld): not asked for again, they
	// are why WithTLDR stays short of Papers.
	TLDRsWithheld int64 `json:"tldrs_withheld"`
}

// countsSQL counts the papers, those with a TL;DR of a model ($1) and prompt version ($2) for
// their current text, those with a vector of it in a space ($3) and in another space ($4: status's
// active space when the configured embedder fills another; 0, no space, otherwise), every
// TL;DR, and the papers without that TL;DR whose TL;DR the API withheld for their current text,
// in one pass over papers: the outer joins match a paper's one TL;DR of the version, one vector
// of each space and one withheld record of the version (the primary keys allow no more), so the
// planner hashes the TL;DRs and vectors once and reads each paper once. Counted with an EXISTS
// each, papers was read three times: its key, then its row (for content_hash) looked up once
// per TL;DR and once per vector, the planner taking each match for rare (the columns are
// correlated) — 2.4M buffer reads at 300,000 papers, 0.33M this way; the other space's
// coverage counted on its own (a join of its vectors to papers) was another pass.
const countsSQL = `SELECT count(*), count(t.paper_id), count(e.paper_id), count(a.paper_id), (SELECT count(*) FROM tldrs),
		count(wh.paper_id) FILTER (WHERE t.paper_id IS NULL)
	FROM papers p
	LEFT JOIN tldrs t ON t.paper_id = p.id AND t.model = $1 AND t.prompt_version = $2 AND t.content_hash = p.content_hash
	LEFT JOIN embeddings e ON e.space_id = $3 AND e.paper_id = p.id AND e.content_hash = p.content_hash
	LEFT JOIN embeddings a ON a.space_id = $4 AND a.paper_id = p.id AND a.content_hash = p.content_hash
	LEFT JOIN withheld_tldrs wh ON wh.paper_id = p.id AND wh.model = $1 AND wh.prompt_version = $2 AND wh.content_hash = p.content_hash`

// Counts counts papers and their outputs for w.
func (s *Store) Counts(ctx context.Context, w Work) (Counts, error) {
	c, _, err := s.CountsWith(ctx, w, 0)
	return c, err
}

// CountsWith is Counts with also the papers that have a vector of their current text in
// another space (status's active space, when the configured embedder fills another), counted
// in the same pass.
func (s *Store) CountsWith(ctx context.Context, w Work, other int64) (Counts, int64, error) {
	var c Counts
	var n int64
	err := s.pool.QueryRow(ctx, countsSQL, w.Model, w.PromptVersion, w.SpaceID, other).
		Scan(&c.Papers, &c.WithTLDR, &c.WithEmbedding, &n, &c.TLDRsTotal, &c.TLDRsWithheld)
	if err != nil {
		return Counts{}, 0, fmt.Errorf("count papers: %w", statementTimedOut(err))
	}
	return c, n, nil
}
