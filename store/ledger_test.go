package store_test

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

const (
	testModel  = "test-model"
	testPrompt = "v1"
)

// space creates a space of dims dimensions named after model.
func space(t *testing.T, s *store.Store, model string, dims int) paper.Space {
	t.Helper()
	sp, err := s.EnsureSpace(t.Context(), paper.Space{Model: model, Dimensions: dims, Template: "title+abstract"})
	if err != nil {
		t.Fatalf("EnsureSpace(%s, %d): %v", model, dims, err)
	}
	return sp
}

func summaryOf(a paper.Abstract, model, prompt, text string) paper.Summary {
	return paper.Summary{PaperID: a.ID, Text: text, Model: model, PromptVersion: prompt,
		ContentHash: a.ContentHash(), Validation: paper.ValidOK}
}

func embeddingOf(a paper.Abstract, vec ...float32) paper.Embedding {
	return paper.Embedding{PaperID: a.ID, ContentHash: a.ContentHash(), Vector: vec}
}

func TestUpsertPapersReportsPendingWork(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	w := store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: sp.ID}
	papers := abstracts(3)

	// New papers need everything.
	for i, p := range upsert(t, s, papers, w) {
		want := store.Pending{ID: papers[i].ID, ContentHash: papers[i].ContentHash(), NeedTLDR: true, NeedEmbedding: true, New: true}
		if p != want {
			t.Errorf("new paper %d: got %+v, want %+v", i, p, want)
		}
	}

	// Paper 0 gets both outputs, paper 1 a TL;DR only.
	if n, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(papers[0], testModel, testPrompt, "One."), summaryOf(papers[1], testModel, testPrompt, "Two.")}); err != nil || n != 2 {
		t.Fatalf("SaveSummaries = %d, %v", n, err)
	}
	if n, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(papers[0], 1, 0, 0)}); err != nil || n != 1 {
		t.Fatalf("SaveEmbeddings = %d, %v", n, err)
	}

	// Unchanged papers need only what is missing.
	got := upsert(t, s, papers, w)
	want := []store.Pending{
		{ID: papers[0].ID, ContentHash: papers[0].ContentHash()},
		{ID: papers[1].ID, ContentHash: papers[1].ContentHash(), NeedEmbedding: true},
		{ID: papers[2].ID, ContentHash: papers[2].ContentHash(), NeedTLDR: true, NeedEmbedding: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("unchanged papers:\n got %+v\nwant %+v", got, want)
	}

	// Another prompt version needs a new TL;DR, another space a new vector.
	other := space(t, s, "emb2", 3)
	got = upsert(t, s, papers[:1], store.Work{Model: testModel, PromptVersion: "v2", SpaceID: other.ID})
	if !got[0].NeedTLDR || !got[0].NeedEmbedding {
		t.Errorf("new prompt and space: %+v, want both needed", got[0])
	}
	// Outputs not wanted are never needed.
	got = upsert(t, s, papers[2:], store.Work{})
	if got[0].NeedTLDR || got[0].NeedEmbedding {
		t.Errorf("empty Work: %+v, want nothing needed", got[0])
	}

	// A changed abstract needs everything again.
	changed := papers[0]
	changed.Abstract = "A rewritten abstract with new results."
	got = upsert(t, s, []paper.Abstract{changed}, w)
	wantChanged := store.Pending{ID: changed.ID, ContentHash: changed.ContentHash(), NeedTLDR: true, NeedEmbedding: true, Changed: true}
	if got[0] != wantChanged {
		t.Errorf("changed paper: got %+v, want %+v", got[0], wantChanged)
	}
	rec, err := s.Paper(ctx, changed.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Abstract.Abstract != changed.Abstract || rec.ContentHash != changed.ContentHash() {
		t.Errorf("stored paper not updated: %+v", rec)
	}
	if rec.TLDR != nil || rec.Embedded {
		t.Errorf("outputs of the old text shown for the new one: tldr %+v, embedded %v", rec.TLDR, rec.Embedded)
	}
	if n := countRows(t, s, "papers"); n != 3 {
		t.Errorf("%d papers stored, want 3", n)
	}
}

func TestUpsertPapersMetadataOnlyChangeNeedsNoWork(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	w := store.Work{Model: testModel, PromptVersion: testPrompt}
	a := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{a}, w)
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(a, testModel, testPrompt, "A TL;DR.")}); err != nil {
		t.Fatal(err)
	}

	a.Authors = []string{"New Author"}
	a.URL = "https://arxiv.org/abs/2401.00001"
	a.Published = time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)
	a.Categories = []string{"cs.LG"}
	got := upsert(t, s, []paper.Abstract{a}, w)
	if got[0].NeedTLDR || got[0].Changed || got[0].New {
		t.Errorf("metadata change: %+v, want no work", got[0])
	}
	rec, err := s.Paper(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Authors, a.Authors) || rec.URL != a.URL || !rec.Published.Equal(a.Published) || !slices.Equal(rec.Categories, a.Categories) {
		t.Errorf("metadata not updated: %+v", rec.Abstract)
	}

	// A record without metadata (another source) keeps what is stored.
	bare := paper.Abstract{ID: a.ID, Title: a.Title, Abstract: a.Abstract}
	upsert(t, s, []paper.Abstract{bare}, w)
	rec, err = s.Paper(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(rec.Authors, a.Authors) || rec.URL != a.URL || !rec.Published.Equal(a.Published) {
		t.Errorf("metadata lost to a record without it: %+v", rec.Abstract)
	}
}

