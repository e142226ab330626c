package store_test

import (
	"errors"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

func saveTLDR(t *testing.T, s *store.Store, p paper.Abstract, model, prompt string) {
	t.Helper()
	n, err := s.SaveSummaries(t.Context(), []paper.Summary{{PaperID: p.ID, Text: "A TL;DR of " + p.Title + " by " + model + " " + prompt + ".",
		Model: model, PromptVersion: prompt, ContentHash: p.ContentHash(), Validation: string(paper.ValidOK)}})
	if err != nil || n != 1 {
		t.Fatalf("SaveSummaries %s %s %s: %d, %v", p.ID, model, prompt, n, err)
	}
}

func tldrVersions(t *testing.T, s *store.Store, id string) map[string]bool {
	t.Helper()
	sums, err := s.Summaries(t.Context(), id)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]bool{}
	for _, sm := range sums {
		out[sm.Model+" "+sm.PromptVersion] = true
	}
	return out
}

// TestPruneTLDRsRemovesVersionsNotKept: the TL;DRs of versions no longer used are removed in
// batches (a batch may end inside a paper's TL;DRs), with what a dry run said it would remove;
// the configured version stays, and so does an old version's TL;DR that is the only one of its
// paper's current text (what the paper shows) unless forced; an old version's TL;DR of a text the
// paper no longer has goes.
func TestPruneTLDRsRemovesVersionsNotKept(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(6)
	upsert(t, s, papers, store.Work{})
	for i, p := range papers {
		saveTLDR(t, s, p, "m", "v1")
		if i < 3 {
			saveTLDR(t, s, p, "other", "v1")
		}
		if i != 4 && i != 5 {
			saveTLDR(t, s, p, "m", "v2")
		}
	}
	// Paper 6's text changes: its v1 TL;DR is of the old text; v2 is written for the new one.
	papers[5].Abstract += " Revised."
	upsert(t, s, papers[5:], store.Work{})
	saveTLDR(t, s, papers[5], "m", "v2")

	// The configured version need not be stored yet: then every TL;DR of a paper's current text
	// is the only one it would keep, and only paper 6's of its old text would go.
	res, err := s.PruneTLDRs(ctx, store.PruneOptions{Current: store.TLDRKeep{Model: "m", PromptVersion: "v3"}, DryRun: true})
	if err != nil || res.TLDRs != 1 || res.Sole != 13 {
		t.Fatalf("dry run with a configured version not stored yet: %+v, %v; want 1 TL;DR to remove, 13 left as their papers' only ones", res, err)
	}
	keep := []store.TLDRKeep{{Model: "m", PromptVersion: "v2"}}
	dry, err := s.PruneTLDRs(ctx, store.PruneOptions{Keep: keep, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	if dry.TLDRs != 8 || dry.Sole != 1 || dry.Bytes <= 0 || countRows(t, s, "tldrs") != 14 {
		t.Fatalf("dry run: %+v, %d rows left; want 8 TL;DRs to remove (5 of m v1, 3 of other v1), 1 sole, 14 rows untouched", dry, countRows(t, s, "tldrs"))
	}
	var bytes int64
	if err := s.Pool().QueryRow(ctx, `SELECT sum(pg_column_size(t.*)) FROM tldrs t WHERE NOT (model = 'm' AND prompt_version = 'v2')
		AND NOT (paper_id = $1 AND model = 'm')`, papers[4].ID).Scan(&bytes); err != nil {
		t.Fatal(err)
	}
	if dry.Bytes < bytes {
		t.Errorf("dry run: %d bytes, less than the rows' own %d", dry.Bytes, bytes)
	}
	var batches int
	res, err = s.PruneTLDRs(ctx, store.PruneOptions{Keep: keep, BatchSize: 3, Progress: func(store.PruneResult) { batches++ }})
	if err != nil {
		t.Fatal(err)
	}
	if res.TLDRs != dry.TLDRs || res.Bytes != dry.Bytes || res.Sole != 1 || batches < 3 {
		t.Fatalf("prune: %+v in %d batches; want what the dry run said, %+v, in 3 batches or more", res, batches, dry)
	}
	for i, p := range papers {
		got := tldrVersions(t, s, p.ID)
		want := map[string]bool{"m v2": true}
		if i == 4 {
			want = map[string]bool{"m v1": true}
		}
		if len(got) != len(want) || !got["m v2"] && want["m v2"] || !got["m v1"] && want["m v1"] {
			t.Errorf("paper %d keeps %v, want %v", i+1, got, want)
		}
	}
	if rec, err := s.Paper(ctx, papers[4].ID); err != nil || rec.TLDR == nil {
		t.Errorf("paper 5 after the prune: %+v, %v; want its v1 TL;DR still shown", rec.TLDR, err)
	}
	res, err = s.PruneTLDRs(ctx, store.PruneOptions{Keep: keep, Force: true})
	if err != nil || res.TLDRs != 1 || countRows(t, s, "tldrs") != 5 {
		t.Errorf("forced prune: %+v, %v, %d rows left; want 1 removed, 5 left", res, err, countRows(t, s, "tldrs"))
	}
}

// TestPruneTLDRsLeavesVersionsARunOrABatchJobWrites: a version a reprocess writes now (its run
// lock) or an open Batch API job will write is left, saying why; a version to keep that names
// nothing stored is refused before anything is removed.
func TestPruneTLDRsLeavesVersionsARunOrABatchJobWrites(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v2"},
		[]store.BatchItem{{PaperID: papers[0].ID, ContentHash: papers[0].ContentHash()}})
	if err != nil || job.ID == 0 {
		t.Fatalf("ClaimBatchJob: %+v, %v", job, err)
	}
	release.Release()
	for _, p := range papers {
		for _, v := range []string{"v1", "v2", "v3", "v4"} {
			saveTLDR(t, s, p, "m", v)
		}
	}
	unlock, err := s.LockRun(ctx, store.TLDRRunKey("m", "v1"))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := s.PruneTLDRs(ctx, store.PruneOptions{Keep: []store.TLDRKeep{{Model: "m", PromptVersion: "v5"}}}); !errors.Is(err, store.ErrKeepMatchesNothing) {
		t.Fatalf("keep m v5: %v, want ErrKeepMatchesNothing", err)
	}
	res, err := s.PruneTLDRs(ctx, store.PruneOptions{Keep: []store.TLDRKeep{{Model: "m", PromptVersion: "v4"}}})
	if err != nil {
		t.Fatal(err)
	}
	skipped := map[string]string{}
	for _, v := range res.Versions {
		skipped[v.PromptVersion] = v.Skipped
	}
	if res.TLDRs != 3 || skipped["v1"] == "" || skipped["v2"] == "" || skipped["v3"] != "" {
		t.Fatalf("prune: %+v; want v3's 3 TL;DRs removed, v1 (a run writes it) and v2 (a batch job) left", res)
	}
	if got := tldrVersions(t, s, papers[2].ID); len(got) != 3 || got["m v3"] {
		t.Errorf("paper 3 keeps %v, want v1, v2 and v4", got)
	}
	// The job closed and the run ended, they go.
	job.Status = store.BatchDone
	if err := s.FinishBatchJob(ctx, job, nil); err != nil {
		t.Fatal(err)
	}
	unlock()
	res, err = s.PruneTLDRs(ctx, store.PruneOptions{Keep: []store.TLDRKeep{{Model: "m"}}})
	if err != nil || res.TLDRs != 0 {
		t.Errorf("keep every version of m: %+v, %v; want nothing removed", res, err)
	}
	res, err = s.PruneTLDRs(ctx, store.PruneOptions{Keep: []store.TLDRKeep{{Model: "m", PromptVersion: "v4"}}})
	if err != nil || res.TLDRs != 6 || countRows(t, s, "tldrs") != 3 {
		t.Errorf("second prune: %+v, %v, %d rows left; want 6 removed, 3 left", res, err, countRows(t, s, "tldrs"))
	}
}
