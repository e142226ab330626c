package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"text/tabwriter"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/internal/pricing"
	"github.com/paperpipe/paperpipe/internal/reprocess"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// embedContextTokens is the longest input the embedding requests carry (embed.Config's default).
const embedContextTokens = 8191

// reprocessOptions are the flags of `paperpipe reprocess`.
type reprocessOptions struct {
	all       bool
	since     time.Time
	idsFile   string
	dryRun    bool
	json      bool // with dryRun: the estimate as JSON
	batchAPI  bool
	wait      bool
	tldrOnly  bool
	embedOnly bool
	// maxCost, when capped, is the most a run's estimated cost may be (USD): one estimated
	// above it, or that cannot be priced, sends nothing.
	maxCost float64
	capped  bool
	// abandon drops what an interrupted run of the target left queued, and sends nothing.
	abandon bool
	// pageSize is how many papers are published before a worker drains them. Defaults to 5000.
	pageSize int
	// poll is the Batch API's first poll interval. Defaults to 30s.
	poll time.Duration
	// uploadMbit is the slowest uplink, in Mbit/s, a Batch API upload allows for (see
	// batch.Config.UploadRate). Defaults to 0: batch's default, 1 Mbit/s.
	uploadMbit float64
	// activating is set by a caller that activates the filled space itself (fit), so the run
	// does not tell the user to.
	activating bool
}

func cmdReprocess(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("reprocess", "", "Re-process the archive: write the TL;DRs and embeddings that are missing or stale for the configured models and prompt.")
	c.addModelFlags(fs)
	fs.IntVar(&c.Concurrency, "concurrency", c.Concurrency, "TL;DR requests in flight for this run; env PAPERPIPE_CONCURRENCY")
	var o reprocessOptions
	var since string
	fs.BoolVar(&o.all, "all", false, "consider every paper of the archive (the default scope)")
	fs.StringVar(&since, "since", "", "consider only papers stored or changed since `DATE` (2006-01-02 or RFC 3339); a change is dated when its write began and commits after it (later still when the write waits for rows another session holds locked): to take up from an earlier run, give a minute before it started, by the database's clock (SELECT now()), not this machine's")
	fs.StringVar(&o.idsFile, "ids", "", "consider only the papers listed in `FILE` (one id per line; - for stdin)")
	fs.BoolVar(&o.dryRun, "dry-run", false, "print papers, requests, estimated tokens and cost, and spend nothing")
	fs.BoolVar(&o.batchAPI, "batch-api", false, "send the work through OpenAI's Batch API (half price, results within 24h; resumable; exits 1 when a batch failed or answers were rejected; paperpipe batches lists the open jobs)")
	fs.BoolVar(&o.wait, "wait", true, "with --batch-api: wait for the batches and store their results (false: submit and exit; run again to collect)")
	fs.Float64Var(&o.uploadMbit, "batch-upload-mbit", 1, "with --batch-api: the slowest uplink, in `Mbit/s`, an input file's upload waits for (an attempt may take 5 minutes plus the file's time at this rate)")
	fs.BoolVar(&o.tldrOnly, "tldr-only", false, "write TL;DRs only")
	fs.BoolVar(&o.embedOnly, "embed-only", false, "write embeddings only")
	fs.BoolVar(&o.json, "json", false, "with --dry-run: print the estimate as JSON")
	fs.BoolVar(&o.abandon, "abandon", false, "drop what an interrupted run of the same flags left queued, instead of resuming it; sends nothing")
	fs.Func("max-cost", "send nothing when the run's estimated cost (--dry-run's) is above `USD`, or unknown (a model without a price)", func(v string) error {
		f, err := strconv.ParseFloat(strings.TrimPrefix(v, "$"), 64)
		if err != nil || !(f >= 0) || math.IsInf(f, 0) {
			return fmt.Errorf("want an amount in US dollars, such as 5 or 0.50")
		}
		o.maxCost, o.capped = f, true
		return nil
	})
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if o.abandon {
		// The flags of a run that buys or plans nothing would be ignored without a word.
		var ignored []string
		fs.Visit(func(f *flag.Flag) {
			if slices.Contains([]string{"dry-run", "json", "batch-api", "wait", "batch-upload-mbit", "max-cost", "concurrency"}, f.Name) {
				ignored = append(ignored, "--"+f.Name)
			}
		})
		if len(ignored) > 0 {
			return usageErr("--abandon sends nothing: %s does not apply with it", strings.Join(ignored, " and "))
		}
	}
	if o.json && !o.dryRun {
		return usageErr("--json is for --dry-run's estimate; a run says what it did as text, on standard error")
	}
	if since != "" {
		t, err := parseDate(since)
		if err != nil {
			return usageErr("--since %q: want a date like 2024-01-31 or an RFC 3339 time", since)
		}
		o.since = t
	}
	if n := countTrue(o.all, since != "", o.idsFile != ""); n > 1 {
		return usageErr("--all, --since and --ids are alternatives; give one")
	}
	if o.tldrOnly && o.embedOnly {
		return usageErr("--tldr-only and --embed-only are alternatives; give one")
	}
	if err := c.checkWorkerFlags(); err != nil {
		return err
	}
	if !(o.uploadMbit > 0) {
		return usageErr("--batch-upload-mbit %v: want a rate above 0", o.uploadMbit)
	}
	if !o.batchAPI {
		// Flags that only --batch-api reads would be ignored without a word.
		var batchOnly []string
		fs.Visit(func(f *flag.Flag) {
			if (f.Name == "wait" && !o.wait) || f.Name == "batch-upload-mbit" {
				batchOnly = append(batchOnly, "--"+f.Name)
			}
		})
		if len(batchOnly) > 0 {
			return usageErr("%s only applies with --batch-api (without it, reprocess processes the papers itself and waits for them)", strings.Join(batchOnly, " and "))
		}
	}
	_, err := runReprocess(ctx, c, o, stdout, os.Stderr)
	return err
}

func countTrue(bs ...bool) int {
	n := 0
	for _, b := range bs {
		if b {
			n++
		}
	}
	return n
}

func parseDate(s string) (time.Time, error) {
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Parse(time.RFC3339, s)
}

// reprocessResult is what a reprocess run did (or, for a dry run, would do).
type reprocessResult struct {
	Estimate estimate          `json:"estimate"`
	Target   string            `json:"target"`
	Space    paper.Space       `json:"space"`
	Worker   workerTotals      `json:"worker"`
	Batch    *batch.Report     `json:"batch,omitempty"`
	Counts   store.StaleCounts `json:"counts"`
	// LeftOut counts the papers whose message was over the queue's limit.
	LeftOut int `json:"left_out,omitempty"`
	// workers counts the workers the run started to drain its queue.
	workers int
}

// workerTotals sums the stats of the workers of one run.
type workerTotals struct {
	Acked      int64 `json:"acked"`
	Skipped    int64 `json:"skipped"`
	TLDRs      int64 `json:"tldrs"`
	Embeddings int64 `json:"embeddings"`
	Dead       int64 `json:"dead"`
}