// TestUpsertPapersDuplicateInBatchNewestWins: a paper given more than once in one call (a
// worker's micro-batch holding a new message and a redelivered or replayed one of the same
// paper) is stored as calls made one copy at a time would store it: the newest text by TextAt
// wins whatever its place, the last of equally new ones, and only the copy stored asks for the
// outputs, so they are not bought once per copy.
func TestUpsertPapersDuplicateInBatchNewestWins(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	w := store.Work{Model: testModel, PromptVersion: testPrompt}
	stored := func(a paper.Abstract) {
		t.Helper()
		rec, err := s.Paper(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Abstract.Abstract != a.Abstract {
			t.Errorf("paper %s stores %q, want %q", a.ID, rec.Abstract.Abstract, a.Abstract)
		}
	}
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ps := abstracts(4)

	// Undated copies (now): the last one wins.
	v2 := ps[0]
	v2.Abstract = "The second version of the first abstract."
	got := upsert(t, s, []paper.Abstract{ps[0], ps[1], v2}, w)
	if want := (store.Pending{ID: v2.ID, ContentHash: v2.ContentHash(), NeedTLDR: true, New: true}); got[2] != want {
		t.Errorf("the last undated copy: %+v, want %+v", got[2], want)
	}
	if want := (store.Pending{ID: v2.ID, ContentHash: v2.ContentHash()}); got[0] != want {
		t.Errorf("the earlier undated copy: %+v, want %+v (the stored hash, nothing needed)", got[0], want)
	}
	if got[1].ID != ps[1].ID || !got[1].NeedTLDR {
		t.Errorf("pending 1 is %+v, want %s needing its TL;DR", got[1], ps[1].ID)
	}
	stored(v2)

	// The newer version first, then an older one (a replayed dead letter): the newer is kept.
	a1, a2 := ps[2], ps[2]
	a1.TextAt = t0
	a2.Abstract, a2.TextAt = "The second version of the third abstract.", t0.Add(time.Hour)
	got = upsert(t, s, []paper.Abstract{a2, a1}, w)
	if want := (store.Pending{ID: a2.ID, ContentHash: a2.ContentHash(), NeedTLDR: true, New: true}); got[0] != want {
		t.Errorf("the newer version: %+v, want %+v", got[0], want)
	}
	if want := (store.Pending{ID: a2.ID, ContentHash: a2.ContentHash()}); got[1] != want {
		t.Errorf("the older version after it: %+v, want %+v (the stored hash, nothing needed)", got[1], want)
	}
	stored(a2)
	// Both again, against the stored newer text: still the newer one, nothing bought again.
	got = upsert(t, s, []paper.Abstract{a1, a2}, w)
	for i, p := range got {
		if p.ContentHash != a2.ContentHash() || p.NeedTLDR != (i == 1) || p.Changed || p.New {
			t.Errorf("copy %d of a stored paper: %+v, want the stored hash, the TL;DR asked for by the newer copy only", i, p)
		}
	}
	stored(a2)
	// An even older stored text: the newer copy replaces it, the older one needs nothing.
	b0, b1, b2 := ps[3], ps[3], ps[3]
	b0.TextAt = t0.Add(-time.Hour)
	b1.Abstract, b1.TextAt = "The second version of the fourth abstract.", t0
	b2.Abstract, b2.TextAt = "The third version of the fourth abstract.", t0.Add(time.Hour)
	upsert(t, s, []paper.Abstract{b0}, w)
	got = upsert(t, s, []paper.Abstract{b2, b1}, w)
	if !got[0].Changed || !got[0].NeedTLDR || got[0].ContentHash != b2.ContentHash() {
		t.Errorf("the newest version over an older stored one: %+v, want it stored, changed, its TL;DR needed", got[0])
	}
	if want := (store.Pending{ID: b2.ID, ContentHash: b2.ContentHash()}); got[1] != want {
		t.Errorf("a version between them: %+v, want %+v", got[1], want)
	}
	stored(b2)

	// The same text twice (a redelivery beside its original): one copy asks for the outputs.
	c := abstracts(5)[4]
	c.TextAt = t0
	got = upsert(t, s, []paper.Abstract{c, c}, w)
	if got[0].NeedTLDR == got[1].NeedTLDR || got[0].ContentHash != c.ContentHash() || got[1].ContentHash != c.ContentHash() {
		t.Errorf("the same text twice: %+v; want its hash, the TL;DR asked for once", got)
	}
	if n := countRows(t, s, "papers"); n != 5 {
		t.Errorf("%d papers stored, want 5", n)
	}
}

func TestUpsertPapersRejectsInvalidRecordAndWritesNothing(t *testing.T) {
	t.Parallel()
	s := setup(t)
	for name, mutate := range map[string]func(*paper.Abstract){
		"empty abstract": func(a *paper.Abstract) { a.Abstract = "  " },
		"empty title":    func(a *paper.Abstract) { a.Title = "" },
		"blank title":    func(a *paper.Abstract) { a.Title = " \t" },
		"empty id":       func(a *paper.Abstract) { a.ID = "" },
		"invalid UTF-8":  func(a *paper.Abstract) { a.Abstract = "bad \xff byte" },
		"NUL byte":       func(a *paper.Abstract) { a.Title = "nul \x00 title" },
	} {
		ps := abstracts(3)
		mutate(&ps[1])
		_, err := s.UpsertPapers(t.Context(), ps, store.Work{})
		if !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("%s: error %v, want ErrInvalid", name, err)
		}
	}
	if n := countRows(t, s, "papers"); n != 0 {
		t.Errorf("%d papers stored after rejected batches, want 0", n)
	}
}

