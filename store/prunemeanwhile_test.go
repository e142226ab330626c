package store_test

import (
	"testing"

	"github.com/paperpipe/paperpipe/store"
)

// A worker still configured for a version a prune removes (the prune run without the workers'
// settings) writes it while the prune runs: what it wrote behind the prune's pass stays, and is
// said to be written meanwhile, a sign to run the prune with the workers' settings. It was
// counted among the TL;DRs "left as the only TL;DR of their paper's current text", which it is
// not (the paper has the configured version's), with the advice to reprocess the configured
// version, which is there.
func TestPruneTLDRsSaysWhatWasWrittenWhileItRan(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(4)
	upsert(t, s, papers, store.Work{})
	for i, p := range papers {
		saveTLDR(t, s, p, "m", "v2") // the prune's configured version
		if i < 3 {
			saveTLDR(t, s, p, "w", "v1") // the workers'
		}
	}
	saveTLDR(t, s, papers[3], "other", "v1") // paper 4's other one: v2 is there, it goes too
	batches := 0
	res, err := s.PruneTLDRs(ctx, store.PruneOptions{Current: store.TLDRKeep{Model: "m", PromptVersion: "v2"}, BatchSize: 1,
		Progress: func(store.PruneResult) {
			batches++
			if batches == 1 {
				// The first batch removed paper 1's TL;DR of w v1 (key order): the worker writes
				// it again, behind the prune's pass.
				saveTLDR(t, s, papers[0], "w", "v1")
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	w := res.Versions[0]
	for _, v := range res.Versions {
		if v.Model == "w" {
			w = v
		}
	}
	if w.Model != "w" || w.TLDRs != 3 || w.Sole != 0 || w.WrittenMeanwhile != 1 || res.Sole != 0 || res.WrittenMeanwhile != 1 {
		t.Errorf("prune: %+v; want w v1's 3 TL;DRs removed, none left as its paper's only one, 1 written while it ran", res)
	}
}

// A TL;DR the prune's pass left as the only one of its paper's current text stays counted so
// when the configured version's TL;DR of the paper is written after the pass (a `reprocess
// --tldr-only` of the configured version running beside the prune, as README advises before
// one) or the paper's text changes: it was counted written while the prune ran, with a warning
// that a worker still writes the pruned version, which nothing did.
func TestPruneTLDRsLeftAsSoleStayCountedSoWhenTheConfiguredOneIsWrittenMeanwhile(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	for _, p := range papers {
		saveTLDR(t, s, p, "old", "v1") // each paper's only TL;DR
	}
	batches := 0
	res, err := s.PruneTLDRs(ctx, store.PruneOptions{Current: store.TLDRKeep{Model: "m", PromptVersion: "v2"}, BatchSize: 1,
		Progress: func(store.PruneResult) {
			batches++
			if batches == 1 {
				// The pass left paper 1's old TL;DR (its only one); the run of the configured
				// version then writes paper 1's.
				saveTLDR(t, s, papers[0], "m", "v2")
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Versions) != 1 || res.Versions[0].TLDRs != 0 || res.Sole != 3 || res.WrittenMeanwhile != 0 {
		t.Errorf("prune: %+v; want old v1's 3 TL;DRs left as their paper's only one, none written while it ran", res)
	}
}
