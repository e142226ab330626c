package store

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/paperpipe/paperpipe/paper"
)

// MaxDimensions is the largest embedding dimension a space may have: pgvector 0.8's limit for a
// vector column. With IndexHNSW, spaces of up to 2,000 dimensions get an HNSW index on vector,
// up to 4,000 on halfvec, and larger ones are searched exactly, without an index; with
// IndexHNSWHalfvec, spaces of up to 4,000 dimensions get one on halfvec; IndexHNSWBinary indexes
// any of them.
const MaxDimensions = 16000

// MaxK is the most results a nearest-neighbour query (Related, Search, HybridSearch) returns,
// and the largest sample of CheckRecall: hnsw.ef_search's upper bound, as more results could
// not come from the index.
const MaxK = 1000

const (
	maxVectorIndexDims  = 2000
	maxHalfvecIndexDims = 4000
	indexNamePrefix     = "embeddings_hnsw_s"
	// binaryEfConstruction is the candidate list of an IndexHNSWBinary index's build
	// (pgvector's default is 64). Hamming distances between 1-bit codes are coarse, and the
	// default graph is the weaker for it: on 1M clustered 768-d vectors, recall@10 at
	// ef_search 200 went from 0.940 to 0.980 with 128, and the build (681 s) stayed faster than
	// the vector index's at 64 (866-977 s). See bench/results.
	binaryEfConstruction = 128
	lockSpacesStatement  = "LOCK TABLE embedding_spaces IN SHARE ROW EXCLUSIVE MODE"
	spaceColumns         = "id, model, dimensions, template, active, index_kind"
	activeSpaceCondition = "SELECT id FROM embedding_spaces WHERE active"
)

// SpaceInfo is an embedding space with its coverage, as `paperpipe spaces` shows it.
type SpaceInfo struct {
	paper.Space
	// Embedded counts papers with an embedding in this space made from their current text.
	Embedded int64 `json:"embedded"`
	// Papers counts all papers: the coverage Embedded is measured against.
	Papers int64 `json:"papers"`
	// Index is the kind of the space's index.
	Index IndexKind `json:"index"`
	// IndexName is the space's HNSW index, or "" when it has none queries can use (more than
	// 4,000 dimensions, or not built yet: an index whose concurrent build is running or was
	// interrupted is invalid, and counts as none).
	IndexName string `json:"index_name"`
	// UnfinishedIndex is an index of the space's no query uses, if any: an invalid one whose
	// concurrent build is running (a reindex, a fill's build) or was interrupted (the command
	// killed, or its session ended), named as the space's index, or a reindex's, with "_new"
	// after it, also when built (the reindex interrupted before its swap). No query
	// uses it; it holds the disk its build took and, once past the build's first phase, every
	// write of embeddings updates it. `paperpipe spaces reindex` of the space drops it.
	UnfinishedIndex string    `json:"unfinished_index,omitempty"`
	CreatedAt       time.Time `json:"created_at"`
}

// IndexKind is how a space's vectors are indexed. It is chosen when the space is created
// (Config.VectorIndex), and only Reindex changes it: the space's queries are written for it.
type IndexKind string

const (
	// IndexHNSW is an HNSW index on the vectors themselves, cosine distance (halfvec above
	// 2,000 dimensions; above 4,000 there is no index and queries scan every vector). It was
	// the default before IndexHNSWHalfvec, which finds the same neighbours with half the index.
	IndexHNSW IndexKind = "hnsw"
	// IndexHNSWBinary is an HNSW index on the vectors' binary codes (pgvector's
	// binary_quantize: one bit per dimension, its sign; Hamming distance). A query takes
	// hnsw.ef_search candidates from it and re-ranks them by exact cosine distance, so the
	// order of the results is exact and only their selection is approximate. The index is
	// about 1/10 the size of IndexHNSW's at 768 dimensions and much faster to build and
	// update; recall depends on how well the model's vectors survive 1-bit quantization
	// (bench/results measures it). It indexes spaces of any dimension.
	IndexHNSWBinary IndexKind = "hnsw-binary"
	// IndexHNSWHalfvec, the default, is an HNSW index on half-precision copies of the vectors
	// (halfvec, 16-bit floats; up to 4,000 dimensions, none above), cosine distance. A query
	// takes 2k papers in the order of the half-precision distance and keeps the k nearest by
	// the exact one, which is also the score: the rounding, about 1e-4 of a cosine, then
	// matters only where more than k papers tie within it. The index is half the size of
	// IndexHNSW's (1.95 against 3.9 GB for 1M × 768: half the memory to keep it cached), builds
	// faster, and its recall at a given ef_search is IndexHNSW's within the builds' variance
	// (bench/results).
	IndexHNSWHalfvec IndexKind = "hnsw-halfvec"

	// DefaultIndexKind is the kind of the spaces a store creates unless Config.VectorIndex says
	// otherwise.
	DefaultIndexKind = IndexHNSWHalfvec
)

// IndexKinds lists the index kinds, the default first.
var IndexKinds = []IndexKind{DefaultIndexKind, IndexHNSW, IndexHNSWBinary}

// ParseIndexKind returns the IndexKind named s ("hnsw", "hnsw-halfvec" or "hnsw-binary").
func ParseIndexKind(s string) (IndexKind, error) {
	for _, k := range IndexKinds {
		if string(k) == s {
			return k, nil
		}
	}
	return "", fmt.Errorf("vector index %q: want %s, %s or %s: %w", s, IndexHNSW, IndexHNSWHalfvec, IndexHNSWBinary, paper.ErrInvalid)
}

// spaceRow is a space as the store caches it: its identity, which never changes, and its index
// kind, which only Reindex changes.
type spaceRow struct {
	paper.Space
	index IndexKind
}

// vectorSQL is how one space's vectors appear in SQL: the distance of a row's vector to the
// query vector, the expression an index scan orders rows by, and the index itself.
type vectorSQL struct {
	dist      string // exact cosine distance to the query, e.g. (embedding::vector(768)) <=> $1::vector(768)
	order     string // what the space's index orders by: dist itself, or its halfvec or binary approximation
	rerank    rerank // how many candidates of the index's order a query re-ranks by dist
	indexExpr string // the indexed expression, e.g. (embedding::vector(768))
	opclass   string // e.g. vector_cosine_ops; "" when the space cannot be indexed
	with      string // the index's storage parameters, e.g. " WITH (ef_construction = 128)"
	indexName string
}

// vectorSQLFor returns the SQL fragments of space sp; param is the query vector's placeholder
// ("$1"). The space's id and dimensions come from the database, never from user input.
func vectorSQLFor(sp spaceRow, param string) vectorSQL {
	d := itoa(int64(sp.Dimensions))
	v := vectorSQL{indexName: indexNamePrefix + itoa(sp.ID)}
	vec, query := "(embedding::vector("+d+"))", param+"::vector("+d+")"
	v.dist = vec + " <=> " + query
	v.order = v.dist
	switch {
	case sp.index == IndexHNSWBinary:
		v.indexExpr = "(binary_quantize(embedding)::bit(" + d + "))"
		v.opclass = "bit_hamming_ops"
		v.with = " WITH (ef_construction = " + itoa(binaryEfConstruction) + ")"
		v.order, v.rerank = v.indexExpr+" <~> binary_quantize("+query+")", rerankEF
	case sp.index == IndexHNSW && sp.Dimensions <= maxVectorIndexDims:
		v.indexExpr, v.opclass = vec, "vector_cosine_ops"
	case sp.Dimensions <= maxHalfvecIndexDims:
		v.indexExpr, v.opclass = "(embedding::halfvec("+d+"))", "halfvec_cosine_ops"
		v.order, v.rerank = v.indexExpr+" <=> "+query+"::halfvec("+d+")", rerankTwiceK
	}
	return v
}

// rerank is how many rows of an index scan in the index's order a query re-ranks by the exact
// distance to keep k.
type rerank int

