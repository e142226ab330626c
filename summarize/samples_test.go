package summarize

import (
	"os"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// loadSamples reads the sample archive with a tiny local parser: paragraphs separated by
// blank lines, the 5 leading one-line paragraphs of page furniture skipped, then title and
// abstract pairs.
func loadSamples(t *testing.T) []paper.Abstract {
	t.Helper()
	b, err := os.ReadFile("../testdata/sample-papers.txt")
	if err != nil {
		t.Fatalf("reading sample archive: %v", err)
	}
	var paras []string
	for _, p := range strings.Split(strings.ReplaceAll(string(b), "\r\n", "\n"), "\n\n") {
		if p = strings.TrimSpace(p); p != "" {
			paras = append(paras, p)
		}
	}
	paras = paras[5:]
	if len(paras)%2 != 0 {
		t.Fatalf("odd number of paragraphs after the furniture: %d", len(paras))
	}
	var out []paper.Abstract
	for i := 0; i < len(paras); i += 2 {
		out = append(out, paper.Abstract{ID: paper.TitleID(paras[i]), Title: paras[i], Abstract: paras[i+1]})
	}
	if len(out) != 108 {
		t.Fatalf("parsed %d papers, want 108", len(out))
	}
	return out
}
