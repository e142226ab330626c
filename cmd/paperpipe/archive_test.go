package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/reprocess"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// archiveEnv is one test's PostgreSQL schema, NATS server and OpenAI test server, with a
// config pointing at them.
type archiveEnv struct {
	c    *config
	fake *openaitest.Server
	nats *natstest.Server
	st   *store.Store
}

func newArchiveEnv(t *testing.T, fake openaitest.Config) *archiveEnv {
	t.Helper()
	e := &archiveEnv{fake: openaitest.Start(t, fake), nats: natstest.Start(t)}
	c := loadConfig()
	c.DatabaseURL, c.NATSURL, c.DataDir = pgtest.URL(t), e.nats.ClientURL(), t.TempDir()
	c.BaseURL, c.APIKey = e.fake.URL(), "sk-test"
	c.ChatModel, c.EmbedModel, c.EmbedDims, c.MaxWords = "gpt-4o-mini", "text-embedding-3-small", 64, 30
	c.Concurrency, c.BatchSize, c.AckWait, c.MaxDeliver, c.LogLevel = 8, 8, 30*time.Second, 4, "error"
	c.Prices = ""
	e.c = c
	st, err := openStore(t.Context(), e.c, newLogger(e.c))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	e.st = st
	return e
}

// seed stores n papers whose first sentence makes a valid TL;DR, so that every paper costs
// exactly one chat request.
// jetStream is a JetStream client of the env's NATS server, closed with the test.
func (e *archiveEnv) jetStream(t *testing.T) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(e.nats.ClientURL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

func (e *archiveEnv) seed(t *testing.T, n int) {
	t.Helper()
	var papers []paper.Abstract
	for i := range n {
		papers = append(papers, paper.Abstract{
			ID:    fmt.Sprintf("arxiv:2401.%05d", i),
			Title: fmt.Sprintf("Balanced routing study %d", i),
			Abstract: fmt.Sprintf("We propose balanced router number %d for sparse mixture-of-experts models. "+
				"It lowers the load-balancing loss by %d percent.", i, i%9+1),
		})
	}
	if _, err := e.st.UpsertPapers(t.Context(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
}

// cfg returns a copy of the environment's config with mutate applied.
func (e *archiveEnv) cfg(mutate func(*config)) *config {
	c := *e.c
	if mutate != nil {
		mutate(&c)
	}
	return &c
}

func (e *archiveEnv) reprocess(t *testing.T, ctx context.Context, c *config, o reprocessOptions) (reprocessResult, string) {
	t.Helper()
	var out, errw bytes.Buffer
	res, err := runReprocess(ctx, c, o, &out, &errw)
	if err != nil {
		t.Fatalf("reprocess: %v\n%s", err, errw.String())
	}
	return res, out.String() + errw.String()
}

func (e *archiveEnv) count(t *testing.T, q string, args ...any) int {
	t.Helper()
	var n int
	if err := e.st.Pool().QueryRow(t.Context(), q, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	return n
}

func TestReprocessAfterPromptChangeRegeneratesTLDRsOnly(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 12)
	ctx := t.Context()
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{})
	if res.Worker.TLDRs != 12 || res.Worker.Embeddings != 12 {
		t.Fatalf("first run stored %d TL;DRs and %d embeddings, want 12 and 12", res.Worker.TLDRs, res.Worker.Embeddings)
	}
	before := e.fake.Stats()
	if before.ChatDelivered != 12 || before.EmbedInputsDelivered != 12 {
		t.Fatalf("first run: %d chat completions, %d vectors delivered; want 12 and 12", before.ChatDelivered, before.EmbedInputsDelivered)
	}
	// The TL;DRs were written by an older prompt.
	if _, err := e.st.Pool().Exec(ctx, "UPDATE tldrs SET prompt_version = 'tldr-v0'"); err != nil {
		t.Fatal(err)
	}
	res, _ = e.reprocess(t, ctx, e.c, reprocessOptions{})
	after := e.fake.Stats()
	if got := after.ChatDelivered - before.ChatDelivered; got != 12 || res.Worker.TLDRs != 12 {
		t.Errorf("after the prompt change: %d chat completions, %d TL;DRs stored; want 12 and 12", got, res.Worker.TLDRs)
	}
	if after.EmbedRequests != before.EmbedRequests || after.EmbedInputsDelivered != before.EmbedInputsDelivered {
		t.Errorf("after the prompt change: %d embedding requests, want none", after.EmbedRequests-before.EmbedRequests)
	}
	if n := e.count(t, "SELECT count(*) FROM tldrs WHERE prompt_version = $1", summarize.PromptVersion); n != 12 {
		t.Errorf("%d TL;DRs of the current prompt, want 12", n)
	}
	if n := e.count(t, "SELECT count(*) FROM tldrs WHERE prompt_version = 'tldr-v0'"); n != 12 {
		t.Errorf("%d TL;DRs of the old prompt kept, want 12 (versioned outputs)", n)
	}
}

// PAPERPIPE_TLDR_MAX_WORDS is part of the prompt and of the validation, so lowering it makes
// the TL;DRs written under the old limit stale: reprocess rewrites them as "tldr-v1-w12" and
// keeps the old ones beside them; at the default limit they are current again.
func TestReprocessAfterLoweringMaxWordsRewritesTheTLDRs(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 4)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{tldrOnly: true}) // the default, 30 words
	short := e.cfg(func(c *config) { c.MaxWords = 12 })
	res, out := e.reprocess(t, ctx, short, reprocessOptions{tldrOnly: true, dryRun: true})
	if res.Counts.TLDRs != 4 || !strings.Contains(out, "tldr-v1-w12") {
		t.Fatalf("dry run at 12 words counts %d stale TL;DRs, want 4:\n%s", res.Counts.TLDRs, out)
	}
	res, _ = e.reprocess(t, ctx, short, reprocessOptions{tldrOnly: true})
	if res.Worker.TLDRs != 4 {
		t.Errorf("reprocess at 12 words stored %d TL;DRs, want 4", res.Worker.TLDRs)
	}
	if n := e.count(t, "SELECT count(*) FROM tldrs WHERE prompt_version = 'tldr-v1-w12'"); n != 4 {
		t.Errorf("%d TL;DRs of the 12-word prompt, want 4", n)
	}
	if res, _ = e.reprocess(t, ctx, e.c, reprocessOptions{tldrOnly: true, dryRun: true}); res.Counts.TLDRs != 0 {
		t.Errorf("back at the default limit, %d TL;DRs stale, want 0 (the 30-word ones are kept)", res.Counts.TLDRs)
	}
}

// `related` on a paper embedded only into another space than the active one (workers moved to
// a new model before `activate`, README's blue/green section) names the command that fills the
// active space; run as printed, with the configuration of the workers that embedded it
// elsewhere, it embeds the paper into the active space and `related` answers. A bare
// `reprocess --embed-only` would fill the configured model's space, the other one, again.
func TestRelatedHintOnAPaperOfAnotherSpaceFillsTheActiveOne(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{all: true}) // the active space, text-embedding-3-small/64
	large := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	if _, err := e.st.UpsertPapers(ctx, []paper.Abstract{{ID: "arxiv:2402.00001", Title: "A newer routing study",
		Abstract: "We study routers for sparse experts once more. It lowers the loss again."}}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	e.reprocess(t, ctx, large, reprocessOptions{all: true, embedOnly: true})

	err := cmdRelated(ctx, e.cfg(nil), []string{"arxiv:2402.00001"})
	m := regexp.MustCompile("`paperpipe (reprocess [^`]*)`").FindStringSubmatch(fmt.Sprint(err))
	if m == nil {
		t.Fatalf("related: %v; want a hint naming a reprocess command", err)
	}
	if !strings.Contains(m[1], "--embed-model text-embedding-3-small --embed-dimensions 64") {
		t.Errorf("the hint's command %q does not name the active space's model and dimensions", m[1])
	}
	c := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	if err := cmdReprocess(ctx, c, strings.Fields(m[1])[1:]); err != nil {
		t.Fatalf("%s: %v", m[1], err)
	}
	if err := cmdRelated(ctx, e.cfg(nil), []string{"arxiv:2402.00001"}); err != nil {
		t.Errorf("after running the command the hint names, related still fails: %v", err)
	}
}

// A --tldr-only run writes no vector, so it creates no embedding space for the configured
// embedding model, and its messages name none.
func TestReprocessTLDROnlyCreatesNoSpace(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 5)
	ctx := t.Context()
	res, out := e.reprocess(t, ctx, e.c, reprocessOptions{tldrOnly: true})
	if res.Worker.TLDRs != 5 || res.Worker.Embeddings != 0 {
		t.Errorf("stored %d TL;DRs and %d embeddings, want 5 and 0", res.Worker.TLDRs, res.Worker.Embeddings)
	}
	if spaces, err := e.st.Spaces(ctx); err != nil || len(spaces) != 0 {
		t.Errorf("spaces after a --tldr-only run: %+v (%v), want none", spaces, err)
	}
	if strings.Contains(out, "space") {
		t.Errorf("a --tldr-only run spoke of a space:\n%s", out)
	}
	if res.workers == 0 {
		t.Error("a run with 5 papers to process started no worker")
	}
	if res, out = e.reprocess(t, ctx, e.c, reprocessOptions{tldrOnly: true}); !strings.Contains(out, "nothing to do: every selected paper has its TL;DR (gpt-4o-mini, "+summarize.PromptVersion+")\n") {
		t.Errorf("a second --tldr-only run said:\n%s", out)
	}
	// Nothing published and nothing queued: no worker, whose first empty pull alone took a second.
	if res.workers != 0 {
		t.Errorf("a run with nothing to do started %d workers", res.workers)
	}
}

func TestReprocessNewEmbeddingModelFillsInactiveSpaceUntilActivate(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 10)
	ctx := t.Context()
	first, _ := e.reprocess(t, ctx, e.c, reprocessOptions{})
	blue := first.Space
	stamp := func(space int64) string {
		var s string
		if err := e.st.Pool().QueryRow(ctx, `SELECT count(*)::text || '/' || coalesce(max(created_at)::text, '')
			FROM embeddings WHERE space_id = $1`, space).Scan(&s); err != nil {
			t.Fatal(err)
		}
		return s
	}
	blueBefore := stamp(blue.ID)
	chatBefore := e.fake.Stats().ChatDelivered

	green := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	res, out := e.reprocess(t, ctx, green, reprocessOptions{})
	if res.Space.ID == blue.ID || res.Space.Active {
		t.Fatalf("new model's space %+v: want a new, inactive space", res.Space)
	}
	if res.Worker.Embeddings != 10 || res.Worker.TLDRs != 0 || e.fake.Stats().ChatDelivered != chatBefore {
		t.Errorf("green fill stored %d embeddings and %d TL;DRs (%d chat calls); want 10 and 0 (0)",
			res.Worker.Embeddings, res.Worker.TLDRs, e.fake.Stats().ChatDelivered-chatBefore)
	}
	if !strings.Contains(out, "paperpipe activate") {
		t.Errorf("output does not say how to activate the new space:\n%s", out)
	}
	active, err := e.st.ActiveSpace(ctx)
	if err != nil || active.ID != blue.ID {
		t.Errorf("active space %d (%v), want the old one %d until activate", active.ID, err, blue.ID)
	}
	if got := stamp(blue.ID); got != blueBefore {
		t.Errorf("the active space's vectors changed: %s, was %s", got, blueBefore)
	}
	var info store.SpaceInfo
	spaces, err := e.st.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spaces {
		if s.ID == res.Space.ID {
			info = s
		}
	}
	if info.Embedded != 10 || info.Papers != 10 || info.IndexName == "" {
		t.Errorf("green space %+v: want 10/10 embedded and its index built", info)
	}
	var listing bytes.Buffer
	if err := listSpaces(ctx, e.st, false, &listing); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(listing.String(), "10/10 (100%)") || strings.Count(listing.String(), "*") != 1 {
		t.Errorf("spaces listing:\n%s", listing.String())
	}

	// A query vector of the green model cannot search the blue space.
	if _, err := e.st.Search(ctx, blue.ID, make([]float32, 32), 5); !errors.Is(err, paper.ErrSpaceMismatch) {
		t.Errorf("searching the 64-dimension space with a 32-dimension vector: %v, want ErrSpaceMismatch", err)
	}
	if _, err := activateSpace(ctx, e.st, "text-embedding-3-large"); err != nil {
		t.Fatal(err)
	}
	if active, _ = e.st.ActiveSpace(ctx); active.ID != res.Space.ID {
		t.Errorf("after activate the active space is %d, want %d", active.ID, res.Space.ID)
	}
	if err := e.st.DropSpace(ctx, res.Space.ID, store.DropOptions{}); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("dropping the active space: %v, want a refusal", err)
	}
	if err := e.st.DropSpace(ctx, blue.ID, store.DropOptions{}); err != nil {
		t.Errorf("dropping the old space: %v", err)
	}
}

