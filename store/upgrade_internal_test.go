package store

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/pressly/goose/v3"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
)

// TestArchivesOfEveryOlderSchemaKeepTheirRowsAndAnswers: an archive made by paperpipe at each
// older schema version — its rows written as that version's code wrote them, the columns it
// lacked left to the later migrations — is migrated to the last version and keeps every row,
// and the store answers about it as it did: the TL;DR shown, the vectors found, what is
// current and what is stale (nothing current is bought again), the open batch job's papers
// held, the offline model and the usage counters read.
func TestArchivesOfEveryOlderSchemaKeepTheirRowsAndAnswers(t *testing.T) {
	t.Parallel()
	probe := migratedStore(t)
	st, err := probe.MigrationStatus(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	last := st[len(st)-1].Version
	for from := int64(1); from < last; from++ {
		t.Run(fmt.Sprintf("from_%05d", from), func(t *testing.T) {
			t.Parallel()
			upgradeFrom(t, from)
		})
	}
}

func upgradeFrom(t *testing.T, from int64) {
	ctx := t.Context()
	s, err := Open(ctx, Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	if err := s.withProvider(ctx, "", func(p *goose.Provider) error {
		_, err := p.UpTo(ctx, from)
		return err
	}); err != nil {
		t.Fatalf("migrate up to %d: %v", from, err)
	}
	exec := func(sql string, args ...any) {
		t.Helper()
		if _, err := s.pool.Exec(ctx, sql, args...); err != nil {
			t.Fatalf("at version %d: %s: %v", from, sql, err)
		}
	}
	// a has a TL;DR and a vector of its text, b only of a text it no longer has.
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "Graph neural networks for molecules",
		Abstract: "We predict molecular properties with message passing.", Authors: []string{"A. Author"},
		Categories: []string{"cs.LG"}, URL: "https://arxiv.org/abs/2401.00001", Source: "arxiv",
		Published: time.Date(2024, 1, 2, 0, 0, 0, 0, time.UTC)}
	b := paper.Abstract{ID: "arxiv:2401.00002", Title: "Sparse attention at scale",
		Abstract: "Transformers attend to a few tokens each.", Categories: []string{"cs.CL"}}
	// c checks that a text of its own, read before the migrations ran, replaces its text: a row
	// from before 00008 has no known text time; and that its accented word, indexed as written
	// before 00013, is found without its accent (00014).
	c := paper.Abstract{ID: "arxiv:2401.00003", Title: "Bandits in the wild", Abstract: "Exploration in production, après Poincaré."}
	// d checks that a word with a soft hyphen in it, indexed as co-oper before 00016 (as
	// co\u00adoper before 00013), is found as the word (00017).
	d := paper.Abstract{ID: "arxiv:2401.00004", Title: "Co\u00adoperative bandits", Abstract: "Agents share what they learn."}
	for _, p := range []paper.Abstract{a, b, c, d} {
		exec(`INSERT INTO papers (id, title, abstract, authors, categories, published, url, source, content_hash)
			VALUES ($1, $2, $3, coalesce($4::text[], '{}'), coalesce($5::text[], '{}'), $6, nullif($7, ''), nullif($8, ''), $9)`,
			p.ID, p.Title, p.Abstract, p.Authors, p.Categories, nullTime(p.Published), p.URL, p.Source, p.ContentHash())
	}
	const model, prompt, oldHash = "gpt-x", "tldr-v1", "hash-of-an-older-text"
	exec(`INSERT INTO tldrs (paper_id, model, prompt_version, content_hash, tldr, validation, input_tokens, output_tokens)
		VALUES ($1, $2, $3, $4, 'Message passing predicts molecules.', 'ok', 120, 9),
		       ($5, $2, $3, $6, 'An old summary.', 'ok', 100, 8)`, a.ID, model, prompt, a.ContentHash(), b.ID, oldHash)
	var space int64
	if err := s.pool.QueryRow(ctx, `INSERT INTO embedding_spaces (model, dimensions, template, active)
		VALUES ('emb', 3, '{{.Title}}', true) RETURNING id`).Scan(&space); err != nil {
		t.Fatal(err)
	}
	// The index every version before 00009 made for a space of 3 dimensions (index kind hnsw).
	exec(fmt.Sprintf(`CREATE INDEX embeddings_hnsw_s%d ON embeddings
		USING hnsw ((embedding::vector(3)) vector_cosine_ops) WHERE space_id = %[1]d`, space))
	exec(`INSERT INTO embeddings (space_id, paper_id, content_hash, embedding) VALUES
		($1, $2, $3, '[1,0,0]'), ($1, $4, $5, '[0.9,0.1,0]')`, space, a.ID, a.ContentHash(), b.ID, oldHash)
	exec(`INSERT INTO api_usage (day, model, kind, requests, input_tokens, output_tokens)
		VALUES ((now() AT TIME ZONE 'UTC')::date, $1, 'chat', 2, 220, 17)`, model)
	target := BatchTarget(paper.KindChat, model, prompt, 0)
	if from >= 3 {
		// An open job buying b's TL;DR of its current text.
		var job int64
		if err := s.pool.QueryRow(ctx, `INSERT INTO batch_jobs (openai_batch_id, kind, target, model, prompt_version, status, total)
			VALUES ('batch_1', 'chat', $1, $2, $3, 'submitted', 1) RETURNING id`, target, model, prompt).Scan(&job); err != nil {
			t.Fatal(err)
		}
		exec(`INSERT INTO batch_items (job_id, paper_id, content_hash) VALUES ($1, $2, $3)`, job, b.ID, b.ContentHash())
		// Jobs closed before 00011 kept their papers, which that migration removes.
		for _, status := range []string{"done", "failed"} {
			var closed int64
			if err := s.pool.QueryRow(ctx, `INSERT INTO batch_jobs (openai_batch_id, kind, target, model, prompt_version, status, total)
				VALUES ('batch_' || $4, 'chat', $1, $2, $3, $4, 2) RETURNING id`, target, model, prompt, status).Scan(&closed); err != nil {
				t.Fatal(err)
			}
			exec(`INSERT INTO batch_items (job_id, paper_id, content_hash) VALUES ($1, $2, $3), ($1, $4, $5)`,
				closed, a.ID, a.ContentHash(), b.ID, b.ContentHash())
		}
	}
	if from >= 4 {
		exec(`INSERT INTO offline_models (name, documents, terms, components, dimensions, data)
			VALUES ('paperpipe-offline-tfidf-abc', 2, 10, 2, 3, '\x1f8b')`)
	}
	tables := []string{"papers", "tldrs", "embedding_spaces", "embeddings", "api_usage", "batch_jobs", "batch_items", "offline_models"}
	before := make(map[string]int64)
	for _, tb := range tables {
		var exists bool
		if err := s.pool.QueryRow(ctx, "SELECT to_regclass($1) IS NOT NULL", tb).Scan(&exists); err != nil {
			t.Fatal(err)
		}
		if exists {
			before[tb] = count(t, s, tb)
		}
	}

	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate from %d: %v", from, err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatalf("CheckSchema after migrating from %d: %v", from, err)
	}
	if from >= 3 && from < 11 {
		before["batch_items"] -= 4 // the closed jobs' papers go (00011); the open job's stays
	}
	for tb, n := range before {
		if got := count(t, s, tb); got != n {
			t.Errorf("%s: %d rows after migrating from %d, %d before", tb, got, from, n)
		}
	}

	ra, err := s.Paper(ctx, a.ID)
	if err != nil {
		t.Fatal(err)
	}
	if ra.TLDR == nil || ra.TLDR.Text != "Message passing predicts molecules." || !ra.Embedded ||
		ra.URL != a.URL || len(ra.Authors) != 1 || !ra.Published.Equal(a.Published) {
		t.Errorf("Paper(%s) after migrating from %d = %+v (TL;DR %+v), want its TL;DR, embedded, its metadata", a.ID, from, ra, ra.TLDR)
	}
	if rb, err := s.Paper(ctx, b.ID); err != nil || rb.TLDR != nil || rb.Embedded {
		t.Errorf("Paper(%s) after migrating from %d = %+v (%v), want no TL;DR and not embedded (both are of an older text)", b.ID, from, rb, err)
	}
	if sums, err := s.Summaries(ctx, b.ID); err != nil || len(sums) != 1 || sums[0].ContentHash != oldHash {
		t.Errorf("Summaries(%s) = %+v (%v), want its stale TL;DR", b.ID, sums, err)
	}
	cnt, err := s.Counts(ctx, Work{Model: model, PromptVersion: prompt, SpaceID: space})
	if err != nil || cnt != (Counts{Papers: 4, WithTLDR: 1, WithEmbedding: 1, TLDRsTotal: 2}) {
		t.Errorf("Counts after migrating from %d = %+v (%v), want 4 papers, 1 with a TL;DR, 1 embedded, 2 TL;DRs", from, cnt, err)
	}
	spaces, err := s.Spaces(ctx)
	if err != nil || len(spaces) != 1 || spaces[0].Index != IndexHNSW || spaces[0].IndexName == "" || !spaces[0].Active {
		t.Fatalf("Spaces after migrating from %d = %+v (%v), want the active hnsw space with its index", from, spaces, err)
	}
	if hits, err := s.Related(ctx, space, a.ID, 5); err != nil || len(hits) != 1 || hits[0].ID != b.ID {
		t.Errorf("Related(%s) after migrating from %d = %+v (%v), want %s", a.ID, from, hits, err, b.ID)
	}
	if hits, err := s.Search(ctx, space, []float32{1, 0, 0}, 5); err != nil || len(hits) != 2 || hits[0].ID != a.ID {
		t.Errorf("Search after migrating from %d = %+v (%v), want %s then %s", from, hits, err, a.ID, b.ID)
	}
	if hits, err := s.KeywordSearch(ctx, "molecules", 5); err != nil || len(hits) != 1 || hits[0].ID != a.ID {
		t.Errorf("KeywordSearch after migrating from %d = %+v (%v), want %s", from, hits, err, a.ID)
	}
	for _, q := range []string{"Poincare", "Poincaré", "apres"} {
		if hits, err := s.KeywordSearch(ctx, q, 5); err != nil || len(hits) != 1 || hits[0].ID != c.ID {
			t.Errorf("KeywordSearch(%q) after migrating from %d = %+v (%v), want %s", q, from, hits, err, c.ID)
		}
	}
	for _, q := range []string{"cooperative", "co\u00adoperative"} {
		if hits, err := s.KeywordSearch(ctx, q, 5); err != nil || len(hits) != 1 || hits[0].ID != d.ID {
			t.Errorf("KeywordSearch(%+q) after migrating from %d = %+v (%v), want %s", q, from, hits, err, d.ID)
		}
	}
	older := c
	older.Abstract, older.TextAt = "Exploration in production, revised.", time.Now().Add(-time.Hour)
	if p, err := s.UpsertPapers(ctx, []paper.Abstract{older}, Work{}); err != nil || !p[0].Changed {
		t.Errorf("a text of %s read an hour ago, after migrating from %d: %+v (%v), want it stored (the row has no text time)", c.ID, from, p, err)
	}
	// Ingested again unchanged (a follow's overlap), a needs nothing and b only what it lacks.
	p, err := s.UpsertPapers(ctx, []paper.Abstract{a, b}, Work{Model: model, PromptVersion: prompt, SpaceID: space})
	if err != nil {
		t.Fatal(err)
	}
	if p[0].New || p[0].Changed || p[0].NeedTLDR || p[0].NeedEmbedding {
		t.Errorf("%s ingested again after migrating from %d: %+v, want nothing new or needed", a.ID, from, p[0])
	}
	wantTLDR := from < 3 // otherwise the open batch job buys it
	if p[1].New || p[1].Changed || p[1].NeedTLDR != wantTLDR || !p[1].NeedEmbedding {
		t.Errorf("%s ingested again after migrating from %d: %+v, want NeedTLDR %v and NeedEmbedding", b.ID, from, p[1], wantTLDR)
	}
	// A newer text of a replaces the stored one.
	newer := a
	newer.Abstract = "We predict molecular properties with equivariant message passing."
	if p, err := s.UpsertPapers(ctx, []paper.Abstract{newer}, Work{Model: model, PromptVersion: prompt}); err != nil ||
		!p[0].Changed || !p[0].NeedTLDR {
		t.Errorf("a newer text of %s after migrating from %d: %+v (%v), want it stored and its TL;DR needed", a.ID, from, p, err)
	}
	if from >= 3 {
		if jobs, err := s.BatchJobs(ctx, target); err != nil || len(jobs) != 1 || !jobs[0].Open() || jobs[0].OpenAIID != "batch_1" {
			t.Errorf("BatchJobs(%s) after migrating from %d = %+v (%v), want the open job", target, from, jobs, err)
		}
		if jobs, err := s.BatchJobs(ctx, ""); err != nil || len(jobs) != 3 {
			t.Errorf("BatchJobs after migrating from %d = %+v (%v), want the 3 jobs, the closed ones too", from, jobs, err)
		}
	}
	if from >= 4 {
		if m, err := s.OfflineModel(ctx, "paperpipe-offline-tfidf-abc"); err != nil || m.Dimensions != 3 || len(m.Data) != 2 {
			t.Errorf("OfflineModel after migrating from %d = %+v (%v)", from, m, err)
		}
	}
	if u, err := s.Usage(ctx, time.Now().Add(-48*time.Hour)); err != nil || len(u) != 1 || u[0].InputTokens != 220 {
		t.Errorf("Usage after migrating from %d = %+v (%v), want the day's counters", from, u, err)
	}
}

