package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/nats-io/nats.go/jetstream"
	"golang.org/x/sync/errgroup"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/pricing"
	"github.com/paperpipe/paperpipe/internal/redact"
	"github.com/paperpipe/paperpipe/internal/reprocess"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

func cmdIngest(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("ingest", "FILE|URL|- ...", "Publish abstracts for processing. The format is detected from the content unless --format is given.\n"+
		"A bad record is reported with its file and line and skipped; a source that cannot be read to its end is reported\n"+
		"and the next one is read. The exit status is 1 when a record was rejected or a source failed; a source without\n"+
		"papers (an empty file, a feed without entries) is a warning that names it. A full queue (the workers lag behind)\n"+
		"stops it, exit 1, with the papers it refused counted in the summary.\n"+
		"Ctrl-C stops reading at once (standard input and named pipes too), waits up to 5 s for the queue to confirm what\n"+
		"was sent, and prints the summary, exit 130 (143 for SIGTERM); ingesting the same input again is safe: repeats\n"+
		"within the queue's duplicate window (an hour, or a NATS server's lower max_duplicate_window, which the summary\n"+
		"names) are dropped, later ones cost the workers a database check and the record of its latest reading each,\n"+
		"no API call.")
	input := addInputFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	opts, err := input.options(pos, "")
	if err != nil {
		return err
	}
	log := newLogger(c)
	b, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		return err
	}
	defer b.close()

	pub := pipeline.NewPublisher(b.js, pipeline.SubjectNew, 256)
	var read, rejected, failed, empty int
	var stop error // the queue failed, or Ctrl-C: the sources left are not read
	for _, path := range pos {
		n, bad, err := publishFile(ctx, pub, path, opts)
		read += n
		rejected += bad
		var qe queueError
		switch {
		case errors.Is(err, errNoPapers):
			// A warning, not a failure: a scraper's empty file of a quiet day.
			empty++
			fmt.Fprintf(os.Stderr, "paperpipe ingest: %s\n", termSafe(err.Error(), false))
		case err == nil:
		case errors.As(err, &qe) || ctx.Err() != nil:
			stop = err
		default:
			// This source could not be read (to its end): the records read before the
			// error are published, and the next sources are read.
			failed++
			fmt.Fprintf(os.Stderr, "paperpipe ingest: %s\n", errorMessage(err))
		}
		if stop != nil {
			break
		}
	}
	flushCtx := ctx
	interrupted := ctx.Err() != nil
	if interrupted {
		// What was sent is in the server's hands: wait a few seconds for its answers, so that
		// the summary counts them, not a context the stop ended.
		var cancel context.CancelFunc
		flushCtx, cancel = context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
	}
	flushErr := pub.Flush(flushCtx)
	st := pub.Stats()
	note := ""
	if empty > 0 {
		note = ", " + plural(empty, "source", "sources") + " without papers"
	}
	if failed > 0 {
		note += ", " + plural(failed, "source", "sources") + " failed"
	}
	if st.Refused > 0 {
		note += fmt.Sprintf(", %d refused by the queue", st.Refused)
	}
	if n := pub.Unconfirmed(); n > 0 {
		note += fmt.Sprintf(", %d sent, not confirmed: ingesting again is safe", n)
		if errors.Is(flushErr, context.DeadlineExceeded) || errors.Is(flushErr, context.Canceled) {
			flushErr = nil // said in the summary
		}
	}
	fmt.Fprintf(os.Stderr, "ingest: %d read, %d published, %d dropped as repeats (same record published %s), %d rejected%s\n",
		read, st.Published, st.Duplicates, withinWindow(pub.DuplicateWindow()), rejected, note)
	full := queueFull(stop, flushErr)
	switch {
	case interrupted:
		why := errors.New("interrupted")
		if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			why = fmt.Errorf("stopped: %w", cause) // NATS refused paperpipe (config.fail)
		}
		return errors.Join(why, flushErr)
	case full != nil:
		// Said once for every paper refused, counted in the summary, not once per message.
		return fmt.Errorf("%w: %s refused (the first: publish %s: %v); the queue keeps what was published before "+
			"(`paperpipe status` shows it waiting): run the workers to drain it, or give the NATS server room (disk, "+
			"its max_file_store, the PAPERS stream's limits), then ingest the same input again: the papers queued or "+
			"stored already cost no API call", pipeline.ErrQueueFull, plural(st.Refused, "paper", "papers"), full.MsgID, full.Err)
	case stop != nil:
		return stop
	case flushErr != nil:
		return flushErr
	}
	// What became of the records that were not rejected: "the others were handed to the queue"
	// of a file whose every record was rejected sent the reader looking for them.
	others, before := "the others were handed to the queue (see the summary above)", "the records read before were handed to the queue (see the summary above)"
	if read == 0 {
		others, before = "no record was queued", "no record was queued"
	}
	switch {
	case failed > 0 && rejected > 0:
		return fmt.Errorf("%s failed and %s rejected (see the messages above); %s", plural(failed, "source", "sources"), plural(rejected, "record", "records"), others)
	case failed > 0:
		return fmt.Errorf("%s failed (see the messages above); %s", plural(failed, "source", "sources"), before)
	case rejected > 0:
		return fmt.Errorf("%s rejected (see the messages above); %s", plural(rejected, "record", "records"), others)
	}
	return nil
}

// withinWindow says how far apart a repeat is dropped, for ingest's summary: the PAPERS
// stream's duplicate window d — paperpipe's hour, or a NATS server's lower
// max_duplicate_window, which the streams take — or, when it could not be read (0), the
// queue's window unnamed.
func withinWindow(d time.Duration) string {
	unit := func(n int64, one, many string) string {
		if n == 1 {
			return "within the last " + one
		}
		return fmt.Sprintf("within the last %d %s", n, many)
	}
	switch {
	case d <= 0:
		return "within the queue's duplicate window"
	case d == time.Hour:
		return "within the hour"
	case d%time.Hour == 0:
		return unit(int64(d/time.Hour), "hour", "hours")
	case d%time.Minute == 0:
		return unit(int64(d/time.Minute), "minute", "minutes")
	case d%time.Second == 0:
		return unit(int64(d/time.Second), "second", "seconds")
	}
	return "within the last " + d.String()
}

// inputFlags are the flags of the commands that read sources as ingest does (ingest, summarize,
// embed): the input format, and --max-abstract-bytes, the longest abstract read — summarize and
// embed try a model on the papers an ingest with a larger limit stores, so they take it too.
type inputFlags struct {
	format   *string
	maxBytes *int
}

func addInputFlags(fs *flag.FlagSet) inputFlags {
	return inputFlags{
		format:   fs.String("format", "auto", "input format: auto, text, jsonl, oai (the arXiv metadata snapshot's JSON lines, not OAI-PMH XML), atom, rss, hf"),
		maxBytes: fs.Int("max-abstract-bytes", 32<<10, "reject abstracts longer than this many bytes (at least 1)"),
	}
}

// options returns how command reads the sources pos names, or the usage error of no source
// named, standard input named twice, an unknown format or a --max-abstract-bytes below 1.
func (in inputFlags) options(pos []string, command string) (ingest.Options, error) {
	if len(pos) == 0 {
		return ingest.Options{}, usageErr("name a file, a URL, or - for standard input")
	}
	// Read as the first source, it is empty for the second, which then warned of a source
	// without papers, as if the input had had none.
	if i := slices.Index(pos, "-"); i >= 0 && slices.Contains(pos[i+1:], "-") {
		return ingest.Options{}, usageErr("standard input (-) can be read once")
	}
	f, err := ingest.ParseFormat(*in.format)
	if err != nil {
		return ingest.Options{}, usageErr("%v", err)
	}
	if *in.maxBytes < 1 {
		return ingest.Options{}, usageErr("--max-abstract-bytes %d: want at least 1", *in.maxBytes)
	}
	// The pace of arXiv's API is kept with the other commands of this data directory.
	return ingest.Options{Format: f, Command: command, MaxAbstractBytes: *in.maxBytes, PaceDir: dataDir()}, nil
}

// queueFull returns the first of errs that is a refusal of the queue for being full
// (pipeline.ErrQueueFull); nil when none is.
func queueFull(errs ...error) *pipeline.PublishError {
	for _, err := range errs {
		var re *pipeline.PublishError
		if errors.Is(err, pipeline.ErrQueueFull) && errors.As(err, &re) {
			return re
		}
	}
	return nil
}

