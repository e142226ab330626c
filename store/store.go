package store

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"log/slog"
	"net"
	neturl "net/url"
	"os"
	"path"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgtype"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/jackc/pgx/v5/stdlib"
	pgvectorpgx "github.com/pgvector/pgvector-go/pgx"
	"github.com/pressly/goose/v3"

	"github.com/paperpipe/paperpipe/paper"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// Config configures Open.
type Config struct {
	// URL is the PostgreSQL connection string (postgres://… or key=value form). Required.
	// Its connect_timeout (seconds) bounds each new connection, from the dial to the end of
	// the start-up; without one, DefaultConnectTimeout does.
	URL string
	// MaxConns is the pool's maximum number of connections. Defaults to URL's
	// pool_max_conns when it has one, else to 4×GOMAXPROCS, at least 8. Either must be at
	// least MinConns. Ping keeps one more connection, of its own.
	MaxConns int32
	// EFSearch is hnsw.ef_search for vector queries: the candidates the HNSW index walks (and,
	// on an IndexHNSWBinary index, re-ranks), traded against latency (see bench/results;
	// Store.CheckRecall measures it on an archive). A query for k results uses at least k.
	// Defaults to DefaultEFSearch of each space's index kind.
	EFSearch int
	// VectorIndex is the index kind of the embedding spaces this store creates; a space keeps
	// the kind it was created with. Defaults to DefaultIndexKind.
	VectorIndex IndexKind
	// IndexMemory is the maintenance_work_mem of an index build whose IndexSettings give none
	// (BuildSpaceIndex, Reindex), such as "4GB": an HNSW build whose graph fits in it is several
	// times faster (1M × 768 takes about 2 GB on hnsw-halfvec, 4 GB on hnsw, 0.4 GB on
	// hnsw-binary). Defaults to "1GB".
	IndexMemory string
	// RowLockTimeout bounds how long a worker's write (UpsertPapers, SaveSummaries,
	// SaveEmbeddings) waits for a row another session holds locked — a transaction left open
	// by an operator or another tool — before it fails with paper.ErrLocked, so that one locked
	// paper does not hold up the papers written with it. LoadEmbeddings waits for a paper's
	// row as long at most. Waits for a table (an index build) are not bounded by it. Defaults
	// to DefaultRowLockTimeout.
	RowLockTimeout time.Duration
	// KeywordRankLimit bounds the full-text ranking of KeywordSearch and of HybridSearch's
	// keyword ranking: a query matching more papers than this ranks only this many of its
	// matches, the most recently stored ones, and says so (Ranking.Bounded). Ranking every
	// match of a common word cost seconds on an arXiv-sized archive (see README, "Keyword
	// search on a large archive"). Defaults to DefaultKeywordRankLimit.
	KeywordRankLimit int
	// Logger receives migration progress and warnings. Defaults to discarding everything.
	Logger *slog.Logger
}

func (c *Config) validate() error {
	if c.URL == "" {
		return fmt.Errorf("store config: URL is required: %w", paper.ErrInvalid)
	}
	if c.MaxConns < 0 {
		return fmt.Errorf("store config: MaxConns is %d, must not be negative: %w", c.MaxConns, paper.ErrInvalid)
	}
	if c.KeywordRankLimit < 0 || c.KeywordRankLimit > MaxKeywordRankLimit {
		return fmt.Errorf("store config: KeywordRankLimit is %d, must be 0 to %d: %w", c.KeywordRankLimit, MaxKeywordRankLimit, paper.ErrInvalid)
	}
	if c.VectorIndex != "" {
		if _, err := ParseIndexKind(string(c.VectorIndex)); err != nil {
			return fmt.Errorf("store config: VectorIndex: %w", err)
		}
	}
	return nil
}

// MinConns is the fewest connections Open accepts for a store's pool (Config.MaxConns, or the
// URL's pool_max_conns). The store's own session locks each keep a pooled connection for as
// long as they are held, and a process holds up to three at once: `reprocess` holds a LockRun
// for each output it writes (TL;DRs and a space: two) for the whole run, and meanwhile a batch
// job's lock (ClaimBatchJob, LockBatchJob: one job at a time) or the index lock
// (lockIndexes, the fill's final BuildSpaceIndex). The statements run under them — the upload
// reads the job's items (BatchJobItems), the collection saves vectors — need one more. With
// fewer, those statements wait for a connection that only their own caller would release: the
// run hangs for ever. `import` holds two such locks (a TL;DR version's and a space's) as
// `reprocess` does.
const MinConns = 4

// Store is paperpipe's PostgreSQL store. It is safe for concurrent use.
type Store struct {
	pool *pgxpool.Pool
	// probe is a pool of one connection of its own, made on the first Ping, for Ping: a
	// ping that waited for one of pool's connections would fail on a healthy database
	// whenever slow queries hold all of them (a readiness probe's timeout, under load).
	probe  *pgxpool.Pool
	log    *slog.Logger
	target string // user@host:port/database, for messages; never the password
	// servicesDB: the target is where `make services` serves (loopback, ServicesPort), so a
	// refused connection suggests it.
	servicesDB bool
	ef         int       // hnsw.ef_search
	index      IndexKind // of the spaces it creates
	// indexMemory is Config.IndexMemory.
	indexMemory string
	// rowLockTimeout is Config.RowLockTimeout (see writeTx).
	rowLockTimeout time.Duration
	// keywordLimit is Config.KeywordRankLimit.
	keywordLimit int
	// tiers caches the edges of the windows searches by date look for their matches in.
	tiers tierCache

	// spaces caches each space's identity (model, dimensions, template) and index kind by id.
	// Ids are never reused and the identity never changes; the kind changes only by Reindex,
	// which updates this store's entry — another process keeps the kind it cached, and its
	// queries on that space scan every vector until it restarts (see Reindex).
	spacesMu sync.RWMutex
	spaces   map[int64]spaceRow

	ddlWait ddlWait // zero: lockedDDLWait of the session's deadlock_timeout
}

// CheckURL reports what is wrong with the connection string raw that Open would refuse before
// connecting — one that does not parse (another scheme than postgres, a bad port), a password
// with an unescaped "@", a pool_max_conns below MinConns —, in an error that wraps
// paper.ErrInvalid and does not show raw (it may hold a password); nil when Open would try it.
// A command checks its settings with it before it connects to anything: a configuration error,
// not a failure to connect.
func CheckURL(raw string) error {
	pcfg, err := parseURL(raw)
	if err != nil {
		return err
	}
	if setsMaxConns(raw) && pcfg.MaxConns < MinConns {
		return tooFewConns("the database URL's pool_max_conns", pcfg.MaxConns)
	}
	return nil
}

// tooFewConns is the refusal of a pool of n connections, fewer than MinConns, that setting
// asks for, saying what to do.
func tooFewConns(setting string, n int32) error {
	return fmt.Errorf("store config: %s is %d, below the minimum of %d: the store's own locks keep up to %d connections "+
		"while a run needs one more for its statements; raise it to %[3]d or more, or leave it out for the default "+
		"(4 per CPU, at least 8): %[5]w", setting, n, MinConns, MinConns-1, paper.ErrInvalid)
}

