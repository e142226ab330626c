package store_test

import (
	"context"
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/pgvector/pgvector-go"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A worker's save of an output made from a paper's old text can run from a snapshot taken
// before the text changed, and reach the outputs table after another worker has saved the
// new text's output. These tests play that interleaving with real transactions and check that
// the old output never replaces the new one: the paper then counts as done, not as to redo.

// oldOverNew plays it for paper old, whose text becomes new's: the change (what UpsertPapers
// writes) is made in one open transaction, the new text's output written by writeNew in a
// second; save, the call under test, runs on its own connections meanwhile, and once it is
// waiting for a lock both transactions commit. It returns save's error.
func oldOverNew(t *testing.T, s *store.Store, old, new paper.Abstract,
	writeNew func(tx pgx.Tx) error, save func(ctx context.Context, saver *store.Store) error) error {
	t.Helper()
	ctx := t.Context()
	change, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = change.Rollback(ctx) }()
	if _, err := change.Exec(ctx, "UPDATE papers SET abstract = $2, content_hash = $3 WHERE id = $1",
		new.ID, new.Abstract, new.ContentHash()); err != nil {
		t.Fatal(err)
	}
	other, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = other.Rollback(ctx) }()
	if err := writeNew(other); err != nil {
		t.Fatal(err)
	}

	saver, app := openWatched(t, s, "old-saver")
	done := make(chan error, 1)
	go func() { done <- save(ctx, saver) }()
	waitForLock(t, s, app, done, "the old text's save")
	if err := change.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := other.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	return <-done
}

func TestVectorOfAnOldTextNeverReplacesTheNewTexts(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		save func(t *testing.T, ctx context.Context, saver *store.Store, spaceID int64, e paper.Embedding) error
	}{
		{"SaveEmbeddings", func(t *testing.T, ctx context.Context, saver *store.Store, spaceID int64, e paper.Embedding) error {
			n, err := saver.SaveEmbeddings(ctx, spaceID, []paper.Embedding{e})
			if err == nil && n != 0 {
				t.Errorf("SaveEmbeddings of the old text's vector saved %d, want 0", n)
			}
			return err
		}},
		{"LoadEmbeddings", func(t *testing.T, ctx context.Context, saver *store.Store, spaceID int64, e paper.Embedding) error {
			res, err := saver.LoadEmbeddings(ctx, spaceID, []paper.Embedding{e})
			if err == nil && (res.Loaded != 0 || res.Stale != 1) {
				t.Errorf("LoadEmbeddings of the old text's vector = %+v, want it skipped as stale", res)
			}
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := t.Context()
			sp := space(t, s, "race", 2)
			old := abstracts(1)[0]
			upsert(t, s, []paper.Abstract{old}, store.Work{})
			new := old
			new.Abstract = "A rewritten abstract."

			err := oldOverNew(t, s, old, new, func(tx pgx.Tx) error {
				_, err := tx.Exec(ctx, "INSERT INTO embeddings (space_id, paper_id, content_hash, embedding) VALUES ($1, $2, $3, '[0,1]')",
					sp.ID, new.ID, new.ContentHash())
				return err
			}, func(ctx context.Context, saver *store.Store) error {
				return tc.save(t, ctx, saver, sp.ID, embeddingOf(old, 1, 0))
			})
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			assertStoredHash(t, s, "SELECT content_hash FROM embeddings WHERE paper_id = $1", new)
			if rec, err := s.Paper(ctx, new.ID); err != nil || !rec.Embedded {
				t.Errorf("Paper.Embedded = %v, %v; want true: the new text's vector is stored", rec.Embedded, err)
			}
		})
	}
}

