package batch_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// editOutput passes requests to the fake API, and the body of a batch output file (the one
// whose lines answered 200) through edit, line by line.
func editOutput(b *bundle, edit func(lines [][]byte) [][]byte) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/content") {
			return false
		}
		rec := httptest.NewRecorder()
		b.fake.Handler().ServeHTTP(rec, r)
		body := rec.Body.Bytes()
		if rec.Code == http.StatusOK && bytes.Contains(body, []byte(`"status_code":200`)) {
			lines := bytes.Split(bytes.TrimSpace(body), []byte("\n"))
			body = append(bytes.Join(edit(lines), []byte("\n")), '\n')
		}
		w.WriteHeader(rec.Code)
		w.Write(body)
		return true
	}
}

// editFirstBody edits the response body of an output's first line with edit.
func editFirstBody(t *testing.T, edit func(body map[string]any)) func(lines [][]byte) [][]byte {
	return func(lines [][]byte) [][]byte {
		var l map[string]any
		if err := json.Unmarshal(lines[0], &l); err != nil {
			t.Fatal(err)
		}
		edit(l["response"].(map[string]any)["body"].(map[string]any))
		lines[0], _ = json.Marshal(l)
		return lines
	}
}

// zeroFirstVector makes the vector of an embedding output's first line all zeros.
func zeroFirstVector(t *testing.T) func(lines [][]byte) [][]byte {
	return editFirstBody(t, func(body map[string]any) {
		vec := body["data"].([]any)[0].(map[string]any)["embedding"].([]any)
		for i := range vec {
			vec[i] = 0.0
		}
	})
}

// checkClosed fails unless every batch job is closed done.
func (b *bundle) checkClosed(t *testing.T) {
	t.Helper()
	jobs, err := b.st.BatchJobs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Status != store.BatchDone {
			t.Errorf("job %d is %s, want done", j.ID, j.Status)
		}
	}
}

