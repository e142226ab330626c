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