func TestSaveSummariesNeverReplacesANewTextsSummary(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	old := abstracts(1)[0]
	upsert(t, s, []paper.Abstract{old}, store.Work{})
	new := old
	new.Abstract = "A rewritten abstract."

	err := oldOverNew(t, s, old, new, func(tx pgx.Tx) error {
		_, err := tx.Exec(ctx, `INSERT INTO tldrs (paper_id, model, prompt_version, content_hash, tldr, validation)
			VALUES ($1, $2, $3, $4, 'The new text, in one line.', $5)`, new.ID, testModel, testPrompt, new.ContentHash(), paper.ValidOK)
		return err
	}, func(ctx context.Context, saver *store.Store) error {
		n, err := saver.SaveSummaries(ctx, []paper.Summary{summaryOf(old, testModel, testPrompt, "The old text, in one line.")})
		if err == nil && n != 0 {
			t.Errorf("SaveSummaries of the old text's TL;DR saved %d, want 0", n)
		}
		return err
	})
	if err != nil {
		t.Fatalf("SaveSummaries: %v", err)
	}
	assertStoredHash(t, s, "SELECT content_hash FROM tldrs WHERE paper_id = $1", new)
}

// assertStoredHash checks that query (one row, for $1 = p's id) gives p's content hash.
func assertStoredHash(t *testing.T, s *store.Store, query string, p paper.Abstract) {
	t.Helper()
	var got string
	if err := s.Pool().QueryRow(t.Context(), query, p.ID).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != p.ContentHash() {
		t.Errorf("stored output is of content hash %s, want the new text's %s (the old text's output replaced it)", got, p.ContentHash())
	}
}

// openWatched opens a second store on s's database whose connections carry an
// application_name, so that waitForLock can see them wait; it returns the store and the name.
func openWatched(t *testing.T, s *store.Store, role string) (*store.Store, string) {
	t.Helper()
	return openWatchedWith(t, s, role, store.Config{})
}

