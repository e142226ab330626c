package chaos

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

func readAll(t *testing.T, r interface {
	Next() (paper.Abstract, error)
}) []paper.Abstract {
	t.Helper()
	var out []paper.Abstract
	for {
		a, err := r.Next()
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, a)
	}
}

func TestCorpusIsDistinctValidAndIngestible(t *testing.T) {
	base := sampledata.Papers(t)
	papers := Corpus(base, 3*len(base)+5, 1)
	ids, texts, hashes := map[string]bool{}, map[string]bool{}, map[string]bool{}
	for _, a := range papers {
		if ids[a.ID] || texts[a.Abstract] || hashes[a.ContentHash()] {
			t.Fatalf("%s repeats an id, text or content hash", a.ID)
		}
		ids[a.ID], texts[a.Abstract], hashes[a.ContentHash()] = true, true, true
		// The fake answers with the first sentence; it must be a valid TL;DR as it is.
		first := summarize.Sentences(a.Abstract)[0]
		if err := summarize.Validate(first, a.Abstract, 30); err != nil {
			t.Errorf("%s opens with %q: %v", a.ID, first, err)
		}
	}
	// The JSONL goes through ingest unchanged.
	var buf bytes.Buffer
	if err := WriteJSONL(&buf, papers); err != nil {
		t.Fatal(err)
	}
	r, err := ingest.NewReader(strings.NewReader(buf.String()), "corpus.jsonl", ingest.Options{Format: ingest.JSONL})
	if err != nil {
		t.Fatal(err)
	}
	back := readAll(t, r)
	if len(back) != len(papers) {
		t.Fatalf("ingest read %d of %d", len(back), len(papers))
	}
	for i := range back {
		if back[i].ID != papers[i].ID || back[i].ContentHash() != papers[i].ContentHash() {
			t.Fatalf("record %d: ingest made %s/%s of %s/%s", i, back[i].ID, back[i].ContentHash(), papers[i].ID, papers[i].ContentHash())
		}
	}
}
