package web

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/semaphore"

	"github.com/paperpipe/paperpipe/internal/metrics"
)

// Limits of the API.
const (
	// MaxK is the most results a search or related query returns.
	MaxK = 100
	// DefaultK is how many results a search or related query returns without k.
	DefaultK = 10
	// MaxQueryChars is the longest search text accepted, in characters.
	MaxQueryChars = 1000
	// MaxListLimit is the largest page of GET /api/papers.
	MaxListLimit = 100
	// DefaultListLimit is the page size of GET /api/papers without limit.
	DefaultListLimit = 20
	// MaxRecordsPerPost is the most papers one POST /api/papers may carry.
	MaxRecordsPerPost = 10000
)

// Config configures New.
type Config struct {
	// Store reads papers and searches. Required.
	Store Store
	// Embedder embeds search text for the semantic and hybrid modes. Defaults to nil: only
	// keyword search works.
	Embedder QueryEmbedder
	// Usage receives the API usage of the query embeddings searches make (the calls the
	// cache saves are not made, so not counted), written in the background in batches; a
	// failed write is logged. Defaults to nil: that usage is not recorded.
	Usage UsageRecorder
	// Publisher queues posted papers. Defaults to nil: POST /api/papers answers 503.
	Publisher Publisher
	// ParseRecord validates and normalises one posted record. Defaults to a built-in parser
	// that canonicalises the id (or derives it from the title) and requires a title and an
	// abstract; cmd/paperpipe passes the ingest package's JSONL rules.
	ParseRecord RecordParser
	// Status feeds the status page and GET /api/status. Defaults to nil: they answer 503.
	Status StatusProvider
	// Checks are what GET /readyz verifies. Defaults to none: ready whenever the process runs.
	Checks []Check
	// Metrics records request and search latencies and is served at /metrics. Defaults to a
	// new metrics.Metrics of the server's own.
	Metrics *metrics.Metrics
	// APIToken, when set, is required as "Authorization: Bearer TOKEN" on write requests (and
	// on reads when ProtectReads is set); browsers may give it as the password of HTTP Basic
	// authentication, with any user name. Defaults to "": no authentication.
	APIToken string
	// AllowedHosts are host names (without port) the server answers to besides localhost and
	// IP addresses, compared without case. A request that reaches the server on a loopback
	// address under any other name (its Host header) is refused with 421: that is how a page of
	// another site reaches a server on 127.0.0.1, by making its own name resolve there (DNS
	// rebinding). Requests that reach it on other addresses are checked only when
	// AllowedHosts is set. Defaults to none.
	AllowedHosts []string
	// ProtectReads requires APIToken on every request except /healthz, /readyz, the OpenAPI
	// document and static assets. Defaults to false: reads are open.
	ProtectReads bool
	// MaxBodyBytes bounds a request body; a larger one gets 413. Defaults to 4 MiB.
	MaxBodyBytes int64
	// MaxPostBytesInFlight bounds the bodies of the POST /api/papers requests served at once,
	// each counted at its Content-Length (MaxBodyBytes when it sends none): each holds its body
	// and its parsed records until the queue has them, about four times its size (40 posts of
	// 4 MiB at once held 677 MB, measured). A post that would pass it is answered 503 with a
	// Retry-After before its body is read; one post alone always goes. Defaults to 8 times
	// MaxBodyBytes.
	MaxPostBytesInFlight int64
	// QueryCacheSize is how many query embeddings the LRU cache keeps. Defaults to 1024; a
	// negative value disables the cache.
	QueryCacheSize int
	// MapMaxPoints caps the papers drawn on the map; more are sampled deterministically.
	// Defaults to 5000.
	MapMaxPoints int
	// ReadHeaderTimeout, ReadTimeout, WriteTimeout and IdleTimeout are the http.Server's
	// timeouts. They default to 5s, 30s, 60s and 120s.
	ReadHeaderTimeout, ReadTimeout, WriteTimeout, IdleTimeout time.Duration
	// PageTimeout bounds the work of a UI page (the HTML routes), below the WriteTimeout that
	// bounds every request's: a reader does not wait a minute for a page, and a load balancer
	// that times out at a minute (nginx's proxy_read_timeout, an AWS ALB's idle timeout) would
	// answer its own 504 before the page's 503. Past it the page answers 503, the request took
	// too long, or the database did not answer. Defaults to 30s (never more than the
	// WriteTimeout's bound); the search page waits a third of it at most for a query's embedding
	// before it shows keyword results (the call goes on for the page's time, and its vector is
	// cached).
	PageTimeout time.Duration
	// ShutdownDelay is how long ListenAndServe goes on serving once its context is done, with
	// GET /readyz answering 503, before it shuts down: a load balancer that routes by the
	// readiness probe (Kubernetes' Service goes on sending requests to a stopping pod for a few
	// seconds) takes the server out before it stops listening, so no request is refused. Every
	// answer meanwhile closes its connection: a client that kept it alive opens a new one for
	// its next request, which the load balancer routes to a ready server. Defaults to 0: the
	// shutdown starts at once.
	ShutdownDelay time.Duration
	// ShutdownTimeout bounds the graceful shutdown of ListenAndServe. Defaults to 10s. The
	// requests in flight have the first 2 seconds of it (at most half of it) to finish; then
	// their contexts end and they answer 503, the server is shutting down.
	ShutdownTimeout time.Duration
	// Logger receives errors and, at debug level, one line per request. Defaults to
	// discarding.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.ParseRecord == nil {
		c.ParseRecord = ParseRecord
	}
	if c.Metrics == nil {
		c.Metrics = metrics.New(metrics.Config{})
	}
	if c.MaxBodyBytes == 0 {
		c.MaxBodyBytes = 4 << 20
	}
	if c.MaxPostBytesInFlight == 0 && c.MaxBodyBytes > 0 {
		c.MaxPostBytesInFlight = 8 * c.MaxBodyBytes
	}
	if c.QueryCacheSize == 0 {
		c.QueryCacheSize = 1024
	}
	if c.MapMaxPoints == 0 {
		c.MapMaxPoints = 5000
	}
	for _, d := range []struct {
		v   *time.Duration
		def time.Duration
	}{
		{&c.ReadHeaderTimeout, 5 * time.Second},
		{&c.ReadTimeout, 30 * time.Second},
		{&c.WriteTimeout, 60 * time.Second},
		{&c.IdleTimeout, 120 * time.Second},
		{&c.ShutdownTimeout, 10 * time.Second},
		{&c.PageTimeout, 30 * time.Second},
	} {
		if *d.v == 0 {
			*d.v = d.def
		}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

func (c *Config) validate() error {
	switch {
	case c.MaxBodyBytes < 0:
		return fmt.Errorf("web config: MaxBodyBytes is %d, want > 0", c.MaxBodyBytes)
	case c.MaxPostBytesInFlight < 0:
		return fmt.Errorf("web config: MaxPostBytesInFlight is %d, want > 0", c.MaxPostBytesInFlight)
	case c.MapMaxPoints < 0:
		return fmt.Errorf("web config: MapMaxPoints is %d, want > 0", c.MapMaxPoints)
	case c.ProtectReads && c.APIToken == "":
		return errors.New("web config: ProtectReads needs an APIToken")
	}
	for _, h := range c.AllowedHosts {
		if h == "" || strings.ContainsAny(h, ":/@[]* ") {
			return fmt.Errorf("web config: AllowedHosts entry %q is not a host name without port", h)
		}
	}
	for _, d := range []time.Duration{c.ReadHeaderTimeout, c.ReadTimeout, c.WriteTimeout, c.IdleTimeout, c.ShutdownTimeout, c.ShutdownDelay, c.PageTimeout} {
		if d < 0 {
			return fmt.Errorf("web config: negative timeout %v", d)
		}
	}
	return nil
}

// Server is paperpipe's HTTP server: the JSON API, the HTML UI, probes and metrics. It is safe
// for concurrent use.
type Server struct {
	cfg     Config
	log     *slog.Logger
	handler http.Handler
	routes  []route
	cache   *queryCache
	// flights are the query embeddings in progress, by space and text (see embedQuery).
	flightsMu sync.Mutex
	flights   map[cacheKey]*queryFlight
	// flightsRunning counts the calls of flights that have not returned (a shutdown waits for
	// them before it writes the usage ledger); flightsBase ends them at a shutdown (with the
	// requests in flight), also those no request waits for any more.
	flightsRunning sync.WaitGroup
	flightsBase    context.Context
	stopFlights    context.CancelCauseFunc
	// postBytes is what the posts of papers in progress may hold (MaxPostBytesInFlight).
	postBytes *semaphore.Weighted
	pages     *pages
	maps      *mapCache
	usage     *usageLedger
	// mapSnap is the last map drawn (see mapSnapshot), guarded by mapMu; mapDrawing holds a
	// token while one request draws a new one.
	mapMu      sync.Mutex
	mapSnap    *mapSnapshot
	mapDrawing chan struct{}
	// allowedHosts are Config.AllowedHosts, as hostName makes them.
	allowedHosts map[string]bool
	// sameOrigin refuses writes a browser sends from another origin (Sec-Fetch-Site, Origin).
	sameOrigin *http.CrossOriginProtection
	// stopping is set when ListenAndServe's context is done: GET /readyz answers 503 while the
	// server goes on serving for Config.ShutdownDelay.
	stopping atomic.Bool
}

// access says who may call a route.
type access int

const (
	open  access = iota // always open
	read                // open unless Config.ProtectReads
	write               // needs the token when one is configured
)

// route is one registered pattern. path is its OpenAPI path ("" for an alias of documented
// routes, such as the catch-all for ids with unescaped slashes).
type route struct {
	method, pattern, path string
	access                access
	html                  bool // answers HTML (UI pages); errors are pages too
	handler               http.HandlerFunc
	// params are the query parameters the route takes, each at most once: a request with
	// another, or one twice, or a query string that does not parse, is refused (400) before
	// the handler, so that a client's mistake (the UI's after for the API's cursor, limit for
	// k, a category given twice, text=50%) is not answered as if the parameter had not been
	// sent. nil: not checked (the pages, probes).
	params []string
}

// New returns a Server for cfg.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil {
		return nil, errors.New("web config: Store is required")
	}
	return newServer(cfg, false)
}