// openWatchedWith is openWatched with the settings of cfg (its URL is set).
func openWatchedWith(t *testing.T, s *store.Store, role string, cfg store.Config) (*store.Store, string) {
	t.Helper()
	app := "paperpipe-" + role + "-" + time.Now().Format("150405.000000000")
	cfg.URL = withParams(t, s.Pool().Config().ConnString(), map[string]string{"application_name": app})
	w, err := store.Open(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(w.Close)
	return w, app
}

// withParams is the database URL conn with params set in its query.
func withParams(t *testing.T, conn string, params map[string]string) string {
	t.Helper()
	for k, v := range params {
		var err error
		if conn, err = pgtest.WithSetting(conn, k, v); err != nil {
			t.Fatal(err)
		}
	}
	return conn
}

// waitForLock returns once a connection named app waits for a lock; it fails the test if the
// call running there (what) returns on done first, or if 20 s go by.
func waitForLock(t *testing.T, s *store.Store, app string, done <-chan error, what string) {
	t.Helper()
	waitForSession(t, s, app, done, what, `wait_event_type = 'Lock'`)
}

// waitForSession returns once a connection named app is in the state cond (an SQL condition on
// pg_stat_activity); it fails the test if the call running there (what) returns on done
// first, or if 20 s go by.
func waitForSession(t *testing.T, s *store.Store, app string, done <-chan error, what, cond string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var there bool
		if err := s.Pool().QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE application_name = $1 AND (`+cond+`))`, app).Scan(&there); err != nil {
			t.Fatal(err)
		}
		if there {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("%s returned (%v) before it came to wait", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s did not come to wait within 20 s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestBuildSpaceIndexBesideAnotherSpaceLetsItsWritesGoOn: the index build at the end of a
// blue/green fill must not stop the active space's writers, and an interrupted build must not
// leave the space with an index queries cannot use.
func TestBuildSpaceIndexBesideAnotherSpaceLetsItsWritesGoOn(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps, active, fill := fillBesideActive(t, s, 3)
	indexValid := func() (exists, valid bool) {
		t.Helper()
		err := s.Pool().QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
			"embeddings_hnsw_s"+itoa(fill.ID)).Scan(&valid)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, false
		}
		if err != nil {
			t.Fatal(err)
		}
		return true, valid
	}

	// A worker's write to the active space is in flight: any index build waits for it.
	inFlight := writeInFlight(t, s, active.ID, ps[0])
	builder, app := openWatched(t, s, "builder")
	buildCtx, cancelBuild := context.WithCancel(ctx)
	defer cancelBuild()
	done := make(chan error, 1)
	go func() {
		_, err := builder.BuildSpaceIndex(buildCtx, fill.ID, store.IndexSettings{})
		done <- err
	}()
	waitForLock(t, s, app, done, "BuildSpaceIndex")

	// A plain CREATE INDEX would now be queued for its table lock, and every new write to
	// embeddings queued behind it until the build ends.
	writeCtx, cancelWrite := context.WithTimeout(ctx, 10*time.Second)
	defer cancelWrite()
	if _, err := s.SaveEmbeddings(writeCtx, active.ID, []paper.Embedding{embeddingOf(ps[1], 0, 1, 0)}); err != nil {
		t.Errorf("a write to the active space during the fill's index build: %v", err)
	}

	// Interrupted, the concurrent build leaves an invalid index behind; the next build replaces it.
	cancelBuild()
	if err := <-done; err == nil {
		t.Fatal("BuildSpaceIndex succeeded although its context was cancelled while it waited")
	}
	waitForBuildToEnd(t, s, app)
	if exists, valid := indexValid(); !exists || valid {
		t.Fatalf("after the interrupted build the index exists %v, valid %v; want an invalid leftover to test with", exists, valid)
	}
	if err := inFlight.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	built, err := s.BuildSpaceIndex(ctx, fill.ID, store.IndexSettings{})
	if err != nil || !built {
		t.Fatalf("BuildSpaceIndex after the interrupted one = %v, %v; want it built", built, err)
	}
	if exists, valid := indexValid(); !exists || !valid {
		t.Errorf("after the second build the index exists %v, valid %v", exists, valid)
	}
}

// TestBuildSpaceIndexOfTheOnlySpaceLetsItsWritesGoOn: the index build at the end of a fill
// of the archive's only space (an import or import-embeddings into a fresh archive) must not
// stop the writes into that space meanwhile: a worker (`up`, `worker`) started during the load,
// whose model is the space's, writes the vectors of new papers into it. It was built with a plain CREATE INDEX, whose table lock held every write to
// embeddings until the build ended: 28 s for 20,000 768-d vectors, minutes at 100,000 and more.
func TestBuildSpaceIndexOfTheOnlySpaceLetsItsWritesGoOn(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps := abstracts(3)
	upsert(t, s, ps, store.Work{})
	only, created, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "only", Dimensions: 3, Template: "title+abstract"})
	if err != nil || !created {
		t.Fatalf("EnsureSpaceForLoad = %v, created %v", err, created)
	}
	if _, err := s.LoadEmbeddings(ctx, only.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	// A worker's write in flight holds the build at its start, whichever way it builds.
	inFlight := writeInFlight(t, s, only.ID, ps[1])
	builder, app := openWatched(t, s, "builder")
	done := make(chan error, 1)
	go func() {
		_, err := builder.BuildSpaceIndex(ctx, only.ID, store.IndexSettings{})
		done <- err
	}()
	waitForLock(t, s, app, done, "BuildSpaceIndex")

	// A plain CREATE INDEX would now be queued for its table lock, and the worker's next write
	// queued behind it until the build ends.
	writer, writerApp := openWatched(t, s, "writer")
	saved := make(chan error, 1)
	go func() {
		_, err := writer.SaveEmbeddings(ctx, only.ID, []paper.Embedding{embeddingOf(ps[2], 0, 0, 1)})
		saved <- err
	}()
	for waited := false; ; {
		select {
		case err := <-saved:
			if err != nil {
				t.Fatalf("a write into the space during its index build: %v", err)
			}
		default:
			var blocked bool
			if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
					WHERE application_name = $1 AND wait_event_type = 'Lock')`, writerApp).Scan(&blocked); err != nil {
				t.Fatal(err)
			}
			if blocked && waited { // seen twice: not a passing moment
				t.Fatal("a write into the space waits behind its index build (a plain CREATE INDEX: until the build ends)")
			}
			waited = blocked
			time.Sleep(10 * time.Millisecond)
			continue
		}
		break
	}
	if err := inFlight.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("BuildSpaceIndex: %v", err)
	}
	var valid bool
	if err := s.Pool().QueryRow(ctx, "SELECT indisvalid FROM pg_index WHERE indexrelid = to_regclass($1)",
		"embeddings_hnsw_s"+itoa(only.ID)).Scan(&valid); err != nil || !valid {
		t.Errorf("the space's index after the build: valid %v, %v", valid, err)
	}
}

