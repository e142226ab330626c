package main

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/metrics"
	"github.com/paperpipe/paperpipe/internal/pricing"
	"github.com/paperpipe/paperpipe/internal/webstore"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

// DefaultHTTPAddr is where `serve` and `up` listen without --http or PAPERPIPE_HTTP_ADDR.
const DefaultHTTPAddr = "127.0.0.1:8080"

func cmdServe(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("serve", "", "Serve the HTTP JSON API, the web UI and /metrics until interrupted. "+
		"Started while NATS_URL's server cannot be reached, it serves reads and connects in the background; POST /api/papers answers 503 until then.")
	c.addModelFlags(fs)
	c.addHTTPFlag(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if c.HTTPAddr == "" {
		return usageErr("--http needs an address, such as %s", DefaultHTTPAddr)
	}
	if err := checkListenAddr(c.HTTPAddr, "--http", "PAPERPIPE_HTTP_ADDR"); err != nil {
		return err
	}
	if err := c.checkAPIToken(); err != nil {
		return err
	}
	// Searches embed their text with the embedding model.
	if err := c.checkAPI(false, true); err != nil {
		return err
	}
	log := newLogger(c)
	enableMetrics(c, log)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return interruptedStart(ctx, err)
	}
	defer st.Close()
	reads := st
	if c.ReadDBURL != "" {
		if reads, err = openReadStore(ctx, c, log); err != nil {
			return interruptedStart(ctx, err)
		}
		defer reads.Close()
	}
	// A fitted offline model missing from the database stops searches by meaning only: the
	// status, lists and keyword searches are served, and searches follow the model once
	// `paperpipe fit` makes it again (activeOffline).
	c.modelMayBeMissing = true
	m, err := buildModels(ctx, c, log, reads)
	if err != nil {
		return interruptedStart(ctx, err)
	}
	if _, missing := m.emb.(missingFitted); missing {
		log.Warn(missingModelNote(m.emb.Space()))
	}
	warnQueriesRefused(ctx, c, log, reads, st, m.emb.Space())
	b, err := connectBrokerLater(ctx, c, log, brokerClient)
	if err != nil {
		return interruptedStart(ctx, err)
	}
	defer b.close()
	return serveHTTP(ctx, c, log, st, reads, b, m, "serve")
}

// warnQueriesRefused says, when es — the space of serve's query embedder — is not the active
// space, that searches by meaning are refused and what makes them work: an operator switching
// models restarts serve on the new one before `paperpipe activate`, and each refused search is
// logged at debug level only (a 409, the reader's error), so that serve otherwise said nothing
// while every reader got keyword results. (An activation while serve runs is warned about by
// `activate`.) `up` needs none: its workers warn when their space is not active
// (warnInactiveSpace). st is the store searches read (a replica, PAPERPIPE_READ_DATABASE_URL);
// primary the one whose sessions hold the runs' locks, which a replica does not see.
func warnQueriesRefused(ctx context.Context, c *config, log *slog.Logger, st, primary *store.Store, es paper.Space) {
	active, err := st.ActiveSpace(ctx)
	if err != nil || active.Model == es.Model && active.Dimensions == es.Dimensions && active.Template == es.Template {
		return // none active yet, or unreadable: each search says so
	}
	var do []string
	// With their coverage (a count per space: seconds on millions of papers, so bounded); unread,
	// the hint leaves serve's own space out.
	cctx, cancel := context.WithTimeout(ctx, spacesCountWait)
	spaces, _ := st.Spaces(cctx)
	cancel()
	for _, own := range spaces {
		switch {
		case own.Name() != es.Name():
		case own.Embedded < own.Papers:
			hint, filling := spaceFillHint(ctx, primary, own.Space)
			then := "then"
			if filling {
				then = "once it ends,"
			}
			do = append(do, fmt.Sprintf("its own space %d holds %d of %d papers: %s, %s `paperpipe activate %d`", own.ID, own.Embedded, own.Papers, hint, then, own.ID))
		default:
			do = append(do, fmt.Sprintf("`paperpipe activate %d` switches queries to space %d, which holds a vector of every paper", own.ID, own.ID))
		}
	}
	switch {
	case active.Template != embed.TemplateTitleAbstract:
		do = append(do, fmt.Sprintf("the active space's input template %q is not one paperpipe's embedders make: no query can be embedded for it", active.Template))
	default:
		if want := settingsFor(c, active); want != "" {
			do = append(do, fmt.Sprintf("to search the active space, set %s and restart serve", want))
		}
	}
	log.Warn(fmt.Sprintf("searches are embedded by %s, but the active embedding space is %d (%s): searches by meaning and hybrid searches "+
		"are refused (embedding space mismatch, HTTP 409; the search page shows keyword results instead): %s",
		es.Name(), active.ID, active.Name(), strings.Join(do, "; or, ")))
}

