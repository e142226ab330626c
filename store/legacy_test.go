package store_test

import (
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// TestUpsertPapersKeepsTheOutputsOfTheLegacyForm: a paper an earlier release stored from
// arXiv's metadata with TeX accents ("Schr\"odinger") is ingested again with its letters
// written as letters (Schrödinger): another content hash, which made it a changed paper whose
// TL;DR and vector were bought again — for every such paper of a snapshot. A text whose
// LegacyHash is the stored hash is the same text: it is stored in its new form, keyword
// search finds its words, and its TL;DR and vector are kept for it, nothing needed.
func TestUpsertPapersKeepsTheOutputsOfTheLegacyForm(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	w := store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: sp.ID}
	old := paper.Abstract{ID: "arxiv:2401.00001", Title: `The Schr\"odinger equation of Poincar\'e`,
		Abstract: `We solve the nonlinear Schr\"odinger equation on the Poincar\'e disk.`}
	other := abstracts(2)[1]
	upsert(t, s, []paper.Abstract{old, other}, w)
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(old, testModel, testPrompt, "A solution."),
		summaryOf(other, testModel, testPrompt, "Other.")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(old, 1, 0, 0), embeddingOf(other, 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}

	now := paper.Abstract{ID: old.ID, Title: "The Schrödinger equation of Poincaré",
		Abstract: "We solve the nonlinear Schrödinger equation on the Poincaré disk.", LegacyHash: old.ContentHash()}
	got := upsert(t, s, []paper.Abstract{now, other}, w)
	want := store.Pending{ID: now.ID, ContentHash: now.ContentHash()}
	if got[0] != want || got[1] != (store.Pending{ID: other.ID, ContentHash: other.ContentHash()}) {
		t.Errorf("the legacy form's paper again: %+v, want %+v (nothing to buy)", got, want)
	}
	rec, err := s.Paper(ctx, now.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Title != now.Title || rec.Abstract.Abstract != now.Abstract || rec.ContentHash != now.ContentHash() {
		t.Errorf("stored %q / %q (%s), want the new form", rec.Title, rec.Abstract.Abstract, rec.ContentHash)
	}
	if rec.TLDR == nil || rec.TLDR.Text != "A solution." || !rec.Embedded {
		t.Errorf("outputs: tldr %+v, embedded %v; want the legacy form's", rec.TLDR, rec.Embedded)
	}
	hits, err := s.KeywordSearch(ctx, "Schrödinger", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(hits) != 1 || hits[0].ID != now.ID {
		t.Errorf("keyword search for Schrödinger: %+v, want the paper", hits)
	}

	// A text whose LegacyHash is not the stored hash is another text, which needs its outputs.
	changed := now
	changed.Abstract += " New results."
	changed.LegacyHash = paper.Abstract{Title: old.Title, Abstract: old.Abstract + " New results."}.ContentHash()
	got = upsert(t, s, []paper.Abstract{changed}, w)
	if want := (store.Pending{ID: now.ID, ContentHash: changed.ContentHash(), NeedTLDR: true, NeedEmbedding: true, Changed: true}); got[0] != want {
		t.Errorf("a changed text: %+v, want %+v", got[0], want)
	}
}

// TestUpsertPapersMovesTheLegacyFormsBatchItems: a paper held by an open Batch API job
// (`reprocess --batch-api`) at its TeX form's hash, then ingested in its new form, stays held
// by the job: the job's item is re-keyed with the paper, so the worker does not buy the TL;DR
// the job is buying, and the job's answer is stored at the paper's current hash.
func TestUpsertPapersMovesTheLegacyFormsBatchItems(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	w := store.Work{Model: testModel, PromptVersion: testPrompt}
	old := paper.Abstract{ID: "arxiv:2401.00002", Title: `The Schr\"odinger equation`,
		Abstract: `We solve the nonlinear Schr\"odinger equation on the Poincar\'e disk.`}
	upsert(t, s, []paper.Abstract{old}, w)
	job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: testModel, PromptVersion: testPrompt},
		[]store.BatchItem{{PaperID: old.ID, ContentHash: old.ContentHash()}})
	if err != nil {
		t.Fatal(err)
	}
	release.Release()

	now := paper.Abstract{ID: old.ID, Title: "The Schrödinger equation",
		Abstract: "We solve the nonlinear Schrödinger equation on the Poincaré disk.", LegacyHash: old.ContentHash()}
	got := upsert(t, s, []paper.Abstract{now}, w)
	if want := (store.Pending{ID: now.ID, ContentHash: now.ContentHash()}); got[0] != want {
		t.Errorf("the new form of a paper an open batch job holds: %+v, want %+v (the job buys its TL;DR)", got[0], want)
	}
	items, err := s.BatchItemsOf(ctx, job.ID, []string{now.ID})
	if err != nil {
		t.Fatal(err)
	}
	if it, ok := items[now.ID]; !ok || it.ContentHash != now.ContentHash() {
		t.Errorf("the job's item: %+v (found %v), want it at the new form's hash %s", it.BatchItem, ok, now.ContentHash())
	}
}