func TestUpsertPapersConcurrentOverlappingBatches(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ps := abstracts(200)
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		batch := slices.Clone(ps)
		r := rand.New(rand.NewPCG(uint64(g), 1))
		r.Shuffle(len(batch), func(i, j int) { batch[i], batch[j] = batch[j], batch[i] })
		if g%2 == 1 { // half the writers change every abstract: real updates that lock rows
			for i := range batch {
				batch[i].Abstract += fmt.Sprintf(" Revision %d.", g)
			}
		}
		wg.Go(func() {
			_, err := s.UpsertPapers(t.Context(), batch, store.Work{})
			errs <- err
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Errorf("concurrent UpsertPapers: %v", err)
		}
	}
	if n := countRows(t, s, "papers"); n != 200 {
		t.Errorf("%d papers stored, want 200", n)
	}
}

func TestSaveSummariesSkipsStaleContent(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	v1 := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{v1}, store.Work{})
	v2 := v1
	v2.Abstract = "The abstract changed while the TL;DR of the old one was being written."
	upsert(t, s, []paper.Abstract{v2}, store.Work{})

	stale := summaryOf(v1, testModel, testPrompt, "About the old text.")
	n, err := s.SaveSummaries(ctx, []paper.Summary{stale})
	if err != nil || n != 0 {
		t.Fatalf("SaveSummaries(stale) = %d, %v; want 0 saved", n, err)
	}
	if n := countRows(t, s, "tldrs"); n != 0 {
		t.Fatalf("stale summary stored: %d rows", n)
	}
	// A summary of a paper that does not exist is skipped the same way.
	ghost := summaryOf(paper.Abstract{ID: "arxiv:9999.99999", Title: "x", Abstract: "y"}, testModel, testPrompt, "Ghost.")
	fresh := summaryOf(v2, testModel, testPrompt, "About the new text.")
	n, err = s.SaveSummaries(ctx, []paper.Summary{ghost, fresh})
	if err != nil || n != 1 {
		t.Fatalf("SaveSummaries(ghost, fresh) = %d, %v; want 1 saved", n, err)
	}
	// Once a fresh one is stored, a late stale result must not overwrite it.
	if n, err := s.SaveSummaries(ctx, []paper.Summary{stale}); err != nil || n != 0 {
		t.Fatalf("SaveSummaries(stale over fresh) = %d, %v", n, err)
	}
	rec, err := s.Paper(ctx, v2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.TLDR == nil || rec.TLDR.Text != fresh.Text || rec.TLDR.ContentHash != v2.ContentHash() {
		t.Errorf("Paper TLDR = %+v, want the fresh one", rec.TLDR)
	}
}

func TestSummariesPerModelAndPromptCoexist(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	a := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{a}, store.Work{})
	saved := []paper.Summary{
		summaryOf(a, "model-a", "v1", "First by model a."),
		summaryOf(a, "model-a", "v2", "Second by model a with prompt two."),
		summaryOf(a, "model-b", "v1", "Third by model b."),
	}
	saved[2].Usage = paper.Usage{InputTokens: 120, OutputTokens: 17}
	for _, sm := range saved { // one call each, so each gets its own creation time
		if n, err := s.SaveSummaries(ctx, []paper.Summary{sm}); err != nil || n != 1 {
			t.Fatalf("SaveSummaries(%s/%s) = %d, %v", sm.Model, sm.PromptVersion, n, err)
		}
	}
	// Saving the same key again replaces, it does not add.
	again := summaryOf(a, "model-a", "v1", "First by model a, redone.")
	if n, err := s.SaveSummaries(ctx, []paper.Summary{again, again}); err != nil || n != 1 {
		t.Fatalf("SaveSummaries(repeat) = %d, %v", n, err)
	}
	got, err := s.Summaries(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	var texts []string
	for _, sm := range got {
		texts = append(texts, sm.Text)
	}
	want := []string{again.Text, saved[2].Text, saved[1].Text} // newest first
	if !slices.Equal(texts, want) {
		t.Errorf("Summaries = %q, want %q", texts, want)
	}
	if got[1].Usage.InputTokens != 120 || got[1].Usage.OutputTokens != 17 || got[1].Model != "model-b" {
		t.Errorf("summary metadata = %+v", got[1])
	}
	rec, err := s.Paper(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.TLDR == nil || rec.TLDR.Text != again.Text {
		t.Errorf("Paper TLDR = %+v, want the most recent", rec.TLDR)
	}
	if _, err := s.Summaries(ctx, "arxiv:0000.00000"); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("Summaries(missing) error = %v, want ErrNotFound", err)
	}
	other := abstracts(2)[1]
	upsert(t, s, []paper.Abstract{other}, store.Work{})
	if got, err := s.Summaries(ctx, other.ID); err != nil || len(got) != 0 {
		t.Errorf("Summaries(paper without TL;DR) = %v, %v; want none", got, err)
	}
}

