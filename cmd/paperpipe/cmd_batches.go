package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// batchesHint is what a run says when a Batch API job failed in it: how to see the open jobs,
// and the way out for one that can never be collected.
const batchesHint = "the failed jobs stay open and their papers out of other work; a later `paperpipe reprocess --batch-api` " +
	"tries them again. `paperpipe batches` lists the open jobs; `paperpipe batches abandon ID` closes one that cannot be " +
	"collected (its batch or output file is gone, or belongs to another API key) so its papers are processed again: " +
	"what OpenAI ran for it, and billed, is lost"

// batchesArgs is the batches command's arguments, in the command list and its own --help.
const batchesArgs = "[ACTION]"

func cmdBatches(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("batches", batchesArgs, "ACTION is list (the default), abandon ID... [--force], or withheld [clear ID...|--all]. "+
		"List the open Batch API jobs of `paperpipe reprocess --batch-api` "+
		"(id, target, status, OpenAI batch id, papers, age), or abandon jobs: close them as failed, so their papers "+
		"are processed again by the next run. Abandoning a job loses what OpenAI ran for it (and billed): abandon only "+
		"a job that cannot be collected, for instance one whose batch or output file OpenAI no longer has (it keeps "+
		"output files for 30 days) or that another API key created. abandon looks at each job's batch at OpenAI first, "+
		"and records what it sees: a batch still running (validating, in_progress, finalizing, cancelling) is refused "+
		"without --force, for it is still billed and the next run would buy its papers again (cancel it at OpenAI "+
		"first, or let `paperpipe reprocess --batch-api` collect it), and so is a batch that has ended with an output "+
		"file OpenAI still has, whose results the run of the job's settings (named) collects. A batch OpenAI has not "+
		"(404), ended without output, or whose output file is gone is abandoned. When OpenAI cannot be asked (no key, "+
		"unreachable), the status recorded at the job's last look decides (a batch last seen running, or ended with an "+
		"output file, is refused), and abandon says so. A job still preparing whose input file was uploaded may have a "+
		"batch whose creation's answer was lost: abandon looks for it in OpenAI's list of batches, records the batch it "+
		"finds and treats it as above; a list without it lets the job be abandoned, and one that cannot be read (or no "+
		"key) refuses it without --force. withheld lists the TL;DRs the API would not give (its content filter withheld "+
		"the answer, or the model refused): `reprocess --batch-api` records them, and no run asks for them again while the "+
		"paper's text, the chat model and the prompt version are the same (each run bought the same refusal again); "+
		"withheld clear ID... (or --all) deletes their records, so that the next run asks for those TL;DRs again.")
	c.addJSONFlag(fs)
	force := fs.Bool("force", false, "abandon: also a job whose batch is running at OpenAI (it is still billed, and its papers are bought again) or has output still to collect (lost)")
	all := fs.Bool("all", false, "withheld clear: the records of every paper")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	// The help asked for after an action (`batches abandon help`, `batches withheld clear help`),
	// not a job or a paper named "help": see askedHelp.
	if n := len(pos); n == 2 && isHelpWord(pos[1:]) || n == 3 && pos[0] == "withheld" && pos[1] == "clear" && isHelpWord(pos[2:]) {
		return askedHelp(fs)
	}
	if *all && (len(pos) != 2 || pos[0] != "withheld" || pos[1] != "clear") {
		return usageErr("--all is for `batches withheld clear`, alone")
	}
	var ids []int64
	switch {
	case len(pos) > 0 && pos[0] == "withheld":
		if *force {
			return usageErr("--force is for `batches abandon ID...`")
		}
		return batchesWithheld(ctx, c, pos[1:], *all)
	case len(pos) == 0 || pos[0] == "list" && len(pos) == 1:
		if *force {
			return usageErr("--force is for `batches abandon ID...`")
		}
	case pos[0] == "abandon" && len(pos) > 1:
		if c.JSON {
			return usageErr("--json is for the list of jobs; `batches abandon` says what it did as text")
		}
		for _, a := range pos[1:] {
			id, err := strconv.ParseInt(a, 10, 64)
			if err != nil || id <= 0 {
				return usageErr("batches abandon: %q is not a job id (see `paperpipe batches`)", a)
			}
			ids = append(ids, id)
		}
	default:
		return usageErr("want `batches`, `batches list`, `batches abandon ID... [--force]` or `batches withheld [clear ID...|--all]`")
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	if ids == nil {
		return listBatchJobs(ctx, st, c.JSON, time.Now(), stdout)
	}
	return abandonBatchJobs(ctx, c, st, ids, *force, os.Stderr)
}

// openBatchJobs returns the open Batch API jobs, oldest first.
func openBatchJobs(ctx context.Context, st *store.Store) ([]store.BatchJob, error) {
	all, err := st.BatchJobs(ctx, "")
	if err != nil {
		return nil, err
	}
	var open []store.BatchJob
	for i := len(all) - 1; i >= 0; i-- { // BatchJobs lists every job newest first
		if all[i].Open() {
			open = append(open, all[i])
		}
	}
	return open, nil
}

// listBatchJobs prints the open Batch API jobs, with their ages at now.
func listBatchJobs(ctx context.Context, st *store.Store, asJSON bool, now time.Time, w io.Writer) error {
	open, err := openBatchJobs(ctx, st)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, nonNil(open))
	}
	if len(open) == 0 {
		fmt.Fprintln(w, "no open Batch API jobs")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTARGET\tSTATUS\tOPENAI BATCH\tPAPERS\tAGE")
	for _, j := range open {
		status, id := j.Status, j.OpenAIID
		if j.OpenAIStatus != "" {
			status += " (" + j.OpenAIStatus + ")"
		}
		if id == "" {
			id = "-"
		}
		// The batch's id and status are the API's answers (a gateway's, in its place), kept as
		// they came: terminal-safe.
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", j.ID, termSafe(j.Target, false), termSafe(status, false), termSafe(id, false), j.Total, age(now.Sub(j.CreatedAt)))
	}
	return tw.Flush()
}