// parseURL parses the connection string raw as Open does, its error not showing raw.
func parseURL(raw string) (*pgxpool.Config, error) {
	pcfg, err := pgxpool.ParseConfig(raw)
	if err != nil {
		why := urlShapeError(raw)
		if why == "" {
			why = parseErrorText(err)
		}
		return nil, fmt.Errorf("parse database URL (not shown: it may hold a password): %s: %w", why, paper.ErrInvalid)
	}
	for _, h := range append([]*pgconn.FallbackConfig{{Host: pcfg.ConnConfig.Host}}, pcfg.ConnConfig.Fallbacks...) {
		if strings.Contains(h.Host, "@") {
			// postgres://user:p@ss@host/db: the host is the password's rest and the host, and
			// every error would print it.
			return nil, fmt.Errorf("parse database URL (not shown: it may hold a password): its host holds an \"@\"; write an \"@\" in the password as %%40: %w", paper.ErrInvalid)
		}
	}
	return pcfg, nil
}

// ServicesPort is the loopback port of the development database `make services` runs
// (deploy/services.sh).
const ServicesPort = 55432

// Open connects to PostgreSQL, registers the pgvector types on every connection and checks the
// connection with a ping. The error names the server and database (never the password) and,
// when nothing listens where `make services` serves, suggests it.
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	pcfg, err := parseURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	switch {
	case cfg.MaxConns > 0:
		pcfg.MaxConns = cfg.MaxConns
	case !setsMaxConns(cfg.URL):
		pcfg.MaxConns = max(8, int32(4*runtime.GOMAXPROCS(0)))
	}
	if pcfg.MaxConns < MinConns {
		setting := "the database URL's pool_max_conns"
		if cfg.MaxConns > 0 {
			setting = "MaxConns"
		}
		return nil, tooFewConns(setting, pcfg.MaxConns)
	}
	if pcfg.PingTimeout == 0 {
		// The ping of an idle connection on acquire waits for ever by default: behind a
		// database that went silent (no reset) every acquire would hang.
		pcfg.PingTimeout = 5 * time.Second
	}
	if pcfg.ConnConfig.ConnectTimeout == 0 {
		// Without one, a connection to an address that accepts and never answers (another
		// service's port that waits for its client to speak, a port-forward or a proxy whose
		// database is gone) waits for ever: every command would hang at start.
		pcfg.ConnConfig.ConnectTimeout = DefaultConnectTimeout
	}
	// accepted records the last address that accepted a connection, for Open's message when
	// the start-up then times out (of a URL naming several hosts, the one that went silent).
	var accepted atomic.Pointer[string]
	dial := pcfg.ConnConfig.DialFunc
	pcfg.ConnConfig.DialFunc = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			accepted.Store(&addr)
		}
		return c, err
	}
	pcfg.AfterConnect = func(ctx context.Context, conn *pgx.Conn) error {
		scanUTC(conn)
		if err := boundVanishedClients(ctx, conn); err != nil {
			return afterConnectError(err)
		}
		return afterConnectError(registerVector(ctx, conn))
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if namesNoDatabase(cfg.URL) {
		// PostgreSQL then takes the user's name for it: postgres://paperpipe@host/ is the
		// archive "paperpipe", which a command meant for another database would migrate.
		db := pcfg.ConnConfig.Database
		if db == "" {
			db = pcfg.ConnConfig.User
		}
		log.Warn("the database URL names no database: connecting to the one named after its user, as PostgreSQL does",
			"database", db)
	}
	cc := pcfg.ConnConfig
	if cfg.EFSearch < 0 {
		cfg.EFSearch = 0
	}
	if cfg.VectorIndex == "" {
		cfg.VectorIndex = DefaultIndexKind
	}
	if cfg.RowLockTimeout <= 0 {
		cfg.RowLockTimeout = DefaultRowLockTimeout
	}
	if cfg.KeywordRankLimit == 0 {
		cfg.KeywordRankLimit = DefaultKeywordRankLimit
	}
	s := &Store{
		rowLockTimeout: cfg.RowLockTimeout,
		keywordLimit:   cfg.KeywordRankLimit,
		ef:             min(cfg.EFSearch, MaxK),
		index:          cfg.VectorIndex,
		indexMemory:    cfg.IndexMemory,
		log:            log,
		target:         fmt.Sprintf("%s@%s:%d/%s", cc.User, cc.Host, cc.Port, cc.Database),
		servicesDB:     cc.Port == ServicesPort && (cc.Host == "127.0.0.1" || cc.Host == "localhost" || cc.Host == "::1"),
		spaces:         make(map[int64]spaceRow),
	}
	// The probe needs no pgvector types; its connection is made by its first Ping.
	probe := pcfg.Copy()
	probe.MaxConns, probe.MinConns, probe.MinIdleConns, probe.AfterConnect = 1, 0, 0, nil
	s.pool, err = pgxpool.NewWithConfig(ctx, pcfg)
	if err != nil {
		return nil, fmt.Errorf("open database %s: %w", s.target, err)
	}
	if s.probe, err = pgxpool.NewWithConfig(ctx, probe); err != nil {
		s.pool.Close()
		return nil, fmt.Errorf("open database %s: %w", s.target, err)
	}
	// A pooled connection, with the pgvector types: the pool works.
	if err := s.ping(ctx, s.pool); err != nil {
		s.Close()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil { // the connect timeout's
			wait := pcfg.ConnConfig.ConnectTimeout
			if addr := accepted.Load(); addr != nil {
				return nil, fmt.Errorf("connect to database %s: %s accepted the connection but did not answer as PostgreSQL within %s "+
					"(another service's port? a port-forward or proxy whose database is down? connect_timeout in the URL sets the wait, in seconds): %w",
					s.target, *addr, wait, err)
			}
			return nil, fmt.Errorf("connect to database %s: no connection within %s (is the host up and the port open to this one? "+
				"connect_timeout in the URL sets the wait, in seconds): %w", s.target, wait, err)
		}
		return nil, err
	}
	return s, nil
}

// DefaultConnectTimeout bounds each new connection of a store whose URL sets no
// connect_timeout.
const DefaultConnectTimeout = 10 * time.Second

// setsMaxConns reports whether the connection string conn (already parsed by
// pgxpool.ParseConfig, which keeps no trace of it) sets pool_max_conns: pgconn keeps a setting
// it does not know as a runtime parameter.
func setsMaxConns(conn string) bool {
	c, err := pgconn.ParseConfig(conn)
	if err != nil {
		return false
	}
	_, ok := c.RuntimeParams["pool_max_conns"]
	return ok
}