// TestReprocessThatLostItsLockStopsSayingSo: a run's lock is a session advisory lock, held
// as long as its connection's session lives. A holder cut off from the database (a partition,
// a suspended VM) has that session ended by the server within a minute or so (TCP keepalives),
// and another run of the same output may take the lock and start; the first went on, when the
// network healed, as if it still held it, two runs buying the same papers side by side, and
// ended "done". Here the server ends the lock's session mid-run (as its keepalive would) and
// another run takes the lock: the run must stop, or at the latest not end as done, saying that
// it lost its lock.
func TestReprocessThatLostItsLockStopsSayingSo(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{ChatLatency: 50 * time.Millisecond})
	e.seed(t, 30)
	c := e.cfg(func(c *config) { c.Concurrency, c.BatchSize = 1, 1 })
	var schema string
	if err := e.st.Pool().QueryRow(t.Context(), "SELECT current_schema()").Scan(&schema); err != nil {
		t.Fatal(err)
	}
	key := "tldr:gpt-4o-mini:" + summarize.PromptVersion
	ended := make(chan error, 1)
	go func() {
		for e.fake.Stats().ChatDelivered < 3 {
			time.Sleep(5 * time.Millisecond)
		}
		// The session holding the run's lock, ended as the server ends one whose client is gone,
		// and the lock taken by another run's session as it goes (waiting for it in the same
		// round trip), held until the test ends.
		other, err := e.st.Pool().Acquire(context.Background())
		if err != nil {
			ended <- err
			return
		}
		t.Cleanup(func() { _ = other.Conn().Close(context.Background()); other.Release() })
		lockKey := fmt.Sprintf("hashtextextended('paperpipe.run.%s.%s', 0)", schema, key)
		_, err = other.Exec(context.Background(), `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
			WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1 AND ((l.classid::int8 << 32) | l.objid::int8) = `+lockKey+`;
			SELECT pg_advisory_lock(`+lockKey+`)`)
		ended <- err
	}()
	var errw bytes.Buffer
	_, err := runReprocess(t.Context(), c, reprocessOptions{tldrOnly: true}, &bytes.Buffer{}, &errw)
	if terr := <-ended; terr != nil {
		t.Fatalf("ending the lock's session: %v", terr)
	}
	if err == nil || !strings.Contains(err.Error(), "lost its lock") {
		t.Errorf("a run whose lock's session the server ended: %v; want it to stop saying it lost its lock\n%s", err, errw.String())
	}
}

// TestFailedReprocessSaysWhatItLeftOfItsSpace: a run into a new space that fails (the API
// refuses the key, the model or the quota; the queue is full) leaves the space it created
// partly filled or empty, without its index, and said only why it stopped: `paperpipe spaces`
// went on listing a space "(none)" with its coverage short, and nothing said that it was
// this run's, that the same command finishes it, or how to be rid of it. The error says it.
func TestFailedReprocessSaysWhatItLeftOfItsSpace(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{APIKey: "sk-test"})
	e.seed(t, 4)
	if _, err := runReprocess(t.Context(), e.c, reprocessOptions{}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Fatal(err) // the active space, 64 dimensions
	}
	e.fake.SetAPIKey("sk-rotated") // the key this run has is refused
	c := e.cfg(func(c *config) { c.EmbedDims = 32 })
	res, err := runReprocess(t.Context(), c, reprocessOptions{embedOnly: true}, &bytes.Buffer{}, &bytes.Buffer{})
	if err == nil {
		t.Fatal("a run whose key the API refuses succeeded")
	}
	if res.Space.ID == 0 {
		t.Fatalf("the failed run made no space: %v", err)
	}
	spaces, serr := e.st.Spaces(t.Context())
	if serr != nil {
		t.Fatal(serr)
	}
	var left *store.SpaceInfo
	for i := range spaces {
		if spaces[i].ID == res.Space.ID {
			left = &spaces[i]
		}
	}
	if left == nil || left.Active || left.IndexName != "" || left.Embedded != 0 {
		t.Fatalf("after the failed run space %d is %+v; want it inactive, empty and without its index", res.Space.ID, left)
	}
	msg := err.Error()
	for _, want := range []string{fmt.Sprintf("space %d (%s)", left.ID, left.Name()), "0 of 4 papers embedded", "no index",
		"run the same command again", fmt.Sprintf("paperpipe spaces drop %d", left.ID)} {
		if !strings.Contains(msg, want) {
			t.Errorf("the failed run's error does not say %q:\n%s", want, msg)
		}
	}
}

// TestReprocessStoppedAfterItsLastPaperSaysWhatIsDone: a Ctrl-C or SIGTERM that comes while
// the last papers' answers are on their way (a supervisor's stop, a Ctrl-C as the summary
// was due) lets the worker save them: every paper is done. The run said "interrupted after 6
// papers; run the same command again to resume", though nothing was left to resume. A
// TL;DR run is done; a run that fills a space says its papers are all processed and that only
// the space's index is left, which the same command builds.
func TestReprocessStoppedAfterItsLastPaperSaysWhatIsDone(t *testing.T) {
	t.Parallel()
	for _, tldrOnly := range []bool{true, false} {
		t.Run(fmt.Sprintf("tldrOnly=%v", tldrOnly), func(t *testing.T) {
			t.Parallel()
			e := newArchiveEnv(t, openaitest.Config{})
			e.seed(t, 6)
			c := e.cfg(func(c *config) { c.Concurrency, c.BatchSize = 2, 2 })
			// Stopped once the API has answered every paper's last call: its results are on
			// their way to the worker, to be saved by its drain.
			ctx, cancel := context.WithCancel(t.Context())
			watched := make(chan struct{})
			go func() {
				defer close(watched)
				for ctx.Err() == nil {
					st := e.fake.Stats()
					if st.ChatDelivered >= 6 && (tldrOnly || st.EmbedInputsDelivered >= 6) {
						break
					}
					time.Sleep(time.Millisecond)
				}
				cancel()
			}()
			var errw bytes.Buffer
			_, err := runReprocess(ctx, c, reprocessOptions{tldrOnly: tldrOnly}, &bytes.Buffer{}, &errw)
			<-watched
			if n := e.count(t, "SELECT count(*) FROM tldrs"); n != 6 {
				t.Fatalf("%d TL;DRs stored, want the 6 the API answered (the drain saves them)\n%s", n, errw.String())
			}
			switch {
			case tldrOnly && err != nil:
				t.Errorf("a TL;DR run stopped after its last paper was saved: %v; want it done\n%s", err, errw.String())
			case tldrOnly && !strings.Contains(errw.String(), "reprocess: 6 papers processed"):
				t.Errorf("a TL;DR run stopped after its last paper was saved gave no summary:\n%s", errw.String())
			case !tldrOnly && (!errors.Is(err, context.Canceled) || !strings.Contains(err.Error(), "all 6 papers are processed") ||
				!strings.Contains(err.Error(), "index")):
				t.Errorf("a run filling a space stopped after its last paper was saved: %v; want it to say every paper is processed and the index is left\n%s", err, errw.String())
			}
		})
	}
}

func TestReprocessInterruptedResumesWithoutRedoingPapers(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{ChatLatency: 40 * time.Millisecond})
	e.seed(t, 16)
	c := e.cfg(func(c *config) { c.Concurrency, c.BatchSize = 2, 2 })
	js := e.jetStream(t)

	// Interrupt the run once 4 TL;DRs are paid for; meanwhile watch the backlog that
	// `paperpipe status` shows (pipeline.Backlogs lists every consumer).
	ctx, cancel := context.WithCancel(t.Context())
	var maxBacklog uint64
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		for ctx.Err() == nil && e.fake.Stats().ChatDelivered < 4 {
			if bls, err := pipeline.Backlogs(ctx, js); err == nil {
				for _, b := range bls {
					if strings.HasPrefix(b.Consumer, "reprocess-") {
						maxBacklog = max(maxBacklog, b.Pending+uint64(b.AckPending))
					}
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
		cancel()
	}()
	// Pages of 4 papers: interrupted, the worker finishes the papers it holds.
	res, err := runReprocess(ctx, c, reprocessOptions{pageSize: 4}, &bytes.Buffer{}, &bytes.Buffer{})
	<-watched
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	if maxBacklog == 0 {
		t.Errorf("the re-processing consumer's backlog never showed in pipeline.Backlogs")
	}
	done := e.count(t, "SELECT count(*) FROM tldrs")
	if done == 0 || done >= 12 {
		t.Fatalf("%d TL;DRs after the interruption, want some but not all", done)
	}

	// A process killed right after publishing leaves its messages queued: the next run
	// processes them first and does not queue their papers again.
	target := pipeline.NewReprocessTarget(paper.Work{Model: "gpt-4o-mini", PromptVersion: summarize.PromptVersion, SpaceID: res.Space.ID}, res.Space.Name())
	pub := pipeline.NewRunPublisher(js, target.Subject, "killed-run", 0)
	left := 0
	if err := e.st.StalePapers(t.Context(), store.Selection{Work: paper.Work{Model: "gpt-4o-mini", PromptVersion: summarize.PromptVersion}}, 3,
		func(page []store.StalePaper) error {
			for _, p := range page[:1] { // one paper per page: some queued, some not
				left++
				if err := pub.Publish(t.Context(), p.Abstract); err != nil {
					return err
				}
			}
			return nil
		}); err != nil {
		t.Fatal(err)
	}
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}

	var errw bytes.Buffer
	res, err = runReprocess(t.Context(), c, reprocessOptions{pageSize: 4}, &bytes.Buffer{}, &errw)
	if err != nil {
		t.Fatalf("resumed run: %v\n%s", err, errw.String())
	}
	if !strings.Contains(errw.String(), "resuming: "+plural(left, "message", "messages")) {
		t.Errorf("resumed run does not report the %d queued messages:\n%s", left, errw.String())
	}
	if n := e.count(t, "SELECT count(*) FROM tldrs"); n != 16 {
		t.Errorf("%d TL;DRs after the resumed run, want 16", n)
	}
	s := e.fake.Stats()
	if s.ChatDelivered != 16 || s.EmbedInputsDelivered != 16 {
		t.Errorf("delivered %d chat completions and %d vectors for 16 papers: a paper was done twice", s.ChatDelivered, s.EmbedInputsDelivered)
	}
	if res.Worker.TLDRs != int64(16-done) {
		t.Errorf("resumed run stored %d TL;DRs, want the %d left", res.Worker.TLDRs, 16-done)
	}
}

func TestDryRunEstimateMatchesTheRun(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 10)
	ctx := t.Context()
	dry, out := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true})
	est := dry.Estimate
	if est.Papers != 10 || est.TLDRs != 10 || est.ChatRequests != 10 || est.Embeddings != 10 || est.EmbedRequests != 1 {
		t.Errorf("estimate %+v: want 10 papers, 10 chat requests, 10 embeddings in 1 request", est)
	}
	if !est.CostKnown || est.CostUSD <= 0 || est.ChatInTokens <= 0 || est.EmbedTokens <= 0 {
		t.Errorf("estimate %+v: want tokens and a known cost", est)
	}
	for _, want := range []string{"papers", "chat requests", "embedding requests", "estimated cost", "dry run"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	if s := e.fake.Stats(); s.ChatRequests != 0 || s.EmbedRequests != 0 {
		t.Fatalf("dry run made API calls: %+v", s)
	}
	if n := e.count(t, "SELECT count(*) FROM embedding_spaces"); n != 0 {
		t.Errorf("the dry run created %d embedding spaces; it should change nothing", n)
	}
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{})
	s := e.fake.Stats()
	if res.Worker.Acked != est.Papers || s.ChatRequests != est.ChatRequests || s.EmbedInputsDelivered != est.Embeddings {
		t.Errorf("run: %d papers, %d chat requests, %d vectors; estimate said %d, %d, %d",
			res.Worker.Acked, s.ChatRequests, s.EmbedInputsDelivered, est.Papers, est.ChatRequests, est.Embeddings)
	}
	// Requests are batched by what is in flight: at least the estimate's count.
	if s.EmbedRequests < est.EmbedRequests {
		t.Errorf("%d embedding requests, fewer than the estimate's minimum %d", s.EmbedRequests, est.EmbedRequests)
	}
	// The real prompt is within the estimate (a token per 3 ASCII bytes stays above real counts).
	if s.PromptTokens > est.ChatInTokens+est.EmbedTokens {
		t.Errorf("%d prompt tokens used, above the estimate %d", s.PromptTokens, est.ChatInTokens+est.EmbedTokens)
	}
	again, _ := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true})
	if again.Estimate.Papers != 0 || again.Estimate.CostUSD != 0 {
		t.Errorf("dry run after the run: %+v, want nothing left", again.Estimate)
	}
}

// TestReprocessBatchAPISaysAJobThatFailedBeforeItsBatchWasNotSubmitted: with a temporary
// directory that cannot be written (a read-only /tmp), every job fails at its input file,
// before anything is uploaded; the summary said "2 batches submitted (12 requests)" all the
// same. It says no batch was submitted, and the error what became of the jobs; the next run,
// with a writable directory, submits them. Not parallel: it sets TMPDIR.
func TestReprocessBatchAPISaysAJobThatFailedBeforeItsBatchWasNotSubmitted(t *testing.T) {
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	t.Setenv("TMPDIR", filepath.Join(t.TempDir(), "gone"))
	var out, errw bytes.Buffer
	_, err := runReprocess(ctx, e.c, reprocessOptions{batchAPI: true, wait: true, poll: 5 * time.Millisecond}, &out, &errw)
	if err == nil || !strings.Contains(err.Error(), "TMPDIR names a writable one") || !strings.Contains(err.Error(), "stay open") {
		t.Fatalf("reprocess: %v; want the jobs' failure at their input file, saying they stay open", err)
	}
	if said := errw.String(); !strings.Contains(said, "0 batches submitted (0 requests), 2 jobs not submitted (no batch recorded") {
		t.Errorf("the summary does not say no batch was submitted:\n%s", said)
	}
	t.Setenv("TMPDIR", t.TempDir())
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, wait: true, poll: 5 * time.Millisecond})
	if res.Batch == nil || res.Batch.Resumed != 2 || res.Batch.TLDRs != 6 || res.Batch.Vectors != 6 {
		t.Errorf("rerun's report %+v, want the 2 jobs resumed, 6 TL;DRs and 6 vectors stored", res.Batch)
	}
}

