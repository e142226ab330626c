package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A TL;DR the API withheld (RecordWithheld) takes its paper out of its target's stale work
// while the paper's text and the target are the same; a new text, another prompt version or
// model, or the record cleared (ClearWithheld) makes it stale again. The record lists, and goes
// with its paper.
func TestWithheldTLDRIsNotStaleUntilTheTextOrPromptChangesOrItIsCleared(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	work := paper.Work{Model: "m", PromptVersion: "v1", SpaceID: sp.ID}
	record := func() {
		t.Helper()
		n, err := s.RecordWithheld(ctx, []store.Withheld{{PaperID: papers[0].ID, Model: "m", PromptVersion: "v1",
			ContentHash: papers[0].ContentHash(), Reason: "withheld by the API's content filter"}})
		if err != nil || n != 1 {
			t.Fatalf("RecordWithheld = %d, %v; want 1 recorded", n, err)
		}
	}
	record()
	record() // a second record of the same replaces the first
	if _, tldr, emb := staleIDs(t, s, store.Selection{Work: work}, 10); tldr != 2 || emb != 3 {
		t.Errorf("with paper 0's TL;DR withheld: %d TL;DRs and %d embeddings stale; want 2 and 3", tldr, emb)
	}
	ws, err := s.WithheldTLDRs(ctx, nil)
	if err != nil || len(ws) != 1 || ws[0].PaperID != papers[0].ID || ws[0].Reason == "" || ws[0].At.IsZero() {
		t.Fatalf("WithheldTLDRs = %+v, %v; want paper 0's record", ws, err)
	}
	// Another prompt version or model is another target: asked for.
	for _, w := range []paper.Work{{Model: "m", PromptVersion: "v2"}, {Model: "other", PromptVersion: "v1"}} {
		if _, tldr, _ := staleIDs(t, s, store.Selection{Work: w}, 10); tldr != 3 {
			t.Errorf("target %+v: %d TL;DRs stale, want 3", w, tldr)
		}
	}
	// A new text of the paper is asked for.
	changed := papers[0]
	changed.Abstract += " Revised."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})
	if _, tldr, _ := staleIDs(t, s, store.Selection{Work: work}, 10); tldr != 3 {
		t.Errorf("after paper 0's text changed: %d TL;DRs stale, want 3", tldr)
	}
	upsert(t, s, []paper.Abstract{papers[0]}, store.Work{}) // its text as recorded again
	if _, tldr, _ := staleIDs(t, s, store.Selection{Work: work}, 10); tldr != 2 {
		t.Errorf("paper 0's recorded text back: %d TL;DRs stale, want 2", tldr)
	}
	// Cleared, it is asked for again.
	if n, err := s.ClearWithheld(ctx, []string{papers[0].ID}); err != nil || n != 1 {
		t.Fatalf("ClearWithheld = %d, %v; want 1", n, err)
	}
	if _, tldr, _ := staleIDs(t, s, store.Selection{Work: work}, 10); tldr != 3 {
		t.Errorf("after the record was cleared: %d TL;DRs stale, want 3", tldr)
	}
	// A record goes with its paper; one of a paper not stored is not made.
	record()
	if _, err := s.RemovePapers(ctx, []string{papers[0].ID}, false, nil); err != nil {
		t.Fatal(err)
	}
	if ws, err := s.WithheldTLDRs(ctx, nil); err != nil || len(ws) != 0 {
		t.Errorf("after paper 0 was removed: %+v, %v; want no record", ws, err)
	}
	if n, err := s.RecordWithheld(ctx, []store.Withheld{{PaperID: papers[0].ID, Model: "m", PromptVersion: "v1",
		ContentHash: papers[0].ContentHash(), Reason: "x"}}); err != nil || n != 0 {
		t.Errorf("RecordWithheld of a paper not stored = %d, %v; want 0", n, err)
	}
}