// scanUTC makes conn return the timestamptz values it reads in UTC (pgx's default is the
// process's time zone, time.Local): a paper's published date, the times of --json and the
// tables, are the same whatever TZ a command runs with, and the same as the web shows.
func scanUTC(conn *pgx.Conn) {
	conn.TypeMap().RegisterType(&pgtype.Type{Name: "timestamptz", OID: pgtype.TimestamptzOID,
		Codec: &pgtype.TimestamptzCodec{ScanLocation: time.UTC}})
}

// IdleInTransactionTimeout bounds how long a transaction of the store may sit idle between two
// of its round trips before the server ends its session, rolling it back: the
// idle_in_transaction_session_timeout of every connection of a store whose server, role,
// database or URL sets none, or a longer one. The store sends each statement of a transaction
// as soon as the last one answers, so such a wait is a client gone: its host died, or lost its
// network for good, between two statements (a crash, a laptop closed, a partition), without a
// word to the server. Without a bound the server kept the transaction, and its locks, until its
// TCP keepalive gave up, two hours and more by default: a worker's save held its papers' rows
// (every later save of them failing, see writeTx), a `spaces create`, `activate`, `drop` or
// `reindex`, a load or a batch job's claim held the spaces table or the embeddings, and every
// worker's start, save or space command waited behind it. It is shorter than a worker's save
// attempt (15 s), so that the worker's retry of the save, on a new connection, finds the rows
// free.
const IdleInTransactionTimeout = 10 * time.Second

// KeepaliveIdle, KeepaliveInterval and KeepaliveCount are the server's TCP keepalive settings
// (tcp_keepalives_idle, _interval, _count) of every connection of a store whose server, role,
// database or URL sets none or longer ones (more probes): the server sends its first probe
// after KeepaliveIdle without traffic and ends the session after KeepaliveCount unanswered ones,
// KeepaliveInterval apart — about a minute after the client's host vanished without a word (a
// crash, a laptop closed, a partition). A session-level advisory lock lasts as long as its
// session, and a session that holds one sits idle, outside any transaction, which
// IdleInTransactionTimeout does not end: a `reprocess` run's lock, a batch job's, the index
// build lock or the migration lock of a vanished holder was kept until the server's TCP
// keepalive gave up, two hours and more by default (the kernel's 7200 s before the first
// probe), and every later run, job, space change or start waited or was refused that long.
// Connections over a Unix-domain socket have no keepalive: their client is on the server's
// host.
const (
	KeepaliveIdle     = 30 * time.Second
	KeepaliveInterval = 10 * time.Second
	KeepaliveCount    = 3
)

// ClientCheckInterval is how often the server looks, while it runs a statement of the store,
// whether the client is still connected (client_connection_check_interval, PostgreSQL 14 and
// later), on every connection of a store whose server, role, database or URL sets none or a
// longer one. The server otherwise notices a client gone only when it next writes to it: a
// statement whose process was killed (SIGKILL, the OOM killer, a Job evicted) ran on to its end
// for no one, holding its locks — a `spaces drop`'s DELETE of a big space (the spaces table,
// which every `activate`, new space and worker start waits for, and the index lock), a
// `spaces reindex`'s build (the index lock: minutes at a million vectors, and then a second,
// finished index that every write of the table updates until the next reindex drops it), a
// migration's batches (the migration lock every process's start waits for) — and the same
// command run again waited for it. With the check it is cancelled, and rolled back, within this
// long of the kill: the kernel of a killed process closes its connections, which the server
// sees (on Linux). A client whose host vanished without a word closes nothing: see Keepalive*.
const ClientCheckInterval = time.Second

// boundVanishedClients sets IdleInTransactionTimeout as conn's
// idle_in_transaction_session_timeout, ClientCheckInterval as its
// client_connection_check_interval, and the Keepalive settings as its tcp_keepalives_idle,
// _interval and _count, each unless the session's is already shorter (set for the server, the
// role, the database or in the URL; the kernel's when the server leaves it to the kernel) — not
// as start-up parameters, which a connection pooler such as PgBouncer refuses. A server too old
// to have a setting (client_connection_check_interval before PostgreSQL 14) is left without it.
func boundVanishedClients(ctx context.Context, conn *pgx.Conn) error {
	if _, err := conn.Exec(ctx, `SELECT set_config(name, want::text, false) FROM pg_settings JOIN (VALUES
			('idle_in_transaction_session_timeout', `+strconv.FormatInt(IdleInTransactionTimeout.Milliseconds(), 10)+`),
			('client_connection_check_interval', `+strconv.FormatInt(ClientCheckInterval.Milliseconds(), 10)+`),
			('tcp_keepalives_idle', `+strconv.Itoa(int(KeepaliveIdle/time.Second))+`),
			('tcp_keepalives_interval', `+strconv.Itoa(int(KeepaliveInterval/time.Second))+`),
			('tcp_keepalives_count', `+strconv.Itoa(KeepaliveCount)+`)) AS bound(name, want) USING (name)
		WHERE setting::bigint = 0 OR setting::bigint > want`); err != nil {
		return fmt.Errorf("set idle_in_transaction_session_timeout, client_connection_check_interval and tcp_keepalives: %w", err)
	}
	return nil
}

// registerTypes is pgvector-go's RegisterTypes; a test replaces it to look before a type
// another session creates is there.
var registerTypes = pgvectorpgx.RegisterTypes

