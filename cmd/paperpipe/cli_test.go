package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/internal/webstore"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
	"github.com/paperpipe/paperpipe/web"
)

// A worker on another embedding model than the active space's (as after `make demo` and then
// an API key) says at start that its space is not active, how to fill and activate it, and what
// to set to go on with the active space instead; the advice works.
func TestWorkerWarnsWhenItsSpaceIsNotActive(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	if r := c.ok("worker", "--exit-when-idle"); strings.Contains(r.stderr, "not active") {
		t.Errorf("the worker of the only (so active) space warned:\n%s", r.stderr)
	}
	c.ok("fit")
	// A paper that arrives now is embedded by this worker into its own space only.
	late := filepath.Join(t.TempDir(), "late.jsonl")
	if err := os.WriteFile(late, []byte(`{"id":"arxiv:2412.99999","title":"Late routing","abstract":"We route a late paper to experts and measure what it costs."}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	c.ok("ingest", late)
	r := c.ok("worker", "--exit-when-idle", "--embed-model", "paperpipe-offline-hash-v2")
	for _, want := range []string{
		"embeddings go to space 1 (paperpipe-offline-hash-v2/768/title-abstract-v1), which is not active",
		"`paperpipe reprocess --embed-only --embed-model paperpipe-offline-hash-v2`",
		"`paperpipe activate 1`",
		// The other way out: the workers on the active (fitted) space's model.
		"or, to go on with the active space, set PAPERPIPE_EMBED_MODEL=offline",
	} {
		if !strings.Contains(r.stderr, want) {
			t.Errorf("the worker's warning lacks %q:\n%s", want, r.stderr)
		}
	}
	// Its related papers are looked up in the active space, which lacks it: the answer names
	// the space it is in, and the reprocess that fills the active (fitted) one.
	if r := c.run("related", "arxiv:2412.99999"); r.code == 0 || !strings.Contains(r.stderr, "has one in space 1, paperpipe-offline-hash-v2") ||
		!strings.Contains(r.stderr, "`paperpipe reprocess --embed-only --embed-model paperpipe-offline-tfidf-") {
		t.Errorf("related of a paper embedded only in the inactive space: exit %d, stderr %q; want it to name space 1 and the reprocess that fills the active one", r.code, r.stderr)
	}
	if r := c.run("search", "mixture of experts", "--embed-model", "paperpipe-offline-hash-v2"); r.code == 0 {
		t.Fatalf("a search embedded by the inactive space's model was answered:\n%s", r.stdout)
	}
	c.ok("reprocess", "--embed-only", "--embed-model", "paperpipe-offline-hash-v2")
	c.ok("activate", "1")
	c.ok("search", "mixture of experts", "--embed-model", "paperpipe-offline-hash-v2")
	if r := c.ok("worker", "--exit-when-idle", "--embed-model", "paperpipe-offline-hash-v2"); strings.Contains(r.stderr, "not active") {
		t.Errorf("the worker of the active space warned:\n%s", r.stderr)
	}
}

// A fitted offline model, named by a hash of its content, costs nothing like the other offline
// models: a dry run of filling its space prices it at $0.
func TestDryRunPricesAFittedOfflineModelAtZero(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	r := c.ok("fit", "--fill=false", "--activate=false")
	model := regexp.MustCompile(`paperpipe-offline-tfidf-[0-9a-f]+`).FindString(r.stderr)
	if model == "" {
		t.Fatalf("fit did not name its model:\n%s", r.stderr)
	}
	r = c.ok("reprocess", "--embed-only", "--embed-model", model, "--dry-run")
	if !regexp.MustCompile(`estimated cost +\$0\.00\n`).MatchString(r.stdout) || strings.Contains(r.stdout, "no price") {
		t.Errorf("dry run of %s:\n%s", model, r.stdout)
	}
}

// Replaying every dead letter of an empty dead-letter queue is nothing to do, not a mistake;
// naming none is.
func TestDLQReplayAllWithNoDeadLetters(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	r := c.run("dlq", "replay", "--all")
	if r.code != 0 || !strings.Contains(r.stderr, "no dead letters to replay") {
		t.Errorf("dlq replay --all with none: exit %d, stderr %s; want 0 and \"no dead letters to replay\"", r.code, r.stderr)
	}
	if r := c.run("dlq", "replay"); r.code != 2 {
		t.Errorf("dlq replay naming nothing: exit %d, want 2 (usage)", r.code)
	}
}

// A dead letter's sequence starts at 1: `dlq replay 0` is a usage error saying what 0 is not,
// where it passed the server's bare "bad request" on (exit 1).
func TestDLQReplayOfSequenceZeroIsAUsageError(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 1)
	r := c.run("dlq", "replay", "0")
	if r.code != 2 || !strings.Contains(r.stderr, `"0" is not a dead-letter sequence number`) || strings.Contains(r.stderr, "bad request") {
		t.Errorf("dlq replay 0: exit %d, stderr %s; want 2 (usage) saying 0 is not a dead-letter sequence number", r.code, r.stderr)
	}
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 1 {
		t.Errorf("status counts %d dead letters after dlq replay 0, want 1", st.DeadLetters)
	}
}

// `dlq replay --all 5` names dead letter 5 twice: it is replayed once (the second replay found
// it gone and failed the command). `status` counts the dead letters from the stream's state,
// replayed ones (gaps in the sequence) not included.
func TestDLQReplayReplaysADeadLetterNamedTwiceOnce(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 3)
	c.ok("dlq", "replay", "1")
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 2 {
		t.Errorf("status counts %d dead letters, want 2", st.DeadLetters)
	}
	r := c.run("dlq", "replay", "--all", "3", "3")
	if r.code != 0 || !strings.Contains(r.stderr, "replayed 2 dead letters") {
		t.Errorf("dlq replay --all 3 3: exit %d, stderr %s; want 0 and 2 replayed", r.code, r.stderr)
	}
	if c.json(&st, "status"); st.DeadLetters != 0 {
		t.Errorf("status counts %d dead letters after replaying all, want 0", st.DeadLetters)
	}
}