const (
	// The zero rerank: the index orders by the exact distance; the scan returns k rows.
	_ rerank = iota
	// rerankTwiceK: the index orders by the half-precision distance, which differs from the
	// exact one by ~1e-4: 2k rows (at most ef_search, at least k) hold the exact top k unless
	// more than k papers tie within that rounding, so near ties at the k-th place are decided
	// exactly, and exact ties by paper id. On the hashed offline model's 100k vectors, whose
	// neighbours crowd, recall@10 at ef_search 100 went from 0.894 (k rows) to 0.930, mostly
	// by how ties are decided (bench/results).
	rerankTwiceK
	// rerankEF: the index orders by Hamming distances of binary codes; the query re-ranks
	// ef_search candidates.
	rerankEF
)

// candidates is how many rows the index scan of a query for k results returns when
// hnsw.ef_search is ef: k, or the candidates it re-ranks (see rerank).
func (v vectorSQL) candidates(k, ef int) int {
	switch v.rerank {
	case rerankEF:
		return max(k, ef)
	case rerankTwiceK:
		return max(k, min(2*k, ef))
	}
	return k
}

// createIndexSQL is the statement that builds the space's index (a plain CREATE INDEX: a new
// space's, in the transaction that creates it).
func (v vectorSQL) createIndexSQL(spaceID int64) string {
	return v.createIndexAs(v.indexName, spaceID)
}

// createIndexAs is the statement that builds the space's index as "CREATE INDEX " + what.
func (v vectorSQL) createIndexAs(what string, spaceID int64) string {
	return "CREATE INDEX " + what + " ON embeddings USING hnsw (" + v.indexExpr + " " + v.opclass +
		")" + v.with + " WHERE space_id = " + itoa(spaceID)
}

// validateSpace checks what the embedding_spaces table would otherwise refuse, or hold badly:
// text PostgreSQL cannot store (a NUL byte, bytes that are not UTF-8: validText, quoted rather
// than printed) is invalid input, as in a paper, not a failed statement.
func validateSpace(sp paper.Space) error {
	if strings.TrimSpace(sp.Model) == "" {
		return fmt.Errorf("embedding space: empty model: %w", paper.ErrInvalid)
	}
	if err := validText(sp.Model); err != nil {
		return fmt.Errorf("embedding space: model: %w", err)
	}
	if err := validText(sp.Template); err != nil {
		return fmt.Errorf("embedding space of %s: template: %w", sp.Model, err)
	}
	switch {
	case strings.TrimSpace(sp.Template) == "":
		return fmt.Errorf("embedding space %s: empty template: %w", sp.Name(), paper.ErrInvalid)
	case sp.Dimensions < 1 || sp.Dimensions > MaxDimensions:
		return fmt.Errorf("embedding space %s: %d dimensions, want 1 to %d: %w",
			sp.Name(), sp.Dimensions, MaxDimensions, paper.ErrInvalid)
	}
	return nil
}

// EnsureSpace returns the embedding space of sp's model, dimensions and template, creating it
// and its HNSW index when it does not exist yet. When no space is active, the space is
// activated. The result carries the space's ID and whether it is active. sp's ID and Active are
// ignored.
//
// A new space and its index are made in one transaction, so that a failure leaves neither:
// the index is one scan of the table, since no rows belong to the space yet, built with a
// plain CREATE INDEX after another index change in progress (a fill's build, a reindex: see
// lockIndexes) has ended — EnsureSpace waits for it. The build waits for the writes to the
// table in flight (within execLockedDDL's bounds) but not for readers, and holds up writes for
// its one scan. An existing space is returned without waiting for that lock; one that has no
// valid index (EnsureSpaceForLoad made it for a bulk fill) is returned without one, with a
// warning: BuildSpaceIndex or Reindex builds it.
func (s *Store) EnsureSpace(ctx context.Context, sp paper.Space) (paper.Space, error) {
	out, _, err := s.ensureSpace(ctx, sp, true)
	return out, err
}

// EnsureSpaceForLoad is EnsureSpace for a bulk fill: a space it creates gets no HNSW index, so
// that loading it does not update a live index row by row; build the index once the space is
// filled with BuildSpaceIndex. created reports whether the space is new. An existing space is
// returned as it is, with or without its index. Like EnsureSpace, it activates the space only
// when no space is active.
func (s *Store) EnsureSpaceForLoad(ctx context.Context, sp paper.Space) (out paper.Space, created bool, err error) {
	return s.ensureSpace(ctx, sp, false)
}

// IndexSettings are the session settings BuildSpaceIndex builds an index with.
type IndexSettings struct {
	// MaintenanceWorkMem is maintenance_work_mem: an HNSW build that fits in it is much faster.
	// Defaults to the store's Config.IndexMemory, "1GB" unless set.
	MaintenanceWorkMem string
	// ParallelWorkers is max_parallel_maintenance_workers. Defaults to 2.
	ParallelWorkers int
}

// BuildSpaceIndex builds space id's HNSW index if it does not exist yet (after a bulk load),
// on one connection whose maintenance_work_mem and max_parallel_maintenance_workers are set
// from cfg for the build and reset after it. It reports whether it built the index; a space of
// more than 4,000 dimensions has none to build.
//
// The index is built with CREATE INDEX CONCURRENTLY, which lets writes go on: a plain CREATE
// INDEX blocks every write to the embeddings table, every space's, until it ends (about ten
// minutes for a million vectors, bench/results) — beside other spaces the active space's
// writers (a blue/green fill), and when the space is the only one, a worker whose model is the
// space's, which writes the vectors of new papers into it during the build (`up` started
// during an import into a fresh archive: 28 s of a stalled worker at 20,000 vectors). The concurrent build costs a few percent more time. The invalid index a
// failed concurrent build leaves is dropped (see dropFailedBuild), and one left by an
// interrupted build is dropped and built again.
//
// Every change of an index on embeddings (this build, Reindex, DropSpace, EnsureSpace's build
// of a new space) waits for the one in progress: see lockIndexes. The space is read again
// under that lock: one dropped meanwhile is not found (paper.ErrNotFound), and gets no index.
func (s *Store) BuildSpaceIndex(ctx context.Context, id int64, cfg IndexSettings) (bool, error) {
	sp, err := s.space(ctx, id)
	if err != nil {
		return false, fmt.Errorf("build index: %w", err)
	}
	v := vectorSQLFor(sp, "$1")
	if v.opclass == "" {
		return false, nil
	}
	if _, valid, err := indexState(ctx, s.pool, v.indexName); err != nil || valid {
		return false, err
	}
	// After the wait, a build that held the lock (activate during a fill's build) may have made
	// the index; an unfinished one is never taken for an interrupted one and dropped.
	conn, unlock, err := s.lockIndexes(ctx)
	if err != nil {
		return false, fmt.Errorf("build index of space %s: %w", sp.Name(), err)
	}
	defer unlock()
	// The space as it is now: DropSpace (which takes the lock too) may have dropped it since it
	// was cached or read, and its index would be one of a missing row; Reindex may have
	// changed its kind.
	if sp, err = spaceByID(ctx, conn, id); err != nil {
		if errors.Is(err, pgx.ErrNoRows) {
			s.uncacheSpace(id)
		}
		return false, notFound(err, "build index: embedding space %d", id)
	}
	s.cacheSpace(sp)
	if v = vectorSQLFor(sp, "$1"); v.opclass == "" {
		return false, nil
	}
	exists, valid, err := indexState(ctx, conn, v.indexName)
	if err != nil || valid {
		return false, err
	}
	start := time.Now()
	if exists {
		own, err := ownIndex(ctx, conn, v.indexName)
		if err != nil {
			return false, fmt.Errorf("build index of space %s: %w", sp.Name(), err)
		}
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+own); err != nil {
			return false, fmt.Errorf("build index of space %s: drop the invalid %s: %w", sp.Name(), v.indexName, err)
		}
	}
	stop := s.watchBuild(ctx, conn, v.indexName)
	err = buildIndex(ctx, conn, s.withIndexMemory(cfg), v.createIndexAs("CONCURRENTLY IF NOT EXISTS "+v.indexName, sp.ID))
	stop()
	if err != nil {
		return false, fmt.Errorf("build index %s of space %s: %w%s", v.indexName, sp.Name(), err, s.dropFailedBuild(ctx, conn, v.indexName))
	}
	s.log.InfoContext(ctx, "built embedding space index", "space", sp.Name(), "index", v.indexName,
		"kind", sp.index, "concurrently", true, "duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// VacuumEmbeddings runs VACUUM (ANALYZE) on the embeddings table: after a bulk fill, so that
// the planner knows the new rows and autovacuum does not set off on them later, in the middle
// of the queries the space then serves (bench/results: VACUUM took 1.2 s after a million rows).
//
// It runs with no statement_timeout (one set for the role bounds its requests, and would
// cancel the VACUUM of a big table, at the end of a load) and no lock_timeout (it waits for the
// table's SHARE UPDATE EXCLUSIVE lock, which an index build or autovacuum holds): VACUUM cannot
// run in a transaction, so the settings are the session's, reset after it.
func (s *Store) VacuumEmbeddings(ctx context.Context) error {
	conn, err := s.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("vacuum embeddings: %w", err)
	}
	defer func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), "RESET statement_timeout; RESET lock_timeout"); err != nil {
			discard(conn) // a pooled connection must not keep the settings
			return
		}
		conn.Release()
	}()
	if _, err := conn.Exec(ctx, "SET statement_timeout = 0; SET lock_timeout = 0"); err != nil {
		return fmt.Errorf("vacuum embeddings: turn off statement_timeout and lock_timeout: %w", err)
	}
	if _, err := conn.Exec(ctx, "VACUUM (ANALYZE) embeddings"); err != nil {
		return fmt.Errorf("vacuum embeddings: %w", err)
	}
	return nil
}