func TestSaveEmbeddingsChecksDimensionsAndStaleness(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	ps := abstracts(2)
	upsert(t, s, ps, store.Work{})

	_, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0), embeddingOf(ps[1], 1, 0)})
	if !errors.Is(err, paper.ErrSpaceMismatch) {
		t.Fatalf("wrong dimension: error %v, want ErrSpaceMismatch", err)
	}
	for _, want := range []string{"2 dimensions", "3", ps[1].ID} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not mention %q", err, want)
		}
	}
	nan := float32(0)
	nan /= nan
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[0], nan, 0, 0)}); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("NaN: error %v, want ErrInvalid", err)
	}
	// The zero vector's cosine distance to anything is NaN: a paper with it would be nobody's
	// neighbour, and a query made of it would score every paper NaN (which JSON cannot carry).
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[0], 0, 0, 0)}); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("zero vector: error %v, want ErrInvalid", err)
	}
	if _, err := s.Search(ctx, sp.ID, []float32{0, 0, 0}, 5); !errors.Is(err, paper.ErrInvalid) || !strings.Contains(err.Error(), "zero vector") {
		t.Errorf("Search with the zero vector: error %v, want ErrInvalid saying why", err)
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID+1000, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0)}); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("missing space: error %v, want ErrNotFound", err)
	}
	if n := countRows(t, s, "embeddings"); n != 0 {
		t.Fatalf("%d embeddings stored by failed calls", n)
	}

	stale := embeddingOf(ps[1], 0, 1, 0)
	stale.ContentHash = "old-hash"
	n, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0), stale})
	if err != nil || n != 1 {
		t.Fatalf("SaveEmbeddings = %d, %v; want 1 saved, the stale one skipped", n, err)
	}
	if n := countRows(t, s, "embeddings"); n != 1 {
		t.Errorf("%d embeddings stored, want 1", n)
	}
	rec, err := s.Paper(ctx, ps[0].ID)
	if err != nil || !rec.Embedded {
		t.Errorf("Paper(%s).Embedded = %v, %v; want true", ps[0].ID, rec.Embedded, err)
	}
}