// NewProbes returns a Server that answers only GET /healthz, GET /readyz (cfg.Checks) and GET
// /metrics (cfg.Metrics), for a process that serves no API or UI (`paperpipe worker
// --metrics`), with the same guards, timeouts and graceful shutdown as New's. cfg.Store and
// the fields of the API and UI are not used.
func NewProbes(cfg Config) (*Server, error) {
	return newServer(cfg, true)
}

func newServer(cfg Config, probesOnly bool) (*Server, error) {
	cfg.setDefaults()
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	s := &Server{
		cfg:        cfg,
		log:        cfg.Logger,
		cache:      newQueryCache(cfg.QueryCacheSize),
		postBytes:  semaphore.NewWeighted(cfg.MaxPostBytesInFlight),
		maps:       &mapCache{},
		usage:      &usageLedger{rec: cfg.Usage, log: cfg.Logger},
		mapDrawing: make(chan struct{}, 1),
		sameOrigin: http.NewCrossOriginProtection(),
	}
	s.flightsBase, s.stopFlights = context.WithCancelCause(context.Background())
	if len(cfg.AllowedHosts) > 0 {
		s.allowedHosts = make(map[string]bool)
		for _, h := range cfg.AllowedHosts {
			s.allowedHosts[hostName(h)] = true
		}
	}
	var err error
	if s.pages, err = loadPages(); err != nil {
		return nil, err
	}
	s.routes = []route{
		// JSON API.
		{"GET", "/api/papers", "/api/papers", read, false, s.apiListPapers, []string{"limit", "cursor", "since", "category", "text"}},
		{"POST", "/api/papers", "/api/papers", write, false, s.apiPostPapers, []string{}},
		{"GET", "/api/papers/{id}", "/api/papers/{id}", read, false, s.apiPaper, []string{}},
		{"GET", "/api/papers/{id}/related", "/api/papers/{id}/related", read, false, s.apiRelated, []string{"k"}},
		// Ids with unescaped slashes (arxiv:hep-th/9901001, doi:10.1000/x) land here; it checks
		// the parameters of the route it serves.
		{"GET", "/api/papers/{rest...}", "", read, false, s.apiPaperRest, nil},
		{"GET", "/api/search", "/api/search", read, false, s.apiSearch, []string{"q", "k", "mode"}},
		{"GET", "/api/status", "/api/status", read, false, s.apiStatus, []string{}},
		{"GET", "/api/openapi.json", "/api/openapi.json", open, false, s.openAPI, []string{}},
		// Probes and metrics.
		{"GET", "/healthz", "/healthz", open, false, s.healthz, nil},
		{"GET", "/readyz", "/readyz", open, false, s.readyz, nil},
		{"GET", "/metrics", "/metrics", read, false, noStore(s.cfg.Metrics.Handler()), nil},
		// HTML UI: links to it carry whatever their sites add (utm_source=…), so the pages
		// take unknown parameters.
		{"GET", "/{$}", "/", read, true, s.uiFront, nil},
		{"GET", "/search", "/search", read, true, s.uiSearch, nil},
		{"GET", "/papers/{id...}", "/papers/{id}", read, true, s.uiPaper, nil},
		{"GET", "/status", "/status", read, true, s.uiStatus, nil},
		{"GET", "/map", "/map", read, true, s.uiMap, nil},
		{"GET", "/static/{file}", "/static/{file}", open, false, s.static, nil},
	}
	if probesOnly {
		s.routes = slices.DeleteFunc(s.routes, func(rt route) bool {
			return rt.pattern != "/healthz" && rt.pattern != "/readyz" && rt.pattern != "/metrics"
		})
	}
	mux := http.NewServeMux()
	for _, rt := range s.routes {
		mux.Handle(rt.method+" "+rt.pattern, s.guard(rt))
	}
	s.handler = s.instrument(s.screen(s.dispatch(mux)))
	return s, nil
}