// spacesCountWait bounds warnQueriesRefused's count of the spaces' coverage.
const spacesCountWait = 10 * time.Second

// addHTTPFlag registers --http.
func (c *config) addHTTPFlag(fs *flag.FlagSet) {
	fs.StringVar(&c.HTTPAddr, "http", c.HTTPAddr, "serve the HTTP API, web UI and /metrics on this `address`; env PAPERPIPE_HTTP_ADDR. "+
		"On a loopback address only requests to localhost, an IP address or a name of PAPERPIPE_HTTP_ALLOWED_HOSTS are answered")
}

// enableMetrics gives the process a metrics registry, and the model clients a transport that
// records the latency of every API call. It must run before buildModels.
func enableMetrics(c *config, log *slog.Logger) {
	c.metrics = metrics.New(metrics.Config{Logger: log})
	c.httpClient = &http.Client{Transport: c.metrics.Transport(llm.PooledTransport(c.Concurrency))}
}

// workerDeps returns the store, summarizer and embedder a worker uses, counted by the
// process's metrics when it has them.
func workerDeps(c *config, st *store.Store, m *models) (pipeline.Store, pipeline.Summarizer, pipeline.Embedder) {
	if c.metrics == nil {
		return st, m.sum, m.emb
	}
	return c.metrics.Store(st), c.metrics.Summarizer(m.sum), c.metrics.Embedder(m.emb)
}

// watchWorker reports w's counts in the metrics.
func watchWorker(c *config, consumer string, w *pipeline.Worker) {
	c.metrics.AddWorker(consumer, func() metrics.WorkerCounts {
		s := w.Stats()
		api, db := w.Paused()
		return metrics.WorkerCounts{Received: s.Received, Acked: s.Acked, Skipped: s.Skipped, Retried: s.Retried, Dead: s.Dead, Pauses: s.Paused, DBPauses: s.DBPaused,
			APIPaused: api, DBPaused: db}
	})
}

// serveHTTP serves the web surfaces on c.HTTPAddr until ctx is done. Their queries go to
// reads — st, or serve's read replica — and the usage ledger's writes to st. With a replica,
// the primary's health is reported by /readyz but does not make the process unready: every
// query is answered without it, and only the ledger's writes (logged, not retried) fail.
func serveHTTP(ctx context.Context, c *config, log *slog.Logger, st, reads *store.Store, b *broker, m *models, who string) error {
	prices, err := pricing.Parse(c.Prices)
	if err != nil {
		return usageErr("PAPERPIPE_PRICES: %v", err)
	}
	if c.metrics == nil {
		enableMetrics(c, log)
	}
	watchQueue(c, b)
	var queries embedder = m.emb
	if c.EmbedModel == offline {
		queries = newActiveOffline(reads, log, m.emb)
	}
	// The status counts outlive the requests that start them (webStatus.base), but not the
	// server: not ctx, which the stop ends while the shutdown delay goes on serving every
	// request, the status too, but a context this function's return ends.
	counts, stopCounts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopCounts()
	checks := readyChecks(reads, b, true)
	if reads != st {
		checks = append(checks, web.Check{Name: "primary", ReportOnly: true, Check: st.Ping})
	}
	srv, err := web.New(web.Config{
		Store:         webstore.Store{Store: reads},
		Embedder:      c.metrics.Embedder(queries),
		Usage:         c.metrics.Store(st), // the query embeddings' API calls, as status reports them
		Publisher:     webstore.Publisher{JS: b.js},
		ParseRecord:   parseRecord,
		Status:        &webStatus{st: reads, js: b.js, sum: m.sum, prices: prices, base: counts},
		Checks:        checks,
		Metrics:       c.metrics,
		APIToken:      c.APIToken,
		ProtectReads:  c.APITokenReads,
		AllowedHosts:  c.AllowedHosts,
		MaxBodyBytes:  c.MaxBodyBytes,
		ShutdownDelay: c.ShutdownDelay,
		Logger:        log,
	})
	if err != nil {
		return err
	}
	return addrInUse(srv.ListenAndServe(ctx, c.HTTPAddr, func(a net.Addr) {
		auth := "open"
		switch {
		case c.APIToken != "" && c.APITokenReads:
			auth = "token required"
		case c.APIToken != "":
			auth = "token required for writes"
		}
		fmt.Fprintf(os.Stderr, "paperpipe %s: web UI and API on http://%s (%s; API description at /api/openapi.json, metrics at /metrics)\n", who, a, auth)
		if w := openWritesWarning(a, c.APIToken); w != "" {
			fmt.Fprintf(os.Stderr, "paperpipe %s: warning: %s\n", who, w)
		}
	}), c.HTTPAddr, "--http", "PAPERPIPE_HTTP_ADDR")
}