// errNoPapers is a source without any record, good or bad (an empty file, an Atom feed without
// entries): a warning that names it, not a failure.
var errNoPapers = errors.New("no papers in it")

// noPapers is errNoPapers for the source shown as name: "NAME: no papers in it".
func noPapers(name string) error { return fmt.Errorf("%s: %w", name, errNoPapers) }

// queueError is a failure of the queue, not of the source being read: ingest stops at it, as
// the sources after it could not be published either.
type queueError struct{ error }

func (e queueError) Unwrap() error { return e.error }

// publishFile publishes every good record of one source; bad records are reported on stderr
// with their file and line and counted.
func publishFile(ctx context.Context, pub *pipeline.Publisher, path string, opts ingest.Options) (read, rejected int, err error) {
	r, closer, err := ingest.OpenContext(ctx, path, opts) // Ctrl-C ends a stalled download at once
	if err != nil {
		return 0, 0, err
	}
	defer closer.Close()
	// A URL is shown without its secrets, as in the records' Source.
	name := ingest.Name(path)
	prog := newProgress(os.Stderr, name)
	defer prog.done(r.Offset())
	for {
		if err := ctx.Err(); err != nil {
			return read, rejected, err
		}
		a, err := r.Next()
		if errors.Is(err, io.EOF) {
			if r.Empty() {
				return 0, 0, noPapers(name)
			}
			return read, rejected, nil
		}
		var rec *ingest.RecordError
		if errors.As(err, &rec) {
			rejected++
			fmt.Fprintln(os.Stderr, termSafe(rec.Error(), false))
			continue
		}
		if err != nil {
			return read, rejected, err // it names the file and line
		}
		// A record too large for the queue is one bad record, like those ingest rejects.
		err = pub.Publish(ctx, a)
		var tl *pipeline.TooLargeError
		if errors.As(err, &tl) {
			rejected++
			fmt.Fprintln(os.Stderr, termSafe(fmt.Sprintf("%s: %s: %v", a.Source, a.ID, tl), false))
			continue
		}
		read++
		if err != nil {
			return read, rejected, queueError{err}
		}
		prog.tick(read, r.Offset())
	}
}

func cmdWorker(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("worker", "", "Consume abstracts and write TL;DRs and embeddings until interrupted.")
	c.addWorkerFlags(fs)
	idle := fs.Bool("exit-when-idle", false, "exit once the queue is empty (for batch jobs and the demo); stopped before then (Ctrl-C, SIGTERM), exit 130 or 143")
	consumer := fs.String("consumer", pipeline.ConsumerNew, "the durable consumer to pull from, by `name` (paperpipe status lists them)")
	fs.StringVar(&c.MetricsAddr, "metrics", c.MetricsAddr, "serve /metrics, /healthz and /readyz on this `address` (such as 0.0.0.0:9090; empty: none); env PAPERPIPE_METRICS_ADDR")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.checkWorkerFlags(); err != nil {
		return err
	}
	if c.MetricsAddr != "" {
		if err := checkListenAddr(c.MetricsAddr, "--metrics", "PAPERPIPE_METRICS_ADDR"); err != nil {
			return err
		}
		if err := c.checkAPIToken(); err != nil {
			return err
		}
		enableMetrics(c, newLogger(c))
	}
	err := runWorkers(ctx, c, []string{*consumer}, *idle, false)
	if err == nil && *idle && ctx.Err() != nil {
		// Not idle: stopped. A script or a Job that runs the next step on success must not
		// take a drained queue for an empty one.
		return fmt.Errorf("interrupted before the queue was empty; run it again to go on: %w", context.Cause(ctx))
	}
	return err
}

func cmdUp(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("up", "", "Run NATS (embedded unless NATS_URL is set), a worker and the web UI, API and /metrics in one process.")
	c.addWorkerFlags(fs)
	c.addHTTPFlag(fs)
	if f := fs.Lookup("http"); f != nil {
		f.Usage += `; "" runs without them (no web UI, API or /metrics)`
	}
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.checkWorkerFlags(); err != nil {
		return err
	}
	if c.HTTPAddr != "" { // --http "" runs without the web surfaces
		if err := checkListenAddr(c.HTTPAddr, "--http", "PAPERPIPE_HTTP_ADDR"); err != nil {
			return err
		}
		if err := c.checkAPIToken(); err != nil {
			return err
		}
		c.serveHTTP = true
		enableMetrics(c, newLogger(c))
	}
	return runWorkers(ctx, c, []string{pipeline.ConsumerNew}, false, true)
}

// errSpaceChanged stops a run of workers whose offline embedder is no longer the active
// space's: runWorkers starts them again with the new one.
var errSpaceChanged = errors.New("the active embedding space changed")

// runWorkers runs one worker per consumer until ctx is done, then drains them. Workers on the
// default offline embedder ("offline") follow the active space: when another offline model's
// space becomes active (`paperpipe fit`), they drain and start again with that model, so new
// papers land where queries look. The web server (`up`) runs once beside them, across such
// restarts: its query embedder follows the active space by itself (activeOffline).
func runWorkers(ctx context.Context, c *config, consumers []string, exitWhenIdle, announce bool) error {
	if err := c.checkAPI(true, true); err != nil {
		return err
	}
	log := newLogger(c)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return interruptedStart(ctx, err)
	}
	defer st.Close()
	role := brokerClient
	if slices.Contains(consumers, pipeline.ConsumerNew) {
		role = newPaperWorkers
		if c.archive, err = archiveOwner(ctx, st); err != nil {
			return interruptedStart(ctx, err)
		}
	}
	b, err := connectBroker(ctx, c, log, role)
	if err != nil {
		return interruptedStart(ctx, err)
	}
	defer b.close()
	m, err := buildModels(ctx, c, log, st)
	if err != nil {
		return interruptedStart(ctx, err)
	}
	wctx, stopServing := context.WithCancel(ctx)
	defer stopServing()
	g, gctx := errgroup.WithContext(wctx)
	switch {
	case c.serveHTTP:
		g.Go(func() error { return serveHTTP(gctx, c, log, st, st, b, m, "up") })
	case c.MetricsAddr != "" && c.metrics != nil: // worker --metrics
		g.Go(func() error { return serveProbes(gctx, c, log, st, b) })
	}
	g.Go(func() error {
		defer stopServing() // the server stops when the workers return (exitWhenIdle or ctx)
		return followingWorkers(gctx, c, log, st, b, m, consumers, exitWhenIdle, announce)
	})
	return g.Wait()
}

// followingWorkers runs the workers with models m, and again with the models of the active
// space each time it moves to another offline model's (errSpaceChanged).
func followingWorkers(ctx context.Context, c *config, log *slog.Logger, st *store.Store, b *broker, m *models,
	consumers []string, exitWhenIdle, announce bool) error {
	// A step that fails while the workers start, or restart on a new space, is said unless ctx
	// ended meanwhile (interruptedStart): a Ctrl-C or SIGTERM then is a stop like any other (the
	// workers have drained), not a failure of the step it cut short.
	followed := false
	for {
		if err := refuseDroppedSpace(ctx, c, st, m.emb.Space()); err != nil {
			return interruptedStart(ctx, err)
		}
		space, err := st.EnsureSpace(ctx, m.emb.Space())
		if err != nil {
			return interruptedStart(ctx, err)
		}
		if !space.Active {
			warnInactiveSpace(ctx, c, log, st, space)
		}
		if followed {
			if err := queueMissing(ctx, log, st, b, space); err != nil {
				return interruptedStart(ctx, err)
			}
		}
		err = runWorkersOnce(ctx, c, log, st, b, m, space, consumers, exitWhenIdle, announce)
		if !errors.Is(err, errSpaceChanged) {
			return err
		}
		announce, followed = false, true
		// --embed-dimensions was checked against the model the workers started with: the one
		// they follow now is the active space's, of whatever length `fit` gave it.
		c.embedDimsFlag = false
		if m, err = buildModels(ctx, c, log, st); err != nil {
			return interruptedStart(ctx, err)
		}
	}
}

// interruptedStart is err, a step of a long-running command's start (up, worker, serve:
// connecting, migrating, loading the models) that failed, unless ctx ended meanwhile: a Ctrl-C
// or SIGTERM while the command starts is a stop like the one that ends it once it runs — exit
// 0, nothing said — not a failure of the step it cut short ("connect to database …: context
// canceled", exit 1). A part of the process that stopped it (config.fail) is still said: run
// reports ctx's cause.
func interruptedStart(ctx context.Context, err error) error {
	if err != nil && ctx.Err() != nil {
		return nil
	}
	return err
}

