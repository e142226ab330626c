package batch_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/store"
)

// lostCreate passes requests to the fake API, but loses the answer of the first POST
// /v1/batches after the fake created the batch (the one round trip a crash or a dropped
// connection can cost money in), and answers the first listFails calls of GET /v1/batches
// with listStatus. It counts the batches created and the list calls.
type lostCreate struct {
	creates, lists, listFails atomic.Int32
	listStatus                int
	lost                      atomic.Bool
}

func (l *lostCreate) hook(b *bundle) func(w http.ResponseWriter, r *http.Request) bool {
	return func(w http.ResponseWriter, r *http.Request) bool {
		if r.URL.Path != "/v1/batches" {
			return false
		}
		switch r.Method {
		case http.MethodPost:
			l.creates.Add(1)
			if l.lost.CompareAndSwap(false, true) {
				b.fake.Handler().ServeHTTP(httptest.NewRecorder(), r)
				http.Error(w, `{"error":{"message":"bad gateway","type":"server_error"}}`, http.StatusBadGateway)
				return true
			}
		case http.MethodGet:
			l.lists.Add(1)
			if l.listFails.Add(-1) >= 0 {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(l.listStatus)
				w.Write([]byte(`{"error":{"message":"listing failed","type":"server_error"}}`))
				return true
			}
		}
		return false
	}
}

// runTwice runs a TL;DR Runner through l twice: the first run loses its create answer; the
// second resumes the job. It returns the second run's report and error.
func (l *lostCreate) runTwice(t *testing.T, b *bundle) (batch.Report, error) {
	t.Helper()
	ctx := context.Background()
	url := proxy(t, b.fake, l.hook(b))
	if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{}); err == nil {
		t.Fatal("first run: no error, want the lost create answer's")
	}
	return b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
}

// The resumed run finds the batch whose create answer was lost in OpenAI's list (retrying a
// list call that failed transiently) and collects it: one batch, paid once.
func TestLostCreateAnswerIsFoundInTheListAndPaidOnce(t *testing.T) {
	t.Parallel()
	for _, fails := range []int32{0, 2} {
		b := setup(t, 4)
		l := &lostCreate{listStatus: http.StatusServiceUnavailable}
		l.listFails.Store(fails)
		rep, err := l.runTwice(t, b)
		if err != nil {
			t.Fatalf("%d failed list calls: second run: %v", fails, err)
		}
		if got := l.creates.Load(); got != 1 {
			t.Errorf("%d failed list calls: %d batches created for one job, want 1", fails, got)
		}
		if s := b.fake.Stats(); s.ChatDelivered != 4 {
			t.Errorf("%d failed list calls: API delivered (billed) %d chat completions for 4 papers, want 4", fails, s.ChatDelivered)
		}
		if tl, _ := b.counts(t); tl != 4 || rep.Done != 1 {
			t.Errorf("%d failed list calls: %d TL;DRs stored, report %+v; want 4 and the job done", fails, tl, rep)
		}
	}
}

// A list of batches that cannot be read (here an API that does not serve it) is no proof
// that the job's batch does not exist: the resumed run creates no second batch, says why,
// and leaves the job open for a later run.
func TestUnreadableBatchListCreatesNoSecondBatch(t *testing.T) {
	t.Parallel()
	b := setup(t, 4)
	l := &lostCreate{listStatus: http.StatusNotFound}
	l.listFails.Store(1 << 20)
	_, err := l.runTwice(t, b)
	if err == nil || !strings.Contains(err.Error(), "may exist") {
		t.Errorf("second run: %v, want an error saying the job's batch may exist", err)
	}
	if got := l.creates.Load(); got != 1 {
		t.Errorf("%d batches created for one job, want 1", got)
	}
	jobs, err := b.st.BatchJobs(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if len(jobs) != 1 || jobs[0].Status != store.BatchPreparing {
		t.Errorf("jobs %+v, want the one job still preparing", jobs)
	}
}

// The job's batch is found when more batches than one page of the list (100) were created
// after it, by other work of the organization: the Runner pages back with after.
func TestLostCreateAnswerIsFoundPagesBackInTheList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 2)
	l := &lostCreate{}
	url := proxy(t, b.fake, l.hook(b))
	if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{}); err == nil {
		t.Fatal("first run: no error, want the lost create answer's")
	}
	api := openai.NewClientWithConfig(func() openai.ClientConfig {
		c := openai.DefaultConfig("sk-test")
		c.BaseURL = b.fake.URL()
		return c
	}())
	f, err := api.CreateFileBytes(ctx, openai.FileBytesRequest{Name: "other.jsonl", Bytes: []byte(`{"custom_id":"other"}` + "\n"), Purpose: openai.PurposeBatch})
	if err != nil {
		t.Fatal(err)
	}
	for range 130 {
		if _, err := api.CreateBatch(ctx, openai.CreateBatchRequest{InputFileID: f.ID, Endpoint: openai.BatchEndpointEmbeddings, CompletionWindow: "24h"}); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if got := l.creates.Load(); got != 1 || rep.Done != 1 || l.lists.Load() < 2 {
		t.Errorf("%d batches created by the Runner, %d list calls, report %+v; want 1 batch, found on the list's second page, and the job done", got, l.lists.Load(), rep)
	}
}

