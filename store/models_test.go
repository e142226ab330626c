package store_test

import (
	"bytes"
	"errors"
	"slices"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

func TestOfflineModelSaveLoad(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	if _, err := s.OfflineModel(ctx, "paperpipe-offline-tfidf-000000000000"); !errors.Is(err, paper.ErrNotFound) {
		t.Fatalf("OfflineModel of an unknown name: %v, want ErrNotFound", err)
	}
	m := store.OfflineModel{Name: "paperpipe-offline-tfidf-0123456789ab", Documents: 3, Terms: 40, Components: 3,
		Dimensions: 768, Data: []byte{0x1f, 0x8b, 0, 1, 2, 3}}
	if err := s.SaveOfflineModel(ctx, m); err != nil {
		t.Fatal(err)
	}
	// The name is a content hash: saving it again is a no-op, not an error or a second row.
	if err := s.SaveOfflineModel(ctx, m); err != nil {
		t.Fatalf("second save: %v", err)
	}
	got, err := s.OfflineModel(ctx, m.Name)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Data, m.Data) || got.Documents != 3 || got.Terms != 40 || got.Components != 3 ||
		got.Dimensions != 768 || got.CreatedAt.IsZero() {
		t.Errorf("loaded %+v, saved %+v", got, m)
	}
	if err := s.SaveOfflineModel(ctx, store.OfflineModel{Name: "x"}); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("saving a model without data: %v, want ErrInvalid", err)
	}
}

func TestFitSampleIsAStableSubsetOfTheArchive(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	upsert(t, s, abstracts(50), store.Work{})
	all, err := s.FitSample(ctx, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 50 {
		t.Fatalf("FitSample(100) of 50 papers gave %d", len(all))
	}
	for _, a := range all {
		if a.Title == "" || a.Abstract == "" {
			t.Fatalf("sampled paper without text: %+v", a)
		}
	}
	ids := func(as []paper.Abstract) []string {
		out := make([]string, len(as))
		for i, a := range as {
			out[i] = a.ID
		}
		return out
	}
	some, err := s.FitSample(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	again, err := s.FitSample(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(some) != 10 || !slices.Equal(ids(some), ids(again)) {
		t.Fatalf("FitSample(10) twice: %v then %v", ids(some), ids(again))
	}
	// Not simply the first ids: the sample spreads over the archive.
	if slices.Equal(ids(some), ids(abstracts(10))) {
		t.Errorf("FitSample(10) = the 10 lowest ids %v, want a hash-ordered sample", ids(some))
	}
	if _, err := s.FitSample(ctx, 0); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("FitSample(0): %v, want ErrInvalid", err)
	}
}

// TestDropSpaceRemovesItsFittedModel: dropping the space of a fitted offline model removes the
// model (offline_models) with it, when no other space is of that model: every refit of a grown
// archive stores a new model of up to a few MB (about 1 MB per 1,000 fitted papers), whose
// space is dropped once the next one is active, and the models stayed for good. A model another
// space still uses, and one stored without a space (`fit --fill=false`), stay.
func TestDropSpaceRemovesItsFittedModel(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	model := func(name string) {
		t.Helper()
		if err := s.SaveOfflineModel(ctx, store.OfflineModel{Name: name, Documents: 3, Terms: 40, Components: 3,
			Dimensions: 3, Data: []byte{0x1f, 0x8b, 0, 1}}); err != nil {
			t.Fatal(err)
		}
	}
	const old, shared, unfilled = "paperpipe-offline-tfidf-000000000001", "paperpipe-offline-tfidf-000000000002", "paperpipe-offline-tfidf-000000000003"
	for _, m := range []string{old, shared, unfilled} {
		model(m)
	}
	active := space(t, s, "paperpipe-offline-hash", 3)
	oldSp := space(t, s, old, 3)
	sharedSp := space(t, s, shared, 3)
	sharedOther, err := s.EnsureSpace(ctx, paper.Space{Model: shared, Dimensions: 3, Template: "another-template"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Activate(ctx, active.ID); err != nil {
		t.Fatal(err)
	}
	for _, id := range []int64{oldSp.ID, sharedSp.ID} {
		if err := s.DropSpace(ctx, id, store.DropOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.OfflineModel(ctx, old); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("the dropped space's model: %v, want it removed (ErrNotFound)", err)
	}
	for _, m := range []string{shared, unfilled} {
		if _, err := s.OfflineModel(ctx, m); err != nil {
			t.Errorf("model %s: %v, want it kept", m, err)
		}
	}
	if err := s.DropSpace(ctx, sharedOther.ID, store.DropOptions{}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.OfflineModel(ctx, shared); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("the model of the last space dropped: %v, want it removed (ErrNotFound)", err)
	}
}
