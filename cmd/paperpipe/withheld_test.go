package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// filterAnswerOf answers the env's batch output files with the content filter withholding
// paper id's TL;DR (finish_reason content_filter, no content) while on is set.
func (e *archiveEnv) filterAnswerOf(t *testing.T, id string, on *atomic.Bool) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if !on.Load() || r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/content") {
			return false
		}
		rec := httptest.NewRecorder()
		e.fake.Handler().ServeHTTP(rec, r)
		lines := bytes.Split(bytes.TrimSpace(rec.Body.Bytes()), []byte("\n"))
		for i, l := range lines {
			var v map[string]any
			if json.Unmarshal(l, &v) != nil || !strings.HasPrefix(v["custom_id"].(string), id+"@") {
				continue
			}
			body, ok := v["response"].(map[string]any)["body"].(map[string]any)
			if !ok || body["choices"] == nil {
				continue
			}
			choice := body["choices"].([]any)[0].(map[string]any)
			choice["finish_reason"] = "content_filter"
			choice["message"].(map[string]any)["content"] = ""
			if lines[i], _ = json.Marshal(v); lines[i] == nil {
				t.Error("re-encode an output line")
			}
		}
		w.WriteHeader(rec.Code)
		w.Write(append(bytes.Join(lines, []byte("\n")), '\n'))
		return true
	}
}

// A TL;DR the API's content filter withheld in a `reprocess --batch-api` run is recorded, and
// the next run does not buy it again (each run did, for ever); `batches withheld` lists it,
// and once `batches withheld clear ID` clears it the next run asks again.
func TestBatchRunDoesNotBuyAWithheldTLDRAgainUntilCleared(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	const id = "arxiv:2401.00000"
	var filter atomic.Bool
	filter.Store(true)
	c := e.fakeBehind(t, e.filterAnswerOf(t, id, &filter), nil)
	opts := reprocessOptions{batchAPI: true, tldrOnly: true, wait: true, poll: 5 * time.Millisecond}
	var errw bytes.Buffer
	res, err := runReprocess(ctx, c, opts, &bytes.Buffer{}, &errw)
	if err == nil || !strings.Contains(err.Error(), "`paperpipe batches withheld` lists them") || res.Batch == nil || res.Batch.Withheld != 1 {
		t.Fatalf("first run: %v, report %+v; want 1 answer rejected and withheld, saying so\n%s", err, res.Batch, errw.String())
	}
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 2 {
		t.Fatalf("%d TL;DRs after the first run, want 2", n)
	}
	res, _ = e.reprocess(t, ctx, c, opts)
	if res.Batch != nil && res.Batch.Requests != 0 {
		t.Errorf("the second run sent %d requests, want none: the withheld TL;DR was bought again", res.Batch.Requests)
	}
	var list bytes.Buffer
	if err := listWithheld(ctx, e.st, false, time.Now(), &list); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(list.String(), id) || !strings.Contains(list.String(), "content_filter") {
		t.Errorf("`batches withheld` said:\n%s\nwant %s with the content filter", list.String(), id)
	}
	if err := batchesWithheld(ctx, c, []string{"clear", id}, false); err != nil {
		t.Fatal(err)
	}
	filter.Store(false)
	res, _ = e.reprocess(t, ctx, c, opts)
	if n := e.count(t, `SELECT count(*) FROM tldrs`); n != 3 || res.Batch == nil || res.Batch.Requests != 1 {
		t.Errorf("after clearing: %d TL;DRs, report %+v; want the paper asked again and 3 TL;DRs", n, res.Batch)
	}
}
