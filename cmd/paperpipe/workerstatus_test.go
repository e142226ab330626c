package main

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// workersStatusJSON is what status --json and GET /api/status say of the backlogs' workers.
type workersStatusJSON struct {
	Backlog []struct {
		Consumer string `json:"consumer"`
		Workers  []struct {
			Host  string `json:"host"`
			PID   int    `json:"pid"`
			State string `json:"state"`
			Pause *struct {
				Reason string    `json:"reason"`
				Until  time.Time `json:"until"`
			} `json:"pause"`
		} `json:"workers"`
		NoWorker bool `json:"no_worker_running"`
	} `json:"backlog"`
	WorkersError    string `json:"workers_error"`
	NoWorkersBucket bool   `json:"no_workers_bucket"`
}

// TestStatusListsTheWorkersAndAPauseForAnHourLongRateLimitWithItsEnd: during a long rate limit
// (a 429 with Retry-After: 3600) the workers wait, and `status`, the status page and GET
// /api/status showed a backlog that did not move, with no word of why, of the workers or of
// whether any ran (only each worker's /metrics and log said it). They list the workers of each
// consumer now — this one paused, rate limited, until the hour the API gave —, say that no
// worker is running when none is, and drop a worker that stopped cleanly at once.
func TestStatusListsTheWorkersAndAPauseForAnHourLongRateLimitWithItsEnd(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Faults: openaitest.Faults{RateLimit: 1, RetryAfter: time.Hour}})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test")
	c.ok("ingest", sampleFile)
	// No worker has run yet: the bucket does not exist, and the note says that workers of an
	// account that may not make it run unannounced.
	if r := c.ok("status"); !strings.Contains(r.stdout, "note: no worker is running for backlog "+pipeline.ConsumerNew) ||
		!strings.Contains(r.stdout, "bucket paperpipe_workers does not exist") {
		t.Errorf("status with papers queued and no worker does not say no worker is running, and why it may not know:\n%s", r.stdout)
	}
	var st workersStatusJSON
	if c.json(&st, "status"); len(st.Backlog) != 1 || !st.Backlog[0].NoWorker || len(st.Backlog[0].Workers) != 0 || !st.NoWorkersBucket {
		t.Errorf("status --json with no worker: %+v, want no_worker_running and no_workers_bucket", st)
	}

	start := time.Now()
	up := exec.Command(binary, "up", "--http", "127.0.0.1:0")
	up.Env = c.env
	stderr, err := up.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	var logs lockedBuffer
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		_ = up.Process.Signal(syscall.SIGTERM)
		if err := up.Wait(); err != nil {
			t.Errorf("up: %v\n%s", err, logs.String())
		}
	}
	defer stop()
	base := servedURL(t, stderr, &logs)

	paused := func(st workersStatusJSON) bool {
		return len(st.Backlog) == 1 && len(st.Backlog[0].Workers) == 1 && st.Backlog[0].Workers[0].Pause != nil &&
			st.Backlog[0].Workers[0].Pause.Reason == pipeline.PauseRateLimited
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st = workersStatusJSON{}
		if c.json(&st, "status"); paused(st) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --json never listed the worker paused by the rate limit: %+v\n%s", st, logs.String())
		}
	}
	w := st.Backlog[0].Workers[0]
	if w.State != pipeline.StatePaused || w.PID != up.Process.Pid || w.Host == "" || st.Backlog[0].NoWorker || st.NoWorkersBucket {
		t.Errorf("status --json: %+v", st.Backlog[0])
	}
	if end := w.Pause.Until; end.Before(start.Add(59*time.Minute)) || end.After(time.Now().Add(time.Hour)) {
		t.Errorf("status --json: paused until %s, want the hour the API gave (from %s)", end, start)
	}
	r := c.ok("status")
	if !strings.Contains(r.stdout, "paused: rate limited by the API until") || strings.Contains(r.stdout, "no worker is running") {
		t.Errorf("status:\n%s", r.stdout)
	}
	// The worker's state is no cell of the numbers' column: a pause's text there pushed every
	// line's note 70 characters to the right.
	if !regexp.MustCompile(`(?m)^with TL;DR +\d+ {1,8}\(`).MatchString(r.stdout) {
		t.Errorf("status's lines are not aligned on their numbers with a paused worker listed:\n%s", r.stdout)
	}

	resp, err := http.Get(base + "/api/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	var web workersStatusJSON
	if err := json.Unmarshal(body, &web); err != nil || !paused(web) || !web.Backlog[0].Workers[0].Pause.Until.Equal(w.Pause.Until) {
		t.Errorf("GET /api/status: %v %s, want the worker paused as status says", err, body)
	}
	resp, err = http.Get(base + "/status")
	if err != nil {
		t.Fatal(err)
	}
	body, _ = io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "paused: rate limited by the API until") {
		t.Errorf("the status page does not show the paused worker:\n%s", body)
	}

	stop()
	st = workersStatusJSON{}
	if c.json(&st, "status"); len(st.Backlog) != 1 || len(st.Backlog[0].Workers) != 0 || !st.Backlog[0].NoWorker {
		t.Errorf("status --json once the worker stopped cleanly: %+v, want none listed and no_worker_running", st)
	}
}

