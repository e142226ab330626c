package batch_test

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/store"
)

// stallContent answers a file content request with the start of a body and then nothing, until
// the client goes away or end is closed; it calls started once the start is sent.
func stallContent(w http.ResponseWriter, r *http.Request, started func(), end <-chan struct{}) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Length", "100000") // more than will ever come
	w.WriteHeader(http.StatusOK)
	_, _ = w.Write([]byte(`{"custom_id":"arxiv:2401.`))
	w.(http.Flusher).Flush()
	started()
	select {
	case <-r.Context().Done():
	case <-end:
	}
}

func isContent(r *http.Request) bool {
	return r.Method == http.MethodGet && strings.HasPrefix(r.URL.Path, "/v1/files/") && strings.HasSuffix(r.URL.Path, "/content")
}

// Cancelling a Run while a batch result's download has stalled mid-body ends the Run at once
// with the context's error; the job stays open and a later Wait collects it.
func TestCancelDuringStalledDownloadReturnsPromptly(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 3
	b := setup(t, n)
	started, end := make(chan struct{}), make(chan struct{})
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if !isContent(r) {
			return false
		}
		stallContent(w, r, sync.OnceFunc(func() { close(started) }), end)
		return true
	})
	t.Cleanup(func() { close(end) }) // before the proxy's Close, which waits for its handlers

	cctx, cancel := context.WithCancel(ctx)
	defer cancel()
	r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url })
	done := make(chan error, 1)
	go func() {
		_, err := r.Run(cctx, store.Selection{})
		done <- err
	}()
	select {
	case <-started:
	case err := <-done:
		t.Fatalf("Run returned before downloading its results: %v", err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Fatalf("Run = %v, want context.Canceled", err)
		}
	case <-time.After(30 * time.Second): // only a hang gets here
		t.Fatal("Run still running 30s after its context was cancelled during a stalled download")
	}

	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil }).Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if rep.Done != 1 || rep.TLDRs != n {
		t.Errorf("later Wait %+v, want the job collected: 1 done, %d TL;DRs", rep, n)
	}
}

// A download whose body stalls is abandoned after the stall timeout and retried.
func TestStalledDownloadIsRetried(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 3
	b := setup(t, n)
	end := make(chan struct{})
	var requests atomic.Int32
	url := proxy(t, b.fake, func(w http.ResponseWriter, r *http.Request) bool {
		if !isContent(r) || requests.Add(1) > 1 {
			return false
		}
		stallContent(w, r, func() {}, end)
		return true
	})
	t.Cleanup(func() { close(end) })

	r := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.BaseURL = url })
	batch.SetStallTimeout(r, 200*time.Millisecond)
	done := make(chan error, 1)
	var rep batch.Report
	go func() {
		var err error
		rep, err = r.Run(ctx, store.Selection{})
		done <- err
	}()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second): // only a hang gets here
		t.Fatal("Run still running 30s after a download stalled")
	}
	if rep.Done != 1 || rep.TLDRs != n {
		t.Errorf("report %+v, want 1 done, %d TL;DRs", rep, n)
	}
	if got := requests.Load(); got < 2 {
		t.Errorf("%d file content requests, want the stalled one and a retry", got)
	}
	if tl, _ := b.counts(t); tl != n {
		t.Errorf("stored %d TL;DRs, want %d", tl, n)
	}
}