// refuseDroppedSpace refuses to start workers whose embedder's space sp was dropped
// (`paperpipe spaces drop`) and not made again since: EnsureSpace made it again, empty, and the
// workers bought the vectors of every new paper for a space no query uses, said only by a
// warning in their log (found in session 28: a machine left on the old model after a switch
// and a drop). Stale settings are a settings error, said at start with the active space's
// settings; a space wanted back is made on purpose by a command that fills it.
func refuseDroppedSpace(ctx context.Context, c *config, st *store.Store, sp paper.Space) error {
	at, err := st.DroppedAt(ctx, sp)
	if err != nil || at.IsZero() {
		return err
	}
	use := ""
	if a, err := st.ActiveSpace(ctx); err == nil {
		use = fmt.Sprintf("; queries use space %d (%s)", a.ID, a.Name())
		if want := settingsFor(c, a); want != "" {
			use += fmt.Sprintf(": set %s and start the workers again", want)
		}
	}
	return usageErr("embedding space %s was dropped on %s (`paperpipe spaces drop`): these settings would make it again, "+
		"and buy the vectors of every new paper for a space no query uses%s; to embed into it again on purpose, "+
		"make it first with `paperpipe reprocess --embed-only` on these settings, which fills it",
		sp.Name(), at.UTC().Format(time.DateTime+" UTC"), use)
}

// warnInactiveSpace says that the workers embed into space, which queries do not use, and what
// to do about it: after a model change (such as an API key set after `make demo`), new papers
// land in a new space while search and related papers keep the active one, and searches
// embedded by the new model are refused until the new space is filled and activated.
func warnInactiveSpace(ctx context.Context, c *config, log *slog.Logger, st *store.Store, space paper.Space) {
	active, keep := "another space", ""
	if sp, err := st.ActiveSpace(ctx); err == nil {
		active = fmt.Sprintf("space %d (%s)", sp.ID, sp.Name())
		if sp.Template == embed.TemplateTitleAbstract {
			if want := settingsFor(c, sp); want != "" {
				keep = fmt.Sprintf("; or, to go on with the active space, set %s (an --embed-model flag overrides it) and restart the workers", want)
			}
		}
	}
	hint, filling := spaceFillHint(ctx, st, space)
	then := "then"
	if filling {
		then = "once it ends,"
	}
	log.Warn(fmt.Sprintf("embeddings go to space %d (%s), which is not active: queries use %s, and searches embedded by %s are refused "+
		"(embedding space mismatch, HTTP 409) until the space is filled and active: %s, %s switch to it with `paperpipe activate %d`%s",
		space.ID, space.Name(), active, space.Model, hint, then, space.ID, keep))
}

// queueMissing publishes, for the workers about to start on space after following it, the
// papers that have no vector in it: those that arrived between the space's fill (`paperpipe
// fit`) and the workers noticing it became active were embedded into the old space, and would
// otherwise be missing from the one queries now use. Their TL;DRs are stored, so only their
// vectors are made (and the TL;DRs of those that had none). Every worker process following the
// space queues them: their message ids name the space and not the process, so the server drops
// the copies of a second follower within the duplicate window (an hour by default), and a
// paper's missing TL;DR is not bought by two workers at once. (So would it drop a paper queued
// by an earlier follow of the same space within that hour, if the paper still lacked its vector:
// its message was dead-lettered then, and `paperpipe dlq replay` puts it back.)
func queueMissing(ctx context.Context, log *slog.Logger, st *store.Store, b *broker, space paper.Space) error {
	pub := pipeline.NewRunPublisher(b.js, pipeline.SubjectNew, "follow-space-"+strconv.FormatInt(space.ID, 10), 256)
	// A worker of another process that still runs on the space this one left hands the copies
	// back instead of taking them for its own space (see runWorkersOnce).
	pub.ForSpace(space.ID)
	n, err := reprocess.PublishStale(ctx, st, store.Selection{Work: paper.Work{SpaceID: space.ID}}, pub, 0, nil, func(id string, err error) {
		log.Warn("a paper missing from the space cannot be queued", "paper", id, "err", err)
	})
	if err != nil {
		return fmt.Errorf("queue the papers missing from space %s: %w", space.Name(), err)
	}
	if n > 0 {
		log.Info("queued the papers missing from the space the workers now use", "space", space.Name(), "papers", n)
	}
	return nil
}

// runWorkersOnce runs the workers with models m, embedding into space (m's), until ctx is done
// or (see runWorkers) the active space moves to another offline model.
func runWorkersOnce(ctx context.Context, c *config, log *slog.Logger, st *store.Store, b *broker, m *models,
	space paper.Space, consumers []string, exitWhenIdle, announce bool) error {
	if announce {
		fmt.Fprintf(os.Stderr, "paperpipe up: NATS %s (%s)\n", redact.URL(b.nc.ConnectedUrl()), b.where(c))
		fmt.Fprintf(os.Stderr, "paperpipe up: TL;DRs by %s (prompt %s), embeddings in space %s\n", m.sum.Model(), m.sum.PromptVersion(), space.Name())
		fmt.Fprintln(os.Stderr, "paperpipe up: publish papers with `paperpipe ingest FILE` in another terminal; Ctrl-C stops after in-flight work")
	}
	workers := make([]*pipeline.Worker, len(consumers))
	g, gctx := errgroup.WithContext(ctx)
	following := c.EmbedModel == offline && !exitWhenIdle && c.FollowInterval > 0
	// look asks followActiveSpace to look at the active space now, not at its next tick.
	look := make(chan struct{}, 1)
	var otherSpace func(context.Context, int64) bool
	if following {
		// A copy another process queued for the space it followed (queueMissing), taken here
		// before this process has noticed that space became active: taken for this worker's
		// space, where the paper may lack nothing, it would be acknowledged and its paper
		// never embedded into the space queries use. It goes back for that space's workers
		// while the space is active (these workers restart on it at once); a copy for a space
		// no longer active is processed here as any message.
		otherSpace = func(ctx context.Context, id int64) bool {
			active, err := st.ActiveSpace(ctx)
			if err != nil || active.ID != id || !embed.IsOfflineModel(active.Model) {
				return false
			}
			select {
			case look <- struct{}{}:
			default:
			}
			return true
		}
	}
	for i, name := range consumers {
		wst, wsum, wemb := workerDeps(c, st, m)
		w, err := pipeline.NewWorker(b.js, wst, wsum, wemb, pipeline.WorkerConfig{
			Consumer: name, SpaceID: space.ID, Concurrency: c.Concurrency, BatchSize: c.BatchSize,
			EmbedBatch: c.EmbedBatchInputs, EmbedLinger: c.EmbedLinger, MsgTimeout: c.MsgTimeout,
			ExitWhenIdle: exitWhenIdle, Logger: log.With("consumer", name), OtherSpace: otherSpace,
			APILimitedBy: m.lim.LimitedBy,
		})
		if err != nil {
			return err
		}
		workers[i] = w
		watchWorker(c, name, w)
		g.Go(func() error {
			// Announced until it has drained, not only until gctx ends.
			defer announceWorker(c, b, w, workerTarget(m.sum, space)).Stop()
			return w.Run(gctx)
		})
	}
	if following {
		g.Go(func() error { return followActiveSpace(gctx, c, log, st, space, look) })
	}
	err := g.Wait()
	for i, w := range workers {
		s := w.Stats()
		log.Info("worker stopped", "consumer", consumers[i], "received", s.Received, "acked", s.Acked,
			"skipped", s.Skipped, "retried", s.Retried, "dead", s.Dead, "paused", s.Paused, "db_paused", s.DBPaused, "tldrs", s.TLDRs, "embeddings", s.Embeddings)
	}
	return err
}

// announceWorker announces w in NATS (pipeline.BucketWorkers) for status and the status page,
// until Stop.
func announceWorker(c *config, b *broker, w *pipeline.Worker, target string) *pipeline.Announcer {
	return pipeline.Announce(b.js, w, pipeline.AnnounceConfig{Target: target, Version: version, Replicas: c.Replicas})
}

// workerTarget says what a worker writes: TL;DRs by sum (nil: none), vectors into space (ID 0:
// none).
func workerTarget(sum pipeline.Summarizer, space paper.Space) string {
	var parts []string
	if sum != nil {
		parts = append(parts, fmt.Sprintf("TL;DRs by %s (prompt %s)", sum.Model(), sum.PromptVersion()))
	}
	if space.ID != 0 {
		parts = append(parts, targetSpacePrefix+space.Name())
	}
	return strings.Join(parts, ", ")
}

