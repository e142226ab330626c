package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// onWrite is an io.Writer that calls fire, once, when what was written contains trigger: a
// command's message that a step is done, to act between its steps.
type onWrite struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	trigger string
	fire    func()
	fired   bool
}

func (w *onWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	w.buf.Write(p)
	fire := !w.fired && strings.Contains(w.buf.String(), w.trigger)
	w.fired = w.fired || fire
	w.mu.Unlock()
	if fire {
		w.fire()
	}
	return len(p), nil
}

// A `paperpipe reprocess` started while import stores an export's papers, before its TL;DRs
// and vectors are loaded, would buy for those papers the TL;DRs and vectors the next passes
// load for free: import holds the run locks of the TL;DR version and the space it loads, and
// the reprocess is refused, buying nothing.
func TestReprocessBetweenImportPassesBuysNothing(t *testing.T) {
	t.Parallel()
	old := newArchiveEnv(t, openaitest.Config{})
	old.seed(t, 6)
	ctx := t.Context()
	res, _ := old.reprocess(t, ctx, old.c, reprocessOptions{})
	if res.Worker.TLDRs != 6 || res.Worker.Embeddings != 6 {
		t.Fatalf("the old archive's reprocess: %+v, want 6 TL;DRs and 6 vectors", res.Worker)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	if _, err := runExport(ctx, old.st, exportOptions{out: file, tldr: configuredTLDR(old.c), vectors: true}, &errw); err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}

	moved := newArchiveEnv(t, openaitest.Config{})
	var (
		rerr error
		rout bytes.Buffer
	)
	w := &onWrite{trigger: "papers stored", fire: func() {
		_, rerr = runReprocess(ctx, moved.c, reprocessOptions{}, &rout, &rout)
	}}
	imp, err := runImport(ctx, moved.st, file, w)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, w.buf.String())
	}
	if !w.fired {
		t.Fatalf("import never said its papers were stored:\n%s", w.buf.String())
	}
	if s := moved.fake.Stats(); s.ChatRequests != 0 || s.EmbedRequests != 0 {
		t.Errorf("a reprocess between import's passes bought %d TL;DR and %d embedding requests the import loads for free (reprocess: %v)\n%s",
			s.ChatRequests, s.EmbedRequests, rerr, rout.String())
	}
	if !errors.Is(rerr, store.ErrRunInProgress) || !strings.Contains(rerr.Error(), "paperpipe import") {
		t.Errorf("the reprocess during the import: %v, want it refused, naming the import", rerr)
	}
	if imp.TLDRs.Saved != 6 || imp.Vectors.Loaded != 6 {
		t.Errorf("import: %+v, want the 6 TL;DRs and 6 vectors of the export loaded\n%s", imp, w.buf.String())
	}
}

// An import started while a `paperpipe reprocess` writes the TL;DRs of the export's version
// stops before it stores a paper with such a TL;DR, naming what holds them: the reprocess
// would buy the TL;DRs of the papers stored. It leaves no space behind.
func TestImportWhileAReprocessWritesItsTLDRsStops(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	old, file, _ := vectorExport(t, 3)
	moved := newArchiveEnv(t, openaitest.Config{})
	keep := configuredTLDR(old.c)
	unlock, err := moved.st.LockRun(ctx, store.TLDRRunKey(keep.Model, keep.PromptVersion))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	var errw bytes.Buffer
	res, err := runImport(ctx, moved.st, file, &errw)
	if !errors.Is(err, store.ErrRunInProgress) || !strings.Contains(err.Error(), "paperpipe reprocess") || res.Papers.Stored != 0 {
		t.Errorf("import while a reprocess writes its TL;DRs: %+v, %v; want it stopped before storing a paper, naming the reprocess\n%s", res, err, errw.String())
	}
	if n := moved.count(t, "SELECT count(*) FROM embedding_spaces"); n != 0 {
		t.Errorf("%d spaces left behind by the stopped import, want none\n%s", n, errw.String())
	}
}