// A paper whose TL;DR the API withheld, ingested again unchanged (UpsertPapers) or queued for
// its vector by a run (PendingFor), needs its vector only: its TL;DR was asked for again, and
// the same refusal bought, at each. A replayed message of it (ForgetWithheld) asks again.
func TestWithheldTLDRIsNotPendingForTheIntakeNorARun(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	work := paper.Work{Model: "m", PromptVersion: "v1", SpaceID: sp.ID}
	if _, err := s.RecordWithheld(ctx, []store.Withheld{{PaperID: papers[0].ID, Model: "m", PromptVersion: "v1",
		ContentHash: papers[0].ContentHash(), Reason: "the model refused"}}); err != nil {
		t.Fatal(err)
	}
	check := func(when string, wantTLDR bool) {
		t.Helper()
		for name, call := range map[string]func(context.Context, []paper.Abstract, paper.Work) ([]paper.Pending, error){
			"UpsertPapers": s.UpsertPapers, "PendingFor": s.PendingFor,
		} {
			p, err := call(ctx, papers, work)
			if err != nil {
				t.Fatal(err)
			}
			if p[0].NeedTLDR != wantTLDR || !p[0].NeedEmbedding || !p[1].NeedTLDR {
				t.Errorf("%s, %s: %+v; want paper 0's TL;DR needed: %v, its vector and paper 1's TL;DR needed", when, name, p, wantTLDR)
			}
		}
	}
	check("withheld", false)
	if c, err := s.Counts(ctx, work); err != nil || c.TLDRsWithheld != 1 || c.WithTLDR != 0 {
		t.Errorf("Counts = %+v, %v; want 1 TL;DR withheld", c, err)
	}
	if c, err := s.CountStale(ctx, store.Selection{Work: work}); err != nil || c.Withheld != 1 || c.TLDRs != 1 {
		t.Errorf("CountStale = %+v, %v; want 1 TL;DR stale and 1 withheld", c, err)
	}
	other := work
	other.PromptVersion = "v2"
	if p, err := s.UpsertPapers(ctx, papers[:1], other); err != nil || !p[0].NeedTLDR {
		t.Errorf("another prompt version: %+v, %v; want the TL;DR needed", p, err)
	}
	if n, err := s.ForgetWithheld(ctx, papers, work); err != nil || n != 1 {
		t.Fatalf("ForgetWithheld = %d, %v; want 1", n, err)
	}
	check("forgotten", true)
}

// A record given its time (import's, from an export's tldr_withheld) keeps it, as an imported
// TL;DR keeps when it was written: `batches withheld` dated every record of a moved archive at
// its import, and listed them in that order, not the order the API withheld them. A record
// without one (the worker's, the Batch API's) is dated by the database.
func TestRecordWithheldKeepsAGivenTime(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	at := time.Date(2025, 3, 14, 15, 9, 26, 0, time.UTC)
	before := time.Now().Add(-time.Hour)
	if _, err := s.RecordWithheld(ctx, []store.Withheld{
		{PaperID: papers[0].ID, Model: "m", PromptVersion: "v1", ContentHash: papers[0].ContentHash(), Reason: "r", At: at},
		{PaperID: papers[1].ID, Model: "m", PromptVersion: "v1", ContentHash: papers[1].ContentHash(), Reason: "r"},
	}); err != nil {
		t.Fatal(err)
	}
	ws, err := s.WithheldTLDRs(ctx, nil)
	if err != nil || len(ws) != 2 {
		t.Fatalf("WithheldTLDRs = %+v, %v; want 2 records", ws, err)
	}
	if ws[0].PaperID != papers[0].ID || !ws[0].At.Equal(at) {
		t.Errorf("the record given %s: %+v (first of %d); want it first, dated so", at, ws[0], len(ws))
	}
	if ws[1].PaperID != papers[1].ID || ws[1].At.Before(before) {
		t.Errorf("the record given no time: %+v; want it dated now", ws[1])
	}
}