// batchesWithheld runs `batches withheld` with the arguments after it: lists the withheld
// TL;DRs, or clears the records of the papers given (all: every one).
func batchesWithheld(ctx context.Context, c *config, args []string, all bool) error {
	var ids []string
	switch {
	case len(args) == 0:
	case args[0] == "clear" && (all || len(args) > 1):
		if c.JSON {
			return usageErr("--json is for the list of withheld TL;DRs; `batches withheld clear` says what it did as text")
		}
		ids = canonicalIDs(args[1:])
	default:
		return usageErr("want `batches withheld` or `batches withheld clear ID...|--all`")
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	if len(args) == 0 {
		return listWithheld(ctx, st, c.JSON, time.Now(), stdout)
	}
	n, err := st.ClearWithheld(ctx, ids) // nil with --all: every record
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "batches: %s cleared: the next `paperpipe reprocess` asks for them again\n", plural(n, "withheld TL;DR", "withheld TL;DRs"))
	return nil
}

// listWithheld prints the withheld TL;DRs, oldest first, with their ages at now.
func listWithheld(ctx context.Context, st *store.Store, asJSON bool, now time.Time, w io.Writer) error {
	ws, err := st.WithheldTLDRs(ctx, nil)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, nonNil(ws))
	}
	if len(ws) == 0 {
		fmt.Fprintln(w, "no withheld TL;DRs")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PAPER\tMODEL\tPROMPT\tAGE\tREASON")
	for _, x := range ws {
		// Terminal-safe, as dlq list prints its letters: a reason imported from another
		// archive's export is whatever that file says.
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", termSafe(x.PaperID, false), termSafe(x.Model, false),
			termSafe(x.PromptVersion, false), age(now.Sub(x.At)), termSafe(x.Reason, false))
	}
	return tw.Flush()
}