// targetSpacePrefix precedes the embedding space in a worker's target (workerTarget).
const targetSpacePrefix = "embeddings in space "

// targetSpace is the embedding space a worker's target names, or "" when it writes no vectors.
func targetSpace(target string) string {
	_, name, _ := strings.Cut(target, targetSpacePrefix)
	return name
}

// workerNotes are status's notes on what the running workers write, against the archive: a
// worker (not a reprocess run's, which fills a space before it is activated) whose vectors go
// to a space queries do not use, or to one dropped under it, and the workers of one backlog
// that write different things. The worker warns of the first two once, in its log, as it
// starts or meets the drop; status listed it as "idle" or "working" like any other, while the
// papers it stored were found by no search (a worker left running after the switch to a new
// embedding model), and two workers started with different models each wrote half of the
// TL;DRs (found in session 28, walking a lab's journey). exists says whether a space of that
// name is in the archive; active is the active space's name ("" when none is).
func workerNotes(backlogs []statusBacklog, active string, exists func(name string) (bool, error)) ([]string, error) {
	var notes []string
	for _, bl := range backlogs {
		if strings.HasPrefix(bl.Consumer, "reprocess-") {
			continue
		}
		targets := map[string]bool{}
		for _, wk := range bl.Workers {
			targets[wk.Target] = true
			name := targetSpace(wk.Target)
			if name == "" || name == active {
				continue
			}
			who := fmt.Sprintf("worker %s pid %d", wk.Host, wk.PID)
			ok, err := exists(name)
			if err != nil {
				return nil, err
			}
			switch {
			case !ok:
				notes = append(notes, fmt.Sprintf("%s was started for space %s, which was dropped: it stores TL;DRs and no vectors; "+
					"restart it configured for the active space's model (PAPERPIPE_EMBED_MODEL and PAPERPIPE_EMBED_DIMENSIONS), "+
					"then `paperpipe reprocess --embed-only` embeds the papers it stored meanwhile", who, name))
			case active != "":
				notes = append(notes, fmt.Sprintf("%s writes embeddings in space %s, which queries do not use (the active space is %s): "+
					"search and related do not find the papers it stores until that space is filled and activated (`paperpipe activate`); "+
					"to embed into the active space, restart it configured for that space's model (PAPERPIPE_EMBED_MODEL and PAPERPIPE_EMBED_DIMENSIONS)",
					who, name, active))
			}
		}
		if len(targets) > 1 {
			notes = append(notes, fmt.Sprintf("the workers of backlog %s write different things (their `writes:` lines above): "+
				"each paper gets what the worker that takes it writes; start them all with the same settings", bl.Consumer))
		}
	}
	return notes, nil
}

// followActiveSpace checks the active space every PAPERPIPE_FOLLOW_INTERVAL, and at once when
// look receives, and returns errSpaceChanged once it is another offline model's than current;
// nil when ctx is done. Errors reading it are logged and retried: a database hiccup must not
// stop the workers.
func followActiveSpace(ctx context.Context, c *config, log *slog.Logger, st *store.Store, current paper.Space, look <-chan struct{}) error {
	t := time.NewTicker(c.FollowInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		case <-look:
		}
		active, err := st.ActiveSpace(ctx)
		if err != nil {
			if ctx.Err() == nil {
				log.Warn("could not read the active embedding space", "err", err)
			}
			continue
		}
		if active.ID != current.ID && embed.IsOfflineModel(active.Model) {
			log.Info("the active space is another offline model's: restarting the workers with it",
				"from", current.Name(), "to", active.Name())
			return errSpaceChanged
		}
	}
}

func cmdMigrate(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("migrate", "", "Apply the database migrations and print their state.")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	log := newLogger(c)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	states, err := st.MigrationStatus(ctx)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tNAME\tAPPLIED")
	for _, s := range states {
		name := s.Name
		if s.Unknown {
			name = "(not known to this paperpipe: a newer one applied it)"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\n", s.Version, name, s.AppliedAt)
	}
	return tw.Flush()
}

func cmdDLQ(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("dlq", "list | show SEQ... | replay SEQ|--all | drop SEQ|--all", "List dead-lettered messages (a reason cut at "+strconv.Itoa(pipeline.MaxShownReason)+" bytes), show them whole, put them back on their queue, or drop them for good.")
	c.addJSONFlag(fs)
	all := fs.Bool("all", false, "replay or drop every dead letter")
	limit := fs.Int("n", 100, "list: `N` dead letters, the oldest unless --newest or --from (0: all)")
	newest := fs.Bool("newest", false, "list: the newest N dead letters, newest first")
	from := fs.Uint64("from", 0, "list: the dead letters from sequence `SEQ` on, oldest first (the next page)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) == 0 {
		return usageErr("dlq list | dlq show SEQ... | dlq replay SEQ... | dlq replay --all | dlq drop SEQ... | dlq drop --all")
	}
	if *limit < 0 {
		return usageErr("-n is %d, want 0 (all) or more dead letters", *limit)
	}
	switch pos[0] {
	case "list":
		err = noMoreArgs("dlq list", pos[1:])
		if err == nil {
			err = onlyFor(fs, "dlq list", "json", "n", "newest", "from")
		}
		if err == nil && *newest && *from > 0 {
			err = usageErr("--newest and --from: one or the other")
		}
	case "show":
		err = onlyFor(fs, "dlq show", "json")
		if err == nil {
			_, err = deadLetterSeqs(pos[1:])
		}
		if err == nil && len(pos) == 1 {
			err = usageErr("name the dead letters to show")
		}
	case "replay", "drop":
		// Every usage error before NATS is reached (and the embedded server started).
		err = onlyFor(fs, "dlq "+pos[0], "all")
		if err == nil {
			_, err = deadLetterSeqs(pos[1:])
		}
		switch {
		case err != nil:
		case pos[0] == "drop" && *all && len(pos) > 1:
			err = usageErr("name the dead letters to drop, or --all, not both")
		case !*all && len(pos) == 1:
			err = usageErr("name the dead letters to %s, or --all", pos[0])
		}
	default:
		err = usageErr("unknown dlq action %q: want list, show, replay or drop", pos[0])
	}
	if err != nil {
		return err
	}
	log := newLogger(c)
	b, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		return err
	}
	defer b.close()
	switch pos[0] {
	case "list":
		dls, err := listDeadLetters(ctx, b, *limit, *newest, *from)
		if err != nil {
			return err
		}
		if c.JSON {
			return writeJSON(stdout, nonNil(dls))
		}
		if len(dls) == 0 {
			// A header alone read as a list that failed to come.
			if *from > 0 {
				fmt.Fprintf(os.Stderr, "no dead letters from sequence %d on\n", *from)
			} else {
				fmt.Fprintln(os.Stderr, "no dead letters")
			}
			return nil
		}
		tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "SEQ\tPAPER\tATTEMPTS\tFAILED\tREASON")
		for _, d := range dls {
			// The id and the reason (an API's error, a model's answer) are made terminal-safe.
			fmt.Fprintf(tw, "%d\t%s\t%d\t%s\t%s\n", d.Seq, termSafe(d.PaperID, false), d.Attempts, d.FailedAt.Format(time.DateTime), termSafe(d.Reason, false))
		}
		return tw.Flush()
	case "show":
		return showDeadLetters(ctx, b, c.JSON, pos[1:])
	case "drop":
		return dropDeadLetters(ctx, b, *all, pos[1:])
	case "replay":
		return replayDeadLetters(ctx, b, *all, pos[1:])
	default: // refused above
		return usageErr("unknown dlq action %q: want list, show, replay or drop", pos[0])
	}
}