// noStore serves h's answers (a live snapshot, such as the metrics) with "Cache-Control:
// no-store".
func noStore(h http.Handler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	}
}

// Handler returns the server's HTTP handler.
func (s *Server) Handler() http.Handler { return s.handler }

// HTTPServer returns an http.Server for addr with the configured timeouts and s's handler.
func (s *Server) HTTPServer(addr string) *http.Server {
	return &http.Server{
		Addr:              addr,
		Handler:           s.handler,
		ReadHeaderTimeout: s.cfg.ReadHeaderTimeout,
		ReadTimeout:       s.cfg.ReadTimeout,
		WriteTimeout:      s.cfg.WriteTimeout,
		IdleTimeout:       s.cfg.IdleTimeout,
		MaxHeaderBytes:    64 << 10,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelDebug),
	}
}

// shutdownGrace is how long the requests in flight at a shutdown may go on before their
// contexts end (at most half of Config.ShutdownTimeout).
const shutdownGrace = 2 * time.Second

// errShuttingDown is the cause of the end of the contexts of requests a shutdown cut short.
var errShuttingDown = errors.New("the server is shutting down")

// duringShutdown returns err as a 503 when it ended r because the server is shutting down: a
// search waiting on the embedding API gets an answer, not a dropped connection.
func duringShutdown(r *http.Request, err error) error {
	if err != nil && r.Context().Err() != nil && errors.Is(context.Cause(r.Context()), errShuttingDown) {
		return &httpError{status: http.StatusServiceUnavailable, err: err, msg: "the server is shutting down; try again"}
	}
	return err
}