// A vector the store refuses (the zero vector, which passes the Runner's checks of dimensions
// and NaN/Inf; likewise a value beyond ±65504 in a halfvec space) is rejected like the worker
// rejects its paper: the other answers of its chunk are stored and the job is closed. It
// failed the chunk and the job's collection at every run, its papers excluded from all work.
func TestVectorTheStoreRefusesIsRejectedAndTheOthersStored(t *testing.T) {
	t.Parallel()
	const n = 5
	b := setup(t, n)
	url := proxy(t, b.fake, editOutput(b, zeroFirstVector(t)))
	rep, err := b.runner(t, func(c *batch.Config) { c.Chat = nil; c.BaseURL = url }).Run(context.Background(), store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if _, v := b.counts(t); v != n-1 || rep.Vectors != n-1 || rep.Rejected != 1 || rep.Done != 1 {
		t.Errorf("%d vectors stored, report %+v; want %d stored, 1 rejected, the job done", v, rep, n-1)
	}
	b.checkClosed(t)
}

// A line of an output file that is not JSON is counted rejected and the others are used; it
// failed the job's collection at every run.
func TestMalformedOutputLineIsRejectedAndTheOthersStored(t *testing.T) {
	t.Parallel()
	const n = 5
	b := setup(t, n)
	url := proxy(t, b.fake, editOutput(b, func(lines [][]byte) [][]byte {
		return append([][]byte{[]byte(`{"id":"batch_req_x","custom_id":"arxiv:2401.00000@`)}, lines...)
	}))
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(context.Background(), store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if tl, _ := b.counts(t); tl != n || rep.TLDRs != n || rep.Rejected != 1 || rep.Done != 1 {
		t.Errorf("%d TL;DRs stored, report %+v; want %d stored, 1 rejected, the job done", tl, rep, n)
	}
	b.checkClosed(t)
}

// A TL;DR the Batch API stopped at a token limit (finish_reason "length", or Mistral's
// "model_length"), one its content filter withheld the end of ("content_filter") or one whose
// generation broke off (Mistral's "error") is the start of a sentence, which passes every check
// of a TL;DR: it is rejected, not stored as valid, and the other answers of the job are stored.
// (Only "length" was read: the others' fragments were stored as valid TL;DRs.)
func TestCutOffTLDRIsRejectedAndTheOthersStored(t *testing.T) {
	t.Parallel()
	for _, finish := range []string{"length", "model_length", "content_filter", "error"} {
		t.Run(finish, func(t *testing.T) {
			t.Parallel()
			const n = 5
			b := setup(t, n)
			url := proxy(t, b.fake, editOutput(b, editFirstBody(t, func(body map[string]any) {
				choice := body["choices"].([]any)[0].(map[string]any)
				choice["finish_reason"] = finish
				choice["message"].(map[string]any)["content"] = "A method that halves the training cost of large models while keeping"
			})))
			rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(context.Background(), store.Selection{})
			if err != nil {
				t.Fatal(err)
			}
			if tl, _ := b.counts(t); tl != n-1 || rep.TLDRs != n-1 || rep.Rejected != 1 || rep.Done != 1 {
				t.Errorf("%d TL;DRs stored, report %+v; want %d stored, 1 rejected, the job done", tl, rep, n-1)
			}
			// Only the content filter's is the API's refusal, recorded withheld; a token limit or
			// a broken-off generation is asked for again by the next run.
			if want := map[bool]int{true: 1, false: 0}[finish == "content_filter"]; rep.Withheld != want {
				t.Errorf("%s: report %+v; want %d withheld", finish, rep, want)
			}
			b.checkClosed(t)
		})
	}
}

// An answer repeated in an output file is used once: stored, reported and billed once.
func TestRepeatedOutputLineIsUsedOnce(t *testing.T) {
	t.Parallel()
	const n = 3
	b := setup(t, n)
	url := proxy(t, b.fake, editOutput(b, func(lines [][]byte) [][]byte { return append(lines, lines[0]) }))
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(context.Background(), store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.TLDRs != n || rep.Rejected != 0 {
		t.Errorf("report %+v, want %d TL;DRs and none rejected", rep, n)
	}
	b.checkUsage(t, n, 0)
}

// A job whose results cannot be downloaded (here its output file is gone: OpenAI's files
// expire) fails, with an error naming it, without stopping the collection of the other jobs
// of the run; it stays open (its batch may have run and been paid).
func TestJobThatCannotBeCollectedDoesNotStopTheOthers(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 3
	b := setup(t, n)
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodGet || !strings.HasSuffix(r.URL.Path, "/content") {
			return false
		}
		rec := httptest.NewRecorder()
		b.fake.Handler().ServeHTTP(rec, r)
		if bytes.Contains(rec.Body.Bytes(), []byte(`"chat.completion"`)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusNotFound)
			w.Write([]byte(`{"error":{"message":"No such File object","type":"invalid_request_error","param":"id","code":null}}`))
			return true
		}
		w.WriteHeader(rec.Code)
		w.Write(rec.Body.Bytes())
		return true
	})
	rep, runErr := b.runner(t, func(c *batch.Config) { c.BaseURL = url }).Run(ctx, store.Selection{})
	if tl, v := b.counts(t); tl != 0 || v != n || rep.Done != 1 {
		t.Errorf("%d TL;DRs and %d vectors stored, report %+v; want the embedding job collected (%d vectors, done)", tl, v, rep, n)
	}
	var je *batch.JobError
	if !errors.As(runErr, &je) {
		t.Fatalf("Run: %v, want a *batch.JobError", runErr)
	}
	jobs, err := b.st.BatchJobs(ctx, store.BatchTarget("chat", chatModel, summarize.PromptVersion, 0))
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].ID != je.Job || !strings.Contains(runErr.Error(), fmt.Sprintf("batch job %d:", je.Job)) {
		t.Errorf("open chat jobs %+v, error %q; want the failed job open and named", jobs, runErr)
	}
}

