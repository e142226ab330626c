package paper

import "testing"

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
		{"a - b", "a", "b"},          // websearch_to_tsquery: !'b'
		{"--foo bar", "foo bar", ""}, // !!'foo'
		{"-x -y", "", "x or y"},
		{`unclosed "quote -here`, "unclosed quote -here", ""},
		{"", "", ""},
		{"深度学习 -量子", "深度学习", "量子"},
	} {
		got := ParseQuery(c.q)
		if got.Text != c.text || got.Excluded != c.excluded {
			t.Errorf("ParseQuery(%q) = %+v, want text %q, excluded %q", c.q, got, c.text, c.excluded)
		}
	}
}