// runReprocess selects, estimates, and processes the stale papers of the configured target.
func runReprocess(ctx context.Context, c *config, o reprocessOptions, out, errw io.Writer) (res reprocessResult, err error) {
	if o.batchAPI {
		// Before anything is counted or estimated, a dry run's plan too.
		if err := batchAPIModels(c, !o.embedOnly, !o.tldrOnly); err != nil {
			return res, err
		}
	}
	// A dry run calls no model: it estimates what a real run would cost, key or not; nor does
	// an abandon.
	if !o.dryRun && !o.abandon {
		if err := c.checkAPI(!o.embedOnly, !o.tldrOnly); err != nil {
			return res, err
		}
	}
	// The list is read before the database is opened: a typo in its path migrated the
	// database, and created the model's space, before saying "no such file".
	var ids []string
	if o.idsFile != "" {
		if ids, err = readIDs(ctx, "reprocess", o.idsFile); err != nil {
			return res, err
		}
	}
	log, m, st, err := openModelsAndStore(ctx, c)
	if err != nil {
		return res, err
	}
	defer st.Close()

	wantTLDR, wantEmb := !o.embedOnly, !o.tldrOnly
	if o.batchAPI && wantEmb {
		// Before the space is made and anything counted, as for the offline models.
		if err := batchAPIDimensions(c, m.emb.Space()); err != nil {
			return res, err
		}
	}
	// A run that writes no vector (--tldr-only) neither creates nor looks up the embedding
	// model's space; its workers have no embedder.
	var space paper.Space
	if wantEmb {
		if space, err = reprocessSpace(ctx, st, m.emb.Space(), o.dryRun || o.abandon); err != nil {
			return res, err
		}
		res.Space = space
	}
	sel := store.Selection{Since: o.since}
	if wantTLDR {
		sel.Work.Model, sel.Work.PromptVersion = m.sum.Model(), m.sum.PromptVersion()
	}
	if wantEmb {
		sel.Work.SpaceID = space.ID
	}
	if o.idsFile != "" {
		sel.IDs = ids
		missing, err := st.MissingPapers(ctx, sel.IDs)
		if err != nil {
			return res, err
		}
		if len(missing) > 0 {
			fmt.Fprintf(errw, "reprocess: %d of the %s given (--ids %s) %s not in the archive, and skipped: %s\n",
				len(missing), plural(len(sel.IDs), "id", "ids"), o.idsFile, pick(len(missing), "is", "are"), clip(strings.Join(missing, ", "), 200))
		}
	}
	if res.Counts, err = st.CountStale(ctx, sel); err != nil {
		return res, err
	}
	spaceName := ""
	if wantEmb {
		spaceName = space.Name()
	}
	target := pipeline.NewReprocessTarget(sel.Work, spaceName)
	res.Target = target.Key
	if o.abandon {
		return res, abandonRun(ctx, c, st, log, sel.Work, wantTLDR, wantEmb, space, target, errw)
	}

	// A run that buys anything says what it is estimated to cost before it starts, as a dry
	// run does: its first line gave the counts alone, and the cost was a second command's to
	// tell (found in session 29, walking a lab's journey). The estimate reads the stale papers'
	// texts once more; a run of the offline models costs nothing, and is not estimated.
	spends := (wantTLDR && !c.chatOffline()) || (wantEmb && !c.embedOffline())
	estimated := o.dryRun || (spends && res.Counts.Papers > 0)
	if estimated {
		if res.Estimate, err = estimateWork(ctx, c, st, sel, m, o.batchAPI); err != nil {
			return res, err
		}
	}
	var overBudget error // --max-cost's refusal, after a dry run's estimate is printed
	if o.capped && estimated && res.Estimate.Papers > 0 {
		overBudget = budgetRefusal(res.Estimate, o.maxCost, o.dryRun)
		if overBudget != nil && !o.dryRun {
			return res, overBudget
		}
	}
	heldByBatches, withheld := unboughtNotes(c, o, m, space, res.Counts, wantTLDR)
	if o.dryRun {
		if err := printDryRun(out, errw, o, res, m, space, wantTLDR, wantEmb, heldByBatches, withheld); err != nil {
			return res, err
		}
		return res, overBudget
	}
	tldrs := fmt.Sprintf("TL;DR (%s, %s)", m.sum.Model(), m.sum.PromptVersion())
	embeddings := fmt.Sprintf("embedding (space %s)", space.Name())
	switch {
	case heldByBatches != "":
		fmt.Fprintf(errw, "reprocess: %s\n", heldByBatches)
	case res.Counts.Papers == 0 && !o.batchAPI && withheld == "":
		// Messages an interrupted run left queued are processed below even so.
		fmt.Fprintf(errw, "reprocess: nothing to do: every selected paper has its %s\n", joinWanted(wantTLDR, tldrs, wantEmb, embeddings))
	}
	if withheld != "" {
		fmt.Fprintf(errw, "reprocess: %s\n", withheld)
	}
	var locks []*store.RunLock
	if ctx, locks, err = holdRunLocks(ctx, st, sel.Work, wantTLDR, wantEmb, space); err != nil {
		return res, err
	}
	defer func() { err = releaseRunLocks(locks, err) }()
	// `spaces drop` refuses the space from now on (the run holds its lock), but may have
	// dropped it since it was resolved above: the run would buy work for a space that is gone.
	if wantEmb {
		if _, err := st.FindSpace(ctx, strconv.FormatInt(space.ID, 10)); errors.Is(err, paper.ErrNotFound) {
			return res, fmt.Errorf("embedding space %d (%s) was dropped (`paperpipe spaces drop`) as this run started; "+
				"nothing was sent: run it again to fill the space anew (or with --tldr-only for the TL;DRs alone)", space.ID, space.Name())
		} else if err != nil {
			return res, err
		}
	}
	cost := ""
	if estimated {
		cost = "; " + runCost(res.Estimate, o)
	}
	fmt.Fprintf(errw, "reprocess: %s to process (%s)%s\n", plural(res.Counts.Papers, "paper", "papers"), joinWanted(
		wantTLDR, fmt.Sprintf("%s by %s prompt %s", plural(res.Counts.TLDRs, "TL;DR", "TL;DRs"), m.sum.Model(), m.sum.PromptVersion()),
		wantEmb, fmt.Sprintf("%s in space %s", plural(res.Counts.Embeddings, "embedding", "embeddings"), space.Name())), cost)

	// A Batch API job that failed in this run (*batch.JobError, the error says what to do about
	// it) did not stop the others' collection: the space is finished below when its embedding
	// jobs are all closed — a TL;DR job that cannot be collected left the vectors collected
	// without an index, at every run until it was abandoned.
	var jobErr error
	if o.batchAPI {
		jobErr = runBatchAPI(ctx, c, o, st, m, space, sel, wantTLDR, wantEmb, &res, errw, log)
		if je := (*batch.JobError)(nil); jobErr != nil && !errors.As(jobErr, &je) {
			return res, jobErr
		}
		if wantEmb {
			// With --wait=false the embedding batches are still running: the space holds none of
			// their vectors yet, so its index is built, and the space called filled, by the run
			// that collects them.
			open, err := st.BatchJobs(ctx, store.BatchTarget(paper.KindEmbedding, "", "", space.ID))
			if err != nil {
				return res, err
			}
			if len(open) > 0 {
				if jobErr == nil {
					fmt.Fprintf(errw, "reprocess: space %d (%s) is not filled yet: %s still running; "+
						"the run that collects them stores their vectors, then builds the space's index\n", space.ID, space.Name(),
						plural(len(open), "embedding batch is", "embedding batches are"))
				}
				return res, jobErr
			}
		}
	} else if err := runReprocessWorkers(ctx, c, o, st, m, space, sel, target, &res, errw, log); err != nil {
		if wantEmb && ctx.Err() == nil {
			err = spaceLeft(ctx, st, space, err)
		}
		return res, err
	}
	if err := finishSpace(ctx, st, space, sel, &res, wantEmb, o.activating, errw); err != nil {
		return res, err
	}
	if jobErr != nil {
		return res, jobErr
	}
	return res, runIncomplete(res)
}