// ListenAndServe listens on addr and serves until ctx is done, then, after Config.ShutdownDelay
// (during which GET /readyz answers 503 and everything else is served as before), shuts down
// gracefully: it stops accepting connections, lets the requests in flight finish for up to 2 seconds,
// then ends their contexts so that those still waiting (on the embedding API, say) answer
// 503 at once, and waits for them up to Config.ShutdownTimeout in all. ready, when not nil,
// is called with the bound address once the server listens (so ":0" can be used). It
// returns nil after a shutdown caused by ctx, also when requests outlast the timeout (they
// are cut off, with a warning).
func (s *Server) ListenAndServe(ctx context.Context, addr string, ready func(net.Addr)) error {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", addr, err)
	}
	srv := s.HTTPServer(addr)
	// The handlers' contexts, which the shutdown ends (not ctx: requests in flight have
	// their grace first).
	base, stopHandlers := context.WithCancelCause(context.Background())
	defer stopHandlers(nil)
	srv.BaseContext = func(net.Listener) context.Context { return base }
	if ready != nil {
		ready(ln.Addr())
	}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return fmt.Errorf("serve HTTP on %s: %w", addr, err)
	case <-ctx.Done():
	}
	s.stopping.Store(true)
	if d := s.cfg.ShutdownDelay; d > 0 {
		s.log.Info("not ready: serving on until the shutdown", "addr", addr, "shutdown_delay", d)
		// A client that keeps its connection alive sends its requests here until the shutdown
		// closes it under them, whatever /readyz says (a Kubernetes Service balances
		// connections, not requests): from now on each answer closes its connection, so that
		// the client's next request opens one the load balancer routes to a ready server.
		srv.SetKeepAlivesEnabled(false)
		select {
		case err := <-errc:
			return fmt.Errorf("serve HTTP on %s: %w", addr, err)
		case <-time.After(d):
		}
	}
	// Once the requests are over, the usage of their query embeddings is written.
	defer func() {
		fctx, cancel := context.WithTimeout(context.Background(), usageWriteTimeout)
		defer cancel()
		s.usage.flush(fctx)
	}()
	sctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	grace := time.AfterFunc(min(shutdownGrace, s.cfg.ShutdownTimeout/2), func() {
		stopHandlers(errShuttingDown)
		s.stopFlights(errShuttingDown)
	})
	defer grace.Stop()
	if err := srv.Shutdown(sctx); err != nil {
		// A handler that does not heed its context: the process is stopping all the same.
		s.log.Warn("HTTP requests still running at the end of the shutdown were cut off", "addr", addr,
			"shutdown_timeout", s.cfg.ShutdownTimeout, "err", err)
		srv.Close()
	}
	// The query embeddings the requests shared (see queryFlight) end with them: their usage
	// is written with the rest.
	calls := make(chan struct{})
	go func() { s.flightsRunning.Wait(); close(calls) }()
	select {
	case <-calls:
	case <-sctx.Done():
	}
	if err := <-errc; err != nil && !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("serve HTTP on %s: %w", addr, err)
	}
	return nil
}