// TestStatusJSONAlwaysGivesNoWorkerRunningAndOverdue: status --json left no_worker_running
// and a worker's overdue out when false, while GET /api/status always gives both and README
// says --json gives them; a script reading them had to tell a missing field from false.
func TestStatusJSONAlwaysGivesNoWorkerRunningAndOverdue(t *testing.T) {
	raw, err := json.Marshal(statusBacklog{Workers: []statusWorker{{}}})
	if err != nil {
		t.Fatal(err)
	}
	var bl struct {
		NoWorker *bool `json:"no_worker_running"`
		Workers  []struct {
			Overdue *bool `json:"overdue"`
		} `json:"workers"`
	}
	if err := json.Unmarshal(raw, &bl); err != nil {
		t.Fatal(err)
	}
	if bl.NoWorker == nil || len(bl.Workers) != 1 || bl.Workers[0].Overdue == nil {
		t.Errorf("status --json of a backlog with a running worker that is not overdue: %s, want no_worker_running and overdue given as false", raw)
	}
}

func TestStatusGivesNoTLDRSlotsForAWorkerThatWritesNoTLDRs(t *testing.T) {
	w := statusWorker{AnnouncedWorker: pipeline.AnnouncedWorker{Announcement: pipeline.Announcement{Concurrency: 0, Held: 3}}}
	if got := workerDetailsText(w); strings.Contains(got, "slots") || !strings.Contains(got, "3 messages held") {
		t.Errorf("a worker without TL;DR slots: %q", got)
	}
	w.Concurrency = 16
	if got := workerDetailsText(w); !strings.Contains(got, "16 TL;DR slots, 3 messages held") {
		t.Errorf("a worker with 16 TL;DR slots: %q", got)
	}
}

// A worker holding one message holds "1 message", not "1 messages" (found in session 29,
// walking a lab's journey: a paused worker tries one message at a time, and so holds one).
func TestStatusSaysAWorkerHoldsOneMessageInTheSingular(t *testing.T) {
	w := statusWorker{AnnouncedWorker: pipeline.AnnouncedWorker{Announcement: pipeline.Announcement{Held: 1, Processed: 1}}}
	if got := workerDetailsText(w); !strings.Contains(got, " 1 message held, 1 processed") {
		t.Errorf("a worker holding one message: %q", got)
	}
}