// unboughtNotes say what a run does not buy of what the selected papers lack ("" for nothing):
// heldByBatches, the outputs open Batch API jobs hold, and what collects them; withheld, the
// TL;DRs the API withheld, and what asks for them again.
func unboughtNotes(c *config, o reprocessOptions, m *models, space paper.Space, counts store.StaleCounts, wantTLDR bool) (heldByBatches, withheld string) {
	// The outputs open Batch API jobs hold are not bought by this run (not twice), though their
	// papers lack them: say which, and what collects them. A paper held for one output is still
	// sent for the other.
	if held := counts; held.InBatch > 0 && !o.batchAPI {
		var outputs []string
		if held.InBatchTLDRs > 0 {
			outputs = append(outputs, plural(held.InBatchTLDRs, "TL;DR", "TL;DRs"))
		}
		if held.InBatchEmbeddings > 0 {
			outputs = append(outputs, plural(held.InBatchEmbeddings, "embedding", "embeddings"))
		}
		verb, them := "are", "them"
		if held.InBatchTLDRs+held.InBatchEmbeddings == 1 {
			verb, them = "is", "it"
		}
		if len(outputs) > 0 {
			var chatModel string
			var sp *paper.Space
			if held.InBatchTLDRs > 0 {
				chatModel = m.sum.Model()
			}
			if held.InBatchEmbeddings > 0 {
				sp = &space
			}
			heldByBatches = fmt.Sprintf("%s %s in open Batch API jobs and not bought again; %s collects %s",
				strings.Join(outputs, " and "), verb, batchCollectCommand(chatModel, c.MaxWords, sp), them)
		}
	}
	// The TL;DRs the API withheld are not asked for again either (the same refusal would be
	// bought): say how many, and what asks again, or "every selected paper has its TL;DR" is
	// said of papers without one, and status's count of them stays short for good.
	if n := counts.Withheld; n > 0 && wantTLDR {
		withheld = fmt.Sprintf("%s the API withheld (its content filter, or the model refused) %s not asked for again: "+
			"`paperpipe batches withheld` lists %s, `batches withheld clear ID...` has the next run ask again",
			plural(n, "TL;DR", "TL;DRs"), pick(n, "is", "are"), pick(n, "it", "them"))
	}
	return heldByBatches, withheld
}

// printDryRun prints a dry run's plan: its estimate on out (as JSON with --json), and the
// notes of what it would not buy (unboughtNotes) on errw.
func printDryRun(out, errw io.Writer, o reprocessOptions, res reprocessResult, m *models, space paper.Space, wantTLDR, wantEmb bool, notes ...string) error {
	if o.json {
		plan := dryRunPlan{Target: res.Target, Counts: res.Counts, Estimate: res.Estimate}
		if wantTLDR {
			plan.TLDRModel, plan.PromptVersion = m.sum.Model(), m.sum.PromptVersion()
		}
		if wantEmb {
			plan.Space = &space
		}
		if err := writeJSON(out, plan); err != nil {
			return err
		}
		fmt.Fprintln(errw, dryRunNote)
	} else {
		printEstimate(out, res.Estimate, m, space, wantTLDR, wantEmb)
	}
	for _, note := range notes {
		if note != "" {
			fmt.Fprintf(errw, "reprocess: %s\n", note)
		}
	}
	return nil
}

// holdRunLocks takes the run's locks, one per output it writes (runLocks), in a fixed order:
// runs for different targets that share an output (a full run and an --embed-only run of one
// space) would otherwise both buy it. A lock whose session the database ended (a restart, its
// holder cut off for a minute, see store.HoldRun) is taken again, and when another run has
// taken it meanwhile the context returned ends and the run stops. On an error the locks
// already taken are released.
func holdRunLocks(ctx context.Context, st *store.Store, w paper.Work, wantTLDR, wantEmb bool, space paper.Space) (context.Context, []*store.RunLock, error) {
	var locks []*store.RunLock
	lctx := ctx
	for _, key := range runLocks(w, wantTLDR, wantEmb, space.ID) {
		l, err := st.HoldRun(lctx, key)
		if err != nil {
			unlockRuns(locks)
			if errors.Is(err, store.ErrRunInProgress) {
				busy := &runBusyError{what: fmt.Sprintf("embeddings (space %s)", space.Name()), writers: "a `paperpipe reprocess` or `fit`",
					other: "or `paperpipe spaces drop` is dropping that space, or `paperpipe import` or `import-embeddings` is loading its vectors"}
				if strings.HasPrefix(key, "tldr:") {
					busy = &runBusyError{what: fmt.Sprintf("TL;DRs (%s, %s)", w.Model, w.PromptVersion), writers: "a `paperpipe reprocess`",
						other: "or `paperpipe tldrs prune` is removing them, or `paperpipe import` or `import-tldrs` is loading them"}
				}
				return ctx, nil, busy
			}
			return ctx, nil, err
		}
		locks = append(locks, l)
		lctx = l.Context()
	}
	return lctx, locks, nil
}

// releaseRunLocks releases locks (the last taken first) and returns the run's error err, or
// the loss of a lock: a run that lost one is not done, whatever it wrote, as another may have
// worked beside it. Asked once more as the run ends. The run's own error (an API key refused, a
// queue full) is kept beside it, as it must be fixed before the run is run again; not its stop
// for the lock's loss (its context ended: canceled), which the lock's error says.
func releaseRunLocks(locks []*store.RunLock, err error) error {
	defer unlockRuns(locks)
	for _, l := range locks {
		if lerr := l.Check(); errors.Is(lerr, store.ErrLockLost) {
			lost := fmt.Errorf("%w; run the same command again once no other run of it is in progress "+
				"(finished papers are not redone)", lerr)
			if err != nil && !errors.Is(err, store.ErrLockLost) && !errors.Is(err, context.Canceled) {
				lost = errors.Join(lost, err)
			}
			return lost
		}
	}
	return err
}

// unlockRuns releases locks, the last taken first.
func unlockRuns(locks []*store.RunLock) {
	for _, l := range slices.Backward(locks) {
		l.Unlock()
	}
}

// runIncomplete is the error of a run that leaves selected papers stale: dead-lettered, too
// large for the queue, or failed in (or rejected from) Batch API jobs; nil when none is.
func runIncomplete(res reprocessResult) error {
	if res.Worker.Dead > 0 {
		// Like ingest and import-embeddings, which exit non-zero when they skipped anything.
		return fmt.Errorf("%s dead-lettered, not processed: `paperpipe dlq list` says why, and "+
			"`paperpipe dlq replay --all` queues them again once that is fixed: %w", plural(res.Worker.Dead, "paper was", "papers were"), errDeadLettered)
	}
	if res.LeftOut > 0 {
		return fmt.Errorf("%s left out, too large for the queue (see the messages above): they stay stale: %w",
			plural(res.LeftOut, "paper", "papers"), errDeadLettered)
	}
	if b := res.Batch; b != nil && (len(b.Failures) > 0 || b.Rejected > 0) {
		var what []string
		if n := len(b.Failures); n > 0 {
			what = append(what, plural(n, "batch", "batches")+" failed at OpenAI")
		}
		if n := b.Rejected; n > 0 {
			what = append(what, plural(n, "answer", "answers")+" rejected")
		}
		stale := "their papers stay stale for the next run"
		if b.Withheld > 0 {
			// Not asked again: each run bought the same refusal.
			stale = fmt.Sprintf("their papers stay stale for the next run, but for %s the API withheld (its content filter, or the model "+
				"refused): recorded, not asked again for the same text and prompt; `paperpipe batches withheld` lists them, "+
				"`batches withheld clear ID...` has the next run ask again", plural(b.Withheld, "TL;DR", "TL;DRs"))
		}
		return fmt.Errorf("%s (see the messages above): %s: %w",
			strings.Join(what, " and "), stale, errDeadLettered)
	}
	return nil
}