// querier is what the statements here run through: the pool, a connection or a transaction.
type querier interface {
	Exec(context.Context, string, ...any) (pgconn.CommandTag, error)
	Query(context.Context, string, ...any) (pgx.Rows, error)
	QueryRow(context.Context, string, ...any) pgx.Row
}

// ownIndexSQL is the regclass of the index named by nameSQL (a text expression) in the current
// schema, where paperpipe's tables and their indexes are, or NULL when it has none: never one of
// another schema of the search_path. An unqualified name resolves along the whole search_path,
// and a schema after the current one (public, with search_path=copy,public for the vector
// extension there) may hold another archive, with indexes of the same names (embeddings_hnsw_s1):
// its index was taken for this archive's, which was then never built, and dropped in its place.
func ownIndexSQL(nameSQL string) string {
	return `to_regclass(quote_ident(current_schema()) || '.' || quote_ident(` + nameSQL + `))`
}

// ownIndex is the index named name in q's current schema, quoted and qualified for a statement
// (DROP INDEX, ALTER INDEX) that must not reach an index of another schema on the search_path
// (see ownIndexSQL).
func ownIndex(ctx context.Context, q querier, name string) (string, error) {
	var qualified string
	if err := q.QueryRow(ctx, "SELECT format('%I.%I', current_schema(), $1::text)", name).Scan(&qualified); err != nil {
		return "", fmt.Errorf("name index %s in the current schema: %w", name, err)
	}
	return qualified, nil
}

// indexState reports whether the index named name exists in the current schema, and whether it
// is valid: an interrupted CREATE INDEX CONCURRENTLY leaves an invalid one, which queries do not
// use (and one in progress is invalid until it ends).
func indexState(ctx context.Context, q querier, name string) (exists, valid bool, err error) {
	err = q.QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = "+ownIndexSQL("$1::text"), name).Scan(&valid)
	if errors.Is(err, pgx.ErrNoRows) {
		return false, false, nil
	}
	if err != nil {
		return false, false, fmt.Errorf("look up index %s: %w", name, err)
	}
	return true, valid, nil
}

// indexLockPoll is how often lockIndexes tries the lock again.
const indexLockPoll = 200 * time.Millisecond

// lockIndexes takes the session advisory lock under which an index on the embeddings table of
// the current schema is built, replaced or dropped, waiting for another holder (or ctx), and
// returns the connection that holds it, on which the change runs; unlock releases both.
//
// It is one lock for every space of the schema, not one per space: any two such changes on one
// table wait for each other anyway, and badly. A plain CREATE INDEX or a DROP INDEX queued
// behind another space's CREATE INDEX CONCURRENTLY (a fill's build: minutes) holds up every
// read and write of embeddings behind it for as long as the build runs, and when the build
// then waits for the transactions older than it — the queued one among them — PostgreSQL
// reports a deadlock and one of them fails (the build, leaving an invalid index). Two
// concurrent builds deadlock the same way.
//
// It polls with pg_try_advisory_lock rather than waiting in pg_advisory_lock for the same
// reason: a statement waiting for the lock would be a transaction the holder's concurrent
// build waits for — a deadlock PostgreSQL cannot see (the lock's session is idle).
func (s *Store) lockIndexes(ctx context.Context) (conn *pgxpool.Conn, unlock func(), err error) {
	conn, err = s.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, err
	}
	for waited := false; ; waited = true {
		ok, err := tryIndexLock(ctx, conn)
		if err != nil {
			discard(conn) // whether it was taken is unknown: closing the connection ends it either way
			return nil, nil, fmt.Errorf("take the index lock: %w", err)
		}
		if ok {
			break
		}
		if !waited {
			s.log.InfoContext(ctx, "waiting for another index build on the embeddings table to end (paperpipe changes one index at a time)")
		}
		select {
		case <-ctx.Done():
			conn.Release()
			return nil, nil, fmt.Errorf("wait for the index build in progress to end: %w", ctx.Err())
		case <-time.After(indexLockPoll):
		}
	}
	// A CREATE or DROP INDEX CONCURRENTLY waits for every transaction older than it (a
	// pg_dump, a long search, an export: minutes), and that wait is a lock wait, which a
	// lock_timeout set for the role or the database cancelled, leaving the space without its
	// index. The session waits without one while it holds the lock; the statements that must
	// not wait long (execLockedDDL's) set their own.
	if _, err := conn.Exec(ctx, "SET lock_timeout = 0"); err != nil {
		discard(conn)
		return nil, nil, fmt.Errorf("turn off lock_timeout for the index change: %w", err)
	}
	return conn, func() {
		if _, err := conn.Exec(context.WithoutCancel(ctx), `RESET lock_timeout; SELECT pg_advisory_unlock(`+indexLockSQL+`)`); err != nil {
			discard(conn) // a pooled connection must never keep the lock, nor the setting
			return
		}
		conn.Release()
	}, nil
}

// indexLockSQL is the advisory lock key of lockIndexes, per schema.
const indexLockSQL = `hashtextextended('paperpipe.index.' || current_schema(), 0)`

// tryIndexLock tries the index lock on conn.
func tryIndexLock(ctx context.Context, conn *pgxpool.Conn) (bool, error) {
	var ok *bool
	if err := conn.QueryRow(ctx, `SELECT `+trySessionLockSQL(indexLockSQL)).Scan(&ok); err != nil {
		return false, err
	}
	return sessionLockTaken(ok)
}

// withIndexMemory is cfg with the store's IndexMemory when cfg gives no MaintenanceWorkMem.
func (s *Store) withIndexMemory(cfg IndexSettings) IndexSettings {
	if cfg.MaintenanceWorkMem == "" {
		cfg.MaintenanceWorkMem = s.indexMemory
	}
	return cfg
}