func nullTime(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

func count(t *testing.T, s *Store, table string) int64 {
	t.Helper()
	var n int64
	if err := s.pool.QueryRow(t.Context(), "SELECT count(*) FROM "+table).Scan(&n); err != nil {
		t.Fatal(err)
	}
	return n
}

// TestMigrationGivesWayToASessionHoldingItsTable: a migration that alters a table waits for
// every session that holds it — a long search of the previous release's pods, a transaction
// left open — and every query of the table queues behind the waiting migration: without a
// bound, one long search stalls all reads and writes for as long as it runs (the lock queue
// pile-up). The migration must wait a bounded time at a try, let the queue through between
// tries, give up naming the session after its tries with nothing of it applied, and apply
// once the table is free; the pooled connections keep the server's lock_timeout.
func TestMigrationGivesWayToASessionHoldingItsTable(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	// The version before 00008, which adds a column to papers.
	migrateUpTo(t, s, 7)
	holder, err := s.pool.Begin(ctx) // a long search's transaction
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	var pid int32
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid() FROM (SELECT count(*) FROM papers) p").Scan(&pid); err != nil {
		t.Fatal(err)
	}

	s.ddlWait = ddlWait{timeout: "50ms", tries: 3, pause: 10 * time.Millisecond}
	logs := &lockedBuffer{}
	s.log = slog.New(slog.NewTextHandler(logs, nil))
	migrateCtx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	err = s.Migrate(migrateCtx)
	if err == nil || migrateCtx.Err() != nil {
		t.Fatalf("Migrate while another session holds papers: %v; want it to give up after its tries", err)
	}
	// Three tries: two that say they try again, and the refusal.
	if n := strings.Count(logs.String(), "trying again"); n != 2 || !strings.Contains(err.Error(), "(3 tries of 50ms)") {
		t.Errorf("Migrate with 3 tries said it tried again %d times, and gave up with %q; want 2 times, then 3 tries said:\n%s", n, err, logs.String())
	}
	for _, want := range []string{"00008_papers_text_at.sql could not lock its table", fmt.Sprintf("pid %d (client backend, idle in transaction", pid)} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Migrate's refusal %q does not say %q", err, want)
		}
	}
	if st, err := s.MigrationStatus(ctx); err != nil || !st[6].Applied || st[7].Applied {
		t.Fatalf("after the refusal: %+v (%v), want 00007 applied and 00008 not", st, err)
	}

	// Meanwhile the table's queries are not stalled for as long as the holder runs: each waits
	// one try at most.
	s.ddlWait = ddlWait{timeout: "100ms", tries: 1000, pause: 100 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	reader, err := pgx.Connect(ctx, s.pool.Config().ConnConfig.ConnString())
	if err != nil {
		t.Fatal(err)
	}
	defer reader.Close(context.Background())
	for range 3 {
		// Once the migration waits for the table, a read queues behind it: it waits for the
		// migration's try to end, not for the holder.
		for waiting := false; !waiting; {
			if err := reader.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_locks
				WHERE NOT granted AND relation = 'papers'::regclass AND pid <> $1)`, pid).Scan(&waiting); err != nil {
				t.Fatal(err)
			}
			time.Sleep(5 * time.Millisecond)
		}
		readCtx, cancel := context.WithTimeout(ctx, 10*time.Second)
		var n int
		err := reader.QueryRow(readCtx, "SELECT count(*) FROM papers").Scan(&n)
		cancel()
		if err != nil {
			t.Fatalf("a read of papers while a migration waits for it: %v; want it served between the migration's tries", err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Migrate returned %v while the table was held", err)
	default:
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Migrate once the table is free: %v", err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
	conns := s.pool.AcquireAllIdle(ctx)
	defer func() {
		for _, c := range conns {
			c.Release()
		}
	}()
	for _, c := range conns {
		var timeout string
		if err := c.QueryRow(ctx, "SHOW lock_timeout").Scan(&timeout); err != nil || timeout != "0" {
			t.Errorf("a pooled connection's lock_timeout after Migrate: %q (%v), want the server's 0", timeout, err)
		}
	}
}

// TestMigrateSaysWhoseMigrationsItWaitsFor: pods of a new release start together and each
// migrates at start; one takes the migration lock, and the others wait for it — for as long as
// that migration runs or waits for its table. A waiting process must say that it waits and
// for whom (the holder's pid), not sit silent at start, and go on once the lock is released.
func TestMigrateSaysWhoseMigrationsItWaitsFor(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	logs := &lockedBuffer{}
	s, err := Open(ctx, Config{URL: pgtest.URL(t), Logger: slog.New(slog.NewTextHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	other, err := pgx.Connect(ctx, s.pool.Config().ConnConfig.ConnString()) // the pod that migrates
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close(context.Background())
	var pid int32
	if err := other.QueryRow(ctx, "SELECT pg_backend_pid(), pg_advisory_lock($1) FROM (SELECT) x",
		migrationLockID(currentSchema(t, s))).Scan(&pid, nil); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	want := fmt.Sprintf("pid %d from ", pid)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), want) {
		if time.Now().After(deadline) {
			_, _ = other.Exec(ctx, "SELECT pg_advisory_unlock_all()")
			<-done
			t.Fatalf("Migrate waiting for the migration lock logged %q; want it to say it waits, held by %s…", logs, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), "waiting for another process's migrations") {
		t.Errorf("logs %q do not say why the process waits", logs)
	}
	if _, err := other.Exec(ctx, "SELECT pg_advisory_unlock_all()"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Migrate once the lock is released: %v", err)
	}
	if err := s.CheckSchema(ctx); err != nil {
		t.Fatal(err)
	}
}

func currentSchema(t *testing.T, s *Store) string {
	t.Helper()
	var schema string
	if err := s.pool.QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	return schema
}

// lockedBuffer is a log destination safe for the store's goroutines and the test.
type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Migrations 00014 and 00017 index again, in batches, the papers stored with a letter outside
// ASCII, and with a character that shows nothing inside a word; a worker's write may hold one of
// them locked for longer than the migrations' lock_timeout (it waits up to RowLockTimeout
// itself). The batch lets go and is tried again, and the migration ends once the paper is free,
// instead of failing after Migrate's tries, each one from the first paper again.
func TestFoldingStoredPapersWaitsForALockedPaper(t *testing.T) {
	t.Parallel()
	for _, c := range []struct {
		name          string
		before, after int64 // the version the paper is stored at, and the one before the batches
		title, q      string
	}{
		{"00014", 12, 13, "Nyström features", "nystrom"},
		{"00017", 15, 16, "Co\u00adoperative features", "cooperative"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			waitsForALockedPaper(t, c.before, c.after, c.title, c.q)
		})
	}
}

func waitsForALockedPaper(t *testing.T, before, after int64, title, q string) {
	ctx := t.Context()
	s, err := Open(ctx, Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	migrateUpTo(t, s, before)
	if _, err := s.pool.Exec(ctx, `INSERT INTO papers (id, title, abstract, content_hash)
		VALUES ('arxiv:2401.00001', $1, 'Kernels, approximated.', 'h')`, title); err != nil {
		t.Fatal(err)
	}
	migrateUpTo(t, s, after)
	holder, err := s.pool.Begin(ctx) // a worker's write
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	var holderPID int32
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid() FROM papers WHERE id = 'arxiv:2401.00001' FOR UPDATE").Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	s.ddlWait = ddlWait{timeout: "50ms", tries: 2, pause: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	// The batch waited out its lock_timeout and sleeps before it is tried again.
	for sleeping := false; !sleeping; {
		select {
		case err := <-done:
			t.Fatalf("Migrate while a paper to index again is locked: %v; want it to wait for the paper", err)
		default:
		}
		if err := s.pool.QueryRow(ctx, `SELECT EXISTS (SELECT FROM pg_stat_activity
			WHERE wait_event = 'PgSleep' AND query LIKE '%papers_tsv_of%')`).Scan(&sleeping); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Migrate once the paper is free: %v", err)
	}
	if hits, err := s.KeywordSearch(ctx, q, 5); err != nil || len(hits) != 1 {
		t.Errorf("KeywordSearch(%s) after the migration = %+v, %v; want the paper", q, hits, err)
	}
}

// A migration whose session ends under it — the database restarted, failed over, or an
// administrator ended the session; here pg_terminate_backend, which is what a restart looks
// like to a client — while 00017 indexes the stored papers again in batches: Migrate says that
// the database went away during that migration, that what it committed stays, and to start
// again, which finishes it. It answered goose's "partial migration error (type:sql,version:17):
// FATAL: terminating connection due to administrator command (SQLSTATE 57P01); reset the
// migrations' lock_timeout: driver: bad connection" and "failed to execute pg_advisory_unlock:
// sql: connection is already closed", saying neither what had happened nor what to do.
func TestAMigrationWhoseSessionEndsSaysToStartAgain(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	s, err := Open(ctx, Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	migrateUpTo(t, s, 15)
	if _, err := s.pool.Exec(ctx, `INSERT INTO papers (id, title, abstract, content_hash)
		VALUES ('arxiv:2401.00001', 'Co`+"\u00ad"+`operative features', 'Kernels, approximated.', 'h')`); err != nil {
		t.Fatal(err)
	}
	migrateUpTo(t, s, 16)
	holder, err := s.pool.Begin(ctx) // keeps 00017 at its batch, as a big archive would
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	var holderPID int32
	if err := holder.QueryRow(ctx, "SELECT pg_backend_pid() FROM papers WHERE id = 'arxiv:2401.00001' FOR UPDATE").Scan(&holderPID); err != nil {
		t.Fatal(err)
	}
	s.ddlWait = ddlWait{timeout: "50ms", tries: 2, pause: 10 * time.Millisecond}
	done := make(chan error, 1)
	go func() { done <- s.Migrate(ctx) }()
	for ended := false; !ended; time.Sleep(10 * time.Millisecond) {
		select {
		case err := <-done:
			t.Fatalf("Migrate while a paper to index again is locked: %v; want it to wait for the paper", err)
		default:
		}
		// Only this test's migration, waiting for this test's row: every test migrates its own
		// schema, and another's 00017 runs the same statement meanwhile (ended, it failed).
		if err := s.pool.QueryRow(ctx, `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%papers_tsv_of%'`, holderPID).Scan(&ended); err != nil {
			t.Fatal(err)
		}
	}
	err = <-done
	msg := fmt.Sprint(err)
	if err == nil || !errors.Is(err, paper.ErrUnavailable) || !strings.Contains(msg, "00017_fold_invisible_stored.sql") ||
		!strings.Contains(msg, "start again") || strings.Contains(msg, "pg_advisory_unlock") || strings.Contains(msg, "partial migration error") {
		t.Errorf("Migrate whose session was ended during 00017: %v\nwant it to say the database went away during 00017, and to start again", err)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := s.Migrate(ctx); err != nil {
		t.Fatalf("Migrate again: %v", err)
	}
	if hits, err := s.KeywordSearch(ctx, "cooperative", 5); err != nil || len(hits) != 1 {
		t.Errorf("KeywordSearch(cooperative) after the migration started again = %+v, %v; want the paper", hits, err)
	}
}

// migrateUpTo applies s's migrations up to version v, as an archive of the release that ended
// there would have them.
func migrateUpTo(t *testing.T, s *Store, v int64) {
	t.Helper()
	ctx := t.Context()
	if err := s.withProvider(ctx, "", func(p *goose.Provider) error { _, err := p.UpTo(ctx, v); return err }); err != nil {
		t.Fatal(err)
	}
}