// spaceLeft is err, the failure of a run into space, followed by what the run left of the
// space when it is not filled or has no index (a new space is made without it, for the fill,
// see reprocessSpace): how much of it is embedded, and what finishes it or removes it. Spaces
// other than the active one are not queried, but `paperpipe spaces` listed such a space
// without a word of where it came from.
func spaceLeft(ctx context.Context, st *store.Store, space paper.Space, err error) error {
	info, ierr := st.ResolveSpace(ctx, strconv.FormatInt(space.ID, 10))
	if ierr != nil || (info.Embedded >= info.Papers && info.IndexName != "") {
		return err
	}
	state := fmt.Sprintf("%d of %s embedded", info.Embedded, plural(info.Papers, "paper", "papers"))
	if info.IndexName == "" {
		state += ", no index yet"
	}
	next := "run the same command again to fill it"
	if info.IndexName == "" {
		next += " and build its index"
	}
	if !info.Active {
		next += fmt.Sprintf(", or `paperpipe spaces drop %d` to remove it", space.ID)
	}
	return fmt.Errorf("%w; space %d (%s) is left %s: %s", err, space.ID, space.Name(), state, next)
}

// errDeadLettered marks a run that left papers in the dead-letter stream, or out of the queue.
var errDeadLettered = errors.New("the run is incomplete")

// runBusyError is a run's refusal to start while another run (writers, in this or another
// process) writes one of its outputs, what, or another command holds their lock (other: a
// `tldrs prune` removing the TL;DRs, a `spaces drop` of the space, each in its transactions):
// it wraps store.ErrRunInProgress, and names the outputs rather than their lock's key, and
// what to do.
type runBusyError struct{ what, writers, other string }

func (e *runBusyError) Error() string {
	return fmt.Sprintf("another run (%s) is writing the %s, %s: wait for it to end, or stop it, "+
		"then run this command again (finished papers are not redone)", e.writers, e.what, e.other)
}

func (e *runBusyError) Unwrap() error { return store.ErrRunInProgress }

// runLocks names the outputs a run writes, as LockRun keys: TL;DRs of a model and prompt, vectors
// of a space.
func runLocks(w paper.Work, wantTLDR, wantEmb bool, spaceID int64) []string {
	var keys []string
	if wantTLDR {
		keys = append(keys, store.TLDRRunKey(w.Model, w.PromptVersion))
	}
	if wantEmb {
		keys = append(keys, store.SpaceRunKey(spaceID))
	}
	return keys
}

// joinWanted joins the descriptions of the outputs a run writes: tldrs, embeddings or both.
func joinWanted(wantTLDR bool, tldrs string, wantEmb bool, embeddings string) string {
	switch {
	case wantTLDR && wantEmb:
		return tldrs + " and " + embeddings
	case wantTLDR:
		return tldrs
	default:
		return embeddings
	}
}

// reprocessSpace returns the target embedding space. A real run creates it without its index
// when new (a bulk fill; the index is built at the end) and activates it only when no space is
// active, so queries keep using the active one (blue/green). A dry run changes nothing (see
// lookupSpace).
func reprocessSpace(ctx context.Context, st *store.Store, want paper.Space, dryRun bool) (paper.Space, error) {
	if dryRun {
		return lookupSpace(ctx, st, want)
	}
	sp, _, err := st.EnsureSpaceForLoad(ctx, want)
	return sp, err
}

// buildAfterFill builds a bulk-filled space's index if it has none yet and, when it built one,
// vacuums and analyzes the embeddings.
func buildAfterFill(ctx context.Context, st *store.Store, spaceID int64) error {
	built, err := st.BuildSpaceIndex(ctx, spaceID, store.IndexSettings{})
	if err != nil || !built {
		return err
	}
	return st.VacuumEmbeddings(ctx)
}

// finishSpace builds the target space's index after a fill and, unless quiet, says how full
// the space is: filled, when every paper has its vector there, and then how to switch to it if
// it is not active; otherwise how many papers it lacks, and why.
func finishSpace(ctx context.Context, st *store.Store, space paper.Space, sel store.Selection, res *reprocessResult, wantEmb, quiet bool, errw io.Writer) error {
	if !wantEmb {
		return nil
	}
	// While open Batch API jobs hold papers of the space, the run that collects them builds
	// its index, after loading them in bulk (as --batch-api does); built now, the collection
	// would insert into a live index one vector at a time.
	if heldByJobs := res.Counts.InBatchEmbeddings > 0 && res.Batch == nil; !heldByJobs {
		if err := buildAfterFill(ctx, st, space.ID); err != nil {
			return err
		}
	}
	if quiet {
		return nil
	}
	info, err := st.ResolveSpace(ctx, strconv.FormatInt(space.ID, 10))
	if err != nil {
		return err
	}
	inactive := ""
	if active, err := st.ActiveSpace(ctx); err == nil && active.ID != space.ID {
		inactive = fmt.Sprintf("queries use %s until `paperpipe activate %d`", active.Name(), space.ID)
	}
	if info.Embedded >= info.Papers {
		if inactive != "" {
			fmt.Fprintf(errw, "reprocess: space %d (%s) is filled but not active (%d of %s embedded); %s\n",
				space.ID, space.Name(), info.Embedded, plural(info.Papers, "paper", "papers"), inactive)
		}
		return nil
	}
	var why []string
	if d := res.Worker.Dead; d > 0 {
		why = append(why, fmt.Sprintf("%d dead-lettered by this run (`paperpipe dlq list` says why)", d))
	}
	if n := res.LeftOut; n > 0 {
		why = append(why, fmt.Sprintf("%d left out, too large for the queue", n))
	}
	if res.Batch != nil && len(res.Batch.Failures) > 0 {
		why = append(why, fmt.Sprintf("%s failed at OpenAI (see above; their papers stay stale for the next run)", plural(len(res.Batch.Failures), "Batch API batch", "Batch API batches")))
	}
	if res.Batch != nil && res.Batch.Rejected > res.Batch.Withheld {
		why = append(why, fmt.Sprintf("%d Batch API answers rejected (they stay stale for the next run)", res.Batch.Rejected-res.Batch.Withheld))
	}
	if n := res.Counts.InBatchEmbeddings; n > 0 && res.Batch == nil {
		why = append(why, fmt.Sprintf("%d in open Batch API jobs (%s collects them)", n, batchCollectCommand("", 0, &space)))
	}
	if !sel.Since.IsZero() || sel.IDs != nil {
		why = append(why, "papers this run did not select (--since, --ids)")
	}
	if len(why) == 0 {
		why = append(why, "papers stored or changed while it ran (run it again)")
	}
	fmt.Fprintf(errw, "reprocess: space %d (%s) is not filled: %d of %s embedded, %d missing: %s\n",
		space.ID, space.Name(), info.Embedded, plural(info.Papers, "paper", "papers"), info.Papers-info.Embedded, strings.Join(why, "; "))
	if inactive != "" {
		fmt.Fprintf(errw, "reprocess: space %d is not active; %s\n", space.ID, inactive)
	}
	return nil
}