// TestSecondIndexBuildWaitsForTheFirst: activate during a fill's index build (or two fills)
// builds the same space's index twice; the second must wait for the first and find its index,
// not take the unfinished one for an interrupted build and drop it.
func TestSecondIndexBuildWaitsForTheFirst(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps, active, fill := fillBesideActive(t, s, 2)
	// A write in flight holds the first (concurrent) build in its wait.
	inFlight := writeInFlight(t, s, active.ID, ps[0])
	type result struct {
		built bool
		err   error
	}
	build := func(role string) (chan result, string) {
		b, app := openWatched(t, s, role)
		done := make(chan result, 1)
		go func() {
			built, err := b.BuildSpaceIndex(ctx, fill.ID, store.IndexSettings{})
			done <- result{built, err}
		}()
		return done, app
	}
	first, app1 := build("first-builder")
	waitForLock(t, s, app1, nil, "the first build")
	second, app2 := build("second-builder")
	waitForIndexLockPoll(t, s, app2)
	if err := inFlight.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r1, r2 := <-first, <-second
	if r1.err != nil || !r1.built || r2.err != nil || r2.built {
		t.Errorf("first build = %v, %v; second = %v, %v; want the first to build and the second to find its index", r1.built, r1.err, r2.built, r2.err)
	}
}

