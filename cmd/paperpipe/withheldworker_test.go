package main

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/store"
)

// refuseChatOf answers the env's chat requests about the paper whose abstract holds marker as
// edit has them (the content filter withholding the answer, the model refusing), counting them
// in asked, while on is set; the others, and every request once on is unset, are the fake's.
func (e *archiveEnv) refuseChatOf(t *testing.T, marker string, on *atomic.Bool, asked *atomic.Int32, edit func(choice map[string]any)) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPost || !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			return false
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			t.Error(err)
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		if !bytes.Contains(body, []byte(marker)) {
			return false
		}
		asked.Add(1)
		if !on.Load() {
			return false
		}
		rec := httptest.NewRecorder()
		e.fake.Handler().ServeHTTP(rec, r)
		var v map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &v); err != nil || v["choices"] == nil {
			t.Errorf("the fake's chat answer: %v\n%s", err, rec.Body.String())
			return false
		}
		edit(v["choices"].([]any)[0].(map[string]any))
		out, _ := json.Marshal(v)
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(rec.Code)
		w.Write(out)
		return true
	}
}

// refusing is the switch and the count of a refusingFake.
type refusing struct {
	on    atomic.Bool  // the answers are edited while set
	asked atomic.Int32 // the chat requests about the paper
}

// refusingFake puts the env behind an API that answers the chat requests about its first seeded
// paper (arxiv:2401.00000, "balanced router number 0") as edit has them, from the start, and
// returns the configuration that reaches it with the switch and count of those answers.
func (e *archiveEnv) refusingFake(t *testing.T, edit func(choice map[string]any)) (*config, *refusing) {
	r := &refusing{}
	r.on.Store(true)
	return e.fakeBehind(t, e.refuseChatOf(t, "balanced router number 0 ", &r.on, &r.asked, edit), nil), r
}

// withheldAnswers are the answers the API gives when it will not write a TL;DR: its content
// filter withheld it, or the model refused (message.refusal).
var withheldAnswers = []struct {
	name string
	edit func(choice map[string]any)
}{
	{"content_filter", func(choice map[string]any) {
		choice["finish_reason"] = "content_filter"
		choice["message"].(map[string]any)["content"] = ""
	}},
	{"refusal", func(choice map[string]any) {
		msg := choice["message"].(map[string]any)
		msg["content"] = nil
		msg["refusal"] = "I'm sorry, I can't help with that request."
	}},
}

// A TL;DR the API will not give, asked for by a plain `reprocess` (its worker), is recorded as
// the Batch API's path records it, and the next run does not buy it again: every run queued the
// paper again (stale: no TL;DR of its text) and paid for the same refusal, for ever.
func TestPlainReprocessDoesNotBuyAWithheldTLDRAgain(t *testing.T) {
	t.Parallel()
	for _, tc := range withheldAnswers {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newArchiveEnv(t, openaitest.Config{})
			e.seed(t, 3)
			ctx := t.Context()
			const id = "arxiv:2401.00000"
			c, r := e.refusingFake(t, tc.edit)
			opts := reprocessOptions{tldrOnly: true}
			for run := 1; run <= 2; run++ {
				var errw bytes.Buffer
				res, err := runReprocess(ctx, c, opts, &bytes.Buffer{}, &errw)
				t.Logf("run %d: %v, worker %+v\n%s", run, err, res.Worker, errw.String())
			}
			if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 2 {
				t.Errorf("%d TL;DRs, want 2", n)
			}
			if n := r.asked.Load(); n != 1 {
				t.Errorf("two plain reprocess runs asked %d times for %s's TL;DR, which the API withheld at the first: want 1", n, id)
			}
			if n := e.count(t, `SELECT count(*) FROM withheld_tldrs WHERE paper_id = $1`, id); n != 1 {
				t.Errorf("%d records of %s's withheld TL;DR, want 1", n, id)
			}
		})
	}
}

// A paper whose TL;DR the API withheld, published by a plain `reprocess` for its other output
// (its vector), gets only the vector: the worker asked for the TL;DR again with it, and bought
// the same refusal at every run that published the paper for anything.
func TestWithheldTLDRIsNotBoughtWithThePapersVector(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	c, r := e.refusingFake(t, withheldAnswers[1].edit)
	if _, err := runReprocess(ctx, c, reprocessOptions{tldrOnly: true}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("the TL;DR-only run with a refusal succeeded; want its paper dead-lettered")
	}
	var errw bytes.Buffer
	res, err := runReprocess(ctx, c, reprocessOptions{}, &bytes.Buffer{}, &errw)
	t.Logf("TL;DRs and vectors: %v, worker %+v\n%s", err, res.Worker, errw.String())
	if n := r.asked.Load(); n != 1 {
		t.Errorf("the withheld TL;DR was asked for %d times, want 1: bought again with the paper's vector", n)
	}
	if n := e.count(t, `SELECT count(*) FROM embeddings`); n != 3 || err != nil {
		t.Errorf("%d vectors, run %v; want 3 and no failure", n, err)
	}
}