// buildIndex runs the index build ddl on conn with maintenance_work_mem and
// max_parallel_maintenance_workers set from cfg, and no statement_timeout, and resets them
// after it. A build takes as long as the space is big (about ten minutes for a million
// vectors): a statement_timeout set for the role or the database (hosted services and careful
// DBAs set one, to bound the requests) would cancel it, as it would pg_restore's, which turns
// it off too.
func buildIndex(ctx context.Context, conn *pgxpool.Conn, cfg IndexSettings, ddl string) error {
	if cfg.MaintenanceWorkMem == "" {
		cfg.MaintenanceWorkMem = "1GB"
	}
	if cfg.ParallelWorkers <= 0 {
		cfg.ParallelWorkers = 2
	}
	// set_config(…, false) lasts for the session; the deferred RESET returns the pooled
	// connection to the server's defaults.
	if _, err := conn.Exec(ctx, `SELECT set_config('maintenance_work_mem', $1, false),
			set_config('max_parallel_maintenance_workers', $2, false), set_config('statement_timeout', '0', false)`,
		cfg.MaintenanceWorkMem, strconv.Itoa(cfg.ParallelWorkers)); err != nil {
		return fmt.Errorf("settings: %w", err)
	}
	defer func() {
		_, _ = conn.Exec(context.WithoutCancel(ctx), "RESET maintenance_work_mem; RESET max_parallel_maintenance_workers; RESET statement_timeout")
	}()
	_, err := conn.Exec(ctx, ddl)
	return err
}

// buildWaitPoll is how often watchBuild looks at what a concurrent build waits for.
const buildWaitPoll = time.Second

// watchBuild says which sessions the CREATE INDEX CONCURRENTLY about to run on conn waits for,
// when it waits for any: such a build waits for every transaction of the database that writes
// the table, and then, one after another, for every one holding a snapshot older than its own,
// of any schema — a pg_dump, another archive's export or count, a session left idle in a
// REPEATABLE READ transaction —, for as long as they last, and it said nothing meanwhile (a
// fill, an import or an activate that hung after its last vector). Each session is named once,
// when the build first waits for it: the first wait is often a moment's (a worker's write), and
// saying only that one left the long wait after it (the pg_dump) unsaid. stop ends the watch.
func (s *Store) watchBuild(ctx context.Context, conn *pgxpool.Conn, index string) (stop func()) {
	pid := conn.Conn().PgConn().PID()
	wctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		said := map[int32]bool{}
		for {
			select {
			case <-wctx.Done():
				return
			case <-time.After(buildWaitPoll):
			}
			// pg_blocking_pids takes the lock manager's partition locks, all of them, at each call
			// (PostgreSQL's docs warn against calling it often): it is asked only while the build
			// waits for a lock, which its own row in pg_stat_activity says — not every second of
			// an hour's build of an HNSW index.
			var pids []int32
			if err := s.pool.QueryRow(wctx, `SELECT coalesce((SELECT pg_blocking_pids(a.pid) FROM pg_stat_activity a
				WHERE a.pid = $1::int AND a.wait_event_type = 'Lock'), '{}')`, pid).Scan(&pids); err != nil {
				continue
			}
			var fresh []int32
			for _, p := range pids {
				if !said[p] {
					fresh = append(fresh, p)
				}
			}
			if len(fresh) == 0 {
				continue
			}
			holders := strings.TrimPrefix(sessionsDescribed(wctx, s.pool, `a.pid = ANY($1::int[])`, fresh), ", held by ")
			if holders == "" {
				continue // ended meanwhile
			}
			for _, p := range fresh {
				said[p] = true
			}
			s.log.WarnContext(ctx, "the index build waits for other sessions' transactions to end (a concurrent build waits for "+
				"every transaction of the database older than it, of any schema: a pg_dump, an export, a long query, a "+
				"session idle in a transaction); it goes on once they have", "index", index, "waits for", holders)
		}
	}()
	return func() {
		cancel()
		<-done
	}
}

// dropFailedBuild drops the index name that a CREATE INDEX CONCURRENTLY on conn failed to build,
// and returns "", or, when it could not, a note for the error to say so. PostgreSQL keeps such
// an index, invalid: no query uses it, yet it holds the disk space the build took (after a
// build stopped by a full disk, that disk stays full: every worker paused) and, once the build
// is past its first phase, every write to the table updates it. The drop is a plain DROP INDEX,
// which locks the table for a moment (waiting as execLockedDDL does): on a disk full to the
// last byte DROP INDEX CONCURRENTLY fails too, as it first writes a new catalog row for the
// index, while a plain one only deletes rows. It runs on conn, which holds the index lock (see
// lockIndexes): a connection the failure closed (an interrupted build) has released the lock,
// another process may be building that index now, and the leftover is left for the next
// build, which drops it first.
func (s *Store) dropFailedBuild(ctx context.Context, conn *pgxpool.Conn, name string) string {
	if conn.Conn().IsClosed() {
		return fmt.Sprintf(" (its unfinished index %s is left, taking disk space, until the next attempt drops it)", name)
	}
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	if err := pgx.BeginFunc(dctx, conn, func(tx pgx.Tx) error {
		own, err := ownIndex(dctx, tx, name)
		if err != nil {
			return err
		}
		return s.execLockedDDL(dctx, tx, "DROP INDEX IF EXISTS "+own)
	}); err != nil {
		return fmt.Sprintf(" (its unfinished index %s, which takes disk space, could not be dropped: %v; the next attempt drops it)", name, err)
	}
	return ""
}

// ddlWait bounds how long a DROP INDEX (DropSpace, Reindex's swap) or a new space's CREATE
// INDEX (EnsureSpace) waits for its lock of the embeddings table, during which the table's
// writes (and, behind a DROP, its reads) queue behind it: it waits timeout (a lock_timeout) at
// a time, up to tries times, with pause between tries to let the queue through. What holds the
// table that long is a long transaction that read or wrote it (a pg_dump, a session idle in a
// transaction, a report), an index build that is not this store's, or a VACUUM; the refusal
// names the sessions (see tableHolders).
type ddlWait struct {
	timeout string
	tries   int
	pause   time.Duration
}

const (
	// minDDLLockTimeout is the least lock_timeout of a try of execLockedDDL.
	minDDLLockTimeout = 2 * time.Second
	// ddlWaitBudget is about how long execLockedDDL tries in all, pauses included.
	ddlWaitBudget = 18 * time.Second
	ddlWaitPause  = time.Second
)

// lockedDDLWait is the ddlWait of a Store whose own is zero (all but tests'), on a session
// whose deadlock_timeout is deadlock. Each try waits longer than deadlock_timeout: only then
// does the waiting backend's deadlock check run, which cancels an autovacuum of the table that
// holds the lock (PostgreSQL's proc.c: at a lock_timeout equal to it, or shorter, the lock
// timeout fires first, and the DDL would give up behind every autovacuum of embeddings, the
// commonest holder after a fill). So twice deadlock_timeout, at least minDDLLockTimeout, with
// as many tries as fit in about ddlWaitBudget (two at least).
func lockedDDLWait(deadlock time.Duration) ddlWait {
	timeout := max(2*deadlock, minDDLLockTimeout)
	return ddlWait{
		timeout: strconv.FormatInt(timeout.Milliseconds(), 10) + "ms",
		tries:   max(2, int(ddlWaitBudget/(timeout+ddlWaitPause))),
		pause:   ddlWaitPause,
	}
}

