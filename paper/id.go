package paper

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"regexp"
	"strings"
	"unicode"

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
	doiRe    = regexp.MustCompile(`^10\.\d{4,9}/\S+$`)
)

// CanonicalID normalises an identifier from any source into paperpipe's canonical form:
//
//   - arXiv ids lose their version and any prefix or URL: "2401.01234v2",
//     "arXiv:2401.01234", "https://arxiv.org/abs/2401.01234v1" → "arxiv:2401.01234";
//     old-style "hep-th/9901001v3" → "arxiv:hep-th/9901001", and without the subject class,
//     which is not part of the identifier: "math.AG/0601001" → "arxiv:math/0601001"; arXiv's
//     DOIs too: "10.48550/arXiv.2401.01234" → "arxiv:2401.01234". An abstract page's URL may
//     carry a query, a fragment or a final slash.
//   - DOIs lose "doi:" and resolver prefixes and are lower-cased: "doi:10.1000/XYZ" → "doi:10.1000/xyz".
//   - Ids already canonical ("arxiv:…", "doi:…", "title:…") are normalised again.
//   - Anything else is kept, trimmed, under "id:" so it cannot collide with the forms above.
//
// An empty id is an error wrapping ErrInvalid.
func CanonicalID(raw string) (string, error) {
	s := strings.TrimSpace(raw)
	if s == "" {
		return "", fmt.Errorf("empty id: %w", ErrInvalid)
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
	for _, p := range []string{"arxiv.org/abs/", "arxiv.org/pdf/", "huggingface.co/papers/"} {
		if rest, ok := strings.CutPrefix(a, p); ok {
			// A page's URL: "…/abs/2401.01234v2?context=cs", "…/abs/2401.01234/".
			rest, _, _ = strings.Cut(rest, "#")
			rest, _, _ = strings.Cut(rest, "?")
			a = strings.TrimSuffix(rest, "/")
			break
		}
	}
	a = strings.TrimPrefix(a, "arxiv:")
	a = strings.TrimSuffix(a, ".pdf")
	if id := arxivID(a); id != "" {
		return id, nil
	}
	if strings.HasPrefix(lower, "arxiv:") {
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
// first 16 hex digits of the SHA-256 of its normalised title (NFKC, lower case, letters, digits
// and combining marks only, words separated by one space), so the same title from two such
// sources is one paper whatever their typography: "Don't" and "Don’t", "-" and "—", straight
// and curly quotes, full-width and ASCII letters.
func TitleID(title string) string {
	var b strings.Builder
	for _, f := range strings.Fields(strings.ToLower(norm.NFKC.String(title))) {
		w := strings.Map(func(r rune) rune {
			if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.IsMark(r) {
				return r
			}
			return -1
		}, f)
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
