package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/metrics"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/internal/webstore"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
	"github.com/paperpipe/paperpipe/web"
)

// The store and publisher are the adapters cmd/paperpipe serves through.
type (
	testStore     = webstore.Store
	testPublisher = webstore.Publisher
)

type testStatus struct {
	st  *store.Store
	js  jetstream.JetStream
	sum pipeline.Summarizer
	// dead are the recent dead letters; nil: one of a paper not in the archive.
	dead []web.DeadLetter
	// missing is the status's MissingModel.
	missing *web.MissingModel
	// noBucket is the status's NoWorkersBucket.
	noBucket bool
	// unread is the status's WorkersUnread.
	unread uint64
	// dropped, when set, adds the backlog of a reprocess consumer into that space, dropped.
	dropped string
	// notes are the status's WorkerNotes.
	notes []string
	// spaceError, when set, adds the backlog of a reprocess consumer whose space could not be
	// looked up, with this error.
	spaceError string
}

func (s testStatus) Status(ctx context.Context) (web.Status, error) {
	sp, err := s.st.ActiveSpace(ctx)
	if err != nil {
		return web.Status{}, err
	}
	c, err := s.st.Counts(ctx, paper.Work{Model: s.sum.Model(), PromptVersion: s.sum.PromptVersion(), SpaceID: sp.ID})
	if err != nil {
		return web.Status{}, err
	}
	since := time.Now().UTC().AddDate(0, 0, -30).Truncate(24 * time.Hour)
	usage, err := s.st.Usage(ctx, since)
	if err != nil {
		return web.Status{}, err
	}
	bls, err := pipeline.Backlogs(ctx, s.js)
	if err != nil {
		return web.Status{}, err
	}
	out := web.Status{Papers: c.Papers, WithTLDR: c.WithTLDR, WithEmbedding: c.WithEmbedding,
		TLDRModel: s.sum.Model(), PromptVersion: s.sum.PromptVersion(), Space: sp.Name(), UsageSince: since,
		DeadLetters: 1, Recent: []web.DeadLetter{{Seq: 1, PaperID: "arxiv:2401.99999", Reason: "summarize: <b>bad</b> answer", Attempts: 8, FailedAt: since}}}
	out.TLDRsWithheld, out.MissingModel, out.NoWorkersBucket, out.WorkersUnread = c.TLDRsWithheld, s.missing, s.noBucket, s.unread
	out.WorkerNotes = s.notes
	if s.dead != nil {
		out.DeadLetters, out.Recent = len(s.dead), s.dead
	}
	for i, b := range bls {
		wb := web.Backlog{Consumer: b.Consumer, Pending: b.Pending, AckPending: b.AckPending}
		if i == 0 {
			// A worker paused by a rate limit, as cmd/paperpipe's status source reads one
			// (pipeline.AnnouncedWorkers).
			until := since.Add(time.Hour)
			wb.Workers = []web.Worker{{Host: "host-a", PID: 42, Started: since, Target: "TL;DRs by " + s.sum.Model(), Concurrency: 16,
				State: "paused", Pause: &web.WorkerPause{Reason: "rate_limited", Text: "rate limited by the API", Detail: "429", Until: &until},
				Held: 3, Processed: 7, Version: "dev", LastSeen: since}}
		} else {
			wb.NoWorker = b.Pending > 0
		}
		out.Backlog = append(out.Backlog, wb)
	}
	if s.dropped != "" {
		out.Backlog = append(out.Backlog, web.Backlog{Consumer: "reprocess-0123456789ab", Pending: 2, Workers: []web.Worker{}, DroppedSpace: s.dropped,
			Description: "re-processing: space " + s.dropped})
	}
	if s.spaceError != "" {
		out.Backlog = append(out.Backlog, web.Backlog{Consumer: "reprocess-ba9876543210", Pending: 1, Workers: []web.Worker{}, SpaceError: s.spaceError})
	}
	zero := 0.0
	for _, u := range usage {
		out.Usage = append(out.Usage, web.Usage{Day: u.Day, Model: u.Model, Kind: u.Kind, Requests: u.Requests,
			InputTokens: u.InputTokens, OutputTokens: u.OutputTokens, CostUSD: &zero})
	}
	return out, nil
}

// bundle is one test's real services and a server over them.
type bundle struct {
	t       *testing.T
	js      jetstream.JetStream
	st      *store.Store
	url     string // of st's schema
	space   paper.Space
	sum     *summarize.Offline
	emb     *embed.Offline
	metrics *metrics.Metrics
	web     *web.Server
	http    *httptest.Server
}