func TestReprocessBatchAPIStoresResultsAtBatchKinds(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	dry, _ := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true, batchAPI: true})
	full, _ := e.reprocess(t, ctx, e.c, reprocessOptions{dryRun: true})
	if dry.Estimate.EmbedRequests != 6 || dry.Estimate.CostUSD*2 < full.Estimate.CostUSD*0.999 || dry.Estimate.CostUSD*2 > full.Estimate.CostUSD*1.001 {
		t.Errorf("Batch API estimate %+v: want one request per paper at half of %v", dry.Estimate, full.Estimate.CostUSD)
	}
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{batchAPI: true, wait: true, poll: 5 * time.Millisecond})
	if res.Batch == nil || res.Batch.TLDRs != 6 || res.Batch.Vectors != 6 || res.Batch.Submitted != 2 {
		t.Fatalf("batch report %+v, want 2 batches storing 6 TL;DRs and 6 vectors", res.Batch)
	}
	usage, err := e.st.Usage(ctx, time.Now().Add(-24*time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	kinds := map[string]int{}
	for _, u := range usage {
		kinds[u.Kind] += u.Requests
	}
	if kinds[batch.KindChatBatch] != 6 || kinds[batch.KindEmbeddingBatch] != 6 || kinds[paper.KindChat] != 0 {
		t.Errorf("usage by kind %v, want 6 chat-batch and 6 embedding-batch requests only", kinds)
	}
	// Offline models cannot go through the Batch API.
	off := e.cfg(func(c *config) { c.ChatModel = offline })
	if _, err := runReprocess(ctx, off, reprocessOptions{batchAPI: true, tldrOnly: true}, &bytes.Buffer{}, &bytes.Buffer{}); !errors.Is(err, errUsage) {
		t.Errorf("--batch-api with the offline TL;DR model: %v, want a usage error", err)
	}
}

// --batch-api with an offline model is refused before anything is counted, a dry run too, and
// the advice leads somewhere: --embed-only or --tldr-only only when the other model is an
// OpenAI one, and with both offline (the default without OPENAI_API_KEY) the key or a plain
// reprocess. It printed "reprocess: 0 papers to process" and then sent the user from
// --embed-only to --tldr-only and back, each refused; a dry run printed a plan and a cost.
func TestReprocessBatchAPIWithOfflineModelsSaysWhatWorks(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	for _, c := range []struct {
		name              string
		chatOff, embedOff bool
		o                 reprocessOptions
		want, not         []string
	}{
		{"both offline", true, true, reprocessOptions{}, []string{"needs OpenAI models and OPENAI_API_KEY", "the TL;DR and embedding models are the offline ones", "plain `paperpipe reprocess`"}, []string{"--embed-only", "--tldr-only"}},
		{"both offline, a dry run", true, true, reprocessOptions{dryRun: true}, []string{"needs OpenAI models and OPENAI_API_KEY"}, nil},
		{"both offline, --embed-only", true, true, reprocessOptions{embedOnly: true}, []string{"the embedding model is the offline one", "plain `paperpipe reprocess --embed-only`"}, []string{"add --tldr-only"}},
		{"both offline, --tldr-only", true, true, reprocessOptions{tldrOnly: true}, []string{"the TL;DR model is the offline one", "plain `paperpipe reprocess --tldr-only`"}, []string{"add --embed-only"}},
		{"offline TL;DRs", true, false, reprocessOptions{}, []string{"the TL;DR model is the offline one", "add --embed-only"}, []string{"add --tldr-only"}},
		{"offline TL;DRs, a dry run", true, false, reprocessOptions{dryRun: true}, []string{"add --embed-only"}, nil},
		{"offline TL;DRs, --tldr-only", true, false, reprocessOptions{tldrOnly: true}, []string{"plain `paperpipe reprocess --tldr-only`"}, []string{"add --embed-only"}},
		{"offline vectors", false, true, reprocessOptions{}, []string{"the embedding model is the offline one", "add --tldr-only"}, []string{"add --embed-only"}},
	} {
		cfg := e.cfg(func(cf *config) {
			if c.chatOff {
				cf.ChatModel = offline
			}
			if c.embedOff {
				cf.EmbedModel = offline
			}
		})
		c.o.batchAPI = true
		var out, errw bytes.Buffer
		_, err := runReprocess(ctx, cfg, c.o, &out, &errw)
		if !errors.Is(err, errUsage) {
			t.Errorf("%s: %v, want a usage error", c.name, err)
			continue
		}
		if out.Len()+errw.Len() > 0 {
			t.Errorf("%s: printed %q%q before refusing", c.name, out.String(), errw.String())
		}
		for _, w := range c.want {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; want it to say %q", c.name, err, w)
			}
		}
		for _, w := range c.not {
			if strings.Contains(err.Error(), w) {
				t.Errorf("%s: %v; it says %q, which is refused too", c.name, err, w)
			}
		}
	}
	// With no model set and no key (the default: the offline models), and with the offline
	// summarizer named by its own name, the refusal is the same: the check ran before the
	// defaults were filled in (and recorded a batch job that could never run), and took that
	// name for an OpenAI model.
	for name, set := range map[string]func(*config){
		"no model set":                       func(cf *config) { cf.ChatModel, cf.EmbedModel, cf.APIKey, cf.BaseURL = "", "", "", "" },
		"the offline summarizer by its name": func(cf *config) { cf.ChatModel, cf.EmbedModel = summarize.OfflineModel, offline },
	} {
		for _, dry := range []bool{false, true} {
			var out, errw bytes.Buffer
			_, err := runReprocess(ctx, e.cfg(set), reprocessOptions{batchAPI: true, dryRun: dry}, &out, &errw)
			if !errors.Is(err, errUsage) || !strings.Contains(err.Error(), "needs OpenAI models and OPENAI_API_KEY") {
				t.Errorf("%s (dry run %v): %v, printed %q%q; want the usage error of the offline models", name, dry, err, out.String(), errw.String())
			}
		}
	}
	// With OpenAI's models for the work asked, --batch-api is no error here.
	tldrs := e.cfg(func(cf *config) { cf.EmbedModel = offline })
	if _, err := runReprocess(ctx, tldrs, reprocessOptions{batchAPI: true, tldrOnly: true, dryRun: true}, &bytes.Buffer{}, &bytes.Buffer{}); err != nil {
		t.Errorf("--batch-api --tldr-only --dry-run with an OpenAI TL;DR model and the offline embedder: %v", err)
	}
}

// The Batch API's embedding requests send "dimensions" only to models that take it, as the
// workers' client does: ada-002 refuses the field (OpenAI's 400), and every line failed.
func TestReprocessBatchAPISendsDimensionsOnlyToModelsThatTakeThem(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ada := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-ada-002", 1536 })
	res, _ := e.reprocess(t, t.Context(), ada, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond})
	if res.Batch == nil || res.Batch.Vectors != 3 || res.Batch.Rejected != 0 {
		t.Errorf("batch report %+v, want 3 vectors of ada-002 stored and none rejected", res.Batch)
	}
}

// A --wait=false run leaves its batches running: the new space holds no vector yet, so it is
// neither indexed nor called filled; the run that collects the batches stores the vectors, builds
// the index and says how to activate the space.
func TestReprocessBatchAPIWithoutWaitLeavesTheSpaceToTheCollectingRun(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	e.reprocess(t, ctx, e.c, reprocessOptions{}) // the active space
	green := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	greenSpace := func() store.SpaceInfo {
		t.Helper()
		spaces, err := e.st.Spaces(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range spaces {
			if s.Model == "text-embedding-3-large" {
				return s
			}
		}
		t.Fatalf("no space of text-embedding-3-large: %+v", spaces)
		return store.SpaceInfo{}
	}

	res, out := e.reprocess(t, ctx, green, reprocessOptions{batchAPI: true, embedOnly: true, wait: false})
	if res.Batch == nil || res.Batch.Submitted != 1 {
		t.Fatalf("batch report %+v, want 1 batch submitted", res.Batch)
	}
	if sp := greenSpace(); sp.Embedded != 0 || sp.IndexName != "" {
		t.Errorf("after submitting: space %+v, want no vectors and no index yet", sp)
	}
	if strings.Contains(out, "is filled") || !strings.Contains(out, "is not filled yet: 1 embedding batch is still running") ||
		!strings.Contains(out, "without --wait=false") {
		t.Errorf("after submitting, reprocess said:\n%s", out)
	}

	res, out = e.reprocess(t, ctx, green, reprocessOptions{batchAPI: true, embedOnly: true, wait: true, poll: 5 * time.Millisecond})
	if res.Batch == nil || res.Batch.Resumed != 1 || res.Batch.Vectors != 6 {
		t.Fatalf("collecting: batch report %+v, want the 1 batch resumed and 6 vectors stored", res.Batch)
	}
	if sp := greenSpace(); sp.Embedded != 6 || sp.IndexName == "" {
		t.Errorf("after collecting: space %+v, want 6 vectors and its index", sp)
	}
	if !strings.Contains(out, "is filled but not active") || !strings.Contains(out, "paperpipe activate") {
		t.Errorf("after collecting, reprocess said:\n%s", out)
	}
}

func TestReingestFromSecondSourceCreatesNothingAndCostsNothing(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	process := func(file string) {
		t.Helper()
		if err := cmdIngest(ctx, e.c, []string{filepath.Join("testdata", file)}); err != nil {
			t.Fatalf("ingest %s: %v", file, err)
		}
		if err := cmdWorker(ctx, e.cfg(nil), []string{"--exit-when-idle"}); err != nil {
			t.Fatalf("worker: %v", err)
		}
	}
	process("archive-oai.jsonl")
	papers := e.count(t, "SELECT count(*) FROM papers")
	done := e.count(t, "SELECT count(*) FROM tldrs") + e.count(t, "SELECT count(*) FROM embeddings")
	before := e.fake.Stats()
	if papers != 3 || done != 6 {
		t.Fatalf("after the OAI snapshot: %d papers, %d outputs; want 3 and 6", papers, done)
	}
	process("archive.jsonl")
	after := e.fake.Stats()
	if n := e.count(t, "SELECT count(*) FROM papers"); n != papers {
		t.Errorf("%d papers after the second source, want %d", n, papers)
	}
	if after.ChatRequests != before.ChatRequests || after.EmbedRequests != before.EmbedRequests {
		t.Errorf("the second source made %d chat and %d embedding requests, want none",
			after.ChatRequests-before.ChatRequests, after.EmbedRequests-before.EmbedRequests)
	}
	// The second source's metadata merges into the paper (URL from the JSONL).
	rec, err := e.st.Paper(ctx, "arxiv:2401.01234")
	if err != nil || rec.URL == "" || len(rec.Authors) == 0 {
		t.Errorf("merged paper %+v (%v): want the OAI authors and the JSONL url", rec.Abstract, err)
	}
}

func TestImportEmbeddingsLoadsGoodLinesAndReportsBadOnes(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	active, err := e.st.EnsureSpace(ctx, paper.Space{Model: "other", Dimensions: 3, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "vectors.jsonl")
	lines := []string{
		`{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"`, // truncated
		`{"id":"arxiv:2401.00002","embedding":[0,0,1,0],"model":"imported","dimensions":4}`,
		`{"id":"9999.99999","embedding":[0,0,0,1],"model":"imported"}`, // unknown paper
		`{"id":"2401.00001","embedding":[0,1,0],"model":"imported"}`,   // another space
		``,
		`{"id":"2401.00001","model":"imported"}`, // no vector
		`{"id":"2401.00001","embedding":[0,0,0,0],"model":"imported"}`,      // the zero vector
		`{"id":"2401.0000\u0000","embedding":[1,1,0,0],"model":"imported"}`, // a NUL in the id
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	res, err := importEmbeddings(ctx, e.st, file, 2, &errw)
	if err != nil {
		t.Fatal(err)
	}
	// The store refuses a whole chunk for one zero vector or NUL byte: those lines are refused
	// on their own, and the rest goes on.
	if res.Loaded != 2 || res.Bad != 5 || len(res.Unknown) != 1 || res.Unknown[0] != "arxiv:9999.99999" {
		t.Errorf("import %+v, want 2 loaded, 5 bad lines, 1 unknown paper", res)
	}
	// Each paper is named by its canonical id, as ingest stored it (and as the unknown one is),
	// not as the line wrote it; an id that is not one is quoted as written.
	for _, want := range []string{file + ":2:", file + ":4: unknown paper arxiv:9999.99999", file + ":5: arxiv:2401.00001: space", file + ":7: arxiv:2401.00001: no embedding",
		file + `:8: arxiv:2401.00001: the zero vector`, file + ":9: " + `"2401.0000\x00": the id contains a NUL byte`} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("messages lack %q:\n%s", want, errw.String())
		}
	}
	if res.Space.Model != "imported" || res.Space.Dimensions != 4 || res.Space.Active {
		t.Errorf("space %+v: want a new, inactive imported/4 space", res.Space)
	}
	spaces, err := e.st.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spaces {
		switch s.ID {
		case res.Space.ID:
			if s.Embedded != 2 || s.IndexName == "" {
				t.Errorf("imported space %+v: want 2 vectors and its index built after the load", s)
			}
		case active.ID:
			if !s.Active {
				t.Errorf("the active space was deactivated by the import")
			}
		}
	}
	if s := e.fake.Stats(); s.EmbedRequests != 0 || s.ChatRequests != 0 {
		t.Errorf("import made API calls: %+v", s)
	}
	// The bulk fill ends with VACUUM (ANALYZE), so autovacuum does not start on it later.
	var vacuumed bool
	if err := e.st.Pool().QueryRow(ctx, `SELECT last_vacuum IS NOT NULL AND last_analyze IS NOT NULL
		FROM pg_stat_user_tables WHERE relid = 'embeddings'::regclass`).Scan(&vacuumed); err != nil || !vacuumed {
		t.Errorf("embeddings not vacuumed and analyzed after the import (%v)", err)
	}
}

// TestImportEmbeddingsRerunBuildsTheIndexAnInterruptedRunDidNot: an import stopped after its
// first chunks leaves the space it created (and activated, when none was) without its index;
// running it again must build it, or the active space's queries scan every vector for good.
func TestImportEmbeddingsRerunBuildsTheIndexAnInterruptedRunDidNot(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	// What the interrupted import did: the space for the load, and its first chunk.
	sp, created, err := e.st.EnsureSpaceForLoad(ctx, paper.Space{Model: "imported", Dimensions: 4, Template: "title-abstract-v1"})
	if err != nil || !created {
		t.Fatal(created, err)
	}
	if _, err := e.st.LoadEmbeddings(ctx, sp.ID, []paper.Embedding{{PaperID: "arxiv:2401.00000", Vector: []float32{1, 0, 0, 0}}}); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "vectors.jsonl")
	data := `{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}
{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}
{"id":"2401.00002","embedding":[0,0,1,0],"model":"imported"}
`
	if err := os.WriteFile(file, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if _, err := importEmbeddings(ctx, e.st, file, 5000, &errw); err != nil {
		t.Fatal(err)
	}
	spaces, err := e.st.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range spaces {
		if s.ID == sp.ID && (s.IndexName == "" || s.Embedded != 3) {
			t.Errorf("after the rerun, space %+v: want 3 vectors and its index", s)
		}
	}
}

// An import interrupted (Ctrl-C, SIGTERM) after its first chunk said only "…: context
// canceled", though it leaves the space it created filled in part and without its index,
// which the same command run again builds: the error says so.
func TestImportEmbeddingsInterruptedSaysWhatIsKeptAndHowToFinish(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	fifo := filepath.Join(t.TempDir(), "vectors.jsonl")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	more := make(chan struct{})
	go func() {
		w, err := os.OpenFile(fifo, os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return
		}
		defer w.Close()
		fmt.Fprintln(w, `{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}`)
		fmt.Fprintln(w, `{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}`)
		<-more
		fmt.Fprintln(w, `{"id":"2401.00002","embedding":[0,0,1,0],"model":"imported"}`)
	}()
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	type result struct {
		res importResult
		err error
	}
	done := make(chan result, 1)
	var errw bytes.Buffer
	go func() {
		res, err := importEmbeddings(ctx, e.st, fifo, 2, &errw)
		done <- result{res, err}
	}()
	// The first chunk (two lines) is loaded; then the signal comes, while the import waits for
	// the next line.
	loaded := "SELECT count(*) FROM embeddings JOIN embedding_spaces s ON s.id = space_id WHERE s.model = 'imported'"
	for deadline := time.Now().Add(30 * time.Second); e.count(t, loaded) < 2; time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the first chunk was not loaded")
		}
	}
	cancel()
	close(more)
	r := <-done
	if r.err == nil || !errors.Is(r.err, context.Canceled) {
		t.Fatalf("interrupted import: %v, want it to end canceled", r.err)
	}
	for _, want := range []string{"interrupted; the 2 vectors loaded into space", "are kept: run the same command again",
		"build the space's index"} {
		if !strings.Contains(r.err.Error(), want) {
			t.Errorf("interrupted import: %q, want it to say %q", r.err, want)
		}
	}
}