// registerVector teaches a new connection pgvector's types. On a database where the vector
// extension has not been created yet it creates it first, as migration 00001 would (which
// cannot run before a connection exists): that works for the database's owner when the
// extension is installed on the server; otherwise the error says what to run, and as whom.
func registerVector(ctx context.Context, conn *pgx.Conn) error {
	err := registerTypes(ctx, conn)
	if err == nil {
		return nil
	}
	var (
		missing    bool
		schema     *string // where the extension is, if it exists
		usable     bool    // whether the session's role may use that schema
		searchPath string
		role       string
	)
	if qerr := conn.QueryRow(ctx, `SELECT to_regtype('vector') IS NULL, n.nspname, coalesce(has_schema_privilege(n.oid, 'USAGE'), false),
			current_setting('search_path'), current_user
		FROM (SELECT) AS one LEFT JOIN (pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace) ON e.extname = 'vector'`).
		Scan(&missing, &schema, &usable, &searchPath, &role); qerr != nil {
		return fmt.Errorf("register pgvector types: %w", err)
	}
	if !missing {
		// The type is there now, and was not when RegisterTypes looked: a standby replaying the
		// primary's CREATE EXTENSION between the two queries, or another session creating it
		// and committing in between. A type does not come and go, so looking again finds it.
		if err := registerTypes(ctx, conn); err != nil {
			return fmt.Errorf("register pgvector types: %w", err)
		}
		return nil
	}
	if schema != nil && !usable {
		// Created in a schema the role may not use (another archive's, in this database: a role
		// that may create it creates it in the first schema of its search_path): the search_path
		// passes over such a schema, and naming it there changes nothing.
		return fmt.Errorf("the vector extension of database %s is in schema %q, which role %s may not use: have its owner or an "+
			"administrator GRANT USAGE ON SCHEMA %s TO %s, and name it on the search_path after the schemas there: %w",
			conn.Config().Database, *schema, role, sqlName(*schema), sqlName(role), err)
	}
	if schema != nil {
		// Created in a schema of its own (as hosted PostgreSQL services do), off this
		// connection's search_path: creating it again would change nothing.
		path := strings.ReplaceAll(searchPath, " ", "") + "," + *schema
		return fmt.Errorf("the vector extension of database %s is in schema %q, which is not on the search_path (%s): "+
			"add it after the schemas there, e.g. search_path=%s in DATABASE_URL's parameters "+
			"(or ALTER ROLE %s SET search_path = %s): %w",
			conn.Config().Database, *schema, searchPath, path, conn.Config().User, path, err)
	}
	if _, err := conn.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS vector"); err != nil {
		pe := (*pgconn.PgError)(nil)
		if errors.As(err, &pe) && pe.Code == "23505" && registerTypes(ctx, conn) == nil {
			// unique_violation: another session created it at the same moment (processes
			// started together on a new database, or two connections of one pool), and
			// IF NOT EXISTS did not see it before that session committed. It exists now.
			return nil
		}
		if errors.As(err, &pe) && pe.Code == "25006" {
			return fmt.Errorf("database %s is read-only (a hot standby) and has no vector extension yet: it is created on the primary "+
				"and reaches a replica by replication: %w", conn.Config().Database, ErrSchemaBehind)
		}
		return fmt.Errorf("the vector extension is not created in database %s, and this role could not create it "+
			"(run CREATE EXTENSION vector there as a superuser, or use `make services`, which does): %w", conn.Config().Database, err)
	}
	if err := registerTypes(ctx, conn); err != nil {
		return fmt.Errorf("register pgvector types after creating the vector extension: %w", err)
	}
	return nil
}

// urlSchemeRe is a URL's scheme (RFC 3986), and a JDBC URL's two (jdbc:postgresql). Only
// JDBC's has a colon: user:password before a "://" in the password is no scheme.
var urlSchemeRe = regexp.MustCompile(`^(?i:jdbc:)?[A-Za-z][A-Za-z0-9+.-]*$`)

// keyValueRe is the start of keyword/value settings (host=… dbname=…).
var keyValueRe = regexp.MustCompile(`^\s*[A-Za-z_]+\s*=`)

// urlShapeError says what is wrong with a connection string that pgx could not parse when it
// is neither of the two shapes pgx reads — a URL of another scheme (mysql://, POSTGRES://,
// jdbc:postgresql://) or one without a scheme (host:5432/db) — or "" when it is one of them.
// pgx reads anything but a postgres:// or postgresql:// URL as keyword/value settings, and
// its error ("failed to parse as keyword/value") names neither the mistake nor the fix. The
// scheme is shown only when it is one (it holds no part of a password).
func urlShapeError(raw string) string {
	const want = "want postgres://USER@HOST:PORT/DATABASE (or postgresql://), or keyword=value settings (host=HOST dbname=DATABASE)"
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") || keyValueRe.MatchString(raw) {
		return ""
	}
	if scheme, _, ok := strings.Cut(raw, "://"); ok {
		if urlSchemeRe.MatchString(scheme) {
			return fmt.Sprintf("its scheme is %q, not postgres: %s", scheme, want)
		}
		return "its scheme is not postgres: " + want
	}
	return "it is a URL with no scheme, or not a URL: " + want
}

// dbnameRe finds a dbname setting among keyword/value settings.
var dbnameRe = regexp.MustCompile(`(^|\s)dbname\s*=`)

// namesNoDatabase reports whether connection string raw (already parsed by pgx) leaves the
// database to PostgreSQL's default, the user's name: a URL without a path or dbname parameter,
// or keyword/value settings without dbname, with PGDATABASE unset.
func namesNoDatabase(raw string) bool {
	if os.Getenv("PGDATABASE") != "" {
		return false
	}
	if strings.HasPrefix(raw, "postgres://") || strings.HasPrefix(raw, "postgresql://") {
		u, err := neturl.Parse(raw)
		return err == nil && strings.Trim(u.Path, "/") == "" && u.Query().Get("dbname") == ""
	}
	return !dbnameRe.MatchString(raw)
}

// parseErrorText is what a connection string failed to parse on, without the string: pgconn's
// ParseConfigError quotes it with the password masked only as far as it can tell (an escaped
// space in a key/value password, say), and a URL's *url.Error quotes it whole. Nor does it
// quote a word of keyword/value settings that has no "=": the rest of a password with an
// unquoted space (password=my secret) is such a word, which pgconn's error names.
func parseErrorText(err error) string {
	var ue *neturl.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	msg := err.Error()
	var pe *pgconn.ParseConfigError
	if errors.As(err, &pe) {
		if i := strings.LastIndex(msg, "`: "); i >= 0 {
			msg = msg[i+len("`: "):]
		} else {
			msg = "cannot parse it"
		}
	}
	if strings.Contains(msg, `missing "=" after `) {
		msg = `a word without "=" (a value holding a space, a password's too, is quoted: password='two words')`
	}
	if strings.Contains(msg, "sslmode is invalid") {
		msg += " (sslmode takes disable, allow, prefer, require, verify-ca or verify-full)"
	}
	return msg
}

// Ping checks that the database answers, on a connection of its own (one more than the
// pool's MaxConns, made by the first Ping and kept): a pool whose every connection is busy
// with slow queries does not make it fail. When that connection cannot be had (a server whose
// max_connections are used up refuses a new one, and the probe's must be made again after its
// lifetime or a restart), a connection of the pool that answers is the database's answer: the
// process can serve its reads.
func (s *Store) Ping(ctx context.Context) error {
	err := s.ping(ctx, s.probe)
	if err != nil && ctx.Err() == nil && s.pool.Ping(ctx) == nil {
		return nil
	}
	return err
}

func (s *Store) ping(ctx context.Context, pool *pgxpool.Pool) error {
	if err := pool.Ping(ctx); err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) {
			hint := ""
			if s.servicesDB {
				hint = " (start the local one with `make services`)"
			}
			return fmt.Errorf("connect to database %s: nothing is listening there%s: %w", s.target, hint, err)
		}
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "08P01" && strings.HasPrefix(pe.Message, "unsupported startup parameter") {
			// PgBouncer's refusal of a start-up parameter it does not pass on: given as one
			// ("unsupported startup parameter: search_path"), or, by PgBouncer 1.20 and later
			// (and Supavisor, Neon's pooler), inside options=-c … ("unsupported startup
			// parameter in options: search_path").
			param, inOptions := strings.CutPrefix(pe.Message, "unsupported startup parameter in options:")
			if !inOptions {
				param = strings.TrimPrefix(param, "unsupported startup parameter:")
			}
			param = strings.TrimSpace(param)
			set := "ALTER ROLE … SET " + param + " = …"
			if param == "options" {
				set = "ALTER ROLE … SET search_path = … for options=-c search_path=…"
			}
			if inOptions {
				param += " (in options)"
			}
			return fmt.Errorf("connect to database %s: %w (a connection pooler, PgBouncer, passes on only the start-up parameters it knows: "+
				"leave %s out of DATABASE_URL and set it for the role or the database instead, %s, which reaches the sessions "+
				"the pooler opens)", s.target, err, param, set)
		}
		return fmt.Errorf("connect to database %s: %w", s.target, err)
	}
	return nil
}