// replayDeadLetters is `dlq replay`: it puts the dead letters named by args, or with all every
// one there is, back on the queues they came from. One that cannot be replayed (not found: a
// wrong number) is reported and the others go on, the exit status then 1; a queue that is full
// stops it.
func replayDeadLetters(ctx context.Context, b *broker, all bool, args []string) error {
	var seqs []uint64
	if all {
		dls, err := pipeline.ListDeadLetters(ctx, b.js, 0)
		if err != nil {
			return err
		}
		for _, d := range dls {
			seqs = append(seqs, d.Seq)
		}
	}
	named, err := deadLetterSeqs(args)
	if err != nil {
		return err
	}
	// Each once: a dead letter named twice, or named beside --all, would be replayed, then
	// not found.
	seqs = append(seqs, named...)
	seen := make(map[uint64]bool, len(seqs))
	seqs = slices.DeleteFunc(seqs, func(s uint64) bool {
		dup := seen[s]
		seen[s] = true
		return dup
	})
	if len(seqs) == 0 { // --all of none: a named one is checked above
		fmt.Fprintln(os.Stderr, "no dead letters to replay")
		return nil
	}
	// One that cannot be replayed (not found: a wrong number) is reported, and the others
	// go on: the run says how many went back either way.
	// With --all, a letter gone since the list was read was replayed (or removed) by
	// another process meanwhile, another shell's `dlq replay --all`: not a failure.
	replayed, failed, gone, toRuns := 0, 0, 0, 0
	for i, s := range seqs {
		subject, err := pipeline.ReplayDeadLetter(ctx, b.js, s)
		switch {
		case err == nil:
			replayed++
			if subject != pipeline.SubjectNew {
				toRuns++
			}
		case all && errors.Is(err, pipeline.ErrDeadLetterGone):
			gone++
		case ctx.Err() != nil:
			fmt.Fprintf(os.Stderr, "replayed %s before the interruption\n", plural(replayed, "dead letter", "dead letters"))
			return err
		case errors.Is(err, pipeline.ErrQueueFull):
			// Every one after it would be refused alike, one line each.
			fmt.Fprintf(os.Stderr, "replayed %s before the queue was full\n", plural(replayed, "dead letter", "dead letters"))
			return fmt.Errorf("%w; %d of the %s named %s still in the dead-letter stream: run the workers to drain the queue, then replay them again",
				err, len(seqs)-i, plural(len(seqs), "dead letter", "dead letters"), pick(len(seqs)-i, "is", "are"))
		default:
			// It may name the letter's paper, a header any client of the NATS account
			// writes: terminal-safe, as a command's own error is.
			fmt.Fprintf(os.Stderr, "paperpipe dlq replay: %s\n", errorMessage(err))
			failed++
		}
	}
	fmt.Fprintf(os.Stderr, "replayed %s\n", plural(replayed, "dead letter", "dead letters"))
	if gone > 0 {
		fmt.Fprintf(os.Stderr, "%s no longer there: replayed or removed by another process meanwhile\n", plural(gone, "dead letter was", "dead letters were"))
	}
	if toRuns > 0 {
		// A finished run's consumer is removed: nothing takes these until the run is
		// made again, and status shows no backlog for them meanwhile.
		it := "them"
		if toRuns == 1 {
			it = "it"
		}
		fmt.Fprintf(os.Stderr, "%d of them went back to a re-processing run's queue: run the same `paperpipe reprocess` again to process %s\n", toRuns, it)
	}
	if failed > 0 {
		return fmt.Errorf("%d of the %s named %s not replayed (above)", failed, plural(len(seqs), "dead letter", "dead letters"), pick(failed, "was", "were"))
	}
	return nil
}

// deadLetterSeqs reads the dead letters' sequence numbers args names, each once, in order.
// Sequences start at 1: the server answers 0 with a bare "bad request".
func deadLetterSeqs(args []string) ([]uint64, error) {
	var seqs []uint64
	for _, a := range args {
		n, err := strconv.ParseUint(a, 10, 64)
		if err != nil || n == 0 {
			return nil, usageErr("%q is not a dead-letter sequence number (see `paperpipe dlq list`)", a)
		}
		if !slices.Contains(seqs, n) {
			seqs = append(seqs, n)
		}
	}
	return seqs, nil
}

// listDeadLetters is `dlq list`'s read: the oldest limit dead letters (0: all), from sequence
// from on when from > 0, or the newest, newest first. A page that is not the whole queue says
// what is left out and how to see it (on stderr, so that --json stays a list), where a reader
// or a script would take it for every dead letter. It is read again across a takeover of the
// embedded server (see broker.acrossTakeover): a `dlq list` joined to the server of a process
// that stopped as it read failed.
func listDeadLetters(ctx context.Context, b *broker, limit int, newest bool, from uint64) ([]pipeline.DeadLetter, error) {
	var dls []pipeline.DeadLetter
	err := b.acrossTakeover(ctx, func(ctx context.Context) error {
		var err error
		dls, err = readDeadLetters(ctx, b, limit, newest, from)
		return err
	})
	return dls, err
}

// readDeadLetters is listDeadLetters' read, made once.
func readDeadLetters(ctx context.Context, b *broker, limit int, newest bool, from uint64) ([]pipeline.DeadLetter, error) {
	if newest {
		if limit == 0 {
			dls, err := pipeline.ListDeadLetters(ctx, b.js, 0)
			slices.Reverse(dls)
			return dls, err
		}
		dls, err := pipeline.LatestDeadLetters(ctx, b.js, limit)
		if err == nil && len(dls) == limit {
			if n, err := pipeline.CountDeadLetters(ctx, b.js); err == nil && n > uint64(len(dls)) {
				fmt.Fprintf(os.Stderr, "paperpipe dlq list: the newest %d of %d dead letters; -n 0 lists them all\n", len(dls), n)
			}
		}
		return dls, err
	}
	if limit == 0 {
		return pipeline.DeadLettersFrom(ctx, b.js, from, 0)
	}
	dls, err := pipeline.DeadLettersFrom(ctx, b.js, from, limit+1) // one more: are there more?
	if err != nil || len(dls) <= limit {
		return dls, err
	}
	next := dls[limit].Seq
	dls = dls[:limit]
	what := fmt.Sprintf("the %d from sequence %d on", limit, dls[0].Seq)
	if from == 0 {
		what = fmt.Sprintf("the oldest %d", limit)
	}
	if n, err := pipeline.CountDeadLetters(ctx, b.js); err == nil {
		what += fmt.Sprintf(" of %d dead letters", n)
	}
	fmt.Fprintf(os.Stderr, "paperpipe dlq list: %s; --from %d lists the next, --newest the newest, -n 0 them all\n", what, next)
	return dls, nil
}

// showDeadLetters prints the dead letters named, each with its reason whole (`dlq list` cuts
// it: see pipeline.MaxShownReason), or as JSON; one not found is reported and the others shown
// (exit 1).
func showDeadLetters(ctx context.Context, b *broker, asJSON bool, args []string) error {
	seqs, err := deadLetterSeqs(args)
	if err != nil {
		return err
	}
	var dls []pipeline.DeadLetter
	failed := 0
	for _, s := range seqs {
		var d pipeline.DeadLetter
		err := b.acrossTakeover(ctx, func(ctx context.Context) error { // a read: see broker.acrossTakeover
			var err error
			d, err = pipeline.GetDeadLetter(ctx, b.js, s)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return err
			}
			fmt.Fprintf(os.Stderr, "paperpipe dlq show: %s\n", errorMessage(err))
			failed++
			continue
		}
		dls = append(dls, d)
	}
	if asJSON {
		err = writeJSON(stdout, nonNil(dls))
	} else {
		for i, d := range dls {
			if i > 0 {
				fmt.Fprintln(stdout)
			}
			// The id, the subject and the reason are any NATS client's to write: terminal-safe,
			// the reason's lines kept.
			fmt.Fprintf(stdout, "seq       %d\npaper     %s\nsubject   %s\nattempts  %d\nfailed    %s\n", d.Seq, termSafe(d.PaperID, false),
				termSafe(d.Subject, false), d.Attempts, d.FailedAt.Format(time.DateTime))
			if d.BodyLeftOut > 0 {
				fmt.Fprintf(stdout, "message   left out (%d bytes: it did not fit in a dead letter)\n", d.BodyLeftOut)
			}
			fmt.Fprintf(stdout, "reason    %s\n", termSafe(d.Reason, true))
		}
	}
	if err != nil {
		return err
	}
	if failed > 0 {
		return fmt.Errorf("%d of the %s named could not be shown (above)", failed, plural(len(seqs), "dead letter", "dead letters"))
	}
	return nil
}

