package store_test

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// exportFixture stores n papers, each with a TL;DR of m/v1 and a vector in a 3-dimension space.
func exportFixture(t *testing.T, s *store.Store, n int) ([]paper.Abstract, paper.Space) {
	t.Helper()
	ctx := t.Context()
	papers := abstracts(n)
	for i := range papers {
		papers[i].Categories = []string{"cs.LG"}
		if i%2 == 1 {
			papers[i].Categories = []string{"cs.CL", "cs.LG"}[:1]
		}
	}
	upsert(t, s, papers, store.Work{})
	sp, err := s.EnsureSpace(ctx, paper.Space{Model: "m-embed", Dimensions: 3, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	var (
		sums []paper.Summary
		embs []paper.Embedding
	)
	for i, p := range papers {
		sums = append(sums, paper.Summary{PaperID: p.ID, Text: "TL;DR of " + p.Title, Model: "m", PromptVersion: "v1",
			ContentHash: p.ContentHash(), Validation: paper.ValidOK})
		embs = append(embs, paper.Embedding{PaperID: p.ID, Vector: []float32{float32(i + 1), 1, 0.5}, ContentHash: p.ContentHash()})
	}
	if _, err := s.SaveSummaries(ctx, sums); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	return papers, sp
}

func exportAll(t *testing.T, s *store.Store, sel store.ExportSelection) []store.ExportedPaper {
	t.Helper()
	var out []store.ExportedPaper
	if err := s.Export(t.Context(), sel, nil, func(p store.ExportedPaper) error {
		out = append(out, p)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestExportReadsEveryPaperWithTheTLDRAndVectorOfItsCurrentText(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers, sp := exportFixture(t, s, 6)
	// Paper 2's text changed: its TL;DR and vector are of the old text, and go with it no more.
	changed := papers[1]
	changed.Abstract += " Revised."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})
	// Another model's TL;DR is not the one asked for.
	if _, err := s.SaveSummaries(ctx, []paper.Summary{{PaperID: papers[2].ID, Text: "other", Model: "m2", PromptVersion: "v1",
		ContentHash: papers[2].ContentHash(), Validation: paper.ValidOK}}); err != nil {
		t.Fatal(err)
	}
	var total int64 = -1
	var got []store.ExportedPaper
	err := s.Export(ctx, store.ExportSelection{TLDR: store.TLDRKeep{Model: "m", PromptVersion: "v1"}, SpaceID: sp.ID},
		func(n int64) { total = n },
		func(p store.ExportedPaper) error { got = append(got, p); return nil })
	if err != nil {
		t.Fatal(err)
	}
	if total != 6 || len(got) != 6 {
		t.Fatalf("counted %d, read %d papers, want 6", total, len(got))
	}
	for i, p := range got {
		want := papers[i]
		if i == 1 {
			want = changed
		}
		if p.ID != want.ID || p.Title != want.Title || p.Abstract.Abstract != want.Abstract || !slices.Equal(p.Authors, want.Authors) ||
			!slices.Equal(p.Categories, want.Categories) || p.ContentHash != want.ContentHash() || p.CreatedAt.IsZero() || p.UpdatedAt.IsZero() {
			t.Errorf("paper %d = %+v, want %+v with its hash %s and times", i, p, want, want.ContentHash())
		}
		switch {
		case i == 1 && (p.TLDR != nil || p.Embedding != nil):
			t.Errorf("%s: the TL;DR %+v and vector %+v of its old text were exported with its new one", p.ID, p.TLDR, p.Embedding)
		case i != 1 && (p.TLDR == nil || p.TLDR.Text != "TL;DR of "+want.Title || p.TLDR.Model != "m" || p.TLDR.PromptVersion != "v1"):
			t.Errorf("%s: TL;DR %+v, want m v1's", p.ID, p.TLDR)
		case i != 1 && (p.Embedding == nil || !slices.Equal(p.Embedding.Vector, []float32{float32(i + 1), 1, 0.5})):
			t.Errorf("%s: vector %+v, want its own", p.ID, p.Embedding)
		}
	}
	// Without a TL;DR model or a space, none goes with the papers.
	for _, p := range exportAll(t, s, store.ExportSelection{}) {
		if p.TLDR != nil || p.Embedding != nil {
			t.Errorf("%s: exported with %+v, %+v, asked for neither", p.ID, p.TLDR, p.Embedding)
		}
	}
}

func TestExportFilters(t *testing.T) {
	t.Parallel()
	s := setup(t)
	papers, _ := exportFixture(t, s, 6)
	ids := func(ps []store.ExportedPaper) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	if got := ids(exportAll(t, s, store.ExportSelection{Category: "cs.CL"})); !slices.Equal(got, []string{papers[1].ID, papers[3].ID, papers[5].ID}) {
		t.Errorf("--category cs.CL: %v", got)
	}
	if got := ids(exportAll(t, s, store.ExportSelection{IDs: []string{papers[4].ID, "arxiv:9999.99999", papers[0].ID}})); !slices.Equal(got, []string{papers[0].ID, papers[4].ID}) {
		t.Errorf("--ids: %v", got)
	}
	if got := exportAll(t, s, store.ExportSelection{IDs: []string{}}); len(got) != 0 {
		t.Errorf("an empty list of ids exported %d papers", len(got))
	}
	var now time.Time
	if err := s.Pool().QueryRow(t.Context(), `SELECT now()`).Scan(&now); err != nil {
		t.Fatal(err)
	}
	changed := papers[2]
	changed.Title += " (revised)"
	upsert(t, s, []paper.Abstract{changed}, store.Work{})
	if got := ids(exportAll(t, s, store.ExportSelection{Since: now})); !slices.Equal(got, []string{changed.ID}) {
		t.Errorf("--since before a change: %v, want the changed paper alone", got)
	}
	// A correction of metadata alone (a later record of the paper with its categories) is
	// exported, and does not date the paper: its updated_at is its text's, as README says.
	before := exportAll(t, s, store.ExportSelection{IDs: []string{papers[3].ID}})[0]
	corrected := papers[3]
	corrected.Categories = []string{"cs.CL", "stat.ML"}
	upsert(t, s, []paper.Abstract{corrected}, store.Work{})
	after := exportAll(t, s, store.ExportSelection{IDs: []string{papers[3].ID}})[0]
	if !slices.Equal(after.Categories, corrected.Categories) || !after.UpdatedAt.Equal(before.UpdatedAt) {
		t.Errorf("a paper whose categories alone changed: categories %v, updated_at %v (was %v); want the new categories and the same time",
			after.Categories, after.UpdatedAt, before.UpdatedAt)
	}
	if got := ids(exportAll(t, s, store.ExportSelection{Since: now})); !slices.Equal(got, []string{changed.ID}) {
		t.Errorf("--since before a change of metadata alone: %v, want the paper whose text changed alone", got)
	}
}

// TestExportIsOneSnapshotWhileWritersGoOn writes, while an export reads, what workers and
// ingest write: a new paper, a paper's new text, its new TL;DR and vector. None waits for the
// export, and the export sees none of them: the archive as it was when it began, every paper
// whole. The first writes commit between the count and the query of the papers (in counted):
// one query sees the archive as it was when it began under any isolation level, the count and
// the papers agree only in one snapshot.
func TestExportIsOneSnapshotWhileWritersGoOn(t *testing.T) {
	t.Parallel()
	url := pgtest.URL(t)
	s := open(t, url)
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	papers, sp := exportFixture(t, s, 200)
	writer := open(t, url)
	last := papers[len(papers)-1]
	changed := last
	changed.Abstract = "An entirely new abstract of the last paper."
	var (
		got     []store.ExportedPaper
		counted int64
		wrote   bool
	)
	var countedWrite error
	err := s.Export(t.Context(), store.ExportSelection{TLDR: store.TLDRKeep{Model: "m", PromptVersion: "v1"}, SpaceID: sp.ID},
		func(n int64) {
			counted = n
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if _, err := writer.UpsertPapers(ctx, []paper.Abstract{changed, {ID: "arxiv:2499.00001", Title: "New", Abstract: "A paper stored meanwhile."}}, store.Work{}); err != nil {
				countedWrite = fmt.Errorf("upsert between the count and the papers: %w", err)
			}
		},
		func(p store.ExportedPaper) error {
			got = append(got, p)
			if wrote || countedWrite != nil {
				return countedWrite
			}
			wrote = true
			// A writer that waited for the export would wait until it ends: the callback
			// would never return. The deadline turns that into a failure.
			ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
			defer cancel()
			if _, err := writer.UpsertPapers(ctx, []paper.Abstract{{ID: "arxiv:2499.00002", Title: "Newer", Abstract: "Another paper stored meanwhile."}}, store.Work{}); err != nil {
				return fmt.Errorf("upsert during the export: %w", err)
			}
			if _, err := writer.SaveSummaries(ctx, []paper.Summary{{PaperID: changed.ID, Text: "new TL;DR", Model: "m", PromptVersion: "v1",
				ContentHash: changed.ContentHash(), Validation: paper.ValidOK}}); err != nil {
				return fmt.Errorf("save a TL;DR during the export: %w", err)
			}
			if _, err := writer.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{{PaperID: changed.ID, Vector: []float32{9, 9, 9}, ContentHash: changed.ContentHash()}}); err != nil {
				return fmt.Errorf("save a vector during the export: %w", err)
			}
			return nil
		})
	if err != nil {
		t.Fatal(err)
	}
	if counted != 200 || len(got) != 200 {
		t.Fatalf("counted %d, exported %d papers, want the 200 of the start", counted, len(got))
	}
	p := got[len(got)-1]
	if p.ID != last.ID || p.Abstract.Abstract != last.Abstract || p.ContentHash != last.ContentHash() ||
		p.TLDR == nil || p.TLDR.Text != "TL;DR of "+last.Title || p.Embedding == nil || p.Embedding.Vector[0] != 200 {
		t.Errorf("the last paper, changed during the export, was exported as %+v (TL;DR %+v, vector %+v); want it as it was at the start", p, p.TLDR, p.Embedding)
	}
	// The writes were made, and a new export sees them.
	now := exportAll(t, s, store.ExportSelection{TLDR: store.TLDRKeep{Model: "m", PromptVersion: "v1"}, SpaceID: sp.ID})
	if len(now) != 202 {
		t.Fatalf("after the writes: %d papers, want 202", len(now))
	}
}

// TestExportStopsAtTheFirstErrorOfItsCallback: a full disk or a closed pipe stops the export
// with the writer's own error, at once.
func TestExportStopsAtTheFirstErrorOfItsCallback(t *testing.T) {
	t.Parallel()
	s := setup(t)
	exportFixture(t, s, 50)
	full := fmt.Errorf("write: no space left on device")
	n := 0
	err := s.Export(t.Context(), store.ExportSelection{}, nil, func(store.ExportedPaper) error {
		n++
		return full
	})
	if err != full || n != 1 {
		t.Fatalf("Export = %v after %d papers, want the callback's own error after 1", err, n)
	}
	// The store is usable after: the cancelled query left no connection in a bad state.
	if got := exportAll(t, s, store.ExportSelection{}); len(got) != 50 {
		t.Fatalf("export after a failed one: %d papers, want 50", len(got))
	}
}

// TestAFailedExportStopsItsQuery: an export whose writer fails (a full disk) cancels its
// query rather than reading the rest of the archive to close it — every remaining row of a
// big archive, gigabytes and minutes of the server's work, before the error was told. Here the
// server cannot produce the rows after the first twenty (papers is made a view whose filter
// waits, for those, for a lock the test holds), so a reader of the rest waits until its
// context ends (it did: 30 s, the query sent under the context the cancel did not end).
func TestAFailedExportStopsItsQuery(t *testing.T) {
	t.Parallel()
	// Papers read in id order through their primary key, as on a big archive, not sorted
	// whole first (which would read every row before the first is returned).
	url := withParams(t, pgtest.URL(t), map[string]string{"enable_seqscan": "off", "enable_sort": "off"})
	s := open(t, url)
	ctx := t.Context()
	if err := s.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	papers := abstracts(60)
	for i := range papers {
		papers[i].Abstract += " " + strings.Repeat("Sparse experts route each token by a learned gate. ", 40) // ~2 KB
	}
	upsert(t, s, papers, store.Work{})
	if _, err := s.Pool().Exec(ctx, `
		CREATE FUNCTION export_gate(id text) RETURNS boolean LANGUAGE plpgsql AS $$
		BEGIN
			IF id > 'arxiv:2401.00020' THEN PERFORM pg_advisory_xact_lock_shared(4242); END IF;
			RETURN true;
		END $$;
		ALTER TABLE papers RENAME TO gated_papers;
		CREATE VIEW papers AS SELECT * FROM gated_papers WHERE export_gate(id)`); err != nil {
		t.Fatal(err)
	}
	// Held by a session outside any transaction: one idle in a transaction is ended after
	// IdleInTransactionTimeout, its lock with it.
	holder, err := s.Pool().Acquire(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	if _, err := holder.Exec(ctx, "SELECT pg_advisory_lock(4242)"); err != nil {
		t.Fatal(err)
	}
	defer holder.Exec(context.Background(), "SELECT pg_advisory_unlock(4242)")
	ectx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	full := fmt.Errorf("write: no space left on device")
	n := 0
	err = s.Export(ectx, store.ExportSelection{}, nil, func(store.ExportedPaper) error {
		n++
		return full
	})
	if err != full || n != 1 || ectx.Err() != nil {
		t.Fatalf("Export = %v after %d papers, its context %v; want the callback's error after 1, the query stopped, not read to its end", err, n, ectx.Err())
	}
}

// TestExportOutlivesAReaderSlowAtItsEnd: the last rows of an export, sent by the server into
// the sockets' buffers, may take the caller longer than the session's
// idle_in_transaction_session_timeout (store.IdleInTransactionTimeout, 10 s) to consume — a
// pipe to an upload, an import on another host — and the server, done with the query, waits
// idle in the transaction and ends the session. Every paper was read by then, from the one
// snapshot: the export is whole. It failed at its commit ("terminating connection due to
// idle-in-transaction timeout"), and `export -o FILE` removed the whole file it had written.
// Here the tail is the whole archive, and the reader waits for the server to end the session
// (a timeout of 300 ms) before it goes on.
func TestExportOutlivesAReaderSlowAtItsEnd(t *testing.T) {
	t.Parallel()
	base := pgtest.URL(t)
	const app = "export-slow-reader"
	s := open(t, withParams(t, base, map[string]string{"idle_in_transaction_session_timeout": "300", "application_name": app}))
	if err := s.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	watcher := open(t, base)
	papers, sp := exportFixture(t, s, 6)
	ctx := t.Context()
	// state reports how many sessions of the export's store are idle in a transaction.
	idleInTx := func() int {
		var n int
		if err := watcher.Pool().QueryRow(ctx, `SELECT count(*) FROM pg_stat_activity
			WHERE application_name = $1 AND state = 'idle in transaction'`, app).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	var got []string
	err := s.Export(ctx, store.ExportSelection{TLDR: store.TLDRKeep{Model: "m", PromptVersion: "v1"}, SpaceID: sp.ID}, nil,
		func(p store.ExportedPaper) error {
			if len(got) == 0 {
				// The server sent every row, and waits idle in the transaction; then it ends it.
				deadline := time.Now().Add(20 * time.Second)
				for idleInTx() == 0 {
					if time.Now().After(deadline) {
						t.Fatal("the export's session was never idle in its transaction")
					}
					time.Sleep(20 * time.Millisecond)
				}
				for idleInTx() != 0 {
					if time.Now().After(deadline) {
						t.Fatal("the server did not end the export's idle session")
					}
					time.Sleep(20 * time.Millisecond)
				}
			}
			got = append(got, p.ID)
			return nil
		})
	if err != nil {
		t.Fatalf("Export with a reader slow at its end: %v", err)
	}
	if len(got) != len(papers) {
		t.Fatalf("exported %d papers, want %d", len(got), len(papers))
	}
	// The store goes on: the pool dropped the ended session.
	if _, err := s.Paper(ctx, papers[0].ID); err != nil {
		t.Fatalf("a read after the export: %v", err)
	}
}
