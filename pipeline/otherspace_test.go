package pipeline_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestAnUnansweredQuestionAboutAnotherSpaceEndsWithTheIntake: a message queued for another
// embedding space is asked about (WorkerConfig.OtherSpace, which reads the active space in the
// database) before its paper is recorded. A database gone silent answers nothing, for as long
// as TCP takes to give up (~15 minutes), and the question held the micro-batch, its messages
// marked in progress, for as long; it is bounded by the IntakeTimeout now, as the recording
// is, and a question unanswered counts as "not for another space's workers".
func TestAnUnansweredQuestionAboutAnotherSpaceEndsWithTheIntake(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{})
	papers := sampledata.Papers(t)[:2]
	p := pipeline.NewPublisher(b.js, pipeline.SubjectNew, 8)
	p.ForSpace(b.space.ID + 1000) // a copy queued for another space
	for _, a := range papers {
		if err := p.Publish(ctx, a); err != nil {
			t.Fatal(err)
		}
	}
	if err := p.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	silent := func(ctx context.Context, _ int64) bool {
		<-ctx.Done() // the database's answer never comes
		return false
	}
	sum := summarize.NewOffline(30)
	startWorkerOn(t, b, b.store, sum, emb, pipeline.WorkerConfig{OtherSpace: silent, IntakeTimeout: 2 * time.Second,
		DrainTimeout: time.Second})
	waitFor(t, "the papers' TL;DRs and vectors", func() (bool, string) {
		c := counts(t, b, sum)
		return c.WithTLDR == int64(len(papers)) && c.WithEmbedding == int64(len(papers)), fmt.Sprintf("%+v", c)
	})
}
