package batch_test

import (
	"context"
	"errors"
	"testing"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// A paper stored with arXiv's TeX accents and sent in a TL;DR batch, then ingested in its new
// form (letters as letters, LegacyHash its TeX form's hash) while the batch runs, gets the
// batch's TL;DR at its new hash: the job still holds it, and its answer is of the same text.
// The answer was saved under the TeX form's hash from its custom_id and thrown away as stale,
// the paper left without the TL;DR the batch had paid for.
func TestBatchAnswerOfALegacyFormIsStoredForItsNewForm(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	b := setup(t, 2)
	old := paper.Abstract{ID: "arxiv:2401.09999", Title: `Sparse routing for the Schr\"odinger equation`,
		Abstract: `We study sparse routing in mixture-of-experts models that solve the Schr\"odinger equation. ` +
			`We propose a balanced router that lowers the loss by 3 percent on Poincar\'e disks.`}
	if _, err := b.st.UpsertPapers(ctx, []paper.Abstract{old}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	cctx, cancel := context.WithCancel(ctx)
	rep, err := b.runner(t, func(c *batch.Config) {
		c.Embed = nil
		c.BaseURL = cancelAtFirstLook(t, b.fake, cancel)
	}).Run(cctx, store.Selection{})
	if !errors.Is(err, context.Canceled) || rep.Submitted != 1 {
		t.Fatalf("first run %+v, %v; want one job submitted, then context.Canceled", rep, err)
	}

	now := paper.Abstract{ID: old.ID, Title: "Sparse routing for the Schrödinger equation",
		Abstract: "We study sparse routing in mixture-of-experts models that solve the Schrödinger equation. " +
			"We propose a balanced router that lowers the loss by 3 percent on Poincaré disks.",
		LegacyHash: old.ContentHash()}
	work := paper.Work{Model: chatModel, PromptVersion: summarize.PromptVersion}
	got, err := b.st.UpsertPapers(ctx, []paper.Abstract{now}, work)
	if err != nil {
		t.Fatal(err)
	}
	if got[0].NeedTLDR {
		t.Errorf("the new form of a paper in an open batch needs its TL;DR: a worker would buy it again")
	}

	if _, err := b.runner(t, func(c *batch.Config) { c.Embed = nil }).Run(ctx, store.Selection{}); err != nil {
		t.Fatal(err)
	}
	rec, err := b.st.Paper(ctx, now.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.ContentHash != now.ContentHash() || rec.TLDR == nil {
		t.Errorf("paper at %s, TL;DR %+v; want the new form's hash %s with the batch's TL;DR", rec.ContentHash, rec.TLDR, now.ContentHash())
	}
	if s := b.fake.Stats(); s.ChatDelivered != 3 {
		t.Errorf("API delivered %d chat completions, want 3 (one per paper)", s.ChatDelivered)
	}
}
