package main

import (
	"strings"
	"testing"
)

// A fitted model's parts are gathered in order: a part without those before it, or a model
// whose last parts the file lacks, is refused, saying so, and nothing is stored.
func TestModelPartsMissingAreRefused(t *testing.T) {
	t.Parallel()
	const name = "paperpipe-offline-tfidf-0123456789ab"
	part := func(i, n int) modelLine {
		return modelLine{Record: recordOfflineModel, Name: name, Part: i, Parts: n, Data: []byte("xyz")}
	}
	r := &modelRestorer{} // no store: nothing here is whole
	if p, err := r.add(t.Context(), 1, part(2, 3)); err != nil || !strings.Contains(p, "without the parts before it") {
		t.Errorf("part 2 first: %q, %v", p, err)
	}
	if p, _ := r.add(t.Context(), 2, part(1, 3)); p != "" {
		t.Errorf("part 1: %q", p)
	}
	if p, _ := r.add(t.Context(), 3, part(3, 3)); !strings.Contains(p, "without the parts before it") {
		t.Errorf("part 3 after part 1: %q", p)
	}
	r.add(t.Context(), 4, part(1, 3))
	r.add(t.Context(), 5, part(2, 3))
	if p := r.unfinished(); !strings.Contains(p, "2 of its 3 parts, from line 4: the file is cut short") {
		t.Errorf("a model cut short: %q", p)
	}
	if p, _ := r.add(t.Context(), 6, modelLine{Record: recordOfflineModel, Name: "gpt-4o", Part: 1, Parts: 1, Data: []byte("x")}); !strings.Contains(p, "not the name of a fitted offline model") {
		t.Errorf("another name: %q", p)
	}
	if len(r.Restored) != 0 {
		t.Errorf("restored %v", r.Restored)
	}
}