// openWritesWarning is what to tell an operator whose server, listening on a, takes writes
// from anyone who reaches it: a server other machines reach (not on a loopback address)
// without PAPERPIPE_API_TOKEN, where any machine of the network can queue papers the workers
// pay for. "" otherwise.
func openWritesWarning(a net.Addr, token string) string {
	if token != "" {
		return ""
	}
	if ta, ok := a.(*net.TCPAddr); !ok || ta.IP.IsLoopback() {
		return ""
	}
	return fmt.Sprintf("writes are open to anyone who reaches %s: POST /api/papers queues papers the workers pay for; "+
		"set PAPERPIPE_API_TOKEN on a server other machines reach", a)
}

// checkListenAddr is the usage error of an address to listen on, given by flag or env, that
// net.Listen would refuse: PAPERPIPE_METRICS_ADDR=9090, a port without its colon, failed once
// the database and NATS were reached, exit 1, with "listen tcp: address 9090: missing port in
// address" and no word of the setting.
func checkListenAddr(addr, flag, env string) error {
	_, port, err := net.SplitHostPort(addr)
	if err == nil {
		_, err = net.LookupPort("tcp", port)
	}
	if err == nil {
		return nil
	}
	hint := ""
	if _, perr := strconv.Atoi(addr); perr == nil {
		hint = fmt.Sprintf(" (a port alone is :%s)", addr)
	}
	return usageErr("%s %q (or %s): want host:port, such as 127.0.0.1:9090 or :9090%s", flag, addr, env, hint)
}

// addrInUse explains err, a server's failure to listen on addr, when another process listens
// there: flag and env are the settings that give this one another address.
func addrInUse(err error, addr, flag, env string) error {
	if !errors.Is(err, syscall.EADDRINUSE) {
		return err
	}
	return fmt.Errorf("%w (another process listens on %s: stop it, or give this one another address with %s or %s)", err, addr, flag, env)
}

// watchQueue makes the metrics' scrapes read the queue from b: each consumer's backlog and the
// dead letters.
func watchQueue(c *config, b *broker) {
	c.metrics.SetQueueSource(func(ctx context.Context) (metrics.Queue, error) {
		if !b.nc.IsConnected() {
			// Asked while disconnected, each scrape would wait for its requests' timeout, and
			// they would pile up in the reconnect buffer.
			return metrics.Queue{}, fmt.Errorf("not connected to NATS (%s)", b.nc.Status())
		}
		bls, err := pipeline.Backlogs(ctx, b.js)
		if err != nil {
			return metrics.Queue{}, err
		}
		q := metrics.Queue{Backlogs: make([]metrics.Backlog, len(bls))}
		for i, bl := range bls {
			q.Backlogs[i] = metrics.Backlog{Consumer: bl.Consumer, Pending: bl.Pending, AckPending: bl.AckPending, Redelivered: bl.Redelivered}
		}
		q.DeadLetters, err = pipeline.CountDeadLetters(ctx, b.js)
		return q, err
	})
}

// readyChecks are the checks of GET /readyz: the database answers, NATS is connected. With
// natsReportOnly (serve, up) NATS is reported but does not make the process unready: search,
// listing and the pages need only PostgreSQL, and a NATS outage would take every replica out
// of the load balancer; POST /api/papers answers 503 itself then, and the status page leaves
// the queue out. A worker, which does nothing without NATS, is unready without it.
func readyChecks(st *store.Store, b *broker, natsReportOnly bool) []web.Check {
	return []web.Check{
		{Name: "database", Check: st.Ping},
		{Name: "nats", ReportOnly: natsReportOnly, Check: func(ctx context.Context) error {
			if !b.nc.IsConnected() {
				return fmt.Errorf("not connected to NATS (%s)", b.nc.Status())
			}
			if _, err := b.js.AccountInfo(ctx); err != nil {
				return fmt.Errorf("JetStream: %w", err)
			}
			return nil
		}},
	}
}