func TestUsageAccumulates(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	batch := []paper.Usage{
		{Model: "gpt", Kind: paper.KindChat, Requests: 1, InputTokens: 100, OutputTokens: 20},
		{Model: "gpt", Kind: paper.KindChat, Requests: 2, InputTokens: 50, OutputTokens: 10},
		{Model: "emb", Kind: paper.KindEmbedding, Requests: 1, InputTokens: 900},
	}
	for range 2 {
		if err := s.RecordUsage(ctx, batch); err != nil {
			t.Fatalf("RecordUsage: %v", err)
		}
	}
	rows, err := s.Usage(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	today := time.Now().UTC().Truncate(24 * time.Hour)
	want := []store.UsageRow{
		{Day: today, Usage: paper.Usage{Model: "emb", Kind: paper.KindEmbedding, Requests: 2, InputTokens: 1800}},
		{Day: today, Usage: paper.Usage{Model: "gpt", Kind: paper.KindChat, Requests: 6, InputTokens: 300, OutputTokens: 60}},
	}
	if len(rows) != len(want) {
		t.Fatalf("Usage = %+v, want %+v", rows, want)
	}
	for i := range want {
		if !rows[i].Day.Equal(want[i].Day) || rows[i].Usage != want[i].Usage {
			t.Errorf("Usage[%d] = %+v, want %+v", i, rows[i], want[i])
		}
	}
	if rows, err := s.Usage(ctx, time.Now().Add(48*time.Hour)); err != nil || len(rows) != 0 {
		t.Errorf("Usage(future) = %v, %v; want none", rows, err)
	}
	// Since a time of today: today's rows, its day included. A model and kind of no request and
	// no token (a flush with nothing to add) gets no row.
	if err := s.RecordUsage(ctx, []paper.Usage{{Model: "idle", Kind: paper.KindChat}}); err != nil {
		t.Fatal(err)
	}
	if rows, err := s.Usage(ctx, time.Now()); err != nil || len(rows) != len(want) {
		t.Errorf("Usage(now) = %+v, %v; want today's %d rows, no more", rows, err, len(want))
	}
}

// TestUpsertPapersKeepsANewerTextOverAnOlderOne: messages of two versions of a paper can be
// handled out of order (the first redelivered after the second was stored); the older text
// must not replace the newer one, nor ask for outputs of a text the paper no longer has.
func TestUpsertPapersKeepsANewerTextOverAnOlderOne(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	w := store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: sp.ID}
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	v1 := abstracts(1)[0]
	v1.TextAt = t0
	v2 := v1
	v2.Abstract, v2.TextAt = "The second version of the abstract.", t0.Add(time.Hour)
	upsert(t, s, []paper.Abstract{v2}, w)

	p := upsert(t, s, []paper.Abstract{v1}, w)[0]
	if p.ContentHash != v2.ContentHash() || p.Changed || p.NeedTLDR || p.NeedEmbedding {
		t.Errorf("the older version after the newer: %+v; want the stored (newer) hash and nothing needed", p)
	}
	if rec, err := s.Paper(ctx, v1.ID); err != nil || rec.Abstract.Abstract != v2.Abstract {
		t.Fatalf("stored abstract %q (%v), want the newer version's", rec.Abstract.Abstract, err)
	}
	// The same text again, older, with a URL: its metadata still merges.
	same := v2
	same.TextAt, same.URL = t0, "https://example.org/paper"
	if p := upsert(t, s, []paper.Abstract{same}, w)[0]; p.ContentHash != v2.ContentHash() || !p.NeedTLDR {
		t.Errorf("the stored text again: %+v; want its hash and its TL;DR needed", p)
	}
	if rec, err := s.Paper(ctx, v1.ID); err != nil || rec.URL != same.URL {
		t.Errorf("URL %q (%v), want the merged %q", rec.URL, err, same.URL)
	}
	// A newer version replaces it; a text without a time counts as now.
	v3 := v1
	v3.Abstract, v3.TextAt = "The third version of the abstract.", t0.Add(2*time.Hour)
	if p := upsert(t, s, []paper.Abstract{v3}, w)[0]; p.ContentHash != v3.ContentHash() || !p.Changed || !p.NeedTLDR || !p.NeedEmbedding {
		t.Errorf("a newer version: %+v; want it stored, changed, both outputs needed", p)
	}
	// A stored text read for re-publishing carries its date.
	var dated time.Time
	if err := s.StalePapers(ctx, store.Selection{Work: w}, 10, func(page []store.StalePaper) error {
		dated = page[0].TextAt
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if !dated.Equal(v3.TextAt) {
		t.Errorf("StalePapers dated the stored text %v, want %v", dated, v3.TextAt)
	}
	v4 := v1
	v4.Abstract, v4.TextAt = "A version from a caller that gives no time.", time.Time{}
	if p := upsert(t, s, []paper.Abstract{v4}, w)[0]; p.ContentHash != v4.ContentHash() || !p.Changed {
		t.Errorf("a text without a time: %+v; want it stored (as of now)", p)
	}
}

// Copies of one paper in one call merge their metadata as calls made one copy at a time do:
// a feed's record (URL, categories, authors), then its corrected text from a file without
// them, in one worker batch, keep the feed's metadata with the new text.
func TestUpsertPapersDuplicateInBatchMergesMetadataLikeSeparateCalls(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	w := store.Work{Model: testModel, PromptVersion: testPrompt}
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	ps := abstracts(2)
	rich := func(a paper.Abstract) paper.Abstract { // from the arXiv feed: authors, URL, categories
		a.URL, a.Categories, a.TextAt = "https://arxiv.org/abs/"+a.ID[6:], []string{"cs.CL"}, t0
		return a
	}
	bare := func(a paper.Abstract) paper.Abstract { // its corrected text, from a plain-text file
		a.Authors, a.TextAt = nil, t0.Add(time.Second)
		a.Abstract += " (corrected)"
		return a
	}
	// One copy per call.
	upsert(t, s, []paper.Abstract{rich(ps[0])}, w)
	upsert(t, s, []paper.Abstract{bare(ps[0])}, w)
	// Both copies in one call (one worker batch).
	upsert(t, s, []paper.Abstract{rich(ps[1]), bare(ps[1])}, w)
	for _, a := range ps {
		rec, err := s.Paper(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if rec.Abstract.URL == "" || !slices.Equal(rec.Abstract.Categories, []string{"cs.CL"}) || len(rec.Abstract.Authors) != 2 {
			t.Errorf("%s stored url=%q categories=%v authors=%v; want the feed's URL, categories and authors kept",
				a.ID, rec.Abstract.URL, rec.Abstract.Categories, rec.Abstract.Authors)
		}
	}
}

// A copy in one call of a text older than the stored one (a redelivered message of version 1)
// lends no metadata, as a separate call would refuse it: version 2's metadata stays when
// version 2 comes again without any in the same call.
func TestUpsertPapersOlderCopyInTheCallLendsNoMetadata(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	w := store.Work{Model: testModel, PromptVersion: testPrompt}
	t1 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	t2 := t1.Add(time.Hour)
	ps := abstracts(2)
	for _, a := range ps {
		v2 := a
		v2.Abstract += " Version 2."
		v2.Authors, v2.URL, v2.TextAt = []string{"Current Author"}, "https://example.org/current", t2
		upsert(t, s, []paper.Abstract{v2}, w) // stored: version 2 with its metadata
	}
	v1 := func(a paper.Abstract) paper.Abstract { // the old message of version 1, redelivered
		a.Authors, a.URL, a.TextAt = []string{"Old Author"}, "https://example.org/old", t1
		return a
	}
	v2bare := func(a paper.Abstract) paper.Abstract { // version 2 again, from a file without metadata
		a.Abstract += " Version 2."
		a.Authors, a.URL, a.TextAt = nil, "", t2
		return a
	}
	// Paper 1: one copy per call. Paper 2: both in one call.
	upsert(t, s, []paper.Abstract{v1(ps[0])}, w)
	upsert(t, s, []paper.Abstract{v2bare(ps[0])}, w)
	upsert(t, s, []paper.Abstract{v1(ps[1]), v2bare(ps[1])}, w)
	for _, a := range ps {
		rec, err := s.Paper(ctx, a.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(rec.Abstract.Authors, []string{"Current Author"}) || rec.Abstract.URL != "https://example.org/current" {
			t.Errorf("%s: authors %v, url %q; want version 2's (Current Author, .../current) kept", a.ID, rec.Abstract.Authors, rec.Abstract.URL)
		}
	}
}

// UpsertPapers writes all of a call's copies or none: with a repeated id, the copies before the
// kept one go in statements of their own, and a failure of the last (here a constraint; in a
// worker a timeout, a lost connection) left the older copy written.
func TestUpsertPapersWithARepeatedIDIsOneTransaction(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	if _, err := s.Pool().Exec(ctx, `ALTER TABLE papers ADD CONSTRAINT test_no_v2 CHECK (abstract NOT LIKE '%Version 2.%')`); err != nil {
		t.Fatal(err)
	}
	a := abstracts(1)[0]
	v1, v2 := a, a
	v1.TextAt = time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	v2.Abstract += " Version 2."
	v2.TextAt = v1.TextAt.Add(time.Hour)
	_, err := s.UpsertPapers(ctx, []paper.Abstract{v1, v2}, store.Work{})
	var n int
	if qerr := s.Pool().QueryRow(ctx, "SELECT count(*) FROM papers").Scan(&n); qerr != nil {
		t.Fatal(qerr)
	}
	if err == nil || n != 0 {
		t.Errorf("UpsertPapers of v1 and a v2 the database refuses: err %v, %d paper(s) written; want the error and nothing written", err, n)
	}
}

// A call with a repeated id holds the rows of its first rounds (the repeated ids) across its
// last statement (every id, in id order) in one transaction, so a concurrent call locking the
// same rows in id order can deadlock with it: PostgreSQL aborts one, and UpsertPapers tries it
// again (the aborted batch failed, its messages using a delivery).
func TestUpsertPapersWithARepeatedIDBesideAConcurrentBatch(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	base := abstracts(200)
	if _, err := s.UpsertPapers(ctx, base, store.Work{}); err != nil {
		t.Fatal(err)
	}
	last := len(base) - 1
	for round := range 10 {
		one := make([]paper.Abstract, 0, len(base)+1)
		two := make([]paper.Abstract, 0, len(base))
		v1 := base[last]
		v1.Abstract = fmt.Sprintf("round %d, first copy: %s", round, base[last].Abstract)
		one = append(one, v1) // the repeated id goes first, in a statement of its own
		for _, a := range base {
			a1, a2 := a, a
			a1.Abstract = fmt.Sprintf("round %d, call one: %s", round, a.Abstract)
			a2.Abstract = fmt.Sprintf("round %d, call two: %s", round, a.Abstract)
			one = append(one, a1)
			two = append(two, a2)
		}
		var wg sync.WaitGroup
		errs := make([]error, 2)
		for i, batch := range [][]paper.Abstract{one, two} {
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, errs[i] = s.UpsertPapers(ctx, batch, store.Work{})
			}()
		}
		wg.Wait()
		for _, err := range errs {
			if err != nil {
				t.Fatalf("round %d: two concurrent micro-batches: %v", round, err)
			}
		}
	}
}

// TestTextReadAgainKeepsTheTimeOfItsLatestReading: a paper's stored text read again later,
// unchanged (a follow's overlap), then a message of another version read in between, handled
// after it (redelivered, or taken by a slower worker): the store keeps the text read last, as
// it does when the messages are handled in the order they were read. The re-reading left the
// stored text's time at its first reading, and the other version replaced it and had its
// outputs bought, to be replaced and bought again at the next poll.
func TestTextReadAgainKeepsTheTimeOfItsLatestReading(t *testing.T) {
	t.Parallel()
	s := setup(t)
	now := time.Now()
	a := abstracts(1)[0]
	b := a
	b.Abstract = "Another version of the abstract."
	a.TextAt = now.Add(-3 * time.Hour)
	upsert(t, s, []paper.Abstract{a}, store.Work{})
	var updated time.Time
	if err := s.Pool().QueryRow(t.Context(), "SELECT updated_at FROM papers").Scan(&updated); err != nil {
		t.Fatal(err)
	}
	a.TextAt = now.Add(-time.Hour) // read again, after b was
	if p := upsert(t, s, []paper.Abstract{a}, store.Work{Model: testModel, PromptVersion: testPrompt})[0]; p.Changed || p.New || !p.NeedTLDR {
		t.Errorf("the text read again: %+v, want unchanged, its TL;DR still needed", p)
	}
	b.TextAt = now.Add(-2 * time.Hour)
	if p := upsert(t, s, []paper.Abstract{b}, store.Work{Model: testModel, PromptVersion: testPrompt})[0]; p.Changed || p.NeedTLDR || p.ContentHash != a.ContentHash() {
		t.Errorf("the version read before the latest reading, handled after it: %+v, want nothing changed or needed", p)
	}
	if rec, err := s.Paper(t.Context(), a.ID); err != nil || rec.Abstract.Abstract != a.Abstract {
		t.Errorf("stored %q (%v), want the text read last, %q", rec.Abstract.Abstract, err, a.Abstract)
	}
	var textAt, updatedNow time.Time
	if err := s.Pool().QueryRow(t.Context(), "SELECT text_at, updated_at FROM papers").Scan(&textAt, &updatedNow); err != nil {
		t.Fatal(err)
	}
	if !textAt.Equal(a.TextAt.Truncate(time.Microsecond)) || !updatedNow.Equal(updated) {
		t.Errorf("text_at %v, updated_at %v; want the latest reading's %v, updated_at unchanged %v (nothing changed)", textAt, updatedNow, a.TextAt, updated)
	}
}

// A metadata correction of the stored text that was read before it (a redelivered feed record
// with the authors the file lacked) merges its metadata but keeps the text's later date: dated
// back, the stored text would lose to a redelivered version read in between, which would
// replace it.
func TestMetadataOfAnEarlierReadingKeepsTheTextsDate(t *testing.T) {
	t.Parallel()
	s := setup(t)
	now := time.Now()
	a := abstracts(1)[0]
	a.TextAt = now.Add(-time.Hour)
	upsert(t, s, []paper.Abstract{a}, store.Work{})
	early := a
	early.Authors = []string{"A. Corrected"}
	early.TextAt = now.Add(-3 * time.Hour)
	upsert(t, s, []paper.Abstract{early}, store.Work{})
	if rec, err := s.Paper(t.Context(), a.ID); err != nil || !slices.Equal(rec.Authors, early.Authors) {
		t.Fatalf("authors %q (%v), want the correction's %q merged", rec.Authors, err, early.Authors)
	}
	b := a
	b.Abstract = "A version of the abstract read between the two readings of the stored one."
	b.TextAt = now.Add(-2 * time.Hour)
	if p := upsert(t, s, []paper.Abstract{b}, store.Work{Model: testModel, PromptVersion: testPrompt})[0]; p.Changed || p.NeedTLDR || p.ContentHash != a.ContentHash() {
		t.Errorf("a version read before the stored text, handled after a metadata correction of it: %+v, want nothing changed or needed", p)
	}
	if rec, err := s.Paper(t.Context(), a.ID); err != nil || rec.Abstract.Abstract != a.Abstract {
		t.Errorf("stored %q (%v), want the text read last, %q", rec.Abstract.Abstract, err, a.Abstract)
	}
}

// A result repeated in one call is saved once, the last one winning, as SaveSummaries and
// SaveEmbeddings promise; and a later result of the same text replaces the stored one (a
// vector made again, or loaded again corrected, is not kept out by the one stored before).
func TestTheLastResultOfATextIsTheOneStored(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	a := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{a}, store.Work{})

	n, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(a, testModel, testPrompt, "The first TL;DR."), summaryOf(a, testModel, testPrompt, "The second TL;DR.")})
	if err != nil || n != 1 {
		t.Fatalf("SaveSummaries of one summary twice = %d, %v; want 1 saved", n, err)
	}
	if rec, err := s.Paper(ctx, a.ID); err != nil || rec.TLDR == nil || rec.TLDR.Text != "The second TL;DR." {
		t.Errorf("stored TL;DR %+v (%v), want the last one given", rec.TLDR, err)
	}
	// The same text again, cleaned this time: what is stored says so.
	cleaned := summaryOf(a, testModel, testPrompt, "The second TL;DR.")
	cleaned.Validation = paper.ValidCleaned
	if n, err := s.SaveSummaries(ctx, []paper.Summary{cleaned}); err != nil || n != 1 {
		t.Fatalf("SaveSummaries of the same text, cleaned = %d, %v; want 1 saved", n, err)
	}
	if rec, err := s.Paper(ctx, a.ID); err != nil || rec.TLDR == nil || rec.TLDR.Validation != paper.ValidCleaned {
		t.Errorf("stored TL;DR %+v (%v), want its validation %q", rec.TLDR, err, paper.ValidCleaned)
	}

	first := func() float32 {
		t.Helper()
		var x float32
		if err := s.Pool().QueryRow(ctx, "SELECT (embedding::real[])[1] FROM embeddings WHERE space_id = $1 AND paper_id = $2", sp.ID, a.ID).Scan(&x); err != nil {
			t.Fatal(err)
		}
		return x
	}
	n, err = s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(a, 0.25, 1, 0), embeddingOf(a, 0.5, 1, 0)})
	if err != nil || n != 1 {
		t.Fatalf("SaveEmbeddings of one paper twice = %d, %v; want 1 saved", n, err)
	}
	if x := first(); x != 0.5 {
		t.Errorf("stored vector starts with %v, want 0.5, the last one given", x)
	}
	if n, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(a, 0.75, 1, 0)}); err != nil || n != 1 {
		t.Fatalf("SaveEmbeddings of another vector of the text = %d, %v; want 1 saved", n, err)
	}
	if x := first(); x != 0.75 {
		t.Errorf("after saving another vector of the same text, the stored one starts with %v, want 0.75", x)
	}
	if res, err := s.LoadEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(a, 0.125, 1, 0)}); err != nil || res.Loaded != 1 {
		t.Fatalf("LoadEmbeddings of another vector of the text = %+v, %v; want 1 loaded", res, err)
	}
	if x := first(); x != 0.125 {
		t.Errorf("after loading another vector of the same text, the stored one starts with %v, want 0.125", x)
	}
}

