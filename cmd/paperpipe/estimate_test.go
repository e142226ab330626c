package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// reasoningTokens is what the thinking of a reasoning model adds to each of its answers.
const reasoningTokens = 400

// thinking answers chat requests as a reasoning model does: the fake API's answer, with
// reasoningTokens more completion tokens (completion_tokens_details.reasoning_tokens).
func thinking(e *archiveEnv) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !strings.HasSuffix(r.URL.Path, "/chat/completions") {
			return false
		}
		rec := httptest.NewRecorder()
		e.fake.Handler().ServeHTTP(rec, r)
		var body map[string]any
		if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
			w.WriteHeader(rec.Code)
			w.Write(rec.Body.Bytes())
			return true
		}
		u := body["usage"].(map[string]any)
		u["completion_tokens"] = u["completion_tokens"].(float64) + reasoningTokens
		u["total_tokens"] = u["total_tokens"].(float64) + reasoningTokens
		u["completion_tokens_details"] = map[string]any{"reasoning_tokens": reasoningTokens}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(body)
		return true
	}
}

// chatOutputTokens is the usage ledger's output tokens of chat requests.
func (e *archiveEnv) chatOutputTokens(t *testing.T) int64 {
	t.Helper()
	usage, err := e.st.Usage(t.Context(), time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	var n int64
	for _, u := range usage {
		if u.Kind == paper.KindChat {
			n += int64(u.OutputTokens)
		}
	}
	return n
}

// A dry run's output tokens are not below what the run then records when the chat model
// answers at length — a reasoning model, whose thinking is billed as output: they were 2 per
// word of the TL;DR limit, a tenth of what such a model's answers cost, under a note that the
// estimate is above real counts. The model's average answer in the usage ledger, when larger,
// is what the estimate counts.
func TestDryRunCountsTheOutputOfAModelThatThinks(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	c := e.fakeBehind(t, thinking(e), nil)
	ctx := t.Context()
	e.seed(t, 10)
	e.reprocess(t, ctx, c, reprocessOptions{tldrOnly: true})
	e.seed(t, 20) // 10 more papers, stale
	dry, out := e.reprocess(t, ctx, c, reprocessOptions{tldrOnly: true, dryRun: true})
	if dry.Estimate.TLDRs != 10 {
		t.Fatalf("dry run: %+v, want 10 TL;DRs", dry.Estimate)
	}
	before := e.chatOutputTokens(t)
	e.reprocess(t, ctx, c, reprocessOptions{tldrOnly: true})
	if spent := e.chatOutputTokens(t) - before; spent > dry.Estimate.ChatOutTokens {
		t.Errorf("the run's chat answers had %d output tokens, above the dry run's estimate of %d:\n%s", spent, dry.Estimate.ChatOutTokens, out)
	}
}

// A dry run's cost keeps the digits of a small sum, as status's do: embedding a few papers
// costs thousandths of a cent, and "$0.0000" read as free.
func TestDryRunCostOfAFewEmbeddingsIsNotZero(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 10)
	dry, out := e.reprocess(t, t.Context(), e.c, reprocessOptions{embedOnly: true, dryRun: true})
	if dry.Estimate.CostUSD <= 0 {
		t.Fatalf("estimate %+v, want a cost", dry.Estimate)
	}
	want := paper.FormatUSD(dry.Estimate.CostUSD)
	if !regexp.MustCompile(`estimated cost +`+regexp.QuoteMeta(want)+`\n`).MatchString(out) || want == "$0.00" {
		t.Errorf("dry run of %d embedding tokens does not say it costs %s:\n%s", dry.Estimate.EmbedTokens, want, out)
	}
}

// A run that buys TL;DRs or vectors says, before it sends anything, what it is estimated to
// cost — the dry run's figure: its first line gave the papers and outputs alone, and the cost
// was a second command's to tell (found in session 29, walking a lab's journey).
func TestAPaidRunSaysItsEstimatedCostBeforeItStarts(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 10)
	dry, _ := e.reprocess(t, t.Context(), e.c, reprocessOptions{dryRun: true})
	_, out := e.reprocess(t, t.Context(), e.c, reprocessOptions{})
	first, _, _ := strings.Cut(out, "\n")
	if want := "; estimated cost " + paper.FormatUSD(dry.Estimate.CostUSD) + " "; !strings.HasPrefix(first, "reprocess: 10 papers to process") || !strings.Contains(first, want) {
		t.Errorf("the run's first line does not say %q:\n%s", want, out)
	}
}

// --max-cost is a budget's guard: a run whose estimated cost is above it, or cannot be priced
// (a model without a price), sends nothing and says why and what to do; a dry run prints its
// estimate and fails the same way, and a run within it goes ahead.
func TestARunEstimatedAboveMaxCostSendsNothing(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 10)
	ctx := t.Context()
	dry, _ := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true})
	below := dry.Estimate.CostUSD / 2
	refused := func(c *config, o reprocessOptions, want string) string {
		t.Helper()
		var out, errw bytes.Buffer
		_, err := runReprocess(ctx, c, o, &out, &errw)
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("reprocess %+v: %v, want an error saying %q\n%s%s", o, err, want, out.String(), errw.String())
		}
		return out.String()
	}
	over := "is above --max-cost " + paper.FormatUSD(below) + "; nothing was sent"
	refused(e.c, reprocessOptions{maxCost: below, capped: true}, over)
	unpriced := e.cfg(func(c *config) { c.ChatModel = "llama3" })
	refused(unpriced, reprocessOptions{maxCost: 1000, capped: true}, "the run's cost cannot be estimated, a model has no price; nothing was sent")
	if s := e.fake.Stats(); s.ChatRequests != 0 || s.EmbedRequests != 0 {
		t.Fatalf("runs refused by --max-cost sent %d chat and %d embedding requests", s.ChatRequests, s.EmbedRequests)
	}
	if out := refused(e.c, reprocessOptions{dryRun: true, maxCost: below, capped: true}, "a run would send nothing"); !strings.Contains(out, "estimated cost") {
		t.Errorf("a dry run above --max-cost does not print its estimate:\n%s", out)
	}
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{maxCost: dry.Estimate.CostUSD, capped: true})
	if res.Worker.TLDRs != 10 || res.Worker.Embeddings != 10 {
		t.Errorf("a run within --max-cost wrote %d TL;DRs and %d embeddings, want 10 of each", res.Worker.TLDRs, res.Worker.Embeddings)
	}
}