// age says how old something is in one unit: minutes under an hour ("45m"), hours under two
// days ("26h"), days from then on ("3d").
func age(d time.Duration) string {
	switch {
	case d < time.Hour:
		return strconv.Itoa(int(max(d, 0)/time.Minute)) + "m"
	case d < 48*time.Hour:
		return strconv.Itoa(int(d/time.Hour)) + "h"
	default:
		return strconv.Itoa(int(d/(24*time.Hour))) + "d"
	}
}

// batchRunning reports whether OpenAI status s is of a batch still running, billed as it goes.
func batchRunning(s string) bool {
	switch s {
	case "validating", "in_progress", "finalizing", "cancelling":
		return true
	}
	return false
}

// abandonBatchJobs closes the open jobs ids (each once) as failed, each under its lock (a job a
// run is preparing or collecting is refused), and says what that means. Before it closes a job
// that has a batch, it looks at the batch at OpenAI now, with c's API settings, and records what
// it found on the job: unless force, a batch still running (billed) or one that has ended with
// an output file OpenAI still serves (results a run collects) is refused; a batch that is gone
// (404: deleted, or another API key's), ended without output, or whose output file is gone is
// closed. When OpenAI cannot be asked (no key, unreachable), the status recorded at the job's
// last look decides (a batch last seen running, or ended with an output file, is refused), and
// abandon says so. A preparing job whose input file was uploaded is first looked for in OpenAI's
// list of batches (see findBeforeAbandon).
func abandonBatchJobs(ctx context.Context, c *config, st *store.Store, ids []int64, force bool, w io.Writer) error {
	var errs []error
	done := map[int64]bool{}
	for _, id := range ids {
		if done[id] {
			continue
		}
		done[id] = true
		j, release, err := st.LockBatchJob(ctx, id)
		switch {
		case errors.Is(err, store.ErrBatchJobBusy):
			errs = append(errs, fmt.Errorf("batch job %d is being prepared or collected by a running `paperpipe reprocess --batch-api`; let it finish", id))
			continue
		case errors.Is(err, paper.ErrNotFound):
			errs = append(errs, fmt.Errorf("no batch job %d (see `paperpipe batches`)", id))
			continue
		case err != nil:
			return errors.Join(append(errs, err)...)
		}
		if !j.Open() {
			release.Release()
			errs = append(errs, fmt.Errorf("batch job %d is already closed (%s)", id, j.Status))
			continue
		}
		j, found, refusal, err := lookBeforeAbandon(ctx, c, st, j)
		if err != nil {
			release.Release()
			return errors.Join(append(errs, err)...)
		}
		if refusal != "" && !force {
			release.Release()
			errs = append(errs, fmt.Errorf("batch job %d is not abandoned: %s; `paperpipe batches abandon %d --force` abandons it anyway", id, refusal, id))
			continue
		}
		// The job's lock is held by a session that sat idle while OpenAI was asked: when the
		// database ended it meanwhile, a run may have taken the job (created its batch, or
		// collected it), and what abandon found is out of date.
		if cur, err := release.Confirm(ctx); err != nil || !cur.Open() || cur.Status != j.Status || cur.OpenAIID != j.OpenAIID || cur.InputFileID != j.InputFileID {
			release.Release()
			if err != nil && !errors.Is(err, store.ErrBatchJobLockLost) {
				return errors.Join(append(errs, err)...)
			}
			now := "it holds the job's lock now"
			if err == nil {
				now = "the job is " + cur.Status + batchOf(cur) + " now"
			}
			errs = append(errs, fmt.Errorf("batch job %d is not abandoned: the database ended the session of its lock while OpenAI was asked, "+
				"and a running `paperpipe reprocess --batch-api` took the job over meanwhile (%s); see `paperpipe batches`", id, now))
			continue
		}
		j.Status = store.BatchFailed
		err = st.FinishBatchJob(ctx, j, nil)
		release.Release()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		batchID := ""
		if j.OpenAIID != "" {
			batchID = " (OpenAI batch " + j.OpenAIID + ")"
		}
		if found != "" {
			found = " " + found + ";"
		}
		// Its input file, which OpenAI keeps until it is deleted (up to 190 MB a job), is read
		// by no batch any more — unless --force abandoned one still running.
		file := ""
		if j.InputFileID != "" && refusal == "" && c.canAskBatches() {
			if err := batch.DeleteInput(ctx, batch.Config{BaseURL: c.BaseURL, APIKey: c.APIKey, Logger: newLogger(c)}, j); err != nil {
				if ctx.Err() != nil {
					return errors.Join(append(errs, ctx.Err())...)
				}
				file = fmt.Sprintf(" (its input file %s stays at OpenAI: %v)", j.InputFileID, err)
			}
		}
		fmt.Fprintf(w, "abandoned batch job %d%s:%s its %s will be processed again by the next run; "+
			"what OpenAI ran for it, and billed, is lost%s\n", id, termSafe(batchID, false), termSafe(found, false), plural(j.Total, "paper", "papers"), termSafe(file, false))
	}
	return errors.Join(errs...)
}