// lockingStore opens a store on b's database whose writes wait only briefly for a locked row,
// and locks paper id's row from another session as an uncommitted UPDATE does (saves wait for
// it; the foreign keys of the job's items do not); release rolls the lock back.
func (b *bundle) lockingStore(t *testing.T, id string) (st *store.Store, release func()) {
	t.Helper()
	ctx := context.Background()
	st, err := store.Open(ctx, store.Config{URL: b.st.Pool().Config().ConnString(), RowLockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	tx, err := b.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var once sync.Once
	release = func() { once.Do(func() { _ = tx.Rollback(ctx) }) }
	t.Cleanup(release)
	if _, err := tx.Exec(ctx, "SELECT FROM papers WHERE id = $1 FOR NO KEY UPDATE", id); err != nil {
		t.Fatal(err)
	}
	return st, release
}

// A paper row another session holds locked while a job's results are collected is waited for
// (the store's saves give up after their RowLockTimeout; the collection tries again), and the
// results are stored once it is gone. Waited too long, the job fails in this run, still
// collectable, and the next run stores its results: nothing paid for is lost.
func TestCollectionWaitsForALockedPaperRow(t *testing.T) {
	ctx := context.Background()
	t.Run("released", func(t *testing.T) {
		defer batch.SetLockedWait(100, 50*time.Millisecond)()
		b := setup(t, 3)
		st, release := b.lockingStore(t, b.ids[1])
		time.AfterFunc(time.Second, release)
		rep, err := b.runner(t, func(c *batch.Config) { c.Store = st }).Run(ctx, store.Selection{})
		if err != nil {
			t.Fatalf("run with a paper row locked for a second: %v", err)
		}
		if tl, v := b.counts(t); tl != 3 || v != 3 || rep.Done != 2 {
			t.Errorf("stored %d TL;DRs and %d vectors, %d jobs done; want 3, 3 and 2", tl, v, rep.Done)
		}
	})
	t.Run("held", func(t *testing.T) {
		defer batch.SetLockedWait(2, 10*time.Millisecond)()
		b := setup(t, 3)
		st, release := b.lockingStore(t, b.ids[1])
		_, err := b.runner(t, func(c *batch.Config) { c.Store = st }).Run(ctx, store.Selection{})
		var je *batch.JobError
		if !errors.As(err, &je) || !errors.Is(err, paper.ErrLocked) || !strings.Contains(err.Error(), "run the same command again") {
			t.Fatalf("run with a paper row locked throughout: %v; want a job's error, paper.ErrLocked, saying to run again", err)
		}
		release()
		rep, err := b.runner(t, nil).Run(ctx, store.Selection{})
		if err != nil {
			t.Fatal(err)
		}
		if tl, v := b.counts(t); tl != 3 || v != 3 || rep.Submitted != 0 {
			t.Errorf("next run: stored %d TL;DRs and %d vectors, %d batches submitted; want 3, 3 and none (the open jobs collected)", tl, v, rep.Submitted)
		}
		if s := b.fake.Stats(); s.ChatDelivered != 3 || s.EmbedInputsDelivered != 3 {
			t.Errorf("API delivered %d chat completions and %d vectors, want 3 and 3: paid once", s.ChatDelivered, s.EmbedInputsDelivered)
		}
	})
}

// A model that declined an abstract answers with message.refusal and no content: the Batch
// API's answer is rejected with the refusal's text, not as an "empty" TL;DR, and the other
// answers of the job are stored.
func TestRefusedTLDRIsRejectedSayingTheRefusal(t *testing.T) {
	t.Parallel()
	const n = 5
	b := setup(t, n)
	url := proxy(t, b.fake, editOutput(b, editFirstBody(t, func(body map[string]any) {
		msg := body["choices"].([]any)[0].(map[string]any)["message"].(map[string]any)
		msg["content"] = nil
		msg["refusal"] = "I'm sorry, I can't help with that request."
	})))
	var mu sync.Mutex
	var logs bytes.Buffer
	rep, err := b.runner(t, func(c *batch.Config) {
		c.Embed = nil
		c.BaseURL = url
		c.Logger = slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
			mu.Lock()
			defer mu.Unlock()
			return logs.Write(p)
		}), nil))
	}).Run(context.Background(), store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if tl, _ := b.counts(t); tl != n-1 || rep.TLDRs != n-1 || rep.Rejected != 1 || rep.Done != 1 {
		t.Errorf("%d TL;DRs stored, report %+v; want %d stored, 1 rejected, the job done", tl, rep, n-1)
	}
	mu.Lock()
	out := logs.String()
	mu.Unlock()
	if !strings.Contains(out, "the model refused") || !strings.Contains(out, "I'm sorry, I can't help with that request.") {
		t.Errorf("the rejection should give the refusal; logged:\n%s", out)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Every answer of a batch's output file is billed, whether its result is used or not: one for a
// paper deleted while the batch ran (its result has nowhere to go) and one without a TL;DR or
// a vector are in the usage ledger too, with their tokens, as the synchronous clients count
// such answers. They were left out, and the ledger showed fewer requests and tokens than
// OpenAI billed.
func TestAnswersNotUsedAreInTheUsageLedger(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		kind, list string // the usage kind; the answer's list of results, emptied in one line
	}{
		{batch.KindChatBatch, "choices"},
		{batch.KindEmbeddingBatch, "data"},
	} {
		t.Run(tc.kind, func(t *testing.T) {
			t.Parallel()
			const n = 5
			b := setup(t, n)
			ctx := context.Background()
			var served int64 // prompt tokens of the answers in the output file
			url := proxy(t, b.fake, editOutput(b, func(lines [][]byte) [][]byte {
				// The first line's paper is deleted while its batch ran; the second line's
				// answer comes without a result.
				if _, err := b.st.Pool().Exec(ctx, `DELETE FROM papers WHERE id = $1`, b.ids[0]); err != nil {
					t.Error(err)
				}
				for i, line := range lines {
					var l struct {
						CustomID string `json:"custom_id"`
						Response struct {
							Body map[string]any `json:"body"`
						} `json:"response"`
					}
					if err := json.Unmarshal(line, &l); err != nil {
						t.Fatal(err)
					}
					served += int64(l.Response.Body["usage"].(map[string]any)["prompt_tokens"].(float64))
					if strings.HasPrefix(l.CustomID, b.ids[1]+"@") {
						lines[i] = bytes.Replace(line, []byte(`"`+tc.list+`":[`), []byte(`"`+tc.list+`":[],"unused":[`), 1)
					}
				}
				return lines
			}))
			rep, err := b.runner(t, func(c *batch.Config) {
				if tc.kind == batch.KindChatBatch {
					c.Embed = nil
				} else {
					c.Chat = nil
				}
				c.BaseURL = url
			}).Run(ctx, store.Selection{})
			if err != nil {
				t.Fatal(err)
			}
			if rep.TLDRs+rep.Vectors != n-2 || rep.Rejected != 1 || rep.Removed != 1 {
				t.Errorf("report %+v, want %d results stored, 1 answer rejected and 1 of a paper removed", rep, n-2)
			}
			usage, err := b.st.Usage(ctx, time.Now().Add(-24*time.Hour))
			if err != nil {
				t.Fatal(err)
			}
			if len(usage) != 1 || usage[0].Kind != tc.kind || usage[0].Requests != n || int64(usage[0].InputTokens) != served {
				t.Errorf("usage %+v, want the %d answers of the output file billed, %d prompt tokens, under %s", usage, n, served, tc.kind)
			}
		})
	}
}
