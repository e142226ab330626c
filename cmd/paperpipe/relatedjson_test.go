package main

import (
	"encoding/json"
	"fmt"
	"reflect"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// `related --json` lists the papers under "results", as `search --json` and GET
// /api/papers/{id}/related do: it had them under "related" only, and a script written against
// the API or `search` (`jq '.results[]'`) found none. "related" stays, for the scripts that read it.
func TestRelatedJSONListsResultsAsSearchAndTheAPIDo(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	st := cliStore(t, c)
	var papers []paper.Abstract
	for i := range 4 {
		papers = append(papers, paper.Abstract{ID: fmt.Sprintf("id:p%d", i), Title: fmt.Sprintf("Routing study %d", i),
			Abstract: fmt.Sprintf("We route tokens to experts, variant %d, and balance their load with an auxiliary loss.", i)})
	}
	if _, err := st.UpsertPapers(t.Context(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	c.ok("reprocess", "--embed-only")
	var rel map[string]json.RawMessage
	c.json(&rel, "related", "id:p0", "-k", "3")
	var results, related []paper.Hit
	if err := json.Unmarshal(rel["results"], &results); err != nil || len(results) != 3 {
		t.Fatalf("related --json: results %s (%v), want the 3 papers", rel["results"], err)
	}
	if err := json.Unmarshal(rel["related"], &related); err != nil || !reflect.DeepEqual(related, results) {
		t.Errorf("related --json: related %s, want the results, as before", rel["related"])
	}
	var search map[string]json.RawMessage
	c.json(&search, "search", "routing", "--mode", "keyword")
	if rel["results"] == nil || search["results"] == nil {
		t.Errorf("related --json and search --json do not both have \"results\": %s / %s", rel["results"], search["results"])
	}
}
