package pipeline_test

import (
	"context"
	"errors"
	"testing"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// A withdrawal's claim left in the dead-letter stream (its removal failed) is not a dead
// letter to replay or to count as dropped: replaying it by its sequence is refused as a letter
// that is gone — it would queue again a paper that is done —, and `dlq drop` says it dropped
// the letters only.
func TestAClaimLeftInTheDeadLetterStreamIsNeitherReplayedNorCountedAsDropped(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.Publish(ctx, pipeline.SubjectDead+"."+pipeline.ConsumerNew, []byte(`{"id":"2401.00001"}`)); err != nil {
		t.Fatal(err)
	}
	claim, err := js.Publish(ctx, pipeline.SubjectDead+"."+pipeline.ConsumerNew+".withdrawn", []byte(`{"id":"2401.00002"}`))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := pipeline.ReplayDeadLetter(ctx, js, claim.Sequence); !errors.Is(err, pipeline.ErrDeadLetterGone) {
		t.Errorf("replay of a claim: %v, want ErrDeadLetterGone", err)
	}
	if n, err := pipeline.DropAllDeadLetters(ctx, js); err != nil || n != 1 {
		t.Errorf("DropAllDeadLetters = %d, %v; want the one letter", n, err)
	}
}