// serveProbes serves /healthz, /readyz and /metrics on c.MetricsAddr until ctx is done, for
// `worker --metrics`.
func serveProbes(ctx context.Context, c *config, log *slog.Logger, st *store.Store, b *broker) error {
	watchQueue(c, b)
	srv, err := web.NewProbes(web.Config{
		Checks:       readyChecks(st, b, false),
		Metrics:      c.metrics,
		APIToken:     c.APIToken,
		ProtectReads: c.APITokenReads,
		AllowedHosts: c.AllowedHosts,
		Logger:       log,
	})
	if err != nil {
		return err
	}
	return addrInUse(srv.ListenAndServe(ctx, c.MetricsAddr, func(a net.Addr) {
		fmt.Fprintf(os.Stderr, "paperpipe worker: metrics and probes on http://%s (/metrics, /healthz, /readyz)\n", a)
	}), c.MetricsAddr, "--metrics", "PAPERPIPE_METRICS_ADDR")
}

// parseRecord checks one posted record with the ingest package's JSONL rules, so the API
// accepts exactly what `paperpipe ingest` accepts from a JSONL line. It is read as one record
// (ingest.Options.OneRecord), not judged as a file: a record with bytes that are not UTF-8 is
// rejected with its id and the reason, without advice about converting a file.
func parseRecord(raw []byte) (paper.Abstract, error) {
	// A JSON value has no raw newline inside its strings: the record becomes one line. Byte by
	// byte, so that invalid UTF-8 reaches ingest's checks as it came (bytes.Map would turn it
	// into U+FFFD, and the record would be stored altered instead of rejected).
	line := make([]byte, len(raw))
	for i, c := range raw {
		if c == '\n' || c == '\r' {
			c = ' '
		}
		line[i] = c
	}
	r, err := ingest.NewReader(bytes.NewReader(line), "request", ingest.Options{Format: ingest.JSONL, OneRecord: true})
	if err != nil {
		return paper.Abstract{}, err
	}
	a, err := r.Next()
	var rec *ingest.RecordError
	switch {
	case errors.As(err, &rec):
		// ingest speaks of lines; a posted record is one.
		if msg, ok := strings.CutPrefix(rec.Err.Error(), "line "); ok {
			return paper.Abstract{ID: rec.ID}, recordRejected("the record " + msg)
		}
		return paper.Abstract{ID: rec.ID}, rec.Err
	case errors.Is(err, io.EOF):
		return paper.Abstract{}, recordRejected("the record is empty")
	case err != nil:
		return paper.Abstract{}, recordRejected("the record could not be read")
	}
	a.Source = "api"
	return a, nil
}

// recordRejected is why a posted record is refused, in plain words: it wraps paper.ErrInvalid
// without adding the sentinel's text to the message the client reads.
type recordRejected string

func (e recordRejected) Error() string { return string(e) }
func (e recordRejected) Unwrap() error { return paper.ErrInvalid }

// webStatus reports the pipeline's state for the status page.
type webStatus struct {
	st     *store.Store
	js     jetstream.JetStream
	sum    pipeline.Summarizer
	prices pricing.Table
	// base is the context of the counts, which outlive the requests that start them (nil:
	// context.Background()): the server's, so that its end stops one in flight — not the stop
	// signal's, after which the shutdown delay serves the status as every other request.
	base context.Context

	// counts are the archive's last counts. Counting reads the whole archive (seconds at
	// hundreds of thousands of papers, a minute or more at millions, with parallel workers):
	// counts that took countsSlow or more are reused for countsFresh, and then recounted once
	// while the requests get the last counts, so a monitoring poll or a few readers neither
	// keep the database counting nor wait in line for it. Quick counts are made again for
	// each request. A count is not the request's: it runs on base for countsTimeout at most,
	// the requests that need it wait for it as long as they may, and one that gives up leaves
	// it going, for the next — a count longer than the status page's timeout (30 s) was
	// cancelled with each request, and the page never had counts.
	countsMu    sync.Mutex
	counts      store.Counts
	countsWork  paper.Work
	countsAt    time.Time
	countsTook  time.Duration
	count       *countRun     // the count in flight, nil when none
	countsSlow  time.Duration // 0: countsSlowDefault
	countsFresh time.Duration // 0: countsFreshDefault
}