// A TL;DR this archive holds of a paper's current text, paid for here, is kept when
// import-tldrs reads another TL;DR of the same version for the same text: the file fills what
// is missing, it does not overwrite what is there. The TL;DR kept is counted and said.
func TestImportTLDRsKeepsATLDRStoredOfTheSameText(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	file := exportPaidTLDRs(t, e, 3, func(id string) string { return "Balanced routers lower the loss." }, paper.ValidOK)
	moved := newArchiveEnv(t, openaitest.Config{})
	moved.seed(t, 3)
	p, err := moved.st.Paper(ctx, "arxiv:2401.00001")
	if err != nil {
		t.Fatal(err)
	}
	const own = "Sparse experts balance their load."
	if _, err := moved.st.SaveSummaries(ctx, []paper.Summary{{PaperID: p.ID, Text: own, Model: "gpt-4o", PromptVersion: "tldr-v1",
		ContentHash: p.ContentHash, Validation: paper.ValidRetried}}); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	res, err := importTLDRs(ctx, moved.st, file, 1000, &errw)
	if err != nil || res.Saved != 2 || res.Kept != 1 || !strings.Contains(errw.String(), "1 kept") {
		t.Errorf("import-tldrs: %+v, %v; want 2 saved and 1 kept, said\n%s", res, err, errw.String())
	}
	got, err := moved.st.Summaries(ctx, p.ID)
	if err != nil || len(got) != 1 || got[0].Text != own || got[0].Validation != paper.ValidRetried {
		t.Errorf("the paper's TL;DRs after import-tldrs: %+v, %v; want its own %q kept", got, err, own)
	}
}

// import stores a paper the archive does not hold with the created_at its export carries: a
// moved archive lists its papers (list, the API, the front page) in the order the old one
// stored them, not in the order of the import's lines. A paper the archive already holds keeps
// its own.
func TestImportCarriesCreatedAt(t *testing.T) {
	t.Parallel()
	old := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	for i := range 3 { // stored in turn: 2401.00000 first, 2401.00002 last, newest
		old.seedOne(t, i)
	}
	// Stored again last, with a new text: its updated_at is the newest, its created_at not.
	p, err := old.st.Paper(ctx, "arxiv:2401.00000")
	if err != nil {
		t.Fatal(err)
	}
	p.Abstract.Abstract += " Revised."
	if _, err := old.st.UpsertPapers(ctx, []paper.Abstract{p.Abstract}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	if _, err := runExport(ctx, old.st, exportOptions{out: file}, &errw); err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}
	moved := newArchiveEnv(t, openaitest.Config{})
	moved.seedOne(t, 1) // held already: keeps its own created_at, newer than the others'
	if _, err := runImport(ctx, moved.st, file, &errw); err != nil {
		t.Fatalf("import: %v\n%s", err, errw.String())
	}
	recs, _, err := moved.st.List(ctx, 10, nil)
	if err != nil {
		t.Fatal(err)
	}
	var order []string
	for _, r := range recs {
		order = append(order, r.ID)
	}
	if want := []string{"arxiv:2401.00001", "arxiv:2401.00002", "arxiv:2401.00000"}; strings.Join(order, " ") != strings.Join(want, " ") {
		t.Errorf("the moved archive lists %v, want %v (the one held before the import, then the old archive's order)", order, want)
	}
	for _, id := range []string{"arxiv:2401.00000", "arxiv:2401.00002"} {
		was, err1 := old.st.Paper(ctx, id)
		is, err2 := moved.st.Paper(ctx, id)
		if err1 != nil || err2 != nil || !is.CreatedAt.Equal(was.CreatedAt) {
			t.Errorf("%s: created_at %v in the moved archive, %v in the old one (%v, %v); want the old one's", id, is.CreatedAt, was.CreatedAt, err1, err2)
		}
	}
}

