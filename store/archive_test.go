package store_test

import (
	"errors"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// staleIDs walks StalePapers and returns the ids, checking the pages' order and size.
func staleIDs(t *testing.T, s *store.Store, sel store.Selection, pageSize int) (ids []string, tldr, emb int) {
	t.Helper()
	err := s.StalePapers(t.Context(), sel, pageSize, func(page []store.StalePaper) error {
		if len(page) == 0 || len(page) > pageSize {
			t.Errorf("page of %d papers, want 1 to %d", len(page), pageSize)
		}
		for _, p := range page {
			if p.ContentHash != p.Abstract.ContentHash() {
				t.Errorf("%s: ContentHash %s is not the hash of its text", p.ID, p.ContentHash)
			}
			ids = append(ids, p.ID)
			if p.NeedTLDR {
				tldr++
			}
			if p.NeedEmbedding {
				emb++
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("StalePapers: %v", err)
	}
	if !slices.IsSorted(ids) {
		t.Errorf("ids not in order: %v", ids)
	}
	c, err := s.CountStale(t.Context(), sel)
	if err != nil {
		t.Fatalf("CountStale: %v", err)
	}
	if c.Papers != int64(len(ids)) || c.TLDRs != int64(tldr) || c.Embeddings != int64(emb) {
		t.Errorf("CountStale %+v, StalePapers gave %d papers, %d TL;DRs, %d embeddings", c, len(ids), tldr, emb)
	}
	return ids, tldr, emb
}

func TestStalePapersSelectsMissingWorkPageByPage(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	papers := abstracts(25)
	upsert(t, s, papers, store.Work{})
	// Papers 0-9 have a TL;DR of (m, v2), papers 10-14 one of the older prompt v1 only;
	// papers 0-19 have a vector, 20-24 none.
	var sums []paper.Summary
	for i := range 10 {
		sums = append(sums, summaryOf(papers[i], "m", "v2", "A TL;DR."))
	}
	for i := 10; i < 15; i++ {
		sums = append(sums, summaryOf(papers[i], "m", "v1", "An old TL;DR."))
	}
	if _, err := s.SaveSummaries(ctx, sums); err != nil {
		t.Fatal(err)
	}
	var embs []paper.Embedding
	for i := range 20 {
		embs = append(embs, embeddingOf(papers[i], 1, 0, float32(i)))
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}

	// Prompt v2 target, TL;DRs only: 15 papers (10-24) lack a v2 TL;DR.
	ids, tldr, emb := staleIDs(t, s, store.Selection{Work: paper.Work{Model: "m", PromptVersion: "v2"}}, 4)
	if len(ids) != 15 || tldr != 15 || emb != 0 || ids[0] != papers[10].ID {
		t.Errorf("v2 TL;DRs: %d papers (%d TL;DR, %d embedding) from %v, want 15 from %s", len(ids), tldr, emb, ids, papers[10].ID)
	}
	// Embeddings only: 5 papers.
	ids, _, emb = staleIDs(t, s, store.Selection{Work: paper.Work{SpaceID: sp.ID}}, 2)
	if len(ids) != 5 || emb != 5 {
		t.Errorf("embeddings: %v, want the 5 papers without a vector", ids)
	}
	// Both, restricted to ids.
	ids, _, _ = staleIDs(t, s, store.Selection{Work: paper.Work{Model: "m", PromptVersion: "v2", SpaceID: sp.ID},
		IDs: []string{papers[0].ID, papers[12].ID, papers[22].ID, "arxiv:9999.99999"}}, 10)
	if !slices.Equal(ids, []string{papers[12].ID, papers[22].ID}) {
		t.Errorf("by ids: %v, want papers 12 and 22", ids)
	}
	// An empty id list selects nothing.
	if ids, _, _ = staleIDs(t, s, store.Selection{Work: paper.Work{SpaceID: sp.ID}, IDs: []string{}}, 10); len(ids) != 0 {
		t.Errorf("empty id list selected %v", ids)
	}
	// A changed abstract makes the paper stale again.
	changed := papers[3]
	changed.Abstract += " Now with more results."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})
	ids, _, _ = staleIDs(t, s, store.Selection{Work: paper.Work{Model: "m", PromptVersion: "v2"}}, 100)
	if len(ids) != 16 || ids[0] != changed.ID {
		t.Errorf("after a change: %d papers starting %v, want 16 starting with %s", len(ids), ids[:1], changed.ID)
	}
	// Since: only the changed paper was written after this point.
	ids, _, _ = staleIDs(t, s, store.Selection{Work: paper.Work{Model: "m", PromptVersion: "v2"},
		Since: time.Now().Add(time.Hour)}, 100)
	if len(ids) != 0 {
		t.Errorf("since the future: %v, want none", ids)
	}
}

// TestStalePapersDatesATextStoredBeforeTextAtByItsRow: a paper stored before migration 00008
// has no text time ('-infinity'). Published again (a follow's backfill, a reprocess), its text
// must be dated by when its row was written, not by when the queue stores the message: a newer
// text stored after the paper was selected, and before that message is handled, would be
// taken for the older one and replaced by the old text.
func TestStalePapersDatesATextStoredBeforeTextAtByItsRow(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	old := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{old}, store.Work{})
	written := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Microsecond)
	if _, err := s.Pool().Exec(ctx, "UPDATE papers SET text_at = '-infinity', updated_at = $2 WHERE id = $1", old.ID, written); err != nil {
		t.Fatal(err)
	}
	var republished []paper.Abstract
	if err := s.StalePapers(ctx, store.Selection{Work: paper.Work{SpaceID: sp.ID}}, 10, func(page []store.StalePaper) error {
		for _, p := range page {
			republished = append(republished, p.Abstract)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(republished) != 1 {
		t.Fatalf("StalePapers = %+v; want the paper", republished)
	}
	if !republished[0].TextAt.Equal(written) {
		t.Errorf("StalePapers dated the text %v; want %v, when its row was written", republished[0].TextAt, written)
	}
	// A newer text, read an hour ago, is stored before the republished message is handled.
	newer := old
	newer.Abstract, newer.TextAt = "A newer version of the abstract.", time.Now().Add(-time.Hour)
	upsert(t, s, []paper.Abstract{newer}, store.Work{})
	if p := upsert(t, s, republished, store.Work{Model: testModel, PromptVersion: testPrompt})[0]; p.ContentHash != newer.ContentHash() || p.NeedTLDR {
		t.Errorf("the republished old text after the newer one: %+v; want the newer text kept, nothing needed", p)
	}
	if rec, err := s.Paper(ctx, old.ID); err != nil || rec.Abstract.Abstract != newer.Abstract {
		t.Errorf("stored %q (%v), want the newer text", rec.Abstract.Abstract, err)
	}
}

func TestStalePapersExcludesPapersOfOpenBatchJobs(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	papers := abstracts(4)
	upsert(t, s, papers, store.Work{})
	items := []store.BatchItem{{PaperID: papers[0].ID, ContentHash: papers[0].ContentHash()}}
	job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v1"}, items)
	if err != nil {
		t.Fatal(err)
	}
	release.Release()
	work := paper.Work{Model: "m", PromptVersion: "v1", SpaceID: sp.ID}
	var got []store.StalePaper
	if err := s.StalePapers(ctx, store.Selection{Work: work}, 10, func(p []store.StalePaper) error {
		got = append(got, p...)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != 4 || got[0].NeedTLDR || !got[0].NeedEmbedding {
		t.Fatalf("paper 0 in an open chat job: %+v; want it to need its embedding only", got[0])
	}
	// Another prompt version is another target: the job does not hold its papers.
	c, err := s.CountStale(ctx, store.Selection{Work: paper.Work{Model: "m", PromptVersion: "v2"}})
	if err != nil || c.TLDRs != 4 {
		t.Errorf("v2 target: %+v, %v; want 4 TL;DRs", c, err)
	}
	// Once the job is closed (its result never came), the paper is stale again.
	job.Status = store.BatchFailed
	if err := s.FinishBatchJob(ctx, job, nil); err != nil {
		t.Fatal(err)
	}
	c, err = s.CountStale(ctx, store.Selection{Work: work})
	if err != nil || c.TLDRs != 4 {
		t.Errorf("after the job closed: %+v, %v; want 4 TL;DRs", c, err)
	}
	// A closed job is not changed any more.
	job.Status = store.BatchSubmitted
	if err := s.UpdateBatchJob(ctx, job); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("UpdateBatchJob of a closed job: %v, want ErrNotFound", err)
	}
}

// TestPendingWorkLeavesOutOutputsOpenBatchJobsHold: an output an open batch job of the target
// holds for a paper's current text is not asked for by the workers' intake (PendingFor, which
// a reprocess publishing the paper for its other output reaches; UpsertPapers, a re-ingest of
// the same text), as StalePapers leaves it out: it would be bought a second time, and the
// job's answer paid for as well. A changed text is not held.
func TestPendingWorkLeavesOutOutputsOpenBatchJobsHold(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	claim := func(j store.BatchJob, a paper.Abstract) store.BatchJob {
		t.Helper()
		job, release, err := s.ClaimBatchJob(ctx, j, []store.BatchItem{{PaperID: a.ID, ContentHash: a.ContentHash()}})
		if err != nil {
			t.Fatal(err)
		}
		release.Release()
		return job
	}
	chat := claim(store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v1"}, papers[0])
	claim(store.BatchJob{Kind: paper.KindEmbedding, Model: sp.Model, SpaceID: sp.ID}, papers[1])
	w := paper.Work{Model: "m", PromptVersion: "v1", SpaceID: sp.ID}
	want := []store.Pending{
		{ID: papers[0].ID, ContentHash: papers[0].ContentHash(), NeedEmbedding: true},
		{ID: papers[1].ID, ContentHash: papers[1].ContentHash(), NeedTLDR: true},
		{ID: papers[2].ID, ContentHash: papers[2].ContentHash(), NeedTLDR: true, NeedEmbedding: true},
	}
	got, err := s.PendingFor(ctx, papers, w)
	if err != nil || !slices.Equal(got, want) {
		t.Errorf("PendingFor = %+v, %v\nwant %+v", got, err, want)
	}
	if got := upsert(t, s, papers, w); !slices.Equal(got, want) {
		t.Errorf("UpsertPapers of the same texts = %+v\nwant %+v", got, want)
	}
	// Another prompt version is another target.
	if got, err := s.PendingFor(ctx, papers[:1], paper.Work{Model: "m", PromptVersion: "v2"}); err != nil || !got[0].NeedTLDR {
		t.Errorf("PendingFor of prompt v2 = %+v, %v; want the TL;DR", got, err)
	}
	// Once the job is closed (its batch failed), its paper needs its TL;DR again.
	chat.Status = store.BatchFailed
	if err := s.FinishBatchJob(ctx, chat, nil); err != nil {
		t.Fatal(err)
	}
	if got, err := s.PendingFor(ctx, papers[:1], w); err != nil || !got[0].NeedTLDR {
		t.Errorf("PendingFor after the job closed = %+v, %v; want the TL;DR", got, err)
	}
	// A changed text is not what the open embedding job holds: its vector is needed.
	changed := papers[1]
	changed.Abstract = "A rewritten abstract."
	if got := upsert(t, s, []paper.Abstract{changed}, w)[0]; !got.NeedTLDR || !got.NeedEmbedding {
		t.Errorf("UpsertPapers of a changed text = %+v; want both outputs", got)
	}
}

func TestFinishBatchJobRecordsUsageOnce(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(2)
	upsert(t, s, papers, store.Work{})
	job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v1"},
		[]store.BatchItem{{PaperID: papers[0].ID, ContentHash: "h"}, {PaperID: papers[1].ID, ContentHash: "h"}})
	if err != nil {
		t.Fatal(err)
	}
	release.Release()
	if job.Total != 2 || job.Status != store.BatchPreparing || job.Target != "chat:m:v1" {
		t.Errorf("new job %+v", job)
	}
	job.Status, job.Stored = store.BatchDone, 2
	u := []paper.Usage{{Model: "m", Kind: "chat-batch", Requests: 2, InputTokens: 100, OutputTokens: 20}}
	for range 2 {
		if err := s.FinishBatchJob(ctx, job, u); err != nil {
			t.Fatal(err)
		}
	}
	rows, err := s.Usage(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	if len(rows) != 1 || rows[0].Requests != 2 || rows[0].InputTokens != 100 {
		t.Errorf("usage %+v, want one row of 2 requests and 100 input tokens", rows)
	}
}

func TestLoadEmbeddingsCopiesAndReportsUnknownAndStale(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	active := space(t, s, "old", 3)
	sp, created, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "bulk", Dimensions: 3, Template: "title+abstract"})
	if err != nil || !created {
		t.Fatalf("EnsureSpaceForLoad: %v, created %v", err, created)
	}
	if sp.Active {
		t.Errorf("a new space was activated while %s is active", active.Name())
	}
	indexName := "embeddings_hnsw_s" + itoa(sp.ID)
	if indexExists(t, s, indexName) {
		t.Fatalf("space for a bulk load got its index before the load")
	}
	res, err := s.LoadEmbeddings(ctx, sp.ID, []paper.Embedding{
		{PaperID: papers[0].ID, Vector: []float32{1, 0, 0}},                      // current text assumed
		{PaperID: papers[1].ID, Vector: []float32{0, 1, 0}, ContentHash: "0123"}, // made from another text
		{PaperID: papers[2].ID, Vector: []float32{0, 0, 1}, ContentHash: papers[2].ContentHash()},
		{PaperID: "arxiv:0000.00000", Vector: []float32{1, 1, 0}},
		{PaperID: papers[0].ID, Vector: []float32{0.5, 0.5, 0}}, // repeated: the last wins
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded != 2 || res.Stale != 1 || !slices.Equal(res.Unknown, []string{"arxiv:0000.00000"}) {
		t.Errorf("LoadEmbeddings = %+v, want 2 loaded, 1 stale, 1 unknown", res)
	}
	var x float32
	if err := s.Pool().QueryRow(ctx, "SELECT (embedding::real[])[1] FROM embeddings WHERE space_id = $1 AND paper_id = $2",
		sp.ID, papers[0].ID).Scan(&x); err != nil || x != 0.5 {
		t.Errorf("stored vector of paper 0 starts with %v (%v), want 0.5", x, err)
	}
	if _, err := s.LoadEmbeddings(ctx, sp.ID, []paper.Embedding{{PaperID: papers[0].ID, Vector: []float32{1, 0}}}); !errors.Is(err, paper.ErrSpaceMismatch) {
		t.Errorf("a vector of 2 dimensions in a 3-dimension space: %v, want ErrSpaceMismatch", err)
	}

	// A worker that starts with the space's model while the fill runs gets the space as it
	// is: building the index inside EnsureSpace's transaction would block every write to
	// embeddings for the whole build.
	if got, err := s.EnsureSpace(ctx, paper.Space{Model: "bulk", Dimensions: 3, Template: "title+abstract"}); err != nil || got.ID != sp.ID {
		t.Fatalf("EnsureSpace of the space being filled = %+v, %v", got, err)
	}
	if indexExists(t, s, indexName) {
		t.Error("EnsureSpace built the index of a space being filled")
	}

	built, err := s.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{MaintenanceWorkMem: "77MB", ParallelWorkers: 1})
	if err != nil || !built || !indexExists(t, s, indexName) {
		t.Fatalf("BuildSpaceIndex = %v, %v; index exists %v", built, err, indexExists(t, s, indexName))
	}
	if built, err = s.BuildSpaceIndex(ctx, sp.ID, store.IndexSettings{}); err != nil || built {
		t.Errorf("second BuildSpaceIndex = %v, %v; want false, nil", built, err)
	}
	infos, err := s.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, si := range infos {
		if si.ID == sp.ID && (si.Embedded != 2 || si.IndexName != indexName) {
			t.Errorf("space after the load: %+v, want 2 embedded and index %s", si, indexName)
		}
	}
	// The session settings of the build do not leak into pooled connections.
	for range 4 {
		var mem string
		if err := s.Pool().QueryRow(ctx, "SHOW maintenance_work_mem").Scan(&mem); err != nil {
			t.Fatal(err)
		}
		if mem == "77MB" {
			t.Errorf("maintenance_work_mem is still the build's 77MB on a pooled connection")
		}
	}
}

func TestResolveSpace(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	a := space(t, s, "model-a", 3)
	b1 := space(t, s, "model-b", 3)
	space(t, s, "model-b", 4)
	for ref, want := range map[string]int64{
		itoa(a.ID): a.ID, "model-a": a.ID, b1.Name(): b1.ID, " model-a ": a.ID,
	} {
		got, err := s.ResolveSpace(ctx, ref)
		if err != nil || got.ID != want {
			t.Errorf("ResolveSpace(%q) = %d, %v; want %d", ref, got.ID, err, want)
		}
	}
	if _, err := s.ResolveSpace(ctx, "model-b"); !errors.Is(err, paper.ErrAmbiguous) {
		t.Errorf("a model with two spaces: %v, want ErrAmbiguous", err)
	}
	if _, err := s.ResolveSpace(ctx, "nope"); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("unknown space: %v, want ErrNotFound", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestClaimBatchJobLeavesOutPapersDoneForItsTarget: a paper selected stale whose output for
// the job's target was stored meanwhile (another Runner's job of the same papers collected and
// closed before this claim) is not recorded in the job: it would be sent and paid for again.
// An output of another target, or of an older text, does not count.
func TestClaimBatchJobLeavesOutPapersDoneForItsTarget(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "emb", 3)
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(papers[0], "m", "v1", "A TL;DR."), summaryOf(papers[1], "m", "v0", "An old TL;DR.")}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(papers[1], 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	items := make([]store.BatchItem, len(papers))
	for i, p := range papers {
		items[i] = store.BatchItem{PaperID: p.ID, ContentHash: p.ContentHash()}
	}
	claimed := func(j store.BatchJob, items []store.BatchItem) []string {
		t.Helper()
		job, release, err := s.ClaimBatchJob(ctx, j, items)
		if err != nil {
			t.Fatal(err)
		}
		release.Release()
		var ids []string
		if job.ID != 0 {
			err = s.BatchJobItems(ctx, job.ID, 10, func(its []store.BatchJobItem) error {
				for _, it := range its {
					ids = append(ids, it.PaperID)
				}
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
		}
		return ids
	}
	if got, want := claimed(store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: "v1"}, items), []string{papers[1].ID, papers[2].ID}; !slices.Equal(got, want) {
		t.Errorf("chat job claimed %v, want %v (paper 0 has its TL;DR)", got, want)
	}
	if got, want := claimed(store.BatchJob{Kind: paper.KindEmbedding, Model: sp.Model, SpaceID: sp.ID}, items), []string{papers[0].ID, papers[2].ID}; !slices.Equal(got, want) {
		t.Errorf("embedding job claimed %v, want %v (paper 1 has its vector)", got, want)
	}
	// An item of an older text of paper 1 (its vector is of the current one) is claimed.
	old := []store.BatchItem{{PaperID: papers[1].ID, ContentHash: "an older text's hash"}}
	if got := claimed(store.BatchJob{Kind: paper.KindEmbedding, Model: sp.Model, SpaceID: sp.ID}, old); !slices.Equal(got, []string{papers[1].ID}) {
		t.Errorf("embedding job of an older text claimed %v, want paper 1", got)
	}
}

// TestFinishBatchJobRemovesItsItems: a closed job's papers (batch_items) are removed with its
// close, in the same transaction: they only kept its papers out of other work while it was
// open, and kept, a row a paper per output per `reprocess --batch-api` run (~200 bytes with
// its two index entries), they grew without end — about 1 GB per full run of a 2.5M-paper
// archive. The job itself stays listed; another open job keeps its papers.
func TestFinishBatchJobRemovesItsItems(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(3)
	upsert(t, s, papers, store.Work{})
	claim := func(prompt string) store.BatchJob {
		t.Helper()
		var items []store.BatchItem
		for _, p := range papers {
			items = append(items, store.BatchItem{PaperID: p.ID, ContentHash: p.ContentHash()})
		}
		job, release, err := s.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindChat, Model: "m", PromptVersion: prompt}, items)
		if err != nil {
			t.Fatal(err)
		}
		release.Release()
		return job
	}
	done, failed := claim("v1"), claim("v2")
	claim("v3") // open
	done.Status, done.Stored = store.BatchDone, 3
	failed.Status = store.BatchFailed
	for _, j := range []store.BatchJob{done, failed} {
		if err := s.FinishBatchJob(ctx, j, nil); err != nil {
			t.Fatal(err)
		}
	}
	var n int64
	if err := s.Pool().QueryRow(ctx, "SELECT count(*) FROM batch_items WHERE job_id = ANY($1)",
		[]int64{done.ID, failed.ID}).Scan(&n); err != nil {
		t.Fatal(err)
	}
	if n != 0 {
		t.Errorf("%d items of the closed jobs are left, want none", n)
	}
	if got := countRows(t, s, "batch_items"); got != 3 {
		t.Errorf("%d items in all, want the open job's 3", got)
	}
	jobs, err := s.BatchJobs(ctx, "")
	if err != nil || len(jobs) != 3 {
		t.Fatalf("BatchJobs = %+v, %v; want the 3 jobs listed", jobs, err)
	}
	for _, j := range jobs {
		if j.ID == done.ID && (j.Status != store.BatchDone || j.Total != 3 || j.Stored != 3) {
			t.Errorf("the done job is listed as %+v, want done with 3 papers stored", j)
		}
	}
	// The open job still holds its papers' TL;DRs.
	c, err := s.CountStale(ctx, store.Selection{Work: paper.Work{Model: "m", PromptVersion: "v3"}})
	if err != nil || c.TLDRs != 0 {
		t.Errorf("v3 target: %+v, %v; want no TL;DR stale (the open job holds them)", c, err)
	}
}