// dropDeadLetters is `dlq drop`: it removes the dead letters named by seqs, or with all every
// one there is, for good — those that can never go through (a producer's malformed messages, a
// paper withdrawn), which otherwise stay, with no age limit. A letter that is not there (a
// wrong number, one replayed or dropped meanwhile) is reported and the others go on; the exit
// status is then 1.
func dropDeadLetters(ctx context.Context, b *broker, all bool, args []string) error {
	if all { // without args: cmdDLQ refuses both, and neither, before NATS is reached
		n, err := pipeline.DropAllDeadLetters(ctx, b.js)
		if err != nil {
			return err
		}
		if n == 0 {
			fmt.Fprintln(os.Stderr, "no dead letters to drop")
			return nil
		}
		fmt.Fprintf(os.Stderr, "dropped %s\n", plural(int(n), "dead letter", "dead letters"))
		return nil
	}
	seqs, err := deadLetterSeqs(args)
	if err != nil {
		return err
	}
	dropped, failed := 0, 0
	for _, s := range seqs {
		if err := pipeline.DropDeadLetter(ctx, b.js, s); err != nil {
			if ctx.Err() != nil {
				fmt.Fprintf(os.Stderr, "dropped %s before the interruption\n", plural(dropped, "dead letter", "dead letters"))
				return err
			}
			fmt.Fprintf(os.Stderr, "paperpipe dlq drop: %s\n", errorMessage(err))
			failed++
			continue
		}
		dropped++
	}
	fmt.Fprintf(os.Stderr, "dropped %s\n", plural(dropped, "dead letter", "dead letters"))
	if failed > 0 {
		return fmt.Errorf("%d of the %s named %s not dropped (above)", failed, plural(len(seqs), "dead letter", "dead letters"), pick(failed, "was", "were"))
	}
	return nil
}

// activeCoverage is the active space's coverage, which `status` shows when the configured
// embedder fills another space.
type activeCoverage struct {
	Space         paper.Space `json:"space"`
	WithEmbedding int64       `json:"with_embedding"`
}

func cmdStatus(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("status", "", "Show backlog per consumer with its running workers (paused ones with the reason and until when), papers processed, dead letters and API usage.")
	c.addJSONFlag(fs)
	c.addModelFlags(fs)
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	prices, err := pricing.Parse(c.Prices)
	if err != nil {
		return usageErr("PAPERPIPE_PRICES: %v", err)
	}
	c.modelMayBeMissing = true // its space is counted all the same, and the model said missing
	log, m, st, err := openModelsAndStore(ctx, c)
	if err != nil {
		return err
	}
	defer st.Close()
	_, missing := m.emb.(missingFitted)
	space, err := lookupSpace(ctx, st, m.emb.Space())
	if err != nil {
		return err
	}
	// The web's status counts the active space, which queries use; when the configured
	// embedder fills another, both are shown (a shell without the API settings of the workers
	// that filled the active space would otherwise read it as empty), counted in one pass.
	var active *activeCoverage
	var other int64 // the active space, counted with the configured one
	a, err := st.ActiveSpace(ctx)
	activeName := "" // none is active
	if err == nil {
		activeName = a.Name()
	}
	if err == nil && a.ID != space.ID {
		active, other = &activeCoverage{Space: a}, a.ID
	} else if err != nil && !errors.Is(err, paper.ErrNotFound) {
		return err
	}
	counts, inActive, err := st.CountsWith(ctx, paper.Work{Model: m.sum.Model(), PromptVersion: m.sum.PromptVersion(), SpaceID: space.ID}, other)
	if err != nil {
		return err
	}
	if active != nil {
		active.WithEmbedding = inActive
	}
	since := usageSince(time.Now())
	usage, err := st.Usage(ctx, since)
	if err != nil {
		return err
	}
	// A queue that cannot be read leaves the database's parts to show, as the status page
	// does: status said only that NATS could not be reached, and the operator of an outage
	// lost the counts and the usage with it (found in session 29, walking a lab's journey).
	// It still exits 1, naming the queue's error, for the scripts that watch it.
	var (
		backlogs   []statusBacklog
		dead       uint64
		noBucket   bool
		unread     uint64
		workersErr error
	)
	queueErr := func() error {
		b, err := connectBroker(ctx, c, log, brokerClient)
		if err != nil {
			return err
		}
		defer b.close()
		q, err := readQueueStatus(ctx, st, b)
		if err != nil {
			return err
		}
		backlogs, dead, noBucket, unread, workersErr = q.backlogs, q.dead, q.noBucket, q.unread, q.workersErr
		return nil
	}()
	if queueErr != nil {
		if ctx.Err() != nil {
			return queueErr
		}
		backlogs, dead = nil, 0
	}
	unfinished, err := st.UnfinishedIndexes(ctx)
	if err != nil {
		return err
	}
	costs := modelCosts(usage, prices)
	// A space that does not exist yet has no id: lookupSpace's -1 is for counting only.
	spaceNote := ""
	if space.ID < 0 {
		space.ID = 0 // omitted
		spaceNote = ", not created yet"
	}
	notes, err := workerNotes(backlogs, activeName, func(name string) (bool, error) {
		gone, err := spaceGone(ctx, st, name)
		return !gone, err
	})
	if err != nil {
		return err
	}
	if c.JSON {
		out := map[string]any{
			"papers": counts, "space": space, "tldr_model": m.sum.Model(), "prompt_version": m.sum.PromptVersion(),
			"backlog": nonNil(backlogs), "dead_letters": dead, "usage": nonNil(usage), "usage_since": since, "cost": nonNil(costs),
		}
		if active != nil {
			out["active_space"] = active
		}
		if len(unfinished) > 0 {
			out["unfinished_indexes"] = unfinished
		}
		if workersErr != nil {
			out["workers_error"] = workersErr.Error()
		}
		if noBucket { // as GET /api/status says it
			out["no_workers_bucket"] = true
		}
		if unread > 0 {
			out["workers_unread"] = unread
		}
		if missing {
			out["missing_model"] = map[string]string{"model": space.Model, "note": missingModelNote(space)}
		}
		if len(notes) > 0 { // as GET /api/status gives them
			out["worker_notes"] = notes
		}
		if queueErr != nil { // as GET /api/status says it
			out["queue_error"] = queueErr.Error()
			delete(out, "dead_letters")
		}
		if err := writeJSON(stdout, out); err != nil {
			return err
		}
		return queueUnread(queueErr)
	}
	w := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintf(w, "papers\t%d\n", counts.Papers)
	withheld := ""
	if n := counts.TLDRsWithheld; n > 0 {
		// Not asked for again: the count stays short of the papers for good, and says why.
		withheld = fmt.Sprintf("; %d without one: the API withheld it, `paperpipe batches withheld`", n)
	}
	others := ""
	if n := counts.TLDRsTotal - counts.WithTLDR; n > 0 && counts.WithTLDR < counts.Papers {
		// Counted for the configured model and prompt, which are this shell's: one without the
		// workers' settings read an archive processed by an API model as lacking its TL;DRs
		// (108 of 996, the offline model's), with no word of the others (found in session 28,
		// walking a lab's journey).
		others = fmt.Sprintf(": the configured model's and prompt's; %d more of other models, prompts or earlier texts: `paperpipe tldrs`", n)
	}
	fmt.Fprintf(w, "with TL;DR\t%d\t(%s, prompt %s%s%s)\n", counts.WithTLDR, m.sum.Model(), m.sum.PromptVersion(), others, withheld)
	fmt.Fprintf(w, "with embedding\t%d\t(space %s%s: the configured embedder's)\n", counts.WithEmbedding, space.Name(), spaceNote)
	if active != nil {
		fmt.Fprintf(w, "with embedding\t%d\t(active space %s, which queries use)\n", active.WithEmbedding, active.Space.Name())
	}
	printBacklogs(w, backlogs)
	if queueErr != nil {
		fmt.Fprintf(w, "backlog\t?\t(the queue could not be read: see below)\n")
		fmt.Fprintf(w, "dead letters\t?\n")
	} else {
		fmt.Fprintf(w, "dead letters\t%d\n", dead)
	}
	w.Flush()
	for _, n := range notes {
		fmt.Fprintln(stdout, "note: "+termSafe(n, false))
	}
	for _, bl := range backlogs {
		if bl.SpaceError != "" {
			fmt.Fprintln(stdout, "note: "+termSafe("backlog "+bl.Consumer+": "+bl.SpaceError, false))
		}
		if bl.NoWorker {
			fmt.Fprintln(stdout, "note: "+termSafe(noWorkerNote(bl, noBucket), false))
		}
	}
	if workersErr != nil {
		fmt.Fprintf(stdout, "note: the workers could not be read from NATS: %v\n", workersErr)
	}
	if unread > 0 {
		fmt.Fprintln(stdout, "note: "+unreadWorkersNote(unread))
	}
	for _, s := range unfinished {
		fmt.Fprintln(stdout, "note: "+unfinishedIndexNote(s))
	}
	if missing {
		fmt.Fprintln(stdout, "note: "+missingModelNote(space))
	}
	printUsage(stdout, usage, costs, since)
	return queueUnread(queueErr)
}

