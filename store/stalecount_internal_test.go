package store

import "testing"

// loopsOn sums the loops of every scan of relation or index name: how many times the plan
// went to it.
func loopsOn(n planNode, name string) float64 {
	sum := 0.0
	if n.Relation == name || n.Index == name {
		sum += n.ActualLoops
	}
	for _, c := range n.Plans {
		sum += loopsOn(c, name)
	}
	return sum
}

// TestStaleCountOfTheArchiveReadsEachOutputTableOnce: reprocess's count of the whole archive
// (CountStale: its start, its --dry-run) reads the target's TL;DRs and the space's vector keys
// once each and joins them to the papers, instead of looking each paper's up in turn: a
// lateral join with LIMIT 1 allowed no other plan than two index probes per paper (at 300,000
// papers 2.3M buffer reads against 0.28M). A count of a few papers (--ids) still probes their own.
func TestStaleCountOfTheArchiveReadsEachOutputTableOnce(t *testing.T) {
	t.Parallel()
	s, spaceID := scaleStore(t)
	plan := explain(t, s, staleCountSQL, "", 0, "chat", "v1", spaceID, "1970-01-01", nil)
	for _, name := range []string{"tldrs", "tldrs_pkey", "embeddings", "embeddings_pkey"} {
		if got := loopsOn(plan, name); got > 4 {
			t.Errorf("counting the stale papers of %d went to %s %.0f times; want it read once (a worker each at most)", scalePapers, name, got)
		}
	}
	ids := []string{"p000001", "p000002", "p000003"}
	plan = explain(t, s, staleCountSQL, "", 0, "chat", "v1", spaceID, "1970-01-01", ids)
	for _, name := range []string{"tldrs", "tldrs_pkey", "embeddings", "embeddings_pkey"} {
		if got := rowsRead(plan, name); got > 2*float64(len(ids)) {
			t.Errorf("counting %d papers read %.0f rows of %s", len(ids), got, name)
		}
	}
	c, err := s.CountStale(t.Context(), Selection{Work: Work{Model: "chat", PromptVersion: "v1", SpaceID: spaceID}})
	if err != nil || c.Papers != 0 {
		t.Errorf("CountStale of an archive with every output = %+v, %v; want none stale", c, err)
	}
}