// readIDs reads, for command's --ids, one paper id per line (blank lines and #-comments skipped), in canonical form.
// The file is read as ingest reads a source (a byte order mark skipped, gzip decompressed;
// UTF-16, a zip archive, a PDF or binary data refused, saying how to convert it), and a line
// PostgreSQL's text cannot hold (bytes that are not UTF-8, a NUL) stops the run before
// anything is done, naming its file and line.
func readIDs(ctx context.Context, command, path string) ([]string, error) {
	src, closer, err := ingest.OpenInput(ctx, path)
	if err != nil {
		return nil, fmt.Errorf("--ids: %w", err)
	}
	defer closer.Close()
	cr, err := ingest.Decode(src, path, command+" --ids", "paper ids as UTF-8 text, one per line")
	if err != nil {
		return nil, fmt.Errorf("--ids: %w", err)
	}
	name := ingest.Name(path)
	ids := []string{}
	sc := bufio.NewScanner(cr)
	n := 0
	for sc.Scan() {
		n++
		line := sc.Text()
		if n == 1 {
			line = strings.TrimPrefix(line, "\ufeff") // a UTF-8 byte order mark, as editors on Windows write
		}
		line = strings.TrimSpace(line)
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		switch {
		case !utf8.ValidString(line):
			return nil, fmt.Errorf("--ids %s:%d: the line is not valid UTF-8 text: give one paper id per line", name, n)
		case strings.IndexByte(line, 0) >= 0:
			return nil, fmt.Errorf("--ids %s:%d: the line contains a NUL byte (byte %d): give one paper id per line", name, n, strings.IndexByte(line, 0)+1)
		}
		if c, err := paper.CanonicalID(line); err == nil {
			line = c
		}
		ids = append(ids, line)
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		// No paper id is that long: not a list of ids, or one whose lines end in a CR alone.
		return nil, fmt.Errorf("--ids %s:%d: the line is longer than %d KiB, which no paper id is: give one paper id per line",
			name, n+1, bufio.MaxScanTokenSize/1024)
	} else if err != nil {
		return nil, fmt.Errorf("--ids %s: %w", name, err)
	}
	return ids, nil
}

// estimate is what a run will cost before it runs.
type estimate struct {
	Papers          int64   `json:"papers"`
	TLDRs           int64   `json:"tldrs"`
	Embeddings      int64   `json:"embeddings"`
	ChatRequests    int64   `json:"chat_requests"`
	EmbedRequests   int64   `json:"embedding_requests"`
	ChatInTokens    int64   `json:"chat_input_tokens"`
	ChatOutTokens   int64   `json:"chat_output_tokens"`
	EmbedTokens     int64   `json:"embedding_tokens"`
	CostUSD         float64 `json:"cost_usd"`
	CostKnown       bool    `json:"cost_known"`
	BatchAPI        bool    `json:"batch_api"`
	EmbedBatchInput int     `json:"embedding_inputs_per_request"`
	// ChatOutPerRequest is the output tokens each chat request is counted at: 2 per word of
	// the TL;DR's limit, or the model's average answer in the usage ledger when that is more
	// (chatOutObserved; see averageAnswer).
	ChatOutPerRequest int64 `json:"chat_output_tokens_per_request"`
	chatOutObserved   bool
}

// estimateWork walks the stale papers and estimates requests, tokens (llm.EstimateTokens of
// the exact prompt and embedded text) and cost (internal/pricing; half with the Batch API).
func estimateWork(ctx context.Context, c *config, st *store.Store, sel store.Selection, m *models, batchAPI bool) (estimate, error) {
	e := estimate{BatchAPI: batchAPI}
	chatAPI, embAPI := !c.chatOffline(), !c.embedOffline()
	// One chat request per paper. Embeddings: the worker gathers papers across messages into
	// requests of at most pipeline.MaxEmbedBatch (and EmbedBatchInputs, if smaller); the Batch
	// API sends one line per paper.
	e.EmbedBatchInput = max(1, min(pipeline.MaxEmbedBatch, c.EmbedBatchInputs))
	if batchAPI {
		e.EmbedBatchInput = 1
	}
	e.ChatOutPerRequest = int64(c.MaxWords * 2)
	if chatAPI {
		avg, err := averageAnswer(ctx, st, m.sum.Model())
		if err != nil {
			return e, err
		}
		if avg > e.ChatOutPerRequest {
			e.ChatOutPerRequest, e.chatOutObserved = avg, true
		}
	}
	err := st.StalePapers(ctx, sel, 1000, func(page []store.StalePaper) error {
		for _, p := range page {
			e.Papers++
			if p.NeedTLDR {
				e.TLDRs++
				for _, msg := range summarize.Messages(p.Abstract, c.MaxWords) {
					e.ChatInTokens += int64(llm.EstimateTokens(msg.Content))
				}
				e.ChatOutTokens += e.ChatOutPerRequest
			}
			if p.NeedEmbedding {
				e.Embeddings++
				text, _ := llm.TruncateToTokens(embed.TitleAbstract(p.Abstract), embedContextTokens)
				e.EmbedTokens += int64(llm.EstimateTokens(text))
			}
		}
		return nil
	})
	if err != nil {
		return e, err
	}
	if chatAPI {
		e.ChatRequests = e.TLDRs
	}
	if embAPI {
		e.EmbedRequests = (e.Embeddings + int64(e.EmbedBatchInput) - 1) / int64(e.EmbedBatchInput)
	}
	prices, err := pricing.Parse(c.Prices)
	if err != nil {
		return e, fmt.Errorf("PAPERPIPE_PRICES: %w", err)
	}
	chatCost, chatKnown := prices.Cost(m.sum.Model(), e.ChatInTokens, e.ChatOutTokens)
	embCost, embKnown := prices.Cost(m.emb.Space().Model, e.EmbedTokens, 0)
	e.CostKnown = (chatKnown || e.TLDRs == 0) && (embKnown || e.Embeddings == 0)
	e.CostUSD = chatCost + embCost
	if batchAPI {
		e.CostUSD /= 2
	}
	return e, nil
}

// abandonRun drops what an interrupted run of target left queued: its consumer and its
// messages. A run stopped after its first line — its estimate over a budget, a wrong model —
// left them for good: status and the status page said that no worker ran them, and to run the
// same command again, which buys them; nothing else removed them but a run into a space
// dropped (found in session 29, walking a lab's journey). Nothing is lost: the papers are
// still stale, and a later run selects them again. The run's locks are held meanwhile: a run
// of the target in progress is not cut off under it.
func abandonRun(ctx context.Context, c *config, st *store.Store, log *slog.Logger, w paper.Work, wantTLDR, wantEmb bool,
	space paper.Space, target pipeline.ReprocessTarget, errw io.Writer) error {
	ctx, locks, err := holdRunLocks(ctx, st, w, wantTLDR, wantEmb, space)
	if err != nil {
		return err
	}
	defer unlockRuns(locks)
	b, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		return err
	}
	defer b.close()
	left, err := pipeline.QueueLeft(ctx, b.js, target)
	if err != nil {
		return err
	}
	info, err := b.js.Consumer(ctx, pipeline.StreamPapers, target.Consumer)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		fmt.Fprintf(errw, "reprocess: no run of these flags left anything queued (no consumer %s): nothing to drop\n", target.Consumer)
		return nil
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", target.Consumer, err)
	}
	stream, err := b.js.Stream(ctx, pipeline.StreamPapers)
	if err != nil {
		return fmt.Errorf("stream %s: %w", pipeline.StreamPapers, err)
	}
	if err := dropQueue(ctx, b.js, stream, target.Consumer, info.CachedInfo().Config.FilterSubject); err != nil {
		return err
	}
	fmt.Fprintf(errw, "reprocess: dropped what an interrupted run left queued (%s, consumer %s); nothing was sent, "+
		"and its papers stay stale: a later run selects them again\n", plural(left.Waiting+uint64(left.Held), "message", "messages"), target.Consumer)
	return nil
}