// `dlq list` lists the oldest -n dead letters (100 by default): one that leaves some out says
// so, and how to list them all (-n 0), so that neither a reader nor a script takes the first
// page for the whole dead-letter queue.
func TestDLQListSaysWhenItLeavesDeadLettersOut(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 3)
	r := c.ok("dlq", "list", "-n", "2", "--json")
	var listed []struct {
		Seq uint64 `json:"seq"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 2 || listed[0].Seq != 1 {
		t.Fatalf("dlq list -n 2 --json: %v\n%s", err, r.stdout)
	}
	if !strings.Contains(r.stderr, "the oldest 2 of 3 dead letters") || !strings.Contains(r.stderr, "-n 0") {
		t.Errorf("dlq list -n 2 of 3 dead letters said nothing of the one left out:\n%s", r.stderr)
	}
	r = c.ok("dlq", "list", "-n", "0", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil || len(listed) != 3 || r.stderr != "" {
		t.Errorf("dlq list -n 0: want all 3 listed and nothing said\nstdout: %s\nstderr: %s", r.stdout, r.stderr)
	}
	if r := c.ok("dlq", "list", "-n", "3"); r.stderr != "" {
		t.Errorf("dlq list -n 3 of 3 said: %s", r.stderr)
	}
	if r := c.run("dlq", "list", "-n", "-1"); r.code != 2 {
		t.Errorf("dlq list -n -1: exit %d, want 2 (usage)", r.code)
	}
}

// `dlq list` of no dead letters printed its header alone, which reads as a list that failed to
// come: it says there are none, on standard error (a message), and prints nothing.
func TestDLQListOfNoneSaysThereAreNone(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 2)
	if r := c.ok("dlq", "list", "--from", "3"); r.stdout != "" || strings.TrimSpace(r.stderr) != "no dead letters from sequence 3 on" {
		t.Errorf("dlq list --from 3 of 2: stdout %q, stderr %q; want nothing, and that none is from 3 on", r.stdout, r.stderr)
	}
	c.ok("dlq", "replay", "--all")
	if r := c.ok("dlq", "list"); r.stdout != "" || strings.TrimSpace(r.stderr) != "no dead letters" {
		t.Errorf("dlq list of none: stdout %q, stderr %q; want nothing, and that there are none", r.stdout, r.stderr)
	}
	if r := c.ok("dlq", "list", "--json"); strings.TrimSpace(r.stdout) != "[]" {
		t.Errorf("dlq list --json of none: %q, want []", r.stdout)
	}
}

// `dlq list` could show only the oldest dead letters: an operator who wanted the newest, or
// the page after the first, had to list every letter (-n 0: 4.7 s and 90 MB at 20,000, every
// message held though none is printed). --newest lists the newest first, --from SEQ from a
// sequence on, and a page that leaves some out says where the next one starts.
func TestDLQListNewestAndFromASequence(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 5)
	seqs := func(args ...string) ([]uint64, string) {
		t.Helper()
		r := c.ok(append([]string{"dlq", "list", "--json"}, args...)...)
		var listed []struct {
			Seq uint64 `json:"seq"`
		}
		if err := json.Unmarshal([]byte(r.stdout), &listed); err != nil {
			t.Fatalf("dlq list %v: %v\n%s", args, err, r.stdout)
		}
		var out []uint64
		for _, d := range listed {
			out = append(out, d.Seq)
		}
		return out, r.stderr
	}
	for _, tc := range []struct {
		args   []string
		want   []uint64
		stderr string // "": nothing said
	}{
		{[]string{"-n", "2"}, []uint64{1, 2}, "the oldest 2 of 5 dead letters; --from 3 lists the next"},
		{[]string{"-n", "2", "--from", "3"}, []uint64{3, 4}, "the 2 from sequence 3 on of 5 dead letters; --from 5 lists the next"},
		{[]string{"-n", "2", "--from", "5"}, []uint64{5}, ""},
		{[]string{"-n", "2", "--newest"}, []uint64{5, 4}, "the newest 2 of 5 dead letters; -n 0 lists them all"},
		{[]string{"-n", "0", "--newest"}, []uint64{5, 4, 3, 2, 1}, ""},
		{[]string{"--from", "4"}, []uint64{4, 5}, ""},
	} {
		got, stderr := seqs(tc.args...)
		if !slices.Equal(got, tc.want) {
			t.Errorf("dlq list %v: sequences %v, want %v", tc.args, got, tc.want)
		}
		if tc.stderr == "" && stderr != "" || !strings.Contains(stderr, tc.stderr) {
			t.Errorf("dlq list %v said %q, want %q", tc.args, stderr, tc.stderr)
		}
	}
	if r := c.run("dlq", "list", "--newest", "--from", "2"); r.code != 2 {
		t.Errorf("dlq list --newest --from 2: exit %d, want 2 (usage)", r.code)
	}
}

// withDeadLetters returns a CLI on a NATS server whose dead-letter stream holds n dead letters
// of new papers, sequences 1 to n.
func withDeadLetters(t *testing.T, n int) *cli {
	t.Helper()
	return withDeadLettersOf(t, n, pipeline.SubjectNew)
}

// queueServer starts a NATS server of the test's own with paperpipe's streams and consumer
// (pipeline.Setup's defaults), and connects to it.
func queueServer(t *testing.T) (*natstest.Server, jetstream.JetStream) {
	t.Helper()
	srv := natstest.Start(t)
	js := srv.Connect(t)
	if err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	return srv, js
}

// withDeadLettersOf is withDeadLetters for messages that came from subject.
func withDeadLettersOf(t *testing.T, n int, subject string) *cli {
	t.Helper()
	srv, js := queueServer(t)
	publishDeadLetters(t, js, n, subject)
	return newCLI(t, "NATS_URL="+srv.ClientURL())
}

// publishDeadLetters puts n dead letters of papers arxiv:2401.00001… on js, as if they came
// from subject.
func publishDeadLetters(t *testing.T, js jetstream.JetStream, n int, subject string) {
	t.Helper()
	for i := 1; i <= n; i++ {
		m := nats.NewMsg(pipeline.SubjectDead + "." + pipeline.ConsumerNew)
		m.Data = fmt.Appendf(nil, `{"id":"arxiv:2401.0000%d","title":"T%d","abstract":"An abstract."}`, i, i)
		m.Header.Set(pipeline.HeaderSubject, subject)
		m.Header.Set(pipeline.HeaderReason, "test")
		if _, err := js.PublishMsg(t.Context(), m); err != nil {
			t.Fatal(err)
		}
	}
}

// A dead letter of a re-processing run goes back to that run's queue, which nothing takes until
// the run is made again (a finished run's consumer is removed): the replay says so.
func TestDLQReplayOfARunsDeadLetterSaysToRunItAgain(t *testing.T) {
	t.Parallel()
	c := withDeadLettersOf(t, 1, pipeline.SubjectReprocess+".0123456789ab")
	r := c.ok("dlq", "replay", "1")
	if !strings.Contains(r.stderr, "1 of them went back to a re-processing run's queue: run the same `paperpipe reprocess` again to process it") {
		t.Errorf("dlq replay of a run's dead letter said:\n%s", r.stderr)
	}
	if r := withDeadLetters(t, 1).ok("dlq", "replay", "1"); strings.Contains(r.stderr, "re-processing") {
		t.Errorf("dlq replay of a new paper's dead letter said:\n%s", r.stderr)
	}
}

// A dead letter that cannot be replayed (a wrong number) is reported, and the others named
// beside it still go back; the run says how many did and exits non-zero.
func TestDLQReplayGoesOnPastADeadLetterNotFound(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 2)
	r := c.run("dlq", "replay", "1", "99", "2")
	if r.code != 1 || !strings.Contains(r.stderr, "replayed 2 dead letters") || !strings.Contains(r.stderr, "99") {
		t.Errorf("dlq replay 1 99 2: exit %d, stderr %s; want 1, 99 named and 2 replayed", r.code, r.stderr)
	}
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 0 {
		t.Errorf("status counts %d dead letters after replaying 1 and 2, want 0", st.DeadLetters)
	}
}

// TestDLQReplayIntoAFullQueueStopsAndSaysSo: replaying the dead letters into a full queue (a
// capped PAPERS the workers have not drained) went on through every one of them, each refused
// with its own line ("replay dead letter N: nats: API error: code=503 err_code=10077
// description=maximum messages exceeded"): thousands of lines after an outage that
// dead-lettered thousands. It stops at the first refusal, says the queue is full and how many
// are still dead letters, and exits 1; those are kept, and replayed once there is room.
func TestDLQReplayIntoAFullQueueStopsAndSaysSo(t *testing.T) {
	t.Parallel()
	srv, js := queueServer(t)
	editPapersStream(t, js, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgs = 2 }) // the operator's cap
	publishDeadLetters(t, js, 5, pipeline.SubjectNew)
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	r := c.run("dlq", "replay", "--all")
	if r.code != 1 || !strings.Contains(r.stderr, "replayed 2 dead letters before the queue was full") ||
		!strings.Contains(r.stderr, "the queue is full") || strings.Count(r.stderr, "replay dead letter") != 1 ||
		!strings.Contains(r.stderr, "3 of the 5 dead letters named are still in the dead-letter stream") {
		t.Errorf("dlq replay --all of 5 into a queue with room for 2: exit %d\n%s\nwant exit 1, 2 replayed, one line saying the queue is full and 3 kept", r.code, r.stderr)
	}
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 3 {
		t.Errorf("status counts %d dead letters, want the 3 the full queue did not take", st.DeadLetters)
	}
}

// TestReprocessIntoAFullQueueSaysWhatToDo: a reprocess run whose papers the queue refuses (a
// capped PAPERS, or the server's storage, filled by a backlog the workers have not drained)
// stopped with the server's answer alone ("the queue is full: publish …: nats: API error:
// code=503 err_code=10077 description=maximum messages exceeded"), where ingest says what to
// do. It says it too, and a run once there is room does the work.
func TestReprocessIntoAFullQueueSaysWhatToDo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	srv := natstest.Start(t)
	c := newCLI(t, "NATS_URL="+srv.ClientURL())
	c.ok("ingest", sampleFile)
	c.workUntilIdle()
	js := srv.Connect(t)
	// The operator's cap, reached by a paper no worker has taken yet.
	editPapersStream(t, js, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgs = 1 })
	if _, err := js.Publish(ctx, pipeline.SubjectNew, []byte(`{"id":"arxiv:2401.00001","title":"T","abstract":"An abstract."}`)); err != nil {
		t.Fatal(err)
	}
	// Another TL;DR word limit is another prompt version: every paper is stale.
	c15 := &cli{t: t, env: append(slices.Clone(c.env), "PAPERPIPE_TLDR_MAX_WORDS=15")}
	r := c15.run("reprocess", "--tldr-only")
	if r.code != 1 || !strings.Contains(r.stderr, "the queue is full") || !strings.Contains(r.stderr, "run the workers to drain the queue") ||
		!strings.Contains(r.stderr, "run the same command again") {
		t.Errorf("reprocess into a full queue: exit %d\n%s\nwant exit 1, saying the queue is full and what to do", r.code, r.stderr)
	}
	editPapersStream(t, js, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgs = -1 })
	if r := c15.ok("reprocess", "--tldr-only"); !strings.Contains(r.stderr, "108 TL;DRs") {
		t.Errorf("reprocess once the queue has room:\n%s\nwant the 108 TL;DRs written", r.stderr)
	}
}

// The help says what the commands do: spaces' other actions, the server up starts, the URLs
// summarize and embed read, and a flag placeholder that is a placeholder.
func TestHelpMatchesTheCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	help := c.ok("help").stdout
	lineOf := func(cmd string) string {
		for _, l := range strings.Split(help, "\n") {
			if f := strings.Fields(l); len(f) > 0 && f[0] == cmd {
				return l
			}
		}
		t.Fatalf("help lists no %s:\n%s", cmd, help)
		return ""
	}
	for cmd, want := range map[string][]string{
		"spaces":    {"drop", "check", "reindex"},
		"up":        {"worker", "HTTP server"},
		"summarize": {"FILE|URL|-"},
		"embed":     {"FILE|URL|-"},
	} {
		for _, w := range want {
			if !strings.Contains(lineOf(cmd), w) {
				t.Errorf("help's %s line lacks %q: %s", cmd, w, lineOf(cmd))
			}
		}
	}
	for _, cmd := range []string{"summarize", "embed"} {
		if r := c.ok(cmd, "-h"); !strings.Contains(r.stdout, "FILE|URL|-") {
			t.Errorf("%s -h does not say it reads URLs:\n%s", cmd, r.stdout)
		}
	}
	if r := c.ok("worker", "-h"); !strings.Contains(r.stdout, "-consumer name\n") {
		t.Errorf("worker -h does not show -consumer's value as a name:\n%s", r.stdout)
	}
}

// Every command's -h is a usage line without trailing blanks ("paperpipe migrate " had one), its
// description, and a Flags section only when the command has flags (activate's was empty).
func TestEveryCommandsHelpIsWellFormed(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	var cmds []string
	for _, l := range strings.Split(c.ok("help").stdout, "\n") {
		if strings.HasPrefix(l, "  ") && len(strings.Fields(l)) > 1 {
			cmds = append(cmds, strings.Fields(l)[0])
		}
	}
	if len(cmds) < 20 {
		t.Fatalf("help lists %d commands: %v", len(cmds), cmds)
	}
	for _, cmd := range cmds {
		r := c.ok(cmd, "-h")
		lines := strings.Split(strings.TrimRight(r.stdout, "\n"), "\n")
		if !strings.HasPrefix(lines[0], "Usage: paperpipe "+cmd) || strings.TrimRight(lines[0], " ") != lines[0] {
			t.Errorf("%s -h: usage line %q, want \"Usage: paperpipe %s…\" without trailing blanks", cmd, lines[0], cmd)
		}
		if i := slices.Index(lines, "Flags:"); i >= 0 && (i == len(lines)-1 || !strings.HasPrefix(lines[i+1], "  -")) {
			t.Errorf("%s -h prints an empty Flags section:\n%s", cmd, r.stdout)
		}
		if strings.Contains(lines[0], "[flags]") != slices.Contains(lines, "Flags:") {
			t.Errorf("%s -h: the usage line's [flags] and the Flags section disagree:\n%s", cmd, r.stdout)
		}
	}
}

// An unknown flag or a bad flag value is a usage error, exit 2, like the other usage errors.
func TestBadFlagsExitWithUsageStatus(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{{"list", "--bogus"}, {"related", "x", "-k", "many"}, {"list", "-n", "0"},
		{"ingest", "--max-abstract-bytes", "-1", "x.jsonl"}, {"ingest", "--max-abstract-bytes", "0", "x.jsonl"},
		{"embed", "--batch", "0", sampleFile}} {
		if r := c.run(args...); r.code != 2 {
			t.Errorf("paperpipe %s: exit %d, want 2\n%s", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	if r := c.run("list", "-h"); r.code != 0 {
		t.Errorf("list -h: exit %d, want 0", r.code)
	}
}

// TestUnknownCommandSuggestsTheOneMeant: a misspelt command (lsit, serach, stauts), the start
// of one (import for import-embeddings) or a flag before the command (paperpipe --json list)
// got "unknown command" and the whole usage, the mistake left for the user to spot among 20
// commands. Exit 2 as before, and the command meant is named, on standard error, with where
// the commands are listed — not the whole usage after it, which scrolled the suggestion out
// of sight; a name close to none still gets the usage.
func TestUnknownCommandSuggestsTheOneMeant(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"lsit"}, `did you mean "list"?`},
		{[]string{"serach", "sparse experts"}, `did you mean "search"?`},
		{[]string{"stauts"}, `did you mean "status"?`},
		{[]string{"import-", "vectors.jsonl"}, `did you mean "import-tldrs" or "import-embeddings"?`},
		{[]string{"--json", "list"}, "the command comes first: paperpipe list --json"},
		{[]string{"-k", "5", "related", "x"}, "the command comes first: paperpipe related -k 5 x"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || r.stdout != "" {
			t.Errorf("paperpipe %s: exit %d, stdout %q, stderr %q; want 2 and %q on stderr", strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.want)
		}
		if strings.Contains(r.stderr, "Commands:") || !strings.Contains(r.stderr, "`paperpipe help` lists the commands") {
			t.Errorf("paperpipe %s: stderr %q; want the suggestion and where the commands are listed, not the whole usage", strings.Join(tc.args, " "), r.stderr)
		}
	}
	if r := c.run("frobnicate"); r.code != 2 || strings.Contains(r.stderr, "did you mean") || !strings.Contains(r.stderr, `unknown command "frobnicate"`) ||
		!strings.Contains(r.stderr, "Commands:") {
		t.Errorf("paperpipe frobnicate: exit %d, stderr %q; want 2, no suggestion, the usage", r.code, r.stderr)
	}
}

// TestUsageErrorsSayNoSentinel: usage errors whose cause is paper.ErrInvalid ended with the
// sentinel's words ("unknown format \"bogus\" (valid: …): invalid input", "bad --after cursor:
// decode cursor: invalid input"), which the other errors leave out (errorMessage), and a cursor
// that is not one said nothing of where cursors come from.
func TestUsageErrorsSayNoSentinel(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"ingest", "--format", "bogus", "x.jsonl"}, `unknown format "bogus" (valid: auto, text, jsonl, oai, atom, rss, hf)`},
		{[]string{"summarize", "--format", "bogus", "x.jsonl"}, `unknown format "bogus"`},
		{[]string{"list", "--after", "garbage"}, "the cursor a previous page printed"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "invalid input") {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2, saying %q, without \"invalid input\"", strings.Join(tc.args, " "), r.code, r.stderr, tc.want)
		}
	}
}

// An empty argument (`paperpipe show "$ID"` with $ID unset) is a usage error, exit 2, naming
// it, for every command, before anything is opened: show said "resolve paper: empty
// reference", exit 1, while search gave a usage error; activate, spaces drop and the others
// looked "" up and failed as if the name were wrong.
func TestEmptyArgumentIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{{"show", ""}, {"related", " "}, {"activate", ""}, {"spaces", "drop", ""},
		{"spaces", "reindex", "", "--index", "hnsw"}, {"search", ""}, {"ingest", ""}, {"summarize", ""}, {"embed", "\t"},
		{"import-embeddings", ""}, {"dlq", "replay", ""}, {"batches", "abandon", ""}, {"show", "--", ""}} {
		r := c.run(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage: argument") || !strings.Contains(r.stderr, "is empty") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 2 and the empty argument named", args, r.code, r.stderr)
		}
	}
}

// A spaces action that is not one, or one given the wrong arguments (`spaces help drop`,
// `spaces drop` without a space, `spaces reindex SPACE` without --index or with a kind that is
// none), is a usage error, exit 2, before anything is opened: spaces opened the database and
// ran its migrations first, so a DATABASE_URL pointing at a database paperpipe had never used
// got paperpipe's tables from a typo, and one that could not be reached gave exit 1 and the
// connection's error instead of the usage.
func TestSpacesUsageErrorsComeBeforeTheDatabase(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"spaces", "help", "drop"}, `unknown spaces action "help"`},
		{[]string{"spaces", "help"}, `unknown spaces action "help"`},
		{[]string{"spaces", "drop"}, "spaces drop SPACE"},
		{[]string{"spaces", "drop", "a", "b"}, "spaces drop SPACE"},
		{[]string{"spaces", "reindex", "1"}, "spaces reindex SPACE --index"},
		{[]string{"spaces", "reindex", "1", "2", "--index", "hnsw"}, "spaces reindex SPACE --index"},
		{[]string{"spaces", "reindex", "1", "--index", "ivfflat"}, "--index"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "database") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 2 and %q, before the database is opened", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// `spaces drop help`, `spaces check help` and `spaces reindex help --index KIND` ask for the
// help, as `spaces drop -h` does: taken as a space named "help", they opened the database and
// ran its migrations (a newer binary upgraded the database DATABASE_URL named, one paperpipe had
// never used got its tables) before saying there is no space "help", exit 1.
func TestSpacesActionHelpTouchesNothing(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{{"spaces", "drop", "help"}, {"spaces", "check", "help"},
		{"spaces", "reindex", "help", "--index", "hnsw"}, {"spaces", "drop", "--force", "help"}} {
		r := c.run(args...)
		if r.code != 0 || !strings.Contains(r.stdout, "Usage: paperpipe spaces") || r.stderr != "" {
			t.Errorf("paperpipe %q: exit %d, stdout %q, stderr %q; want 0 and the help, the database untouched", args, r.code, r.stdout, r.stderr)
		}
	}
}

// The word help where a command takes a paper or a space (`show help`, `related help`, `remove
// help`, `activate help`, `batches withheld clear help`, `batches abandon help`) asks for the
// help, as `spaces drop help` does: taken as a paper, a space or a job named "help", show,
// related, remove, activate and withheld clear opened the database and ran its migrations (a
// newer binary upgraded the database DATABASE_URL named) before answering, and with the database
// unreachable gave exit 1 and the connection's error instead of the help.
func TestPaperAndSpaceArgumentHelpTouchesNothing(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1", "NATS_URL=nats://127.0.0.1:1")
	for _, tc := range []struct {
		args  []string
		usage string
	}{
		{[]string{"show", "help"}, "Usage: paperpipe show"},
		{[]string{"show", "--json", "help"}, "Usage: paperpipe show"},
		{[]string{"related", "help"}, "Usage: paperpipe related"},
		{[]string{"remove", "help"}, "Usage: paperpipe remove"},
		{[]string{"remove", "--dry-run", "help"}, "Usage: paperpipe remove"},
		{[]string{"activate", "help"}, "Usage: paperpipe activate"},
		{[]string{"batches", "withheld", "clear", "help"}, "Usage: paperpipe batches"},
		{[]string{"batches", "withheld", "help"}, "Usage: paperpipe batches"},
		{[]string{"batches", "abandon", "help"}, "Usage: paperpipe batches"},
	} {
		r := c.run(tc.args...)
		if r.code != 0 || !strings.Contains(r.stdout, tc.usage) || r.stderr != "" {
			t.Errorf("paperpipe %q: exit %d, stdout %.80q, stderr %.200q; want 0 and the help, the database untouched", tc.args, r.code, r.stdout, r.stderr)
		}
	}
}

// A dlq action that is not one, or replay/drop without the dead letters to act on or with a
// sequence number that is none, is a usage error, exit 2, before NATS is reached: dlq
// connected first (started the embedded server in the data directory when NATS_URL is unset)
// and, with NATS unreachable, gave exit 1 and the connection's error instead of the usage.
func TestDLQUsageErrorsComeBeforeNATS(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1", "NATS_URL=nats://127.0.0.1:1")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"dlq", "help"}, `unknown dlq action "help"`},
		{[]string{"dlq", "replay"}, "name the dead letters to replay, or --all"},
		{[]string{"dlq", "replay", "abc"}, `"abc" is not a dead-letter sequence number`},
		{[]string{"dlq", "drop"}, "name the dead letters to drop, or --all"},
		{[]string{"dlq", "drop", "0"}, `"0" is not a dead-letter sequence number`},
		{[]string{"dlq", "drop", "1", "--all"}, "not both"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || !strings.Contains(r.stderr, tc.want) || strings.Contains(r.stderr, "NATS") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 2 and %q, before NATS is reached", tc.args, r.code, r.stderr, tc.want)
		}
	}
}

