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

	"github.com/nats-io/nats-server/v2/server"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestARequeueWhoseWithdrawalGoesUnansweredHoldsUpNoPulls: the messages a worker requeues once
// its pull request ends (requeueAfterPull) were requeued on the pull loop, each with its
// withdrawal of a dead letter (a claim published, up to 10 s for its answer). A withdrawal
// begun as NATS dropped, its answer lost, held every pull of the worker for those 10 s (session
// 26's takeover run). Here the worker may not publish claims, so each goes unanswered for its
// 10 s; a paper queued once the copy is stored must be processed meanwhile.
func TestARequeueWhoseWithdrawalGoesUnansweredHoldsUpNoPulls(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Users = []*server.User{
			{Username: "admin", Password: "admin"},
			{Username: "worker", Password: "worker", Permissions: &server.Permissions{Publish: &server.SubjectPermission{
				Allow: []string{">"}, Deny: []string{pipeline.SubjectDead + ".*.withdrawn"}}}},
		}
	})
	admin := connectAs(t, srv, "admin")
	if err := pipeline.Setup(ctx, admin, pipeline.TopologyConfig{MaxDeliver: 2}); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	b := setupOn(t, admin, emb)
	papers := sampledata.Papers(t)[:2]
	publish(t, admin, papers[:1])
	sum := &limitedOnLast{Summarizer: summarize.NewOffline(30), first: papers[0].ID, limited: make(chan struct{})}
	logs := &logBuffer{}
	b.js = connectAs(t, srv, "worker")
	// A pull request waits 2 s for messages: the paper's last delivery comes while one is open,
	// and its requeue waits for it to end.
	w := startWorker(t, b, sum, emb, pipeline.WorkerConfig{FetchWait: 2 * time.Second, Logger: slog.New(slog.NewTextHandler(logs, nil)),
		Backoff: func(int) time.Duration { return 100 * time.Millisecond }})
	select {
	case <-sum.limited:
	case <-time.After(time.Minute):
		t.Fatal("the first paper's last delivery never reached the API")
	}
	waitFor(t, "the copy of the first paper stored", func() (bool, string) {
		s, err := admin.Stream(ctx, pipeline.StreamPapers)
		if err != nil {
			return false, err.Error()
		}
		return s.CachedInfo().State.LastSeq >= 2, fmt.Sprintf("last sequence %d", s.CachedInfo().State.LastSeq)
	})
	publish(t, admin, papers[1:])
	waitFor(t, "the second paper processed", func() (bool, string) {
		return w.Stats().Acked >= 1, fmt.Sprintf("%+v", w.Stats())
	})
	if strings.Contains(logs.String(), "could not be withdrawn") {
		t.Errorf("the second paper waited for the requeue's withdrawal to give up:\n%s", logs)
	}
}

// limitedOnLast fails paper first's first call, then has its second (its last delivery at
// MaxDeliver 2) wait past its time for the rate limit, which hands it back: requeued.
type limitedOnLast struct {
	pipeline.Summarizer
	first   string
	limited chan struct{}
	mu      sync.Mutex
	calls   int
}

func (l *limitedOnLast) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if a.ID == l.first {
		l.mu.Lock()
		l.calls++
		n := l.calls
		l.mu.Unlock()
		switch n {
		case 1:
			return paper.Summary{}, errors.New("the server hiccuped")
		case 2:
			defer close(l.limited)
			return paper.Summary{}, fmt.Errorf("summarize: %w", llm.ErrRateLimited)
		}
	}
	return l.Summarizer.Summarize(ctx, a)
}