// runCost says what a run is estimated to cost, for its first line.
func runCost(e estimate, o reprocessOptions) string {
	if !e.CostKnown {
		return "estimated cost unknown: a model has no price (set PAPERPIPE_PRICES; `--dry-run` shows the tokens)"
	}
	s := "estimated cost " + paper.FormatUSD(e.CostUSD)
	if e.BatchAPI {
		s += " (Batch API: half price)"
	}
	if o.capped {
		s += ", within --max-cost " + paper.FormatUSD(o.maxCost)
	}
	return s + " (`--dry-run` shows the tokens)"
}

// budgetRefusal is --max-cost's refusal of a run estimated at e, nil when e is within max.
// A cost that cannot be priced is refused too: a budget cannot be held to it.
func budgetRefusal(e estimate, max float64, dryRun bool) error {
	sent := "nothing was sent"
	if dryRun {
		sent = "a run would send nothing"
	}
	if !e.CostKnown {
		return fmt.Errorf("--max-cost %s: the run's cost cannot be estimated, a model has no price; %s: "+
			"give its price in PAPERPIPE_PRICES (model=input/output, USD per 1M tokens), or leave --max-cost out",
			paper.FormatUSD(max), sent)
	}
	if e.CostUSD <= max {
		return nil
	}
	cheaper := "; --batch-api halves it"
	if e.BatchAPI {
		cheaper = ""
	}
	return fmt.Errorf("the run's estimated cost, %s for %s, is above --max-cost %s; %s: "+
		"select fewer papers (--since DATE, --ids FILE)%s, or raise --max-cost",
		paper.FormatUSD(e.CostUSD), plural(e.Papers, "paper", "papers"), paper.FormatUSD(max), sent, cheaper)
}

// averageAnswer is the average output tokens of model's chat requests (the Batch API's
// included) in the usage ledger over the days status shows, rounded up; 0 with none. A
// reasoning model's answers are billed with its thinking, many times the TL;DR's 2 tokens per
// word that a dry run otherwise counts.
func averageAnswer(ctx context.Context, st *store.Store, model string) (int64, error) {
	rows, err := st.Usage(ctx, usageSince(time.Now()))
	if err != nil {
		return 0, err
	}
	var requests, out int64
	for _, u := range rows {
		if u.Model == model && (u.Kind == paper.KindChat || u.Kind == batch.KindChatBatch) {
			requests += int64(u.Requests)
			out += int64(u.OutputTokens)
		}
	}
	if requests == 0 {
		return 0, nil
	}
	return (out + requests - 1) / requests, nil
}

func printEstimate(w io.Writer, e estimate, m *models, space paper.Space, wantTLDR, wantEmb bool) {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintf(tw, "papers\t%d\n", e.Papers)
	if wantTLDR {
		fmt.Fprintf(tw, "TL;DRs\t%d\t(%s, prompt %s)\n", e.TLDRs, m.sum.Model(), m.sum.PromptVersion())
		perAnswer := "2 per word of the TL;DR's limit"
		if e.chatOutObserved {
			perAnswer = "the model's average answer in the usage ledger"
		}
		fmt.Fprintf(tw, "chat requests\t%d\t(~%d input + ~%d output tokens: %d per answer, %s)\n",
			e.ChatRequests, e.ChatInTokens, e.ChatOutTokens, e.ChatOutPerRequest, perAnswer)
	}
	if wantEmb {
		fmt.Fprintf(tw, "embeddings\t%d\t(space %s)\n", e.Embeddings, space.Name())
		fmt.Fprintf(tw, "embedding requests\t%d\t(~%d tokens; up to %s per request)\n", e.EmbedRequests, e.EmbedTokens, plural(e.EmbedBatchInput, "paper", "papers"))
	}
	cost := paper.FormatUSD(e.CostUSD)
	if !e.CostKnown {
		cost += " (a model has no price: set PAPERPIPE_PRICES)"
	}
	if e.BatchAPI {
		cost += " (Batch API: half price)"
	}
	fmt.Fprintf(tw, "estimated cost\t%s\n", cost)
	tw.Flush()
	fmt.Fprintln(w, dryRunNote)
}

// dryRunNote says what a dry run's figures are.
const dryRunNote = "dry run: nothing was sent or spent; input tokens are estimated at 3 ASCII bytes (or 1 other byte) per token, above real counts"

// dryRunPlan is what `reprocess --dry-run --json` prints: the run's target (its TL;DR model
// and prompt version, its space: each only when the run writes that output), what is stale,
// and the estimate.
type dryRunPlan struct {
	Target        string            `json:"target"`
	TLDRModel     string            `json:"tldr_model,omitempty"`
	PromptVersion string            `json:"prompt_version,omitempty"`
	Space         *paper.Space      `json:"space,omitempty"`
	Counts        store.StaleCounts `json:"counts"`
	Estimate      estimate          `json:"estimate"`
}

// setUpReprocess makes or updates the run's consumer, across a takeover of the embedded server
// (see broker.acrossTakeover).
func (b *broker) setUpReprocess(ctx context.Context, c *config, target pipeline.ReprocessTarget, desc string) error {
	return b.acrossTakeover(ctx, func(ctx context.Context) error {
		return pipeline.EnsureReprocessConsumer(ctx, b.js, pipeline.TopologyConfig{AckWait: c.AckWait, MaxDeliver: c.MaxDeliver}, target, desc)
	})
}