// seedOne stores the i-th of seed's papers on its own.
func (e *archiveEnv) seedOne(t *testing.T, i int) {
	t.Helper()
	if _, err := e.st.UpsertPapers(t.Context(), []paper.Abstract{{
		ID:    fmt.Sprintf("arxiv:2401.%05d", i),
		Title: fmt.Sprintf("Balanced routing study %d", i),
		Abstract: fmt.Sprintf("We propose balanced router number %d for sparse mixture-of-experts models. "+
			"It lowers the load-balancing loss by %d percent.", i, i%9+1),
	}}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
}

// An import that creates the export's space to lock it, and then loads no vector into it (the
// archive holds newer texts of the export's papers: every vector is stale), removes the space
// again, as README says. The vectors' pass found the space there, took it for one the archive
// had, and built its index on nothing; the space, indexed, was then no longer empty to the
// removal: an empty space was left behind, the active one when none was, answering every
// semantic query with nothing.
func TestImportThatLoadsNoVectorLeavesNoSpace(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, file, _ := vectorExport(t, 3)
	moved := newArchiveEnv(t, openaitest.Config{})
	// The moved archive holds each paper with a newer text than the export's.
	for i := range 3 {
		a := paper.Abstract{ID: fmt.Sprintf("arxiv:2401.%05d", i), Title: fmt.Sprintf("Balanced routing study %d, revised", i),
			Abstract: fmt.Sprintf("We revise balanced router number %d.", i)}
		if _, err := moved.st.UpsertPapers(ctx, []paper.Abstract{a}, paper.Work{}); err != nil {
			t.Fatal(err)
		}
	}
	var errw bytes.Buffer
	res, err := runImport(ctx, moved.st, file, &errw)
	if err != nil {
		t.Fatalf("import: %v\n%s", err, errw.String())
	}
	if res.Vectors.Loaded != 0 {
		t.Fatalf("import loaded %d vectors of older texts, want none\n%s", res.Vectors.Loaded, errw.String())
	}
	if n := moved.count(t, "SELECT count(*) FROM embedding_spaces"); n != 0 {
		t.Errorf("%d spaces left behind by an import that loaded no vector, want none\n%s", n, errw.String())
	}
}

// An import whose run lock was lost between its passes — its session ended (a restart, as the
// server's keepalive would end it) and another run took the lock — stops before its next pass
// rather than load beside that run, saying so: it went on, as if it still held the lock.
func TestImportThatLostItsLockStopsBeforeItsNextPass(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	file := tldrExport(t, 4)

	moved := newArchiveEnv(t, openaitest.Config{})
	take, takeErr := takeTLDRRunLock(t, moved.st)
	w := &onWrite{trigger: "papers stored", fire: take}
	imp, err := runImport(ctx, moved.st, file, w)
	if *takeErr != nil {
		t.Fatalf("ending the lock's session: %v", *takeErr)
	}
	if !w.fired {
		t.Fatalf("import never said its papers were stored:\n%s", w.buf.String())
	}
	if !errors.Is(err, store.ErrLockLost) || !strings.Contains(err.Error(), "run the same command again") {
		t.Errorf("import after losing its lock: %v, want it stopped for the lost lock, saying to run it again\n%s", err, w.buf.String())
	}
	if imp.TLDRs.Saved != 0 {
		t.Errorf("import loaded %d TL;DRs after another run took its lock", imp.TLDRs.Saved)
	}
}

// An import whose run lock was lost during its last pass — another run took it while the
// TL;DRs were loading — says so, as a reprocess that lost its lock does: it ended as if it
// had held the lock throughout ("1 line rejected", the others imported), and the user ran
// nothing again. The lock is lost when the TL;DR pass reports a bad line: mid-pass, after
// the check before it.
func TestImportThatLostItsLockDuringItsLastPassSaysSo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	file := tldrExport(t, 4)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	// A TL;DR the papers' pass stores the paper of and the TL;DR pass rejects.
	lines[1] = strings.Replace(lines[1], `"tldr_validation":"`+paper.ValidOK+`"`, `"tldr_validation":"bogus"`, 1)
	if !strings.Contains(lines[1], "bogus") {
		t.Fatalf("no tldr_validation to damage in %s", lines[1])
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}

	moved := newArchiveEnv(t, openaitest.Config{})
	take, takeErr := takeTLDRRunLock(t, moved.st)
	w := &onWrite{trigger: `tldr_validation "bogus"`, fire: take}
	_, err = runImport(ctx, moved.st, file, w)
	if *takeErr != nil {
		t.Fatalf("ending the lock's session: %v", *takeErr)
	}
	if !w.fired {
		t.Fatalf("the TL;DR pass never rejected the damaged line:\n%s", w.buf.String())
	}
	if !errors.Is(err, store.ErrLockLost) || !strings.Contains(err.Error(), "run the same command again") {
		t.Errorf("import that lost its lock during its TL;DR pass: %v, want it to say the lock was lost and to run it again\n%s", err, w.buf.String())
	}
}

// tldrExport is an export of n seeded papers with the TL;DRs the configured model wrote of them.
func tldrExport(t *testing.T, n int) string {
	t.Helper()
	old := newArchiveEnv(t, openaitest.Config{})
	old.seed(t, n)
	if res, _ := old.reprocess(t, t.Context(), old.c, reprocessOptions{tldrOnly: true}); res.Worker.TLDRs != int64(n) {
		t.Fatalf("the old archive's reprocess: %+v, want %d TL;DRs", res.Worker, n)
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	if _, err := runExport(t.Context(), old.st, exportOptions{out: file, tldr: configuredTLDR(old.c)}, &errw); err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}
	return file
}

