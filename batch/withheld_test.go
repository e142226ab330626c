package batch_test

import (
	"context"
	"testing"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/store"
)

// An answer the API will not give (its content filter withheld it: finish_reason
// content_filter; or the model refused: message.refusal) is not asked for again by the next
// `reprocess --batch-api` run while the paper's text and the prompt are the same: the worker's
// client gives such a paper up after one request, and each batch run paid for it again.
func TestWithheldAnswerIsNotBoughtAgainByTheNextRun(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		edit func(body map[string]any)
	}{
		{"content_filter", func(body map[string]any) {
			choice := body["choices"].([]any)[0].(map[string]any)
			choice["finish_reason"] = "content_filter"
			choice["message"].(map[string]any)["content"] = ""
		}},
		{"refusal", func(body map[string]any) {
			msg := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
			msg["content"] = nil
			msg["refusal"] = "I'm sorry, I can't help with that request."
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			const n = 3
			b := setup(t, n)
			url := proxy(t, b.fake, editOutput(b, editFirstBody(t, tc.edit)))
			requests := 0
			for run := 1; run <= 2; run++ {
				rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(context.Background(), store.Selection{})
				if err != nil {
					t.Fatalf("run %d: %v", run, err)
				}
				t.Logf("run %d: %+v", run, rep)
				if want := map[bool]int{true: 1, false: 0}[run == 1]; rep.Withheld != want {
					t.Errorf("run %d: %d withheld reported, want %d", run, rep.Withheld, want)
				}
				requests += rep.Requests
			}
			if requests != n {
				t.Errorf("two runs sent %d requests for %d papers, one of them withheld in the first: the withheld answer was bought %d times", requests, n, requests-n+1)
			}
			b.checkUsage(t, n, 0)
		})
	}
}