// Close closes every connection of the pool, waiting for connections in use to be released.
func (s *Store) Close() {
	s.pool.Close()
	s.probe.Close()
}

// Pool returns the underlying connection pool. It is meant for tests and benchmarks that need
// to inspect or load the database directly; application code uses the Store's methods.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// MigrationState is one migration and whether it has been applied.
type MigrationState struct {
	Version   int64
	Name      string // file name, e.g. 00001_init.sql; "" when Unknown
	Applied   bool
	AppliedAt time.Time // zero when not applied
	// Unknown marks a migration applied to the database that this binary does not know: one
	// of a newer paperpipe.
	Unknown bool
}

// Migrate applies every pending migration. It is idempotent, and safe to run from several
// processes at once: a session advisory lock serialises them, and a process that finds it
// held says so and waits for it up to MigrationLockWait. goose's version table lives in the
// current schema (the first of the search_path), like the tables it versions.
//
// A migration that alters a table waits for every session that holds the table (a long
// search, a transaction left open), and while it waits every query and write of the table
// queues behind it. So each waits at most the lock_timeout of the store's ddlWait, as
// DropSpace does, and is tried again after a pause that lets the queue through; when the
// table stays held for all the tries, Migrate fails naming the sessions that hold it, with
// that migration and those after it not applied.
func (s *Store) Migrate(ctx context.Context) error {
	w, err := s.lockedDDLWait(ctx, s.pool)
	if err != nil {
		return fmt.Errorf("migrate database %s: %w", s.target, err)
	}
	for try := 1; ; try++ {
		err := s.migrate(ctx, w.timeout)
		if lost := migrationCut(ctx, err); lost != "" {
			return fmt.Errorf("migrate database %s: %s: %w", s.target, lost, paper.ErrUnavailable)
		}
		var pe *pgconn.PgError
		if !errors.As(err, &pe) || pe.Code != "55P03" /* lock_not_available: the lock_timeout */ {
			return err
		}
		name := "a migration"
		if partial := (*goose.PartialError)(nil); errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
			name = "migration " + path.Base(partial.Failed.Source.Path)
		}
		holders := tableHolders(ctx, s.pool, schemaTables)
		if try == w.tries {
			return fmt.Errorf("migrate database %s: %s could not lock its table, which another session held (%d tries of %s)%s; "+
				"what holds a table so long is a long transaction (a pg_dump, a session left idle in a transaction, a long search "+
				"or report) or an autovacuum; it and the migrations after it were not applied, and the queries queued behind it "+
				"went on: start again once it has ended: %w", s.target, name, w.tries, w.timeout, holders, pe)
		}
		s.log.WarnContext(ctx, name+" waited for its table, which another session holds, trying again (meanwhile the "+
			"table's queries, queued behind it, go on)", "database", s.target, "try", try, "of", w.tries,
			"lock_timeout", w.timeout, "held", strings.TrimPrefix(holders, ", held by "))
		select {
		case <-ctx.Done():
			return fmt.Errorf("migrate database %s: %w", s.target, ctx.Err())
		case <-time.After(w.pause):
		}
	}
}

// migrationCut says, for Migrate's error, what happened when err is that of a migration whose
// connection was lost under it — the server restarted, failed over or ended the session
// (57P01–57P03, a connection exception, a reset): "" otherwise. goose's error then joins the
// lost connection's with those of its clean-up on it ("reset the migrations' lock_timeout:
// driver: bad connection", "failed to execute pg_advisory_unlock: sql: connection is already
// closed"), and said neither what had happened nor what to do. Nothing is lost: a migration in
// a transaction is rolled back, and those that work in batches (00014, 00017) keep the batches
// committed and, applied again, write only what is left; the lock goes with the session.
func migrationCut(ctx context.Context, err error) string {
	if err == nil || ctx.Err() != nil || !dbUnavailable(err) {
		return ""
	}
	cause := err
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		if c := pe.Code; strings.HasPrefix(c, "53") || strings.HasPrefix(c, "28") || c == "25006" {
			return "" // a full disk, a refused login, a standby: not a lost connection, said as they are
		}
		cause = pe
	}
	name := "a migration"
	if partial := (*goose.PartialError)(nil); errors.As(err, &partial) && partial.Failed != nil && partial.Failed.Source != nil {
		name = "migration " + path.Base(partial.Failed.Source.Path)
		if partial.Err != nil && !errors.As(partial.Err, &pe) {
			cause = partial.Err
		}
	}
	return fmt.Sprintf("the connection to the database was lost while %s was applied (the server restarted or failed over, or "+
		"the session was ended: %v); it was not recorded as applied, and what it committed stays (a migration in a "+
		"transaction is rolled back; one that works in batches keeps those done, and goes on with the rest): start again "+
		"once the database answers, and the migrations go on from there", name, firstLine(cause.Error()))
}

// firstLine is s up to its first newline.
func firstLine(s string) string {
	line, _, _ := strings.Cut(s, "\n")
	return line
}

// lockedDDLWait is s.ddlWait, or lockedDDLWait of db's deadlock_timeout when it is zero.
func (s *Store) lockedDDLWait(ctx context.Context, db querier) (ddlWait, error) {
	if s.ddlWait.tries != 0 {
		return s.ddlWait, nil
	}
	var ms int64
	if err := db.QueryRow(ctx, "SELECT setting::bigint FROM pg_settings WHERE name = 'deadlock_timeout'").Scan(&ms); err != nil {
		return ddlWait{}, fmt.Errorf("read deadlock_timeout: %w", err)
	}
	return lockedDDLWait(time.Duration(ms) * time.Millisecond), nil
}