// execLockedDDL runs ddl in tx, at a savepoint, under the lock_timeout of s.ddlWait (by
// default lockedDDLWait of the session's deadlock_timeout), trying again while it times out;
// tx's lock_timeout is the session's afterwards (SET LOCAL … DEFAULT: not an earlier SET LOCAL of tx).
func (s *Store) execLockedDDL(ctx context.Context, tx pgx.Tx, ddl string) error {
	w, err := s.lockedDDLWait(ctx, tx)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
			if _, err := sp.Exec(ctx, "SET LOCAL lock_timeout = '"+w.timeout+"'"); err != nil {
				return err
			}
			_, err := sp.Exec(ctx, ddl)
			return err
		})
		var pgErr *pgconn.PgError
		if !errors.As(err, &pgErr) || pgErr.Code != "55P03" /* lock_not_available */ {
			if err == nil {
				// The savepoint's SET LOCAL outlives its release: the session's value again.
				_, err = tx.Exec(ctx, "SET LOCAL lock_timeout = DEFAULT")
			}
			return err
		}
		if try == w.tries {
			return fmt.Errorf("the embeddings table stayed locked by another session (%d tries of %s)%s; what holds it so long is "+
				"a long transaction that read or wrote it (a pg_dump, a paperpipe export, a session left idle in a transaction, a long report), "+
				"an autovacuum, or an index build that is not this store's; nothing was changed: try again once it has ended: %w",
				w.tries, w.timeout, tableHolders(ctx, tx, embeddingsTable), err)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(w.pause):
		}
	}
}

// The relations whose holders tableHolders names: the embeddings table (execLockedDDL), or
// every table of the current schema (a migration that could not lock its table).
const (
	embeddingsTable = `l.relation = 'embeddings'::regclass`
	schemaTables    = `l.relation IN (SELECT c.oid FROM pg_class c WHERE c.relnamespace = to_regnamespace(quote_ident(current_schema())) AND c.relkind IN ('r', 'p'))`
)

// tableHolders describes the sessions other than q's that hold a lock of the relations (one of
// the constants above), for a refusal: ", held by pid 4242 (client backend, idle in
// transaction, its transaction open for 3m2s; "SELECT …")", or "" when none is seen any more
// or they cannot be looked up. A session of another role is named by its role and application
// instead of its statement (see sessionsDescribed).
func tableHolders(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, relations string) string {
	return sessionsDescribed(ctx, q, `a.pid IN (SELECT l.pid FROM pg_locks l
			WHERE l.locktype = 'relation' AND l.granted AND `+relations+`
				AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database()))`)
}

// sessionsDescribed describes the sessions other than q's that meet cond (on pg_stat_activity
// a, with args) as tableHolders does. The statement of a session is quoted only when the
// session is of q's role (paperpipe's own, a pg_dump or a psql run as it) or of none (an
// autovacuum): another role's — a DBA's, another application's — may hold a secret (a
// password in ALTER ROLE, a query naming a person) that paperpipe's role reads when it is a
// superuser or a member of pg_read_all_stats, and that its log and messages must not carry;
// such a session is named by its role and application.
func sessionsDescribed(ctx context.Context, q interface {
	Query(context.Context, string, ...any) (pgx.Rows, error)
}, cond string, args ...any) string {
	rows, err := q.Query(ctx, `SELECT a.pid, coalesce(a.backend_type, ''), coalesce(a.state, ''),
			floor(extract(epoch FROM clock_timestamp() - a.xact_start))::bigint,
			CASE WHEN a.usename IS NULL OR a.usename = current_user THEN '' ELSE a.usename END,
			coalesce(a.application_name, ''),
			CASE WHEN a.usename IS NULL OR a.usename = current_user THEN left(coalesce(a.query, ''), 80) ELSE '' END
		FROM pg_stat_activity a
		WHERE a.pid <> pg_backend_pid() AND `+cond+`
		ORDER BY a.xact_start NULLS LAST, a.pid`, args...)
	if err != nil {
		return ""
	}
	var (
		b                                strings.Builder
		pid                              int32
		backend, state, role, app, query string
		open                             *int64
	)
	_, err = pgx.ForEachRow(rows, []any{&pid, &backend, &state, &open, &role, &app, &query}, func() error {
		if b.Len() == 0 {
			b.WriteString(", held by ")
		} else {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "pid %d (%s", pid, backend)
		if role != "" {
			fmt.Fprintf(&b, " of role %s", role)
			if app != "" {
				fmt.Fprintf(&b, ", application %q", app)
			}
		}
		if state != "" {
			b.WriteString(", " + state)
		}
		if open != nil {
			fmt.Fprintf(&b, ", its transaction open for %s", time.Duration(*open)*time.Second)
		}
		if query != "" {
			fmt.Fprintf(&b, "; %q", strings.Join(strings.Fields(query), " "))
		}
		b.WriteString(")")
		return nil
	})
	if err != nil {
		return ""
	}
	return b.String()
}

// Reindex gives space id an index of kind: it builds the new index beside the old one with
// CREATE INDEX CONCURRENTLY (settings from cfg as for BuildSpaceIndex; writes and queries go
// on meanwhile; a failed build's leftover is dropped, an interrupted one's by the next
// attempt, see dropFailedBuild), then, in
// one short transaction, drops the old index, gives the new one its name and records the
// kind. It waits for another index change in progress first (see lockIndexes). It reports
// whether it changed anything: a space of that kind that has its index is left as it is. This
// store's queries use the new kind at once; another running process keeps the kind it has
// cached, and its queries on the space scan every vector until it restarts.
func (s *Store) Reindex(ctx context.Context, id int64, kind IndexKind, cfg IndexSettings) (bool, error) {
	if _, err := ParseIndexKind(string(kind)); err != nil {
		return false, fmt.Errorf("reindex: %w", err)
	}
	// Read under the lock: a reindex that held it may have changed the kind.
	conn, unlock, err := s.lockIndexes(ctx)
	if err != nil {
		return false, fmt.Errorf("reindex space %d: %w", id, err)
	}
	defer unlock()
	cur, err := spaceByID(ctx, conn, id)
	if err != nil {
		return false, notFound(err, "reindex: embedding space %d", id)
	}
	next := spaceRow{Space: cur.Space, index: kind}
	v := vectorSQLFor(next, "$1")
	_, valid, err := indexState(ctx, conn, v.indexName)
	if err != nil {
		return false, fmt.Errorf("reindex space %s: %w", cur.Name(), err)
	}
	start, fresh := time.Now(), v.indexName+"_new"
	ownFresh, err := ownIndex(ctx, conn, fresh)
	if err != nil {
		return false, fmt.Errorf("reindex space %s: %w", cur.Name(), err)
	}
	if cur.index == kind && (valid || v.opclass == "") {
		// A reindex interrupted before (killed, its session ended) may have left its new
		// index, invalid: the space keeps its own, and the leftover goes. No other build of
		// it runs: it would hold the index lock.
		exists, _, err := indexState(ctx, conn, fresh)
		if err != nil || !exists {
			return false, err
		}
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+ownFresh); err != nil {
			return false, fmt.Errorf("reindex space %s: drop the unfinished %s an interrupted reindex left: %w", cur.Name(), fresh, err)
		}
		s.log.InfoContext(ctx, "dropped the unfinished index an interrupted reindex left", "space", cur.Name(), "index", fresh)
		return false, nil
	}
	if v.opclass != "" {
		if _, err := conn.Exec(ctx, "DROP INDEX CONCURRENTLY IF EXISTS "+ownFresh); err != nil {
			return false, fmt.Errorf("reindex space %s: drop a leftover %s: %w", cur.Name(), fresh, err)
		}
		stop := s.watchBuild(ctx, conn, fresh)
		err := buildIndex(ctx, conn, s.withIndexMemory(cfg), v.createIndexAs("CONCURRENTLY "+fresh, cur.ID))
		stop()
		if err != nil {
			left := s.dropFailedBuild(ctx, conn, fresh)
			var pgErr *pgconn.PgError
			if errors.As(err, &pgErr) && pgErr.Code == "22003" /* numeric_value_out_of_range */ && v.opclass == "halfvec_cosine_ops" {
				// A vector stored while the space's index was not on halfvec (SaveEmbeddings
				// refuses such values only for halfvec-indexed spaces).
				return false, fmt.Errorf("reindex space %s: it holds vector components beyond ±%d, which the half-precision "+
					"copies a %s index of %d dimensions is built on cannot hold; the space keeps its %s index: %w%s",
					cur.Name(), maxHalf, kind, cur.Dimensions, cur.index, paper.ErrInvalid, left)
			}
			return false, fmt.Errorf("reindex space %s: build %s: %w%s", cur.Name(), kind, err, left)
		}
	}
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := s.lockSpaces(ctx, tx); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		own, err := ownIndex(ctx, tx, v.indexName)
		if err != nil {
			return err
		}
		if err := s.execLockedDDL(ctx, tx, "DROP INDEX IF EXISTS "+own); err != nil {
			return fmt.Errorf("drop the old index: %w", err)
		}
		if v.opclass != "" {
			if _, err := tx.Exec(ctx, "ALTER INDEX "+ownFresh+" RENAME TO "+v.indexName); err != nil {
				return fmt.Errorf("rename the new index: %w", err)
			}
		}
		tag, err := tx.Exec(ctx, "UPDATE embedding_spaces SET index_kind = $1 WHERE id = $2", string(kind), cur.ID)
		if err != nil {
			return fmt.Errorf("record the kind: %w", err)
		}
		if tag.RowsAffected() != 1 {
			return fmt.Errorf("the space was dropped meanwhile: %w", paper.ErrNotFound)
		}
		return nil
	})
	if err != nil {
		// The new index, built, would stay beside the space's one, updated by every write.
		left := ""
		if v.opclass != "" {
			left = s.dropFailedBuild(ctx, conn, fresh)
		}
		return false, fmt.Errorf("reindex space %s: %w%s", cur.Name(), err, left)
	}
	s.cacheSpace(next)
	s.log.InfoContext(ctx, "reindexed embedding space", "space", cur.Name(), "from", cur.index, "to", kind,
		"duration", time.Since(start).Round(time.Millisecond))
	return true, nil
}

