package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

// removeMaxAbstract is the longest abstract `remove --from` reads: any a queue message could
// hold, so that what an ingest with a larger --max-abstract-bytes took is found too.
const removeMaxAbstract = 4 << 20

// stringsFlag collects a repeatable flag's values.
type stringsFlag []string

func (f *stringsFlag) String() string     { return fmt.Sprint([]string(*f)) }
func (f *stringsFlag) Set(v string) error { *f = append(*f, v); return nil }
func (f *stringsFlag) repeatable()        {}

// removeResult is `remove --json`'s document.
type removeResult struct {
	DryRun bool `json:"dry_run"`
	store.RemoveTotals
	// DeadLetters is how many dead letters of the papers were dropped (would be, in a dry run).
	DeadLetters int                  `json:"dead_letters"`
	Removed     []store.RemovedPaper `json:"removed"`
}

func cmdRemove(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("remove", "ID... | --ids FILE | --from FILE",
		"Remove papers from the archive with their TL;DRs, their vectors in every space and their places in Batch API jobs. "+
			"A message of theirs already queued, in a worker's hands or dead-lettered (replayed later) does not store them again; "+
			"their dead letters are dropped; ingesting them again afterwards stores them again.")
	c.addJSONFlag(fs)
	dryRun := fs.Bool("dry-run", false, "list what would be removed, and remove nothing")
	idsFile := fs.String("ids", "", "remove the papers whose ids `FILE` lists, one per line (- for standard input)")
	var from stringsFlag
	fs.Var(&from, "from", "remove the papers `FILE` (or URL, or - for standard input) holds, as ingest reads it; repeatable")
	format := fs.String("format", "auto", "--from's format: auto, text, jsonl, oai, atom, rss or hf")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if isHelpWord(pos) {
		return askedHelp(fs)
	}
	if len(pos) == 0 && *idsFile == "" && len(from) == 0 {
		return usageErr("name the papers to remove: their ids, --ids FILE or --from FILE")
	}
	f, err := ingest.ParseFormat(*format)
	if err != nil {
		return usageErr("--format: %v", err)
	}
	formatSet := false
	fs.Visit(func(fl *flag.Flag) { formatSet = formatSet || fl.Name == "format" })
	if formatSet && len(from) == 0 {
		return usageErr("--format is for --from's files")
	}
	stdin := 0
	for _, p := range append([]string{*idsFile}, from...) {
		if p == "-" {
			stdin++
		}
	}
	if stdin > 1 {
		return usageErr("standard input (-) can be read once")
	}
	ids := canonicalIDs(pos)
	if *idsFile != "" {
		got, err := readIDs(ctx, "remove", *idsFile)
		if err != nil {
			return err
		}
		ids = append(ids, got...)
	}
	if len(from) > 0 {
		// A record the file holds in a form ingest refuses was not ingested from it: it is
		// reported as ingest reported it, and the others are removed.
		if _, err := readAbstracts(ctx, from, ingest.Options{Format: f, Command: "remove --from", MaxAbstractBytes: removeMaxAbstract, PaceDir: dataDir()},
			func(a paper.Abstract) error {
				ids = append(ids, a.ID)
				return nil
			}); err != nil {
			return fmt.Errorf("--from: %w; nothing was removed", err)
		}
	}
	if len(ids) == 0 {
		fmt.Fprintln(os.Stderr, "remove: no paper named: nothing to do")
		if c.JSON {
			return writeJSON(stdout, removeResult{DryRun: *dryRun, Removed: []store.RemovedPaper{}})
		}
		return nil
	}
	log := newLogger(c)
	st, err := openStore(ctx, c, log)
	if err != nil {
		return err
	}
	defer st.Close()
	deadLetters := func(ids []string, dryRun bool) (int, error) {
		b, err := connectBroker(ctx, c, log, brokerClient)
		if err != nil {
			return 0, err
		}
		defer b.close()
		return pipeline.DropDeadLettersOf(ctx, b.js, ids, dryRun)
	}
	return runRemove(ctx, c, st, ids, *dryRun, deadLetters, os.Stderr)
}