// migrate applies the pending migrations once, each waiting for a lock at most lockTimeout.
func (s *Store) migrate(ctx context.Context, lockTimeout string) error {
	return s.withProvider(ctx, lockTimeout, func(p *goose.Provider) error {
		results, err := p.Up(ctx)
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "25006" {
			return fmt.Errorf("migrate database %s: it is read-only (a hot standby, or default_transaction_read_only), "+
				"and migrations are applied on the primary: %w", s.target, err)
		}
		if pe := (*pgconn.PgError)(nil); errors.As(err, &pe) && pe.Code == "42501" {
			return fmt.Errorf("migrate database %s: %w%s", s.target, err, s.privilegeHint(ctx, err))
		}
		if err != nil {
			return fmt.Errorf("migrate database %s: %w", s.target, err)
		}
		if err := s.checkOwnership(ctx); err != nil {
			return fmt.Errorf("migrate database %s: %w", s.target, err)
		}
		for _, r := range results {
			s.log.InfoContext(ctx, "applied migration", "file", path.Base(r.Source.Path),
				"version", r.Source.Version, "duration", r.Duration)
		}
		newer, err := s.newerMigrations(ctx, p)
		if err != nil {
			return fmt.Errorf("migrate database %s: %w", s.target, err)
		}
		if len(newer) == 0 { // a newer release's migrations may have changed what they made
			if err := s.checkObjects(ctx); err != nil {
				return fmt.Errorf("migrate database %s: %w", s.target, err)
			}
			if err := s.checkFunctionPaths(ctx); err != nil {
				return fmt.Errorf("migrate database %s: %w", s.target, err)
			}
		}
		if len(newer) > 0 {
			versions := make([]int64, len(newer))
			for i, m := range newer {
				versions[i] = m.Version
			}
			s.log.WarnContext(ctx, "the database's schema is newer than this paperpipe's: a newer paperpipe applied migrations "+
				"this one does not know, and this one may misread what that one stores or store what it no longer expects; "+
				"run the newer paperpipe", "database", s.target, "unknown_migrations", versions,
				"known_up_to", lastVersion(p))
		}
		return nil
	})
}

// privilegeHint says what the role lacks when a migration was refused a privilege
// (insufficient_privilege): paperpipe's tables in the current schema belong to another role
// (see ownershipHint); or, with none there yet, the role may not create tables in the schema
// (public of a database it does not own, since PostgreSQL 15). "" when the catalog cannot be
// read.
func (s *Store) privilegeHint(ctx context.Context, err error) string {
	if hint := s.extensionHint(ctx, err); hint != "" {
		return hint
	}
	role, schema, owners, err := s.tableOwners(ctx)
	if err != nil || schema == nil {
		return ""
	}
	if owners != nil {
		return ownershipHint(role, *schema, *owners)
	}
	r, sc := sqlName(role), sqlName(*schema)
	return fmt.Sprintf(" (role %s may not create tables in schema %s: make it the database's owner "+
		"(ALTER DATABASE … OWNER TO %s) or GRANT CREATE ON SCHEMA %s TO %s)", role, *schema, r, sc, r)
}

// unaccentMigration is the migration that creates the unaccent extension.
const unaccentMigration = 13

// extensionHint says what to ask for when err, a migration's refusal of a privilege, is that of
// the extension it creates: unaccent (migration 00013, keyword search's accent folding), a
// trusted extension that a role with CREATE on the database — its owner — may create, which
// hosted PostgreSQL services' application roles often lack. "" for another migration's, when
// the extension exists or the role may create it, or when the catalog cannot be read.
func (s *Store) extensionHint(ctx context.Context, err error) string {
	if partial := (*goose.PartialError)(nil); !errors.As(err, &partial) || partial.Failed == nil ||
		partial.Failed.Source == nil || partial.Failed.Source.Version != unaccentMigration {
		return ""
	}
	var (
		role, db string
		refused  bool
		unusable *string // the schema of an unaccent the role may not use
	)
	if err := s.pool.QueryRow(ctx, `SELECT current_user, current_database(),
			NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'unaccent')
			AND NOT has_database_privilege(current_database(), 'CREATE'),
			(SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
				WHERE e.extname = 'unaccent' AND NOT has_schema_privilege(n.oid, 'USAGE'))`).Scan(&role, &db, &refused, &unusable); err != nil {
		return ""
	}
	if unusable != nil {
		// Created by a role that could, in the first schema of its search_path: another
		// archive's schema in this database, whose owner alone may use it.
		return fmt.Sprintf(" (migration 00013 needs PostgreSQL's unaccent extension, with which keyword search folds accents; "+
			"database %s has it in schema %s, which role %s may not use: have the schema's owner or an administrator "+
			"GRANT USAGE ON SCHEMA %s TO %s, or move the extension to a schema every archive's role may use "+
			"(ALTER EXTENSION unaccent SET SCHEMA public, as its owner; what other archives made of it follows), and start again; "+
			"nothing after migration 00012 was applied)", db, *unusable, role, sqlName(*unusable), sqlName(role))
	}
	if !refused {
		return ""
	}
	return fmt.Sprintf(" (migration 00013 needs PostgreSQL's unaccent extension, with which keyword search folds accents, and role %s "+
		"may not create extensions in database %s: have the database's owner or an administrator run CREATE EXTENSION unaccent "+
		"in it (one of PostgreSQL's contrib modules, which hosted services offer; in any schema the role may use), or GRANT CREATE "+
		"ON DATABASE %s TO %s, and start again; nothing after migration 00012 was applied)", role, db, sqlName(db), sqlName(role))
}

// paperpipeTables are the tables of paperpipe's migrations.
var paperpipeTables = []string{"api_usage", "batch_items", "batch_jobs", "embedding_spaces", "embeddings", "offline_models", "papers", "tldrs"}

// tableOwners returns the role the store's sessions act as, the current schema (nil when the
// search_path names none that exists), and the owners of paperpipe's tables there whose
// rights that role does not have (nil when it has them all): a dump restored by an
// administrator without --no-owner, or with it as another role, or tables an administrator
// migrated and granted rights on.
func (s *Store) tableOwners(ctx context.Context) (role string, schema, owners *string, err error) {
	err = s.pool.QueryRow(ctx, `SELECT current_user, current_schema(),
		(SELECT string_agg(DISTINCT tableowner, ', ') FROM pg_tables
			WHERE schemaname = current_schema() AND tablename = ANY($1) AND NOT pg_has_role(tableowner, 'USAGE'))`,
		paperpipeTables).Scan(&role, &schema, &owners)
	return role, schema, owners, err
}

// ownershipHint says, for a message, that paperpipe's tables in schema belong to owners, not
// to role, which must own them (or have their owner's rights), and what to run.
func ownershipHint(role, schema, owners string) string {
	r := sqlName(role)
	return fmt.Sprintf(" (tables in schema %s belong to %s, not to %s, the role paperpipe connects as, which must own them: "+
		"migrations alter them and each embedding space's index is created on them, which rights granted on them do not allow; "+
		"restore the dump as that role, connected as it or with pg_restore --no-owner --role=%s, or have each table's owner "+
		"run ALTER TABLE … OWNER TO %s, or GRANT the owner's role TO %s)", schema, owners, role, role, r, r)
}

// checkOwnership refuses a store whose role does not own paperpipe's tables (nor has their
// owner's rights): with nothing to migrate it would go to work, and fail with PostgreSQL's
// bare "must be owner of table embeddings" only at the next new space's index build (a worker
// started with a new model, a `reprocess` or `fit` minutes into its work) or the next
// release's migrations.
func (s *Store) checkOwnership(ctx context.Context) error {
	role, schema, owners, err := s.tableOwners(ctx)
	if err != nil {
		return fmt.Errorf("read the owners of the tables: %w", err)
	}
	if schema != nil && owners != nil {
		return fmt.Errorf("role %s may not build an embedding space's index nor migrate%s: %w",
			role, ownershipHint(role, *schema, *owners), ErrNotOwner)
	}
	return nil
}

