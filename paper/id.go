package paper

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"
)

var (
	// New-style arXiv ids: YYMM.NNNN or YYMM.NNNNN, optional version.
	arxivNew = regexp.MustCompile(`^(\d{4}\.\d{4,5})(v\d+)?$`)
	// Old-style arXiv ids: archive(.SUBJ)/YYMMNNN, optional version. The subject class is not
	// part of the identifier (arXiv: math.CA/0611800 is math/0611800), so it is left out.
	arxivOld = regexp.MustCompile(`^([a-z][a-z\-]*)(?:\.[a-z]{2})?/(\d{7})(v\d+)?$`)
	// arXiv's DataCite DOIs: 10.48550/arXiv.2401.01234 is arXiv:2401.01234.
	arxivDOI = "10.48550/arxiv."
	// arXiv's OAI-PMH identifiers (lower-cased): oai:arXiv.org:2401.01234v2.
	oaiPrefix = "oai:arxiv.org:"
	doiRe     = regexp.MustCompile(`^10\.\d{4,9}/\S+$`)
)

// CanonicalID normalises an identifier from any source into paperpipe's canonical form:
//
//   - arXiv ids lose their version and any prefix or URL: "2401.01234v2",
//     "arXiv:2401.01234", "https://arxiv.org/abs/2401.01234v1" (or its /pdf/ or /html/ page,
//     or ar5iv's: "https://ar5iv.labs.arxiv.org/html/2401.01234") → "arxiv:2401.01234";
//     old-style "hep-th/9901001v3" → "arxiv:hep-th/9901001", and without the subject class,
//     which is not part of the identifier: "math.AG/0601001" → "arxiv:math/0601001"; arXiv's
//     DOIs too: "10.48550/arXiv.2401.01234" → "arxiv:2401.01234", and its OAI identifiers,
//     which its announcement feeds (rss.arxiv.org) give for an entry's id:
//     "oai:arXiv.org:2401.01234v2" → "arxiv:2401.01234". An abstract page's URL may carry a
//     query, a fragment or a final slash.
//   - DOIs lose "doi:" and resolver prefixes and are lower-cased: "doi:10.1000/XYZ" → "doi:10.1000/xyz".
//   - Ids already canonical ("arxiv:…", "doi:…", "title:…") are normalised again.
//   - Anything else is kept, trimmed, under "id:" so it cannot collide with the forms above.
//
// An empty id is an error wrapping ErrInvalid, and so is one holding a control or format
// character (IsHidden) after trimming: "id:a\nb" would print as two lines, and be the message
// id "id:a b" in a NATS header.
func CanonicalID(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("empty id: %w", ErrInvalid)
	}
	if i := strings.IndexFunc(s, IsHidden); i >= 0 {
		r, _ := utf8.DecodeRuneInString(s[i:])
		return "", fmt.Errorf("id %.64q holds %U, a control or format character: %w", s, r, ErrInvalid)
	}
	lower := strings.ToLower(s)
	for _, p := range []string{"https://", "http://"} {
		lower = strings.TrimPrefix(lower, p)
	}
	for _, p := range []string{"www.", "export."} {
		lower = strings.TrimPrefix(lower, p)
	}
	switch {
	case strings.HasPrefix(lower, "title:"):
		return "title:" + strings.TrimPrefix(lower, "title:"), nil
	case strings.HasPrefix(lower, "id:"):
		return "id:" + strings.TrimSpace(s[3:]), nil
	case strings.HasPrefix(lower, "doi.org/"), strings.HasPrefix(lower, "dx.doi.org/"), strings.HasPrefix(lower, "doi:"):
		i := strings.Index(lower, "10.")
		if i < 0 || !doiRe.MatchString(lower[i:]) {
			return "", fmt.Errorf("malformed DOI %q: %w", raw, ErrInvalid)
		}
		return doiOrArxiv(lower[i:]), nil
	case doiRe.MatchString(lower):
		return doiOrArxiv(lower), nil
	}
	a := lower
	for _, p := range []string{"arxiv.org/abs/", "arxiv.org/pdf/", "arxiv.org/html/", "huggingface.co/papers/",
		"ar5iv.labs.arxiv.org/html/", "ar5iv.labs.arxiv.org/abs/", "ar5iv.org/html/", "ar5iv.org/abs/"} {
		if rest, ok := strings.CutPrefix(a, p); ok {
			// A page's URL: "…/abs/2401.01234v2?context=cs", "…/abs/2401.01234/",
			// "…/html/2401.01234v1/#S2" (the paper's HTML page, linked beside its PDF), and
			// ar5iv's rendering of it (ar5iv.labs.arxiv.org/html/2401.01234, ar5iv.org/abs/…).
			rest, _, _ = strings.Cut(rest, "#")
			rest, _, _ = strings.Cut(rest, "?")
			a = strings.TrimSuffix(rest, "/")
			break
		}
	}
	a = strings.TrimPrefix(a, "arxiv:")
	a = strings.TrimPrefix(a, oaiPrefix)
	a = strings.TrimSuffix(a, ".pdf")
	if id := arxivID(a); id != "" {
		return id, nil
	}
	if strings.HasPrefix(lower, "arxiv:") || strings.HasPrefix(lower, oaiPrefix) {
		return "", fmt.Errorf("malformed arXiv id %q: %w", raw, ErrInvalid)
	}
	return "id:" + s, nil
}