// TestReprocessFillsABinaryIndexedSpace: with PAPERPIPE_VECTOR_INDEX=hnsw-binary a new space
// gets the binary-code index after its fill, `spaces` says so, and related-paper queries in it
// answer from it.
func TestReprocessFillsABinaryIndexedSpace(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 10)
	ctx := t.Context()
	bin := e.cfg(func(c *config) {
		c.EmbedModel, c.EmbedDims, c.VectorIndex = "text-embedding-3-large", 32, "hnsw-binary"
	})
	res, _ := e.reprocess(t, ctx, bin, reprocessOptions{})
	spaces, err := e.st.Spaces(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(spaces) != 1 || spaces[0].ID != res.Space.ID || spaces[0].Index != store.IndexHNSWBinary ||
		spaces[0].IndexName == "" || spaces[0].Embedded != 10 {
		t.Fatalf("spaces = %+v, want one filled hnsw-binary space with its index", spaces)
	}
	var listing bytes.Buffer
	if err := listSpaces(ctx, e.st, false, &listing); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(listing.String(), "hnsw-binary "+spaces[0].IndexName) {
		t.Errorf("spaces listing does not show the index kind:\n%s", listing.String())
	}
	hits, err := e.st.Related(ctx, res.Space.ID, "arxiv:2401.00003", 5)
	if err != nil || len(hits) != 5 {
		t.Errorf("Related in the binary space = %d hits, %v; want 5", len(hits), err)
	}

	// Ten papers, 160 candidates re-ranked (the binary kind's default): every exact neighbour is found.
	var check bytes.Buffer
	if err := checkSpace(ctx, e.st, nil, 5, 3, false, &check); err != nil {
		t.Fatalf("spaces check: %v", err)
	}
	if !strings.Contains(check.String(), "hnsw-binary index, ef_search 160: recall@3 1.000 over 5 papers") {
		t.Errorf("spaces check:\n%s", check.String())
	}

	// And back to an index on the vectors, in place.
	var reindexed bytes.Buffer
	if err := reindexSpace(ctx, e.st, strconv.FormatInt(res.Space.ID, 10), "hnsw", &reindexed); err != nil {
		t.Fatalf("spaces reindex: %v", err)
	}
	if !strings.Contains(reindexed.String(), "hnsw index built") || !strings.Contains(reindexed.String(), "replacing its hnsw-binary index") {
		t.Errorf("spaces reindex said:\n%s", reindexed.String())
	}
	if spaces, err := e.st.Spaces(ctx); err != nil || spaces[0].Index != store.IndexHNSW || spaces[0].IndexName == "" {
		t.Errorf("after reindex: %+v, %v", spaces, err)
	}
	if err := reindexSpace(ctx, e.st, strconv.FormatInt(res.Space.ID, 10), "ivfflat", io.Discard); err == nil {
		t.Error("spaces reindex --index ivfflat succeeded")
	}

	bad := e.cfg(func(c *config) { c.VectorIndex = "ivfflat" })
	if _, err := openStore(ctx, bad, slog.New(slog.DiscardHandler)); err == nil || !strings.Contains(err.Error(), "PAPERPIPE_VECTOR_INDEX") {
		t.Errorf("openStore with PAPERPIPE_VECTOR_INDEX=ivfflat = %v, want an error naming the variable", err)
	}
}

// TestReindexOfASpaceWithoutItsIndexSaysItBuiltOne: a space whose index is missing (its data
// restored alone into a migrated database, a fill interrupted before its build) gets it from
// `spaces reindex` with the space's own kind; that replaced nothing, and running processes use
// it without a restart (they query the kind they know), so neither is said.
func TestReindexOfASpaceWithoutItsIndexSaysItBuiltOne(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	sp, _, err := e.st.EnsureSpaceForLoad(ctx, paper.Space{Model: "text-embedding-3-small", Dimensions: 8, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	info, err := e.st.FindSpace(ctx, strconv.FormatInt(sp.ID, 10))
	if err != nil || info.IndexName != "" {
		t.Fatalf("the space made for a bulk load: %+v, %v; want it without an index", info, err)
	}
	var out bytes.Buffer
	if err := reindexSpace(ctx, e.st, strconv.FormatInt(sp.ID, 10), string(info.Index), &out); err != nil {
		t.Fatalf("spaces reindex: %v", err)
	}
	if got := out.String(); !strings.Contains(got, "index built") || !strings.Contains(got, "where it had none") ||
		strings.Contains(got, "replacing") || strings.Contains(got, "restart") {
		t.Errorf("spaces reindex said:\n%s", got)
	}
	if info, err := e.st.FindSpace(ctx, strconv.FormatInt(sp.ID, 10)); err != nil || info.IndexName == "" {
		t.Errorf("after reindex: %+v, %v; want its index", info, err)
	}
}

// TestResumedReprocessNeverRevertsANewerText: a run interrupted after publishing leaves its
// messages queued with the texts it read then; a newer version of a paper ingested meanwhile
// must survive the rerun that processes them, and no TL;DR of the old text is bought.
func TestResumedReprocessNeverRevertsANewerText(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{})
	// A prompt change makes every TL;DR stale; a run publishes them and is killed at once.
	if _, err := e.st.Pool().Exec(ctx, "UPDATE tldrs SET prompt_version = 'tldr-v0'"); err != nil {
		t.Fatal(err)
	}
	js := e.jetStream(t)
	work := paper.Work{Model: e.c.ChatModel, PromptVersion: summarize.PromptVersion, SpaceID: res.Space.ID}
	target := pipeline.NewReprocessTarget(work, res.Space.Name())
	if err := pipeline.EnsureReprocessConsumer(ctx, js, pipeline.TopologyConfig{AckWait: e.c.AckWait, MaxDeliver: e.c.MaxDeliver}, target, "killed run"); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewRunPublisher(js, target.Subject, "killed-run", 0)
	if _, err := reprocess.PublishStale(ctx, e.st, store.Selection{Work: paper.Work{Model: work.Model, PromptVersion: work.PromptVersion}}, pub, 0, nil, func(id string, err error) { t.Errorf("%s: %v", id, err) }); err != nil {
		t.Fatal(err)
	}
	// Meanwhile the feed brings version 2 of one paper (what ingest and a worker store).
	old, err := e.st.Paper(ctx, "arxiv:2401.00001")
	if err != nil {
		t.Fatal(err)
	}
	v2 := old.Abstract
	v2.Title, v2.Abstract = old.Title+" (v2)", "Version two: "+old.Abstract.Abstract
	if _, err := e.st.UpsertPapers(ctx, []paper.Abstract{v2}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	chatBefore := e.fake.Stats().ChatDelivered
	var errw bytes.Buffer
	if _, err := runReprocess(ctx, e.c, reprocessOptions{}, io.Discard, &errw); err != nil {
		t.Fatalf("%v\n%s", err, errw.String())
	}
	rec, err := e.st.Paper(ctx, v2.ID)
	if err != nil {
		t.Fatal(err)
	}
	if rec.Title != v2.Title || rec.ContentHash != v2.ContentHash() {
		t.Errorf("after the resumed run the paper is %q (hash %.8s), want version 2 %q: the queued message put the old text back",
			rec.Title, rec.ContentHash, v2.Title)
	}
	// Three papers, each TL;DR'd once, of its current text.
	if got := e.fake.Stats().ChatDelivered - chatBefore; got != 3 {
		t.Errorf("%d TL;DRs bought by the resumed run, want 3 (one per paper, of its current text)\n%s", got, errw.String())
	}
	if rec.TLDR == nil || rec.TLDR.ContentHash != v2.ContentHash() {
		t.Errorf("the paper's TL;DR is %+v, want one of version 2", rec.TLDR)
	}
}

// TestReprocessThatDeadLettersPapersFails: like ingest and import-embeddings, a run that could
// not process some papers exits non-zero and says where they are; the space is still indexed.
func TestReprocessThatDeadLettersPapersFails(t *testing.T) {
	t.Parallel()
	// An API that takes 5 tokens a request refuses every input (400, max_tokens_per_request),
	// whatever its length: each paper is dead-lettered. (One whose context holds 5 tokens has
	// each input cut to fit, and stores it.)
	e := newArchiveEnv(t, openaitest.Config{MaxRequestTokens: 5})
	e.seed(t, 4)
	var errw bytes.Buffer
	res, err := runReprocess(t.Context(), e.c, reprocessOptions{embedOnly: true}, io.Discard, &errw)
	if !errors.Is(err, errDeadLettered) || res.Worker.Dead != 4 || !strings.Contains(err.Error(), "paperpipe dlq list") {
		t.Fatalf("runReprocess = %v with %d dead-lettered; want an error naming them and `paperpipe dlq list`\n%s", err, res.Worker.Dead, errw.String())
	}
}

// TestReprocessRunsThatShareAnOutputDoNotRunSideBySide: a full run and an --embed-only run of
// one space are different targets (consumers, subjects) but both would buy its vectors; each
// output a run writes is locked, so the second refuses, while a run sharing no output goes on.
func TestReprocessRunsThatShareAnOutputDoNotRunSideBySide(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{embedOnly: true}) // makes and fills the space
	embedBefore := e.fake.Stats().EmbedRequests
	// Another process is running a full reprocess of this space: it holds the space's lock,
	// the one `spaces drop` checks (store.SpaceRunKey).
	unlock, err := e.st.LockRun(ctx, store.SpaceRunKey(res.Space.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if _, err := runReprocess(ctx, e.c, reprocessOptions{embedOnly: true}, io.Discard, io.Discard); !errors.Is(err, store.ErrRunInProgress) {
		t.Errorf("--embed-only while another run fills the space: %v, want ErrRunInProgress", err)
	}
	if _, err := runReprocess(ctx, e.c, reprocessOptions{tldrOnly: true}, io.Discard, io.Discard); err != nil {
		t.Errorf("--tldr-only (no output shared) while another run fills the space: %v", err)
	}
	if n := e.fake.Stats().EmbedRequests - embedBefore; n != 0 {
		t.Errorf("%d embedding requests while the space's lock was held elsewhere", n)
	}
}

// TestReprocessWhileAnotherRunsSaysWhatToDo: a run started while another writes the same
// outputs stopped with "space:1: another run writing the same outputs is in progress": a lock's
// key for the outputs, and no word of what to do. It names the outputs and the way on.
func TestReprocessWhileAnotherRunsSaysWhatToDo(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	res, _ := e.reprocess(t, ctx, e.c, reprocessOptions{embedOnly: true}) // makes and fills the space
	unlock, err := e.st.LockRun(ctx, store.SpaceRunKey(res.Space.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	_, err = runReprocess(ctx, e.c, reprocessOptions{embedOnly: true}, io.Discard, io.Discard)
	if !errors.Is(err, store.ErrRunInProgress) {
		t.Fatalf("runReprocess while another run holds the space: %v, want ErrRunInProgress", err)
	}
	for _, want := range []string{"embeddings (space " + res.Space.Name() + ")", "wait for it to end, or stop it, then run this command again"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("runReprocess while another run holds the space: %v; want it to say %q", err, want)
		}
	}
	if strings.Contains(err.Error(), store.SpaceRunKey(res.Space.ID)+":") {
		t.Errorf("runReprocess while another run holds the space: %v; want no lock key", err)
	}
}

// TestSpacesDropOfASpaceWithOpenBatchJobsSaysWhatToDo: `spaces drop` refuses a space that open
// Batch API jobs embed into (OpenAI still runs and bills them), naming the jobs and the ways
// out; --force drops it.
func TestSpacesDropOfASpaceWithOpenBatchJobsSaysWhatToDo(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: pgtest.URL(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "T", Abstract: "A."}
	if _, err := st.UpsertPapers(ctx, []paper.Abstract{a}, store.Work{}); err != nil {
		t.Fatal(err)
	}
	var old paper.Space
	for _, m := range []string{"text-embedding-3-small", "text-embedding-3-large"} {
		if old, err = st.EnsureSpace(ctx, paper.Space{Model: m, Dimensions: 4, Template: "title+abstract"}); err != nil {
			t.Fatal(err)
		}
	}
	job, release, err := st.ClaimBatchJob(ctx, store.BatchJob{Kind: paper.KindEmbedding, Model: old.Model, SpaceID: old.ID,
		Target: store.BatchTarget(paper.KindEmbedding, old.Model, "", old.ID)}, []store.BatchItem{{PaperID: a.ID, ContentHash: a.ContentHash()}})
	release.Release()
	if err != nil {
		t.Fatal(err)
	}
	id := strconv.FormatInt(old.ID, 10)
	c := loadConfig()
	c.NATSURL, c.DataDir, c.LogLevel = natstest.Start(t).ClientURL(), t.TempDir(), "error"
	var out bytes.Buffer
	err = dropSpace(ctx, c, st, id, false, &out)
	if err == nil {
		t.Fatal("spaces drop of a space with an open batch job succeeded")
	}
	for _, want := range []string{"job " + strconv.FormatInt(job.ID, 10) + " (preparing)", "OpenAI keeps running and billing", "paperpipe reprocess --batch-api",
		"cancel them at OpenAI", "paperpipe spaces drop " + id + " --force"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("spaces drop: %v\nwant it to say %q", err, want)
		}
	}
	if err := dropSpace(ctx, c, st, id, true, &out); err != nil || !strings.Contains(out.String(), "dropped space "+id) {
		t.Errorf("spaces drop --force: %v, %q", err, out.String())
	}
}

// After README's blue/green `paperpipe activate MODEL`, processes still embed with the
// configured model (only "offline" follows an activation): activate warns when that model does
// not embed into the space it activates, naming what to set; it says nothing when it does.
func TestActivateWarnsWhenTheConfiguredEmbedderIsNotTheSpaces(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	blue, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-small", Dimensions: 64, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-large", Dimensions: 32, Template: "title-abstract-v1"}); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if err := runActivate(ctx, e.c, e.st, "text-embedding-3-large", &errw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"warning: the configured embedding model (text-embedding-3-small with 64 dimensions)",
		"PAPERPIPE_EMBED_MODEL=text-embedding-3-large PAPERPIPE_EMBED_DIMENSIONS=32", "restart worker, serve and up"} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("activate of another model's space lacks %q:\n%s", want, errw.String())
		}
	}
	green := e.cfg(func(c *config) { c.EmbedModel, c.EmbedDims = "text-embedding-3-large", 32 })
	errw.Reset()
	if err := runActivate(ctx, green, e.st, "text-embedding-3-large", &errw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errw.String(), "warning") {
		t.Errorf("activate of the configured model's space warned:\n%s", errw.String())
	}
	offline := e.cfg(func(c *config) { c.BaseURL, c.APIKey, c.EmbedModel, c.EmbedDims = "", "", "", 0 })
	errw.Reset()
	if err := runActivate(ctx, offline, e.st, strconv.FormatInt(blue.ID, 10), &errw); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(errw.String(), "the configured embedding model (offline)") ||
		!strings.Contains(errw.String(), "PAPERPIPE_EMBED_MODEL=text-embedding-3-small PAPERPIPE_EMBED_DIMENSIONS=64 (and OPENAI_API_KEY") {
		t.Errorf("activate with the offline models configured:\n%s", errw.String())
	}
}