// waitForIndexLockPoll returns once a connection named app has asked for the index lock
// (it polls for it, so it is seen between tries, not waiting).
func waitForIndexLockPoll(t *testing.T, s *store.Store, app string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var asked bool
		if err := s.Pool().QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE application_name = $1 AND query LIKE '%pg_try_advisory_lock%')`, app).Scan(&asked); err != nil {
			t.Fatal(err)
		}
		if asked {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the second build did not ask for the index lock within 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// fillBesideActive stores papers n, an active space, and a bulk-filled space without its index
// holding the first papers' vectors (up to two): what a blue/green fill leaves before its build.
func fillBesideActive(t *testing.T, s *store.Store, n int) (ps []paper.Abstract, active, fill paper.Space) {
	t.Helper()
	ctx := t.Context()
	ps = abstracts(n)
	upsert(t, s, ps, store.Work{})
	active = space(t, s, "active", 3)
	fill, created, err := s.EnsureSpaceForLoad(ctx, paper.Space{Model: "green", Dimensions: 3, Template: "title+abstract"})
	if err != nil || !created {
		t.Fatalf("EnsureSpaceForLoad = %v, created %v", err, created)
	}
	vecs := [][]float32{{1, 0, 0}, {0, 1, 0}}
	embs := make([]paper.Embedding, 0, 2)
	for i := range min(n, 2) {
		embs = append(embs, embeddingOf(ps[i], vecs[i]...))
	}
	if _, err := s.LoadEmbeddings(ctx, fill.ID, embs); err != nil {
		t.Fatal(err)
	}
	return ps, active, fill
}

// writeInFlight starts a transaction that has written p's vector into space spaceID and not
// committed: a worker's write in flight, which every index build of the table waits for.
func writeInFlight(t *testing.T, s *store.Store, spaceID int64, p paper.Abstract) pgx.Tx {
	t.Helper()
	ctx := t.Context()
	tx, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = tx.Rollback(context.Background()) })
	if _, err := tx.Exec(ctx, "INSERT INTO embeddings (space_id, paper_id, content_hash, embedding) VALUES ($1, $2, $3, '[1,0,0]')",
		spaceID, p.ID, p.ContentHash()); err != nil {
		t.Fatal(err)
	}
	return tx
}

// TestUpsertPapersThatLosesANewPaperToAnotherNeedsNothing: two workers handle messages of a
// paper that is not stored yet at the same time. One's insert commits while the other's
// UpsertPapers waits for the row; the waiting one must not report the paper new, and when the
// text stored is the other's — its own is older, the same, or the same with other metadata
// (which it still merges in) — must report nothing needed: else its worker buys a TL;DR and a
// vector that the other worker buys too, or that are of a text the paper no longer has. A
// newer text of its own replaces the other's: changed, its outputs needed.
func TestUpsertPapersThatLosesANewPaperToAnotherNeedsNothing(t *testing.T) {
	t.Parallel()
	t0 := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		name   string
		mine   func(stored paper.Abstract) paper.Abstract // what the waiting call stores
		stored func(p paper.Abstract) paper.Abstract      // what the other transaction inserts
	}{
		{"an older text", func(stored paper.Abstract) paper.Abstract {
			older := stored
			older.Abstract, older.TextAt = "The first version of the abstract.", t0
			return older
		}, func(p paper.Abstract) paper.Abstract {
			p.TextAt = t0.Add(time.Hour)
			return p
		}},
		{"the same text", func(stored paper.Abstract) paper.Abstract {
			return stored
		}, func(p paper.Abstract) paper.Abstract {
			p.TextAt = t0
			return p
		}},
		{"the same text with other metadata", func(stored paper.Abstract) paper.Abstract {
			other := stored
			other.Authors, other.URL = []string{"C. Other"}, "https://example.org/paper"
			return other
		}, func(p paper.Abstract) paper.Abstract {
			p.TextAt = t0
			return p
		}},
		{"a newer text", func(stored paper.Abstract) paper.Abstract {
			newer := stored
			newer.Abstract, newer.TextAt = "The second version of the abstract.", t0.Add(time.Hour)
			return newer
		}, func(p paper.Abstract) paper.Abstract {
			p.TextAt = t0
			return p
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := t.Context()
			sp := space(t, s, "emb", 3)
			w := store.Work{Model: testModel, PromptVersion: testPrompt, SpaceID: sp.ID}
			stored := tc.stored(abstracts(1)[0])
			mine := tc.mine(stored)

			other, err := s.Pool().Begin(ctx)
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = other.Rollback(context.Background()) }()
			if _, err := other.Exec(ctx, `INSERT INTO papers (id, title, abstract, authors, content_hash, text_at)
				VALUES ($1, $2, $3, $4, $5, $6)`,
				stored.ID, stored.Title, stored.Abstract, stored.Authors, stored.ContentHash(), stored.TextAt); err != nil {
				t.Fatal(err)
			}
			upserter, app := openWatched(t, s, "upserter")
			type result struct {
				p   []store.Pending
				err error
			}
			done := make(chan result, 1)
			go func() {
				p, err := upserter.UpsertPapers(ctx, []paper.Abstract{mine}, w)
				done <- result{p, err}
			}()
			waitForLock(t, s, app, nil, "UpsertPapers")
			if err := other.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.err != nil {
				t.Fatal(r.err)
			}
			newer := mine.TextAt.After(stored.TextAt) && mine.ContentHash() != stored.ContentHash()
			kept := stored
			if newer {
				kept = mine
			}
			rec, err := s.Paper(ctx, stored.ID)
			if err != nil || rec.Abstract.Abstract != kept.Abstract {
				t.Fatalf("stored %q (%v); want %q", rec.Abstract.Abstract, err, kept.Abstract)
			}
			if mine.URL != "" && (rec.Abstract.URL != mine.URL || !slices.Equal(rec.Abstract.Authors, mine.Authors)) {
				t.Errorf("stored URL %q, authors %q; want the waiting call's metadata merged in (%q, %q)",
					rec.Abstract.URL, rec.Abstract.Authors, mine.URL, mine.Authors)
			}
			want := store.Pending{ID: stored.ID, ContentHash: stored.ContentHash()}
			if newer {
				want = store.Pending{ID: stored.ID, ContentHash: mine.ContentHash(), Changed: true, NeedTLDR: true, NeedEmbedding: true}
			}
			if got := r.p[0]; got != want {
				t.Errorf("UpsertPapers of %s, waiting for the other insert = %+v; want %+v (not new: the other call stored it first)",
					tc.name, got, want)
			}
		})
	}
}

// waitForBuildToEnd returns once no connection named app runs a CREATE INDEX: a build whose
// caller gave up (its context cancelled) goes on in the server until the cancel request
// reaches it, and could otherwise still finish. It fails the test after 20 s.
func waitForBuildToEnd(t *testing.T, s *store.Store, app string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var running bool
		if err := s.Pool().QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE application_name = $1 AND state = 'active' AND query ILIKE 'CREATE INDEX%')`, app).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the cancelled index build still runs after 20 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// waitForBlocked returns once a connection named app waits for a lock, or has asked for the