// Results of two texts of one paper in one call are not repeats: the current text's is stored
// wherever it stands, also before the older text's (a worker's group commit holding both, the
// older one answered last), which is skipped as stale.
func TestTheCurrentTextsResultIsStoredBeforeAnOlderOnesInOneCall(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	old := abstracts(1)[0]
	cur := old
	cur.Abstract += " Corrected."
	upsert(t, s, []paper.Abstract{old}, store.Work{})
	upsert(t, s, []paper.Abstract{cur}, store.Work{})

	n, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(cur, testModel, testPrompt, "The current TL;DR."), summaryOf(old, testModel, testPrompt, "The old TL;DR.")})
	if err != nil || n != 1 {
		t.Fatalf("SaveSummaries of the current and an old text = %d, %v; want 1 saved", n, err)
	}
	if rec, err := s.Paper(ctx, cur.ID); err != nil || rec.TLDR == nil || rec.TLDR.Text != "The current TL;DR." {
		t.Errorf("stored TL;DR %+v (%v), want the current text's", rec.TLDR, err)
	}
	n, err = s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(cur, 0.5, 1, 0), embeddingOf(old, 0.25, 1, 0)})
	if err != nil || n != 1 {
		t.Fatalf("SaveEmbeddings of the current and an old text = %d, %v; want 1 saved", n, err)
	}
	var hash string
	if err := s.Pool().QueryRow(ctx, "SELECT content_hash FROM embeddings WHERE space_id = $1 AND paper_id = $2", sp.ID, cur.ID).Scan(&hash); err != nil || hash != cur.ContentHash() {
		t.Errorf("stored vector of text %q (%v), want the current text's %q", hash, err, cur.ContentHash())
	}
}