// TestStatusPageSaysWorkersMayRunUnannouncedWhenTheirBucketDoesNotExist: workers of a NATS
// account that may not make the bucket paperpipe_workers run unannounced. `status` says so
// when the bucket does not exist; the status page said "No worker is running" and that the
// backlog's messages were "not being processed", as a fact, and GET /api/status gave no sign.
func TestStatusPageSaysWorkersMayRunUnannouncedWhenTheirBucketDoesNotExist(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	base := startServe(t, c)
	get := func(path string) string {
		t.Helper()
		resp, err := http.Get(base + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		body, _ := io.ReadAll(resp.Body)
		return string(body)
	}
	page := get("/status")
	for _, want := range []string{"No worker is announced for <code>" + pipeline.ConsumerNew + "</code>", "<code>paperpipe_workers</code> does not exist",
		"run unannounced"} {
		if !strings.Contains(page, want) {
			t.Errorf("the status page lacks %q", want)
		}
	}
	if strings.Contains(page, "No worker is running") || strings.Contains(page, "not being processed") {
		t.Errorf("the status page says no worker runs, as a fact, while workers may run unannounced:\n%s", page)
	}
	var st struct {
		NoWorkersBucket bool `json:"no_workers_bucket"`
	}
	if body := get("/api/status"); json.Unmarshal([]byte(body), &st) != nil || !st.NoWorkersBucket {
		t.Errorf("GET /api/status does not say no_workers_bucket: %s", body)
	}
}

// TestStatusSaysAReprocessRunOfEmbeddingsWritesNoTLDRs: a `reprocess --embed-only` run's worker
// was announced with its consumer's description, "re-processing: TL;DRs gpt-4o-mini tldr-v1,
// space …", as if it bought TL;DRs; it says what it writes as a worker does: the embeddings of
// its space alone.
func TestStatusSaysAReprocessRunOfEmbeddingsWritesNoTLDRs(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test")
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	// Embeddings of another space, which the run waits to buy while the API's limit holds.
	api.SetFaults(openaitest.Faults{RateLimit: 1, RetryAfter: time.Hour})
	run := exec.Command(binary, "reprocess", "--embed-only", "--embed-dimensions", "256")
	run.Env = c.env
	var logs lockedBuffer
	run.Stderr = &logs
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = run.Process.Signal(syscall.SIGTERM)
		_ = run.Wait()
	}()
	// The run runs the embedded NATS server before status is asked: a status started beside it
	// may run the server itself and stop it at once, and the run, taking it over while it sets
	// its queue up, failed (see the session 27 note: a CLI command racing a run for the server).
	for deadline := time.Now().Add(time.Minute); !strings.Contains(logs.String(), "to process"); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the reprocess run never said what it processes:\n%s", logs.String())
		}
	}
	var st struct {
		Backlog []struct {
			Consumer string `json:"consumer"`
			Workers  []struct {
				Target string `json:"target"`
			} `json:"workers"`
		} `json:"backlog"`
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
		st.Backlog = nil
		c.json(&st, "status")
		var target string
		for _, bl := range st.Backlog {
			if strings.HasPrefix(bl.Consumer, "reprocess-") && len(bl.Workers) == 1 {
				target = bl.Workers[0].Target
			}
		}
		if target != "" {
			if strings.Contains(target, "TL;DR") || !strings.Contains(target, "embeddings in space ") {
				t.Errorf("the reprocess run's worker writes %q, want the embeddings of its space alone", target)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status --json never listed the reprocess run's worker: %+v\n%s", st, logs.String())
		}
	}
}