// An empty flag value (`reprocess --ids "$LIST"` with $LIST unset) is a usage error, exit 2,
// naming the flag, as an empty argument is: taken as the flag left out, --ids "" and
// --since "" had reprocess consider the whole archive (and buy what it lacked), export write
// every paper, list --after "" start again at the first page, and --chat-model "" use the
// default model, not PAPERPIPE_CHAT_MODEL's. Flags where empty has a meaning (up --http "":
// no web surfaces; worker --metrics "": none) keep it.
func TestEmptyFlagValueIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{
		{"reprocess", "--ids", ""}, {"reprocess", "--since", " "}, {"reprocess", "--dry-run", "--chat-model", ""},
		{"export", "--ids", ""}, {"export", "--category", ""}, {"export", "--since", ""}, {"export", "--space", ""}, {"export", "-o", ""},
		{"list", "--category", ""}, {"list", "--text", "\t"}, {"list", "--after", ""}, {"list", "--since", ""},
		{"remove", "arxiv:2401.00001", "--ids", ""}, {"search", "words", "--embed-model", ""}, {"status", "--chat-model", ""},
		{"worker", "--consumer", ""}, {"ingest", "--format", "", "x.jsonl"}, {"spaces", "reindex", "1", "--index", ""},
	} {
		r := c.run(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "usage: -") || !strings.Contains(r.stderr, "is empty") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 2 and the empty flag named", args, r.code, r.stderr)
		}
	}
	if r := c.run("worker", "--metrics", "", "--exit-when-idle"); strings.Contains(r.stderr, "is empty") {
		t.Errorf("worker --metrics \"\": %q; want it taken as no metrics server", r.stderr)
	}
}

// A flag that takes one value, given twice, is a usage error naming it: the flag package keeps
// the last value, so `remove --ids a.txt --ids b.txt` removed b.txt's papers alone, and said
// nothing of a.txt's, and `reprocess --ids`, `export --category` and `-o` did the like. A
// repeatable flag (remove --from, tldrs --keep) takes each value; -h still prints the flags'
// types and defaults.
func TestAFlagGivenTwiceIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{
		{"remove", "--ids", "a.txt", "--ids", "b.txt"}, {"reprocess", "--ids", "a", "--ids=b"},
		{"export", "--category", "cs.CL", "--category", "cs.LG"}, {"export", "-o", "a.jsonl", "-o", "b.jsonl"},
		{"list", "-n", "5", "-n", "6"}, {"reprocess", "--dry-run", "--dry-run=false"}, {"related", "x", "-k", "3", "--k", "4"},
	} {
		r := c.run(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "given twice") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 2 and the repeated flag named", args, r.code, r.stderr)
		}
	}
	// remove --from is repeatable: two files are read, not refused (the database is unreachable
	// here, so the run fails after the flags were taken — not as a usage error).
	dir := t.TempDir()
	for _, f := range []string{"a.txt", "b.txt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("A title\n\nAn abstract long enough to be one.\n"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if r := c.run("remove", "--dry-run", "--from", filepath.Join(dir, "a.txt"), "--from", filepath.Join(dir, "b.txt")); r.code == 2 {
		t.Errorf("remove --from twice: exit 2, stderr %q; want the flag taken twice", r.stderr)
	}
	if r := c.run("tldrs", "prune", "--dry-run", "--keep", "m1", "--keep", "m2@v1"); r.code == 2 {
		t.Errorf("tldrs prune --keep twice: exit 2, stderr %q; want the flag taken twice", r.stderr)
	}
	if r := c.run("list", "-h"); !strings.Contains(r.stdout, "-n int") || !strings.Contains(r.stdout, "(default 20)") || !strings.Contains(r.stdout, "-after string") {
		t.Errorf("list -h lost its flags' value names:\n%s", r.stdout)
	}
}

// A keyword search involves no embedding model: --embed-model and --embed-dimensions given to
// one are a usage error, as flags of another command are — it ignored them, and a user who
// meant a semantic search in another space got keyword results without a word.
func TestKeywordSearchRefusesEmbeddingFlags(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "DATABASE_URL=postgres://paperpipe@127.0.0.1:1/none?connect_timeout=1")
	for _, args := range [][]string{
		{"search", "--mode", "keyword", "--embed-model", "text-embedding-3-small", "words"},
		{"search", "words", "--embed-dimensions", "256", "--mode=keyword"},
	} {
		r := c.run(args...)
		if r.code != 2 || !strings.Contains(r.stderr, "--mode keyword") {
			t.Errorf("paperpipe %q: exit %d, stderr %q; want 2, the flag refused for --mode keyword", args, r.code, r.stderr)
		}
	}
}

// A count above the store's bound (store.MaxListLimit for list -n, store.MaxK for -k and
// --sample) is a usage error, exit 2, that states the bound, given before anything is opened;
// the flags' help states it too. list -n 1001 was accepted up to 10000 and then refused by the
// store with exit 1.
func TestCountsAboveTheStoresBoundsAreUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		args  []string
		bound int
	}{
		{[]string{"list", "-n", strconv.Itoa(store.MaxListLimit + 1)}, store.MaxListLimit},
		{[]string{"related", "x", "-k", strconv.Itoa(store.MaxK + 1)}, store.MaxK},
		{[]string{"search", "--embed-model", "offline", "text", "-k", strconv.Itoa(store.MaxK + 1)}, store.MaxK},
		{[]string{"spaces", "check", "-k", strconv.Itoa(store.MaxK + 1)}, store.MaxK},
		{[]string{"spaces", "check", "--sample", strconv.Itoa(store.MaxK + 1)}, store.MaxK},
		// --chunk 0 or below was taken for 5000 in silence.
		{[]string{"import-embeddings", "--chunk", "0", "-"}, maxImportChunk},
		{[]string{"import-embeddings", "--chunk", strconv.Itoa(maxImportChunk + 1), "-"}, maxImportChunk},
	} {
		r := c.run(tc.args...)
		if want := fmt.Sprintf("want 1 to %d", tc.bound); r.code != 2 || !strings.Contains(r.stderr, want) {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), r.code, r.stderr, want)
		}
	}
	for _, args := range [][]string{{"list", "-h"}, {"related", "-h"}, {"search", "-h"}, {"spaces", "-h"}, {"import-embeddings", "-h"}} {
		bound := store.MaxK
		switch args[0] {
		case "list":
			bound = store.MaxListLimit
		case "import-embeddings":
			bound = maxImportChunk
		}
		r := c.run(args...)
		if want := fmt.Sprintf("1 to %d", bound); !strings.Contains(r.stdout+r.stderr, want) {
			t.Errorf("paperpipe %s does not state the bound %q:\n%s%s", strings.Join(args, " "), want, r.stdout, r.stderr)
		}
	}
}

// A bad web setting in the environment is a configuration error naming its variable, exit 2,
// given before anything is opened, like a variable that does not parse: up started the
// workers, and both serve and up connected, before web.New refused it in its own field names
// ("web config: ProtectReads needs an APIToken"), exit 1.
func TestBadWebSettingsFailBeforeAnythingIsOpened(t *testing.T) {
	t.Parallel()
	// Nothing listens at the database's address: a command that tries to open it fails there.
	db := fmt.Sprintf("DATABASE_URL=postgres://paperpipe@127.0.0.1:%d/paperpipe?sslmode=disable&connect_timeout=2", freePort(t))
	for _, tc := range []struct {
		env  []string
		want []string
	}{
		{[]string{"PAPERPIPE_API_TOKEN_READS=1"}, []string{"PAPERPIPE_API_TOKEN_READS", "PAPERPIPE_API_TOKEN:"}},
		{[]string{"PAPERPIPE_API_TOKEN="}, []string{"PAPERPIPE_API_TOKEN is set but empty"}},
		{[]string{"PAPERPIPE_API_TOKEN= \n"}, []string{"PAPERPIPE_API_TOKEN is set but empty (white space only)"}},
		{[]string{"PAPERPIPE_HTTP_MAX_BODY_BYTES=-1"}, []string{"PAPERPIPE_HTTP_MAX_BODY_BYTES=\"-1\""}},
		{[]string{"PAPERPIPE_HTTP_MAX_BODY_BYTES=0"}, []string{"PAPERPIPE_HTTP_MAX_BODY_BYTES=\"0\""}},
		{[]string{"PAPERPIPE_PRICES=gpt-4o-mini"}, []string{"PAPERPIPE_PRICES"}},
		{[]string{"PAPERPIPE_HTTP_ALLOWED_HOSTS=papers.lab,https://papers.example.com"}, []string{"PAPERPIPE_HTTP_ALLOWED_HOSTS=", `"https://papers.example.com" is not a host name`}},
		{[]string{"PAPERPIPE_HTTP_ALLOWED_HOSTS=papers.lab:8080"}, []string{"PAPERPIPE_HTTP_ALLOWED_HOSTS="}},
	} {
		c := newCLI(t, append([]string{db, "NATS_URL=nats://127.0.0.1:" + strconv.Itoa(freePort(t))}, tc.env...)...)
		for _, args := range [][]string{{"up", "--http", "127.0.0.1:0"}, {"serve", "--http", "127.0.0.1:0"}} {
			r := c.run(args...)
			ok := r.code == 2 && !strings.Contains(r.stderr, "web config")
			for _, w := range tc.want {
				ok = ok && strings.Contains(r.stderr, w)
			}
			if !ok {
				t.Errorf("paperpipe %s with %v: exit %d, stderr %q; want 2 and a message naming %q",
					strings.Join(args, " "), tc.env, r.code, r.stderr, tc.want)
			}
		}
	}
}

// An address to listen on that net.Listen would refuse — a port without its colon, as in
// PAPERPIPE_METRICS_ADDR=9090, a port out of range — is a usage error naming the flag and the
// variable, exit 2, before anything is opened: it failed once the database and NATS were
// reached, exit 1, "listen tcp: address 9090: missing port in address", naming neither.
func TestBadListenAddressFailsBeforeAnythingIsOpened(t *testing.T) {
	t.Parallel()
	// Nothing listens at the database's address: a command that tries to open it fails there.
	db := fmt.Sprintf("DATABASE_URL=postgres://paperpipe@127.0.0.1:%d/paperpipe?sslmode=disable&connect_timeout=2", freePort(t))
	c := newCLI(t, db, "NATS_URL=nats://127.0.0.1:"+strconv.Itoa(freePort(t)))
	for _, tc := range []struct {
		env  string
		args []string
		want string
	}{
		{"PAPERPIPE_METRICS_ADDR=9090", []string{"worker"}, `--metrics "9090" (or PAPERPIPE_METRICS_ADDR): want host:port, such as 127.0.0.1:9090 or :9090 (a port alone is :9090)`},
		{"", []string{"worker", "--metrics", "0.0.0.0:99999"}, `--metrics "0.0.0.0:99999" (or PAPERPIPE_METRICS_ADDR)`},
		{"PAPERPIPE_HTTP_ADDR=8080", []string{"serve"}, `--http "8080" (or PAPERPIPE_HTTP_ADDR): want host:port`},
		{"", []string{"up", "--http", "localhost"}, `--http "localhost" (or PAPERPIPE_HTTP_ADDR): want host:port`},
	} {
		c := &cli{t: t, env: append(slices.Clone(c.env), tc.env)}
		if r := c.run(tc.args...); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("paperpipe %s with %s: exit %d, stderr %q; want 2 and %q", strings.Join(tc.args, " "), tc.env, r.code, r.stderr, tc.want)
		}
	}
}

// TestWebPublisherReturnsThePapersTakenBeforeAFailure: when the queue refuses a message part
// way through a POST, Publish returns the ids the server took before it (web.Publisher's
// contract), so the API reports them accepted and only the others as to be sent again; it
// returned none, and the client was told to resend papers already queued.
func TestWebPublisherReturnsThePapersTakenBeforeAFailure(t *testing.T) {
	t.Parallel()
	js := natstest.Start(t).Connect(t)
	ctx := context.Background()
	// A stream that takes 3 messages and refuses the rest.
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "PAPERS", Subjects: []string{pipeline.SubjectNew},
		MaxMsgs: 3, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	papers := sampledata.Papers(t)[:5]
	accepted, _, err := (webstore.Publisher{JS: js}).Publish(ctx, papers)
	if err == nil {
		t.Fatal("Publish of 5 papers to a stream that takes 3: no error")
	}
	want := []string{papers[0].ID, papers[1].ID, papers[2].ID}
	if !slices.Equal(accepted, want) {
		t.Errorf("Publish of 5 papers to a stream that takes 3 (%v) returned %v, want the 3 taken %v", err, accepted, want)
	}

	// Without a failure every paper is taken; repeats count as taken.
	if _, err := js.UpdateStream(ctx, jetstream.StreamConfig{Name: "PAPERS", Subjects: []string{pipeline.SubjectNew},
		MaxMsgs: -1, Discard: jetstream.DiscardNew, Storage: jetstream.MemoryStorage}); err != nil {
		t.Fatal(err)
	}
	accepted, _, err = (webstore.Publisher{JS: js}).Publish(ctx, papers)
	if err != nil || len(accepted) != len(papers) {
		t.Errorf("Publish of 5 papers, 3 of them repeats, to a stream that takes all: %v, %v; want the 5 ids", accepted, err)
	}
}

