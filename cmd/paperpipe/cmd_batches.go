package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"text/tabwriter"
	"time"

	"github.com/paperpipe/paperpipe/batch"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
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
	fs := newFlagSet("batches", batchesArgs, "ACTION is list (the default) or abandon ID... [--force]. "+
		"List the open Batch API jobs of `paperpipe reprocess --batch-api` "+
		"(id, target, status, OpenAI batch id, papers, age), or abandon jobs: close them as failed, so their papers "+
		"are processed again by the next run. Abandoning a job loses what OpenAI ran for it (and billed): abandon only "+
		"a job that cannot be collected, for instance one whose batch or output file OpenAI no longer has (it keeps "+
		"output files for 30 days) or that another API key created. A job whose batch was last seen running at OpenAI "+
		"(validating, in_progress, finalizing) is refused without --force: that batch is still billed, and the next run "+
		"would buy its papers again; cancel it at OpenAI first, or let `paperpipe reprocess --batch-api` collect it.")
	c.addJSONFlag(fs)
	force := fs.Bool("force", false, "abandon: also a job whose batch was last seen running at OpenAI (it is still billed, and its papers are bought again)")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	var ids []int64
	switch {
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
		return usageErr("want `batches`, `batches list` or `batches abandon ID... [--force]`")
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	if ids == nil {
		return listBatchJobs(ctx, st, c.JSON, time.Now(), os.Stdout)
	}
	return abandonBatchJobs(ctx, st, ids, *force, os.Stderr)
}

// openBatchJobs returns the open Batch API jobs, oldest first.
func openBatchJobs(ctx context.Context, st *store.Store) ([]store.BatchJob, error) {
	all, err := st.BatchJobs(ctx, "")
	if err != nil {
		return nil, err
	}
	var open []store.BatchJob
	for i := len(all) - 1; i >= 0; i-- { // BatchJobs lists every job newest first
		if all[i].Status == store.BatchPreparing || all[i].Status == store.BatchSubmitted {
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
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%d\t%s\n", j.ID, j.Target, status, id, j.Total, age(now.Sub(j.CreatedAt)))
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

// batchRunning reports whether OpenAI status s (as last seen) is of a batch still running,
// billed as it goes.
func batchRunning(s string) bool {
	switch s {
	case "validating", "in_progress", "finalizing":
		return true
	}
	return false
}

// abandonBatchJobs closes the open jobs ids as failed, each under its lock (a job a run is
// preparing or collecting is refused, and unless force one whose batch was last seen running at
// OpenAI), and says what that means.
func abandonBatchJobs(ctx context.Context, st *store.Store, ids []int64, force bool, w io.Writer) error {
	var errs []error
	for _, id := range ids {
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
		if j.Status != store.BatchPreparing && j.Status != store.BatchSubmitted {
			release()
			errs = append(errs, fmt.Errorf("batch job %d is already closed (%s)", id, j.Status))
			continue
		}
		if batchRunning(j.OpenAIStatus) && !force {
			release()
			errs = append(errs, fmt.Errorf("batch job %d is not abandoned: its OpenAI batch %s was last seen running (%s), and is "+
				"still billed; abandoned, its papers would be bought again by the next run. Let `paperpipe reprocess --batch-api` "+
				"collect it, or cancel the batch at OpenAI (https://platform.openai.com/batches), which stops the billing, and "+
				"let that run record it; `paperpipe batches abandon %d --force` abandons it anyway", id, j.OpenAIID, j.OpenAIStatus, id))
			continue
		}
		j.Status = store.BatchFailed
		err = st.FinishBatchJob(ctx, j, nil)
		release()
		if err != nil {
			return errors.Join(append(errs, err)...)
		}
		batchID := ""
		if j.OpenAIID != "" {
			batchID = " (OpenAI batch " + j.OpenAIID + ")"
		}
		fmt.Fprintf(w, "abandoned batch job %d%s: its %s will be processed again by the next run; "+
			"what OpenAI ran for it, and billed, is lost\n", id, batchID, plural(j.Total, "paper", "papers"))
	}
	return errors.Join(errs...)
}

// withBatchesHint adds batchesHint to an error of a Batch API run in which jobs failed.
func withBatchesHint(err error) error {
	if je := (*batch.JobError)(nil); errors.As(err, &je) {
		return fmt.Errorf("%w\n%s", err, batchesHint)
	}
	return err
}