// TestActivateSaysThePreviousSpaceKeepsItsVectors: activating a space (and so a fit, which
// activates its new one) says that the space active before keeps its vectors and index, and
// how to drop them: a lab that refits a growing archive every month, or moves to a new model,
// kept a full space (~5 KB a paper at 768 dimensions with its index) per switch without being
// told. Activating the space already active says nothing of the kind.
func TestActivateSaysThePreviousSpaceKeepsItsVectors(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	blue, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-small", Dimensions: 64, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	green, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-large", Dimensions: 32, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if err := runActivate(ctx, e.c, e.st, strconv.FormatInt(green.ID, 10), &errw); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		fmt.Sprintf("space %d (%s), active before, keeps its vectors and index", blue.ID, blue.Name()),
		fmt.Sprintf("`paperpipe activate %d` goes back to it", blue.ID),
		fmt.Sprintf("`paperpipe spaces drop %d` removes them", blue.ID),
	} {
		if !strings.Contains(errw.String(), want) {
			t.Errorf("activate of another space lacks %q:\n%s", want, errw.String())
		}
	}
	errw.Reset()
	if err := runActivate(ctx, e.c, e.st, strconv.FormatInt(green.ID, 10), &errw); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(errw.String(), "active before") {
		t.Errorf("activate of the space already active names a previous one:\n%s", errw.String())
	}
}

// README's `paperpipe fit --fill=false` fits and stores the model and activates nothing: with
// --fill=false, --activate defaults to false (it was a usage error unless --activate=false was
// given too); --activate given explicitly with it is still one. fit -h says so.
func TestFitWithoutFillActivatesNothing(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 6)
	ctx := t.Context()
	if err := cmdFit(ctx, e.cfg(nil), []string{"--fill=false"}); err != nil {
		t.Fatalf("fit --fill=false: %v", err)
	}
	if n := e.count(t, "SELECT count(*) FROM offline_models"); n != 1 {
		t.Errorf("%d offline models stored, want 1", n)
	}
	if n := e.count(t, "SELECT count(*) FROM embedding_spaces"); n != 0 {
		t.Errorf("%d spaces after fit --fill=false, want none", n)
	}
	if err := cmdFit(ctx, e.cfg(nil), []string{"--fill=false", "--activate"}); !errors.Is(err, errUsage) {
		t.Errorf("fit --fill=false --activate: %v, want a usage error", err)
	}
	if r := newCLI(t).ok("fit", "-h"); !strings.Contains(r.stdout, "--fill=false implies --activate=false") {
		t.Errorf("fit -h does not say what --fill=false does to --activate:\n%s", r.stdout)
	}
}

