package main

import (
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