// A load (import-embeddings) of a file holding vectors of two texts of one paper, the current
// text's first (`paperpipe embed` of a file with both versions of a paper, newest first), loads
// the current one: the stale one after it took its place and was skipped as stale, and the
// paper was left without a vector the file had.
func TestALoadOfTwoTextsOfAPaperLoadsTheCurrentOnesVector(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	old := abstracts(1)[0]
	cur := old
	cur.Abstract += " Corrected."
	upsert(t, s, []paper.Abstract{old}, store.Work{})
	upsert(t, s, []paper.Abstract{cur}, store.Work{})

	res, err := s.LoadEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(cur, 0.5, 1, 0), embeddingOf(old, 0.25, 1, 0)})
	if err != nil || res.Loaded != 1 {
		t.Fatalf("LoadEmbeddings of the current and an old text = %+v, %v; want 1 loaded", res, err)
	}
	var x float32
	if err := s.Pool().QueryRow(ctx, "SELECT (embedding::real[])[1] FROM embeddings WHERE space_id = $1 AND paper_id = $2", sp.ID, cur.ID).Scan(&x); err != nil || x != 0.5 {
		t.Errorf("stored vector starts with %v (%v), want 0.5, the current text's", x, err)
	}
}

// TestReadingPapersAgainRewritesNoIndex: papers read again unchanged (a re-ingest, a follow's
// overlap) have the time of their latest reading recorded, and that update must be a HOT one,
// which stays on the row's page and writes no index entry: on full pages every re-read paper's
// new version went to another page, with new entries in all five indexes of papers (both GIN
// indexes among them), and the table and its indexes doubled at each pass. A row that stays
// on its page is a HOT update here, since text_at is in no index.
func TestReadingPapersAgainRewritesNoIndex(t *testing.T) {
	t.Parallel()
	s := setup(t)
	sample := sampledata.Papers(t)
	var papers []paper.Abstract
	for v := range 6 { // ~650 papers of the sample's real sizes: rows fill their pages as they do in an archive
		for i, a := range sample {
			a.ID = fmt.Sprintf("arxiv:2601.%05d", v*len(sample)+i)
			a.Abstract += fmt.Sprintf(" Variant %d.", v)
			papers = append(papers, a)
		}
	}
	read := func(at time.Time) (changed int) {
		for i := 0; i < len(papers); i += 64 { // in batches, as a worker upserts them
			batch := slices.Clone(papers[i:min(i+64, len(papers))])
			for j := range batch {
				batch[j].TextAt = at
			}
			for _, p := range upsert(t, s, batch, store.Work{}) {
				if p.Changed {
					changed++
				}
			}
		}
		return changed
	}
	blocks := func() map[string]string {
		rows, err := s.Pool().Query(t.Context(), "SELECT id, split_part(ctid::text, ',', 1) FROM papers")
		if err != nil {
			t.Fatal(err)
		}
		m, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (kv [2]string, err error) {
			err = r.Scan(&kv[0], &kv[1])
			return kv, err
		})
		if err != nil {
			t.Fatal(err)
		}
		out := make(map[string]string, len(m))
		for _, kv := range m {
			out[kv[0]] = kv[1]
		}
		return out
	}
	now := time.Now()
	read(now.Add(-3 * time.Hour))
	// One pass, a re-ingest of the whole archive. It is the first new version of each row, so
	// it needs only the room the fillfactor left, not the pruning of versions left before (which
	// another session's open snapshot — a parallel test, a pg_dump — would hold up). Versions
	// written in one transaction cannot make room for each other, so rows sharing a page in one
	// batch do not all fit: 41% moved in this test at the migration's 65% (later passes settle,
	// 17%, 8%, 3%, where nothing holds old versions); on full pages 97% moved, every index of
	// papers getting entries for them and the table growing by their size.
	before := blocks()
	if n := read(now.Add(-2 * time.Hour)); n != 0 {
		t.Fatalf("%d papers read again unchanged reported changed", n)
	}
	moved := 0
	for id, b := range blocks() {
		if before[id] != b {
			moved++
		}
	}
	if moved > len(papers)/2 {
		t.Errorf("%d of %d papers read again moved to another page (not HOT updates: every index of papers got entries for them), want at most half",
			moved, len(papers))
	}
}

