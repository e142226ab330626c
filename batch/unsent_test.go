package batch_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestJobWhoseInputFileCannotBeWrittenIsNotReportedSubmitted: a run whose input files cannot be
// written (a read-only /tmp in a container) fails each job before anything is uploaded. Its
// report said "1 batch submitted (6026 requests)", as if a batch ran, and billed, at OpenAI.
// It counts them as not submitted now; the jobs stay open with their papers (out of other
// work), no batch exists, and a run that can write its files submits them and stores every
// result.
func TestJobWhoseInputFileCannotBeWrittenIsNotReportedSubmitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 6)
	missing := filepath.Join(t.TempDir(), "gone") // CreateTemp fails there, as in a read-only /tmp
	rep, err := b.runner(t, func(c *batch.Config) { c.TempDir = missing }).Run(ctx, store.Selection{})
	var je *batch.JobError
	if !errors.As(err, &je) || !strings.Contains(err.Error(), "input file") {
		t.Fatalf("Run = %v; want the jobs' failure at their input file", err)
	}
	if rep.Submitted != 0 || rep.Requests != 0 || rep.Unsubmitted != 2 {
		t.Errorf("report %+v: want no batch submitted, no request, and 2 jobs not submitted", rep)
	}
	if s := b.fake.Stats(); s.ChatDelivered != 0 || s.EmbedInputsDelivered != 0 {
		t.Errorf("the API delivered %d chat completions and %d vectors, want none", s.ChatDelivered, s.EmbedInputsDelivered)
	}
	jobs, err := b.st.BatchJobs(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	for _, j := range jobs {
		if j.Status != store.BatchPreparing || j.OpenAIID != "" || j.InputFileID != "" || j.Total != 6 {
			t.Errorf("job %+v: want it preparing with its 6 papers, nothing uploaded", j)
		}
	}
	var stale int
	err = b.st.StalePapers(ctx, store.Selection{Work: paper.Work{Model: chatModel, PromptVersion: summarize.PromptVersion, SpaceID: b.space.ID}},
		100, func(p []store.StalePaper) error { stale += len(p); return nil })
	if err != nil || stale != 0 {
		t.Errorf("%d papers stale (%v) while their jobs are open, want 0", stale, err)
	}

	// The next run, whose files can be written, submits the jobs and collects them.
	rep, err = b.runner(t, nil).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != 2 || rep.Done != 2 || rep.Unsubmitted != 0 {
		t.Errorf("rerun %+v, want the 2 jobs resumed and done", rep)
	}
	if tl, v := b.counts(t); tl != 6 || v != 6 {
		t.Errorf("stored %d TL;DRs and %d vectors, want 6 and 6", tl, v)
	}
}

// unrecordedCreate is the store, except that it fails the first record of a created batch
// (UpdateBatchJob of a job submitted) as a database restart would.
type unrecordedCreate struct {
	*store.Store
	failed atomic.Bool
}

func (s *unrecordedCreate) UpdateBatchJob(ctx context.Context, j store.BatchJob) error {
	if j.Status == store.BatchSubmitted && s.failed.CompareAndSwap(false, true) {
		return fmt.Errorf("update batch job %d: connection reset: %w", j.ID, paper.ErrUnavailable)
	}
	return s.Store.UpdateBatchJob(ctx, j)
}

// TestJobWhoseCreatedBatchCouldNotBeRecordedIsReportedSubmitted: a job whose batch OpenAI
// created, and whose record of it the database failed (a restart in that round trip), has a
// batch running, and billed, at OpenAI. Submit reported it "not submitted (no batch created)",
// as a job whose input file could not be written; it counts it submitted now, and its error
// says that the batch exists. The next run finds the batch by its tag and collects it: one
// batch in all.
func TestJobWhoseCreatedBatchCouldNotBeRecordedIsReportedSubmitted(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	st := &unrecordedCreate{Store: b.st}
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.Store = st }).Submit(ctx, store.Selection{})
	var je *batch.JobError
	if !errors.As(err, &je) || !errors.Is(err, paper.ErrUnavailable) {
		t.Fatalf("Submit = %v; want the job's failure to record its batch", err)
	}
	if rep.Submitted != 1 || rep.Requests != 3 || rep.Unsubmitted != 0 {
		t.Errorf("report %+v: want 1 batch submitted with 3 requests, none reported not submitted", rep)
	}
	if !strings.Contains(err.Error(), "created at OpenAI") {
		t.Errorf("error %q does not say that the batch was created at OpenAI", err)
	}
	rep, err = b.runner(t, func(c *batch.Config) { c.Embed = nil }).Run(ctx, store.Selection{})
	if err != nil || rep.Done != 1 {
		t.Fatalf("rerun = %+v, %v; want the job collected", rep, err)
	}
	if n := b.fake.Stats().ChatDelivered; n != 3 {
		t.Errorf("%d TL;DRs delivered (billed), want 3: one batch", n)
	}
	if tl, _ := b.counts(t); tl != 3 {
		t.Errorf("stored %d TL;DRs, want 3", tl)
	}
}

// TestRunCollectsTheBatchItCouldNotRecord: a run (Submit, then Wait) whose record of a batch
// it created failed for the database's unavailability (a restart in that round trip) collects
// that batch itself once the database answers, as Wait promises for an outage (it fails
// neither the wait nor a job). It failed the job instead: the run ended with an error while
// the batch ran, billed, its results stored only by a run started by hand later.
func TestRunCollectsTheBatchItCouldNotRecord(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 3)
	st := &unrecordedCreate{Store: b.st}
	rep, err := b.runner(t, func(c *batch.Config) { c.Embed = nil; c.Store = st }).Run(ctx, store.Selection{})
	if err != nil || rep.Done != 1 || rep.Submitted != 1 {
		t.Fatalf("Run = %+v, %v; want its one batch submitted and collected in the same run", rep, err)
	}
	if n := b.fake.Stats().ChatDelivered; n != 3 {
		t.Errorf("%d TL;DRs delivered (billed), want 3: one batch", n)
	}
	if tl, _ := b.counts(t); tl != 3 {
		t.Errorf("stored %d TL;DRs, want 3", tl)
	}
}