// errNeedsIndexLock is how ensureSpaceTx, run without the index lock, says that the space is
// new and gets its index: ensureSpace takes the lock and runs it again.
var errNeedsIndexLock = errors.New("a new space's index is built under the index lock")

// DroppedAt returns when the space of sp's model, dimensions and template was dropped
// (DropSpace), when it was and has not been made again since; the zero time otherwise. A
// worker started on the settings of a dropped space asks it before EnsureSpace would make the
// space again.
func (s *Store) DroppedAt(ctx context.Context, sp paper.Space) (time.Time, error) {
	var at time.Time
	err := s.pool.QueryRow(ctx, `SELECT d.dropped_at FROM dropped_spaces d
		WHERE d.model = $1 AND d.dimensions = $2 AND d.template = $3
		AND NOT EXISTS (SELECT 1 FROM embedding_spaces e WHERE e.model = d.model AND e.dimensions = d.dimensions AND e.template = d.template)`,
		sp.Model, sp.Dimensions, sp.Template).Scan(&at)
	if errors.Is(err, pgx.ErrNoRows) {
		return time.Time{}, nil
	}
	if err != nil {
		return time.Time{}, fmt.Errorf("look up the drops of embedding space %s: %w", sp.Name(), err)
	}
	return at, nil
}

// ensureSpace is EnsureSpace; withIndex false leaves a new space without its index.
func (s *Store) ensureSpace(ctx context.Context, sp paper.Space, withIndex bool) (paper.Space, bool, error) {
	if err := validateSpace(sp); err != nil {
		return paper.Space{}, false, err
	}
	// An existing space, or a new one without its index, needs no index lock: a worker's start
	// does not wait for a fill's build. A new space with its index is created under it.
	out, created, err := s.ensureSpaceTx(ctx, s.pool, sp, withIndex, false)
	if errors.Is(err, errNeedsIndexLock) {
		conn, unlock, lerr := s.lockIndexes(ctx)
		if lerr != nil {
			return paper.Space{}, false, fmt.Errorf("ensure embedding space %s: %w", sp.Name(), lerr)
		}
		defer unlock()
		out, created, err = s.ensureSpaceTx(ctx, conn, sp, withIndex, true)
	}
	if err != nil {
		return paper.Space{}, false, fmt.Errorf("ensure embedding space %s: %w", sp.Name(), err)
	}
	s.cacheSpace(out)
	return out.Space, created, nil
}

// ensureSpaceTx is ensureSpace's transaction, on db (the pool, or the connection that holds
// the index lock when indexLocked). Without the index lock, a space it would create with its
// index is not created: it returns errNeedsIndexLock.
func (s *Store) ensureSpaceTx(ctx context.Context, db interface {
	Begin(context.Context) (pgx.Tx, error)
}, sp paper.Space, withIndex, indexLocked bool) (out spaceRow, created bool, err error) {
	indexable := vectorSQLFor(spaceRow{Space: sp, index: s.index}, "$1").opclass != ""
	err = pgx.BeginFunc(ctx, db, func(tx pgx.Tx) error {
		created = false
		if err := s.lockSpaces(ctx, tx); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		var err error
		out, err = scanSpace(tx.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces
			WHERE model = $1 AND dimensions = $2 AND template = $3`, sp.Model, sp.Dimensions, sp.Template))
		switch {
		case err == nil:
		case !errors.Is(err, pgx.ErrNoRows):
			return fmt.Errorf("look up: %w", err)
		case withIndex && indexable && !indexLocked:
			return errNeedsIndexLock
		default:
			out, err = scanSpace(tx.QueryRow(ctx, `INSERT INTO embedding_spaces (model, dimensions, template, index_kind)
				VALUES ($1, $2, $3, $4) RETURNING `+spaceColumns, sp.Model, sp.Dimensions, sp.Template, string(s.index)))
			if err != nil {
				return fmt.Errorf("insert: %w", err)
			}
			if _, err := tx.Exec(ctx, "DELETE FROM dropped_spaces WHERE model = $1 AND dimensions = $2 AND template = $3",
				sp.Model, sp.Dimensions, sp.Template); err != nil {
				return fmt.Errorf("forget its drop: %w", err)
			}
			created = true
		}
		v := vectorSQLFor(out, "$1")
		switch {
		case !withIndex && created:
			s.log.InfoContext(ctx, "created embedding space without its index, for a bulk load", "space", out.Name())
		case !withIndex:
			// An existing space keeps what it has; BuildSpaceIndex adds a missing index.
		case v.opclass != "" && created:
			// No row belongs to the space yet: the build is one scan of the table, with a plain
			// CREATE INDEX in this transaction, so that a failure leaves no space without its
			// index behind. It holds the index lock: no build of this store's runs beside it
			// (behind a concurrent one, its lock of the table would hold up every read and write
			// of it: see lockIndexes). Its ShareLock waits only for the writes in flight, not
			// for readers (a pg_dump, a session idle in a transaction), as CREATE INDEX
			// CONCURRENTLY would for every older snapshot of the database; writes wait for the
			// one scan. execLockedDDL bounds the wait for the table.
			if err := s.execLockedDDL(ctx, tx, v.createIndexSQL(out.ID)); err != nil {
				return fmt.Errorf("create index %s: %w", v.indexName, err)
			}
			s.log.InfoContext(ctx, "created embedding space index", "space", out.Name(), "index", v.indexName, "kind", out.index)
		case v.opclass != "":
			// An existing space without its index was created for a bulk fill that is running
			// or was interrupted. Building it here, inside this transaction, would block every
			// write to embeddings (and every EnsureSpace) for as long as the build of a filled
			// space takes; the fill builds it when it ends (BuildSpaceIndex), or `paperpipe
			// spaces reindex` does, without blocking writes. An invalid index (a concurrent
			// build in progress, or interrupted) is none: queries cannot use it.
			_, valid, err := indexState(ctx, tx, v.indexName)
			if err != nil {
				return err
			}
			if !valid {
				s.log.WarnContext(ctx, "embedding space has no index yet (a bulk fill or its index build is running, or was interrupted); "+
					"its queries scan every vector until the fill ends or `paperpipe spaces reindex SPACE --index KIND` builds it",
					"space", out.Name(), "id", out.ID, "kind", out.index)
			}
		default:
			s.log.WarnContext(ctx, "embedding space has too many dimensions for an HNSW index; its queries scan every vector",
				"space", out.Name(), "max_indexed_dimensions", maxHalfvecIndexDims)
		}
		if !out.Active {
			tag, err := tx.Exec(ctx, `UPDATE embedding_spaces SET active = true
				WHERE id = $1 AND NOT EXISTS (`+activeSpaceCondition+`)`, out.ID)
			if err != nil {
				return fmt.Errorf("activate: %w", err)
			}
			out.Active = tag.RowsAffected() == 1
		}
		return nil
	})
	return out, created, err
}

