package main

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
)

// A maintenance command killed with SIGKILL (the OOM killer, a Job evicted) in the middle of a
// statement takes the statement with it: the server notices the closed connection and ends it,
// freeing the locks it held, rather than running it on to its end for no one. Here `spaces drop`
// is killed while its DELETE of the space's vectors waits for a row another session holds (as
// a long DELETE of a big space would still be running): its transaction held the spaces table
// (every `activate`, space creation and worker start waits behind it) and the index lock, and
// kept them for as long as the row stayed locked, long after the process was gone.
func TestAKilledCommandsStatementEndsWithIt(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	c.ok("fit") // space 2, active: space 1 can be dropped

	db := c.connect(t)
	// The row is held by a connection of its own: pg_stat_activity is read once per transaction.
	hold := c.connect(t)
	tx, err := hold.Begin(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	var holder int32
	if err := tx.QueryRow(t.Context(), `SELECT pg_backend_pid() FROM embeddings WHERE space_id = 1 LIMIT 1 FOR UPDATE`).Scan(&holder); err != nil {
		t.Fatal(err)
	}

	drop := startProc(t, c, exec.Command(binary, "spaces", "drop", "1"))
	var pid int32 // the drop's backend, once it waits for the row
	for deadline := time.Now().Add(time.Minute); pid == 0; time.Sleep(20 * time.Millisecond) {
		err := db.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE 'DELETE FROM embeddings%'`, holder).Scan(&pid)
		if err != nil && err != pgx.ErrNoRows {
			t.Fatal(err)
		}
		select {
		case err := <-drop.exited:
			t.Fatalf("spaces drop ended (%v) before it waited for the locked row:\n%s", err, drop.logs.String())
		default:
		}
		if pid == 0 && time.Now().After(deadline) {
			t.Fatalf("spaces drop did not come to wait for the locked row:\n%s", drop.logs.String())
		}
	}
	if err := drop.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-drop.exited
	drop.exited <- nil // for the cleanup

	// The row stays locked: only the server's noticing the gone client ends the statement.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var running bool
		if err := db.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, pid).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after spaces drop was killed, its DELETE (backend pid %d) still ran, holding the spaces table and the index lock "+
				"that activate, a new space and a worker's start wait for", pid)
		}
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	// Nothing of the drop happened; run again, it drops the space.
	if r := c.ok("spaces"); !strings.Contains(r.stdout, "paperpipe-offline-hash") {
		t.Fatalf("space 1 is gone after the killed drop:\n%s", r.stdout)
	}
	c.ok("spaces", "drop", "1")
	if r := c.ok("spaces"); strings.Contains(r.stdout, "paperpipe-offline-hash") {
		t.Fatalf("space 1 is still there after the second drop:\n%s", r.stdout)
	}
}

// A `reprocess` killed with SIGKILL mid-run leaves the messages it held delivered and not
// acknowledged: the server hands them out again only once the dead run's hold lapses (the
// AckWait). The same command run again resumes them, buys again only the answers the killed run
// had in flight, and says that it waits for those messages and how long: it sat at "0/66
// papers, 0 papers/s" for a minute, saying nothing, as if it hung.
func TestAReprocessKilledMidRunResumesSayingWhatItWaitsFor(t *testing.T) {
	t.Parallel()
	c, api, stored, args := killedReprocess(t)
	const concurrency = 2 // killedReprocess's
	before := stored()

	r := c.ok(args...)
	if !strings.Contains(r.stderr, "resuming") || !strings.Contains(r.stderr, "those it held, killed, come back once its hold on them lapses") ||
		!strings.Contains(r.stderr, "5s") {
		t.Errorf("the run after the killed one does not say that it waits for the messages the killed run held, nor how long:\n%s", r.stderr)
	}
	if n := stored(); n != 108 {
		t.Errorf("%d TL;DRs of gpt-4o-mini after the second run, want 108 (%d after the kill)", n, before)
	}
	// Bought again: at most the answers the killed run had in flight.
	if s := api.Stats(); s.ChatDelivered > 108+concurrency {
		t.Errorf("%d chat answers delivered for 108 papers, more than the %d in flight at the kill", s.ChatDelivered, concurrency)
	}
}

// A `reprocess` stopped with Ctrl-C hands the messages it holds back to the queue, which
// hands them out again at once: the same command run again goes on with them at once. The
// consumer still counts them as delivered and not acknowledged, and the run resumed said that
// they would come back only once the interrupted run's hold lapsed, "within 1m0s, its AckWait:
// until then no progress is shown" — while it went on at once (found in session 28, walking a
// lab's journey). It says which comes at once and which waits.
func TestAReprocessStoppedByCtrlCResumesWithoutAnnouncingAWaitAlone(t *testing.T) {
	t.Parallel()
	c, _, stored, args := stoppedReprocess(t, syscall.SIGINT)

	r := c.ok(args...)
	if !strings.Contains(r.stderr, "resuming") {
		t.Fatalf("the run after the interrupted one does not resume it:\n%s", r.stderr)
	}
	if strings.Contains(r.stderr, "held by the interrupted run, which the queue hands out again once its hold on them lapses") ||
		!strings.Contains(r.stderr, "those it handed back as it stopped come again at once") {
		t.Errorf("the run after one stopped by Ctrl-C announces a wait for the messages it handed back:\n%s", r.stderr)
	}
	if n := stored(); n != 108 {
		t.Errorf("%d TL;DRs of gpt-4o-mini after the second run, want 108", n)
	}
}

// killMidRun starts paperpipe with args and kills it with SIGKILL once reached reports true,
// waiting three minutes at the most: a reindex's concurrent build waits for every older
// transaction of the shared test database, and under a loaded -race run it took over a minute
// to come to its swap.
func killMidRun(t *testing.T, c *cli, args []string, reached func() bool) {
	t.Helper()
	signalMidRun(t, c, args, reached, syscall.SIGKILL)
}

// signalMidRun is killMidRun with the signal sig.
func signalMidRun(t *testing.T, c *cli, args []string, reached func() bool, sig syscall.Signal) {
	t.Helper()
	run := startProc(t, c, exec.Command(binary, args...))
	for deadline := time.Now().Add(3 * time.Minute); !reached(); time.Sleep(20 * time.Millisecond) {
		select {
		case err := <-run.exited:
			t.Fatalf("paperpipe %s ended (%v) before the point it is to be killed at:\n%s", strings.Join(args, " "), err, run.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("paperpipe %s did not come to the point it is to be killed at:\n%s", strings.Join(args, " "), run.logs.String())
		}
	}
	if err := run.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	<-run.exited
	run.exited <- nil // for the cleanup
}

// A command killed with SIGKILL while it ran the embedded NATS server leaves the queue's files
// without their index of the stream's state; the next command's server rebuilds it from the
// messages, which is what a kill calls for, and loses nothing. The next command said so in the
// NATS server's words, as warnings: "Filestore [PAPERS] Stream state outdated, last block has
// additional entries, will rebuild" and "Recovering stream state from index errored: prior
// state file", which read as a damaged queue.
func TestAfterAKilledCommandTheQueueIsRecoveredWithoutAlarm(t *testing.T) {
	t.Parallel()
	c, _, stored, args := killedReprocess(t)
	r := c.ok("status")
	if strings.Contains(r.stderr, "Filestore") || strings.Contains(r.stderr, "errored") {
		t.Errorf("status after a killed reprocess warns about the queue's files as if they were damaged:\n%s", r.stderr)
	}
	// Nothing is lost: the same command run again finishes.
	c.ok(args...)
	if n := stored(); n != 108 {
		t.Errorf("%d TL;DRs of gpt-4o-mini after the run again, want 108", n)
	}
}

// killedReprocess ingests and processes the sample with the offline models, then kills (SIGKILL)
// a `reprocess` of its TL;DRs by gpt-4o-mini at concurrency 2, on the fake API, once it has stored
// 20 of them. It returns the test's CLI (AckWait 5 s), the API, a count of the TL;DRs by
// gpt-4o-mini stored, and the reprocess command's arguments.
func killedReprocess(t *testing.T) (*cli, *openaitest.Server, func() int, []string) {
	t.Helper()
	return stoppedReprocess(t, syscall.SIGKILL)
}

// stoppedReprocess is killedReprocess with the signal sig.
func stoppedReprocess(t *testing.T, sig syscall.Signal) (*cli, *openaitest.Server, func() int, []string) {
	t.Helper()
	api := openaitest.Start(t, openaitest.Config{ChatLatency: 100 * time.Millisecond})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline",
		"PAPERPIPE_ACK_WAIT=5s")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	db, err := pgx.Connect(t.Context(), c.databaseURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close(context.Background()) })
	stored := func() int {
		var n int
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM tldrs WHERE model = 'gpt-4o-mini'`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n
	}
	args := []string{"reprocess", "--tldr-only", "--chat-model", "gpt-4o-mini", "--concurrency", "2"}
	signalMidRun(t, c, args, func() bool { return stored() >= 20 }, sig)
	return c, api, stored, args
}

// The advice to run a command again once the database answers is added only to an error that
// says nothing of what to do: one that already says it (a migration whose connection was lost
// says to start again once the database answers) is not given it a second time.
func TestUnavailableAdviceIsNotAddedToAnErrorThatSaysWhatToDo(t *testing.T) {
	t.Parallel()
	plain := fmt.Errorf("remove 3 papers (0 removed before): FATAL: terminating connection: %w", paper.ErrUnavailable)
	if unavailableAdvice(plain) == "" {
		t.Errorf("no advice for %q, want it to say to run the command again", plain)
	}
	said := fmt.Errorf("migrate: the connection to the database was lost while migration 00017 was applied: start again "+
		"once the database answers, and the migrations go on from there: %w", paper.ErrUnavailable)
	if advice := unavailableAdvice(said); advice != "" {
		t.Errorf("advice %q added to %q, which says what to do", advice, said)
	}
	if advice := unavailableAdvice(errors.New("no database: the papers table is missing")); advice != "" {
		t.Errorf("advice %q added to an error that is not the database's being unavailable", advice)
	}
}

// A maintenance command whose database session ends under it (PostgreSQL restarted, failed over,
// or an administrator ended the session: here pg_terminate_backend, which is how a restart looks
// to a client) says that the database went away and to run the same command again once it
// answers, which finishes the work. `remove` said only "database unavailable: remove 3 papers (0
// removed before): FATAL: terminating connection due to administrator command (SQLSTATE
// 57P01)".
func TestACommandWhoseDatabaseWentAwaySaysToRunItAgain(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	ids := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(ids, []byte("title:04005abf971a509f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var before statusJSON
	c.json(&before, "status")

	db := c.connect(t)
	hold := c.connect(t)
	tx, err := hold.Begin(t.Context()) // a writer of papers: the removal's table lock waits for it
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	var holder int32
	if _, err := tx.Exec(t.Context(), `LOCK TABLE papers IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	// The removal waits for the table lock RowLockTimeout (5 s) at most: a loaded machine can
	// let that pass before the test sees the wait and ends the session, and the command then
	// fails for the lock (what another test checks), not for its session. That attempt is the
	// test's miss, and is made again.
	var rm *serveProc
	for attempt := 1; ; attempt++ {
		rm = startProc(t, c, exec.Command(binary, "remove", "--ids", ids))
		ended, exited := false, false
		for deadline := time.Now().Add(time.Minute); !ended && !exited; {
			if err := db.QueryRow(t.Context(), `SELECT coalesce(bool_or(pg_terminate_backend(pid)), false) FROM pg_stat_activity
				WHERE $1 = ANY(pg_blocking_pids(pid)) AND application_name = current_setting('application_name')`, holder).Scan(&ended); err != nil {
				t.Fatal(err)
			}
			if !ended && time.Now().After(deadline) {
				t.Fatalf("remove did not come to wait for the papers table:\n%s", rm.logs.String())
			}
			select {
			case err := <-rm.exited:
				rm.exited <- err
				exited = true
			case <-time.After(20 * time.Millisecond):
			}
		}
		<-rm.exited
		rm.exited <- nil // for the cleanup
		if attempt < 3 && strings.Contains(rm.logs.String(), "lock timeout") {
			t.Logf("attempt %d: the removal's lock wait ended before the test ended its session; again", attempt)
			continue
		}
		break
	}
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	msg := rm.logs.String()
	if !strings.Contains(msg, "database unavailable") || !strings.Contains(msg, "run the same command again once it answers") {
		t.Errorf("remove whose session was ended does not say to run it again once the database answers:\n%s", msg)
	}
	c.ok("remove", "--ids", ids)
	var after statusJSON
	c.json(&after, "status")
	if after.Papers.Papers != before.Papers.Papers-1 {
		t.Errorf("%d papers after remove was run again, want %d", after.Papers.Papers, before.Papers.Papers-1)
	}
}

// A `spaces reindex` killed (SIGKILL, or its session ended) while it builds the new index leaves
// that index, invalid, beside the space's: no query uses it, it holds the disk the build took,
// and, once past its first phase, every write of embeddings updates it. `spaces`, `status` and
// `spaces check` showed nothing of it. They name it now and say what drops it; a reindex run
// again to the kind the space keeps (it said "already has its index") drops it too.
func TestAKilledReindexsLeftoverIndexIsShownAndDropped(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()

	db := c.connect(t)
	hold := c.connect(t)
	tx, err := hold.Begin(t.Context()) // a writer of embeddings: the concurrent build waits for it
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(t.Context())
	var holder int32
	if _, err := tx.Exec(t.Context(), `LOCK TABLE embeddings IN ROW EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	if err := tx.QueryRow(t.Context(), `SELECT pg_backend_pid()`).Scan(&holder); err != nil {
		t.Fatal(err)
	}
	killBlocked(t, c, db, holder, "CREATE INDEX CONCURRENTLY", "its build", "spaces", "reindex", "1", "--index", "hnsw-binary")
	if err := tx.Rollback(t.Context()); err != nil {
		t.Fatal(err)
	}
	leftover := func() bool {
		var n int
		if err := db.QueryRow(t.Context(), `SELECT count(*) FROM pg_index WHERE indexrelid = to_regclass('embeddings_hnsw_s1_new')`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		return n > 0
	}
	if !leftover() {
		t.Fatal("the killed reindex left no embeddings_hnsw_s1_new: the test kills it too late or too early")
	}
	for _, args := range [][]string{{"spaces"}, {"status"}, {"spaces", "check", "1"}} {
		r := c.ok(args...)
		if out := r.stdout + r.stderr; !strings.Contains(out, "embeddings_hnsw_s1_new") || !strings.Contains(out, "spaces reindex 1") {
			t.Errorf("paperpipe %s does not show the unfinished index the killed reindex left, nor what drops it:\n%s", strings.Join(args, " "), out)
		}
	}
	// Run again to the kind the space has (the user changed their mind): the leftover goes.
	r := c.ok("spaces", "reindex", "1", "--index", "hnsw-halfvec")
	if leftover() {
		t.Errorf("a reindex run again to the space's kind leaves the killed one's embeddings_hnsw_s1_new:\n%s", r.stderr)
	}
	if r := c.ok("spaces"); strings.Contains(r.stdout, "_new") {
		t.Errorf("spaces still shows an unfinished index after it was dropped:\n%s", r.stdout)
	}
}

// `spaces drop ID` killed after its transaction committed, before it removed the space's
// re-processing queue (an interrupted `reprocess` into the space left one), leaves the queue
// with nothing to process it: `status` flags it. The same command run again, by the id it was
// given, said the space was not found and left the queue (only the space's name found it).
func TestAKilledSpacesDropRunAgainByIDRemovesTheSpacesQueue(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{EmbedLatency: time.Hour})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	// A reprocess into a new space (2), killed while it waits for its first vectors: its
	// consumer and messages stay.
	killMidRun(t, c, []string{"reprocess", "--embed-only", "--embed-model", "text-embedding-3-small", "--embed-dimensions", "64"},
		func() bool { return api.Stats().EmbedRequests > 0 })
	if r := c.ok("status"); !strings.Contains(r.stdout, "backlog reprocess-") {
		t.Fatalf("the killed reprocess left no queue:\n%s", r.stdout)
	}
	// The drop's NATS answers nothing: the drop commits, then waits for it, and is killed there.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		if conn, err := ln.Accept(); err == nil {
			accepted <- conn
		}
	}()
	silent := &cli{t: t, env: append(slices.Clone(c.env), "NATS_URL=nats://"+ln.Addr().String())}
	killMidRun(t, silent, []string{"spaces", "drop", "2"}, func() bool {
		select {
		case conn := <-accepted:
			conn.Close()
			return true
		default:
			return false
		}
	})
	if r := c.ok("spaces"); strings.Contains(r.stdout, "text-embedding-3-small") {
		t.Fatalf("space 2 is still there after the drop killed waiting for NATS:\n%s", r.stdout)
	}
	if r := c.ok("status"); !strings.Contains(r.stdout, "which was dropped") {
		t.Fatalf("status does not flag the dropped space's queue:\n%s", r.stdout)
	}
	r := c.run("spaces", "drop", "2")
	if r.code != 0 || !strings.Contains(r.stderr, "removed") {
		t.Errorf("spaces drop 2 run again: exit %d, it does not say it removed the space's queue:\n%s", r.code, r.stderr)
	}
	if r := c.ok("status"); strings.Contains(r.stdout, "backlog reprocess-") {
		t.Errorf("the dropped space's queue is still there after spaces drop 2 was run again:\n%s", r.stdout)
	}
}

// A `reprocess` killed between saving a paper's answer and acknowledging its message (answers
// are saved as they arrive, acknowledged after) leaves that message queued for a paper that is
// no longer stale. The run again counts the stale papers, then resumes the queue: that paper,
// skipped as done, was counted done too, and the run showed more papers done than it set out
// to do ("89/88 papers", "interrupted after 89 papers").
func TestAReprocessResumedAfterAKillCountsOnlyThePapersItSetOutToDo(t *testing.T) {
	t.Parallel()
	c, _, stored, args := killedReprocess(t)
	db := c.connect(t)
	// A paper whose answer the killed run saved and did not acknowledge: the window is a
	// moment wide, so its TL;DR is stored here, as the run would have.
	tag, err := db.Exec(t.Context(), `INSERT INTO tldrs (paper_id, model, prompt_version, content_hash, tldr, validation)
		SELECT p.id, t.model, t.prompt_version, p.content_hash, 'saved before the kill', t.validation
		FROM papers p, (SELECT * FROM tldrs WHERE model = 'gpt-4o-mini' LIMIT 1) t
		WHERE NOT EXISTS (SELECT 1 FROM tldrs x WHERE x.paper_id = p.id AND x.model = 'gpt-4o-mini')
		ORDER BY p.id LIMIT 1`)
	if err != nil || tag.RowsAffected() != 1 {
		t.Fatalf("store a TL;DR of a queued paper: %v, %d rows", err, tag.RowsAffected())
	}
	stale := 108 - stored()
	r := c.ok(args...)
	if n := stored(); n != 108 {
		t.Errorf("%d TL;DRs of gpt-4o-mini after the run again, want 108", n)
	}
	m := regexp.MustCompile(`reprocess: (\d+) papers? to process`).FindStringSubmatch(r.stderr)
	if m == nil || m[1] != strconv.Itoa(stale) {
		t.Fatalf("the run again does not say it has the %d stale papers to process:\n%s", stale, r.stderr)
	}
	for _, re := range []string{`(\d+)/\d+ papers`, `reprocess: (\d+) papers? processed`} {
		for _, m := range regexp.MustCompile(re).FindAllStringSubmatch(r.stderr, -1) {
			if n, _ := strconv.Atoi(m[1]); n > stale {
				t.Errorf("the run again counts %d papers done of the %d it set out to do (%q):\n%s", n, stale, m[0], r.stderr)
			}
		}
	}
	// The case is the resumed message of a paper with nothing left to do: the run must have
	// met it (skipped it as done), or the counts above would hold without it.
	m = regexp.MustCompile(`reprocess: (\d+) papers? processed: .*, (\d+) skipped \(already done\)`).FindStringSubmatch(r.stderr)
	if m == nil {
		t.Fatalf("the run again does not say what it processed and skipped:\n%s", r.stderr)
	}
	if n, _ := strconv.Atoi(m[2]); n < 1 {
		t.Errorf("the run again skipped %d messages as done: the paper whose TL;DR was stored before the kill was not resumed (%q):\n%s", n, m[0], r.stderr)
	}
	if n, _ := strconv.Atoi(m[1]); n != stale {
		t.Errorf("the run again processed %d papers, want the %d it set out to do (%q):\n%s", n, stale, m[0], r.stderr)
	}
}

// killBlocked runs paperpipe args and kills it (killMidRun) once a backend of its blocked by
// the backend holder runs a statement starting with query, then waits for the server to end
// that statement (ClientCheckInterval), failing the test, naming it what, after 30 s.
func killBlocked(t *testing.T, c *cli, db *pgx.Conn, holder int32, query, what string, args ...string) {
	t.Helper()
	var blocked int32
	killMidRun(t, c, args, func() bool {
		err := db.QueryRow(t.Context(), `SELECT pid FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND starts_with(query, $2)
				AND application_name = current_setting('application_name')`, holder, query).Scan(&blocked)
		if err != nil && err != pgx.ErrNoRows {
			t.Fatal(err)
		}
		return blocked != 0
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		var running bool
		if err := db.QueryRow(t.Context(), `SELECT EXISTS (SELECT 1 FROM pg_stat_activity WHERE pid = $1)`, blocked).Scan(&running); err != nil {
			t.Fatal(err)
		}
		if !running {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("30 s after paperpipe %s was killed, %s (backend pid %d) still ran", strings.Join(args, " "), what, blocked)
		}
	}
}