// `dlq replay` of a withheld TL;DR's dead letter asks for it again, as the user meant (the
// record kept the paper out of every other run): once answered, the TL;DR is stored and the
// record is gone; refused again, it is recorded again.
func TestReplayedDeadLetterOfAWithheldTLDRAsksAgain(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	const id = "arxiv:2401.00000"
	c, r := e.refusingFake(t, withheldAnswers[0].edit)
	opts := reprocessOptions{tldrOnly: true}
	for round, answer := range []bool{false, true} {
		if _, err := runReprocess(ctx, c, opts, &bytes.Buffer{}, &bytes.Buffer{}); err == nil && round == 0 {
			t.Fatal("the run with the content filter succeeded; want its paper dead-lettered")
		}
		if n := e.count(t, `SELECT count(*) FROM withheld_tldrs WHERE paper_id = $1`, id); n != 1 {
			t.Fatalf("round %d: %d records of %s's withheld TL;DR, want 1", round, n, id)
		}
		r.on.Store(!answer)
		if err := cmdDLQ(ctx, c, []string{"replay", "--all"}); err != nil {
			t.Fatal(err)
		}
	}
	var errw bytes.Buffer
	res, err := runReprocess(ctx, c, opts, &bytes.Buffer{}, &errw)
	if err != nil {
		t.Fatalf("the run after the replay: %v\n%s", err, errw.String())
	}
	if n := r.asked.Load(); n != 3 {
		t.Errorf("%s's TL;DR was asked for %d times, want 3: once by the first run, once by each replay", id, n)
	}
	if n := e.count(t, `SELECT count(*) FROM tldrs WHERE paper_id = $1`, id); n != 1 || res.Worker.TLDRs != 1 {
		t.Errorf("%d TL;DRs of %s after the replays, worker %+v; want it stored", n, id, res.Worker)
	}
	if n := e.count(t, `SELECT count(*) FROM withheld_tldrs`); n != 0 {
		t.Errorf("%d withheld records once the TL;DR was stored, want none", n)
	}
}

// Once a TL;DR is recorded withheld, `reprocess` and its --dry-run say so, and that the paper's
// TL;DR is not asked for again: they said "nothing to do: every selected paper has its TL;DR"
// of an archive one paper of which has none, a count status shows short for good.
func TestReprocessSaysWhichTLDRsTheAPIWithheld(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	c, _ := e.refusingFake(t, withheldAnswers[0].edit)
	opts := reprocessOptions{tldrOnly: true}
	if _, err := runReprocess(ctx, c, opts, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
		t.Fatal("the run with the content filter succeeded; want its paper dead-lettered")
	}
	dryOpts := opts
	dryOpts.dryRun = true
	_, dry := e.reprocess(t, ctx, c, dryOpts)
	res, run := e.reprocess(t, ctx, c, opts)
	const want = "1 TL;DR the API withheld (its content filter, or the model refused) is not asked for again: `paperpipe batches withheld` lists it"
	for name, said := range map[string]string{"--dry-run": dry, "a run": run} {
		if !strings.Contains(said, want) || strings.Contains(said, "every selected paper has its") {
			t.Errorf("%s said:\n%s\nwant %q, and not that every paper has its TL;DR", name, said, want)
		}
	}
	if res.Counts.Withheld != 1 {
		t.Errorf("the run's counts: %+v; want 1 withheld", res.Counts)
	}
	// The status page and GET /api/status count it too.
	m, err := buildModels(ctx, e.c, newLogger(e.c), e.st)
	if err != nil {
		t.Fatal(err)
	}
	ws := &webStatus{st: e.st, js: e.jetStream(t), sum: m.sum}
	if st, err := ws.Status(ctx); err != nil || st.TLDRsWithheld != 1 {
		t.Errorf("the web's status: %+v, %v; want 1 TL;DR withheld", st, err)
	}
}