// Ctrl-C or SIGTERM during fit's fitting (tens of seconds of matrix algebra at the default
// 4,000 papers, which nothing can interrupt) was ignored until it ended, then reported as
// "save offline model …: context canceled". fitModel returns at once, saying that nothing was
// stored; here the fitting never ends until the test does.
func TestFitIsInterruptedWhileFitting(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	defer close(release)
	ctx, cancel := context.WithCancelCause(t.Context())
	returned := make(chan error, 1)
	go func() {
		_, _, err := fitModel(ctx, func() (*embed.Fitted, []byte, error) {
			cancel(errors.New("interrupt signal received")) // the signal comes while fitting
			<-release
			return nil, nil, errors.New("fit ended")
		})
		returned <- err
	}()
	select {
	case err := <-returned:
		if err == nil || !strings.Contains(err.Error(), "interrupted while fitting; nothing was stored: interrupt signal received") {
			t.Errorf("fitModel interrupted: %v, want it to say it was interrupted while fitting and stored nothing", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("fitModel did not return when interrupted while fitting: it waited for the fit to end")
	}
}

// writeLines writes lines as a JSONL file in a temporary directory and returns its path.
func writeLines(t *testing.T, lines ...string) string {
	t.Helper()
	file := filepath.Join(t.TempDir(), "vectors.jsonl")
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	return file
}

// A value beyond ±65504 cannot be stored in a space indexed on halfvec (hnsw-halfvec, the
// default): its line is reported as file:line and skipped, and the rest is loaded (the store
// refused the whole chunk, the import stopped naming "record 2", and nothing was loaded). A
// space indexed on the vectors themselves takes it.
func TestImportEmbeddingsSkipsAValueBeyondHalfPrecisionOnItsLine(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	file := writeLines(t,
		`{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":[70000,1,0,0],"model":"imported"}`,
		`{"id":"2401.00002","embedding":[0,0,1,0],"model":"imported"}`)
	var errw bytes.Buffer
	res, err := importEmbeddings(ctx, e.st, file, 5000, &errw)
	if err != nil {
		t.Fatalf("import stopped: %v\n%s", err, errw.String())
	}
	if res.Loaded != 2 || res.Bad != 1 {
		t.Errorf("import %+v, want 2 loaded and 1 bad line", res)
	}
	if want := file + `:2: arxiv:2401.00001: value 0 is 70000, beyond half precision's range (±65504)`; !strings.Contains(errw.String(), want) {
		t.Errorf("messages lack %q:\n%s", want, errw.String())
	}

	// An hnsw space of 4 dimensions is indexed on the vectors: the value is stored.
	st, err := openStore(ctx, e.cfg(func(c *config) { c.VectorIndex = "hnsw" }), newLogger(e.c))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	file = writeLines(t, `{"id":"2401.00001","embedding":[70000,1,0,0],"model":"vector-indexed"}`)
	errw.Reset()
	if res, err := importEmbeddings(ctx, st, file, 5000, &errw); err != nil || res.Loaded != 1 || res.Bad != 0 {
		t.Errorf("import into an hnsw space: %+v, %v; want 1 loaded\n%s", res, err, errw.String())
	}
}

// TestImportEmbeddingsRefusesALengthTheModelCannotMake: vectors of a model whose length is known
// and of more values than it makes (text-embedding-3-small's of 2000, a 1024-d model's vectors
// named text-embedding-3-small by mistake) or of another length than the offline hashed
// embedder's fixed 768 were loaded into a space of their own (text-embedding-3-small/2000), which
// no query can use — every search embedded by the model has its own length — and which
// `activate` then offered to fill with `reprocess --embed-model …`, which fills another space.
// Such lines are bad lines, saying which model and length they name; a shorter vector of a
// model that shortens its vectors (text-embedding-3-small at 512) is loaded.
func TestImportEmbeddingsRefusesALengthTheModelCannotMake(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	vec := func(n int) string {
		v := make([]string, n)
		for i := range v {
			v[i] = "0.01"
		}
		return "[" + strings.Join(v, ",") + "]"
	}
	for _, tc := range []struct {
		model string
		n     int
		want  string
	}{
		{"text-embedding-3-small", 2000, "text-embedding-3-small makes vectors of at most 1536 values"},
		{"openai/text-embedding-3-large", 4096, "openai/text-embedding-3-large makes vectors of at most 3072 values"},
		{"paperpipe-offline-hash", 3, "paperpipe-offline-hash makes vectors of 768 values"},
		{"paperpipe-offline-hash-v2", 1024, "paperpipe-offline-hash-v2 makes vectors of 768 values"},
	} {
		file := writeLines(t, `{"id":"2401.00000","embedding":`+vec(tc.n)+`,"model":"`+tc.model+`"}`)
		var errw bytes.Buffer
		res, err := importEmbeddings(ctx, e.st, file, 5000, &errw)
		if err != nil {
			t.Fatalf("%s/%d: import stopped: %v\n%s", tc.model, tc.n, err, errw.String())
		}
		if res.Loaded != 0 || res.Bad != 1 || !strings.Contains(errw.String(), file+":1: arxiv:2401.00000: ") ||
			!strings.Contains(errw.String(), tc.want+fmt.Sprintf(", this one has %d", tc.n)) {
			t.Errorf("%s/%d: import %+v; want 1 bad line saying %q\n%s", tc.model, tc.n, res, tc.want, errw.String())
		}
	}
	if spaces, err := e.st.Spaces(ctx); err != nil || len(spaces) != 0 {
		t.Errorf("spaces %+v (%v), want none", spaces, err)
	}
	file := writeLines(t, `{"id":"2401.00000","embedding":`+vec(512)+`,"model":"text-embedding-3-small"}`)
	var errw bytes.Buffer
	if res, err := importEmbeddings(ctx, e.st, file, 5000, &errw); err != nil || res.Loaded != 1 || res.Bad != 0 {
		t.Errorf("text-embedding-3-small/512: import %+v, %v; want it loaded\n%s", res, err, errw.String())
	}
}

// An import that stores nothing leaves no space behind, and above all no active one when none
// was: every line bad (the space was created at the first line, before its vector was
// checked), or every paper unknown (the space was created for the load, activated and indexed,
// empty).
func TestImportThatLoadsNothingLeavesNoSpace(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	for _, file := range []string{
		writeLines(t, `{"id":"2401.00000","embedding":[0,0,0,0],"model":"imported"}`),
		writeLines(t, `{"id":"9999.00001","embedding":[1,0,0,0],"model":"imported"}`, `{"id":"9999.00002","embedding":[0,1,0,0],"model":"imported"}`),
	} {
		var errw bytes.Buffer
		res, err := importEmbeddings(ctx, e.st, file, 5000, &errw)
		if err != nil || res.Loaded != 0 {
			t.Fatalf("import: %+v, %v", res, err)
		}
		if spaces, err := e.st.Spaces(ctx); err != nil || len(spaces) != 0 {
			t.Errorf("after an import that loaded nothing: spaces %+v (%v), want none\n%s", spaces, err, errw.String())
		}
	}
}

// A run that stored nothing (every paper dead-lettered) into a new space does not call it
// filled: it reports its coverage, how many papers are missing and why; a complete fill is
// called filled, with its coverage.
func TestReprocessCallsASpaceFilledOnlyWhenEveryPaperIsIn(t *testing.T) {
	t.Parallel()
	// An API that takes 5 tokens a request refuses every input (400, max_tokens_per_request),
	// whatever its length: each paper is dead-lettered. (One whose context holds 5 tokens has
	// each input cut to fit, and stores it.)
	e := newArchiveEnv(t, openaitest.Config{MaxRequestTokens: 5})
	e.seed(t, 4)
	ctx := t.Context()
	if _, err := e.st.EnsureSpace(ctx, paper.Space{Model: "other", Dimensions: 3, Template: "title-abstract-v1"}); err != nil {
		t.Fatal(err)
	}
	var errw bytes.Buffer
	if _, err := runReprocess(ctx, e.c, reprocessOptions{embedOnly: true}, io.Discard, &errw); !errors.Is(err, errDeadLettered) {
		t.Fatalf("runReprocess: %v, want errDeadLettered\n%s", err, errw.String())
	}
	out := errw.String()
	if strings.Contains(out, "is filled") || !strings.Contains(out, "is not filled: 0 of 4 papers embedded, 4 missing: 4 dead-lettered by this run (`paperpipe dlq list` says why)") ||
		!strings.Contains(out, "is not active; queries use other/3/title-abstract-v1 until `paperpipe activate 2`") {
		t.Errorf("a run that stored nothing said:\n%s", out)
	}

	ok := newArchiveEnv(t, openaitest.Config{})
	ok.seed(t, 3)
	if _, err := ok.st.EnsureSpace(ctx, paper.Space{Model: "other", Dimensions: 3, Template: "title-abstract-v1"}); err != nil {
		t.Fatal(err)
	}
	if _, out := ok.reprocess(t, ctx, ok.c, reprocessOptions{embedOnly: true}); !strings.Contains(out, "is filled but not active (3 of 3 papers embedded)") {
		t.Errorf("a complete fill said:\n%s", out)
	}
}

// A run that ends with nothing queued removes its consumer, reprocess-<target> (every past
// target's stayed in status and the queue metrics for ever); one stopped with messages left
// keeps it, and the next run resumes them. Messages in the work-queue stream with no consumer
// (a process killed right after publishing, once the consumer was gone) are handed to the run
// that creates it again.
func TestReprocessRemovesItsConsumerOnlyWhenNothingIsLeft(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{ChatLatency: 20 * time.Millisecond})
	const papers = 400 // more than a worker holds (256 here): some stay queued when it stops
	e.seed(t, papers)
	js := e.jetStream(t)
	c := e.cfg(func(c *config) { c.Concurrency = 8 })
	consumers := func() []string {
		t.Helper()
		bls, err := pipeline.Backlogs(t.Context(), js)
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, b := range bls {
			if strings.HasPrefix(b.Consumer, "reprocess-") {
				names = append(names, b.Consumer)
			}
		}
		return names
	}

	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		for ctx.Err() == nil && e.fake.Stats().ChatDelivered < 8 {
			time.Sleep(2 * time.Millisecond)
		}
		cancel()
	}()
	res, err := runReprocess(ctx, c, reprocessOptions{pageSize: papers}, io.Discard, io.Discard)
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("interrupted run: %v, want context.Canceled", err)
	}
	w := paper.Work{Model: "gpt-4o-mini", PromptVersion: summarize.PromptVersion, SpaceID: res.Space.ID}
	target := pipeline.NewReprocessTarget(w, res.Space.Name())
	if left, err := pipeline.Queued(t.Context(), js, target); err != nil || left == 0 {
		t.Fatalf("after the interruption %d messages queued (%v), want some", left, err)
	}
	if got := consumers(); !slices.Equal(got, []string{target.Consumer}) {
		t.Errorf("consumers after an interrupted run: %v, want %s kept", got, target.Consumer)
	}

	var errw bytes.Buffer
	if _, err := runReprocess(t.Context(), c, reprocessOptions{}, io.Discard, &errw); err != nil {
		t.Fatalf("resumed run: %v\n%s", err, errw.String())
	}
	if !strings.Contains(errw.String(), "resuming:") {
		t.Errorf("the resumed run did not resume:\n%s", errw.String())
	}
	if got := consumers(); len(got) != 0 {
		t.Errorf("consumers after a finished run: %v, want none", got)
	}

	// Stale papers queued with no consumer, as by a process killed right after publishing.
	if _, err := e.st.Pool().Exec(t.Context(), "DELETE FROM tldrs WHERE paper_id IN ('arxiv:2401.00001', 'arxiv:2401.00002')"); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewRunPublisher(js, target.Subject, "killed-run", 0)
	for _, id := range []string{"arxiv:2401.00001", "arxiv:2401.00002"} {
		rec, err := e.st.Paper(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(t.Context(), rec.Abstract); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(t.Context()); err != nil {
		t.Fatal(err)
	}
	errw.Reset()
	if _, err := runReprocess(t.Context(), c, reprocessOptions{}, io.Discard, &errw); err != nil {
		t.Fatalf("third run: %v\n%s", err, errw.String())
	}
	if !strings.Contains(errw.String(), "resuming: 2 messages") {
		t.Errorf("the run did not take the 2 messages queued without a consumer:\n%s", errw.String())
	}
	if n := e.count(t, "SELECT count(*) FROM tldrs"); n != papers {
		t.Errorf("%d TL;DRs, want %d", n, papers)
	}
	if got := consumers(); len(got) != 0 {
		t.Errorf("consumers after the third run: %v, want none", got)
	}
}

// `spaces reindex N --index hnsw-binary` of an offline model's space warns that its index will
// be poor, as PAPERPIPE_VECTOR_INDEX=hnsw-binary does with the offline models.
func TestReindexToBinaryOfAnOfflineSpaceWarns(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: "paperpipe-offline-hash", Dimensions: 768, Template: "title-abstract-v1"})
	if err != nil {
		t.Fatal(err)
	}
	var w bytes.Buffer
	if err := reindexSpace(ctx, e.st, strconv.FormatInt(sp.ID, 10), "hnsw-binary", &w); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(w.String(), "warning: the offline models' vectors keep few of their neighbours in 1-bit codes") {
		t.Errorf("reindex of an offline space to hnsw-binary said:\n%s", w.String())
	}
}