// index lock (which is polled: see waitForIndexLockPoll); it fails the test if the call
// running there (what) returns on done first, or if 20 s go by.
func waitForBlocked(t *testing.T, s *store.Store, app string, done <-chan error, what string) {
	t.Helper()
	waitForSession(t, s, app, done, what, `wait_event_type = 'Lock' OR query LIKE '%pg_try_advisory_lock%'`)
}

// TestIndexChangesBesideAConcurrentBuildWaitForItWithoutStallingTheTable: while a fill's index
// is built CONCURRENTLY (minutes at a million vectors), an operator or a worker may create a
// space, drop an old one or reindex another. Each must wait for the build — not queue a lock
// of the embeddings table behind it, which stalls every query and write of the table for as
// long as the build runs, and ends in a deadlock that kills one of them — and then succeed,
// as must the build.
func TestIndexChangesBesideAConcurrentBuildWaitForItWithoutStallingTheTable(t *testing.T) {
	t.Parallel()
	const unindexed = "reindex a space to a kind without an index" // only drops the old index
	for _, op := range []string{"create a space", "drop a space", "reindex a space", unindexed} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			s := setup(t)
			ctx := t.Context()
			ps, active, fill := fillBesideActive(t, s, 3)
			old := space(t, s, "old", 3)
			if _, err := s.SaveEmbeddings(ctx, old.ID, []paper.Embedding{embeddingOf(ps[2], 0, 0, 1)}); err != nil {
				t.Fatal(err)
			}
			if op == unindexed { // 5,000 dimensions: an hnsw-binary index, none as hnsw
				old = space(t, openKind(t, s.Pool().Config().ConnString(), store.IndexHNSWBinary), "huge", 5000)
			}
			// A worker's write in flight holds the fill's concurrent build in its wait.
			inFlight := writeInFlight(t, s, active.ID, ps[0])
			builder, buildApp := openWatched(t, s, "builder")
			built := make(chan error, 1)
			go func() {
				ok, err := builder.BuildSpaceIndex(ctx, fill.ID, store.IndexSettings{})
				if err == nil && !ok {
					err = errors.New("built nothing")
				}
				built <- err
			}()
			waitForLock(t, s, buildApp, built, "BuildSpaceIndex")

			other, app := openWatched(t, s, "other")
			done := make(chan error, 1)
			var created paper.Space
			go func() {
				var err error
				switch op {
				case "create a space":
					created, err = other.EnsureSpace(ctx, paper.Space{Model: "third", Dimensions: 3, Template: "title+abstract"})
				case "drop a space":
					err = other.DropSpace(ctx, old.ID, store.DropOptions{})
				case unindexed:
					_, err = other.Reindex(ctx, old.ID, store.IndexHNSW, store.IndexSettings{})
				default:
					_, err = other.Reindex(ctx, old.ID, store.IndexHNSWBinary, store.IndexSettings{})
				}
				done <- err
			}()
			waitForBlocked(t, s, app, done, op)

			// The active space's queries and writes go on meanwhile.
			qctx, cancel := context.WithTimeout(ctx, 10*time.Second)
			defer cancel()
			if _, err := s.Search(qctx, active.ID, []float32{1, 0, 0}, 1); err != nil {
				t.Errorf("a query of the active space while %s waits: %v", op, err)
			}
			if _, err := s.SaveEmbeddings(qctx, active.ID, []paper.Embedding{embeddingOf(ps[1], 0, 1, 0)}); err != nil {
				t.Errorf("a write to the active space while %s waits: %v", op, err)
			}
			if err := inFlight.Commit(ctx); err != nil {
				t.Fatal(err)
			}
			if err := <-built; err != nil {
				t.Errorf("the fill's build, beside %s: %v", op, err)
			}
			if err := <-done; err != nil {
				t.Fatalf("%s beside the fill's build: %v", op, err)
			}
			byID := spacesByID(t, s)
			if byID[fill.ID].IndexName == "" {
				t.Errorf("the fill's space has no valid index: %+v", byID[fill.ID])
			}
			switch op {
			case "create a space":
				if byID[created.ID].IndexName == "" {
					t.Errorf("the new space has no valid index: %+v", byID[created.ID])
				}
			case "drop a space":
				if _, ok := byID[old.ID]; ok {
					t.Errorf("the old space is still there: %+v", byID[old.ID])
				}
			case unindexed:
				if si := byID[old.ID]; si.Index != store.IndexHNSW || si.IndexName != "" {
					t.Errorf("the reindexed space: %+v; want hnsw, without an index", si)
				}
			default:
				if si := byID[old.ID]; si.Index != store.IndexHNSWBinary || si.IndexName == "" {
					t.Errorf("the reindexed space: %+v; want a valid hnsw-binary index", si)
				}
			}
		})
	}
}

