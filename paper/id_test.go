package paper

import (
	"errors"
	"strings"
	"testing"
)

func TestCanonicalID(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"2401.01234v2", "arxiv:2401.01234"},
		{"2401.01234", "arxiv:2401.01234"},
		{"arXiv:2401.01234v1", "arxiv:2401.01234"},
		{"https://arxiv.org/abs/2401.01234v3", "arxiv:2401.01234"},
		{"http://arxiv.org/pdf/2401.01234v3.pdf", "arxiv:2401.01234"},
		{"https://huggingface.co/papers/2503.11234", "arxiv:2503.11234"},
		{"0704.0001", "arxiv:0704.0001"},
		{"hep-th/9901001", "arxiv:hep-th/9901001"},
		{"hep-th/9901001v2", "arxiv:hep-th/9901001"},
		// The subject class is not part of an old-style identifier (arXiv's identifier scheme).
		{"math.AG/0601001", "arxiv:math/0601001"},
		{"arxiv:math.ag/0601001v1", "arxiv:math/0601001"},
		{"math/0601001", "arxiv:math/0601001"},
		// arXiv's DataCite DOIs, and abstract pages with a query, fragment or final slash.
		{"10.48550/arXiv.2401.01234", "arxiv:2401.01234"},
		{"https://doi.org/10.48550/arXiv.2401.01234", "arxiv:2401.01234"},
		{"doi:10.48550/arxiv.hep-th/9901001", "arxiv:hep-th/9901001"},
		{"https://arxiv.org/abs/2401.01234v2?context=cs", "arxiv:2401.01234"},
		{"https://arxiv.org/abs/2401.01234/", "arxiv:2401.01234"},
		{"https://arxiv.org/abs/2401.01234#S2", "arxiv:2401.01234"},
		// The paper's HTML page, which arXiv links beside the PDF ("HTML (experimental)").
		{"https://arxiv.org/html/2401.01234v2", "arxiv:2401.01234"},
		{"https://arxiv.org/html/2401.01234v1/#S2", "arxiv:2401.01234"},
		// The OAI identifier, which arXiv's announcement feeds (rss.arxiv.org) give as an
		// entry's <id> or an item's <guid>.
		{"oai:arXiv.org:2401.01234v2", "arxiv:2401.01234"},
		{"oai:arxiv.org:hep-th/9901001v3", "arxiv:hep-th/9901001"},
		// ar5iv, arXiv's HTML rendering of a paper (linked from its abstract page).
		{"https://ar5iv.labs.arxiv.org/html/2401.01234", "arxiv:2401.01234"},
		{"https://ar5iv.org/abs/2401.01234v3", "arxiv:2401.01234"},
		{"ar5iv.org/html/2401.01234#S3", "arxiv:2401.01234"},
		{"https://ar5iv.labs.arxiv.org/html/hep-th/9901001", "arxiv:hep-th/9901001"},
		{"10.1000/XYZ.123", "doi:10.1000/xyz.123"},
		{"doi:10.1000/xyz.123", "doi:10.1000/xyz.123"},
		{"https://doi.org/10.1000/XYZ.123", "doi:10.1000/xyz.123"},
		{"  my-lab-42 ", "id:my-lab-42"},
		{"id:my-lab-42", "id:my-lab-42"},
	} {
		got, err := CanonicalID(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("CanonicalID(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"", "   ", "arxiv:notanid", "doi:11.2/x", "oai:arXiv.org:notanid"} {
		if _, err := CanonicalID(bad); !errors.Is(err, ErrInvalid) {
			t.Errorf("CanonicalID(%q) error = %v, want ErrInvalid", bad, err)
		}
	}
}

func TestTitleIDIgnoresCaseAndPunctuation(t *testing.T) {
	t.Parallel()
	a := TitleID("Demons in the Detail: On Implementing Load Balancing Loss")
	b := TitleID("  demons in the detail — on implementing load-balancing loss ")
	if a == b {
		t.Fatalf("hyphen joins words, ids should differ only if words differ: %s", a)
	}
	c := TitleID("DEMONS in the   detail: on implementing load balancing loss.")
	if a != c {
		t.Errorf("TitleID differs for the same title: %s vs %s", a, c)
	}
	if len(a) != len("title:")+16 {
		t.Errorf("TitleID length = %d", len(a))
	}
	// Typography is not the title: one paper from two sources that set it differently.
	for _, pair := range [][2]string{
		{"Don't Stop Pretraining", "Don’t Stop Pretraining"},
		{`"Quoted" Words in Titles`, "“Quoted” Words in Titles"},
		{"Models - a Survey", "Models — a Survey"},
		{"ＧＰＴ-４ Technical Report", "GPT-4 Technical Report"},
		{"Café au Lait", "Café au Lait"},
	} {
		if TitleID(pair[0]) != TitleID(pair[1]) {
			t.Errorf("TitleID(%q) != TitleID(%q)", pair[0], pair[1])
		}
	}
	for _, pair := range [][2]string{{"深度学习", "机器学习"}, {"Café", "Cafe"}, {"हिंदी", "हद"}} {
		if TitleID(pair[0]) == TitleID(pair[1]) {
			t.Errorf("TitleID(%q) == TitleID(%q): different titles, one id", pair[0], pair[1])
		}
	}
}

// Only typography is folded: a symbol, or punctuation inside a word, is part of the title, and
// two titles differing in one are two papers (one id made the second replace the first).
func TestTitleIDKeepsSymbolsAndPunctuationInsideWords(t *testing.T) {
	t.Parallel()
	for _, pair := range [][2]string{
		{"Runtime Analysis of the (1+1) EA on OneMax", "Runtime Analysis of the (1,1) EA on OneMax"},
		{"A Survey of C++ Compilers", "A Survey of C# Compilers"},
		{"A Survey of C++ Compilers", "A Survey of C Compilers"},
		{"Solving x^2 = 2 with Transformers", "Solving x/2 = 2 with Transformers"},
		{"Solving x^2 = 2 with Transformers", "Solving x^2 2 with Transformers"},
		{"R&D Pipelines", "RD Pipelines"},
		{"GPT-3.5 Evaluated", "GPT-35 Evaluated"},
		{"Scaling to 1,000 GPUs", "Scaling to 1000 GPUs"},
		{"Learning at -40 Degrees", "Learning at 40 Degrees"},
		{"a < b Orders", "a > b Orders"},
	} {
		if TitleID(pair[0]) == TitleID(pair[1]) {
			t.Errorf("TitleID(%q) == TitleID(%q): two papers, one id", pair[0], pair[1])
		}
	}
	// Typography around them still folds.
	for _, pair := range [][2]string{
		{"Runtime Analysis of the (1+1) EA: OneMax", "runtime analysis of the (1+1) EA — OneMax."},
		{"Is C++ Enough? Yes!", "“Is C++ Enough?” Yes"},
		{"`Quoted' Words, Primes′ and Semicolons; Too", "‘Quoted’ Words Primes and Semicolons Too"},
		{"Learning at -40 Degrees", "Learning at −40 Degrees"},
		{"Demons in the Detail : On Load Balancing", "Demons in the Detail: On Load Balancing"},
		{"Self‑Attention (Soft\u00adHyphen)", "Self-Attention (SoftHyphen)"},
	} {
		if TitleID(pair[0]) != TitleID(pair[1]) {
			t.Errorf("TitleID(%q) != TitleID(%q)", pair[0], pair[1])
		}
	}
}

func TestContentHashFoldsWhitespace(t *testing.T) {
	t.Parallel()
	a := Abstract{Title: "A  title", Abstract: "Line one\nline two."}
	b := Abstract{Title: "A title ", Abstract: " Line one  line two."}
	if a.ContentHash() != b.ContentHash() {
		t.Error("re-wrapped text should hash the same")
	}
	c := Abstract{Title: "A title", Abstract: "Line one line two!"}
	if a.ContentHash() == c.ContentHash() {
		t.Error("changed text should hash differently")
	}
	// The title/abstract boundary matters.
	d := Abstract{Title: "A", Abstract: "title Line one line two."}
	if a.ContentHash() == d.ContentHash() {
		t.Error("moving words between title and abstract should change the hash")
	}
	// Even when title and abstract, joined, read the same: the hash is of the pair.
	e, f := Abstract{Title: "Graph", Abstract: "networks"}, Abstract{Title: "Graphnet", Abstract: "works"}
	if e.ContentHash() == f.ContentHash() {
		t.Error("moving the title/abstract boundary inside a word should change the hash")
	}
}

// An id cannot hold a control or format character: it would print as more than one line, or
// hide or reorder text on a terminal, and "id:a\nb" is the message id "id:a b" in a NATS
// header. The message quotes the id escaped; white space around it is trimmed as before.
func TestCanonicalIDRefusesControlAndFormatCharacters(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"id:a\nb":              `id "id:a\nb" holds U+000A`,
		"a\tb":                 `id "a\tb" holds U+0009`,
		"x\x1b]0;PWNED\a":      `id "x\x1b]0;PWNED\a" holds U+001B`,
		"id:a\u0085b":          `id "id:a\u0085b" holds U+0085`,
		"2401.01234\u202e":     `id "2401.01234\u202e" holds U+202E`,
		"doi:10.1000/a\u200bb": `id "doi:10.1000/a\u200bb" holds U+200B`,
	} {
		_, err := CanonicalID(in)
		if err == nil || !errors.Is(err, ErrInvalid) || !strings.HasPrefix(err.Error(), want+", a control or format character") {
			t.Errorf("CanonicalID(%q): %v; want %s…, wrapping ErrInvalid", in, err, want)
		}
	}
	if got, err := CanonicalID(" id:a b\n"); got != "id:a b" || err != nil {
		t.Errorf(`CanonicalID(" id:a b\n") = %q, %v; want "id:a b"`, got, err)
	}
}
