package batch_test

import (
	"context"
	"errors"
	"path/filepath"
	"strings"
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