// Spaces lists every embedding space, oldest first, with its coverage.
func (s *Store) Spaces(ctx context.Context) ([]SpaceInfo, error) {
	return s.listSpaces(ctx, true)
}

// spaceCoverageColumns are a space's Embedded and Papers, for a row s of embedding_spaces.
const spaceCoverageColumns = `(SELECT count(*) FROM embeddings e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
				WHERE e.space_id = s.id),
			(SELECT count(*) FROM papers)`

// spacesCoverage is every space's Embedded (n, by space_id), for listSpaces to join: one join
// of all the vectors to papers, each paper read once, where spaceCoverageColumns for each space
// read papers once per space (three or four in a blue/green history: 102,000 buffers for three
// spaces at 100,000 papers, 37,000 this way).
const spacesCoverage = `(SELECT e.space_id, count(*) AS n FROM embeddings e
				JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash GROUP BY e.space_id)`

// listSpaces is Spaces, with the coverage counted only when counted is set (zero otherwise).
func (s *Store) listSpaces(ctx context.Context, counted bool) ([]SpaceInfo, error) {
	coverage, join := "0::bigint, 0::bigint", ""
	if counted {
		coverage = "coalesce(c.n, 0), (SELECT count(*) FROM papers)"
		join = "LEFT JOIN " + spacesCoverage + " c ON c.space_id = s.id"
	}
	rows, err := s.pool.Query(ctx, `SELECT s.id, s.model, s.dimensions, s.template, s.active, s.index_kind, s.created_at,
			`+coverage+`,
			coalesce((SELECT i.indexrelid::regclass::text FROM pg_index i
				WHERE i.indexrelid = `+ownIndexSQL(`'`+indexNamePrefix+`' || s.id`)+` AND i.indisvalid), ''),
			coalesce((SELECT string_agg(i.indexrelid::regclass::text, ', ' ORDER BY i.indexrelid::regclass::text) FROM pg_index i
				WHERE (i.indexrelid = `+ownIndexSQL(`'`+indexNamePrefix+`' || s.id`)+` AND NOT i.indisvalid)
					OR i.indexrelid = `+ownIndexSQL(`'`+indexNamePrefix+`' || s.id || '_new'`)+`), '')
		FROM embedding_spaces s `+join+` ORDER BY s.id`)
	if err != nil {
		return nil, fmt.Errorf("list embedding spaces: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (SpaceInfo, error) {
		var si SpaceInfo
		err := r.Scan(&si.ID, &si.Model, &si.Dimensions, &si.Template, &si.Active, &si.Index, &si.CreatedAt,
			&si.Embedded, &si.Papers, &si.IndexName, &si.UnfinishedIndex)
		return si, err
	})
	if err != nil {
		return nil, fmt.Errorf("list embedding spaces: %w", err)
	}
	return out, nil
}

// UnfinishedIndexes lists the spaces that have an UnfinishedIndex, without their coverage
// (Embedded and Papers are zero): a read of the catalog only.
func (s *Store) UnfinishedIndexes(ctx context.Context) ([]SpaceInfo, error) {
	spaces, err := s.listSpaces(ctx, false)
	if err != nil {
		return nil, err
	}
	var out []SpaceInfo
	for _, sp := range spaces {
		if sp.UnfinishedIndex != "" {
			out = append(out, sp)
		}
	}
	return out, nil
}