// runReprocessWorkers publishes the stale papers to the target's subject page by page and, after
// each page, runs a worker on the target's consumer until it is idle. Interrupted, it leaves
// the rest for the next run: the store says what is done, and message ids make republishing
// what is still queued free.
func runReprocessWorkers(ctx context.Context, c *config, o reprocessOptions, st *store.Store, m *models, space paper.Space,
	sel store.Selection, target pipeline.ReprocessTarget, res *reprocessResult, errw io.Writer, log *slog.Logger) error {
	if o.pageSize <= 0 {
		o.pageSize = 5000
	}
	b, err := connectBroker(ctx, c, log, brokerClient)
	if err != nil {
		return err
	}
	defer b.close()
	desc := reprocessDescription(sel.Work, space)
	if err := b.setUpReprocess(ctx, c, target, desc); err != nil {
		return err
	}
	// A run that leaves nothing queued removes its consumer (the next run of the target makes
	// it again): each past target's stayed in status and the queue metrics for ever. One that
	// stopped with messages left keeps it, and the next run resumes them.
	defer func() {
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		if _, err := pipeline.RemoveIdleReprocessConsumer(cctx, b.js, target); err != nil {
			log.Warn("could not remove the run's consumer, which holds nothing", "consumer", target.Consumer, "err", err)
		}
	}()
	var sum pipeline.Summarizer
	if sel.Work.Model != "" {
		sum = m.sum
	}
	wst := reprocess.Store{Store: st}
	var emb pipeline.Embedder
	var into paper.Space // the space the run writes, if any
	if sel.Work.SpaceID != 0 {
		emb, into = m.emb, space
	}
	// What status says the run's workers write, as a worker's: the consumer's description
	// (desc) names a TL;DR model and prompt even when the run writes none.
	writes := workerTarget(sum, into)

	prog := newCountProgress(errw, "reprocess", res.Counts.Papers, "papers")
	var done atomic.Int64
	stopTicker := make(chan struct{})
	tickerDone := make(chan struct{})
	go func() {
		defer close(tickerDone)
		t := time.NewTicker(200 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stopTicker:
				return
			case <-t.C:
				prog.tick(int(done.Load()), 0)
			}
		}
	}()
	// Stopped before the run's last line, as well as on every return: a tick after it wrote
	// its progress line below the summary, and beside it (errw is not safe for concurrent use).
	stopProgress := sync.OnceFunc(func() { close(stopTicker); <-tickerDone; prog.done(0) })
	defer stopProgress()

	// The settings a worker lowered to fit the consumer (PAPERPIPE_MSG_TIMEOUT above what its
	// AckWait allows) are the next worker's: each worker warned of them again, and a resumed
	// run, or one of several pages, said the same warning at each.
	msgTimeout, embedLinger := c.MsgTimeout, c.EmbedLinger
	drain := func() error {
		w, err := pipeline.NewWorker(b.js, wst, sum, emb, pipeline.WorkerConfig{
			Consumer: target.Consumer, SpaceID: sel.Work.SpaceID, Concurrency: c.Concurrency, BatchSize: c.BatchSize,
			EmbedBatch: c.EmbedBatchInputs, EmbedLinger: embedLinger, MsgTimeout: msgTimeout, ExitWhenIdle: true, Logger: log.With("consumer", target.Consumer),
			APILimitedBy: m.lim.LimitedBy,
		})
		if err != nil {
			return err
		}
		defer func() { msgTimeout, embedLinger = w.Timeouts() }()
		defer announceWorker(c, b, w, writes).Stop()
		stop := make(chan struct{})
		finished := make(chan struct{})
		base := done.Load()
		go func() {
			defer close(finished)
			t := time.NewTicker(100 * time.Millisecond)
			defer t.Stop()
			for {
				select {
				case <-stop:
					return
				case <-t.C:
					s := w.Stats()
					done.Store(base + s.Acked - s.Skipped)
				}
			}
		}()
		res.workers++
		err = w.Run(ctx)
		close(stop)
		<-finished
		// A message with nothing left to do (a paper an interrupted run saved and did not
		// acknowledge, resumed here) is no paper of the run's count: done counts the papers
		// worked, which the count of stale ones bounds (a resumed run showed "89/88 papers").
		s := w.Stats()
		done.Store(base + s.Acked - s.Skipped)
		res.Worker.Acked += s.Acked
		res.Worker.Skipped += s.Skipped
		res.Worker.TLDRs += s.TLDRs
		res.Worker.Embeddings += s.Embeddings
		res.Worker.Dead += s.Dead
		return err
	}

	// Messages an interrupted run left are processed first, so that the new run's messages
	// (whose ids carry the run, see pipeline.RunPublisher) never queue a paper twice.
	if left, err := pipeline.QueueLeft(ctx, b.js, target); err != nil {
		return err
	} else if n := left.Waiting + uint64(left.Held); n > 0 {
		held := ""
		if left.Held > 0 {
			// Delivered and not acknowledged: handed back by a run stopped with Ctrl-C, which
			// come again at once, or held by a run killed (or cut off) before it settled them,
			// which come back only once its hold lapses, the run showing no progress until then.
			// The consumer counts both alike. It said the second alone, and a run resumed after
			// a Ctrl-C, which went on at once, announced a wait of a minute with no progress
			// (found in session 28, walking a lab's journey).
			held = fmt.Sprintf(" (%d delivered to the interrupted run and not acknowledged: those it handed back as it stopped "+
				"come again at once; those it held, killed, come back once its hold on them lapses, within %s, its AckWait, "+
				"and until then no progress is shown)", left.Held, left.AckWait)
		}
		fmt.Fprintf(errw, "reprocess: resuming: %s of an interrupted run still queued%s\n", plural(n, "message is", "messages are"), held)
		if err := drain(); err != nil {
			return err
		}
	}
	pub := pipeline.NewRunPublisher(b.js, target.Subject, strconv.FormatInt(time.Now().UnixNano(), 36), 256)
	tooLarge := func(id string, err error) {
		res.LeftOut++
		fmt.Fprintf(errw, "reprocess: %s: %v: left out (it cannot be queued)\n", id, err)
	}
	var published int
	if published, err = reprocess.PublishStale(ctx, st, sel, pub, o.pageSize, drain, tooLarge); err == nil {
		if reprocess.NeedsDrain(ctx, b.js, target, published) {
			err = drain()
		}
	} else if errors.Is(err, pipeline.ErrQueueFull) && ctx.Err() == nil {
		// Say what to do, as ingest does: the server's answer alone told the user nothing.
		// What this run queued before stays queued, and the next run processes it first.
		err = fmt.Errorf("%w; the papers queued before it stay queued (`paperpipe status` shows the backlog): run the workers "+
			"to drain the queue, or give the NATS server room (disk, its max_file_store, the PAPERS stream's limits), then run "+
			"the same command again: it resumes, and what is stored is not redone", err)
	}
	if ctx.Err() != nil {
		// A stop while the last answers were on their way: the drain saved them, and nothing
		// is left to resume. A space's index is built after the workers, by the next run.
		if err != nil || !nothingStale(ctx, st, sel) {
			return fmt.Errorf("interrupted after %s; run the same command again to resume (finished papers are not redone): %w",
				plural(done.Load(), "paper", "papers"), context.Cause(ctx))
		}
		if sel.Work.SpaceID != 0 {
			return fmt.Errorf("interrupted once all %s are processed, before the index of space %d (%s) was built: "+
				"run the same command again to build it (no paper is redone): %w",
				plural(res.Counts.Papers, "paper", "papers"), space.ID, space.Name(), context.Cause(ctx))
		}
	}
	if err != nil {
		return err
	}
	leftOut := ""
	if res.LeftOut > 0 {
		leftOut = fmt.Sprintf(", %d left out (too large for the queue)", res.LeftOut)
	}
	stopProgress()
	fmt.Fprintf(errw, "reprocess: %s processed: %s, %s stored, %d skipped (already done), %d dead-lettered%s\n",
		plural(res.Worker.Acked-res.Worker.Skipped, "paper", "papers"), plural(res.Worker.TLDRs, "TL;DR", "TL;DRs"),
		plural(res.Worker.Embeddings, "embedding", "embeddings"), res.Worker.Skipped, res.Worker.Dead, leftOut)
	return nil
}

// nothingStale reports whether sel selects no paper any more: a run that ctx stopped has done
// all its work. It asks the database for up to 10 s after ctx has ended; not knowing, false.
func nothingStale(ctx context.Context, st *store.Store, sel store.Selection) bool {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	n, err := st.CountStale(cctx, sel)
	return err == nil && n.Papers == 0
}

// batchProgress is the line a --batch-api run prints at each poll of its jobs, open or closed.
func batchProgress(jobs []store.BatchJob, r batch.Report) string {
	var total, completed, failed, open int
	for _, j := range jobs {
		total += j.Total
		completed += j.Completed
		failed += j.Failed
		if j.Open() {
			open++
		}
	}
	return fmt.Sprintf("reprocess: %s (%d open): %d/%d requests completed, %d failed; %s and %s stored so far",
		plural(len(jobs), "batch", "batches"), open, completed, total, failed,
		plural(r.TLDRs, "TL;DR", "TL;DRs"), plural(r.Vectors, "embedding", "embeddings"))
}