// A paper and a TL;DR moved from another archive keep the times that archive gave them only
// within 1970 and now (README: created_at "within 1970 and now"): an export edited by hand, or
// written on a machine whose clock ran ahead, would otherwise put its papers above every paper
// stored here for years, and its TL;DRs before any written here, in every list.
func TestMovedTimesAreHeldWithin1970AndNow(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	ahead, before1970, kept := time.Now().AddDate(10, 0, 0), time.Date(1900, 1, 2, 0, 0, 0, 0, time.UTC), time.Date(2020, 5, 6, 7, 8, 9, 0, time.UTC)
	papers[0].CreatedAt, papers[1].CreatedAt, papers[2].CreatedAt = ahead, before1970, kept
	upsert(t, s, papers, store.Work{})
	stored := time.Now()
	for i, want := range []func(time.Time) bool{
		func(at time.Time) bool { return !at.After(stored) },
		func(at time.Time) bool { return at.Equal(time.Unix(0, 0)) },
		func(at time.Time) bool { return at.Equal(kept) },
	} {
		rec, err := s.Paper(ctx, papers[i].ID)
		if err != nil || !want(rec.CreatedAt) {
			t.Errorf("paper moved with created_at %v stored with %v (%v); want it within 1970 and now (%v)", papers[i].CreatedAt, rec.CreatedAt, err, stored)
		}
	}

	sm := summaryOf(papers[0], testModel, testPrompt, "A TL;DR written in the future.")
	sm.WrittenAt = ahead
	if saved, _, err := s.ImportSummaries(ctx, []paper.Summary{sm}); err != nil || saved != 1 {
		t.Fatalf("ImportSummaries = %d, %v; want 1 saved", saved, err)
	}
	var at time.Time
	if err := s.Pool().QueryRow(ctx, "SELECT created_at FROM tldrs WHERE paper_id = $1", papers[0].ID).Scan(&at); err != nil {
		t.Fatal(err)
	}
	if at.After(time.Now()) {
		t.Errorf("TL;DR moved as written at %v stored as written at %v, after now", ahead, at)
	}
}