// migratedTables are the tables of paperpipe's migrations whose absence checkObjects reports.
var migratedTables = append([]string{"removed_papers", "withheld_tldrs"}, paperpipeTables...)

// checkObjects refuses a schema whose migrations are recorded as applied but that lacks tables
// or the text search configuration they made: a dump restored part way, pg_restore going on past
// its errors — most often a dump of a database whose vector and unaccent extensions were in
// another schema than the new one's (pg_dump names what depends on them with that schema:
// public.vector, public.unaccent), which leaves no embeddings table and no paperpipe_english.
// Every command then started and failed at its first query of them ("relation \"embeddings\"
// does not exist", "text search configuration \"paperpipe_english\" does not exist"), saying
// nothing of the restore.
func (s *Store) checkObjects(ctx context.Context) error {
	var schema, missing *string
	if err := s.pool.QueryRow(ctx, `SELECT current_schema(), nullif(concat_ws(', ',
			(SELECT string_agg(t, ', ' ORDER BY t) FROM unnest($1::text[]) t
				WHERE to_regclass(quote_ident(current_schema()) || '.' || quote_ident(t)) IS NULL),
			CASE WHEN NOT EXISTS (SELECT 1 FROM pg_ts_config WHERE cfgname = 'paperpipe_english'
				AND cfgnamespace = to_regnamespace(quote_ident(current_schema())))
				THEN 'the text search configuration paperpipe_english' END), '')`, migratedTables).Scan(&schema, &missing); err != nil {
		return fmt.Errorf("look up the migrations' tables: %w", err)
	}
	if schema == nil || missing == nil {
		return nil
	}
	var ext string
	if err := s.pool.QueryRow(ctx, `SELECT coalesce(string_agg(e.extname || ' in schema ' || n.nspname, ', ' ORDER BY e.extname), 'none')
		FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname IN ('vector', 'unaccent')`).Scan(&ext); err != nil {
		ext = "unknown"
	}
	return fmt.Errorf("schema %s lacks what the migrations recorded as applied there made (%s): a restore that stopped part way "+
		"(pg_restore reports its errors, and goes on); most often the dump's database had the vector and unaccent extensions "+
		"in another schema than this one's (%s), and pg_dump names what uses them with that schema (public.vector): "+
		"restore into a new database whose extensions are in the same schema as the dumped one's, and move them after "+
		"(ALTER EXTENSION vector SET SCHEMA …), or restore with no errors: %w", *schema, *missing, ext, ErrIncomplete)
}

// checkFunctionPaths refuses a schema whose functions do not find it by the search_path they
// run with: the migrations made papers_tsv (the trigger that indexes a paper's title and
// abstract, which calls papers_tsv_of) and papers_tsv_of with the search_path of their session
// (SET search_path FROM CURRENT: a restore with --data-only writes the rows with an empty one),
// which names the schema as it was called then. Renamed (ALTER SCHEMA a RENAME TO b), the
// schema is not on that path any more: every command started, and every paper written failed
// with "function papers_tsv_of(text, text) does not exist" — ingest's workers, import. A
// function's search_path is read as PostgreSQL reads it (the schemas of it that exist and the
// role may use), in a transaction rolled back.
func (s *Store) checkFunctionPaths(ctx context.Context) error {
	// Only paperpipe's: another function of the schema (public's, an extension's, a DBA's
	// SECURITY DEFINER one with search_path = pg_catalog) may set a search_path without it.
	rows, err := s.pool.Query(ctx, `SELECT p.oid::regprocedure::text, substr(c, length('search_path=') + 1), current_schema()
		FROM pg_proc p CROSS JOIN LATERAL unnest(p.proconfig) c
		WHERE p.pronamespace = to_regnamespace(quote_ident(current_schema())) AND p.proname = ANY($1)
			AND c LIKE 'search\_path=%'
		ORDER BY 1`, pathFunctions)
	if err != nil {
		return fmt.Errorf("look up the search_path of the migrations' functions: %w", err)
	}
	type function struct{ name, path string }
	var funcs []function
	for rows.Next() {
		var f function
		var current string
		if err := rows.Scan(&f.name, &f.path, &current); err != nil {
			rows.Close()
			return fmt.Errorf("look up the search_path of the migrations' functions: %w", err)
		}
		// A path naming the current schema finds it (it exists, and the role uses it): only
		// another path — a renamed schema's, or "$user" — is read as PostgreSQL reads it, below.
		if !slices.Contains(pathSchemas(f.path), current) {
			funcs = append(funcs, f)
		}
	}
	if err := rows.Err(); err != nil || len(funcs) == 0 {
		if err != nil {
			return fmt.Errorf("look up the search_path of the migrations' functions: %w", err)
		}
		return nil
	}
	tx, err := s.pool.Begin(ctx)
	if err != nil {
		return fmt.Errorf("look up the search_path of the migrations' functions: %w", err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx)) //nolint:errcheck // read only; nothing to keep
	var schema, path string
	if err := tx.QueryRow(ctx, "SELECT current_schema(), current_setting('search_path')").Scan(&schema, &path); err != nil {
		return fmt.Errorf("look up the search_path of the migrations' functions: %w", err)
	}
	var stale []function
	for _, f := range funcs {
		var found bool
		if err := tx.QueryRow(ctx, "SELECT set_config('search_path', $1, true)", f.path).Scan(new(string)); err != nil {
			return fmt.Errorf("read the search_path of function %s: %w", f.name, err)
		}
		if err := tx.QueryRow(ctx, "SELECT $1 = ANY(current_schemas(false))", schema).Scan(&found); err != nil {
			return fmt.Errorf("read the search_path of function %s: %w", f.name, err)
		}
		if !found {
			stale = append(stale, f)
		}
	}
	if len(stale) == 0 {
		return nil
	}
	names, fix := make([]string, len(stale)), make([]string, len(stale))
	for i, f := range stale {
		names[i] = fmt.Sprintf("%s (search_path %s)", f.name, f.path)
		fix[i] = fmt.Sprintf("ALTER FUNCTION %s.%s SET search_path = %s;", sqlName(schema), f.name, path)
	}
	return fmt.Errorf("the functions %s of schema %s run with a search_path that does not name the schema: it was renamed "+
		"(ALTER SCHEMA … RENAME TO %s) after the migrations made them with its old name, and every paper written would fail "+
		"(function papers_tsv_of(text, text) does not exist); as the tables' owner, run %s and start again: %w",
		strings.Join(names, ", "), schema, sqlName(schema), strings.Join(fix, " "), ErrFunctionPath)
}