// instrument records each request's latency under its route pattern, recovers from panics,
// and sets the security headers every answer carries.
func (s *Server) instrument(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &statusRecorder{ResponseWriter: w}
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
		h.Set("Content-Security-Policy", "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
		defer func() {
			if p := recover(); p != nil {
				if p == http.ErrAbortHandler {
					panic(p)
				}
				s.log.Error("panic serving HTTP request", "method", r.Method, "path", r.URL.Path, "panic", p, "stack", string(debug.Stack()))
				if rec.status == 0 {
					s.writeError(rec, r, http.StatusInternalServerError, "internal error")
				}
			}
			d := time.Since(start)
			s.cfg.Metrics.ObserveHTTP(r.Pattern, r.Method, rec.code(), d)
			s.log.Debug("http", "method", r.Method, "path", r.URL.Path, "route", r.Pattern, "status", rec.code(), "duration", d)
		}()
		next.ServeHTTP(rec, r)
	})
}

// statusRecorder remembers the status code written.
type statusRecorder struct {
	http.ResponseWriter
	status int
}

func (r *statusRecorder) WriteHeader(code int) {
	if r.status == 0 {
		r.status = code
	}
	r.ResponseWriter.WriteHeader(code)
}

func (r *statusRecorder) Write(b []byte) (int, error) {
	if r.status == 0 {
		r.status = http.StatusOK
	}
	return r.ResponseWriter.Write(b)
}

func (r *statusRecorder) code() int {
	if r.status == 0 {
		return http.StatusOK
	}
	return r.status
}

// Unwrap lets http.ResponseController reach the underlying writer.
func (r *statusRecorder) Unwrap() http.ResponseWriter { return r.ResponseWriter }

