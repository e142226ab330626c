package pipeline_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// onceFailingSummarizer fails the first TL;DR of transient with a transient error, every TL;DR
// of permanent with a permanent one, and summarizes the rest offline.
type onceFailingSummarizer struct {
	pipeline.Summarizer
	transient, permanent string
	mu                   sync.Mutex
	failed               bool
}

func (s *onceFailingSummarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	switch a.ID {
	case s.permanent:
		return paper.Summary{}, fmt.Errorf("answer stays invalid: %w", paper.ErrPermanent)
	case s.transient:
		s.mu.Lock()
		first := !s.failed
		s.failed = true
		s.mu.Unlock()
		if first {
			return paper.Summary{}, errors.New("status code: 502, Bad gateway")
		}
	}
	return s.Summarizer.Summarize(ctx, a)
}

// An operator follows a paper through the logs by one key: the worker's lines name it under
// `paper`, as the summarizer's, the embedder's and the batch runs' do, and errors go under
// `err`. The worker named it under `id`, so a search for paper=X missed its retries and its
// dead letter.
func TestWorkerLogLinesNameThePaperUnderPaper(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:3]
	sum := &onceFailingSummarizer{Summarizer: summarize.NewOffline(30), transient: papers[0].ID, permanent: papers[1].ID}
	b := setup(t, embed.NewOffline(), pipeline.TopologyConfig{MaxDeliver: 5})
	publish(t, b.js, papers)
	var logs logBuffer
	ws := runWith(t, b, b.store, sum, embed.NewOffline(), pipeline.WorkerConfig{
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(&logs, nil))})
	if ws.Dead != 1 || ws.Retried != 1 {
		t.Fatalf("stats %+v: want one paper retried, one dead-lettered", ws)
	}
	out := logs.String()
	for _, want := range []string{
		`msg="will retry" paper=` + papers[0].ID + " ",
		`msg=dead-lettered paper=` + papers[1].ID + " ",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("no line with %q in the worker's log:\n%s", want, out)
		}
	}
	if strings.Contains(out, " id=") || strings.Contains(out, " error=") {
		t.Errorf("a line names a paper under id= or an error under error=:\n%s", out)
	}
}
