package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/store"
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

// A part line out of bounds is refused before anything is gathered: more parts than an
// export writes (a file claiming thousands would be held in memory), a part number past its
// count, a part larger than an export writes; a model whose part count changes between its
// lines is refused; and a new model's first part while another's parts are unfinished says
// the earlier one was cut short. None reads the store.
func TestModelPartLinesOutOfBoundsAreRefused(t *testing.T) {
	t.Parallel()
	const name = "paperpipe-offline-tfidf-0123456789ab"
	for _, c := range []struct {
		l    modelLine
		want string
	}{
		{modelLine{Part: 1, Parts: maxModelParts + 1, Data: []byte("x")}, "part 1 of 257, want 1 to 256 parts"},
		{modelLine{Part: 4, Parts: 3, Data: []byte("x")}, "part 4 of 3, want 1 to 256 parts"},
		{modelLine{Part: 1, Parts: 2, Data: make([]byte, modelPartBytes+1)}, "part 1 holds 1048577 bytes, want 1 to 1048576"},
	} {
		c.l.Record, c.l.Name = recordOfflineModel, name
		r := &modelRestorer{}
		if p, err := r.add(t.Context(), 1, c.l); err != nil || !strings.Contains(p, c.want) {
			t.Errorf("part %d of %d, %d bytes: %q, %v; want %q", c.l.Part, c.l.Parts, len(c.l.Data), p, err, c.want)
		}
	}
	r := &modelRestorer{}
	line := func(part, parts int) modelLine {
		return modelLine{Record: recordOfflineModel, Name: name, Part: part, Parts: parts, Data: []byte("xyz")}
	}
	r.add(t.Context(), 1, line(1, 3))
	if p, _ := r.add(t.Context(), 2, line(2, 4)); !strings.Contains(p, "part 2 of 4 comes without the parts before it") {
		t.Errorf("part 2 of 4 after part 1 of 3: %q", p)
	}
	r.add(t.Context(), 3, line(1, 3))
	if p, _ := r.add(t.Context(), 4, line(1, 2)); !strings.Contains(p, "1 of its 3 parts, from line 3: the file is cut short") {
		t.Errorf("a new model's part 1 after part 1 of 3: %q", p)
	}
}

// A model whose data, gathered whole, is of another model than its lines name (its data
// changed since it was exported) is refused, not stored under the name its lines give.
func TestModelOfAnotherNameIsRefused(t *testing.T) {
	t.Parallel()
	m, data, err := embed.Fit([]string{"graph neural networks for molecules", "sparse mixture of experts language models"}, embed.MinFittedDimensions)
	if err != nil {
		t.Fatal(err)
	}
	other := "paperpipe-offline-tfidf-0123456789ab"
	if m.Name() == other {
		t.Fatal("the fitted model has the other name")
	}
	r := &modelRestorer{} // no store: a model stored would fail on it
	if p, err := r.add(t.Context(), 1, modelLine{Record: recordOfflineModel, Name: other, Part: 1, Parts: 1, Data: data}); err != nil ||
		!strings.Contains(p, "its data is of another model, "+m.Name()) {
		t.Errorf("a model's data under another name: %q, %v", p, err)
	}
}

// An export cuts a model into parts of modelPartBytes, the last one shorter, none empty: data
// of exactly two parts' length is two parts.
func TestModelLinesCutTheDataInFullParts(t *testing.T) {
	t.Parallel()
	data := bytes.Repeat([]byte("ab"), modelPartBytes)
	lines := modelLines(store.OfflineModel{Name: "paperpipe-offline-tfidf-0123456789ab", Data: data})
	if len(lines) != 2 || lines[1].Parts != 2 || len(lines[0].Data) != modelPartBytes || len(lines[1].Data) != modelPartBytes {
		t.Errorf("%d bytes: %d lines; want 2 of %d bytes", len(data), len(lines), modelPartBytes)
	}
	lines = modelLines(store.OfflineModel{Name: "paperpipe-offline-tfidf-0123456789ab", Data: data[:modelPartBytes+1]})
	if len(lines) != 2 || len(lines[1].Data) != 1 {
		t.Errorf("%d bytes: %d lines; want 2, the last of 1 byte", modelPartBytes+1, len(lines))
	}
}