// pathSchemas are the schema names of search_path setting path as a function's configuration
// holds it: comma-separated, each bare or double-quoted ("" for a quote).
func pathSchemas(path string) []string {
	var names []string
	for part := range strings.SplitSeq(path, ",") {
		part = strings.TrimSpace(part)
		if len(part) >= 2 && part[0] == '"' && part[len(part)-1] == '"' {
			part = strings.ReplaceAll(part[1:len(part)-1], `""`, `"`)
		}
		names = append(names, part)
	}
	return names
}

// pathFunctions are the functions the migrations made with SET search_path FROM CURRENT.
var pathFunctions = []string{"papers_tsv", "papers_tsv_of"}

// ErrFunctionPath is wrapped by Migrate's error when the migrations' functions do not find
// their schema (see checkFunctionPaths).
var ErrFunctionPath = errors.New("the functions' search_path does not name their schema")

// ErrIncomplete is wrapped by Migrate's error when the schema lacks what its applied migrations
// made (see checkObjects).
var ErrIncomplete = errors.New("the database's schema is incomplete")

// ErrNotOwner is wrapped by Migrate's error when the store's role does not own paperpipe's
// tables (see checkOwnership).
var ErrNotOwner = errors.New("the tables belong to another role")

// sqlName is name as SQL reads it: as it is when it needs no quotes, quoted otherwise.
func sqlName(name string) string {
	if plainName.MatchString(name) {
		return name
	}
	return pgx.Identifier{name}.Sanitize()
}

var plainName = regexp.MustCompile(`^[a-z_][a-z0-9_]*$`)

// lastVersion is the version of the last migration p knows.
func lastVersion(p *goose.Provider) int64 {
	src := p.ListSources()
	if len(src) == 0 {
		return 0
	}
	return src[len(src)-1].Version
}

// newerMigrations lists the migrations applied to the database above the last one p knows:
// those of a newer paperpipe, which goose itself passes over in silence.
func (s *Store) newerMigrations(ctx context.Context, p *goose.Provider) ([]MigrationState, error) {
	rows, err := s.pool.Query(ctx, `SELECT version_id, max(tstamp) FROM goose_db_version
		WHERE is_applied AND version_id > $1 GROUP BY version_id ORDER BY version_id`, lastVersion(p))
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (MigrationState, error) {
		m := MigrationState{Applied: true, Unknown: true}
		err := r.Scan(&m.Version, &m.AppliedAt)
		return m, err
	})
	if err != nil {
		return nil, fmt.Errorf("read applied migrations: %w", err)
	}
	return out, nil
}

// ErrSchemaBehind marks a database that lacks migrations this binary knows (CheckSchema).
var ErrSchemaBehind = errors.New("the database's schema is older than this paperpipe's")

// CheckSchema returns nil when every migration this binary knows is applied, and applies
// none: it is the check of a read replica, whose schema comes from its primary by
// replication. A schema that lacks one is an error wrapping ErrSchemaBehind naming it.
func (s *Store) CheckSchema(ctx context.Context) error {
	// goose creates its version table when it is missing, which a standby refuses: one that
	// has replayed no migration yet is behind, like one that lacks the last. The table is the
	// current schema's, as goose's is: another archive's, in a schema later on the search_path,
	// is not this one's.
	var versioned bool
	if err := s.pool.QueryRow(ctx, "SELECT to_regclass(quote_ident(current_schema()) || '.goose_db_version') IS NOT NULL").Scan(&versioned); err != nil {
		return fmt.Errorf("schema of %s: %w", s.target, err)
	}
	if !versioned {
		return fmt.Errorf("database %s has no migration yet (migrations are applied on the primary; a replica gets them by replication): %w",
			s.target, ErrSchemaBehind)
	}
	states, err := s.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	for _, m := range states {
		if !m.Applied {
			return fmt.Errorf("database %s lacks migration %s (migrations are applied on the primary; a replica gets them by replication): %w",
				s.target, m.Name, ErrSchemaBehind)
		}
	}
	return nil
}

// MigrationStatus lists every migration the binary knows, in order, with whether it is applied,
// then those applied to the database that it does not know (Unknown: a newer paperpipe's).
func (s *Store) MigrationStatus(ctx context.Context) ([]MigrationState, error) {
	var out []MigrationState
	err := s.withProvider(ctx, "", func(p *goose.Provider) error {
		st, err := p.Status(ctx)
		if err != nil {
			return fmt.Errorf("migration status of %s: %w", s.target, err)
		}
		for _, m := range st {
			out = append(out, MigrationState{
				Version:   m.Source.Version,
				Name:      path.Base(m.Source.Path),
				Applied:   m.State == goose.StateApplied,
				AppliedAt: m.AppliedAt,
			})
		}
		newer, err := s.newerMigrations(ctx, p)
		if err != nil {
			return fmt.Errorf("migration status of %s: %w", s.target, err)
		}
		out = append(out, newer...)
		return nil
	})
	return out, err
}

// withProvider runs fn with a goose provider over the pool, whose migrations wait for a lock
// at most lockTimeout ("": as long as the server's lock_timeout says). The advisory lock id is
// derived from the current schema, so migrations of different schemas (parallel tests) don't
// wait for each other while two processes migrating the same schema do.
func (s *Store) withProvider(ctx context.Context, lockTimeout string, fn func(*goose.Provider) error) error {
	var schema string
	if err := s.pool.QueryRow(ctx, "SELECT current_schema()").Scan(&schema); err != nil {
		return fmt.Errorf("read current schema of %s: %w", s.target, err)
	}
	locker, err := newMigrationLocker(migrationLockID(schema), lockTimeout, s.log, s.target)
	if err != nil {
		return fmt.Errorf("migration lock: %w", err)
	}
	fsys, err := fs.Sub(migrationFiles, "migrations")
	if err != nil {
		return fmt.Errorf("embedded migrations: %w", err)
	}
	db := stdlib.OpenDBFromPool(s.pool)
	defer db.Close()
	p, err := goose.NewProvider(goose.DialectPostgres, db, fsys,
		goose.WithSessionLocker(locker),
		goose.WithDisableGlobalRegistry(true),
	)
	if err != nil {
		return fmt.Errorf("migration provider: %w", err)
	}
	return fn(p)
}

// migrationLockID is the advisory lock id of the migrations of schema.
func migrationLockID(schema string) int64 {
	h := fnv.New64a()
	h.Write([]byte("paperpipe.migrate." + schema))
	return int64(h.Sum64())
}

// notFound translates pgx.ErrNoRows into paper.ErrNotFound with context; other errors are
// wrapped as they are. It is the one place where library errors become domain errors.
func notFound(err error, format string, args ...any) error {
	msg := fmt.Sprintf(format, args...)
	if errors.Is(err, pgx.ErrNoRows) {
		return fmt.Errorf("%s: %w", msg, paper.ErrNotFound)
	}
	return fmt.Errorf("%s: %w", msg, err)
}

// itoa formats an integer for SQL text: only integers read from the database are ever
// formatted into statements, never user strings.
func itoa(n int64) string { return strconv.FormatInt(n, 10) }