// ActiveSpace returns the space queries use by default; paper.ErrNotFound when none is active.
func (s *Store) ActiveSpace(ctx context.Context) (_ paper.Space, err error) {
	defer func() { err = unavailable(ctx, err) }()
	sp, err := scanSpace(s.pool.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces WHERE active`))
	if err != nil {
		return paper.Space{}, notFound(err, "active embedding space")
	}
	s.cacheSpace(sp)
	return sp.Space, nil
}

// spacesLockNotice is how long lockSpaces waits for the embedding spaces table before it says
// that it waits, and for whom.
const spacesLockNotice = "1s"

// lockSpaces takes lockSpacesStatement in tx, waiting for another holder as long as it holds
// the table — DropSpace holds it while it deletes the space's vectors, minutes for a large
// space — but, past spacesLockNotice, it logs that it waits and which sessions hold the table
// (tableHolders: those whose lock conflicts with it — not a reader's, nor a foreign key
// check's row share), as lockIndexes says that it waits: `activate`, a space's creation or a
// worker's start would otherwise hang without a word. tx's lock_timeout is the session's
// afterwards (as execLockedDDL leaves it).
func (s *Store) lockSpaces(ctx context.Context, tx pgx.Tx) error {
	err := pgx.BeginFunc(ctx, tx, func(sp pgx.Tx) error {
		if _, err := sp.Exec(ctx, "SET LOCAL lock_timeout = '"+spacesLockNotice+"'"); err != nil {
			return err
		}
		_, err := sp.Exec(ctx, lockSpacesStatement)
		return err
	})
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) && pgErr.Code == "55P03" { // lock_not_available: held past the notice
		s.log.InfoContext(ctx, "waiting for the embedding spaces table, which another session holds (a `paperpipe spaces drop` holds it "+
			"while it deletes the space's vectors, minutes for a large space; a space's creation or activation for a moment)"+
			tableHolders(ctx, tx, `l.relation = 'embedding_spaces'::regclass AND l.mode NOT IN ('AccessShareLock', 'RowShareLock')`))
		if _, err := tx.Exec(ctx, "SET LOCAL lock_timeout = DEFAULT"); err != nil {
			return err
		}
		_, err = tx.Exec(ctx, lockSpacesStatement)
		return err
	}
	if err != nil {
		return err
	}
	// The savepoint's SET LOCAL outlives its release: the session's value again.
	_, err = tx.Exec(ctx, "SET LOCAL lock_timeout = DEFAULT")
	return err
}

// Activate makes space id the active one, in one transaction: queries switch from the old
// space to the new one at commit, never seeing none or two.
func (s *Store) Activate(ctx context.Context, id int64) error {
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		if err := s.lockSpaces(ctx, tx); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		var one int
		if err := tx.QueryRow(ctx, "SELECT 1 FROM embedding_spaces WHERE id = $1", id).Scan(&one); err != nil {
			return notFound(err, "look up")
		}
		// Unset first: the partial unique index allows one active row at every moment.
		if _, err := tx.Exec(ctx, "UPDATE embedding_spaces SET active = false WHERE active AND id <> $1", id); err != nil {
			return fmt.Errorf("deactivate the old space: %w", err)
		}
		if _, err := tx.Exec(ctx, "UPDATE embedding_spaces SET active = true WHERE id = $1 AND NOT active", id); err != nil {
			return fmt.Errorf("activate: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("activate embedding space %d: %w", id, err)
	}
	return nil
}

// DropOptions are DropSpace's options.
type DropOptions struct {
	// DiscardBatchJobs drops a space that open Batch API jobs (BatchPreparing, BatchSubmitted)
	// embed into, with the jobs' records: OpenAI still runs them, and bills them, and their
	// vectors are thrown away.
	DiscardBatchJobs bool
}

// OpenBatchJobsError is DropSpace's refusal of a space that open Batch API jobs embed into.
// It wraps paper.ErrInvalid.
type OpenBatchJobsError struct {
	Space paper.Space
	Jobs  []BatchJob
}

func (e *OpenBatchJobsError) Error() string {
	var b strings.Builder
	for i, j := range e.Jobs {
		if i > 0 {
			b.WriteString(", ")
		}
		fmt.Fprintf(&b, "job %d (%s", j.ID, j.Status)
		if j.OpenAIID != "" {
			fmt.Fprintf(&b, ", OpenAI batch %s", j.OpenAIID)
		}
		b.WriteString(")")
	}
	return fmt.Sprintf("open Batch API jobs embed into space %d (%s), which OpenAI keeps running and billing, and whose vectors "+
		"dropping the space would throw away: %s; wait for them to be collected, or cancel them at OpenAI, before dropping it",
		e.Space.ID, e.Space.Name(), b.String())
}

func (e *OpenBatchJobsError) Unwrap() error { return paper.ErrInvalid }

// DropSpace deletes space id with its vectors and its index, the new index an interrupted
// Reindex left, and the space's fitted offline model (offline_models) when no other space is
// of it. It refuses the active space, with an error wrapping paper.ErrInvalid: activate
// another one first; a space that open Batch API jobs embed into, with an
// *OpenBatchJobsError (which wraps paper.ErrInvalid too), unless opts.DiscardBatchJobs; and a
// space a `paperpipe reprocess` is filling (it holds the LockRun of SpaceRunKey), with an error
// wrapping ErrRunInProgress, whose vectors would be bought for nothing. It
// waits for an index change in progress first (see lockIndexes), and its DROP INDEX gives up,
// changing nothing, when the table stays locked by another session (see execLockedDDL).
func (s *Store) DropSpace(ctx context.Context, id int64, opts DropOptions) error {
	// Refuse before waiting for the index lock (a fill's build can hold it for minutes), and
	// again under it.
	check := func(q querier) (spaceRow, error) {
		sp, err := spaceByID(ctx, q, id)
		if err != nil {
			return sp, notFound(err, "look up")
		}
		if sp.Active {
			return sp, fmt.Errorf("%s is the active space; activate another space before dropping it: %w",
				sp.Name(), paper.ErrInvalid)
		}
		// Under the drop's transaction the lock is held until it ends, so that no run starts
		// filling the space meanwhile; on the pool it is released at once.
		free, err := spaceRunFree(ctx, q, id)
		if err != nil {
			return sp, err
		}
		if !free {
			return sp, fmt.Errorf("a `paperpipe reprocess` (or `fit`, `import` or `import-embeddings`) is filling space %d (%s) now; let it end, or stop it, before dropping the space: %w",
				sp.ID, sp.Name(), ErrRunInProgress)
		}
		if opts.DiscardBatchJobs {
			return sp, nil
		}
		rows, err := q.Query(ctx, `SELECT `+batchJobColumns+` FROM batch_jobs WHERE space_id = $1 AND status IN `+openJobStatuses+` ORDER BY id`, id)
		if err != nil {
			return sp, fmt.Errorf("look up open batch jobs: %w", err)
		}
		jobs, err := pgx.CollectRows(rows, scanBatchJob)
		if err != nil {
			return sp, fmt.Errorf("look up open batch jobs: %w", err)
		}
		if len(jobs) > 0 {
			return sp, &OpenBatchJobsError{Space: sp.Space, Jobs: jobs}
		}
		return sp, nil
	}
	if _, err := check(s.pool); err != nil {
		return fmt.Errorf("drop embedding space %d: %w", id, err)
	}
	conn, unlock, err := s.lockIndexes(ctx)
	if err != nil {
		return fmt.Errorf("drop embedding space %d: %w", id, err)
	}
	defer unlock()
	err = pgx.BeginFunc(ctx, conn, func(tx pgx.Tx) error {
		if err := s.lockSpaces(ctx, tx); err != nil {
			return fmt.Errorf("lock embedding spaces: %w", err)
		}
		// The row's lock keeps a batch job from being recorded for the space meanwhile (its
		// foreign key check waits for it, and then fails).
		if _, err := tx.Exec(ctx, "SELECT FROM embedding_spaces WHERE id = $1 FOR UPDATE", id); err != nil {
			return fmt.Errorf("lock the space: %w", err)
		}
		sp, err := check(tx)
		if err != nil {
			return err
		}
		// The vectors go first: DROP INDEX locks the whole embeddings table, every space's
		// queries and writes, until the transaction ends, and deleting a big space takes a while
		// — longer than a statement_timeout set for the role's requests, which the transaction
		// turns off.
		if _, err := tx.Exec(ctx, "SET LOCAL statement_timeout = 0"); err != nil {
			return fmt.Errorf("turn off statement_timeout: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM embeddings WHERE space_id = $1", sp.ID); err != nil {
			return fmt.Errorf("delete vectors: %w", err)
		}
		name, err := ownIndex(ctx, tx, indexNamePrefix+itoa(sp.ID))
		if err != nil {
			return err
		}
		fresh, err := ownIndex(ctx, tx, indexNamePrefix+itoa(sp.ID)+"_new")
		if err != nil {
			return err
		}
		if err := s.execLockedDDL(ctx, tx, "DROP INDEX IF EXISTS "+name+", "+fresh); err != nil {
			return fmt.Errorf("drop index: %w", err)
		}
		if _, err := tx.Exec(ctx, "DELETE FROM embedding_spaces WHERE id = $1", sp.ID); err != nil {
			return fmt.Errorf("delete space: %w", err)
		}
		// Recorded, so that a worker started on its settings does not make it again (see
		// DroppedAt).
		if _, err := tx.Exec(ctx, `INSERT INTO dropped_spaces (model, dimensions, template) VALUES ($1, $2, $3)
				ON CONFLICT (model, dimensions, template) DO UPDATE SET dropped_at = now()`, sp.Model, sp.Dimensions, sp.Template); err != nil {
			return fmt.Errorf("record the drop: %w", err)
		}
		// A fitted offline model goes with the last space of it: each refit stores a new one.
		if _, err := tx.Exec(ctx, `DELETE FROM offline_models WHERE name = $1
				AND NOT EXISTS (SELECT 1 FROM embedding_spaces WHERE model = $1)`, sp.Model); err != nil {
			return fmt.Errorf("delete its offline model: %w", err)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("drop embedding space %d: %w", id, err)
	}
	s.uncacheSpace(id)
	return nil
}

// space returns space id's identity and index kind, from the cache when it has been seen
// before.
func (s *Store) space(ctx context.Context, id int64) (spaceRow, error) {
	s.spacesMu.RLock()
	sp, ok := s.spaces[id]
	s.spacesMu.RUnlock()
	if ok {
		return sp, nil
	}
	sp, err := spaceByID(ctx, s.pool, id)
	if err != nil {
		return spaceRow{}, notFound(err, "embedding space %d", id)
	}
	s.cacheSpace(sp)
	return sp, nil
}

// spaceByID reads space id from the database, through q (the pool or a transaction).
func spaceByID(ctx context.Context, q interface {
	QueryRow(context.Context, string, ...any) pgx.Row
}, id int64) (spaceRow, error) {
	return scanSpace(q.QueryRow(ctx, `SELECT `+spaceColumns+` FROM embedding_spaces WHERE id = $1`, id))
}

// scanSpace scans the spaceColumns of one row.
func scanSpace(row pgx.Row) (spaceRow, error) {
	var sp spaceRow
	err := row.Scan(&sp.ID, &sp.Model, &sp.Dimensions, &sp.Template, &sp.Active, &sp.index)
	return sp, err
}

// cacheSpace remembers sp's identity and index kind. Active is not cached: it changes.
func (s *Store) cacheSpace(sp spaceRow) {
	sp.Active = false
	s.spacesMu.Lock()
	s.spaces[sp.ID] = sp
	s.spacesMu.Unlock()
}

// uncacheSpace forgets space id, which no longer exists.
func (s *Store) uncacheSpace(id int64) {
	s.spacesMu.Lock()
	delete(s.spaces, id)
	s.spacesMu.Unlock()
}