// A paper whose new text the API withholds too is recorded under that text: the record of its
// old text is replaced, hash and all, so the new text is not asked for again at every run. And
// a dead letter of the old text, replayed (ForgetWithheld), forgets the record of that text
// only — not the refusal of the text the paper has now, which would be bought again.
func TestWithheldRecordFollowsTheTextWithheld(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	work := paper.Work{Model: "m", PromptVersion: "v1"}
	withhold := func(a paper.Abstract) {
		t.Helper()
		if n, err := s.RecordWithheld(ctx, []store.Withheld{{PaperID: a.ID, Model: "m", PromptVersion: "v1",
			ContentHash: a.ContentHash(), Reason: "r"}}); err != nil || n != 1 {
			t.Fatalf("RecordWithheld = %d, %v; want 1", n, err)
		}
	}
	old := papers[0]
	withhold(old)
	changed := old
	changed.Abstract += " Revised."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})
	withhold(changed)
	if _, tldr, _ := staleIDs(t, s, store.Selection{Work: work}, 10); tldr != 1 {
		t.Errorf("paper 0's new text withheld too: %d TL;DRs stale, want 1 (paper 1's)", tldr)
	}
	if n, err := s.ForgetWithheld(ctx, []paper.Abstract{old}, work); err != nil || n != 0 {
		t.Errorf("ForgetWithheld of paper 0's old text = %d, %v; want 0 (its record is of the new text)", n, err)
	}
	if _, tldr, _ := staleIDs(t, s, store.Selection{Work: work}, 10); tldr != 1 {
		t.Errorf("after the old text's dead letter was replayed: %d TL;DRs stale, want 1", tldr)
	}
}

// ClearWithheld given no ids (`batches withheld clear --all`) clears every record; given ids,
// those papers' only.
func TestClearWithheldAllOrSome(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	ws := make([]store.Withheld, len(papers))
	for i, a := range papers {
		ws[i] = store.Withheld{PaperID: a.ID, Model: "m", PromptVersion: "v1", ContentHash: a.ContentHash(), Reason: "r"}
	}
	if _, err := s.RecordWithheld(ctx, ws); err != nil {
		t.Fatal(err)
	}
	if got, err := s.WithheldTLDRs(ctx, []string{papers[1].ID}); err != nil || len(got) != 1 || got[0].PaperID != papers[1].ID {
		t.Errorf("WithheldTLDRs of paper 1 = %+v, %v; want its record only", got, err)
	}
	if n, err := s.ClearWithheld(ctx, []string{papers[0].ID}); err != nil || n != 1 {
		t.Errorf("ClearWithheld of paper 0 = %d, %v; want 1", n, err)
	}
	if n, err := s.ClearWithheld(ctx, nil); err != nil || n != 2 {
		t.Errorf("ClearWithheld of all = %d, %v; want the 2 left", n, err)
	}
	if got, err := s.WithheldTLDRs(ctx, nil); err != nil || len(got) != 0 {
		t.Errorf("after clearing all: %+v, %v; want none", got, err)
	}
}

// status counts a paper's TL;DR withheld (Counts.TLDRsWithheld) when the record is of its
// target and of the text it has now, and the paper has no TL;DR of that text: a record under
// another model, of an old text, or beside a TL;DR stored since is not counted.
func TestCountsWithheldOnlyOfTheTargetAndTheTextWithoutATLDR(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(4)
	upsert(t, s, papers, store.Work{})
	w := paper.Work{Model: testModel, PromptVersion: testPrompt}
	rec := func(a paper.Abstract, model string) store.Withheld {
		return store.Withheld{PaperID: a.ID, Model: model, PromptVersion: testPrompt, ContentHash: a.ContentHash(), Reason: "r"}
	}
	// Paper 0: withheld (counted). Paper 1: withheld under another model. Paper 2: withheld, then
	// its text changed. Paper 3: withheld, and a TL;DR of its text stored since.
	if _, err := s.RecordWithheld(ctx, []store.Withheld{rec(papers[0], testModel), rec(papers[1], "another-model"),
		rec(papers[2], testModel), rec(papers[3], testModel)}); err != nil {
		t.Fatal(err)
	}
	changed := papers[2]
	changed.Abstract += " Revised."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(papers[3], testModel, testPrompt, "d.")}); err != nil {
		t.Fatal(err)
	}
	if c, err := s.Counts(ctx, w); err != nil || c.TLDRsWithheld != 1 || c.WithTLDR != 1 {
		t.Errorf("Counts = %+v, %v; want 1 TL;DR withheld (paper 0's) and 1 stored", c, err)
	}
}