// An archive moved to another machine (export, then import) keeps its records of the TL;DRs the
// API withheld: the new archive's first `reprocess` bought every one of those refusals again.
func TestImportKeepsTheTLDRsTheAPIWithheld(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	const id = "arxiv:2401.00000"
	p, err := e.st.Paper(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	const reason = `the model refused: "I'm sorry, I can't help with that request."`
	if _, err := e.st.RecordWithheld(ctx, []store.Withheld{{PaperID: id, Model: "gpt-4o-mini", PromptVersion: "tldr-v1",
		ContentHash: p.ContentHash, Reason: reason}}); err != nil {
		t.Fatal(err)
	}
	orig, err := e.st.WithheldTLDRs(ctx, nil)
	if err != nil || len(orig) != 1 {
		t.Fatalf("WithheldTLDRs = %+v, %v", orig, err)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	if _, err := runExport(ctx, e.st, exportOptions{out: file, tldr: store.TLDRKeep{Model: "gpt-4o-mini", PromptVersion: "tldr-v1"}}, &errw); err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}
	moved := newArchiveEnv(t, openaitest.Config{})
	if _, err := runImport(ctx, moved.st, file, &errw); err != nil {
		t.Fatalf("import: %v\n%s", err, errw.String())
	}
	ws, err := moved.st.WithheldTLDRs(ctx, nil)
	if err != nil || len(ws) != 1 || ws[0].PaperID != id || ws[0].Reason != reason || ws[0].ContentHash != p.ContentHash {
		t.Errorf("the imported archive's withheld TL;DRs: %+v, %v; want %s's, with its reason", ws, err, id)
	} else if !ws[0].At.Equal(orig[0].At) {
		// Dated as the export says (withheld_at), as an imported TL;DR keeps when it was written.
		t.Errorf("the imported record is dated %s; want %s, when the API withheld it", ws[0].At, orig[0].At)
	}
	c, r := moved.refusingFake(t, withheldAnswers[1].edit)
	r.on.Store(false) // the API would answer: the paper must not be asked at all
	if _, err := runReprocess(ctx, c, reprocessOptions{tldrOnly: true}, &bytes.Buffer{}, &errw); err != nil {
		t.Fatalf("reprocess: %v\n%s", err, errw.String())
	}
	if n := r.asked.Load(); n != 0 {
		t.Errorf("the imported archive's reprocess asked %d times for %s's TL;DR, which the API withheld: want 0", n, id)
	}
}

// `batches withheld` prints its records terminal-safe: a reason imported from another
// archive's export (tldr_withheld) is whatever that file says, and an escape sequence in it
// reached the terminal (OSC 0 sets its title, CSI 2J clears it), as `dlq list` never lets one.
func TestBatchesWithheldListIsTerminalSafe(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 1)
	ctx := t.Context()
	p, err := e.st.Paper(ctx, "arxiv:2401.00000")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.RecordWithheld(ctx, []store.Withheld{{PaperID: p.ID, Model: "gpt-4o-mini", PromptVersion: "tldr-v1",
		ContentHash: p.ContentHash, Reason: "refused \x1b]0;pwned\x07\x1b[2J"}}); err != nil {
		t.Fatal(err)
	}
	var out bytes.Buffer
	if err := listWithheld(ctx, e.st, false, time.Now(), &out); err != nil {
		t.Fatal(err)
	}
	if strings.ContainsAny(out.String(), "\x1b\x07") || !strings.Contains(out.String(), "refused") {
		t.Errorf("`batches withheld` printed %q; want the reason without its control characters", out.String())
	}
}

// A refusal written in the answer's text ("I'm sorry, but I can't …", which the TL;DR's rules
// refuse) is not recorded as withheld: it is read by its words, and a server's configuration (a
// chat template, a model not tuned to follow instructions) can make every paper's answer read
// so — records would keep those papers out once it was fixed. Each run asks again (the answer
// and the stricter retry), and dead-letters the paper, as before.
func TestARefusalInTheAnswersTextIsNotRecordedWithheld(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	c, r := e.refusingFake(t, func(choice map[string]any) {
		choice["message"].(map[string]any)["content"] = "I'm sorry, but I can't help with that request."
	})
	for run := 1; run <= 2; run++ {
		if _, err := runReprocess(ctx, c, reprocessOptions{tldrOnly: true}, &bytes.Buffer{}, &bytes.Buffer{}); err == nil {
			t.Fatalf("run %d succeeded; want the paper dead-lettered", run)
		}
	}
	if n := e.count(t, `SELECT count(*) FROM withheld_tldrs`); n != 0 {
		t.Errorf("%d withheld records, want none", n)
	}
	if n := r.asked.Load(); n != 4 {
		t.Errorf("%d requests for the paper in two runs, want 4: its answer and the stricter retry, at each", n)
	}
}