// runRemove removes the papers ids name (or, with dryRun, lists them) and says what it did.
// Once they are removed, deadLetters (when not nil) drops their dead letters (counts them, with
// dryRun): a replay of one would store nothing, and it stayed listed, and counted as a failure
// by status and the metric, until dropped by hand.
func runRemove(ctx context.Context, c *config, st *store.Store, ids []string, dryRun bool,
	deadLetters func(ids []string, dryRun bool) (int, error), errw io.Writer) error {
	res := removeResult{DryRun: dryRun, Removed: []store.RemovedPaper{}}
	var tw *tabwriter.Writer
	if dryRun && !c.JSON {
		tw = tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PAPER\tTLDRS\tVECTORS\tBATCH\tTITLE")
	}
	tot, err := st.RemovePapers(ctx, ids, dryRun, func(ps []store.RemovedPaper) error {
		if c.JSON {
			res.Removed = append(res.Removed, ps...)
			return nil
		}
		if tw != nil {
			for _, p := range ps {
				fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\n", termSafe(p.ID, false), p.TLDRs, p.Embeddings, p.BatchItems, clip(p.Title, 80))
			}
			return tw.Flush()
		}
		return nil
	})
	res.RemoveTotals = tot
	what := fmt.Sprintf("%s (%s, %s, %s)", plural(tot.Papers, "paper", "papers"), plural(tot.TLDRs, "TL;DR", "TL;DRs"),
		plural(tot.Embeddings, "vector", "vectors"), plural(tot.BatchItems, "Batch API item", "Batch API items"))
	if err != nil {
		if ctx.Err() != nil && dryRun {
			err = fmt.Errorf("interrupted (--dry-run: nothing was removed): %w", context.Cause(ctx))
		} else if ctx.Err() != nil {
			err = fmt.Errorf("interrupted after %s were removed; run the same command again to remove the rest: %w", what, context.Cause(ctx))
		} else if errors.Is(err, paper.ErrLocked) {
			err = fmt.Errorf("%w; %s were removed before: run the same command again once the other session ends", err, what)
		}
		return err
	}
	var dlErr error
	if deadLetters != nil {
		res.DeadLetters, dlErr = deadLetters(ids, dryRun)
	}
	verb := "removed"
	if dryRun {
		verb = "would remove"
	}
	fmt.Fprintf(errw, "remove: %s %s", verb, what)
	if res.DeadLetters > 0 {
		drop := "dropped"
		if dryRun {
			drop = "would drop"
		}
		fmt.Fprintf(errw, "; %s %s of the papers", drop, plural(res.DeadLetters, "dead letter", "dead letters"))
	}
	if tot.NotStored > 0 {
		fmt.Fprintf(errw, "; %s not stored", plural(tot.NotStored, "id is", "ids are"))
		if !dryRun {
			fmt.Fprint(errw, " (a message of theirs queued before now will not store them either)")
		}
	}
	fmt.Fprintln(errw)
	if dlErr != nil {
		// The removal stands; a replay of these letters would store nothing.
		fmt.Fprintf(errw, "remove: the papers' dead letters could not all be looked at (%v): `paperpipe dlq list` shows them, "+
			"`paperpipe dlq drop` drops them, and a replay of one stores nothing\n", dlErr)
	}
	if c.JSON {
		return writeJSON(stdout, res)
	}
	return nil
}

// canonicalIDs is each of args as its canonical paper id (paper.CanonicalID), or as given when
// it has none (a title's id, another source's); nil when args is empty.
func canonicalIDs(args []string) []string {
	var ids []string
	for _, a := range args {
		id := a
		if cid, err := paper.CanonicalID(a); err == nil {
			id = cid
		}
		ids = append(ids, id)
	}
	return ids
}
