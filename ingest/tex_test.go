package ingest

import (
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// TestArXivTeXAccentsAreLetters: arXiv's metadata writes accented letters as TeX's accent
// commands, and the paper was stored so: "On the Schr\"odinger equation of Poincar\'e", which
// a keyword search for "Schrödinger" misses (PostgreSQL reads "schr" and "oding") and the
// CLI and the web show with its backslashes. The formats read from arXiv (the OAI snapshot,
// the API's Atom feeds, Hugging Face's daily papers) now write them as letters; mathematics
// keeps its TeX, and the text as an earlier release stored it is named by its hash
// (LegacyHash), so that the paper's TL;DR and vector are kept for the new form.
func TestArXivTeXAccentsAreLetters(t *testing.T) {
	t.Parallel()
	const (
		texTitle    = `On the Schr\"odinger equation of Poincar\'e`
		texAbstract = `We follow Erd\H{o}s and \v{S}ilov: the na\"{\i}ve bound $\|\"u\| \le \alpha$ holds for {\o}rsted's fields.`
		title       = "On the Schrödinger equation of Poincaré"
		abstract    = `We follow Erdős and Šilov: the naïve bound $\|\"u\| \le \alpha$ holds for ørsted's fields.`
	)
	legacy := paper.Abstract{Title: texTitle, Abstract: texAbstract}.ContentHash()
	for _, tc := range []struct {
		format Format
		input  string
	}{
		{OAI, `{"id":"2401.00001","title":"On the Schr\\\"odinger equation\n  of Poincar\\'e","abstract":"  We follow Erd\\H{o}s and \\v{S}ilov: the na\\\"{\\i}ve bound $\\|\\\"u\\| \\le \\alpha$ holds for {\\o}rsted's fields.\n","authors":"A. Author","authors_parsed":[["Author","A.",""]],"categories":"math.AP","versions":[{"version":"v1","created":"Mon, 1 Jan 2024 00:00:00 GMT"}],"update_date":"2024-01-02"}` + "\n"},
		{Atom, `<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2401.00001v1</id>` +
			`<published>2024-01-01T00:00:00Z</published><title>On the Schr\"odinger equation` + "\n" + `  of Poincar\'e</title>` +
			`<summary>We follow Erd\H{o}s and \v{S}ilov: the na\"{\i}ve bound $\|\"u\| \le \alpha$ holds for {\o}rsted's fields.</summary>` +
			`<author><name>A. Author</name></author></entry></feed>`},
		{HFDaily, `[{"paper":{"id":"2401.00001","authors":[{"name":"A. Author"}],"publishedAt":"2024-01-01T00:00:00.000Z",` +
			`"title":"On the Schr\\\"odinger equation of Poincar\\'e","summary":"We follow Erd\\H{o}s and \\v{S}ilov: the na\\\"{\\i}ve bound $\\|\\\"u\\| \\le \\alpha$ holds for {\\o}rsted's fields."},"title":"x"}]`},
	} {
		t.Run(string(tc.format), func(t *testing.T) {
			papers, errs, _ := readString(t, tc.input, "in", Options{Format: tc.format})
			if len(papers) != 1 || len(errs) != 0 {
				t.Fatalf("%d papers, errors %v", len(papers), errs)
			}
			p := papers[0]
			if p.Title != title || p.Abstract != abstract {
				t.Errorf("stored\n title    %q\n abstract %q\nwant\n title    %q\n abstract %q", p.Title, p.Abstract, title, abstract)
			}
			if p.LegacyHash != legacy {
				t.Errorf("LegacyHash = %q, want the TeX text's hash %q", p.LegacyHash, legacy)
			}
		})
	}
	// Other JSON lines are the user's own text, taken as it is.
	papers, _, _ := readString(t, `{"id":"x","title":"Schr\\\"odinger","abstract":"`+words(25)+`"}`+"\n", "in", Options{Format: JSONL})
	if len(papers) != 1 || papers[0].Title != `Schr\"odinger` || papers[0].LegacyHash != "" {
		t.Errorf("JSONL paper %+v", papers)
	}
}

func TestDetex(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		`Schr\"odinger`:              "Schrödinger",
		`Schr\"{o}dinger`:            "Schrödinger",
		`Schr{\"o}dinger`:            "Schrödinger",
		`Erd\H{o}s, \v S, \c{c}`:     "Erdős, Š, ç",
		`Stra\ss e, \AA ngstr\"om`:   "Straße, Ångström",
		`Bo\v{z}i\'c and \'\i`:       "Božić and í",
		`$\"o$, $\vec v$, \cite{a}`:  `$\"o$, $\vec v$, \cite{a}`,
		`\(\"o\) \'e \[\u x\] \"a`:   `\(\"o\) é \[\u x\] ä`,
		"costs \\$5 in Gen\\`eve":    `costs \$5 in Genève`,
		`\delta, \left, \omega, \in`: `\delta, \left, \omega, \in`,
		`\'{}e, \"`:                  `\'{}e, \"`,
		"plain text":                 "plain text",
		// \\ is TeX's line break, not a backslash before what follows it.
		`$a \\$ by Schr\"odinger`: `$a \\$ by Schrödinger`,
		`one\\'Etude, \\\'e`:      `one\\'Etude, \\é`,
		`a {\em new} and \textit{fast {\bf Q\&A}} method, 50\% off`: "a new and fast Q&A method, 50% off",
		`\emph{open`:                 `\emph{open`,
		`{\em $x$} \textbf{$\{y\}$}`: `{\em $x$} \textbf{$\{y\}$}`,
		`\textbf{a \} b} c`:          `a \} b c`,
		// An escaped brace is a brace of the text, not a group.
		`a \{\em b} c`: `a \{\em b} c`,
		`see http://www.x.edu/\~smith/code and www.y.org/\~{}jones; Jos\'e`: `see http://www.x.edu/\~smith/code and www.y.org/\~{}jones; José`,
	} {
		if got := detex(in); got != want {
			t.Errorf("detex(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestLigaturesAreLetters: text extracted from a PDF (pdftotext, pdfplumber, PyMuPDF) writes
// the ligatures of the font as Unicode's compatibility ligatures, "eﬃcient ﬁne-tuning", which
// were stored so: a keyword search for "efficient" missed the paper (PostgreSQL indexes
// "eﬃcient"). They are the letters now, in every format; a paper without an id keeps the
// id its title gave before, and the text as stored before is named by its hash (LegacyHash).
func TestLigaturesAreLetters(t *testing.T) {
	t.Parallel()
	const (
		title    = "An Eﬃcient ﬁne-tuning Method"
		abstract = "We propose an eﬃcient and ﬂexible method for ﬁne-tuning large language models, which halves the cost of the oﬀ-the-shelf baselines."
	)
	legacy := paper.Abstract{Title: title, Abstract: abstract}.ContentHash()
	for _, tc := range []struct {
		name, input string
		opts        Options
		id          string
	}{
		{"text", title + "\n\n" + abstract + "\n", Options{Format: Text}, paper.TitleID(title)},
		{"jsonl", `{"id":"2401.00002","title":"` + title + `","abstract":"` + abstract + `"}` + "\n", Options{Format: JSONL}, "arxiv:2401.00002"},
	} {
		papers, errs, _ := readString(t, tc.input, "in", tc.opts)
		if len(papers) != 1 || len(errs) != 0 {
			t.Fatalf("%s: %d papers, errors %v", tc.name, len(papers), errs)
		}
		p := papers[0]
		if p.Title != "An Efficient fine-tuning Method" || p.Abstract != strings.NewReplacer("ﬃ", "ffi", "ﬁ", "fi", "ﬂ", "fl", "ﬀ", "ff").Replace(abstract) {
			t.Errorf("%s: stored %q / %q, want the letters", tc.name, p.Title, p.Abstract)
		}
		if p.ID != tc.id || p.LegacyHash != legacy {
			t.Errorf("%s: id %s, LegacyHash %q; want %s, %q", tc.name, p.ID, p.LegacyHash, tc.id, legacy)
		}
	}
}

// TestDetexedTextIsFoldedAndNotEmpty: the text detex rewrote is stored as every other text is,
// its white space folded ("Text is stored with its white space folded", README): a font
// command around a space ("\textbf{ Results:}", "{\bf Keywords: }") left two spaces where
// the TeX had one, or a space at the start, which the CLI and the web showed. A title or
// abstract that is nothing but a font command ({\em }) was stored empty, which the store's
// check refuses after the paper was queued, where no file and line are known any more: it is
// refused here, as an empty title is.
func TestDetexedTextIsFoldedAndNotEmpty(t *testing.T) {
	t.Parallel()
	oai := func(title, abstract string) string {
		return `{"id":"2401.00003","title":"` + title + `","abstract":"` + abstract + `","authors":"A. Author",` +
			`"versions":[{"version":"v1","created":"Mon, 1 Jan 2024 00:00:00 GMT"}]}` + "\n"
	}
	papers, errs, _ := readString(t, oai(`{\\em } On \\textbf{ Results:} of Schr\\\"odinger`,
		`We study it. {\\bf Keywords: } spectral theory, \\emph{operators }.`), "in", Options{Format: OAI})
	if len(papers) != 1 || len(errs) != 0 {
		t.Fatalf("%d papers, errors %v", len(papers), errs)
	}
	const (
		title    = "On Results: of Schrödinger"
		abstract = "We study it. Keywords: spectral theory, operators ."
	)
	if p := papers[0]; p.Title != title || p.Abstract != abstract {
		t.Errorf("stored\n title    %q\n abstract %q\nwant\n title    %q\n abstract %q", p.Title, p.Abstract, title, abstract)
	}
	for _, tc := range []struct{ title, abstract, want string }{
		{`{\\em }`, "An abstract.", "title is empty"},
		{"A title", `\\emph{ }`, "abstract is empty"},
	} {
		papers, errs, _ := readString(t, oai(tc.title, tc.abstract), "in", Options{Format: OAI})
		if len(papers) != 0 || len(errs) != 1 || !strings.Contains(errs[0].Error(), tc.want) {
			t.Errorf("title %q, abstract %q: papers %+v, errors %v; want the error %q", tc.title, tc.abstract, papers, errs, tc.want)
		}
	}
}

// BenchmarkDetexWorstCase: detex on abstracts of 32 KiB (the default --max-abstract-bytes)
// that are one run without spaces of what it looks at twice: braces, backslashes, groups of
// a declaration that are never closed, and nested ones that are.
func BenchmarkDetexWorstCase(b *testing.B) {
	const n = 32 << 10
	for _, c := range []struct{ name, unit string }{
		{"braces", `{`},
		{"backslashes", `\x`},
		{"open-declarations", `{\em `},
		{"open-fonts", `\emph{`},
		{"escaped-declarations", `\{\em`},
	} {
		s := `\"o` + strings.Repeat(c.unit, n/len(c.unit))
		b.Run(c.name, func(b *testing.B) {
			b.SetBytes(int64(len(s)))
			for b.Loop() {
				detex(s)
			}
		})
	}
	nested := strings.Repeat(`{\em `, n/10) + "x" + strings.Repeat("}", n/10)
	b.Run("nested-declarations", func(b *testing.B) {
		b.SetBytes(int64(len(nested)))
		for b.Loop() {
			detex(nested)
		}
	})
}

// TestDetexLongRuns: abstracts of 32 KiB that are one run without spaces of braces or
// backslashes, groups never closed, or nested ones closed (BenchmarkDetexWorstCase: each
// took from 0.1 to 0.8 s, the square of the length, before detex read them in one pass), come
// out as they should: the letters written, the rest as it came, the groups' words without
// their commands.
func TestDetexLongRuns(t *testing.T) {
	t.Parallel()
	const n = 32 << 10
	for _, unit := range []string{`{`, `\x`, `{\em `, `\emph{`, `\{\em`, `http://a.b/\~{`} {
		run := strings.Repeat(unit, n/len(unit))
		if got, want := detex(`\"o`+run+` \'e`), "ö"+run+" é"; got != want {
			t.Errorf("detex of a run of %q: %d bytes, want %d as it came", unit, len(got), len(want))
		}
	}
	nested := strings.Repeat(`{\em `, n/10) + `Schr\"odinger` + strings.Repeat("}", n/10)
	if got := detex(nested); got != "Schrödinger" {
		t.Errorf("detex of %d nested {\\em …} = %.40q…, want %q", n/10, got, "Schrödinger")
	}
}