// takeTLDRRunLock returns take, which ends the session holding the run lock of the configured
// TL;DR version in st's schema, as a restart (or the server's keepalive) would, and takes the
// lock on a session of its own, as another run would; *failed is what that failed with.
func takeTLDRRunLock(t *testing.T, st *store.Store) (take func(), failed *error) {
	t.Helper()
	var schema string
	if err := st.Pool().QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	lockKey := fmt.Sprintf("hashtextextended('paperpipe.run.%s.%s', 0)", schema, "tldr:gpt-4o-mini:"+summarize.PromptVersion)
	failed = new(error)
	take = func() {
		other, err := st.Pool().Acquire(context.Background())
		if err != nil {
			*failed = err
			return
		}
		t.Cleanup(func() { _ = other.Conn().Close(context.Background()); other.Release() })
		_, *failed = other.Exec(context.Background(), `SELECT pg_terminate_backend(l.pid, 5000) FROM pg_locks l
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND ((l.classid::int8 << 32) | l.objid::int8) = `+lockKey+`;
			SELECT pg_advisory_lock(`+lockKey+`)`)
	}
	return take, failed
}

// An export holding TL;DRs of more versions than a store's smallest pool has connections
// (store.MinConns) is imported: the import locks the first TL;DR version it meets only, each
// run lock holding a pooled connection of its own, so that a lock per version cannot take every
// connection and leave the import waiting for one forever (cfb3362, which had no test).
func TestImportOfMoreTLDRVersionsThanThePoolHoldsEnds(t *testing.T) {
	t.Parallel()
	moved := newArchiveEnv(t, openaitest.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	st, err := store.Open(ctx, store.Config{URL: moved.c.DatabaseURL, MaxConns: store.MinConns})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	versions := store.MinConns + 2
	var lines []string
	for i := range versions {
		a := paper.Abstract{ID: fmt.Sprintf("arxiv:2401.%05d", i), Title: fmt.Sprintf("Balanced routing study %d", i),
			Abstract: fmt.Sprintf("We propose balanced router number %d for sparse mixture-of-experts models.", i)}
		lines = append(lines, fmt.Sprintf(`{"id":%q,"title":%q,"abstract":%q,"content_hash":%q,"tldr":"Balanced routers lower the loss.","tldr_model":"gpt-4o","tldr_prompt_version":"tldr-v%d"}`,
			a.ID, a.Title, a.Abstract, a.ContentHash(), i+1))
	}
	file := filepath.Join(t.TempDir(), "export.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	res, err := runImport(ctx, st, file, &errw)
	if err != nil || res.Papers.Stored != versions || res.TLDRs.Saved != versions {
		t.Fatalf("import of TL;DRs of %d versions through a pool of %d connections: %+v, %v; want %d papers and TL;DRs stored\n%s",
			versions, store.MinConns, res, err, versions, errw.String())
	}
}

// An import whose run lock is taken by another run while a pass is under way stops that pass
// (store.HoldRun's watch notices within seconds) instead of going on beside that run to the
// pass's end: here the TL;DR pass waits for a paper another session holds locked, which it
// would go on waiting for (importLockedWait: minutes), then load. The check after the last pass
// says the same words, only once the pass is over: the test's deadline tells the two apart.
func TestImportThatLostItsLockMidPassStopsThatPass(t *testing.T) {
	t.Parallel()
	file := tldrExport(t, 4)
	moved := newArchiveEnv(t, openaitest.Config{})
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	take, takeErr := takeTLDRRunLock(t, moved.st)
	// A connection of its own: the store's sessions end a transaction left idle (its
	// idle_in_transaction_session_timeout), which would free the paper within seconds.
	conn, err := pgx.Connect(t.Context(), moved.c.DatabaseURL)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.WithoutCancel(t.Context()))
	holder, err := conn.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.WithoutCancel(t.Context())) }()
	var holdErr error
	hold := func() { // a transaction left open on a paper the TL;DR pass loads a TL;DR of
		_, holdErr = holder.Exec(t.Context(), `SELECT FROM papers WHERE id = 'arxiv:2401.00001' FOR UPDATE`)
	}
	w := &onWrite{trigger: "papers stored", fire: hold}
	taken := &onWrite{trigger: "which another session holds locked", fire: take}
	imp, err := runImport(ctx, moved.st, file, io.MultiWriter(w, taken))
	if holdErr != nil || *takeErr != nil {
		t.Fatalf("holding the paper: %v; ending the lock's session: %v", holdErr, *takeErr)
	}
	if !taken.fired {
		t.Fatalf("the TL;DR pass never waited for the paper held locked:\n%s", w.buf.String())
	}
	if ctx.Err() != nil {
		t.Fatalf("import went on with its pass for a minute after another run took its lock: %+v, %v\n%s", imp, err, w.buf.String())
	}
	if !errors.Is(err, store.ErrLockLost) || !strings.Contains(err.Error(), "run the same command again") {
		t.Errorf("import that lost its lock mid-pass: %v, want it stopped for the lost lock, saying to run it again\n%s", err, w.buf.String())
	}
}