// queueUnread is status's error when the queue could not be read (err), after it printed the
// database's parts; nil when it was read.
func queueUnread(err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("the queue could not be read, and the backlog, the workers and the dead letters are not shown "+
		"(the counts and the usage above are the database's): %w", err)
}

// printBacklogs writes status's line of each backlog, with its workers under it, to w, a
// tabwriter of status's table.
func printBacklogs(w io.Writer, backlogs []statusBacklog) {
	for _, bl := range backlogs {
		// Any client of the NATS account may make a consumer, named and described as it likes.
		consumer := termSafe(bl.Consumer, false)
		if bl.DroppedSpace != "" {
			dropped := termSafe(bl.DroppedSpace, false)
			fmt.Fprintf(w, "backlog %s\t%d\t(re-processing into space %s, which was dropped: nothing processes these; `paperpipe spaces drop %s` removes them)\n",
				consumer, bl.Waiting(), dropped, dropped)
			continue
		}
		fmt.Fprintf(w, "backlog %s\t%d\t(%d delivered and not yet acknowledged: in a worker, or handed back to come again; %d redelivered)\n", consumer, bl.Pending, bl.AckPending, bl.Redelivered)
		// A worker's state and details are its line's last cell, which no other line's is
		// aligned with: in the numbers' column, a pause's 70 characters pushed every line's
		// note as far right. The reason's line keeps the cells too (a line without one ends the
		// table's alignment).
		shown, more := workersShown(bl.Workers)
		for _, wk := range shown {
			// An announcement is any client of the NATS account's to write, and a pause's
			// detail is the API's answer as it came: both are printed terminal-safe.
			fmt.Fprintf(w, "  worker %s pid %d\t\t%s (%s)\n", termSafe(wk.Host, false), wk.PID,
				termSafe(workerStateText(wk), false), termSafe(workerDetailsText(wk), false))
			if wk.Pause != nil && wk.Pause.Detail != "" {
				fmt.Fprintf(w, "\t\twhy: %s\n", termSafe(wk.Pause.Detail, false))
			}
			if wk.Target != "" {
				fmt.Fprintf(w, "\t\twrites: %s\n", termSafe(wk.Target, false))
			}
		}
		if len(more) > 0 {
			fmt.Fprintf(w, "  and %d more workers\t\t(%s; `paperpipe status --json` lists them all)\n", len(more), termSafe(countStates(more), false))
		}
	}
}

// maxWorkersShown bounds the workers status lists under one backlog. Each takes a line or
// three, and a backlog of a hundred workers pushed the dead letters, the notes and the usage
// off the screen; up to pipeline.MaxAnnouncementsRead (1,000) were listed.
const maxWorkersShown = 20

// workersShown splits ws into the workers status lists, in their order, and the others: up
// to maxWorkersShown, those an operator has to look at first — paused, stalled, stopping, or
// not heard from.
func workersShown(ws []statusWorker) (shown, more []statusWorker) {
	if len(ws) <= maxWorkersShown {
		return ws, nil
	}
	attention := func(w statusWorker) bool {
		return w.Overdue || (w.State != pipeline.StateWorking && w.State != pipeline.StateIdle)
	}
	picked := make([]bool, len(ws))
	n := 0
	for _, first := range []bool{true, false} {
		for i, w := range ws {
			if n < maxWorkersShown && !picked[i] && attention(w) == first {
				picked[i] = true
				n++
			}
		}
	}
	for i, w := range ws {
		if picked[i] {
			shown = append(shown, w)
		} else {
			more = append(more, w)
		}
	}
	return shown, more
}

// countStates says how many of ws are in each state: "12 working, 3 idle".
func countStates(ws []statusWorker) string {
	var states []string
	count := map[string]int{}
	for _, w := range ws {
		if count[w.State] == 0 {
			states = append(states, w.State)
		}
		count[w.State]++
	}
	parts := make([]string, len(states))
	for i, st := range states {
		parts[i] = fmt.Sprintf("%d %s", count[st], st)
	}
	return strings.Join(parts, ", ")
}

// printUsage writes status's tables of the API usage since since to out: per day, model and
// kind, then per model with its estimated cost. Nothing without usage.
func printUsage(out io.Writer, usage []store.UsageRow, costs []modelCost, since time.Time) {
	if len(usage) == 0 {
		return
	}
	fmt.Fprintln(out)
	tw := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "DAY\tMODEL\tKIND\tREQUESTS\tINPUT TOKENS\tOUTPUT TOKENS")
	for _, u := range usage {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%d\t%d\n", u.Day.Format(time.DateOnly), u.Model, u.Kind, u.Requests, u.InputTokens, u.OutputTokens)
	}
	tw.Flush()
	fmt.Fprintln(out)
	tw = tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "SINCE %s\tREQUESTS\tINPUT TOKENS\tOUTPUT TOKENS\tESTIMATED COST\n", since.Format(time.DateOnly))
	var total float64
	unpriced := 0
	for _, mc := range costs {
		cost := "price unknown — set PAPERPIPE_PRICES"
		if mc.PriceKnown {
			cost = paper.FormatUSD(mc.USD)
			total += mc.USD
		} else {
			unpriced++
		}
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", mc.Model, mc.Requests, mc.InputTokens, mc.OutputTokens, cost)
	}
	totalCost := paper.FormatUSD(total)
	if unpriced > 0 {
		// Not the whole cost: read as one, it understated the spending.
		totalCost += fmt.Sprintf(" + what %s without a price cost", plural(unpriced, "model", "models"))
	}
	fmt.Fprintf(tw, "total\t\t\t\t%s\n", totalCost)
	tw.Flush()
}

// statusBacklog is a consumer's backlog as `paperpipe status` shows it.
type statusBacklog struct {
	pipeline.Backlog
	// DroppedSpace names the embedding space of a reprocess consumer (reprocessSpaceOf) when
	// that space no longer exists: dropped while NATS could not be reached, or by a version
	// that left its consumers behind. Nothing processes its messages.
	DroppedSpace string `json:"dropped_space,omitempty"`
	// SpaceError says why whether its space still exists could not be told (droppedSpace).
	SpaceError string `json:"space_error,omitempty"`
	// Workers are the consumer's workers announced in NATS (pipeline.BucketWorkers).
	Workers []statusWorker `json:"workers"`
	// NoWorker: messages wait and no worker of the consumer is announced.
	NoWorker bool `json:"no_worker_running"`
}

// statusWorker is a worker as status shows it: its announcement and how long ago it was
// written.
type statusWorker struct {
	pipeline.AnnouncedWorker
	LastSeenAgo float64 `json:"last_seen_seconds_ago"`
	// Overdue: the entry is older than twice the worker's refresh (killed, or cut off from
	// NATS); it expires by itself.
	Overdue bool `json:"overdue"`
}

// workersReadTimeout bounds status's read of the announced workers, like its web page's reads
// of the queue: a NATS that does not answer leaves them out.
const workersReadTimeout = statusQueueTimeout

// queueStatus is what status reads from NATS: the backlogs with their workers (see addWorkers),
// and the dead letters counted.
type queueStatus struct {
	backlogs   []statusBacklog
	dead       uint64
	noBucket   bool
	unread     uint64
	workersErr error // the workers could not be read: a note, the rest is shown
}

// readQueueStatus reads status's queue from NATS, again across a takeover of the embedded server
// (see broker.acrossTakeover): a status joined to the server of another process (an ingest)
// that stopped as it read failed with "context deadline exceeded" after 5 s, or "JetStream not
// enabled for account" at once, while its connection went on to the server taken over. The
// workers' read failing so is made again with the rest; failing otherwise, it is a note.
func readQueueStatus(ctx context.Context, st *store.Store, b *broker) (queueStatus, error) {
	var q queueStatus
	err := b.acrossTakeover(ctx, func(ctx context.Context) error {
		var err error
		if q.backlogs, err = statusBacklogs(ctx, st, b.js); err != nil {
			return err
		}
		if q.dead, err = pipeline.CountDeadLetters(ctx, b.js); err != nil {
			return err
		}
		q.noBucket, q.unread, q.workersErr = addWorkers(ctx, b.js, q.backlogs, time.Now())
		// Not its own timeout: a bucket NATS does not read in time is left out (see addWorkers).
		if q.workersErr != nil && (ctx.Err() != nil || !errors.Is(q.workersErr, context.DeadlineExceeded) && serverChangingHands(q.workersErr)) {
			return q.workersErr
		}
		return nil
	})
	return q, err
}