// countRun is a count of the archive in flight; done is closed when counts and err are set.
type countRun struct {
	work   paper.Work
	done   chan struct{}
	counts store.Counts
	err    error
}

const (
	countsSlowDefault  = time.Second
	countsFreshDefault = 30 * time.Second
	// countsTimeout bounds a count, which no request bounds: a database that stopped
	// answering does not keep the status without counts for good.
	countsTimeout = 10 * time.Minute
)

// archiveCounts returns the counts of w, reusing slow ones while they are fresh (see webStatus).
func (s *webStatus) archiveCounts(ctx context.Context, w paper.Work) (store.Counts, error) {
	s.countsMu.Lock()
	slow, fresh := cmp.Or(s.countsSlow, countsSlowDefault), cmp.Or(s.countsFresh, countsFreshDefault)
	reusable := s.countsWork == w && !s.countsAt.IsZero() && s.countsTook >= slow
	last := s.counts
	run := s.count
	if run != nil && run.work != w {
		run = nil // of another space or model: not these counts (it goes on, and is kept)
	}
	if reusable && (time.Since(s.countsAt) < fresh || run != nil) {
		s.countsMu.Unlock()
		return last, nil
	}
	if run == nil {
		run = s.startCount(w)
	}
	s.countsMu.Unlock()
	select {
	case <-run.done:
		return run.counts, run.err
	case <-ctx.Done():
		if reusable {
			return last, nil // stale, but what the request may have
		}
		return store.Counts{}, fmt.Errorf("count papers: the count goes on, and a later request shows it: %w", ctx.Err())
	}
}

// startCount starts counting w on s.base; s.countsMu is held.
func (s *webStatus) startCount(w paper.Work) *countRun {
	run := &countRun{work: w, done: make(chan struct{})}
	s.count = run
	base := s.base
	if base == nil {
		base = context.Background()
	}
	go func() {
		ctx, cancel := context.WithTimeout(base, countsTimeout)
		defer cancel()
		start := time.Now()
		c, err := s.st.Counts(ctx, w)
		took := time.Since(start)
		s.countsMu.Lock()
		run.counts, run.err = c, err
		if s.count == run {
			s.count = nil
		}
		if err == nil {
			s.counts, s.countsWork, s.countsAt, s.countsTook = c, w, time.Now(), took
		}
		s.countsMu.Unlock()
		close(run.done)
	}()
	return run
}

// statusWindow is how far back status (the command and the web's page) shows API usage.
const statusWindow = 30 * 24 * time.Hour

// usageSince is the first day of API usage status shows at now: the UTC day statusWindow
// before now's, the days of the usage ledger being UTC days. The command and the web's page
// cover the same days.
func usageSince(now time.Time) time.Time {
	return now.UTC().Add(-statusWindow).Truncate(24 * time.Hour)
}

// recentDeadLetters is how many dead letters the status page lists.
const recentDeadLetters = 20

func (s *webStatus) Status(ctx context.Context) (web.Status, error) {
	out := web.Status{TLDRModel: s.sum.Model(), PromptVersion: s.sum.PromptVersion()}
	sp, err := s.st.ActiveSpace(ctx)
	active := "" // the active space's name, none yet
	switch {
	case err == nil:
		out.Space, active = sp.Name(), sp.Name()
	case errors.Is(err, paper.ErrNotFound):
		out.Space = "(none yet)"
	default:
		return out, err
	}
	counts, err := s.archiveCounts(ctx, paper.Work{Model: s.sum.Model(), PromptVersion: s.sum.PromptVersion(), SpaceID: sp.ID})
	if err != nil {
		return out, err
	}
	out.Papers, out.WithTLDR, out.WithEmbedding = counts.Papers, counts.WithTLDR, counts.WithEmbedding
	out.TLDRsWithheld = counts.TLDRsWithheld
	if sp.ID != 0 && embed.IsFittedModel(sp.Model) {
		switch ok, err := s.st.HasOfflineModel(ctx, sp.Model); {
		case err != nil:
			return out, err
		case !ok:
			out.MissingModel = &web.MissingModel{Model: sp.Model, Note: missingModelNote(sp)}
		}
	}
	since := usageSince(time.Now())
	out.UsageSince = since
	usage, err := s.st.Usage(ctx, since)
	if err != nil {
		return out, err
	}
	for _, u := range usage {
		row := web.Usage{Day: u.Day, Model: u.Model, Kind: u.Kind, Requests: u.Requests, InputTokens: u.InputTokens, OutputTokens: u.OutputTokens}
		if usd, known := s.prices.UsageCost(u.Model, u.Kind, int64(u.InputTokens), int64(u.OutputTokens)); known {
			row.CostUSD = &usd
		}
		out.Usage = append(out.Usage, row)
	}
	if err := s.queue(ctx, &out, active); err != nil {
		if ctx.Err() != nil {
			return out, err
		}
		out.QueueError = err.Error()
	}
	return out, nil
}