// batchOf names job j's OpenAI batch, " with OpenAI batch ID", or "" when it has none.
func batchOf(j store.BatchJob) string {
	if j.OpenAIID == "" {
		return ""
	}
	return " with OpenAI batch " + j.OpenAIID
}

// lookBeforeAbandon looks at the batch of open job j (locked) at OpenAI now and records what it
// found on the job. It returns the job so updated, what was found (for the user), and why the
// job is not to be abandoned without --force, "" when it may be. A job still preparing without
// an input file has no batch (one is created only after the file is recorded), and may be. One
// with its input file may have a batch whose creation's answer was lost: it is looked for in
// OpenAI's list of batches first (see findBeforeAbandon). When OpenAI cannot be asked, the
// status recorded at the job's last look decides, and found says so.
func lookBeforeAbandon(ctx context.Context, c *config, st *store.Store, j store.BatchJob) (cur store.BatchJob, found, refusal string, err error) {
	if j.OpenAIID == "" && j.InputFileID == "" {
		return j, "", "", nil
	}
	if j.OpenAIID == "" {
		if j, found, refusal, err = findBeforeAbandon(ctx, c, st, j); err != nil || refusal != "" || j.OpenAIID == "" {
			return j, found, refusal, err
		}
	}
	var state batch.State
	var lookErr error
	if !c.canAskBatches() {
		lookErr = errors.New("no OPENAI_API_KEY")
	} else {
		j, state, lookErr = batch.Look(ctx, batch.Config{BaseURL: c.BaseURL, APIKey: c.APIKey, Logger: newLogger(c)}, j)
	}
	if lookErr != nil {
		if ctx.Err() != nil {
			return j, "", "", ctx.Err()
		}
		recorded := j.OpenAIStatus
		if recorded == "" {
			recorded = "none"
		}
		found = fmt.Sprintf("OpenAI could not be asked about batch %s (%v), so the status recorded at the job's last look (%s) decides",
			j.OpenAIID, lookErr, recorded)
		if batchRunning(j.OpenAIStatus) {
			return j, found, fmt.Sprintf("its OpenAI batch %s was last seen running (%s), and may still be billed; %s. %s",
				j.OpenAIID, j.OpenAIStatus, found, runningAdvice(ctx, c, st, j)), nil
		}
		if j.OutputFileID != "" {
			// It ended with an output file: whether OpenAI still serves it cannot be checked,
			// and its results may still be collected.
			return j, found, fmt.Sprintf("its OpenAI batch %s was last seen ended (%s) with output file %s, which may still be "+
				"downloadable; %s. %s collects its results", j.OpenAIID, j.OpenAIStatus, j.OutputFileID, found, collectsIt(ctx, c, st, j)), nil
		}
		return j, found, "", nil
	}
	if err := st.UpdateBatchJob(ctx, j); err != nil {
		return j, "", "", err
	}
	switch state {
	case batch.Running:
		return j, "its batch is running (" + j.OpenAIStatus + ")", fmt.Sprintf("its OpenAI batch %s is still running (%s) and billed as it runs; "+
			"abandoned, its papers would be bought again by the next run. %s", j.OpenAIID, j.OpenAIStatus, runningAdvice(ctx, c, st, j)), nil
	case batch.Collectable:
		return j, "its output can still be downloaded", fmt.Sprintf("its OpenAI batch %s has ended (%s) and its output file %s can still be downloaded: "+
			"%s collects its results (abandoned, they are lost, and its papers bought again)", j.OpenAIID, j.OpenAIStatus, j.OutputFileID, collectsIt(ctx, c, st, j)), nil
	case batch.Gone:
		return j, "OpenAI has no batch " + j.OpenAIID + " (404: deleted, or another API key's)", "", nil
	}
	if j.OutputFileID != "" {
		return j, fmt.Sprintf("its batch ended (%s) and its output file %s is gone (404)", j.OpenAIStatus, j.OutputFileID), "", nil
	}
	return j, fmt.Sprintf("its batch ended (%s) without output", j.OpenAIStatus), "", nil
}