// reprocess --ids says how many of the ids given are not in the archive (they were ignored
// without a word).
func TestReprocessIDsNotInTheArchiveAreCounted(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ids := filepath.Join(t.TempDir(), "ids.txt")
	if err := os.WriteFile(ids, []byte("2401.00000\n9999.00001\narxiv:2401.00002v2\n9999.00001\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, out := e.reprocess(t, t.Context(), e.c, reprocessOptions{idsFile: ids})
	if want := "1 of the 4 ids given (--ids " + ids + ") is not in the archive, and skipped: arxiv:9999.00001\n"; !strings.Contains(out, want) {
		t.Errorf("reprocess --ids lacks %q:\n%s", want, out)
	}
}

// reprocess --ids reads its file as ingest reads a source: a byte order mark on the first line
// (a Windows editor's UTF-8) is skipped, not part of the first id, which was then "not in the
// archive"; gzip is read decompressed, and a line PostgreSQL's text cannot hold (a NUL, bytes
// that are not UTF-8) stops the run before anything is done, naming its file and line: it
// reached the database, which failed the run with "invalid byte sequence for encoding UTF8".
// So does a line longer than 64 KiB, which ended the run with "bufio.Scanner: token too long".
func TestReprocessIDsFileIsReadAsASource(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	dir := t.TempDir()
	write := func(name string, b []byte) string { return writeFile(t, dir, name, b) }
	for _, path := range []string{
		write("bom.txt", []byte("\xef\xbb\xbf2401.00000\r\n2401.00001\r\n")),
		write("ids.txt.gz", gzipped(t, []byte("2401.00000\n2401.00001\n"))),
	} {
		_, out := e.reprocess(t, t.Context(), e.c, reprocessOptions{idsFile: path, dryRun: true})
		if strings.Contains(out, "not in the archive") {
			t.Errorf("--ids %s: %s", filepath.Base(path), out)
		}
	}
	for _, tc := range []struct {
		name string
		data []byte
		want string
	}{
		{"nul.txt", []byte("2401.00000\n2401.0000\x001\n"), "nul.txt:2: the line contains a NUL byte (byte 10)"},
		{"latin1.txt", []byte("2401.00000\n\n2401.00001 caf\xe9\n"), "latin1.txt:3: the line is not valid UTF-8 text"},
		// Ended with "bufio.Scanner: token too long", neither file nor line named.
		{"long.txt", []byte("2401.00000\n\n" + strings.Repeat("2401.00001,", 7000) + "\n"), "long.txt:3: the line is longer than 64 KiB"},
	} {
		path := write(tc.name, tc.data)
		var out, errw bytes.Buffer
		_, err := runReprocess(t.Context(), e.c, reprocessOptions{idsFile: path, dryRun: true}, &out, &errw)
		if err == nil || !strings.Contains(err.Error(), tc.want) || strings.Contains(err.Error(), "SQLSTATE") {
			t.Errorf("--ids %s: %v; want an error saying %q", tc.name, err, tc.want)
		}
	}
}

// An imported vector marked truncated (as `paperpipe embed` marks one whose text was cut to
// the model's context) is stored truncated; the mark was dropped on import.
func TestImportEmbeddingsKeepsTheTruncatedMark(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	file := writeLines(t,
		`{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported","truncated":true}`,
		`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}`)
	var errw bytes.Buffer
	if res, err := importEmbeddings(t.Context(), e.st, file, 5000, &errw); err != nil || res.Loaded != 2 {
		t.Fatalf("import: %+v, %v\n%s", res, err, errw.String())
	}
	if n := e.count(t, `SELECT count(*) FROM embeddings WHERE truncated = (paper_id = 'arxiv:2401.00000')`); n != 2 {
		t.Errorf("%d of the 2 vectors stored with their truncated mark, want both", n)
	}
}

// A file that starts with a UTF-8 byte order mark (as Windows editors write, and as ingest
// accepts) loads its first line too: it was a bad line, "invalid character 'ï'". And a bad
// line is told in the user's words, not Go's ("json: cannot unmarshal number into Go struct
// field importLine.id of type string").
func TestImportEmbeddingsSkipsABOMAndSaysWhatIsWrongInPlainWords(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	file := writeLines(t,
		"\xef\xbb\xbf"+`{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}`,
		`{"id":true,"embedding":[0,1,0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":[0,"1",0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":[0,1e50,0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":"0 1 0 0","model":"imported"}`,
		`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported","dimensions":4.5}`,
		`[{"id":"2401.00001"}]`,
		`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"`,
		`{"id":"2401.00001" "embedding":[0,1,0,0]}`,
		"\xef\xbb\xbf"+`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}`, // a BOM is at the start of a file only
	)
	var errw bytes.Buffer
	res, err := importEmbeddings(t.Context(), e.st, file, 5000, &errw)
	if err != nil {
		t.Fatal(err)
	}
	if res.Loaded != 2 || res.Bad != 9 {
		t.Errorf("import %+v, want the 2 good lines loaded, the first one after a BOM among them, and 9 bad lines\n%s", res, errw.String())
	}
	for i, want := range []string{
		`id is a JSON bool, want a string ("2401.01234") or a number`,
		`embedding holds a JSON string, want numbers only`,
		`embedding holds 1e50, beyond the range of a 32-bit float`,
		`embedding is a JSON string, want an array of numbers`,
		`dimensions is 4.5, want a whole number`,
		`the line is a JSON array; want a JSON object {"id": "…", "embedding": [numbers], "model": "…"}`,
		`truncated JSON: the line ends before its object is closed`,
		`malformed JSON at byte 20: invalid character '"' after object key:value pair; want a JSON object`,
		`the line starts with a UTF-8 byte order mark, which only a file's first line may have`,
	} {
		if line := fmt.Sprintf("%s:%d: %s", file, i+3, want); !strings.Contains(errw.String(), line) {
			t.Errorf("messages lack %q:\n%s", line, errw.String())
		}
	}
	if strings.Contains(errw.String(), "Go ") || strings.Contains(errw.String(), "embeddingLine") || strings.Contains(errw.String(), "json:") {
		t.Errorf("messages speak of Go's types:\n%s", errw.String())
	}
}

// A paper ingested with a numeric id ({"id": 5} is stored as id:5, {"id": 2401.00000} as
// arxiv:2401.00000) takes its vectors from a line naming it the same way: import-embeddings
// read the id as ingest does. It refused the line ("id is a JSON number, want a string"), and
// the vectors of such papers could not be imported under the id they had been given.
func TestImportEmbeddingsTakesANumericIDAsIngestDoes(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	r, err := ingest.NewReader(strings.NewReader(`{"id":5,"title":"Numbered","abstract":"A paper with a number for its id."}`+"\n"+
		`{"id":2401.00000,"title":"Numbered arXiv","abstract":"A paper with an arXiv id written as a number."}`+"\n"), "papers.jsonl", ingest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	var papers []paper.Abstract
	for {
		a, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		papers = append(papers, a)
	}
	if _, err := e.st.UpsertPapers(t.Context(), papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	file := writeLines(t,
		`{"id":5,"embedding":[1,0,0,0],"model":"imported"}`,
		`{"id":2401.00000,"embedding":[0,1,0,0],"model":"imported"}`,
	)
	var errw bytes.Buffer
	res, err := importEmbeddings(t.Context(), e.st, file, 5000, &errw)
	if err != nil || res.Loaded != 2 || res.Bad != 0 || len(res.Unknown) != 0 {
		t.Errorf("import of vectors for papers ingested as %s and %s: %+v, %v; want both loaded\n%s", papers[0].ID, papers[1].ID, res, err, errw.String())
	}
	if n := e.count(t, `SELECT count(*) FROM embeddings WHERE paper_id IN ('id:5', 'arxiv:2401.00000')`); n != 2 {
		t.Errorf("%d vectors stored under id:5 and arxiv:2401.00000, want 2", n)
	}
}

// import-embeddings reads its file as ingest reads a source: gzip-compressed (vectors.jsonl.gz)
// decompressed; UTF-16 text, a zip archive, a PDF refused at once, with a conversion naming
// import-embeddings. A file none of whose first 100 lines is a vector line is not one: the
// import stops there, saying so, and does not claim that "the others were loaded". A gzip file
// gave "malformed JSON at byte 1: invalid character '\x1f'" for each of its lines, and a
// 20,000-line file of something else 20,000 messages ending "the others were loaded".
func TestImportEmbeddingsReadsItsFileAsIngestDoes(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	lines := `{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}` + "\n" + `{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}` + "\n"
	dir := t.TempDir()
	write := func(name string, data []byte) string { return writeFile(t, dir, name, data) }
	var errw bytes.Buffer
	res, err := importEmbeddings(t.Context(), e.st, write("vectors.jsonl.gz", gzipped(t, []byte(lines))), 5000, &errw)
	if err != nil || res.Loaded != 2 || res.Bad != 0 {
		t.Errorf("import of a gzip-compressed file: %+v, %v; want its 2 vectors loaded\n%s", res, err, errw.String())
	}
	utf16 := []byte{0xff, 0xfe}
	for _, c := range lines {
		utf16 = append(utf16, byte(c), 0)
	}
	for _, c := range []struct {
		name string
		data []byte
		want string
	}{
		{"vectors.txt", utf16, "| paperpipe import-embeddings -`"},
		{"vectors.zip", []byte("PK\x03\x04\x14\x00rest"), "`unzip -p "},
		{"paper.pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), "PDF document"},
	} {
		errw.Reset()
		path := write(c.name, c.data)
		_, err := importEmbeddings(t.Context(), e.st, path, 5000, &errw)
		if err == nil || !strings.Contains(err.Error(), c.want) || errw.Len() > 0 {
			t.Errorf("import of %s: %v, messages %q; want it refused at once saying %q", c.name, err, errw.String(), c.want)
		}
	}

	// 20,000 lines of papers, not vectors: 100 messages, then it stops, giving the first
	// line's reason. A file of vector lines that all fail one check (a dimensions that
	// disagrees with the vectors) stops the same way, and is not called another kind of file
	// (it was: "so this is not a file of paperpipe's vector lines"); that is said only of a
	// file none of whose lines is a JSON object.
	var papers, dims, csv strings.Builder
	for i := range 20000 {
		fmt.Fprintf(&papers, `{"id":"2402.%05d","title":"T","abstract":"A"}`+"\n", i)
		fmt.Fprintf(&dims, `{"id":"2402.%05d","embedding":[1,0,0,0],"dimensions":3,"model":"imported"}`+"\n", i)
		fmt.Fprintf(&csv, "2402.%05d,1,0,0,0\n", i)
	}
	for _, c := range []struct{ name, data, want, not string }{
		{"papers.jsonl", papers.String(), "the first 100 lines are all bad (the first, line 1: arxiv:2402.00000: no embedding); stopped, nothing was loaded", "not a file of"},
		{"vectors.jsonl", dims.String(), "the first 100 lines are all bad (the first, line 1: arxiv:2402.00000: dimensions 3 but 4 values); stopped, nothing was loaded", "not a file of"},
		{"vectors.csv", csv.String(), "the first 100 lines are all bad and none is a JSON object, so this is not a file of paperpipe's vector lines", "\x00"},
	} {
		errw.Reset()
		res, err = importEmbeddings(t.Context(), e.st, write(c.name, []byte(c.data)), 5000, &errw)
		if err == nil || !strings.Contains(err.Error(), c.want) || strings.Contains(err.Error(), c.not) ||
			!strings.Contains(err.Error(), "nothing was loaded") || res.Bad != 100 || strings.Count(errw.String(), "\n") != 100 {
			t.Errorf("import of 20,000 bad lines (%s): %v, %d bad, %d lines of messages; want it stopped after 100 saying %q", c.name, err, res.Bad, strings.Count(errw.String(), "\n"), c.want)
		}
	}
	// Bad lines after a good one are a damaged file of vectors: each is reported.
	bad := lines + strings.Repeat(`{"id":"2401.00001","embedding":[],"model":"imported"}`+"\n", 150)
	errw.Reset()
	res, err = importEmbeddings(t.Context(), e.st, write("damaged.jsonl", []byte(bad)), 5000, &errw)
	if err != nil || res.Bad != 150 || res.Loaded != 2 {
		t.Errorf("import of 2 good lines and 150 bad ones: %+v, %v; want 150 bad lines reported and the 2 loaded", res, err)
	}

	// The command's last word does not claim that others were loaded when none was.
	c := newCLI(t)
	r := c.run("import-embeddings", writeLines(t, `{"id":"2401.09999","embedding":[1,0,0,0],"model":"imported"}`, `{"id":"2401.09998"}`))
	if r.code != 1 || !strings.Contains(r.stderr, "; nothing was loaded") || strings.Contains(r.stderr, "the others were loaded") {
		t.Errorf("import of a bad line and an unknown paper: exit %d, stderr %q; want exit 1 and that nothing was loaded", r.code, r.stderr)
	}
}

// TestImportEmbeddingsOfAGzipFileCutShortLoadsWhatItHolds: a gzip-compressed file cut short
// (a download that stopped) ends in a read error. The import stopped there with only that
// error: the good lines read since its last chunk were not loaded, and the space it created —
// the active one, when it was the first — was left without its index, which running the
// import again (with the same file, which stops at the same place) never built: every query
// then scanned every vector. The lines before the cut are loaded, the index built, and the
// import fails saying where the file ends.
func TestImportEmbeddingsOfAGzipFileCutShortLoadsWhatItHolds(t *testing.T) {
	t.Parallel()
	const n = 3000
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, n)
	var lines strings.Builder
	for i := range n {
		fmt.Fprintf(&lines, `{"id":"2401.%05d","embedding":[1,%d,%d,0.5],"model":"imported"}`+"\n", i, i, i%7)
	}
	gz := gzipped(t, []byte(lines.String()))
	cut := gz[:len(gz)*2/3]
	// The whole lines the cut file holds: what a reader of it gets before the error.
	zr, err := gzip.NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	got, rerr := io.ReadAll(zr)
	if !errors.Is(rerr, io.ErrUnexpectedEOF) || len(got) < 64<<10 {
		t.Fatalf("the cut file reads %d bytes, then %v; want more than the 64 KiB looked at first, then unexpected EOF", len(got), rerr)
	}
	whole := bytes.Count(got, []byte("\n"))
	if whole%1000 == 0 || whole >= n {
		t.Fatalf("the cut file holds %d whole lines; want a cut within a chunk of 1,000", whole)
	}
	path := writeFile(t, t.TempDir(), "vectors.jsonl.gz", cut)
	var errw bytes.Buffer
	res, err := importEmbeddings(t.Context(), e.st, path, 1000, &errw)
	if !errors.Is(err, io.ErrUnexpectedEOF) || !strings.Contains(err.Error(), fmt.Sprintf("vectors.jsonl.gz:%d: reading stopped: ", whole+1)) ||
		!strings.Contains(err.Error(), "cut short") {
		t.Errorf("import of a gzip file cut short: %v; want an error saying that it stops at line %d", err, whole+1)
	}
	// The line cut short, when the cut is within one, is a bad line.
	if res.Loaded != whole || res.Bad > 1 {
		t.Errorf("import %+v: want the %d whole lines before the cut loaded", res, whole)
	}
	spaces, serr := e.st.Spaces(t.Context())
	if serr != nil || len(spaces) != 1 {
		t.Fatal(spaces, serr)
	}
	if s := spaces[0]; !s.Active || s.Embedded != int64(whole) || s.IndexName == "" {
		t.Errorf("space %+v: want the active space with %d vectors and its index", s, whole)
	}
}

// A stored paper whose reprocess message is over the queue's limit (ingest took it with little
// to spare; a reprocess message's id and headers are longer) is left out and named, and the
// others are published: it aborted every run, which failed the same way when run again.
func TestPublishStaleLeavesOutAPaperTooLargeForTheQueue(t *testing.T) {
	t.Parallel()
	e, js, v2 := withAPaperTooLargeForTheQueue(t)
	ctx := t.Context()
	pub := pipeline.NewRunPublisher(js, pipeline.SubjectNew, "big-run", 0)
	var left []string
	n, err := reprocess.PublishStale(ctx, e.st, store.Selection{Work: paper.Work{Model: "another-model", PromptVersion: "v9"}}, pub, 0, nil,
		func(id string, err error) { left = append(left, id) })
	if err != nil || n != 2 || !slices.Equal(left, []string{v2.ID}) {
		t.Errorf("PublishStale: %d published, left out %v, err %v; want 2 published and %s left out", n, left, err, v2.ID)
	}
}

// A reprocess run that leaves a paper out (its message is over the queue's limit) counts it in
// its summary and ends with an error (exit 1), as ingest does for rejected records: a scheduled
// run would otherwise never report that the archive stays incomplete.
func TestReprocessThatLeavesAPaperOutSaysSoAndFails(t *testing.T) {
	t.Parallel()
	e, _, v2 := withAPaperTooLargeForTheQueue(t)
	ctx := t.Context()
	var out, errw bytes.Buffer
	_, err := runReprocess(ctx, e.c, reprocessOptions{tldrOnly: true}, &out, &errw)
	t.Logf("runReprocess: err=%v\n%s%s", err, out.String(), errw.String())
	if n := e.count(t, `SELECT count(*) FROM papers p WHERE NOT EXISTS (SELECT 1 FROM tldrs t WHERE t.paper_id = p.id AND t.content_hash = p.content_hash)`); n != 1 {
		t.Fatalf("%d papers without a TL;DR, want the 1 left out", n)
	}
	if err == nil || !strings.Contains(errw.String(), "1 left out (too large for the queue)") {
		t.Errorf("reprocess left %s without its TL;DR: err %v, summary %q; want an error and the paper counted", v2.ID, err, errw.String())
	}
}

// withAPaperTooLargeForTheQueue is an archive of 3 papers, processed, whose second has a text
// of ~7 KB (returned), with the PAPERS stream's MaxMsgSize lowered to 4,000 bytes: the other
// papers' messages (~2 KB) fit, the long one's does not.
func withAPaperTooLargeForTheQueue(t *testing.T) (*archiveEnv, jetstream.JetStream, paper.Abstract) {
	t.Helper()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	big, err := e.st.Paper(ctx, "arxiv:2401.00002")
	if err != nil {
		t.Fatal(err)
	}
	v2 := big.Abstract
	v2.Abstract = strings.Repeat("A long abstract. ", 400)
	if _, err := e.st.UpsertPapers(ctx, []paper.Abstract{v2}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	js := e.jetStream(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	editPapersStream(t, js, func(cfg *jetstream.StreamConfig) { cfg.MaxMsgSize = 4000 })
	return e, js, v2
}

// A fill of a new space that leaves a paper out still builds the space's index and says what
// is missing (it returned before, leaving the space without an index at every run), and ends
// with errDeadLettered, on which `fit` does not activate the space.
func TestAFillThatLeavesAPaperOutStillBuildsTheIndex(t *testing.T) {
	t.Parallel()
	e, _, v2 := withAPaperTooLargeForTheQueue(t)
	e.c.EmbedDims = 32 // another space than the seeded one: a new space, filled in bulk, no index yet
	var out, errw bytes.Buffer
	res, err := runReprocess(t.Context(), e.c, reprocessOptions{embedOnly: true}, &out, &errw)
	if !errors.Is(err, errDeadLettered) {
		t.Errorf("runReprocess: %v, want errDeadLettered\n%s", err, errw.String())
	}
	info, rerr := e.st.ResolveSpace(t.Context(), strconv.FormatInt(res.Space.ID, 10))
	if rerr != nil {
		t.Fatal(rerr)
	}
	if info.IndexName == "" || info.Embedded != 2 {
		t.Errorf("space %s: %d of %d papers, index %q; want 2 embedded and its index built", info.Name(), info.Embedded, info.Papers, info.IndexName)
	}
	if !strings.Contains(errw.String(), "1 left out, too large for the queue") || !strings.Contains(errw.String(), v2.ID) {
		t.Errorf("the run does not say what it left out:\n%s", errw.String())
	}
}

// dropSpaceAsReprocessStarts runs reprocess with o into a new space beside an active one, and
// drops that space (`paperpipe spaces drop`) after the run created it and before it took its
// run lock: while the run counts the stale papers, held by a lock of the tldrs table. It
// returns what the run said and its error.
func (e *archiveEnv) dropSpaceAsReprocessStarts(t *testing.T, o reprocessOptions) (string, error) {
	t.Helper()
	ctx := t.Context()
	if _, err := e.st.EnsureSpace(ctx, paper.Space{Model: "other", Dimensions: 3, Template: "title-abstract-v1"}); err != nil {
		t.Fatal(err)
	}
	tx, err := e.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Rollback(context.WithoutCancel(ctx))
	var pid int
	if err := tx.QueryRow(ctx, `SELECT pg_backend_pid()`).Scan(&pid); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, `LOCK TABLE tldrs IN ACCESS EXCLUSIVE MODE`); err != nil {
		t.Fatal(err)
	}
	var out, errw bytes.Buffer
	done := make(chan error, 1)
	go func() {
		_, err := runReprocess(ctx, e.c, o, &out, &errw)
		done <- err
	}()
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(5 * time.Millisecond) {
		var counting bool
		err := e.st.Pool().QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_stat_activity
			WHERE $1 = ANY(pg_blocking_pids(pid)) AND query LIKE '%lacks_tldr%')`, pid).Scan(&counting)
		if err != nil {
			t.Fatal(err)
		}
		if counting {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the run did not reach its count of the stale papers in a minute")
		}
	}
	var said bytes.Buffer
	if err := dropSpace(ctx, e.c, e.st, e.c.EmbedModel, false, &said); err != nil {
		t.Fatalf("spaces drop of the run's space before it took its lock: %v", err)
	}
	if err := tx.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	err = <-done
	return out.String() + errw.String(), err
}

// A space dropped after a reprocess created it and before the run took its lock was not
// refused, and the run went on into a space that no longer exists: with --batch-api it
// submitted the TL;DR batch (billed), then failed on a foreign key, without waiting for that
// batch or saying it was running; an --embed-only run said its papers were "skipped (already
// done)", none embedded, and failed building a missing index. Once it holds its lock the run
// looks at its space again: gone, it says so and sends nothing.
func TestReprocessStopsWhenItsSpaceIsDroppedAsItStarts(t *testing.T) {
	t.Parallel()
	for _, o := range []reprocessOptions{{batchAPI: true, wait: true, poll: 5 * time.Millisecond}, {embedOnly: true}} {
		e := newArchiveEnv(t, openaitest.Config{})
		e.seed(t, 4)
		said, err := e.dropSpaceAsReprocessStarts(t, o)
		if err == nil || !strings.Contains(err.Error(), "was dropped") || !strings.Contains(err.Error(), "run it again") {
			t.Errorf("batch API %v: run: %v; want an error saying its space was dropped, and to run it again\n%s", o.batchAPI, err, said)
		}
		if s := e.fake.Stats(); s.ChatDelivered+s.EmbedInputsDelivered != 0 || strings.Contains(said, "already done") {
			t.Errorf("batch API %v: %d chat completions and %d embeddings bought, said:\n%s\nwant nothing bought, and no paper called done",
				o.batchAPI, s.ChatDelivered, s.EmbedInputsDelivered, said)
		}
		if n := e.count(t, `SELECT count(*) FROM batch_jobs`); n != 0 {
			t.Errorf("batch API %v: %d batch jobs recorded, want none", o.batchAPI, n)
		}
	}
}

// A reprocess run stopped with messages left keeps its consumer so that the next run resumes
// them; once its space is dropped no run would: `paperpipe status` listed the consumer and its
// messages stayed in the stream until a run into a space of that name came again. `spaces
// drop` removes the consumer and its messages. Dropped while NATS cannot be reached, the space
// goes all the same, status says the consumer's space was dropped, and `spaces drop` of the
// name run again removes it.
func TestSpacesDropRemovesTheSpacesReprocessQueue(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	js := e.jetStream(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	var spaces []paper.Space
	for _, m := range []string{"active", "dropped-with-nats", "dropped-without-nats"} {
		sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: m, Dimensions: 3, Template: "title-abstract-v1"})
		if err != nil {
			t.Fatal(err)
		}
		spaces = append(spaces, sp)
	}
	// What an interrupted run into sp leaves: its consumer, and its two papers' messages.
	interrupted := func(sp paper.Space) pipeline.ReprocessTarget {
		t.Helper()
		return interruptedRun(t, e, js, sp, false, "arxiv:2401.00000", "arxiv:2401.00001")
	}
	has := func(target pipeline.ReprocessTarget) bool { t.Helper(); return hasQueue(t, js, target) }
	// queuedAfter is what a run of target that comes later is handed.
	queuedAfter := func(target pipeline.ReprocessTarget) uint64 {
		t.Helper()
		if err := pipeline.EnsureReprocessConsumer(ctx, js, pipeline.TopologyConfig{}, target, "a later run"); err != nil {
			t.Fatal(err)
		}
		n, err := pipeline.Queued(ctx, js, target)
		if err != nil {
			t.Fatal(err)
		}
		if err := js.DeleteConsumer(ctx, pipeline.StreamPapers, target.Consumer); err != nil {
			t.Fatal(err)
		}
		return n
	}

	target := interrupted(spaces[1])
	var said bytes.Buffer
	if err := dropSpace(ctx, e.c, e.st, spaces[1].Name(), false, &said); err != nil {
		t.Fatal(err)
	}
	if has(target) || !strings.Contains(said.String(), "removed its re-processing queue (2 messages") {
		t.Errorf("after spaces drop the consumer of the space's interrupted run is still there (%v), or drop said:\n%s", has(target), said.String())
	}
	if n := queuedAfter(target); n != 0 {
		t.Errorf("after spaces drop %d messages of the space's interrupted run are still queued, want none", n)
	}

	target = interrupted(spaces[2])
	said.Reset()
	noNATS := e.cfg(func(c *config) { c.NATSURL = "nats://127.0.0.1:1" })
	if err := dropSpace(ctx, noNATS, e.st, spaces[2].Name(), false, &said); err != nil {
		t.Fatalf("spaces drop without NATS: %v", err)
	}
	if _, err := e.st.FindSpace(ctx, spaces[2].Name()); !errors.Is(err, paper.ErrNotFound) || !strings.Contains(said.String(), "could not remove") {
		t.Errorf("spaces drop without NATS: the space is still found (%v), or drop said:\n%s", err, said.String())
	}
	cli := newCLI(t, "DATABASE_URL="+e.c.DatabaseURL, "NATS_URL="+e.nats.ClientURL())
	if r := cli.ok("status"); !strings.Contains(r.stdout, "re-processing into space "+spaces[2].Name()+", which was dropped") {
		t.Errorf("status does not say the consumer's space was dropped:\n%s", r.stdout)
	}
	var st struct {
		Backlog []struct {
			Consumer     string `json:"consumer"`
			DroppedSpace string `json:"dropped_space"`
		} `json:"backlog"`
	}
	cli.json(&st, "status")
	if !slices.ContainsFunc(st.Backlog, func(b struct {
		Consumer     string `json:"consumer"`
		DroppedSpace string `json:"dropped_space"`
	}) bool {
		return b.Consumer == target.Consumer && b.DroppedSpace == spaces[2].Name()
	}) {
		t.Errorf("status --json: backlog %+v, want %s with dropped_space %s", st.Backlog, target.Consumer, spaces[2].Name())
	}
	// The status page and GET /api/status say so too: they said "No worker is running" for it,
	// as if a worker could process it.
	base := startServe(t, cli)
	var api struct {
		Backlog []struct {
			Consumer     string `json:"consumer"`
			DroppedSpace string `json:"dropped_space"`
			NoWorker     bool   `json:"no_worker_running"`
		} `json:"backlog"`
	}
	getJSON(t, base+"/api/status", &api)
	if i := slices.IndexFunc(api.Backlog, func(b struct {
		Consumer     string `json:"consumer"`
		DroppedSpace string `json:"dropped_space"`
		NoWorker     bool   `json:"no_worker_running"`
	}) bool {
		return b.Consumer == target.Consumer
	}); i < 0 || api.Backlog[i].DroppedSpace != spaces[2].Name() || api.Backlog[i].NoWorker {
		t.Errorf("GET /api/status: backlog %+v, want %s with dropped_space %s and no_worker_running false", api.Backlog, target.Consumer, spaces[2].Name())
	}
	page := getBody(t, base+"/status")
	if want := "re-processes into space <code>" + spaces[2].Name() + "</code>, which was dropped: nothing processes its 2 messages"; !strings.Contains(page, want) ||
		strings.Contains(page, "No worker is running for <code>"+target.Consumer) {
		t.Errorf("the status page does not say %q, or says no worker runs it:\n%s", want, page)
	}
	said.Reset()
	if err := dropSpace(ctx, e.c, e.st, spaces[2].Name(), false, &said); err != nil {
		t.Fatalf("spaces drop of the dropped space's name: %v", err)
	}
	if has(target) || queuedAfter(target) != 0 {
		t.Errorf("spaces drop of the dropped space's name left its queue; said:\n%s", said.String())
	}
	if err := dropSpace(ctx, e.c, e.st, spaces[2].Name(), false, &said); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("spaces drop of a name with neither space nor queue: %v, want not found", err)
	}
}

// A paper row another session holds locked (a transaction left open in psql, a stuck tool)
// held import-embeddings silently at that paper's chunk, for as long as the lock lasted. It
// says what it waits for, loads the chunk once the lock is gone and, when it is not gone after
// importLockedWait, stops saying which papers are locked and what to run.
func TestImportEmbeddingsSaysWhatLockedPaperItWaitsFor(t *testing.T) {
	// Not parallel: it sets importLockedWait.
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	st, err := store.Open(ctx, store.Config{URL: e.c.DatabaseURL, RowLockTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	holder, err := e.st.Pool().Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = holder.Rollback(context.WithoutCancel(ctx)) }()
	if _, err := holder.Exec(ctx, `SELECT FROM papers WHERE id = 'arxiv:2401.00001' FOR UPDATE`); err != nil {
		t.Fatal(err)
	}
	file := writeLines(t,
		`{"id":"2401.00000","embedding":[1,0,0,0],"model":"imported"}`,
		`{"id":"2401.00001","embedding":[0,1,0,0],"model":"imported"}`,
		`{"id":"2401.00002","embedding":[0,0,1,0],"model":"imported"}`)
	type result struct {
		res importResult
		err error
	}
	start := func(errw io.Writer) chan result {
		done := make(chan result, 1)
		go func() {
			res, err := importEmbeddings(ctx, st, file, 5000, errw)
			done <- result{res, err}
		}()
		return done
	}
	wait := func(done chan result) result {
		select {
		case r := <-done:
			return r
		case <-time.After(30 * time.Second):
			_ = holder.Rollback(ctx) // let the import end
			t.Fatal("import-embeddings still waits for the locked paper after 30s")
			return result{}
		}
	}
	old := importLockedWait
	defer func() { importLockedWait = old }()

	// The lock outlasts the wait: the import stops, naming the paper and what to do.
	importLockedWait.tries, importLockedWait.pause = 2, 10*time.Millisecond
	var errw lockedBuffer
	r := wait(start(&errw))
	if !errors.Is(r.err, paper.ErrLocked) || !strings.Contains(r.err.Error(), "arxiv:2401.00001") ||
		!strings.Contains(r.err.Error(), "run the same command again") {
		t.Errorf("import while a paper stays locked: %v; want ErrLocked naming arxiv:2401.00001 and what to run", r.err)
	}
	if want := file + ":1-3: waiting for paper arxiv:2401.00001, which another session holds locked"; !strings.Contains(errw.String(), want) {
		t.Errorf("messages lack %q:\n%s", want, errw.String())
	}

	// The lock ends while the import waits: the chunk is loaded.
	importLockedWait.tries = 1 << 20
	var errw2 lockedBuffer
	done := start(&errw2)
	for deadline := time.Now().Add(30 * time.Second); !strings.Contains(errw2.String(), "waiting for paper arxiv:2401.00001"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			_ = holder.Rollback(ctx)
			t.Fatalf("import-embeddings does not say what it waits for:\n%s", errw2.String())
		}
	}
	if err := holder.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if r := wait(done); r.err != nil || r.res.Loaded != 3 {
		t.Errorf("import once the lock was gone: %+v, %v; want 3 loaded\n%s", r.res, r.err, errw2.String())
	}
}

// interruptedRun makes what an interrupted `reprocess` into sp leaves: its consumer, and the
// messages of the papers ids. old: as a release made it whose consumers did not record their
// space's id (pipeline.MetaSpaceID).
func interruptedRun(t *testing.T, e *archiveEnv, js jetstream.JetStream, sp paper.Space, old bool, ids ...string) pipeline.ReprocessTarget {
	t.Helper()
	ctx := t.Context()
	w := paper.Work{Model: e.c.ChatModel, PromptVersion: summarize.PromptVersion, SpaceID: sp.ID}
	target := pipeline.NewReprocessTarget(w, sp.Name())
	made := target
	if old {
		made = pipeline.NewReprocessTarget(paper.Work{Model: w.Model, PromptVersion: w.PromptVersion}, sp.Name())
		made.Subject, made.Consumer = target.Subject, target.Consumer
	}
	if err := pipeline.EnsureReprocessConsumer(ctx, js, pipeline.TopologyConfig{AckWait: e.c.AckWait, MaxDeliver: e.c.MaxDeliver},
		made, reprocessDescription(w, sp)); err != nil {
		t.Fatal(err)
	}
	pub := pipeline.NewRunPublisher(js, target.Subject, "interrupted-"+sp.Model, 0)
	for _, id := range ids {
		rec, err := e.st.Paper(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if err := pub.Publish(ctx, rec.Abstract); err != nil {
			t.Fatal(err)
		}
	}
	if err := pub.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	return target
}

// hasQueue reports whether target's re-processing queue (its consumer) is in the stream.
func hasQueue(t *testing.T, js jetstream.JetStream, target pipeline.ReprocessTarget) bool {
	t.Helper()
	bls, err := pipeline.Backlogs(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	return slices.ContainsFunc(bls, func(b pipeline.Backlog) bool { return b.Consumer == target.Consumer })
}