// addWorkers gives each backlog the workers announced for its consumer at now, and marks those
// with messages waiting and none announced; noBucket when the bucket of announcements does not
// exist, unread the older entries of it left unread (see pipeline.MaxAnnouncementsRead). The error of a read that failed (the backlogs are then left as they were) is for a
// note: the rest of the status stands without it.
func addWorkers(ctx context.Context, js jetstream.JetStream, backlogs []statusBacklog, now time.Time) (noBucket bool, unread uint64, err error) {
	ctx, cancel := context.WithTimeout(ctx, workersReadTimeout)
	defer cancel()
	ws, unread, err := pipeline.AnnouncedWorkers(ctx, js)
	noBucket = errors.Is(err, pipeline.ErrNoWorkersBucket)
	if err != nil && !noBucket {
		return false, 0, err
	}
	for i := range backlogs {
		bl := &backlogs[i]
		bl.Workers = []statusWorker{}
		for _, w := range ws {
			if w.Consumer == bl.Consumer {
				bl.Workers = append(bl.Workers, statusWorker{AnnouncedWorker: w, LastSeenAgo: max(now.Sub(w.LastSeen), 0).Seconds(), Overdue: w.Overdue(now)})
			}
		}
		bl.NoWorker = bl.NoWorkerRunning(len(bl.Workers), bl.DroppedSpace != "")
	}
	return noBucket, unread, nil
}

// unreadWorkersNote says that the newest pipeline.MaxAnnouncementsRead entries of the workers'
// bucket were read, and unread older ones not.
func unreadWorkersNote(unread uint64) string {
	return fmt.Sprintf("%d older entries of the NATS bucket %s were not read: only its newest %d are (each running worker "+
		"writes its own every 10 s, so it is among them unless another client of the NATS account writes the bucket faster; "+
		"`nats kv ls %s` lists the keys, and entries no worker wrote are another client's)",
		unread, pipeline.BucketWorkers, pipeline.MaxAnnouncementsRead, pipeline.BucketWorkers)
}

// workerStateText says what a worker does: its state, and a pause's (or a stall's) reason and
// end.
func workerStateText(w statusWorker) string {
	if w.Pause != nil {
		return w.State + ": " + w.Pause.Text(time.Now())
	}
	return w.State
}

// workerDetailsText is the rest of a worker's line: since when, its slots, what it holds and
// did, its version, and when it was last heard of.
func workerDetailsText(w statusWorker) string {
	seen := fmt.Sprintf("last seen %s ago", time.Duration(w.LastSeenAgo*float64(time.Second)).Round(time.Second))
	if w.Overdue {
		seen += ": not heard from since (stopped without a word, or cut off from NATS?); the entry expires by itself"
	}
	slots := ""
	if w.Concurrency > 0 { // a worker that writes no TL;DRs has none
		slots = fmt.Sprintf("%d TL;DR slots, ", w.Concurrency)
	}
	return fmt.Sprintf("since %s, %s%s held, %d processed, paperpipe %s, %s",
		w.Started.UTC().Format("2006-01-02 15:04:05 UTC"), slots, plural(w.Held, "message", "messages"), w.Processed, w.Version, seen)
}

// noWorkerNote says that bl's messages wait with no worker running, and what runs one;
// noBucket: no worker has made the bucket the workers announce themselves in, which workers
// on a NATS account that may not create streams cannot make.
func noWorkerNote(bl statusBacklog, noBucket bool) string {
	run := "start `paperpipe worker` (or `paperpipe up`)"
	if strings.HasPrefix(bl.Consumer, "reprocess-") {
		// Named by what it writes (its consumer's description), and with the way out that
		// buys nothing: the note said to run "that target" again, which the operator had to
		// guess, and buy (found in session 29, walking a lab's journey).
		run = "run the `paperpipe reprocess` of that target again to go on, or the same command with --abandon to drop them"
		if d := bl.Description; d != "" {
			run = fmt.Sprintf("they are an interrupted `paperpipe reprocess`'s (%s): the same command run again goes on, and with --abandon drops them", d)
		}
	} else if bl.Consumer != pipeline.ConsumerNew {
		run = fmt.Sprintf("start `paperpipe worker --consumer %s`", bl.Consumer)
	}
	why := "none is announced in NATS"
	if noBucket {
		// The workers of a NATS account that may not create streams run unannounced.
		why = "none has announced itself: the NATS bucket " + pipeline.BucketWorkers + " does not exist; " +
			"workers on a NATS account that may not create it run unannounced, each one's log saying so"
	}
	return fmt.Sprintf("no worker is running for backlog %s (%s): its %d messages wait; %s",
		bl.Consumer, why, bl.Waiting(), run)
}

// statusBacklogs is pipeline.Backlogs with the reprocess consumers of dropped spaces marked.
func statusBacklogs(ctx context.Context, st *store.Store, js jetstream.JetStream) ([]statusBacklog, error) {
	bls, err := pipeline.Backlogs(ctx, js)
	if err != nil {
		return nil, err
	}
	out := make([]statusBacklog, len(bls))
	for i, bl := range bls {
		out[i].Backlog = bl
		if out[i].DroppedSpace, err = droppedSpace(ctx, st, bl); err != nil {
			out[i].SpaceError = err.Error() // the queue is shown all the same (see droppedSpace)
		}
	}
	return out, nil
}

// droppedSpace names the embedding space bl, a reprocess consumer, re-processes into when that
// space no longer exists (see statusBacklog.DroppedSpace), or "". Its error says what could
// not be told, for the status to show beside the backlog: it made `status`, and the status
// page's queue, fail whole, every backlog hidden for the database's error about one.
func droppedSpace(ctx context.Context, st *store.Store, bl pipeline.Backlog) (string, error) {
	name, ok := reprocessSpaceOf(bl.Description)
	if !ok || !strings.HasPrefix(bl.Consumer, "reprocess-") {
		return "", nil
	}
	gone, err := spaceGone(ctx, st, name)
	if err != nil {
		return "", fmt.Errorf("whether its space %s still exists could not be read from the database: %w", name, err)
	}
	if !gone {
		return "", nil
	}
	return name, nil
}

// spaceGone reports whether the embedding space name, as a consumer's description or a
// worker's announcement names it, is not in the archive (dropped). Such a text names its space
// in full; one that names a model of several spaces (ErrAmbiguous) was not written by
// paperpipe — any client of the NATS account may write both — and names no space, gone or not.
func spaceGone(ctx context.Context, st *store.Store, name string) (bool, error) {
	_, err := st.FindSpace(ctx, name)
	switch {
	case errors.Is(err, paper.ErrNotFound):
		return true, nil
	case errors.Is(err, paper.ErrAmbiguous):
		return false, nil
	}
	return false, err
}

// modelCost is one model's API usage over the status window and what it is estimated to cost.
type modelCost struct {
	Model        string  `json:"model"`
	Requests     int64   `json:"requests"`
	InputTokens  int64   `json:"input_tokens"`
	OutputTokens int64   `json:"output_tokens"`
	USD          float64 `json:"usd"`         // 0 when the price is unknown
	PriceKnown   bool    `json:"price_known"` // false: set PAPERPIPE_PRICES
}

// modelCosts sums usage rows per model, in order of first appearance, and prices them: each
// row at its kind's price (the Batch API's kinds at half).
func modelCosts(rows []store.UsageRow, prices pricing.Table) []modelCost {
	var out []modelCost
	index := map[string]int{}
	for _, u := range rows {
		i, ok := index[u.Model]
		if !ok {
			i = len(out)
			index[u.Model] = i
			out = append(out, modelCost{Model: u.Model, PriceKnown: true})
		}
		out[i].Requests += int64(u.Requests)
		out[i].InputTokens += int64(u.InputTokens)
		out[i].OutputTokens += int64(u.OutputTokens)
		usd, known := prices.UsageCost(u.Model, u.Kind, int64(u.InputTokens), int64(u.OutputTokens))
		out[i].USD += usd
		out[i].PriceKnown = out[i].PriceKnown && known
	}
	return out
}
