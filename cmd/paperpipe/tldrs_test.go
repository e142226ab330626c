package main

import (
	"fmt"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestTLDRsPruneKeepsTheConfiguredVersionAndThoseNamed: `tldrs` lists the stored versions;
// `tldrs prune --dry-run` says what would go and removes nothing; `tldrs prune` removes every
// version but the configured one (the offline summarizer's, here) and those --keep names; a
// --keep naming no stored version is refused before anything is removed.
func TestTLDRsPruneKeepsTheConfiguredVersionAndThoseNamed(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: c.databaseURL()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	var papers []paper.Abstract
	for i := range 4 {
		papers = append(papers, paper.Abstract{ID: fmt.Sprintf("arxiv:2401.%05d", i+1), Title: fmt.Sprintf("Paper %d", i+1),
			Abstract: fmt.Sprintf("We study problem %d.", i+1)})
	}
	if _, err := st.UpsertPapers(ctx, papers, store.Work{}); err != nil {
		t.Fatal(err)
	}
	current := summarize.Versioned(summarize.OfflinePromptVersion, summarize.DefaultMaxWords)
	versions := [][2]string{{summarize.OfflineModel, current}, {summarize.OfflineModel, "extractive-v1"},
		{"gpt-4o-mini", "tldr-v1"}, {"gpt-4o-mini", "tldr-v1-w15"}}
	for _, p := range papers {
		for _, v := range versions {
			if _, err := st.SaveSummaries(ctx, []paper.Summary{{PaperID: p.ID, Text: "A TL;DR.", Model: v[0], PromptVersion: v[1],
				ContentHash: p.ContentHash(), Validation: string(paper.ValidOK)}}); err != nil {
				t.Fatal(err)
			}
		}
	}
	r := c.ok("tldrs")
	if !strings.Contains(r.stdout, "configured") || strings.Count(r.stdout, "\n") != 5 {
		t.Errorf("tldrs:\n%s\nwant the 4 versions under a header, the configured one marked", r.stdout)
	}
	r = c.ok("tldrs", "prune", "--dry-run", "--keep", "gpt-4o-mini@tldr-v1")
	if !strings.Contains(r.stdout, "would remove 8 TL;DRs") {
		t.Errorf("tldrs prune --dry-run:\n%s\nwant it to say it would remove 8 TL;DRs", r.stdout)
	}
	if r := c.run("tldrs", "prune", "--keep", "gpt-4o@tldr-v1"); r.code != 1 || !strings.Contains(r.stderr, "gpt-4o tldr-v1") {
		t.Errorf("tldrs prune --keep of nothing stored: exit %d, %s; want 1 naming it", r.code, r.stderr)
	}
	var res store.PruneResult
	c.json(&res, "tldrs", "prune", "--keep", "gpt-4o-mini@tldr-v1")
	if res.TLDRs != 8 {
		t.Errorf("tldrs prune: %+v, want 8 TL;DRs removed", res)
	}
	var left []store.TLDRVersion
	c.json(&left, "tldrs")
	if len(left) != 2 || left[0].TLDRs != 4 || left[1].TLDRs != 4 {
		t.Errorf("after the prune: %+v, want the configured version and gpt-4o-mini tldr-v1, 4 TL;DRs each", left)
	}
	for _, v := range left {
		if v.PromptVersion != current && v.PromptVersion != "tldr-v1" {
			t.Errorf("after the prune: %s %s is left", v.Model, v.PromptVersion)
		}
	}
}
