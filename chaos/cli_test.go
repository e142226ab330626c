package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
)

// These tests run the real paperpipe binary as a user would, against a nats-server process,
// the fake API as a process, and a fresh schema of the test database.

// stack is one test's services and its paperpipe environment.
type stack struct {
	t      *testing.T
	dir    string
	fake   *Fake
	nats   *NATS
	js     jetstream.JetStream
	dbURL  string
	env    []string
	papers int
}

func newStack(t *testing.T, fc FakeConfig, extraEnv ...string) *stack {
	t.Helper()
	return newStackOn(t, pgtest.URL(t), fc, extraEnv...)
}

// newStackOn is newStack on the database dbURL.
func newStackOn(t *testing.T, dbURL string, fc FakeConfig, extraEnv ...string) *stack {
	t.Helper()
	s := &stack{t: t, dir: keepOnFailure(t), dbURL: dbURL}
	var err error
	if s.fake, err = StartFake(bin.Fake, filepath.Join(s.dir, "openai-fake.log"), fc); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.fake.Stop(5 * time.Second) })
	if s.nats, err = StartNATS(bin.NATS, filepath.Join(s.dir, "jetstream"), filepath.Join(s.dir, "nats-server.log")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.nats.Stop)
	nc, err := nats.Connect(s.nats.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	if s.js, err = jetstream.New(nc); err != nil {
		t.Fatal(err)
	}
	s.env = append([]string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + s.dir, "PAPERPIPE_DATA=" + filepath.Join(s.dir, "data"),
		"DATABASE_URL=" + s.dbURL, "NATS_URL=" + s.nats.URL(),
		"OPENAI_BASE_URL=" + s.fake.URL, "OPENAI_API_KEY=test-not-a-secret",
		fmt.Sprintf("PAPERPIPE_EMBED_DIMENSIONS=%d", embedDims), "PAPERPIPE_LOG_LEVEL=info",
	}, extraEnv...)
	s.ok("migrate")
	return s
}

// run runs paperpipe to its end.
func (s *stack) run(args ...string) (stdout, stderr string, code int) {
	s.t.Helper()
	cmd := exec.Command(bin.Paperpipe, args...)
	cmd.Env = s.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		s.t.Fatalf("paperpipe %v: %v", args, err)
	}
	return out.String(), errb.String(), code
}

func (s *stack) ok(args ...string) string {
	s.t.Helper()
	out, errs, code := s.run(args...)
	if code != 0 {
		s.t.Fatalf("paperpipe %s: exit %d\n%s\n%s", strings.Join(args, " "), code, out, errs)
	}
	return out + errs
}

// ingest publishes n corpus abstracts.
func (s *stack) ingest(n int) {
	s.t.Helper()
	path := filepath.Join(s.dir, "abstracts.jsonl")
	f, err := os.Create(path)
	if err != nil {
		s.t.Fatal(err)
	}
	if err := WriteJSONL(f, Corpus(sampledata.Papers(s.t), n, 7)); err != nil {
		s.t.Fatal(err)
	}
	f.Close()
	if out := s.ok("ingest", path); !strings.Contains(out, fmt.Sprintf("%d published", n)) {
		s.t.Fatalf("ingest: %s", out)
	}
	s.papers = n
}

// worker starts `paperpipe worker` in the background.
func (s *stack) worker(name string, args ...string) *Proc {
	s.t.Helper()
	p, err := startProc(name, filepath.Join(s.dir, name+".log"), s.env, nil, bin.Paperpipe, append([]string{"worker"}, args...)...)
	if err != nil {
		s.t.Fatal(err)
	}
	s.t.Cleanup(func() { p.Stop(5 * time.Second) })
	return p
}