// batchAPIModels refuses a --batch-api run whose work (TL;DRs with wantTLDR, vectors with
// wantEmb) needs an offline model: the Batch API runs OpenAI's models only. It suggests
// --embed-only or --tldr-only only when the model of that work is not offline itself; with
// every model of the work offline, a plain reprocess, which computes them locally for nothing.
func batchAPIModels(c *config, wantTLDR, wantEmb bool) error {
	c.resolveModels() // no model set: the offline ones without an API key
	chatOff, embOff := c.chatOffline(), c.embedOffline()
	switch {
	case wantTLDR && chatOff && wantEmb && !embOff:
		return usageErr("--batch-api sends the work to OpenAI's models, and the TL;DR model is the offline one: add --embed-only to send the embeddings alone " +
			"(then plain `paperpipe reprocess --tldr-only` writes the offline TL;DRs, at no cost), or set --chat-model to an OpenAI model")
	case wantEmb && embOff && wantTLDR && !chatOff:
		return usageErr("--batch-api sends the work to OpenAI's models, and the embedding model is the offline one: add --tldr-only to send the TL;DRs alone " +
			"(then plain `paperpipe reprocess --embed-only` writes the offline embeddings, at no cost), or set --embed-model to an OpenAI model")
	case (!wantTLDR || chatOff) && (!wantEmb || embOff):
		var which, flags string
		switch {
		case wantTLDR && wantEmb:
			which, flags = "the TL;DR and embedding models are the offline ones", ""
		case wantTLDR:
			which, flags = "the TL;DR model is the offline one", " --tldr-only"
		default:
			which, flags = "the embedding model is the offline one", " --embed-only"
		}
		return usageErr("--batch-api needs OpenAI models and OPENAI_API_KEY, and %s (the default without a key): "+
			"set OPENAI_API_KEY (and --chat-model/--embed-model to OpenAI models if set to offline), or run plain `paperpipe reprocess%s`, "+
			"which computes the offline models' outputs here, at no cost", which, flags)
	}
	return nil
}

// batchSentDimensions is the "dimensions" the Batch API's embedding requests for model carry
// (0: none), as the workers' client sends it (PAPERPIPE_EMBED_SEND_DIMENSIONS).
func batchSentDimensions(c *config, model string) int {
	if embed.SendsDimensions(c.EmbedSendDims, model) {
		return c.EmbedDims
	}
	return 0
}

// batchAPIDimensions refuses a --batch-api run into space sp whose requests would be answered
// with vectors of another length than sp's: a model whose own length is known, asked for none
// ("dimensions" not sent to it: text-embedding-ada-002, or PAPERPIPE_EMBED_SEND_DIMENSIONS=never)
// while PAPERPIPE_EMBED_DIMENSIONS names another. The workers' client finds that out at its first
// answer and pauses; the Batch API's answers all come back at once, each paid for, and every
// one was rejected.
func batchAPIDimensions(c *config, sp paper.Space) error {
	if batchSentDimensions(c, sp.Model) != 0 {
		return nil
	}
	native := embed.NativeDimensions(sp.Model)
	if native == 0 || native == sp.Dimensions {
		return nil
	}
	how := fmt.Sprintf("PAPERPIPE_EMBED_SEND_DIMENSIONS=%s does not send it", c.EmbedSendDims)
	if c.EmbedSendDims == "" || c.EmbedSendDims == embed.SendDimensionsAuto {
		how = "it is sent by default to OpenAI's text-embedding-3 models only"
	}
	return usageErr("--batch-api: model %s answers %d-dimensional vectors unless asked for fewer (\"dimensions\"), and %s: "+
		"every answer of the batches, each paid for, would be refused by space %s, which holds %d; set PAPERPIPE_EMBED_DIMENSIONS=%d "+
		"(or --embed-dimensions), or PAPERPIPE_EMBED_SEND_DIMENSIONS=always if the model can shorten its vectors",
		sp.Model, native, how, sp.Name(), sp.Dimensions, native)
}

// runBatchAPI sends the work through OpenAI's Batch API.
func runBatchAPI(ctx context.Context, c *config, o reprocessOptions, st *store.Store, m *models, space paper.Space,
	sel store.Selection, wantTLDR, wantEmb bool, res *reprocessResult, errw io.Writer, log *slog.Logger) error {
	cfg := batch.Config{
		BaseURL: c.BaseURL, APIKey: c.APIKey, Store: st, Logger: log, PollInterval: o.poll,
		UploadRate: int(math.Ceil(o.uploadMbit * 125_000)),
		Progress:   func(jobs []store.BatchJob, r batch.Report) { fmt.Fprintln(errw, batchProgress(jobs, r)) },
	}
	maxWords := c.MaxWords
	if wantTLDR {
		cfg.Chat = &batch.ChatWork{
			Model: m.sum.Model(), PromptVersion: m.sum.PromptVersion(),
			Messages: func(a paper.Abstract) []batch.Message {
				var out []batch.Message
				for _, msg := range summarize.Messages(a, maxWords) {
					out = append(out, batch.Message{Role: msg.Role, Content: msg.Content})
				}
				return out
			},
			Accept: func(answer string, a paper.Abstract) (string, string, error) {
				return summarize.Accept(answer, a, maxWords)
			},
		}
	}
	if wantEmb {
		tmpl := space.Template
		cfg.Embed = &batch.EmbedWork{
			Space: space, Dimensions: batchSentDimensions(c, space.Model),
			Input: func(a paper.Abstract) (string, bool, error) {
				text, err := embed.Text(tmpl, a)
				if err != nil {
					return "", false, err
				}
				cut, truncated := llm.TruncateToTokens(text, embedContextTokens)
				return cut, truncated, nil
			},
		}
	}
	r, err := batch.New(cfg)
	if err != nil {
		return err
	}
	var rep batch.Report
	if o.wait {
		rep, err = r.Run(ctx, sel)
	} else {
		rep, err = r.Submit(ctx, sel)
	}
	res.Batch = &rep
	if ctx.Err() != nil {
		return fmt.Errorf("interrupted; the batches keep running at OpenAI: run the same command again to collect them: %w", ctx.Err())
	}
	// A job that failed in the run (*batch.JobError) did not stop the others: they are reported.
	if je := (*batch.JobError)(nil); err != nil && !errors.As(err, &je) {
		return err
	}
	// A job that failed before its batch was created is not a batch submitted: it said "1 batch
	// submitted (6026 requests)" for a job whose input file could not be written.
	unsent := ""
	if rep.Unsubmitted > 0 {
		unsent = fmt.Sprintf(", %s not submitted (no batch recorded: see below; a batch whose creation answer was lost is found by the next run)", plural(rep.Unsubmitted, "job", "jobs"))
	}
	removed := ""
	if rep.Removed > 0 {
		// Not a failure: the removal asked for it (see paperpipe remove).
		removed = fmt.Sprintf(", %s of papers removed while their batch ran not stored", plural(rep.Removed, "answer", "answers"))
	}
	withheld := ""
	if rep.Withheld > 0 {
		withheld = fmt.Sprintf(" (%d of them TL;DRs the API withheld, recorded: `paperpipe batches withheld`)", rep.Withheld)
	}
	fmt.Fprintf(errw, "reprocess: Batch API: %s submitted (%s)%s, %d resumed, %d done, %d failed; %s and %s stored, %s rejected%s%s\n",
		plural(rep.Submitted, "batch", "batches"), plural(rep.Requests, "request", "requests"), unsent, rep.Resumed, rep.Done, rep.Failed,
		plural(rep.TLDRs, "TL;DR", "TL;DRs"), plural(rep.Vectors, "embedding", "embeddings"), plural(rep.Rejected, "answer", "answers"), withheld, removed)
	for _, f := range rep.Failures {
		// The batch's status and its errors' messages, as the API (or a gateway in its place)
		// wrote them: terminal-safe, as a worker's pause's detail.
		fmt.Fprintf(errw, "reprocess: %s\n", termSafe(f, false))
	}
	if rep.Skipped > 0 {
		fmt.Fprintf(errw, "reprocess: %s left out of their batch's upload (a new or a resumed one): their text changed after the batch was recorded (they stay stale for a new one)\n", plural(rep.Skipped, "paper", "papers"))
	}
	if err != nil {
		return withBatchesHint(err)
	}
	if !o.wait && rep.Submitted+rep.Resumed > 0 {
		fmt.Fprintln(errw, "reprocess: the batches finish within 24 hours; run the same command again without --wait=false to wait for them and store their results")
	}
	return nil
}