// newBundle starts NATS and a database schema; the archive is empty.
func newBundle(t *testing.T) *bundle {
	t.Helper()
	ctx := t.Context()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	u := pgtest.URL(t)
	st, err := store.Open(ctx, store.Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	b := &bundle{t: t, js: js, st: st, url: u, sum: summarize.NewOffline(30), emb: embed.NewOffline()}
	if b.space, err = st.EnsureSpace(ctx, b.emb.Space()); err != nil {
		t.Fatal(err)
	}
	return b
}

// openTestStore opens a store of cfg, closed at the test's end, as the web surfaces read it: for
// a server over the bundle's database with other settings, or through a proxy.
func openTestStore(t *testing.T, cfg store.Config) testStore {
	t.Helper()
	st, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return testStore{Store: st}
}

// config is a web.Config over the bundle's services.
func (b *bundle) config() web.Config {
	b.metrics = metrics.New(metrics.Config{})
	return web.Config{
		Store:     testStore{Store: b.st},
		Embedder:  b.emb,
		Publisher: testPublisher{JS: b.js},
		Status:    testStatus{st: b.st, js: b.js, sum: b.sum},
		Checks: []web.Check{
			{Name: "database", Check: b.st.Ping},
			{Name: "nats", Check: func(ctx context.Context) error { _, err := b.js.AccountInfo(ctx); return err }},
		},
		Metrics: b.metrics,
	}
}

// serve starts an HTTP server for cfg.
func (b *bundle) serve(cfg web.Config) *httptest.Server {
	b.t.Helper()
	w, err := web.New(cfg)
	if err != nil {
		b.t.Fatal(err)
	}
	b.web = w
	b.http = httptest.NewServer(w.Handler())
	b.t.Cleanup(b.http.Close)
	return b.http
}

// publish queues papers as `paperpipe ingest` does.
func (b *bundle) publish(papers []paper.Abstract) {
	b.t.Helper()
	if _, _, err := (testPublisher{JS: b.js}).Publish(b.t.Context(), papers); err != nil {
		b.t.Fatal(err)
	}
}

// process runs a worker with the offline models until the queue is empty.
func (b *bundle) process() {
	b.t.Helper()
	w, err := pipeline.NewWorker(b.js, b.st, b.sum, b.emb, pipeline.WorkerConfig{
		SpaceID: b.space.ID, ExitWhenIdle: true, FetchWait: 200 * time.Millisecond,
	})
	if err != nil {
		b.t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(b.t.Context(), 2*time.Minute)
	defer cancel()
	if err := w.Run(ctx); err != nil {
		b.t.Fatal(err)
	}
}

// withSample is a bundle whose archive holds the processed sample, served with the default
// configuration.
func withSample(t *testing.T) *bundle {
	t.Helper()
	b := newBundle(t)
	b.publish(sampledata.Papers(t))
	b.process()
	b.serve(b.config())
	return b
}

// response is an answer read whole.
type response struct {
	code   int
	header http.Header
	body   []byte
}

func (r response) json(t testing.TB, v any) {
	t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		t.Fatalf("decode %s: %v", r.body, err)
	}
}

// do sends a request to the bundle's server; header holds name, value pairs ("Host" sets the
// Host header).
func (b *bundle) do(method, path string, body []byte, header ...string) response {
	b.t.Helper()
	return doTo(b.t, b.http.URL, method, path, body, header...)
}

func doTo(t testing.TB, base, method, path string, body []byte, header ...string) response {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, base+path, bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	for i := 0; i+1 < len(header); i += 2 {
		if header[i] == "Host" { // what a browser sends for the name in its address bar
			req.Host = header[i+1]
			continue
		}
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{code: resp.StatusCode, header: resp.Header, body: data}
}

// get is do for GET.
func (b *bundle) get(path string, header ...string) response {
	b.t.Helper()
	return b.do(http.MethodGet, path, nil, header...)
}

// wantError checks an answer is the JSON error format with code.
func wantError(t testing.TB, what string, r response, code int) string {
	t.Helper()
	if r.code != code {
		t.Errorf("%s: status %d, want %d; body %s", what, r.code, code, r.body)
		return ""
	}
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	if err := json.Unmarshal(r.body, &e); err != nil || e.Status != code || e.Error == "" {
		t.Errorf("%s: body %s is not {\"error\", \"status\": %d}", what, r.body, code)
	}
	if ct := r.header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Errorf("%s: Content-Type %q", what, ct)
	}
	return e.Error
}

// idOf returns the id of the sample paper whose title contains frag.
func idOf(t testing.TB, papers []paper.Abstract, frag string) string {
	t.Helper()
	for _, p := range papers {
		if strings.Contains(p.Title, frag) {
			return p.ID
		}
	}
	t.Fatalf("no sample paper has %q in its title", frag)
	return ""
}