func TestStatusListsAReprocessRunWhileItRunsAndNotAfter(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{ChatLatency: 300 * time.Millisecond})
	srv := natstest.Start(t)
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline", "NATS_URL="+srv.ClientURL())
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	// TL;DRs by an API model, two at a time: a run of about 16 s.
	rc := &cli{t: t, env: append(slices.Clone(c.env), "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test",
		"PAPERPIPE_CHAT_MODEL=gpt-4o-mini", "PAPERPIPE_CONCURRENCY=2")}
	run := exec.Command(binary, "reprocess", "--tldr-only")
	run.Env = rc.env
	var out lockedBuffer
	run.Stdout, run.Stderr = &out, &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- run.Wait() }()

	listed := false
	for !listed {
		var st workersStatusJSON
		rc.json(&st, "status")
		for _, bl := range st.Backlog {
			for _, w := range bl.Workers {
				if strings.HasPrefix(bl.Consumer, "reprocess-") && w.PID == run.Process.Pid {
					listed = true
				}
			}
		}
		if listed {
			break
		}
		select {
		case err := <-ended:
			t.Fatalf("the reprocess run ended (%v) and status never listed it: %+v\n%s", err, st, out.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
	if err := <-ended; err != nil {
		t.Fatalf("reprocess: %v\n%s", err, out.String())
	}
	ws, _, err := pipeline.AnnouncedWorkers(t.Context(), srv.Connect(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, w := range ws {
		if w.PID == run.Process.Pid {
			t.Errorf("the reprocess run ended and its announcement is still in the bucket: %+v", w)
		}
	}
	if s := api.Stats(); s.ChatDelivered != 108 {
		t.Errorf("the run bought %d TL;DRs, want the 108 papers' (it did not run to its end?)", s.ChatDelivered)
	}
}

// TestResumedReprocessRunWarnsOfALoweredSettingOnce: a reprocess run makes a worker for the
// messages an interrupted run left and another for the papers it queues itself; each warned of
// a PAPERPIPE_MSG_TIMEOUT lowered to fit the consumer's AckWait, and the resumed run said the
// same warning twice (found in session 27, looking for session 25's stop warning said twice).
func TestResumedReprocessRunWarnsOfALoweredSettingOnce(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{ChatLatency: 200 * time.Millisecond})
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	ids := writeFile(t, t.TempDir(), "ids.txt", []byte("title:04005abf971a509f\ntitle:05420b8e15740d5a\ntitle:058cf16438828c94\ntitle:05a6150e370d5e74\n"))
	// Above what the AckWait (60 s) leaves a message's work (30 s): lowered, with a warning.
	rc := &cli{t: t, env: append(slices.Clone(c.env), "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test",
		"PAPERPIPE_CHAT_MODEL=gpt-4o-mini", "PAPERPIPE_MSG_TIMEOUT=45s", "PAPERPIPE_CONCURRENCY=1")}

	// A run of four papers, one at a time, interrupted once the first TL;DR is bought.
	run := exec.Command(binary, "reprocess", "--tldr-only", "--ids", ids)
	run.Env = rc.env
	var out lockedBuffer
	run.Stderr = &out
	if err := run.Start(); err != nil {
		t.Fatal(err)
	}
	ended := make(chan error, 1)
	go func() { ended <- run.Wait() }()
	for api.Stats().ChatDelivered == 0 {
		select {
		case err := <-ended:
			t.Fatalf("the run ended (%v) before a TL;DR was bought:\n%s", err, out.String())
		case <-time.After(10 * time.Millisecond):
		}
	}
	_ = run.Process.Signal(syscall.SIGINT)
	<-ended

	r := rc.ok("reprocess", "--tldr-only")
	if !strings.Contains(r.stderr, "reprocess: resuming: ") {
		t.Fatalf("the second run resumed nothing; the test proves nothing:\n%s\nthe first run:\n%s", r.stderr, out.String())
	}
	if n := strings.Count(r.stderr, "message timeout lowered"); n != 1 {
		t.Errorf("the resumed run warned %d times of the lowered message timeout, want once:\n%s", n, r.stderr)
	}
}

// TestStatusSaysWhatEachWorkerWritesAndWarnsOfOneWhosePapersNoSearchFinds: a worker left
// running on the settings of before a switch of embedding model (or started from a shell
// without them) writes its vectors into a space queries do not use, or into none once that
// space is dropped: the papers it stores are found by no search and no `related`. Its log said
// so once, at start; `status` listed it "idle" or "working" like any other, with nothing of
// what it wrote (the status page and --json had it), and two workers of different settings, each
// writing half of the TL;DRs with its own model, looked alike (found in session 28, walking a
// lab's journey). Each worker's line now says what it writes, and notes name the worker whose
// vectors go to a space that is not the active one, or to a dropped one, and workers of one
// backlog that write different things. The status page, GET /api/status and status --json
// give the same notes: they gave each worker's target alone, for the operator to compare with
// the active space and the other workers' (found in session 29, walking a lab's journey).
func TestStatusAndItsPageSayWhatEachWorkerWritesAndWarnOfOneWhosePapersNoSearchFinds(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{})
	srv := natstest.Start(t)
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline", "NATS_URL="+srv.ClientURL())
	c.ok("ingest", sampleFile)
	c.workUntilIdle() // the offline hashed model's space is the active one
	apiEnv := append(slices.Clone(c.env), "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test",
		"PAPERPIPE_CHAT_MODEL=gpt-4o-mini", "PAPERPIPE_EMBED_MODEL=text-embedding-3-small")
	start := func(env []string) *exec.Cmd {
		t.Helper()
		w := exec.Command(binary, "worker")
		w.Env = env
		if err := w.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = w.Process.Signal(syscall.SIGTERM)
			_ = w.Wait()
		})
		return w
	}
	// listed waits until status lists the workers of these pids.
	listed := func(pids ...int) {
		t.Helper()
		for deadline := time.Now().Add(time.Minute); ; time.Sleep(100 * time.Millisecond) {
			var st workersStatusJSON
			c.json(&st, "status")
			n := 0
			for _, bl := range st.Backlog {
				for _, w := range bl.Workers {
					if slices.Contains(pids, w.PID) {
						n++
					}
				}
			}
			if n == len(pids) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("status never listed the workers %v: %+v", pids, st)
			}
		}
	}
	base := startServe(t, c)
	// noted checks that status --json, GET /api/status and the status page give a note with
	// want in it, as status's own notes do (the callers check those).
	noted := func(want string) {
		t.Helper()
		var js struct {
			Notes []string `json:"worker_notes"`
		}
		c.json(&js, "status")
		if !slices.ContainsFunc(js.Notes, func(n string) bool { return strings.Contains(n, want) }) {
			t.Errorf("status --json: worker_notes %q, want one saying %q", js.Notes, want)
		}
		getJSON(t, base+"/api/status", &js)
		if !slices.ContainsFunc(js.Notes, func(n string) bool { return strings.Contains(n, want) }) {
			t.Errorf("GET /api/status: worker_notes %q, want one saying %q", js.Notes, want)
		}
		if page := getBody(t, base+"/status"); !strings.Contains(page, html.EscapeString(want)) {
			t.Errorf("the status page does not say %q:\n%s", want, page)
		}
	}
	const apiSpace = "text-embedding-3-small/1536/title-abstract-v1"
	old := start(apiEnv)
	listed(old.Process.Pid)
	r := c.ok("status")
	if !strings.Contains(r.stdout, "writes: TL;DRs by gpt-4o-mini (prompt tldr-v1), embeddings in space "+apiSpace) {
		t.Errorf("status does not say what the worker writes:\n%s", r.stdout)
	}
	who := fmt.Sprintf("note: worker %s pid %d", mustHostname(t), old.Process.Pid)
	if !strings.Contains(r.stdout, who+" writes embeddings in space "+apiSpace+", which queries do not use (the active space is paperpipe-offline-hash-v2/") {
		t.Errorf("status does not say that the worker's papers go to a space queries do not use:\n%s", r.stdout)
	}
	noted(" writes embeddings in space " + apiSpace + ", which queries do not use (the active space is paperpipe-offline-hash-v2/")
	if strings.Contains(r.stdout, "write different things") {
		t.Errorf("status says one worker's backlog has workers that write different things:\n%s", r.stdout)
	}

	offline := start(c.env)
	listed(old.Process.Pid, offline.Process.Pid)
	if r := c.ok("status"); !strings.Contains(r.stdout, "note: the workers of backlog "+pipeline.ConsumerNew+" write different things") {
		t.Errorf("status does not say that the two workers write different things:\n%s", r.stdout)
	}
	noted("the workers of backlog " + pipeline.ConsumerNew + " write different things")

	c.ok("spaces", "drop", apiSpace)
	if r := c.ok("status"); !strings.Contains(r.stdout, who+" was started for space "+apiSpace+", which was dropped: it stores TL;DRs and no vectors") {
		t.Errorf("status does not say that the worker's space was dropped:\n%s", r.stdout)
	}
	noted(" was started for space " + apiSpace + ", which was dropped: it stores TL;DRs and no vectors")
}