// statusQueueTimeout bounds the status page's reads of the queue, like a metrics scrape's: a
// NATS that does not answer leaves the queue out instead of holding the page until the
// request's timeout.
const statusQueueTimeout = 3 * time.Second

// webWorker is w as the status page shows it at now.
func webWorker(w pipeline.AnnouncedWorker, now time.Time) web.Worker {
	out := web.Worker{Host: w.Host, PID: w.PID, Started: w.Started, Target: w.Target, Concurrency: w.Concurrency, State: w.State,
		Held: w.Held, Processed: w.Processed, Version: w.Version, LastSeen: w.LastSeen, Overdue: w.Overdue(now)}
	if p := w.Pause; p != nil {
		out.Pause = &web.WorkerPause{Reason: p.Reason, Text: p.Text(now), Detail: p.Detail}
		if !p.Until.IsZero() {
			out.Pause.Until = &p.Until
		}
	}
	return out
}

// queue fills out's backlog, dead letters and notes on the workers from NATS, all or nothing;
// it asks nothing while the connection is down (a request would wait for the reconnection).
// active is the active space's name ("" when none is).
func (s *webStatus) queue(ctx context.Context, out *web.Status, active string) error {
	if nc := s.js.Conn(); !nc.IsConnected() {
		return fmt.Errorf("not connected to NATS (%s)", nc.Status())
	}
	ctx, cancel := context.WithTimeout(ctx, statusQueueTimeout)
	defer cancel()
	bls, err := pipeline.Backlogs(ctx, s.js)
	if err != nil {
		return err
	}
	dead, err := pipeline.CountDeadLetters(ctx, s.js)
	if err != nil {
		return err
	}
	dls, err := pipeline.LatestDeadLetters(ctx, s.js, recentDeadLetters)
	if err != nil {
		return err
	}
	workers, unread, werr := pipeline.AnnouncedWorkers(ctx, s.js)
	out.WorkersUnread = unread
	if errors.Is(werr, pipeline.ErrNoWorkersBucket) {
		// None announced, and workers of an account that may not make the bucket run unannounced.
		out.NoWorkersBucket, werr = true, nil
	}
	if werr != nil {
		out.WorkersError = werr.Error()
	}
	now := time.Now()
	var noted []statusBacklog // as status reads them, for workerNotes
	for _, b := range bls {
		wb := web.Backlog{Consumer: b.Consumer, Pending: b.Pending, AckPending: b.AckPending, Redelivered: b.Redelivered, Workers: []web.Worker{},
			Description: b.Description}
		if wb.DroppedSpace, err = droppedSpace(ctx, s.st, b); err != nil {
			wb.SpaceError = err.Error() // the queue is shown all the same
		}
		sb := statusBacklog{Backlog: b}
		for _, w := range workers {
			if w.Consumer == b.Consumer {
				wb.Workers = append(wb.Workers, webWorker(w, now))
				sb.Workers = append(sb.Workers, statusWorker{AnnouncedWorker: w})
			}
		}
		wb.NoWorker = werr == nil && b.NoWorkerRunning(len(wb.Workers), wb.DroppedSpace != "")
		out.Backlog = append(out.Backlog, wb)
		noted = append(noted, sb)
	}
	// The notes `paperpipe status` prints: the page showed each worker's target, and nothing
	// said that one's papers were found by no search (its space not the active one, or
	// dropped) or that the workers of one backlog wrote different things — the operator had
	// to read and compare the targets, or run status in a shell (found in session 29, walking
	// a lab's journey).
	if out.WorkerNotes, err = workerNotes(noted, active, func(name string) (bool, error) {
		gone, err := spaceGone(ctx, s.st, name)
		return !gone, err
	}); err != nil {
		return err
	}
	out.DeadLetters = int(dead)
	for _, d := range dls {
		out.Recent = append(out.Recent, web.DeadLetter{Seq: d.Seq, PaperID: d.PaperID, Reason: d.Reason, Attempts: d.Attempts, FailedAt: d.FailedAt})
	}
	return nil
}