// TestPostedRecordTooLargeForTheQueueIsRejectedAndTheOthersAccepted: a posted record within the
// body limit whose message is over the queue's limit (here the server's max_payload, 1 MB) is
// rejected with the sizes, and the records around it are accepted; the failed publish made
// the whole request a 503 ("the queue is unavailable"), and a client that sent it again got
// the same.
func TestPostedRecordTooLargeForTheQueueIsRejectedAndTheOthersAccepted(t *testing.T) {
	t.Parallel()
	js, st := queueAndStore(t)
	srv, err := web.New(web.Config{Store: webstore.Store{Store: st}, Publisher: webstore.Publisher{JS: js}, ParseRecord: parseRecord})
	if err != nil {
		t.Fatal(err)
	}
	authors := make([]string, 60000)
	for i := range authors {
		authors[i] = fmt.Sprintf("Author Number%06d", i)
	}
	rec := func(id string, authors []string) map[string]any {
		return map[string]any{"id": id, "title": "Paper " + id, "abstract": "We study careful input handling. It works.", "authors": authors}
	}
	body, _ := json.Marshal([]any{rec("2404.00001", nil), rec("2404.00002", authors), rec("2404.00003", nil)})
	req := httptest.NewRequest(http.MethodPost, "/api/papers", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	var ans struct {
		Accepted []struct{ Index int }
		Rejected []struct {
			Index int
			Error string
		}
	}
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatalf("POST of a %d-byte body: %d %.300s", len(body), w.Code, w.Body)
	}
	if w.Code != http.StatusAccepted || len(ans.Accepted) != 2 || len(ans.Rejected) != 1 || ans.Rejected[0].Index != 1 ||
		!regexp.MustCompile(`^message is \d+ bytes, the queue takes at most 1048576$`).MatchString(ans.Rejected[0].Error) {
		t.Errorf("POST of 3 records, the second too large for the queue: %d %.500s; want 202, records 0 and 2 accepted, 1 rejected with the sizes",
			w.Code, w.Body)
	}
}

// TestPostIntoAFullQueueSaysItIsFull: records posted when the queue is full (here capped at
// two messages) were answered "the queue is unavailable", as for an outage, and a client sent
// them again at once, to be refused again. The answer says the queue is full, with a
// Retry-After, and the records it took are accepted.
func TestPostIntoAFullQueueSaysItIsFull(t *testing.T) {
	t.Parallel()
	js, st := queueAndStore(t)
	editPapersStream(t, js, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgs = 2 })
	srv, err := web.New(web.Config{Store: webstore.Store{Store: st}, Publisher: webstore.Publisher{JS: js}, ParseRecord: parseRecord})
	if err != nil {
		t.Fatal(err)
	}
	var recs []any
	for i := range 3 {
		recs = append(recs, map[string]any{"id": fmt.Sprintf("2404.1000%d", i), "title": fmt.Sprintf("Paper %d", i), "abstract": "We study full queues. It works."})
	}
	body, _ := json.Marshal(recs)
	req := httptest.NewRequest(http.MethodPost, "/api/papers", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	var ans struct {
		Error    string
		Accepted []struct{ Index int }
		Rejected []struct{ Index int }
	}
	if err := json.Unmarshal(w.Body.Bytes(), &ans); err != nil {
		t.Fatalf("POST: %d %.300s", w.Code, w.Body)
	}
	if w.Code != http.StatusServiceUnavailable || !strings.Contains(ans.Error, "the queue is full") || w.Header().Get("Retry-After") == "" ||
		len(ans.Accepted) != 2 || len(ans.Rejected) != 1 {
		t.Errorf("POST of 3 records into a queue that holds 2: %d (Retry-After %q) %.500s; want 503 saying the queue is full, with a Retry-After, 2 accepted and 1 rejected",
			w.Code, w.Header().Get("Retry-After"), w.Body)
	}
}

// renamedEmbedder is an embedder that says it makes another space's vectors.
type renamedEmbedder struct {
	embedder
	sp paper.Space
}

func (e renamedEmbedder) Space() paper.Space { return e.sp }

// TestActiveOfflineWaitsForASlowDatabaseOnlyUntilItsCallersDeadline: while the active space is
// read from a slow database, the server's query embedder holds no caller past its deadline
// (Space, which has no context, past activeSpaceWait) and reads it once for all of them; they
// go on with the current model, and the read, once answered, moves them to the active one. A
// read held the embedder's lock with a 30 s context of its own: every search queued behind it.
func TestActiveOfflineWaitsForASlowDatabaseOnlyUntilItsCallersDeadline(t *testing.T) {
	t.Parallel()
	cur := embed.NewOffline()
	fitted := paper.Space{Model: embed.FittedModelPrefix + "test", Dimensions: cur.Space().Dimensions, Template: cur.Space().Template}
	release, asked := make(chan struct{}), make(chan struct{}, 100)
	var reads atomic.Int32
	a := &activeOffline{
		active: func(ctx context.Context) (paper.Space, error) {
			reads.Add(1)
			asked <- struct{}{}
			select {
			case <-release:
				return fitted, nil
			case <-ctx.Done():
				return paper.Space{}, ctx.Err()
			}
		},
		load: func(_ context.Context, model string) (embedder, error) {
			return renamedEmbedder{cur, fitted}, nil
		},
		log: slog.New(slog.DiscardHandler),
		cur: cur,
	}
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	t.Cleanup(unblock)

	spaceDone := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		a.Space()
		spaceDone <- time.Since(start)
	}()
	<-asked // the read is in flight, and stalls

	const deadline = 200 * time.Millisecond
	type result struct {
		took  time.Duration
		model string
	}
	results := make(chan result, 4)
	for range 4 {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), deadline)
			defer cancel()
			start := time.Now()
			e := a.resolve(ctx)
			results <- result{time.Since(start), e.Space().Model}
		}()
	}
	for range 4 {
		select {
		case r := <-results:
			if r.took > deadline+500*time.Millisecond {
				t.Errorf("resolve with a %v deadline returned after %v", deadline, r.took)
			}
			if r.model != cur.Space().Model {
				t.Errorf("resolve during the read: %s, want the current model %s", r.model, cur.Space().Model)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("resolve with a %v deadline did not return in 5s while the database stalled", deadline)
		}
	}
	select {
	case d := <-spaceDone:
		if d > activeSpaceWait+time.Second {
			t.Errorf("Space returned after %v, want at most about %v", d, activeSpaceWait)
		}
	case <-time.After(activeSpaceWait + 5*time.Second):
		t.Fatalf("Space did not return in %v while the database stalled", activeSpaceWait+5*time.Second)
	}
	if n := reads.Load(); n != 1 {
		t.Errorf("%d reads of the active space while one was in flight, want 1", n)
	}

	unblock()
	if e := a.resolve(context.Background()); e.Space().Model != fitted.Model {
		t.Errorf("after the read answered: %s, want the active space's model %s", e.Space().Model, fitted.Model)
	}
}

// The flags that only --batch-api reads — --wait=false, --batch-upload-mbit — are usage errors
// without it: reprocess --wait=false ran the whole re-processing and waited for it, without a
// word about the flag.
func TestReprocessBatchOnlyFlagsWithoutBatchAPIAreUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{
		{"reprocess", "--wait=false"},
		{"reprocess", "--batch-upload-mbit", "10"},
		{"reprocess", "--dry-run", "--wait=false"},
	} {
		if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, "only applies with --batch-api") {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2 and a message that the flag needs --batch-api", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	c.ok("reprocess", "--dry-run", "--wait=true")
}

// `batches abandon` prints what it did as text: --json with it was accepted and ignored; and
// --force is abandon's. `batches`' arguments are the same in the command list and its --help
// (they said "[abandon ID]" and "[list | abandon ID...]").
func TestBatchesFlagsOutsideTheirActionAreUsageErrors(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, args := range [][]string{{"batches", "abandon", "1", "--json"}, {"batches", "--force"}} {
		if r := c.run(args...); r.code != 2 {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2", strings.Join(args, " "), r.code, r.stderr)
		}
	}
	var listed string
	for _, l := range strings.Split(c.ok("help").stdout, "\n") {
		if f := strings.Fields(l); len(f) > 1 && f[0] == "batches" {
			listed = f[1]
		}
	}
	if r := c.ok("batches", "-h"); listed == "" || !strings.Contains(r.stdout, "Usage: paperpipe batches [flags] "+listed+"\n") {
		t.Errorf("help lists batches with %q; batches -h says:\n%s", listed, r.stdout)
	}
}

// A flag of one action given to another was accepted and ignored: `dlq replay --all --json`
// wrote nothing on standard output, where README promises one JSON document with --json, and
// `spaces --index hnsw` listed the spaces and built nothing. Each is a usage error naming the
// flag and the action, and nothing is done; each action's own flags still work.
func TestDLQAndSpacesFlagsOutsideTheirActionAreUsageErrors(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 1)
	for _, tc := range []struct {
		args []string
		flag string // the one named
	}{
		{[]string{"dlq", "replay", "--all", "--json"}, "json"},
		{[]string{"dlq", "replay", "1", "-n", "5"}, "n"},
		{[]string{"dlq", "list", "--all"}, "all"},
		{[]string{"spaces", "--index", "hnsw"}, "index"},
		{[]string{"spaces", "list", "--force"}, "force"},
		{[]string{"spaces", "check", "--index", "hnsw"}, "index"},
		{[]string{"spaces", "reindex", "1", "--index", "hnsw", "--json"}, "json"},
		{[]string{"spaces", "drop", "1", "-k", "5"}, "k"},
	} {
		r := c.run(tc.args...)
		if r.code != 2 || r.stdout != "" || !strings.Contains(r.stderr, "--"+tc.flag+" is not for") {
			t.Errorf("paperpipe %s: exit %d, stdout %q, stderr %q; want 2, nothing on stdout, and --%s named",
				strings.Join(tc.args, " "), r.code, r.stdout, r.stderr, tc.flag)
		}
	}
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 1 {
		t.Errorf("status counts %d dead letters after the refused replays, want 1", st.DeadLetters)
	}
	if r := c.ok("dlq", "list", "-n", "1", "--json"); !strings.HasPrefix(r.stdout, "[") {
		t.Errorf("dlq list -n 1 --json: %q, want a JSON list", r.stdout)
	}
	c.ok("spaces", "--json")
}

// A posted record's rejection is the reason in plain words, without the sentinel's text
// ("the record is empty", not "the record is empty: invalid input"), and still
// paper.ErrInvalid.
func TestPostedRecordRejectionsAreThePlainReason(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{``, `not json`, `[1]`, `{"title": "A title"}`} {
		_, err := parseRecord([]byte(raw))
		if err == nil || !errors.Is(err, paper.ErrInvalid) || strings.Contains(err.Error(), paper.ErrInvalid.Error()) {
			t.Errorf("parseRecord(%q): %v; want a plain reason that is paper.ErrInvalid", raw, err)
		}
	}
}

// A posted record with invalid UTF-8 is rejected with the reason ingest gives for the same
// JSONL line ("title is not valid UTF-8 (byte 4)"), as the README promises ("checked like a
// JSONL line"); it was stored with the bytes replaced by U+FFFD. A record spread over several
// lines (pretty-printed JSON) is checked the same way.
func TestPostedRecordWithInvalidUTF8IsRejectedLikeAnIngestLine(t *testing.T) {
	t.Parallel()
	for _, raw := range []string{
		// UTF-8 text with a stray byte: ingest refuses a file mostly of such bytes as a whole.
		"{\"id\": \"2401.00001\", \"title\": \"Caf\xe9 routing\", \"abstract\": \"We study routing in cafés, naïvely. It works.\"}",
		"{\n  \"id\": \"2401.00001\",\r\n  \"title\": \"Caf\xe9 routing\",\n  \"abstract\": \"We study routing in cafés, naïvely. It works.\"\n}",
	} {
		r, err := ingest.NewReader(strings.NewReader(strings.NewReplacer("\r", " ", "\n", " ").Replace(raw)), "papers.jsonl",
			ingest.Options{Format: ingest.JSONL})
		if err != nil {
			t.Fatal(err)
		}
		_, ierr := r.Next()
		var rec *ingest.RecordError
		if !errors.As(ierr, &rec) {
			t.Fatalf("ingest of %q: %v; want a rejected record", raw, ierr)
		}
		a, err := parseRecord([]byte(raw))
		if err == nil || err.Error() != rec.Err.Error() || !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("parseRecord(%q) = title %q, %v; want it rejected as ingest does: %v", raw, a.Title, err, rec.Err)
		}
	}
}

// A posted record in Latin-1 (its other text ASCII) is that record's rejection,
// with its id and the reason ingest gives a line ("title is not valid UTF-8 (byte 4)"): it was
// judged as a file on its own, refused as Latin-1 text without its id, and the client was told
// to run `iconv … request | paperpipe ingest -`.
func TestPostedLatin1RecordKeepsItsIDAndGetsNoShellAdvice(t *testing.T) {
	t.Parallel()
	raw := "{\"id\":\"2401.00001\",\"title\":\"Caf\xe9 mod\xe8les na\xeffs\",\"abstract\":\"An abstract long enough to pass.\"}"
	a, err := parseRecord([]byte(raw))
	if a.ID != "arxiv:2401.00001" || err == nil || err.Error() != "title is not valid UTF-8 (byte 4)" || !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("parseRecord(%q) = id %q, %v; want the record's id and \"title is not valid UTF-8 (byte 4)\"", raw, a.ID, err)
	}
}

