package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

// A TL;DR of the offline summarizer is named as such wherever TL;DRs are listed, not only on
// `show`: an archive processed offline (the demo) and then by an LLM (OPENAI_API_KEY set, new
// papers, or a `reprocess` under way) lists both kinds side by side, and `list`, `related`
// and `search` printed an extractive sentence of the abstract as if a model had written it,
// their --json hits without any model at all.
func TestListedTLDRsNameTheOfflineSummarizer(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	st := cliStore(t, c)
	var papers []paper.Abstract
	for i := range 4 {
		papers = append(papers, paper.Abstract{ID: fmt.Sprintf("id:p%d", i), Title: fmt.Sprintf("Routing study %d", i),
			Abstract: fmt.Sprintf("We route tokens to experts, variant %d, and balance their load with an auxiliary loss.", i)})
	}
	pending, err := st.UpsertPapers(t.Context(), papers, paper.Work{})
	if err != nil {
		t.Fatal(err)
	}
	model := map[string]string{} // by paper id
	var sums []paper.Summary
	for i, p := range pending {
		m := summarize.OfflineModel
		if i%2 == 1 {
			m = "gpt-4o-mini"
		}
		model[p.ID] = m
		sums = append(sums, paper.Summary{PaperID: p.ID, Text: fmt.Sprintf("Routes tokens, variant %d.", i), Model: m,
			PromptVersion: "v", ContentHash: p.ContentHash, Validation: paper.ValidOK})
	}
	if _, err := st.SaveSummaries(t.Context(), sums); err != nil {
		t.Fatal(err)
	}
	c.ok("reprocess", "--embed-only")

	// JSON: every hit names the model of its TL;DR.
	for _, args := range [][]string{{"related", "id:p0", "-k", "3"}, {"search", "routing", "--mode", "keyword"}, {"search", "routing tokens"}} {
		var out struct {
			Results []struct {
				ID        string `json:"id"`
				TLDRModel string `json:"tldr_model"`
			} `json:"results"`
		}
		c.json(&out, args...)
		if len(out.Results) == 0 {
			t.Fatalf("%v --json: no results", args)
		}
		for _, h := range out.Results {
			if h.TLDRModel != model[h.ID] {
				t.Errorf("%v --json: %s has tldr_model %q, want %q", args, h.ID, h.TLDRModel, model[h.ID])
			}
		}
	}

	// Text: the lines of each paper (from its id to the next paper's) name the offline
	// summarizer when it wrote the paper's TL;DR, and only then.
	for _, args := range [][]string{{"list"}, {"related", "id:p0", "-k", "3"}, {"search", "routing", "--mode", "keyword"}} {
		out := c.ok(args...).stdout
		seen := 0
		for id, m := range model {
			at := strings.Index(out, id+" ")
			if at < 0 || (args[0] == "related" && id == "id:p0") {
				continue
			}
			seen++
			part := out[at+len(id):]
			for other := range model {
				if j := strings.Index(part, other+" "); other != id && j >= 0 {
					part = part[:j]
				}
			}
			if named := strings.Contains(part, summarize.OfflineModel); named != (m == summarize.OfflineModel) {
				t.Errorf("paperpipe %s: the TL;DR of %s (by %s) named as the offline summarizer's: %v\n%s", strings.Join(args, " "), id, m, named, out)
			}
		}
		if seen < 3 {
			t.Errorf("paperpipe %s: %d of the papers listed, want at least 3\n%s", strings.Join(args, " "), seen, out)
		}
	}
}