// guard applies a route's access rule and body limit before its handler, refuses a write a
// browser sends from another site (CSRF: a page anywhere could otherwise queue papers, paid
// for on this server's API account, with a "simple" POST no preflight stops), and ends the
// handler's work before the server's WriteTimeout would cut the client off while it goes on:
// a slow search then answers 503 (the request took too long), and its API calls and queries
// stop with it.
func (s *Server) guard(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !s.allowed(rt.access, r) {
			s.unauthorized(w, r, rt.html)
			return
		}
		if rt.access == write {
			if err := s.sameOrigin.Check(r); err != nil {
				s.writeError(w, r, http.StatusForbidden, "cross-origin writes are refused: "+err.Error())
				return
			}
		}
		if rt.params != nil {
			if err := checkParams(r, rt.params...); err != nil {
				s.fail(w, r, err)
				return
			}
		}
		if r.Body != nil {
			r.Body = http.MaxBytesReader(w, r.Body, s.cfg.MaxBodyBytes)
		}
		if d := s.cfg.WriteTimeout; d > 0 {
			bound := d - min(d/10, time.Second)
			if rt.html {
				// A page is bounded tighter: a reader does not wait a minute for it (a silent
				// database held it for the whole WriteTimeout).
				bound = min(bound, s.cfg.PageTimeout)
			}
			ctx, cancel := context.WithTimeout(r.Context(), bound)
			defer cancel()
			r = r.WithContext(ctx)
		}
		rt.handler(w, r)
	})
}

// checkParams refuses a query string net/url cannot parse whole (r.URL.Query drops the pairs
// it cannot parse: text=50% would list the whole archive), a query parameter of r that is not
// one of names, and one given more than once, saying which parameters the route takes.
func checkParams(r *http.Request, names ...string) error {
	takes := "takes no query parameters"
	if len(names) > 0 {
		takes = "takes " + strings.Join(names, ", ")
	}
	v, err := url.ParseQuery(r.URL.RawQuery)
	if err != nil {
		return badRequest(fmt.Sprintf("the query string is malformed (%.80s): escape a %% in a value as %%25, a ; as %%3B, an & as %%26", err))
	}
	for _, k := range slices.Sorted(maps.Keys(v)) {
		switch {
		case !slices.Contains(names, k):
			return badRequest(fmt.Sprintf("unknown parameter %.40q: %s %s %s", k, r.Method, r.URL.Path, takes))
		case len(v[k]) > 1:
			return badRequest(fmt.Sprintf("%s is given %d times: give it once", k, len(v[k])))
		}
	}
	return nil
}

// dispatch serves r with mux, and answers requests no route matches in paperpipe's own error
// format (JSON under /api/, a page elsewhere): 404 for an unknown path, 405 with Allow for a
// known path and another method. The mux's redirects to canonical paths pass through.
func (s *Server) dispatch(mux *http.ServeMux) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h, pattern := mux.Handler(r)
		if pattern != "" {
			mux.ServeHTTP(w, r)
			return
		}
		probe := &headerProbe{header: http.Header{}}
		h.ServeHTTP(probe, r)
		switch {
		case probe.status >= 300 && probe.status < 400:
			w.Header().Set("Location", probe.header.Get("Location"))
			w.WriteHeader(probe.status)
		case probe.status == http.StatusMethodNotAllowed:
			w.Header().Set("Allow", probe.header.Get("Allow"))
			s.writeError(w, r, http.StatusMethodNotAllowed, fmt.Sprintf("%s %s is not allowed; allowed: %s", r.Method, r.URL.Path, probe.header.Get("Allow")))
		default:
			s.writeError(w, r, http.StatusNotFound, fmt.Sprintf("no page or endpoint at %s", r.URL.Path))
		}
	})
}

// headerProbe records the status and headers of the mux's built-in 404, 405 and redirect
// handlers and drops their bodies.
type headerProbe struct {
	header http.Header
	status int
}

func (p *headerProbe) Header() http.Header { return p.header }
func (p *headerProbe) Write(b []byte) (int, error) {
	if p.status == 0 {
		p.status = http.StatusOK
	}
	return len(b), nil
}
func (p *headerProbe) WriteHeader(code int) {
	if p.status == 0 {
		p.status = code
	}
}