// status on a space that does not exist yet gives it no id — lookupSpace's -1, which only
// makes every paper count as lacking its embedding, was printed as "id": -1 — and the text
// says it is not created yet; a space that exists has its id.
func TestStatusOfASpaceNotCreatedYetHasNoID(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	var st struct {
		Space map[string]any `json:"space"`
	}
	c.json(&st, "status")
	if id, ok := st.Space["id"]; ok || st.Space["model"] != embed.OfflineModelV2 {
		t.Errorf("status --json before any paper: space %v (id %v), want the offline model's space without an id", st.Space, id)
	}
	if r := c.ok("status"); !strings.Contains(r.stdout, "not created yet") {
		t.Errorf("status before any paper does not say the space is not created yet:\n%s", r.stdout)
	}

	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	c.json(&st, "status")
	if id, ok := st.Space["id"].(float64); !ok || id < 1 {
		t.Errorf("status --json after a worker: space %v, want its id", st.Space)
	}
	if r := c.ok("status"); strings.Contains(r.stdout, "not created yet") || strings.Contains(r.stdout, "active space") {
		t.Errorf("status after a worker says the space is not created yet, or names the active space apart:\n%s", r.stdout)
	}
	// Configured for another embedder than the active space's (a shell without the workers'
	// settings, or the other way round): the active space's coverage, which the web's status
	// shows and queries use, is shown too.
	var other struct {
		Active struct {
			Space         map[string]any `json:"space"`
			WithEmbedding int            `json:"with_embedding"`
		} `json:"active_space"`
	}
	c.json(&other, "status", "--embed-model", "text-embedding-3-small")
	if other.Active.WithEmbedding != 108 || other.Active.Space["model"] != embed.OfflineModelV2 {
		t.Errorf("status --json of another embedder: active space %+v, want the offline space with 108 papers embedded", other.Active)
	}
	if r := c.ok("status", "--embed-model", "text-embedding-3-small"); !regexp.MustCompile(`with embedding +108 +\(active space `).MatchString(r.stdout) {
		t.Errorf("status of another embedder does not show the active space's coverage:\n%s", r.stdout)
	}
}

// The version the container build sets (deploy/Dockerfile: -X main.version=${VERSION}) is the
// one `paperpipe version` prints; a plain build is "dev".
func TestVersionIsTheOneTheBuildSets(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	if r := c.ok("--version"); r.stdout != "paperpipe dev\n" {
		t.Errorf("--version of a plain build printed %q, want \"paperpipe dev\\n\"", r.stdout)
	}
	bin := filepath.Join(t.TempDir(), "paperpipe")
	if out, err := exec.Command("go", "build", "-ldflags", "-X main.version=1.2.3-test", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build with a version: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil || string(out) != "paperpipe 1.2.3-test\n" {
		t.Errorf("version printed %q (%v), want \"paperpipe 1.2.3-test\\n\"", out, err)
	}
}

// A remote model named with no API configured fails at once with a message naming
// OPENAI_API_KEY and OPENAI_BASE_URL, instead of calling OpenAI's API without a key; a server
// of your own needs no key, and a dry run calls nothing.
func TestRemoteModelWithoutAPIKeyFailsFast(t *testing.T) {
	t.Parallel()
	// Should a request be made after all, it goes to a closed local port, never to OpenAI.
	proxy := "HTTPS_PROXY=http://127.0.0.1:" + strconv.Itoa(freePort(t))
	for _, extra := range [][]string{{proxy}, {proxy, "OPENAI_BASE_URL=https://api.openai.com/v1"}} {
		c := newCLI(t, extra...)
		for _, args := range [][]string{
			{"summarize", "--chat-model", "gpt-4o-mini", sampleFile},
			{"embed", "--embed-model", "text-embedding-3-small", sampleFile},
			{"worker", "--exit-when-idle", "--chat-model", "gpt-4o-mini"},
		} {
			start := time.Now()
			r := c.run(args...)
			if r.code != 2 || !strings.Contains(r.stderr, "OPENAI_API_KEY") || !strings.Contains(r.stderr, "OPENAI_BASE_URL") {
				t.Errorf("paperpipe %s with %v: exit %d, stderr %s; want 2 and a message naming OPENAI_API_KEY and OPENAI_BASE_URL",
					strings.Join(args, " "), extra, r.code, r.stderr)
			}
			if d := time.Since(start); d > 20*time.Second {
				t.Errorf("paperpipe %s took %s to fail", strings.Join(args, " "), d)
			}
		}
	}

	c := newCLI(t, proxy)
	c.ok("ingest", sampleFile)
	c.ok("reprocess", "--dry-run", "--chat-model", "gpt-4o-mini")

	api := openaitest.Start(t, openaitest.Config{})
	c = newCLI(t, "OPENAI_BASE_URL="+api.URL())
	if r := c.ok("summarize", "--chat-model", "gpt-4o-mini", sampleFile); len(nonEmptyLines(r.stdout)) != 108 {
		t.Errorf("summarize through a keyless server printed %d lines, want 108", len(nonEmptyLines(r.stdout)))
	}
}

// TestFillHintNamesTheSpacesOwnSettings: the command a hint gives must fill that space, not
// the model's default-size one (a 4-dimension import of text-embedding-3-large is not the
// 3072-dimension space reprocess makes without --embed-dimensions).
func TestFillHintNamesTheSpacesOwnSettings(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		sp   paper.Space
		want string
	}{
		{paper.Space{Model: "text-embedding-3-large", Dimensions: 4, Template: embed.TemplateTitleAbstract},
			"`paperpipe reprocess --embed-only --embed-model text-embedding-3-large --embed-dimensions 4`"},
		{paper.Space{Model: embed.OfflineModel, Dimensions: 768, Template: embed.TemplateTitleAbstract},
			"`paperpipe reprocess --embed-only --embed-model " + embed.OfflineModel + "`"},
		{paper.Space{Model: "m", Dimensions: 8, Template: "custom"}, "import-embeddings"},
	} {
		if got := embed.FillHint(tc.sp); !strings.Contains(got, tc.want) {
			t.Errorf("FillHint(%s) = %q, want it to contain %q", tc.sp.Name(), got, tc.want)
		}
	}
}

// Ctrl-C (the command's context) ends a download whose server has stopped sending at once,
// not after the 30 s that make a silent server an error.
func TestInterruptEndsAStalledDownload(t *testing.T) {
	t.Parallel()
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Write([]byte("[\n{\"paper\":")) // detected as Hugging Face JSON, then nothing more
		w.(http.Flusher).Flush()
		select {
		case <-stall:
		case <-req.Context().Done():
		}
	}))
	defer srv.Close()
	defer close(stall)
	for name, read := range map[string]func(context.Context) error{
		"ingest": func(ctx context.Context) error {
			_, _, err := publishFile(ctx, nil, srv.URL+"/feed.json", ingest.Options{})
			return err
		},
		"summarize and embed": func(ctx context.Context) error {
			_, err := readAbstracts(ctx, []string{srv.URL + "/feed.json"}, ingest.Options{}, func(paper.Abstract) error { return nil })
			return err
		},
	} {
		ctx, cancel := context.WithCancel(t.Context())
		done := make(chan error, 1)
		go func() { done <- read(ctx) }()
		time.Sleep(100 * time.Millisecond)
		cancel() // Ctrl-C
		select {
		case err := <-done:
			if !errors.Is(err, context.Canceled) {
				t.Errorf("%s: interrupted download returned %v, want context.Canceled", name, err)
			}
		case <-time.After(5 * time.Second):
			t.Errorf("%s: still reading a stalled download 5 s after the interrupt", name)
		}
	}
}

// embedRequests is the embedding requests of model the usage ledger holds, as status says.
func embedRequests(c *cli, model string) int {
	c.t.Helper()
	var st struct {
		Usage []struct {
			Model    string `json:"model"`
			Kind     string `json:"kind"`
			Requests int    `json:"requests"`
		} `json:"usage"`
	}
	c.json(&st, "status")
	n := 0
	for _, u := range st.Usage {
		if u.Model == model && u.Kind == paper.KindEmbedding {
			n += u.Requests
		}
	}
	return n
}

// `paperpipe search` pays for its query embedding like a worker for its vectors: status counts
// the request.
func TestSearchRecordsItsQueryEmbeddingInTheUsageLedger(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-test-secret"})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test-secret")
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	model := "text-embedding-3-small" // the default with an API key
	before, calls := embedRequests(c, model), api.Stats().EmbedRequests
	c.ok("search", "mixture of experts routing")
	calls = api.Stats().EmbedRequests - calls
	if got := embedRequests(c, model) - before; calls != 1 || got != int(calls) {
		t.Errorf("a search made %d embedding requests and the ledger gained %d", calls, got)
	}
}

// search embeds its text with the configured embedder, not the active space's model: its help
// says so, and what to set.
func TestSearchHelpNamesTheConfiguredEmbedder(t *testing.T) {
	t.Parallel()
	r := newCLI(t).ok("search", "-h")
	if strings.Contains(r.stdout, "embedded by the active space's model") || !strings.Contains(r.stdout, "configured embedding model") ||
		!strings.Contains(r.stdout, "PAPERPIPE_EMBED_MODEL") || !strings.Contains(r.stdout, "paperpipe search -- -word") {
		t.Errorf("search -h:\n%s", r.stdout)
	}
}

// A command lists only the model flags it uses: summarize's -h listed --embed-model and
// --embed-dimensions, embed's and search's --chat-model, which did nothing there.
func TestModelFlagsAreThoseTheCommandUses(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, tc := range []struct {
		cmd        string
		has, lacks []string
	}{
		{"summarize", []string{"-chat-model"}, []string{"-embed-model", "-embed-dimensions"}},
		{"embed", []string{"-embed-model", "-embed-dimensions"}, []string{"-chat-model"}},
		{"search", []string{"-embed-model", "-embed-dimensions"}, []string{"-chat-model"}},
		{"serve", []string{"-chat-model", "-embed-model", "-embed-dimensions"}, nil},
		{"fit", []string{"-concurrency", "-dimensions"}, []string{"-chat-model", "-embed-model", "-embed-dimensions"}},
	} {
		help := c.ok(tc.cmd, "-h").stdout
		for _, f := range tc.has {
			if !strings.Contains(help, "  "+f+" ") {
				t.Errorf("%s -h does not list %s:\n%s", tc.cmd, f, help)
			}
		}
		for _, f := range tc.lacks {
			if strings.Contains(help, "  "+f+" ") {
				t.Errorf("%s -h lists %s, which it does not use:\n%s", tc.cmd, f, help)
			}
		}
	}
}

// The --json outputs use snake_case keys throughout, as GET /api/status does where it shows
// the same data (status printed "Papers", "WithTLDR", usage "Day"; spaces "Embedded",
// "IndexName", "CreatedAt" beside "id" and "model"), and an empty list is [] (dlq list printed
// null).
func TestJSONOutputsAreSnakeCaseWithEmptyListsAsArrays(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	keys := func(args ...string) string {
		t.Helper()
		return c.ok(append(args, "--json")...).stdout
	}
	for _, args := range [][]string{{"dlq", "list"}, {"spaces"}} {
		if out := strings.TrimSpace(keys(args...)); out != "[]" {
			t.Errorf("%s --json with nothing to list: %s, want []", strings.Join(args, " "), out)
		}
	}
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: c.databaseURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if _, err := st.EnsureSpace(ctx, paper.Space{Model: "paperpipe-offline-hash", Dimensions: 768, Template: "title-abstract-v1"}); err != nil {
		t.Fatal(err)
	}
	if err := st.RecordUsage(ctx, []paper.Usage{{Model: "gpt-4o-mini", Kind: paper.KindChat, Requests: 1, InputTokens: 10, OutputTokens: 5}}); err != nil {
		t.Fatal(err)
	}
	goName := regexp.MustCompile(`"[A-Z][A-Za-z]*":`)
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"status"}, []string{`"with_tldr":`, `"with_embedding":`, `"tldrs_total":`, `"day":`, `"input_tokens":`}},
		{[]string{"spaces"}, []string{`"id":`, `"embedded":`, `"papers":`, `"index":`, `"index_name":`, `"created_at":`}},
	} {
		out := keys(tc.args...)
		if k := goName.FindAllString(out, -1); len(k) > 0 {
			t.Errorf("%s --json has Go field names %v:\n%s", tc.args[0], k, out)
		}
		for _, w := range tc.want {
			if !strings.Contains(out, w) {
				t.Errorf("%s --json lacks %s:\n%s", tc.args[0], w, out)
			}
		}
	}
}

// -concurrency of worker and up is the TL;DR requests in flight, not the messages a worker
// holds (up to max(4×N, 256)): the help says so, as the README does (fit, which writes no
// TL;DR: TestFitHelpSaysWhatConcurrencyBounds).
func TestConcurrencyHelpIsTheTLDRRequestsInFlight(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	for _, cmd := range []string{"worker", "up"} {
		r := c.ok(cmd, "-h")
		if strings.Contains(r.stdout, "messages processed at once") || !strings.Contains(r.stdout, "-concurrency N\n") ||
			!strings.Contains(r.stdout, "TL;DR requests in flight per worker") || !strings.Contains(r.stdout, "max(4×N, 256) messages") {
			t.Errorf("%s -h:\n%s", cmd, r.stdout)
		}
	}
}

