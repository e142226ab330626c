package batch_test

import (
	"context"
	"testing"

	"github.com/paperpipe/paperpipe/store"
)

// A paper removed (paperpipe remove) while a Batch API job holds it takes its place in the job
// with it, and the job's answer for it is not stored, as remove promises. The collection said
// so as a failure: it counted those answers rejected, "their papers stay stale for the next
// run", and the run exited 1, while the removal was asked for and nothing stays stale.
func TestAnswerOfAPaperRemovedWhileItsJobWasOpenIsNotRejected(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	const n = 5
	b := setup(t, n)
	rep, err := b.runner(t, nil).Submit(ctx, store.Selection{})
	if err != nil || rep.Submitted != 2 {
		t.Fatalf("Submit = %+v, %v; want 2 jobs submitted", rep, err)
	}
	tot, err := b.st.RemovePapers(ctx, []string{b.ids[0]}, false, nil)
	if err != nil || tot.Papers != 1 || tot.BatchItems != 2 {
		t.Fatalf("RemovePapers = %+v, %v; want 1 paper with its 2 Batch API items", tot, err)
	}
	rep, err = b.runner(t, nil).Run(ctx, store.Selection{})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Rejected != 0 || rep.Removed != 2 || rep.TLDRs != n-1 || rep.Vectors != n-1 || rep.Done != 2 {
		t.Errorf("report %+v; want the %d papers left stored, the removed paper's 2 answers counted removed, none rejected, both jobs done", rep, n-1)
	}
	if tl, v := b.counts(t); tl != n-1 || v != n-1 {
		t.Errorf("stored %d TL;DRs and %d vectors, want %d of each", tl, v, n-1)
	}
	b.checkClosed(t)
}