func mustHostname(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// TestAWorkersLogLinesNameTheConsumerOnce: a worker's log names its consumer under `consumer`
// (README, PAPERPIPE_LOG_LEVEL), which its command's logger adds to every line; the lines of a
// lowered MaxDeliver or AckWait added it again, `consumer=workers consumer=workers`, a key twice
// in one logfmt line, which log processors read as they like (found in session 28, walking a
// lab's journey with PAPERPIPE_MAX_DELIVER=2).
func TestAWorkersLogLinesNameTheConsumerOnce(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle() // the consumer, made with the default MaxDeliver
	lowered := &cli{t: t, env: append(slices.Clone(c.env), "PAPERPIPE_LOG_LEVEL=info", "PAPERPIPE_MAX_DELIVER=2")}
	r := lowered.ok("worker", "--exit-when-idle")
	if !strings.Contains(r.stderr, "MaxDeliver is being lowered") {
		t.Fatalf("the worker did not say that it lowers MaxDeliver:\n%s", r.stderr)
	}
	for _, line := range strings.Split(r.stderr, "\n") {
		if strings.Count(line, " consumer=") > 1 {
			t.Errorf("a log line names the consumer twice: %s", line)
		}
	}
}

// With the queue's server down, status shows what the database has — the papers, the TL;DRs,
// the vectors and the API's usage — as the status page does, and exits 1 naming the queue's
// error: it said only that NATS could not be reached, and the operator of an outage lost the
// counts with it (found in session 29, walking a lab's journey).
func TestStatusWithoutTheQueueShowsTheDatabasesPartsAndExits1(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	down := &cli{t: t, env: append(slices.Clone(c.env), "NATS_URL=nats://127.0.0.1:1")}
	r := down.run("status")
	if r.code != 1 || !strings.Contains(r.stderr, "the queue could not be read") || !strings.Contains(r.stderr, "nats://127.0.0.1:1") {
		t.Errorf("status without the queue: exit %d, stderr %q; want 1, saying the queue could not be read and naming its server", r.code, r.stderr)
	}
	if !regexp.MustCompile(`(?m)^papers +108$`).MatchString(r.stdout) || !regexp.MustCompile(`(?m)^with TL;DR +108 `).MatchString(r.stdout) ||
		!strings.Contains(r.stdout, "dead letters    ?") {
		t.Errorf("status without the queue does not show the database's counts, and the dead letters as unknown:\n%s", r.stdout)
	}
	var js struct {
		Papers     struct{ Papers int } `json:"papers"`
		QueueError string               `json:"queue_error"`
	}
	r = down.run("status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &js); err != nil || r.code != 1 || js.Papers.Papers != 108 || !strings.Contains(js.QueueError, "nats://127.0.0.1:1") {
		t.Errorf("status --json without the queue: exit %d, %+v (%v); want 1, the 108 papers and queue_error\n%s", r.code, js, err, r.stdout)
	}
}

// A worker started on the settings of a space that `spaces drop` removed (a machine left on
// the old model after a switch) made the space again, empty, and bought the vectors of every
// new paper for a space no query uses, a warning in its log the only word of it (found in
// session 28, walking a lab's journey). It is refused at start (exit 2), naming the drop and
// the active space's settings; a space made again on purpose (`reprocess --embed-only`, which
// fills it) is the workers' again.
func TestAWorkerOnTheSettingsOfADroppedSpaceRefusesToMakeItAgain(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{})
	c := newCLI(t, "PAPERPIPE_CHAT_MODEL=offline", "PAPERPIPE_EMBED_MODEL=offline")
	c.ok("ingest", sampleFile)
	c.workUntilIdle() // the offline hashed model's space is the active one
	old := &cli{t: t, env: append(slices.Clone(c.env), "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test",
		"PAPERPIPE_EMBED_MODEL=text-embedding-3-small")}
	const apiSpace = "text-embedding-3-small/1536/title-abstract-v1"
	old.ok("worker", "--exit-when-idle")
	c.ok("spaces", "drop", apiSpace)

	r := old.run("worker", "--exit-when-idle")
	if r.code != 2 || !strings.Contains(r.stderr, "embedding space "+apiSpace+" was dropped on ") ||
		!strings.Contains(r.stderr, "set PAPERPIPE_EMBED_MODEL=offline") || !strings.Contains(r.stderr, "`paperpipe reprocess --embed-only`") {
		t.Errorf("a worker on the dropped space's settings: exit %d\n%s\nwant 2, naming the drop, the active space's settings and how to make it again", r.code, r.stderr)
	}
	if out := c.ok("spaces").stdout; strings.Contains(out, apiSpace) {
		t.Errorf("the refused worker made the dropped space again:\n%s", out)
	}

	old.ok("reprocess", "--embed-only")
	if r := old.run("worker", "--exit-when-idle"); r.code != 0 {
		t.Errorf("a worker on the settings of the space made again on purpose: exit %d\n%s", r.code, r.stderr)
	}
}
