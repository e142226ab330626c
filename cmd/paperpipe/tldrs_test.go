package main

import (
	"fmt"
	"slices"
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
	// Written an hour ago: versions no longer used (see the next test for one written now).
	if _, err := st.Pool().Exec(ctx, "UPDATE tldrs SET created_at = now() - interval '1 hour'"); err != nil {
		t.Fatal(err)
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

// `tldrs prune` run without the workers' settings (another PAPERPIPE_CHAT_MODEL here) would
// remove the version the workers write now, where another version is kept. A version written
// in the last minutes is left, saying why and what removes it (--include-recent); an older
// one goes as before.
func TestTLDRsPruneLeavesAVersionWrittenInTheLastMinutes(t *testing.T) {
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
	p := paper.Abstract{ID: "arxiv:2401.00001", Title: "Paper 1", Abstract: "We study problem 1."}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{p}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	current := summarize.Versioned(summarize.OfflinePromptVersion, summarize.DefaultMaxWords)
	for _, v := range [][2]string{{summarize.OfflineModel, current}, {"gpt-4o-mini", "tldr-v1"}, {"gpt-4o-mini", "tldr-v0"}} {
		if _, err := st.SaveSummaries(ctx, []paper.Summary{{PaperID: p.ID, Text: "A TL;DR.", Model: v[0], PromptVersion: v[1],
			ContentHash: p.ContentHash(), Validation: string(paper.ValidOK)}}); err != nil {
			t.Fatal(err)
		}
	}
	// tldr-v0 was last written an hour ago; tldr-v1 now, by the workers.
	if _, err := st.Pool().Exec(ctx, "UPDATE tldrs SET created_at = now() - interval '1 hour' WHERE prompt_version = 'tldr-v0'"); err != nil {
		t.Fatal(err)
	}
	r := c.ok("tldrs", "prune")
	if !strings.Contains(r.stdout, "gpt-4o-mini tldr-v1: left") || !strings.Contains(r.stderr, "--include-recent") ||
		!strings.Contains(r.stdout, "gpt-4o-mini tldr-v0: removed 1 TL;DR") {
		t.Errorf("tldrs prune:\n%s%s\nwant tldr-v1, written now, left saying why, and tldr-v0 removed", r.stdout, r.stderr)
	}
	if got, _ := st.Summaries(ctx, p.ID); len(got) != 2 {
		t.Errorf("after the prune the paper has %d TL;DRs, want the configured version's and tldr-v1's", len(got))
	}
	r = c.ok("tldrs", "prune", "--include-recent")
	if !strings.Contains(r.stdout, "gpt-4o-mini tldr-v1: removed 1 TL;DR") {
		t.Errorf("tldrs prune --include-recent:\n%s%s\nwant tldr-v1 removed", r.stdout, r.stderr)
	}
}

// TestStatusFromAShellOfAnotherModelSaysTheOtherTLDRsAreThere: status counts the TL;DRs of the
// configured model and prompt, the shell's. Run from a shell without the settings the workers
// had, it read an archive processed by another model as lacking its TL;DRs — "with TL;DR 108"
// of 996, the offline model's, in a lab's journey (session 28) — with no word of the others.
// It says how many others there are, and what lists them.
func TestStatusFromAShellOfAnotherModelSaysTheOtherTLDRsAreThere(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	other := &cli{t: t, env: append(slices.Clone(c.env), "OPENAI_BASE_URL=http://127.0.0.1:1/v1", "PAPERPIPE_CHAT_MODEL=gpt-4o-mini")}
	r := other.ok("status")
	if !strings.Contains(r.stdout, "with TL;DR") || !strings.Contains(r.stdout, "108 more of other models, prompts or earlier texts: `paperpipe tldrs`") {
		t.Errorf("status of another model's shell does not say the archive's TL;DRs are there:\n%s", r.stdout)
	}
	if r := c.ok("status"); strings.Contains(r.stdout, "more of other models") {
		t.Errorf("status of the workers' own settings speaks of other TL;DRs, with every paper's TL;DR counted:\n%s", r.stdout)
	}
}