// vectorExport exports an archive of n papers, their TL;DRs and vectors written by a reprocess,
// with its vectors, and returns the archive, the file and the export's result.
func vectorExport(t *testing.T, n int) (*archiveEnv, string, exportResult) {
	t.Helper()
	old := newArchiveEnv(t, openaitest.Config{})
	old.seed(t, n)
	old.reprocess(t, t.Context(), old.c, reprocessOptions{})
	file := filepath.Join(t.TempDir(), "export.jsonl")
	var errw bytes.Buffer
	exp, err := runExport(t.Context(), old.st, exportOptions{out: file, tldr: configuredTLDR(old.c), vectors: true}, &errw)
	if err != nil {
		t.Fatalf("export: %v\n%s", err, errw.String())
	}
	return old, file, exp
}

// An export whose first vector line the vectors' pass rejects — its "dimensions" says one
// value more than its vector holds (a line damaged by hand or cut) — is loaded into the space
// of its good lines, and import holds that space's lock and leaves no other: the papers' pass
// took the damaged line's space (one dimension short) for the file's, created it and locked
// it, and the space loaded was never locked (a reprocess could fill it beside the import) while
// the one locked was left behind, empty.
func TestImportLocksTheSpaceItLoadsWhenItsFirstVectorLineIsBad(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	_, file, _ := vectorExport(t, 3)
	raw, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	lines := strings.SplitAfter(string(raw), "\n")
	// The first line's vector one value short of its dimensions.
	start := strings.Index(lines[0], `"embedding":[`)
	end := strings.Index(lines[0][start:], "]") + start
	last := strings.LastIndexByte(lines[0][:end], ',')
	if start < 0 || last < start || !strings.Contains(lines[0], `"dimensions":`) {
		t.Fatalf("no vector with its dimensions to damage in %s", lines[0])
	}
	lines[0] = lines[0][:last] + lines[0][end:]
	if err := os.WriteFile(file, []byte(strings.Join(lines, "")), 0o600); err != nil {
		t.Fatal(err)
	}

	moved := newArchiveEnv(t, openaitest.Config{})
	var lockErr error
	locked := false
	w := &onWrite{trigger: "loaded into space", fire: func() {
		// The vectors are loaded and the import still holds its locks: the space loaded is
		// one of them.
		var id int64
		if err := moved.st.Pool().QueryRow(ctx, "SELECT id FROM embedding_spaces ORDER BY id DESC LIMIT 1").Scan(&id); err != nil {
			lockErr = err
			return
		}
		rl, err := moved.st.HoldRun(ctx, store.SpaceRunKey(id))
		if err == nil {
			rl.Unlock()
			return
		}
		locked, lockErr = errors.Is(err, store.ErrRunInProgress), err
	}}
	res, err := runImport(ctx, moved.st, file, w)
	if !strings.Contains(w.buf.String(), "export.jsonl:1: arxiv:2401.00000: dimensions ") {
		t.Fatalf("the vectors' pass did not reject the damaged line:\n%s", w.buf.String())
	}
	if err == nil || res.Vectors.Loaded != 2 {
		t.Fatalf("import: %v, %d vectors loaded; want the damaged line rejected and the other two loaded\n%s", err, res.Vectors.Loaded, w.buf.String())
	}
	if !w.fired || !locked {
		t.Errorf("the space loaded was not locked by the import while it loaded (fired %v: %v)\n%s", w.fired, lockErr, w.buf.String())
	}
	if n := moved.count(t, "SELECT count(*) FROM embedding_spaces"); n != 1 {
		t.Errorf("%d spaces after the import, want the one loaded\n%s", n, w.buf.String())
	}
}
