package store_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// invisibles are the characters that show nothing and that a text copied from a PDF or a web
// page holds inside its words: the soft hyphen, the zero-width space, non-joiner and joiner,
// the word joiner and the zero-width no-break space (a byte order mark inside a text).
var invisibles = []rune{'\u00ad', '\u200b', '\u200c', '\u200d', '\u2060', '\ufeff'}

// A word written with an invisible character inside it is the word a reader sees: a paper that
// stores "Co\u00adoperation" (a soft hyphen from a PDF's line break, kept as it came: the
// content hash is of the text as stored) is found by cooperation, and a query pasted with the
// character finds the paper written without it, in keyword search, the listing's text filter
// and an exclusion. The index read "co\u00adoperation" as the word co-oper (unaccent makes a soft
// hyphen a hyphen), and the other characters as letters of the word, so neither was found.
func TestKeywordSearchReadsWordsAcrossInvisibleCharacters(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	plain := topic(1, "Cooperation in multiagent reinforcement learning", "Agents learn cooperation from sparse rewards.")
	papers := []paper.Abstract{plain, topic(2, "Kangaroo locomotion", "Hopping is efficient at speed.")}
	for i, r := range invisibles {
		papers = append(papers, topic(10+i, "Co"+string(r)+"operation in multi"+string(r)+"agent reinforcement learning",
			"Agents learn co"+string(r)+"operation from sparse rewards."))
	}
	upsert(t, s, papers, store.Work{})
	var all []string
	for _, p := range papers {
		if p.ID != papers[1].ID {
			all = append(all, p.ID)
		}
	}
	slices.Sort(all)
	queries := []string{"cooperation", "multiagent", `"cooperation from sparse rewards"`}
	for _, r := range invisibles {
		queries = append(queries, "co"+string(r)+"operation", "Multi"+string(r)+"agent")
	}
	for _, q := range queries {
		hits, err := s.KeywordSearch(ctx, q, 20)
		if err != nil {
			t.Fatalf("KeywordSearch(%+q): %v", q, err)
		}
		got := hitIDs(hits)
		slices.Sort(got)
		if !slices.Equal(got, all) {
			t.Errorf("KeywordSearch(%+q) = %v, want %v", q, got, all)
		}
		recs, _, err := s.ListFiltered(ctx, store.ListFilter{Text: q}, 20, nil)
		if err != nil {
			t.Fatalf("ListFiltered(%+q): %v", q, err)
		}
		var listed []string
		for _, r := range recs {
			listed = append(listed, r.ID)
		}
		slices.Sort(listed)
		if !slices.Equal(listed, all) {
			t.Errorf("ListFiltered(text %+q) = %v, want %v", q, listed, all)
		}
	}
	for _, q := range []string{"speed -cooperation", "speed -co\u00adoperation", "kangaroo or -cooperation"} {
		hits, err := s.KeywordSearch(ctx, q, 20)
		if err != nil || !slices.Equal(hitIDs(hits), []string{papers[1].ID}) {
			t.Errorf("KeywordSearch(%+q) = %v, %v; want only %s", q, hitIDs(hits), err, papers[1].ID)
		}
	}
}

// A title fragment (show, related) is read across the same characters: "Cooperation in multi"
// finds a paper titled "Co\u00adoperation in multi…", which it did not (unaccent made the soft
// hyphen a hyphen, and the others were characters of the title to match).
func TestResolveReadsATitleAcrossInvisibleCharacters(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	for i, r := range invisibles {
		p := topic(i+1, fmt.Sprintf("Co%[1]coperation in multi%[1]cagent learning %d", r, i), "Agents learn together.")
		upsert(t, s, []paper.Abstract{p}, store.Work{})
		for _, ref := range []string{fmt.Sprintf("Cooperation in multiagent learning %d", i), fmt.Sprintf("co%coperation in multiagent learning %d", r, i)} {
			if id, err := s.Resolve(ctx, ref); err != nil || id != p.ID {
				t.Errorf("Resolve(%+q) = %q, %v; want %s (titled %+q)", ref, id, err, p.ID, p.Title)
			}
		}
	}
}