// A PAPERPIPE_ACK_WAIT, PAPERPIPE_MAX_DELIVER, PAPERPIPE_CONCURRENCY, PAPERPIPE_BATCH_SIZE or
// PAPERPIPE_EMBED_LINGER below its minimum is refused, naming the variable, exit 2, like one that does not parse (the
// defaults replaced them without a word); so are a PAPERPIPE_MSG_TIMEOUT not below the AckWait,
// a PAPERPIPE_EF_SEARCH outside 0..1000 (-3 meant 160, 5000 meant 1000), a negative
// PAPERPIPE_RPM, PAPERPIPE_TPM (no limit) or PAPERPIPE_FOLLOW_INTERVAL, and an unknown
// PAPERPIPE_VECTOR_INDEX (it exited 1 after connecting); and --concurrency and --batch-size below 1.
// So are a PAPERPIPE_MSG_TIMEOUT below 1s (1ms ended every API call before its answer, and
// dead-lettered the whole queue) and a PAPERPIPE_FOLLOW_INTERVAL below 1s (each check a query:
// 1ns queried the database back to back). So is a PAPERPIPE_EMBED_ENCODING other than base64 or
// float, for every command (it exited 1 from the commands that made an API embedder, and
// passed unseen in the others).
func TestSettingsBelowTheirMinimumAreRefused(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{"PAPERPIPE_ACK_WAIT=0s", "PAPERPIPE_MAX_DELIVER=0", "PAPERPIPE_CONCURRENCY=-1", "PAPERPIPE_BATCH_SIZE=0", "PAPERPIPE_MSG_TIMEOUT=-1s", "PAPERPIPE_EMBED_LINGER=0s", "PAPERPIPE_TLDR_MAX_WORDS=0", "PAPERPIPE_EMBED_DIMENSIONS=-5",
		"PAPERPIPE_INDEX_BUILD_MEMORY=lots", "PAPERPIPE_INDEX_BUILD_MEMORY=8G", "PAPERPIPE_INDEX_BUILD_MEMORY=512kB",
		"PAPERPIPE_INDEX_BUILD_MEMORY=2TB", "PAPERPIPE_INDEX_BUILD_MEMORY=99999999999999999999GB",
		"PAPERPIPE_ACK_WAIT=500ms", "PAPERPIPE_MSG_TIMEOUT=60s", "PAPERPIPE_EF_SEARCH=-3", "PAPERPIPE_EF_SEARCH=5000",
		"PAPERPIPE_RPM=-1", "PAPERPIPE_TPM=-100", "PAPERPIPE_FOLLOW_INTERVAL=-1s", "PAPERPIPE_VECTOR_INDEX=ivfflat",
		"PAPERPIPE_MSG_TIMEOUT=1ms", "PAPERPIPE_MSG_TIMEOUT=999ms", "PAPERPIPE_FOLLOW_INTERVAL=1ns", "PAPERPIPE_FOLLOW_INTERVAL=500ms",
		"PAPERPIPE_SHUTDOWN_DELAY=-5s", "PAPERPIPE_EMBED_BATCH_INPUTS=0", "PAPERPIPE_EMBED_BATCH_TOKENS=-1",
		"PAPERPIPE_EMBED_ENCODING=hex", "PAPERPIPE_EMBED_ENCODING=Float"} {
		name, _, _ := strings.Cut(kv, "=")
		if r := newCLI(t, kv).run("version"); r.code != 2 || !strings.Contains(r.stderr, "paperpipe: "+name+"=") {
			t.Errorf("%s: exit %d, stderr %q; want 2 and a message naming %s", kv, r.code, r.stderr, name)
		}
	}
	c := newCLI(t)
	if r := c.run("search", "--embed-dimensions", "-5", "routing"); r.code != 2 || !strings.Contains(r.stderr, "--embed-dimensions is -5") {
		t.Errorf("paperpipe search --embed-dimensions -5: exit %d, stderr %q; want 2 and the flag named", r.code, r.stderr)
	}
	for _, args := range [][]string{{"worker", "--exit-when-idle", "--concurrency", "0"}, {"fit", "--batch-size", "0"}, {"reprocess", "--concurrency", "-1"}} {
		if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, "want 1 to 4096") {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2 and the bound", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// The bounds TestSettingsBelowTheirMinimumAreRefused refuses below are values a setting may
// take: each at its minimum or maximum, and each value PAPERPIPE_EMBED_ENCODING names, is
// accepted — a bound moved by one refused what README says works (PAPERPIPE_ACK_WAIT=4s,
// pipeline.MinAckWait).
func TestSettingsAtTheirBoundsAreAccepted(t *testing.T) {
	t.Parallel()
	for _, kv := range []string{"PAPERPIPE_ACK_WAIT=4s", "PAPERPIPE_MSG_TIMEOUT=1s", "PAPERPIPE_FOLLOW_INTERVAL=1s",
		"PAPERPIPE_EF_SEARCH=0", "PAPERPIPE_EF_SEARCH=1000", "PAPERPIPE_INDEX_BUILD_MEMORY=1MB",
		"PAPERPIPE_EMBED_ENCODING=base64", "PAPERPIPE_EMBED_ENCODING=float"} {
		if r := newCLI(t, kv).run("version"); r.code != 0 {
			t.Errorf("%s: exit %d, stderr %q; want it accepted", kv, r.code, r.stderr)
		}
	}
}

// PAPERPIPE_EMBED_BATCH_TOKENS is a request's token budget, and one input must fit in a
// request whole: every input longer than the budget was cut to it. A small value (100, meant as
// "smaller requests") cut every abstract of the sample, all 108 vectors of `paperpipe embed`
// marked truncated, exit 0 and not a word on standard error — an archive's vectors of the first
// lines of each abstract, paid for. Below 1,024 (an arXiv abstract at its 1,920-character limit,
// with its title, is estimated at about 700) it is refused, as --embed-batch-tokens is; 1,024
// is taken.
func TestEmbedBatchTokensThatCutTheAbstractsAreRefused(t *testing.T) {
	t.Parallel()
	for _, v := range []string{"100", "1023"} {
		r := newCLI(t, "PAPERPIPE_EMBED_BATCH_TOKENS="+v).run("version")
		if r.code != 2 || !strings.Contains(r.stderr, "paperpipe: PAPERPIPE_EMBED_BATCH_TOKENS="+strconv.Quote(v)) || !strings.Contains(r.stderr, "at least 1024") {
			t.Errorf("PAPERPIPE_EMBED_BATCH_TOKENS=%s: exit %d, stderr %q; want 2, the variable named and its minimum, 1024", v, r.code, r.stderr)
		}
	}
	if r := newCLI(t, "PAPERPIPE_EMBED_BATCH_TOKENS=1024").run("version"); r.code != 0 {
		t.Errorf("PAPERPIPE_EMBED_BATCH_TOKENS=1024: exit %d, stderr %q; want it taken", r.code, r.stderr)
	}
	c := newCLI(t)
	for _, args := range [][]string{{"worker", "--exit-when-idle", "--embed-batch-tokens", "100"}, {"up", "--embed-batch-tokens", "1023"}} {
		if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, "--embed-batch-tokens") || !strings.Contains(r.stderr, "at least 1024") {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2, the flag named and its minimum", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// A numeric setting far above what it can mean (a typo's extra digits) is refused like one
// below its minimum, naming the variable and the range, exit 2: PAPERPIPE_CONCURRENCY=99999999999
// was taken (the consumer never delivers more than 4096 messages at once), a
// PAPERPIPE_EMBED_DIMENSIONS above pgvector's 16000 failed once the space was created, a
// PAPERPIPE_TLDR_MAX_WORDS of thousands made each request's token estimate eat a minute of
// PAPERPIPE_TPM, a PAPERPIPE_HTTP_MAX_BODY_BYTES of 100 GB let one POST hold that much memory,
// and PAPERPIPE_ACK_WAIT, PAPERPIPE_SHUTDOWN_DELAY, PAPERPIPE_FOLLOW_INTERVAL, PAPERPIPE_RPM and
// PAPERPIPE_TPM had no maximum at all.
// The flags that set the same values are bounded the same way. Each maximum itself is taken.
func TestSettingsAboveTheirMaximumAreRefused(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, over, max string }{
		{"PAPERPIPE_CONCURRENCY", "99999999999", "4096"},
		{"PAPERPIPE_BATCH_SIZE", "4097", "4096"},
		{"PAPERPIPE_MAX_DELIVER", "1001", "1000"},
		{"PAPERPIPE_TLDR_MAX_WORDS", "201", "200"},
		{"PAPERPIPE_EMBED_DIMENSIONS", "16001", "16000"},
		{"PAPERPIPE_HTTP_MAX_BODY_BYTES", "99999999999", "1073741824"},
		// Durations and rates had no maximum: PAPERPIPE_ACK_WAIT=60h (meant 60s) was taken, and
		// set on the consumer every worker shares.
		{"PAPERPIPE_ACK_WAIT", "60h", "1h"},
		{"PAPERPIPE_SHUTDOWN_DELAY", "5h", "10m"},
		{"PAPERPIPE_FOLLOW_INTERVAL", "300h", "1h"},
		{"PAPERPIPE_RPM", "5000000", "1000000"},
		{"PAPERPIPE_TPM", "20000000000", "1000000000"},
	} {
		r := newCLI(t, tc.name+"="+tc.over).run("version")
		if r.code != 2 || !strings.Contains(r.stderr, "paperpipe: "+tc.name+"=") || !strings.Contains(r.stderr, " to "+tc.max) {
			t.Errorf("%s=%s: exit %d, stderr %q; want 2, the variable named and its range up to %s", tc.name, tc.over, r.code, r.stderr, tc.max)
		}
		if r := newCLI(t, tc.name+"="+tc.max).run("version"); r.code != 0 {
			t.Errorf("%s=%s, the maximum: exit %d, stderr %q", tc.name, tc.max, r.code, r.stderr)
		}
	}
	c := newCLI(t)
	for _, args := range [][]string{{"worker", "--exit-when-idle", "--concurrency", "4097"}, {"fit", "--batch-size", "99999"}, {"reprocess", "--concurrency", "5000"},
		{"search", "--embed-dimensions", "20000", "routing"}} {
		if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, " to ") {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 2 and the range", strings.Join(args, " "), r.code, r.stderr)
		}
	}
}

// `paperpipe` with no command is a usage error: the usage on stderr, exit 2 (it exited 0);
// `paperpipe help` still prints it on stdout, exit 0.
func TestNoCommandIsAUsageError(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	if r := c.run(); r.code != 2 || !strings.Contains(r.stderr, "Usage: paperpipe COMMAND") || r.stdout != "" {
		t.Errorf("paperpipe with no command: exit %d, stdout %q, stderr:\n%s", r.code, r.stdout, r.stderr)
	}
	if r := c.run("help"); r.code != 0 || !strings.Contains(r.stdout, "Usage: paperpipe COMMAND") {
		t.Errorf("paperpipe help: exit %d, stdout:\n%s", r.code, r.stdout)
	}
}

// A command's error that wraps paper.ErrInvalid says the reason only, as the web layer does
// (`spaces drop` of the active space ended with ": invalid input").
func TestCLIErrorsSayTheReasonOnly(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	st, err := store.Open(t.Context(), store.Config{URL: c.databaseURL()})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	if _, err := st.EnsureSpace(t.Context(), paper.Space{Model: "paperpipe-offline-hash", Dimensions: 768, Template: "title-abstract-v1"}); err != nil {
		t.Fatal(err)
	}
	r := c.run("spaces", "drop", "1")
	if r.code != 1 || !strings.Contains(r.stderr, "is the active space; activate another space before dropping it\n") {
		t.Errorf("spaces drop of the active space: exit %d, stderr %q", r.code, r.stderr)
	}
	if msg := errorMessage(fmt.Errorf("title is empty: %w", paper.ErrInvalid)); msg != "title is empty" {
		t.Errorf("errorMessage = %q", msg)
	}
}

// Counts in messages are singular for one ("1 records rejected", "1 papers to process"), and
// the Batch API's progress says how many of its batches are open ("2 open batches" when both
// were closed).
func TestMessagesCountOneInTheSingular(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 1)
	_, out := e.reprocess(t, t.Context(), e.c, reprocessOptions{})
	for _, want := range []string{"reprocess: 1 paper to process (1 TL;DR by gpt-4o-mini", "and 1 embedding in space",
		"reprocess: 1 paper processed: 1 TL;DR, 1 embedding stored"} {
		if !strings.Contains(out, want) {
			t.Errorf("reprocess of one paper lacks %q:\n%s", want, out)
		}
	}
	vectors := filepath.Join(t.TempDir(), "vectors.jsonl")
	if err := os.WriteFile(vectors, []byte(`{"id":"arxiv:2401.00000","embedding":[1,0,0,0],"model":"imported"}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if _, err := importEmbeddings(t.Context(), e.st, vectors, 5000, &errw); err != nil ||
		!strings.Contains(errw.String(), "import-embeddings: 1 line: 1 vector loaded into space") {
		t.Errorf("import-embeddings of one line (%v) said %q", err, errw.String())
	}
	line := batchProgress([]store.BatchJob{{Status: store.BatchDone, Total: 1, Completed: 1}, {Status: store.BatchFailed, Total: 1, Completed: 1}},
		batch.Report{TLDRs: 1, Vectors: 1})
	if want := "reprocess: 2 batches (0 open): 2/2 requests completed, 0 failed; 1 TL;DR and 1 embedding stored so far"; line != want {
		t.Errorf("batch progress %q, want %q", line, want)
	}
	bad := filepath.Join(t.TempDir(), "bad.jsonl")
	if err := os.WriteFile(bad, []byte(`{"id":"2401.00001","title":"T","abstract":""}`+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := newCLI(t).run("summarize", bad); r.code == 0 || !strings.Contains(r.stderr, "1 record rejected") {
		t.Errorf("summarize of one bad record: exit %d, stderr %q", r.code, r.stderr)
	}
}

// A search of text the model has no word for ("the") says so and what to do instead (it
// failed with the store's "embedding of query is the zero vector"); an empty list prints
// "papers": [] with --json, not null.
func TestSearchOfTextTheModelCannotEmbedAndEmptyJSONLists(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	if out := c.ok("list", "--json").stdout; !strings.Contains(out, `"papers": []`) {
		t.Errorf("list --json of an empty archive: %s, want \"papers\": []", out)
	}
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	r := c.run("search", "the")
	if r.code != 1 || !strings.Contains(r.stderr, "no words the embedding model") || !strings.Contains(r.stderr, "--mode keyword") ||
		strings.Contains(r.stderr, "zero vector") {
		t.Errorf("search the: exit %d, stderr %q; want 1 and a plain message pointing at a keyword search", r.code, r.stderr)
	}
	// The syntax and the excluded words are not embedded: "-routing" would pull the results
	// toward routing.
	if r := c.run("search", "--", "-routing"); r.code != 1 || !strings.Contains(r.stderr, "excluded words do not count") {
		t.Errorf("search -routing: exit %d, stderr %q; want 1: nothing to embed", r.code, r.stderr)
	}
	// A paper with an excluded word is not a result; the others keep their order and score.
	ids := func(args ...string) []string {
		var out struct {
			Results []struct {
				ID string `json:"id"`
			} `json:"results"`
		}
		if err := json.Unmarshal([]byte(c.ok(append([]string{"search", "--json", "-k", "20", "--"}, args...)...).stdout), &out); err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, r := range out.Results {
			ids = append(ids, r.ID)
		}
		return ids
	}
	routing := papersMatching(t, c, "routing")
	plain, syntax := ids("mixture of experts"), ids(`"mixture of experts" -routing`)
	var kept []string
	for _, id := range plain {
		if !routing[id] {
			kept = append(kept, id)
		}
	}
	if len(kept) == len(plain) {
		t.Fatalf("no paper about routing among the 20 nearest to mixture of experts; the test's premise is wrong")
	}
	if len(syntax) != 20 || !slices.Equal(syntax[:len(kept)], kept) || slices.ContainsFunc(syntax, func(id string) bool { return routing[id] }) {
		t.Errorf("search \"mixture of experts\" -routing = %v; want 20 papers, none about routing, starting with %v", syntax, kept)
	}
}

// papersMatching returns the ids of c's papers whose text matches the full-text query q.
func papersMatching(t *testing.T, c *cli, q string) map[string]bool {
	t.Helper()
	rows, err := dbOf(t, c).Query(t.Context(), "SELECT id FROM papers WHERE tsv @@ websearch_to_tsquery('paperpipe_english', $1)", q)
	if err != nil {
		t.Fatal(err)
	}
	ids, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		t.Fatal(err)
	}
	m := map[string]bool{}
	for _, id := range ids {
		m[id] = true
	}
	return m
}

// PAPERPIPE_INDEX_BUILD_MEMORY takes what maintenance_work_mem takes, 1024kB to 2147483647kB,
// and nothing else: the index build comes after an import's whole load.
func TestValidIndexMemory(t *testing.T) {
	t.Parallel()
	for size, want := range map[string]bool{
		"1MB": true, "1024kB": true, "1GB": true, "8GB": true, "1TB": true, "2147483647kB": true, "2047GB": true,
		"1023kB": false, "2TB": false, "2147483648kB": false, "2048GB": false, "0MB": false, "8G": false, "1 GB": false,
		"99999999999999999999GB": false, "": false,
	} {
		if got := validIndexMemory(size); got != want {
			t.Errorf("validIndexMemory(%q) = %v, want %v", size, got, want)
		}
	}
}

// The status page's counts read the whole archive: counts that took long are reused while
// fresh (here "long" is any time and "fresh" a moment, to see both sides), counts that were
// quick are not, and a stale count is made again.
func TestStatusReusesSlowCountsWhileFresh(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	js, st := queueAndStore(t)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	add := func(id string) {
		t.Helper()
		if _, err := st.UpsertPapers(ctx, []paper.Abstract{{ID: id, Title: "Paper " + id, Abstract: "We count papers."}}, paper.Work{}); err != nil {
			t.Fatal(err)
		}
	}
	papers := func(s *webStatus) int64 {
		t.Helper()
		out, err := s.Status(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return int64(out.Papers)
	}
	slow := &webStatus{st: st, js: js, sum: summarize.NewOffline(30), countsSlow: time.Nanosecond, countsFresh: time.Hour}
	add("count:1")
	if n := papers(slow); n != 1 {
		t.Fatalf("first status: %d papers, want 1", n)
	}
	add("count:2")
	if n := papers(slow); n != 1 {
		t.Errorf("status within the freshness of a slow count: %d papers, want the reused 1", n)
	}
	slow.countsFresh = time.Nanosecond
	if n := papers(slow); n != 2 {
		t.Errorf("status after the count went stale: %d papers, want 2", n)
	}
	quick := &webStatus{st: st, js: js, sum: summarize.NewOffline(30), countsSlow: time.Hour, countsFresh: time.Hour}
	papers(quick)
	add("count:3")
	if n := papers(quick); n != 3 {
		t.Errorf("status after a quick count: %d papers, want 3 (quick counts are not reused)", n)
	}
}

// queueAndStore is a NATS server with paperpipe's streams and a store on a fresh database,
// both closed when the test ends.
func queueAndStore(t *testing.T) (jetstream.JetStream, *store.Store) {
	t.Helper()
	js := natstest.Start(t).Connect(t)
	if err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	st, err := store.Open(t.Context(), store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return js, st
}

// editPapersStream changes js's PAPERS stream's configuration with edit, as an operator's
// `nats stream edit PAPERS` does.
func editPapersStream(t *testing.T, js jetstream.JetStream, edit func(*jetstream.StreamConfig)) {
	t.Helper()
	s, err := js.Stream(t.Context(), pipeline.StreamPapers)
	if err != nil {
		t.Fatal(err)
	}
	cfg := s.CachedInfo().Config
	edit(&cfg)
	if _, err := js.UpdateStream(t.Context(), cfg); err != nil {
		t.Fatal(err)
	}
}

// While one request recounts slow counts that went stale, the others get the last counts at
// once instead of waiting in line behind the count (seconds at millions of papers).
func TestStatusGivesTheLastSlowCountsWhileOneRecounts(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	js, st := queueAndStore(t)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{{ID: "count:1", Title: "Paper 1", Abstract: "We count papers."}}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	s := &webStatus{st: st, js: js, sum: summarize.NewOffline(30), countsSlow: time.Nanosecond, countsFresh: time.Nanosecond}
	if out, err := s.Status(ctx); err != nil || out.Papers != 1 {
		t.Fatalf("first status: %+v, %v", out.Papers, err)
	}
	// The recount waits on a lock that keeps every read of papers out.
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE papers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	recount := make(chan error, 1)
	go func() {
		_, err := s.archiveCounts(ctx, paper.Work{Model: s.sum.Model(), PromptVersion: s.sum.PromptVersion()})
		recount <- err
	}()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		s.countsMu.Lock()
		counting := s.count != nil
		s.countsMu.Unlock()
		if counting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the recount did not start")
		}
	}
	got := make(chan int64, 1)
	go func() {
		c, err := s.archiveCounts(ctx, paper.Work{Model: s.sum.Model(), PromptVersion: s.sum.PromptVersion()})
		if err != nil {
			t.Error(err)
		}
		got <- c.Papers
	}()
	select {
	case n := <-got:
		if n != 1 {
			t.Errorf("during the recount: %d papers, want the last count, 1", n)
		}
	case <-time.After(10 * time.Second):
		t.Error("a status request waited for the recount of another")
	}
	_ = tx.Rollback(ctx)
	if err := <-recount; err != nil {
		t.Error(err)
	}
}

// A count that takes longer than a request may wait (the status page's 30 s, at a million or
// two papers) goes on when the request gives up, and the next request shows it: it was
// cancelled with the request, so the page never had counts and failed every time.
func TestStatusCountLongerThanARequestGoesOnForTheNext(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	js, st := queueAndStore(t)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{{ID: "count:1", Title: "Paper 1", Abstract: "We count papers."}}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	s := &webStatus{st: st, js: js, sum: summarize.NewOffline(30), countsSlow: time.Nanosecond, countsFresh: time.Hour}
	// The count waits on a lock that keeps every read of papers out, longer than the request.
	tx, err := st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = tx.Rollback(context.Background()) }()
	if _, err := tx.Exec(ctx, "LOCK TABLE papers IN ACCESS EXCLUSIVE MODE"); err != nil {
		t.Fatal(err)
	}
	var holder int32
	if err := tx.QueryRow(ctx, "SELECT pg_backend_pid()").Scan(&holder); err != nil {
		t.Fatal(err)
	}
	// The request gives up once its count waits for the lock (not after a time of its own: on
	// a loaded machine such a time ran out before the count had begun, which was the test's
	// premise).
	rctx, cancel := context.WithCancel(ctx)
	answered := make(chan error, 1)
	go func() {
		_, err := s.Status(rctx)
		answered <- err
	}()
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		var waiting bool
		if err := st.Pool().QueryRow(ctx, "SELECT EXISTS (SELECT FROM pg_stat_activity WHERE $1 = ANY(pg_blocking_pids(pid)))", holder).Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the status request's count never came to wait for the lock of papers")
		}
	}
	cancel()
	if err = <-answered; err == nil {
		t.Fatal("status answered with counts while papers was locked")
	}
	t.Logf("the request that gave up: %v", err)
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		s.countsMu.Lock()
		counted := !s.countsAt.IsZero()
		s.countsMu.Unlock()
		if counted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the count a request gave up on ended with it: the next request counts again, and gives up again")
		}
	}
	if out, err := s.Status(ctx); err != nil || out.Papers != 1 {
		t.Errorf("the next status: %d papers, %v; want the count that went on, 1", out.Papers, err)
	}
}

// A search whose embedder makes the active space's model with other dimensions is refused,
// and the message names both settings to change, not only the model (which is already right).
func TestSearchWithOtherDimensionsNamesThem(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{APIKey: "sk-test-secret"})
	c := newCLI(t, "OPENAI_BASE_URL="+api.URL(), "OPENAI_API_KEY=sk-test-secret")
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle", "--embed-dimensions", "256")
	want := "set PAPERPIPE_EMBED_MODEL=text-embedding-3-small PAPERPIPE_EMBED_DIMENSIONS=256 (or --embed-model text-embedding-3-small --embed-dimensions 256)"
	for _, args := range [][]string{{"search", "mixture of experts"}, {"search", "mixture of experts", "--embed-model", "offline"}} {
		if r := c.run(args...); r.code != 1 || !strings.Contains(r.stderr, want) {
			t.Errorf("paperpipe %s: exit %d, stderr %q; want 1 and %q", strings.Join(args, " "), r.code, r.stderr, want)
		}
	}
	c.ok("search", "mixture of experts", "--embed-dimensions", "256")
}

// A second signal ends the process at once with the status a shell gives a process that
// signal killed: 130 for SIGINT, 143 for SIGTERM (what a supervisor reads as "stopped by its
// signal"); it was 130 for both.
func TestSecondSignalExitStatusNamesTheSignal(t *testing.T) {
	t.Parallel()
	for sig, want := range map[os.Signal]int{os.Interrupt: 130, syscall.SIGTERM: 143} {
		if got := signalExitStatus(sig); got != want {
			t.Errorf("exit status after a second %v: %d, want %d", sig, got, want)
		}
	}
}

// A first signal that came before the goroutine watching for the second ran (a busy machine:
// it is scheduled only after the first signal has ended the command's context and the drain
// has begun) is still counted, and a second one ends the process. The watcher subscribed to the
// signals only once the first had ended the context: a second one in between went to no
// reader, and the process drained on (the chaos test's second SIGINT, 200 ms after the first,
// was lost so).
func TestASecondSignalBeforeItsWatcherRanStillExits(t *testing.T) {
	t.Parallel()
	signals := make(chan os.Signal, 2) // as run subscribes it, before the command starts
	signals <- os.Interrupt            // the first: the command's context ends, the drain begins
	exited := make(chan int, 1)
	stopped := make(chan struct{})
	go secondSignalExits(signals, func(os.Signal) { close(stopped) }, func(code int) { exited <- code })
	<-stopped            // the watcher has read the first signal and taken its time
	time.Sleep(sameStop) // a person's second Ctrl-C, not timeout(1)'s copy of the first
	signals <- syscall.SIGTERM
	select {
	case code := <-exited:
		if code != 143 {
			t.Errorf("exit status %d after a second SIGTERM, want 143", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal did not end the process")
	}
}

// waitFor waits up to 10 s for cond, naming what it waits for if it does not come.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("waited 10 s for %s", what)
		}
	}
}

// timeout(1) sends its signal to the command and then to the command's process group, which
// the command is in: `timeout 600 paperpipe worker` got two SIGTERMs microseconds apart and,
// about one run in three (when the runtime had not merged them), exited at once, as for a
// second signal, its held messages not handed back, instead of draining. A repeat that soon is
// the same stop; a signal after it is a second one.
func TestTimeoutsRepeatedSignalIsOneStop(t *testing.T) {
	t.Parallel()
	signals := make(chan os.Signal, 2)
	signals <- syscall.SIGTERM // timeout's, to the command
	signals <- syscall.SIGTERM // and to its process group
	exited := make(chan int, 1)
	go secondSignalExits(signals, func(os.Signal) {}, func(code int) { exited <- code })
	waitFor(t, "the watcher to read both signals", func() bool { return len(signals) == 0 })
	time.Sleep(sameStop)
	signals <- os.Interrupt // a second signal: Ctrl-C
	select {
	case code := <-exited:
		if code != 130 {
			t.Errorf("exit status %d: timeout's copy of its SIGTERM ended the process as a second signal; want 130 from the SIGINT after it", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal after timeout's pair did not end the process")
	}
}

// A second signal more than sameStop after the first ends the process also while the first
// one's handling (the cancellation of the command's context, which a busy machine may take a
// while over) is still going on: the repeat was measured from the end of that handling, and a
// second Ctrl-C during a slow one was taken for a repeat of the first and lost — the process
// drained on (the chaos test's second SIGINT comes 200 ms after the first).
func TestASecondSignalDuringTheFirstsHandlingEndsTheProcess(t *testing.T) {
	t.Parallel()
	signals := make(chan os.Signal, 2)
	signals <- os.Interrupt
	handling, handled := make(chan struct{}), make(chan struct{})
	exited := make(chan int, 1)
	go secondSignalExits(signals, func(os.Signal) { close(handling); <-handled }, func(code int) { exited <- code })
	<-handling
	time.Sleep(sameStop) // a person's second Ctrl-C, while the first is being handled
	signals <- syscall.SIGTERM
	close(handled)
	select {
	case code := <-exited:
		if code != 143 {
			t.Errorf("exit status %d after a second SIGTERM, want 143", code)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a second signal during the first one's handling did not end the process: taken for a repeat of the first")
	}
}

// serve's read replica is never migrated: until it has the primary's migrations (replayed),
// serve waits, then refuses naming the setting and the migration it lacks.
func TestReadReplicaWithoutThePrimarysMigrationsIsRefused(t *testing.T) {
	old := readSchemaWait
	readSchemaWait = 0
	t.Cleanup(func() { readSchemaWait = old })
	u := pgtest.URL(t)
	c := &config{ReadDBURL: u}
	_, err := openReadStore(t.Context(), c, slog.New(slog.DiscardHandler))
	if !errors.Is(err, store.ErrSchemaBehind) || !strings.Contains(err.Error(), "PAPERPIPE_READ_DATABASE_URL") || !strings.Contains(err.Error(), "no migration yet") {
		t.Fatalf("openReadStore of an unmigrated database = %v, want a refusal naming the setting and saying it has no migration", err)
	}
	st, err := store.Open(t.Context(), store.Config{URL: u})
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	st.Close()
	rs, err := openReadStore(t.Context(), c, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("openReadStore of a migrated database: %v", err)
	}
	rs.Close()
}

// `paperpipe search` is for free text: a pasted abstract longer than the keyword search's
// 4 KiB limit is searched (only the excluded words reach SQL), where it was refused after its
// embedding had been bought.
func TestSearchOfALongPastedAbstract(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	long := strings.Repeat("We study sparse mixture of experts models and their routing. ", 80)
	if r := c.run("search", "--json", "--", long); r.code != 0 || !strings.Contains(r.stdout, `"id"`) {
		t.Errorf("search of a %d-byte text: exit %d, stderr %q; want its nearest papers", len(long), r.code, r.stderr)
	}
}

// A token read from a file (kubectl create secret --from-file, an env file) keeps its final
// newline, which no Authorization header can carry: every client with the right token got 401.
func TestAPITokenFromAFileWithItsNewlineIsTheToken(t *testing.T) {
	t.Setenv("PAPERPIPE_API_TOKEN", "tok-from-file\n")
	if got := loadConfig().APIToken; got != "tok-from-file" {
		t.Errorf("APIToken = %q, want the token without its newline", got)
	}
}

// PAPERPIPE_API_TOKEN_READS without PAPERPIPE_API_TOKEN stops the commands that serve HTTP,
// naming both variables, and no other (README, PAPERPIPE_API_TOKEN_READS).
func TestAPITokenReadsWithoutTokenStopsOnlyWhatServesHTTP(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_API_TOKEN_READS=1")
	if r := c.run("version"); r.code != 0 {
		t.Errorf("version with PAPERPIPE_API_TOKEN_READS and no token: exit %d, %s", r.code, r.stderr)
	}
	for _, args := range [][]string{
		{"serve", "--http", "127.0.0.1:0"},
		{"up", "--http", "127.0.0.1:0"},
		{"worker", "--metrics", "127.0.0.1:0", "--exit-when-idle"},
	} {
		if r := c.run(args...); r.code != 2 || !strings.Contains(r.stderr, "PAPERPIPE_API_TOKEN_READS=\"1\" needs PAPERPIPE_API_TOKEN") {
			t.Errorf("%v with PAPERPIPE_API_TOKEN_READS and no token: exit %d, %s; want 2 naming both variables", args, r.code, r.stderr)
		}
	}
}

// An empty PAPERPIPE_API_TOKEN stops only the commands that serve HTTP (the previous version
// stopped every command, whether it reads the token or not: a shared env file's placeholder
// made `version` and `ingest` exit 2).
func TestEmptyAPITokenStopsOnlyWhatServesHTTP(t *testing.T) {
	t.Parallel()
	c := newCLI(t, "PAPERPIPE_API_TOKEN=", "PAPERPIPE_API_TOKEN_READS=1")
	if r := c.run("version"); r.code != 0 {
		t.Errorf("version with an empty token and PAPERPIPE_API_TOKEN_READS: exit %d, %s", r.code, r.stderr)
	}
	if r := c.run("worker", "--metrics", "127.0.0.1:0", "--exit-when-idle"); r.code != 2 || !strings.Contains(r.stderr, "PAPERPIPE_API_TOKEN is set but empty") {
		t.Errorf("worker --metrics with an empty token: exit %d, %s; want 2 naming the token", r.code, r.stderr)
	}
}

// paperpipe search has the web's three modes, with its JSON fields: keyword ranks as the
// store's keyword search does and needs no embedding model, hybrid as the store's hybrid search
// of the query's vector (and falls back to keyword results, saying why, when nothing is left to
// embed), and both say when the keyword ranking was bounded to the newest matches.
func TestSearchModes(t *testing.T) {
	t.Parallel()
	const limit = 5
	c := newCLI(t, fmt.Sprintf("PAPERPIPE_KEYWORD_RANK_LIMIT=%d", limit))
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	st, err := store.Open(t.Context(), store.Config{URL: c.databaseURL(), KeywordRankLimit: limit})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	sp, err := st.ActiveSpace(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	type output struct {
		Mode    string `json:"mode"`
		Space   string `json:"space"`
		Notice  string `json:"notice"`
		Results []struct {
			ID string `json:"id"`
		} `json:"results"`
		Bounded *struct {
			RankedNewest   int `json:"ranked_newest"`
			MatchesAtLeast int `json:"matches_at_least"`
		} `json:"bounded_ranking"`
	}
	search := func(c *cli, args ...string) (out output, ids []string) {
		t.Helper()
		c.json(&out, append([]string{"search", "-k", "20"}, args...)...)
		for _, r := range out.Results {
			ids = append(ids, r.ID)
		}
		return out, ids
	}
	idsOf := func(hits []paper.Hit, rk store.Ranking, err error) ([]string, store.Ranking) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, h := range hits {
			ids = append(ids, h.ID)
		}
		return ids, rk
	}

	// A keyword search needs no embedding model: one the CLI has no API key for is not asked.
	noModel := &cli{t: t, env: append(slices.Clone(c.env), "PAPERPIPE_EMBED_MODEL=text-embedding-3-small")}
	if r := noModel.run("search", "routing"); r.code == 0 {
		t.Fatalf("the premise fails: a semantic search with text-embedding-3-small and no API key succeeded: %s", r.stdout)
	}
	for _, q := range []string{"routing", "benchmark"} {
		matches := len(papersMatching(t, c, q))
		want, rk := idsOf(st.KeywordSearchRanked(t.Context(), q, 20))
		out, got := search(noModel, "--mode", "keyword", "--", q)
		if out.Mode != "keyword" || out.Space != "" || !slices.Equal(got, want) || len(got) == 0 {
			t.Errorf("search --mode keyword %s = %s %q %v; want keyword, no space, the store's %v", q, out.Mode, out.Space, got, want)
		}
		if bounded := matches > limit; rk.Bounded != bounded || (out.Bounded != nil) != bounded {
			t.Fatalf("%q matches %d papers (limit %d): the store's ranking bounded %v, the output's bounded_ranking %+v", q, matches, limit, rk.Bounded, out.Bounded)
		}
		if out.Bounded != nil && (out.Bounded.RankedNewest != limit || out.Bounded.MatchesAtLeast != limit+1) {
			t.Errorf("bounded_ranking %+v, want %d ranked of at least %d", *out.Bounded, limit, limit+1)
		}
	}
	if r := c.ok("search", "--mode", "keyword", "benchmark"); !strings.Contains(r.stdout, fmt.Sprintf("only the %d most recently added", limit)) {
		t.Errorf("a bounded keyword search does not say so:\n%s", r.stdout)
	}
	if r := c.ok("search", "--mode", "keyword", "routing"); strings.Contains(r.stdout, "most recently added") || !strings.Contains(r.stdout, "(keyword)") {
		t.Errorf("an unbounded keyword search:\n%s", r.stdout)
	}

	// Hybrid: the store's fusion for the offline model's vector of the query.
	q := "benchmark"
	vec, _, err := embed.NewOfflineV2().EmbedQuery(t.Context(), q)
	if err != nil {
		t.Fatal(err)
	}
	want, rk := idsOf(st.HybridSearchRanked(t.Context(), sp.ID, q, vec, 20))
	out, got := search(c, "--mode", "hybrid", q)
	if out.Mode != "hybrid" || out.Space != sp.Name() || !slices.Equal(got, want) || !rk.Bounded || out.Bounded == nil {
		t.Errorf("search --mode hybrid = %s %q %v bounded %+v; want hybrid in %s, the store's %v, bounded", out.Mode, out.Space, got, out.Bounded, sp.Name(), want)
	}
	if _, semantic := search(c, q); slices.Equal(got, semantic) {
		t.Errorf("hybrid and semantic searches gave the same papers %v; the test cannot tell them apart", got)
	}
	// Only an excluded word: nothing to embed, so the keyword results, saying so (papers
	// without the word: all but a few, so the ranking is bounded).
	out, got = search(c, "--mode", "hybrid", "--", "-routing")
	routing := papersMatching(t, c, "routing")
	if out.Mode != "keyword" || !strings.Contains(out.Notice, "only excluded words") || len(got) != limit || out.Bounded == nil ||
		slices.ContainsFunc(got, func(id string) bool { return routing[id] }) {
		t.Errorf("search --mode hybrid -routing = %s %q %v; want the %d newest keyword results without routing, bounded, and a notice", out.Mode, out.Notice, got, limit)
	}

	if r := c.run("search", "--mode", "fuzzy", "routing"); r.code != 2 || !strings.Contains(r.stderr, "want semantic, keyword or hybrid") {
		t.Errorf("search --mode fuzzy: exit %d, stderr %q; want a usage error", r.code, r.stderr)
	}
}

// postToServe posts body to a server wired as serve's (its publisher and record parser) over
// the queue js, and returns the status and the answer.
func postToServe(t *testing.T, js jetstream.JetStream, st *store.Store, body string) (int, string) {
	t.Helper()
	srv, err := web.New(web.Config{Store: webstore.Store{Store: st}, Publisher: webstore.Publisher{JS: js}, ParseRecord: parseRecord})
	if err != nil {
		t.Fatal(err)
	}
	req := httptest.NewRequest(http.MethodPost, "/api/papers", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	w := httptest.NewRecorder()
	srv.Handler().ServeHTTP(w, req)
	return w.Code, w.Body.String()
}

// TestPostedTimePastTheYear9999IsRejectedAndTheOthersQueued: a record published at
// 9999-12-31T23:59:59-14:00 (the year 10000 in UTC, which no JSON time holds) could not be
// queued: the answer was a 503 "the queue is unavailable" for it and every record after it,
// which failed the same way each time they were sent again. It is rejected on its own.
func TestPostedTimePastTheYear9999IsRejectedAndTheOthersQueued(t *testing.T) {
	t.Parallel()
	js, st := queueAndStore(t)
	code, body := postToServe(t, js, st, `[{"id": "2404.20001", "title": "Far", "abstract": "We study the future. It works.", "published": "9999-12-31T23:59:59-14:00"},
		{"id": "2404.20002", "title": "Near", "abstract": "We study the present. It works."}]`)
	if code != http.StatusAccepted || !strings.Contains(body, `"id": "arxiv:2404.20002"`) ||
		!strings.Contains(body, "published is 10000-01-01T13:59:59Z (UTC), outside the years 0000 to 9999") {
		t.Errorf("POST of a record published in the year 10000 (UTC) and a good one: %d %.600s; want 202, the first rejected for its date, the second accepted", code, body)
	}
}

// TestPostOfTwoVersionsIntoAFullQueueAsksForTheSecondAgain: two versions of one paper posted
// together into a queue that takes one message: the queue took the first only, but both were
// reported accepted (its acknowledgements name the paper), and the newer one was never sent
// again.
func TestPostOfTwoVersionsIntoAFullQueueAsksForTheSecondAgain(t *testing.T) {
	t.Parallel()
	js, st := queueAndStore(t)
	editPapersStream(t, js, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgs = 1 })
	code, body := postToServe(t, js, st, `[{"id": "2404.30001v1", "title": "T", "abstract": "The first version. It works."},
		{"id": "2404.30001v2", "title": "T", "abstract": "The second version, corrected. It works."}]`)
	var ans struct {
		Accepted []struct{ Index int }
		Rejected []struct{ Index int }
	}
	if err := json.Unmarshal([]byte(body), &ans); err != nil {
		t.Fatalf("POST: %d %.300s", code, body)
	}
	if code != http.StatusServiceUnavailable || len(ans.Rejected) == 0 || ans.Rejected[len(ans.Rejected)-1].Index != 1 {
		t.Errorf("POST of two versions of a paper into a queue that takes one: %d %.600s; want 503 with the second version to send again", code, body)
	}
}

// Dead letters that can never go through (a producer's malformed messages) stay, with no age
// limit, until they are dropped: `dlq drop SEQ…` removes those named (one not there is
// reported, exit 1, and the others go on), `dlq drop --all` every one.
func TestDLQDropRemovesDeadLettersForGood(t *testing.T) {
	t.Parallel()
	c := withDeadLetters(t, 4)
	if r := c.run("dlq", "drop"); r.code != 2 {
		t.Errorf("dlq drop naming nothing: exit %d, want 2 (usage)", r.code)
	}
	if r := c.run("dlq", "drop", "--all", "1"); r.code != 2 {
		t.Errorf("dlq drop --all 1: exit %d, want 2 (usage)", r.code)
	}
	r := c.run("dlq", "drop", "2", "9")
	if r.code != 1 || !strings.Contains(r.stderr, "dead letter 9: not found") || !strings.Contains(r.stderr, "dropped 1 dead letter\n") {
		t.Errorf("dlq drop 2 9: exit %d, stderr %s; want 1, letter 9 not found and 1 dropped", r.code, r.stderr)
	}
	var dls []pipeline.DeadLetter
	c.json(&dls, "dlq", "list")
	var seqs []uint64
	for _, d := range dls {
		seqs = append(seqs, d.Seq)
	}
	if !slices.Equal(seqs, []uint64{1, 3, 4}) {
		t.Errorf("dead letters after dropping 2: %v, want [1 3 4]", seqs)
	}
	r = c.ok("dlq", "drop", "--all")
	if !strings.Contains(r.stderr, "dropped 3 dead letters") {
		t.Errorf("dlq drop --all: stderr %s; want 3 dropped", r.stderr)
	}
	var st statusJSON
	if c.json(&st, "status"); st.DeadLetters != 0 {
		t.Errorf("after dlq drop --all: status counts %d dead letters, want none", st.DeadLetters)
	}
	if r := c.run("dlq", "drop", "--all"); r.code != 0 || !strings.Contains(r.stderr, "no dead letters to drop") {
		t.Errorf("dlq drop --all with none: exit %d, stderr %s", r.code, r.stderr)
	}
}

// fit writes no TL;DR: its help says what --concurrency bounds in a fit, not TL;DR requests.
func TestFitHelpSaysWhatConcurrencyBounds(t *testing.T) {
	t.Parallel()
	r := newCLI(t).ok("fit", "-h")
	_, after, _ := strings.Cut(r.stdout+r.stderr, "-concurrency")
	line, _, _ := strings.Cut(after, "\n  -")
	if strings.Contains(line, "TL;DR requests") || !strings.Contains(line, "max(4×N, 256)") {
		t.Errorf("fit -h on --concurrency:%s", line)
	}
}
