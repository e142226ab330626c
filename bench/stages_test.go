package bench

import (
	"strings"
	"testing"
)

// TestStagesSkipPathHasTheOutputsStored: the "skip path" stage is UpsertPapers of papers whose
// TL;DRs and embeddings are stored, as the worker finds them when it skips one. Measured before
// any was stored, every call returned every paper as pending (the worker would have sent them
// to the API), at a cost below the real skip path's.
func TestStagesSkipPathHasTheOutputsStored(t *testing.T) {
	res, err := RunStages(t.Context(), testDB(t), testCorpus(t), 20, 10, nil)
	if err != nil {
		t.Fatalf("RunStages: %v", err)
	}
	found := false
	for _, r := range res {
		found = found || strings.Contains(r.Stage, "the skip path")
	}
	if !found {
		t.Errorf("no skip-path stage in %+v", res)
	}
}
