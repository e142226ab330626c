package pipeline

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// TestSaveWithRetryMarksADatabaseThatStaysSilent: a database gone silent after a paper's
// intake (a failover, a dropped flow) makes every save attempt run out of its time, an error
// the store cannot mark (the attempt's context ended). Unmarked, the paid results were lost and
// the failure counted against the message: a delivery used, the paper dead-lettered on its
// last. The last attempt running out of time, with the database not answering a ping either,
// now marks the error paper.ErrUnavailable (the worker pauses and hands the message back); a
// database that answers was slow for these records (a locked row): theirs, not marked; nor is
// an attempt that failed otherwise.
func TestSaveWithRetryMarksADatabaseThatStaysSilent(t *testing.T) {
	t.Parallel()
	quick := retryTiming{attempts: 3, attempt: 20 * time.Millisecond, first: time.Millisecond, maxDelay: 2 * time.Millisecond}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	ctx := context.Background()

	calls := 0
	silent := func(actx context.Context) error {
		calls++
		<-actx.Done()
		return actx.Err()
	}
	down := func(context.Context) bool { return false }
	up := func(context.Context) bool { return true }
	err := quick.do(ctx, log, "TL;DRs", silent, down)
	if !errors.Is(err, paper.ErrUnavailable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("every attempt timed out: err %v, want it marked paper.ErrUnavailable", err)
	}
	if calls != 3 {
		t.Errorf("%d attempts, want 3", calls)
	}

	if err := quick.do(ctx, log, "TL;DRs", silent, up); errors.Is(err, paper.ErrUnavailable) {
		t.Errorf("timed out while the database answers (a locked row): marked unavailable: %v", err)
	}

	failing := func(context.Context) error { return errors.New("some other failure") }
	if err := quick.do(ctx, log, "TL;DRs", failing, down); errors.Is(err, paper.ErrUnavailable) {
		t.Errorf("a failure that is not a timeout was marked unavailable: %v", err)
	}

	// The caller's context ending is a shutdown, not the database: not marked.
	ended, cancel := context.WithCancel(ctx)
	cancel()
	if err := quick.do(ended, log, "TL;DRs", silent, down); errors.Is(err, paper.ErrUnavailable) {
		t.Errorf("a cancelled save was marked unavailable: %v", err)
	}
}