// findBeforeAbandon looks for the batch of open job j (locked), preparing with its input file
// uploaded but no batch recorded, in OpenAI's list of batches, as a resumed run does: the answer
// to the batch's creation may have been lost, while the batch runs and is billed. A batch found
// is recorded on the job (submitted), which is returned so, for lookBeforeAbandon to look at it.
// A list that answered without it says no batch was created, and the job may be abandoned; when
// OpenAI cannot be asked, or its list cannot be read, the job is refused without --force.
func findBeforeAbandon(ctx context.Context, c *config, st *store.Store, j store.BatchJob) (cur store.BatchJob, found, refusal string, err error) {
	var ok bool
	var lookErr error
	if !c.canAskBatches() {
		lookErr = errors.New("no OPENAI_API_KEY")
	} else {
		j, ok, lookErr = batch.Find(ctx, batch.Config{BaseURL: c.BaseURL, APIKey: c.APIKey, Logger: newLogger(c)}, j)
	}
	switch {
	case lookErr != nil && ctx.Err() != nil:
		return j, "", "", ctx.Err()
	case lookErr != nil:
		return j, "", fmt.Sprintf("its input file %s was uploaded and its batch may have been created at OpenAI, the answer lost "+
			"(its batch is still running and billed, or has results to collect), and OpenAI's list of batches could not be read (%v). "+
			"%s finds the batch and collects it; abandon the job with --force only once you know OpenAI has no batch of it "+
			"(https://platform.openai.com/batches: metadata paperpipe_job=%d)", j.InputFileID, lookErr, capitalize(collectsIt(ctx, c, st, j)), j.ID), nil
	case !ok:
		return j, "OpenAI lists no batch of it (none was created, or another API key's project has it)", "", nil
	}
	if err := st.UpdateBatchJob(ctx, j); err != nil {
		return j, "", "", err
	}
	return j, "", "", nil
}

// canAskBatches reports whether the API's batches can be asked about: with a key, or on a
// server other than OpenAI's (which may need none).
func (c *config) canAskBatches() bool {
	if c.APIKey != "" {
		return true
	}
	u, err := url.Parse(c.BaseURL)
	return c.BaseURL != "" && err == nil && u.Hostname() != "api.openai.com"
}

