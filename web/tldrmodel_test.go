package web_test

import (
	"net/url"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

// The pages that list papers (the front page, search results, a paper's related papers) name
// the offline summarizer by each TL;DR it wrote, as the paper page names every TL;DR's model:
// an archive processed offline and then by an LLM listed an extractive sentence of the
// abstract beside an LLM's TL;DR with nothing to tell them apart.
func TestListedTLDRsNameTheOfflineSummarizer(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	var papers []paper.Abstract
	for i, w := range []string{"alpha", "beta", "gamma"} {
		papers = append(papers, paper.Abstract{ID: "id:" + w, Title: "Expert routing " + w,
			Abstract: "We route tokens to experts in the " + w + " setting and balance their load with an auxiliary loss " + strings.Repeat("x", i) + "."})
	}
	b.publish(papers)
	b.process() // offline TL;DRs and vectors
	pending, err := b.st.UpsertPapers(t.Context(), papers[1:2], paper.Work{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SaveSummaries(t.Context(), []paper.Summary{{PaperID: "id:beta", Text: "Balances experts' load in the beta setting.",
		Model: "gpt-4o-mini", PromptVersion: "tldr-v1", ContentHash: pending[0].ContentHash, Validation: paper.ValidOK}}); err != nil {
		t.Fatal(err)
	}
	b.serve(b.config())
	mark := `TL;DR by <code>` + summarize.OfflineModel + `</code>`
	for _, path := range []string{"/", "/search?" + url.Values{"q": {"expert routing"}, "mode": {"keyword"}}.Encode(),
		"/papers/" + url.PathEscape("id:alpha")} {
		r := b.get(path)
		body := string(r.body)
		// Each listed paper's entry, from its <li> to the next.
		entries := strings.Split(body, `<li class="paper">`)[1:]
		if len(entries) == 0 {
			t.Fatalf("GET %s: %d, no papers listed: %.400s", path, r.code, body)
		}
		for _, e := range entries {
			byLLM := strings.Contains(e, "Balances experts")
			if named := strings.Contains(e, mark); named == byLLM {
				t.Errorf("GET %s: an entry whose TL;DR is by %s names the offline summarizer: %v\n%s",
					path, map[bool]string{true: "gpt-4o-mini", false: summarize.OfflineModel}[byLLM], named, e)
			}
		}
	}
}
