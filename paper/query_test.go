package paper

import (
	"strings"
	"testing"
)

// ParseQuery reads the syntax as PostgreSQL's websearch_to_tsquery does; the expected
// exclusions were checked against it (PostgreSQL 17).
func TestParseQuery(t *testing.T) {
	for _, c := range []struct{ q, text, excluded string }{
		{"sparse expert routing", "sparse expert routing", ""},
		{"quokka -marsupials", "quokka", "marsupials"},
		{`-"red  kangaroo" wombat`, "wombat", `"red kangaroo"`},
		{`"mixture of experts" or moe`, "mixture of experts moe", ""},
		{"cats OR dogs", "cats dogs", ""},
		{"state-of-the-art -foo-bar", "state-of-the-art", "foo-bar"},
		{`"a b"-c`, "a b", "c"},
		{"foo(-bar)", "foo", "bar"},
		// A dash with a space after it is punctuation, not an exclusion: a title with " - " or
		// " -- " in it, pasted, looks for its own words (websearch_to_tsquery alone reads
		// "a - b" as !'b'; the store hands it the text without such dashes).
		{"a - b", "a b", ""},
		{"Evaluations - LLMs are Like a Chameleon", "Evaluations LLMs are Like a Chameleon", ""},
		{"Not Months -- Your Model", "Not Months Your Model", ""},
		{"a -\u00a0b -", "a b", ""},
		{"a - -b", "a", "b"},
		{`a - "b c"`, "a b c", ""},
		{"pre- and post-training", "pre- and post-training", ""}, // a word's own dash stays
		{"--foo bar", "foo bar", ""},                             // !!'foo'
		{"-x -y", "", "x or y"},
		{`unclosed "quote -here`, "unclosed quote -here", ""},
		{"", "", ""},
		// An empty phrase is no phrase: it neither adds an empty word to the text nor
		// swallows the rest of the query as a phrase, and -"" excludes nothing.
		{`a "" b -""`, "a b", ""},
		{`"  " x`, "x", ""},
		{"深度学习 -量子", "深度学习", "量子"},
		// Multi-byte spaces (pasted from a PDF, typed in Japanese) separate words like a space;
		// read a byte at a time, one made ParseQuery loop for ever.
		{"graph\u00a0neural networks", "graph neural networks", ""},
		{"\u3000quokka\u3000-wombat\u2003", "quokka", "wombat"},
		{"bad \xff\xfe utf-8", "bad \xff\xfe utf-8", ""},
	} {
		got := ParseQuery(c.q)
		if got.Text != c.text || got.Excluded != c.excluded {
			t.Errorf("ParseQuery(%q) = %+v, want text %q, excluded %q", c.q, got, c.text, c.excluded)
		}
	}
}

// FuzzParseQuery: whatever the text, ParseQuery returns, and what it returns has no quote in
// its text and names no excluded word that was not in the query.
func FuzzParseQuery(f *testing.F) {
	for _, q := range []string{"a -b", `"x y" or -"z w"`, "graph\u00a0neural", "\u3000-\u3000", "\xff-\xfe\"", "a(-b)|c"} {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, q string) {
		got := ParseQuery(q)
		if strings.Contains(got.Text, `"`) {
			t.Errorf("ParseQuery(%q).Text = %q holds a quote", q, got.Text)
		}
		for _, w := range strings.Split(got.Excluded, " or ") {
			if w = strings.Trim(w, `"`); w != "" && !strings.Contains(strings.Join(strings.Fields(q), " "), w) {
				t.Errorf("ParseQuery(%q).Excluded names %q, not in the query", q, w)
			}
		}
	})
}