// counts returns the papers with a TL;DR, with an embedding, and the TL;DR rows.
func (s *stack) counts() (tldrs, embs, rows int) {
	s.t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, s.dbURL)
	if err != nil {
		s.t.Fatal(err)
	}
	defer conn.Close(ctx)
	if err := conn.QueryRow(ctx, `SELECT
		(SELECT count(DISTINCT paper_id) FROM tldrs), (SELECT count(DISTINCT paper_id) FROM embeddings), (SELECT count(*) FROM tldrs)`).
		Scan(&tldrs, &embs, &rows); err != nil {
		s.t.Fatal(err)
	}
	return tldrs, embs, rows
}

func (s *stack) waitStored(atLeast int) {
	s.t.Helper()
	deadline := time.Now().Add(2 * time.Minute)
	for {
		if tl, em, _ := s.counts(); tl >= atLeast && em >= atLeast {
			return
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("fewer than %d papers stored after 2 minutes", atLeast)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish processes what is left and checks every paper is stored exactly once, with nothing
// dead-lettered, and (when paidOnce) no result paid twice.
func (s *stack) finish(paidOnce bool) {
	s.t.Helper()
	s.ok("worker", "--exit-when-idle")
	tl, em, rows := s.counts()
	if tl != s.papers || em != s.papers || rows != s.papers {
		s.t.Errorf("%d papers with a TL;DR (%d rows), %d with an embedding; want all %d, once", tl, rows, em, s.papers)
	}
	dls, err := pipeline.ListDeadLetters(context.Background(), s.js, 0)
	if err != nil || len(dls) != 0 {
		s.t.Errorf("dead letters %+v, %v; want none", dls, err)
	}
	st, err := s.fake.Stats(context.Background())
	if err != nil {
		s.t.Fatal(err)
	}
	if paidOnce && (st.ChatDelivered != st.ChatDistinctDelivered || st.EmbedInputsDelivered != st.EmbedInputsDistinctDelivered) {
		s.t.Errorf("paid twice: %d chat completions for %d requests, %d vectors for %d inputs",
			st.ChatDelivered, st.ChatDistinctDelivered, st.EmbedInputsDelivered, st.EmbedInputsDistinctDelivered)
	}
}

func TestShutdownUnderLoadLosesNothing(t *testing.T) {
	t.Parallel()
	s := newStack(t, FakeConfig{ChatLatency: 200 * time.Millisecond, EmbedLatency: 50 * time.Millisecond})
	s.ingest(600)
	w := s.worker("worker-1", "--concurrency", "8")
	s.waitStored(40)
	if err := w.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, err := w.Wait(2 * time.Minute)
	if err != nil || code != 0 {
		t.Fatalf("after SIGINT the worker ended with %d, %v; want a clean exit\n%s", code, err, w.Tail(10))
	}
	if tl, _, _ := s.counts(); tl >= s.papers {
		t.Fatalf("all %d papers were done before the shutdown; the test proves nothing", tl)
	}
	if !strings.Contains(w.Tail(5), "worker stopped") {
		t.Errorf("the worker did not drain and report: %s", w.Tail(5))
	}
	// What was in flight finished and was stored: nothing is bought twice.
	s.finish(true)
}

func TestSecondSIGINTExitsAtOnceLosingNothingAcked(t *testing.T) {
	t.Parallel()
	// Slow answers: draining would take seconds. (API work may take half the AckWait.)
	s := newStack(t, FakeConfig{ChatLatency: 3 * time.Second}, "PAPERPIPE_ACK_WAIT=8s")
	s.ingest(40)
	w := s.worker("worker-1", "--concurrency", "8")
	s.waitStored(8)
	if err := w.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond)
	if err := w.Signal(syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	code, err := w.Wait(time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if code != 130 || !strings.Contains(w.Tail(5), "second signal, exiting now") {
		t.Fatalf("after a second SIGINT: exit %d, log:\n%s\nwant exit 130 at once", code, w.Tail(5))
	}
	before, _, _ := s.counts()
	// Answers that were on their way when the process ended are bought again: not checked.
	s.finish(false)
	if after, _, _ := s.counts(); after < before {
		t.Errorf("%d TL;DRs before the restart, %d after", before, after)
	}
}

func TestDeadLettersListedAndReplayedFromTheCLI(t *testing.T) {
	t.Parallel()
	// Every TL;DR request fails, for one paper, and a message has 2 deliveries of 2 seconds of
	// API work each: the paper is dead-lettered at its second. (Two papers failed in a row are
	// the API failing every request, a pause that leaves the messages queued, not dead letters.)
	s := newStack(t, FakeConfig{}, "PAPERPIPE_ACK_WAIT=4s", "PAPERPIPE_MAX_DELIVER=2")
	setFaults(t, s.fake, `{"server_error":1}`)
	s.ingest(1)
	// A message that is not an abstract at all.
	if _, err := s.js.Publish(context.Background(), pipeline.SubjectNew, []byte(`{"id":"x","title":`)); err != nil {
		t.Fatal(err)
	}
	s.ok("worker", "--exit-when-idle")

	var dls []pipeline.DeadLetter
	if err := json.Unmarshal([]byte(s.ok("dlq", "list", "--json")), &dls); err != nil {
		t.Fatal(err)
	}
	if len(dls) != 2 {
		t.Fatalf("dead letters %+v, want 2 (the paper's, the undecodable message's)", dls)
	}
	var bad uint64
	for _, d := range dls {
		switch {
		case d.PaperID == "":
			bad = d.Seq
			if d.Attempts != 1 || !strings.Contains(d.Reason, "not an abstract") {
				t.Errorf("undecodable message: %+v", d)
			}
		case d.Attempts != 2 || !strings.Contains(d.Reason, "gave up after 2 deliveries"):
			t.Errorf("dead letter %+v: want 2 attempts and the reason", d)
		}
	}
	table := s.ok("dlq", "list")
	if !strings.Contains(table, "ATTEMPTS") || !strings.Contains(table, "gave up after 2 deliveries") {
		t.Errorf("dlq list:\n%s", table)
	}
	if _, errs, code := s.run("dlq", "replay", "abc"); code != 2 {
		t.Errorf("dlq replay abc: exit %d (%s), want a usage error", code, errs)
	}
	if _, _, code := s.run("dlq", "replay", "9999"); code != 1 {
		t.Errorf("dlq replay of a missing dead letter: exit %d, want 1", code)
	}
	// The API is fixed: replay the papers, the undecodable message by its id, then work.
	setFaults(t, s.fake, `{}`)
	if out := s.ok("dlq", "replay", fmt.Sprint(bad)); !strings.Contains(out, "replayed 1") {
		t.Errorf("dlq replay %d: %s", bad, out)
	}
	if out := s.ok("dlq", "replay", "--all"); !strings.Contains(out, "replayed 1") {
		t.Errorf("dlq replay --all: %s", out)
	}
	s.ok("worker", "--exit-when-idle")
	if tl, em, _ := s.counts(); tl != 1 || em != 1 {
		t.Errorf("after the replay %d TL;DRs and %d embeddings, want 1", tl, em)
	}
	dls = nil
	if err := json.Unmarshal([]byte(s.ok("dlq", "list", "--json")), &dls); err != nil {
		t.Fatal(err)
	}
	if len(dls) != 1 || dls[0].PaperID != "" {
		t.Errorf("after the replay: %+v; want only the undecodable message, dead again", dls)
	}
}

func setFaults(t *testing.T, f *Fake, body string) {
	t.Helper()
	resp, err := httpPost(f.control()+"/_faults", body)
	if err != nil {
		t.Fatal(err)
	}
	if resp != 204 {
		t.Fatalf("POST /_faults %s: %d", body, resp)
	}
}

type statusCost struct {
	Model        string  `json:"model"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	USD          float64 `json:"usd"`
	PriceKnown   bool    `json:"price_known"`
}

func (s *stack) status(t *testing.T, env ...string) ([]statusCost, int) {
	t.Helper()
	saved := s.env
	s.env = append(append([]string(nil), s.env...), env...)
	defer func() { s.env = saved }()
	out, errs, code := s.run("status", "--json")
	if code != 0 {
		t.Logf("status: %s", errs)
		return nil, code
	}
	var v struct {
		Cost []statusCost `json:"cost"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("status --json: %v\n%s", err, out)
	}
	return v.Cost, 0
}

func TestEmbeddingBatchLimitsFromTheEnvironmentAndCostInStatus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		env     []string
		papers  int
		minReqs int64
		maxReqs int64
	}{
		// At most 1,024 estimated tokens a request (the smallest budget taken; the abstracts
		// are of ~600): at least as many requests as the papers' tokens fill (minReqs -1:
		// counted from the corpus below), where the inputs' limit alone would send them in one.
		{name: "tokens", env: []string{"PAPERPIPE_EMBED_BATCH_TOKENS=1024"}, papers: 30, minReqs: -1, maxReqs: 30},
		// 7 inputs a request at most, gathered across messages (fewer requests than papers).
		{name: "inputs", env: []string{"PAPERPIPE_EMBED_BATCH_INPUTS=7"}, papers: 60, minReqs: 9, maxReqs: 59},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newStack(t, FakeConfig{}, append(tt.env, "PAPERPIPE_CHAT_MODEL=local-llm")...)
			if tt.minReqs < 0 {
				tokens := 0
				for _, p := range Corpus(sampledata.Papers(t), tt.papers, 7) { // as s.ingest writes them
					tokens += embed.EstimateTokens(embed.TitleAbstract(p))
				}
				tt.minReqs = int64((tokens + 1023) / 1024)
				if tt.minReqs < 2 {
					t.Fatalf("the %d papers hold %d estimated tokens: too few to fill more than one request of 1024", tt.papers, tokens)
				}
			}
			s.ingest(tt.papers)
			s.ok("worker", "--exit-when-idle", "--concurrency", "64")
			st, err := s.fake.Stats(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if st.EmbedInputsDelivered != int64(tt.papers) || st.EmbedRequests < tt.minReqs || st.EmbedRequests > tt.maxReqs {
				t.Errorf("%d vectors in %d requests; want %d in %d to %d", st.EmbedInputsDelivered, st.EmbedRequests, tt.papers, tt.minReqs, tt.maxReqs)
			}

			// status prices what the ledger recorded: an unknown model says so, PAPERPIPE_PRICES fixes it.
			costs, _ := s.status(t, "PAPERPIPE_CHAT_MODEL=local-llm")
			byModel := map[string]statusCost{}
			for _, c := range costs {
				byModel[c.Model] = c
			}
			chat, emb := byModel["local-llm"], byModel[embedModel]
			if chat.PriceKnown || chat.Requests != st.ChatDelivered || chat.OutputTokens != st.CompletionTokens {
				t.Errorf("local-llm: %+v; want unknown price, %d requests, %d output tokens", chat, st.ChatDelivered, st.CompletionTokens)
			}
			if !emb.PriceKnown || math.Abs(emb.USD-float64(emb.InputTokens)*0.02/1e6) > 1e-12 || emb.Requests != st.EmbedRequests {
				t.Errorf("%s: %+v; want priced at $0.02 per 1M tokens, %d requests", embedModel, emb, st.EmbedRequests)
			}
			out, _, _ := s.run("status")
			if !strings.Contains(out, "price unknown — set PAPERPIPE_PRICES") {
				t.Errorf("status does not flag the unknown price:\n%s", out)
			}
			costs, _ = s.status(t, "PAPERPIPE_PRICES=local-llm=1/2")
			for _, c := range costs {
				if c.Model == "local-llm" {
					want := (float64(c.InputTokens)*1 + float64(c.OutputTokens)*2) / 1e6
					if !c.PriceKnown || c.InputTokens == 0 || math.Abs(c.USD-want) > 1e-12 {
						t.Errorf("with PAPERPIPE_PRICES: %+v, want $%v", c, want)
					}
				}
			}
			if _, code := s.status(t, "PAPERPIPE_PRICES=local-llm"); code != 2 {
				t.Errorf("a bad PAPERPIPE_PRICES: exit %d, want 2", code)
			}
		})
	}
}