// An API whose list of batches does not page back (it ignores "after", or never ends) was
// read for ever while it said has_more, the job's resume stuck. The Runner stops, creates no
// second batch (the job's may exist), says why, and leaves the job open for a later run.
func TestBatchListThatDoesNotPageBackIsAnError(t *testing.T) {
	t.Parallel()
	for _, endless := range []bool{false, true} {
		b := setup(t, 2)
		l := &lostCreate{}
		hook := l.hook(b)
		var n atomic.Int32
		url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
			if r.Method != http.MethodGet || r.URL.Path != "/v1/batches" {
				return hook(w, r)
			}
			l.lists.Add(1)
			id := "batch_other" // the first page again, whatever "after" says
			if endless {
				id = fmt.Sprintf("batch_other%06d", n.Add(1))
			}
			w.Header().Set("Content-Type", "application/json")
			fmt.Fprintf(w, `{"object":"list","data":[{"id":%q,"object":"batch","endpoint":"/v1/embeddings","status":"in_progress",`+
				`"input_file_id":"file-other","completion_window":"24h","created_at":%d,"metadata":{}}],"has_more":true}`, id, time.Now().Unix())
			return true
		})
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{}); err == nil {
			t.Fatal("first run: no error, want the lost create answer's")
		}
		_, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
		if ctx.Err() != nil || err == nil || !strings.Contains(err.Error(), "may exist") {
			t.Fatalf("endless %v: second run: %v after %d list calls; want an error saying the job's batch may exist", endless, err, l.lists.Load())
		}
		if got, lists := l.creates.Load(), l.lists.Load(); got != 1 || (!endless && lists != 2) || (endless && lists != batch.MaxListPages) {
			t.Errorf("endless %v: %d batches created, %d list calls; want 1 batch, and the list read to the repeated page or the bound", endless, got, lists)
		}
	}
}

// A job whose input file was never uploaded (its first run's upload failed, or the run was
// stopped during it) cannot have a batch: one is created only after the file id is recorded.
// Its resume uploaded the file and then still looked the batch up in the list; an API whose
// list cannot be read (as in TestUnreadableBatchListCreatesNoSecondBatch) failed the job at
// every run, saying its batch may exist, and a new input file was uploaded each time.
func TestJobUploadedByItsResumeIsNotLookedUpInTheList(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	var uploadFails atomic.Bool
	uploadFails.Store(true)
	var uploads, lists atomic.Int32
	l := &lostCreate{listStatus: http.StatusNotFound}
	l.lost.Store(true) // no create answer is lost
	l.listFails.Store(1 << 20)
	hook := l.hook(b)
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method == http.MethodPost && r.URL.Path == "/v1/files" {
			uploads.Add(1)
			if uploadFails.Load() {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				w.Write([]byte(`{"error":{"message":"upload refused","type":"invalid_request_error"}}`))
				return true
			}
		}
		if r.Method == http.MethodGet && r.URL.Path == "/v1/batches" {
			lists.Add(1)
		}
		return hook(w, r)
	})
	run := func() (batch.Report, error) {
		return b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url }).Run(ctx, store.Selection{})
	}
	if _, err := run(); err == nil {
		t.Fatal("first run: no error, want the upload's")
	}
	uploadFails.Store(false)
	rep, err := run()
	if err != nil || rep.Resumed != 1 || rep.Done != 1 {
		t.Errorf("second run: %v, report %+v; want the job resumed and done", err, rep)
	}
	if got := l.creates.Load(); got != 1 || uploads.Load() != 2 || lists.Load() != 0 {
		t.Errorf("%d batches created, %d uploads, %d list calls; want 1 batch, the second upload, no list call", got, uploads.Load(), lists.Load())
	}
	b.checkClosed(t)
}