// TestEnsureSpaceOfANewSpaceDoesNotWaitForOpenReaders: a worker started with a new model
// creates its space beside the active one while a pg_dump (a REPEATABLE READ transaction that
// has read every table), a report or a session idle in a transaction is open. The new space's
// index must not wait for it — CREATE INDEX CONCURRENTLY waits for every older snapshot of the
// database, for as long as the dump runs — and the space must come with its index.
func TestEnsureSpaceOfANewSpaceDoesNotWaitForOpenReaders(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps := abstracts(1)
	upsert(t, s, ps, store.Work{})
	active := space(t, s, "active", 3)
	if _, err := s.SaveEmbeddings(ctx, active.ID, []paper.Embedding{embeddingOf(ps[0], 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	dump, err := s.Pool().BeginTx(ctx, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = dump.Rollback(context.Background()) }()
	for _, table := range []string{"papers", "embeddings"} {
		if _, err := dump.Exec(ctx, "SELECT count(*) FROM "+table); err != nil {
			t.Fatal(err)
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 10*time.Second) // a bound, not a measure: it ends at once
	defer cancel()
	created, err := s.EnsureSpace(wctx, paper.Space{Model: "third", Dimensions: 3, Template: "title+abstract"})
	if err != nil {
		t.Fatalf("EnsureSpace of a new space while a reader's transaction is open: %v", err)
	}
	if si := spacesByID(t, s)[created.ID]; si.IndexName == "" {
		t.Errorf("the new space has no valid index: %+v", si)
	}
}

// TestEnsureSpaceThatCannotBuildTheIndexLeavesNoSpace: when a new space's index cannot be
// built (here the index lock stays held by another process's build, and the caller gives up,
// as a worker does at its shutdown), EnsureSpace must leave nothing behind: a space committed
// without its index would be returned by the next EnsureSpace, and embedded into, without
// anything ever building it. The next EnsureSpace creates it with its index.
func TestEnsureSpaceThatCannotBuildTheIndexLeavesNoSpace(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	_ = space(t, s, "active", 3)
	holder, err := s.Pool().Acquire(ctx) // another process's index build holds the lock
	if err != nil {
		t.Fatal(err)
	}
	defer holder.Release()
	const key = `hashtextextended('paperpipe.index.' || current_schema(), 0)`
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_lock(`+key+`)`); err != nil {
		t.Fatal(err)
	}
	want := paper.Space{Model: "third", Dimensions: 3, Template: "title+abstract"}
	worker, app := openWatched(t, s, "worker")
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := worker.EnsureSpace(wctx, want)
		done <- err
	}()
	waitForIndexLockPoll(t, s, app)
	cancel()
	if err := <-done; err == nil {
		t.Fatal("EnsureSpace succeeded although the index lock stayed held and it was cancelled")
	}
	if n := countRows(t, s, "embedding_spaces WHERE model = 'third'"); n != 0 {
		t.Errorf("the failed EnsureSpace left %d spaces without their index behind", n)
	}
	if _, err := holder.Exec(ctx, `SELECT pg_advisory_unlock(`+key+`)`); err != nil {
		t.Fatal(err)
	}
	got, err := worker.EnsureSpace(ctx, want)
	if err != nil {
		t.Fatalf("EnsureSpace once the lock is free: %v", err)
	}
	if si := spacesByID(t, s)[got.ID]; si.IndexName == "" {
		t.Errorf("the space after the second EnsureSpace has no index: %+v", si)
	}
}

// TestDDLWaitsLongerThanTheDeadlockTimeout: a DROP INDEX waiting for the embeddings table must
// wait longer than deadlock_timeout at a time: only then does its backend's deadlock check run,
// which cancels an autovacuum of the table holding it (the usual holder after a fill). With a
// lock_timeout of deadlock_timeout or less, the drop gives up behind every autovacuum. Here an
// open transaction that read the table holds it, and the test watches one wait of the drop
// outlast deadlock_timeout; then the holder ends, and the drop succeeds.
func TestDDLWaitsLongerThanTheDeadlockTimeout(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	_ = space(t, s, "active", 3)
	old := space(t, s, "old", 3)
	holder, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.Background()) }()
	if _, err := holder.Exec(ctx, "SELECT count(*) FROM embeddings"); err != nil {
		t.Fatal(err)
	}
	dropper, app := openWatched(t, s, "dropper")
	done := make(chan error, 1)
	go func() { done <- dropper.DropSpace(ctx, old.ID, store.DropOptions{}) }()
	deadline := time.Now().Add(30 * time.Second)
	for {
		// How long the drop's current statement has waited for its lock, beyond deadlock_timeout
		// (with a margin for this poll's own delay).
		var beyond bool
		if err := s.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
				WHERE application_name = $1 AND wait_event_type = 'Lock' AND query ILIKE 'DROP INDEX%'
				AND clock_timestamp() - query_start > current_setting('deadlock_timeout')::interval + interval '250ms')`,
			app).Scan(&beyond); err != nil {
			t.Fatal(err)
		}
		if beyond {
			break
		}
		select {
		case err := <-done:
			t.Fatalf("DropSpace returned (%v) without ever waiting longer than deadlock_timeout for the table", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("the drop did not wait longer than deadlock_timeout at a time within 30 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Errorf("DropSpace once the holder ended: %v", err)
	}
}

// TestDropEmptySpaceKeepsVectorsCommittedWhileItWaited: DropEmptySpace waits for a loader whose
// vectors are inserted but not committed (its foreign key check holds the space's row) and then
// sees them: it decided "empty" from a snapshot taken before the wait, and its DELETE cascaded
// the committed vectors away.
func TestDropEmptySpaceKeepsVectorsCommittedWhileItWaited(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := abstracts(1)
	upsert(t, s, papers, paper.Work{})
	sp := newLoadSpace(t, s)
	// Another process loading into the same space: its insert is done, not yet committed.
	loader, err := s.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = loader.Rollback(ctx) }()
	if _, err := loader.Exec(ctx, `INSERT INTO embeddings (space_id, paper_id, content_hash, embedding) VALUES ($1, $2, $3, $4)`,
		sp.ID, papers[0].ID, papers[0].ContentHash(), pgvector.NewVector([]float32{1, 0, 0})); err != nil {
		t.Fatal(err)
	}
	dropper, app := openWatched(t, s, "drop-empty")
	type result struct {
		dropped bool
		err     error
	}
	done := make(chan result, 1)
	errc := make(chan error, 1)
	go func() {
		d, err := dropper.DropEmptySpace(ctx, sp.ID)
		done <- result{d, err}
		errc <- err
	}()
	waitForLock(t, s, app, errc, "DropEmptySpace")
	if err := loader.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	r := <-done
	if r.err != nil {
		t.Fatalf("DropEmptySpace: %v", r.err)
	}
	if n := countRows(t, s, "embeddings"); r.dropped || n != 1 {
		t.Errorf("DropEmptySpace dropped=%v; embeddings left: %d (the loader's committed vector was cascaded away)", r.dropped, n)
	}
}
