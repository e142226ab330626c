package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// `reprocess --dry-run --json` prints the estimate as one JSON document, as `remove --dry-run`
// and `tldrs prune --dry-run` print theirs: the papers, requests, tokens and cost a script
// checks before it spends. It took no --json (a usage error), and its table had to be scraped.
// A run that is not a dry run prints no result on standard output: --json is refused there.
func TestReprocessDryRunPrintsJSON(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	st := cliStore(t, c)
	var papers []paper.Abstract
	for i := range 3 {
		papers = append(papers, paper.Abstract{ID: fmt.Sprintf("id:p%d", i), Title: fmt.Sprintf("Routing study %d", i),
			Abstract: "We route tokens to experts and balance their load with an auxiliary loss."})
	}
	if _, err := st.UpsertPapers(t.Context(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	r := c.ok("reprocess", "--dry-run", "--json")
	var out struct {
		Target        string            `json:"target"`
		TLDRModel     string            `json:"tldr_model"`
		PromptVersion string            `json:"prompt_version"`
		Space         paper.Space       `json:"space"`
		Estimate      estimate          `json:"estimate"`
		Counts        store.StaleCounts `json:"counts"`
	}
	dec := json.NewDecoder(strings.NewReader(r.stdout))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&out); err != nil || dec.More() {
		t.Fatalf("reprocess --dry-run --json: not one JSON document of the estimate (%v):\n%s", err, r.stdout)
	}
	if out.Estimate.Papers != 3 || out.Estimate.TLDRs != 3 || out.Estimate.Embeddings != 3 || out.Counts.Papers != 3 ||
		out.Estimate.EmbedTokens == 0 || !out.Estimate.CostKnown || out.Space.Model == "" || out.Target == "" || out.TLDRModel == "" || out.PromptVersion == "" {
		t.Errorf("reprocess --dry-run --json: %+v", out)
	}
	if strings.Contains(r.stdout, "dry run:") {
		t.Errorf("reprocess --dry-run --json: its note is not on standard error:\n%s", r.stdout)
	}
	if r := c.run("reprocess", "--json"); r.code != 2 || r.stdout != "" {
		t.Errorf("reprocess --json: exit %d, want 2 (--json is for --dry-run)\n%s%s", r.code, r.stdout, r.stderr)
	}
}