// runningAdvice says what to do about job j whose batch is running: let the run of its target
// collect it, or cancel it at OpenAI.
func runningAdvice(ctx context.Context, c *config, st *store.Store, j store.BatchJob) string {
	if j.OpenAIStatus == "cancelling" {
		return fmt.Sprintf("It is being cancelled: once it has ended, %s collects what it ran", collectsIt(ctx, c, st, j))
	}
	run, ok := collectingRun(ctx, c, st, j)
	if !ok {
		return fmt.Sprintf("%s collects it: cancel the batch at OpenAI (https://platform.openai.com/batches, or POST /v1/batches/%s/cancel), "+
			"which stops the billing, then abandon the job with --force", capitalize(run), j.OpenAIID)
	}
	return fmt.Sprintf("Let %s collect it, or cancel the batch at OpenAI (https://platform.openai.com/batches, or POST /v1/batches/%s/cancel), "+
		"which stops the billing, and let that run record it", run, j.OpenAIID)
}

// collectsIt names the run that collects job j: `paperpipe reprocess --batch-api`, with the
// settings of the job's target when they are not the configured ones (a run collects only the
// jobs of its own target: its chat model and prompt version, or its embedding space).
func collectsIt(ctx context.Context, c *config, st *store.Store, j store.BatchJob) string {
	run, _ := collectingRun(ctx, c, st, j)
	return run
}

// collectingRun is collectsIt, and whether any run can collect job j: its embedding space is
// gone, or its prompt version is not one this paperpipe writes (an older one), and none can
// (run then says why, as "no run of this paperpipe (…)").
func collectingRun(ctx context.Context, c *config, st *store.Store, j store.BatchJob) (run string, ok bool) {
	const bare = "`paperpipe reprocess --batch-api`"
	c.resolveModels()
	if j.Kind == paper.KindEmbedding {
		sp, err := st.FindSpace(ctx, strconv.FormatInt(j.SpaceID, 10))
		if errors.Is(err, paper.ErrNotFound) {
			return fmt.Sprintf("no run of this paperpipe (its embedding space %d is gone)", j.SpaceID), false
		}
		if err != nil {
			return fmt.Sprintf("%s run with the embedding space %d as its space (it could not be looked up: %v)", bare, j.SpaceID, err), true
		}
		if settingsFor(c, sp.Space) == "" { // the configured embedder's space, default dimensions included
			return bare, true
		}
		return fmt.Sprintf("%s run with the embedding space %d (%s) as its space (PAPERPIPE_EMBED_MODEL=%s PAPERPIPE_EMBED_DIMENSIONS=%d; "+
			"the configured model is %s)", bare, sp.ID, sp.Name(), sp.Model, sp.Dimensions, c.EmbedModel), true
	}
	version := summarize.Versioned(summarize.PromptVersion, c.MaxWords)
	if j.Model == c.ChatModel && j.PromptVersion == version {
		return bare, true
	}
	settings := "PAPERPIPE_CHAT_MODEL=" + j.Model
	if base, n := summarize.Unversioned(j.PromptVersion); base == summarize.PromptVersion {
		settings += fmt.Sprintf(" PAPERPIPE_TLDR_MAX_WORDS=%d", n)
	} else {
		return fmt.Sprintf("no run of this paperpipe (its prompt version %s is not one it writes: %s or %s-wN)",
			j.PromptVersion, summarize.PromptVersion, summarize.PromptVersion), false
	}
	return fmt.Sprintf("%s run with the chat model %s and prompt version %s (%s; the configured ones are %s and %s)",
		bare, j.Model, j.PromptVersion, settings, c.ChatModel, version), true
}

// withBatchesHint adds batchesHint to an error of a Batch API run in which jobs failed.
func withBatchesHint(err error) error {
	if je := (*batch.JobError)(nil); errors.As(err, &je) && !errors.Is(err, paper.ErrLocked) {
		return fmt.Errorf("%w\n%s", err, batchesHint)
	}
	return err
}

// capitalize upper-cases s's first letter (ASCII).
func capitalize(s string) string {
	if s != "" && s[0] >= 'a' && s[0] <= 'z' {
		return string(s[0]-'a'+'A') + s[1:]
	}
	return s
}