// arxivID returns the canonical id of a bare arXiv identifier a (lower case, no prefix), or "".
func arxivID(a string) string {
	if m := arxivNew.FindStringSubmatch(a); m != nil {
		return "arxiv:" + m[1]
	}
	if m := arxivOld.FindStringSubmatch(a); m != nil {
		return "arxiv:" + m[1] + "/" + m[2]
	}
	return ""
}

// doiOrArxiv is the canonical id of DOI d (lower case): arXiv's own DOIs name arXiv papers.
func doiOrArxiv(d string) string {
	if rest, ok := strings.CutPrefix(d, arxivDOI); ok {
		if id := arxivID(rest); id != "" {
			return id
		}
	}
	return "doi:" + d
}

// TitleID is the canonical id of a paper whose source gives no identifier: "title:" and the
// first 16 hex digits of the SHA-256 of its normalised title, so the same title from two such
// sources is one paper whatever their typography. Normalising folds only typography, after
// NFKC (full-width and ASCII letters, composed and decomposed accents): case; white space
// (words separated by one space); quotes and apostrophes, straight, curly, backticks and
// primes ("Don't" and "Don’t" are "dont"); dashes and hyphens, the ASCII hyphen-minus among
// them unless it is a minus sign before a number ("load-balancing" is "loadbalancing", and "-"
// and "—" between words vanish); and sentence punctuation (. , : ; ! ?) ending a word. The
// rest of a title is kept as it is, so titles differing in a symbol or in punctuation inside
// a word are different papers: "(1+1) EA" and "(1,1) EA", "C++" and "C#" and "C", "x^2" and
// "x/2".
func TitleID(title string) string {
	var b strings.Builder
	for _, f := range strings.Fields(strings.ToLower(norm.NFKC.String(title))) {
		w := foldTitleWord([]rune(f))
		if w == "" {
			continue
		}
		if b.Len() > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w)
	}
	sum := sha256.Sum256([]byte(b.String()))
	return "title:" + hex.EncodeToString(sum[:8])
}

// foldTitleWord returns a word of a title (NFKC, lower case) without its typography: quotes,
// apostrophes, dashes, hyphens and soft hyphens, and the sentence punctuation it ends with. A
// hyphen-minus is kept, as the minus sign U+2212, where it is one: before a digit at the start
// of the word or after a symbol or bracket ("-1", "(-1)", "x=-1"; not "GPT-4").
func foldTitleWord(w []rune) string {
	out := make([]rune, 0, len(w))
	for i, r := range w {
		switch {
		case r == '-':
			if i+1 < len(w) && unicode.IsDigit(w[i+1]) && (len(out) == 0 || !isWordRune(out[len(out)-1])) {
				out = append(out, '−')
			}
		case unicode.Is(unicode.Pd, r), r == '\u00ad', isQuote(r):
		default:
			out = append(out, r)
		}
	}
	for len(out) > 0 && strings.ContainsRune(".,:;!?", out[len(out)-1]) {
		out = out[:len(out)-1]
	}
	return string(out)
}

// isWordRune reports whether r is a letter, a digit or a combining mark.
func isWordRune(r rune) bool {
	return unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r)
}

// isQuote reports whether r is a quotation mark or apostrophe of any style: Unicode's
// Quotation_Mark (straight, curly, low-9, guillemets, CJK brackets), the backtick and the
// primes typed for them (after NFKC a double prime is two primes).
func isQuote(r rune) bool {
	return unicode.Is(unicode.Quotation_Mark, r) || r == '`' || (r >= '\u2032' && r <= '\u2037') || r == '\u2057'
}
