package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

const tldrsArgs = "[list | prune [--keep MODEL[@VERSION]]... [--force] [--include-recent] [--dry-run]]"

// configuredTLDR is the model and prompt version that the configured summarizer writes
// (buildModels's, without building it).
func configuredTLDR(c *config) store.TLDRKeep {
	c.resolveModels()
	if c.chatOffline() {
		return store.TLDRKeep{Model: summarize.OfflineModel, PromptVersion: summarize.Versioned(summarize.OfflinePromptVersion, c.MaxWords)}
	}
	return store.TLDRKeep{Model: c.ChatModel, PromptVersion: summarize.Versioned(summarize.PromptVersion, c.MaxWords)}
}

func cmdTLDRs(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("tldrs", tldrsArgs, "List the stored TL;DRs by model and prompt version, or remove those of the versions "+
		"no longer used: every version but the configured one (PAPERPIPE_CHAT_MODEL, PAPERPIPE_TLDR_MAX_WORDS, or --chat-model) "+
		"and those named by --keep. A version a `paperpipe reprocess` is writing, or open Batch API jobs will write, is left, "+
		"and so is one written in the last 10 minutes unless --include-recent; "+
		"so is a TL;DR that is the only one of its paper's current text among the versions kept (the one the paper shows), "+
		"unless --force.")
	c.addJSONFlag(fs)
	c.addChatModelFlag(fs)
	var keep []store.TLDRKeep
	fs.Var(repeatFunc(func(s string) error {
		if s == "" {
			return fmt.Errorf("want MODEL or MODEL@VERSION")
		}
		k := store.TLDRKeep{Model: s}
		if i := strings.LastIndexByte(s, '@'); i > 0 {
			k = store.TLDRKeep{Model: s[:i], PromptVersion: s[i+1:]}
		}
		keep = append(keep, k)
		return nil
	}), "keep", "prune: also keep the TL;DRs of `MODEL` (every prompt version) or MODEL@VERSION (one); repeatable")
	force := fs.Bool("force", false, "prune: also remove a TL;DR that is the only one of its paper's current text among the versions kept (the paper shows none until paperpipe reprocess writes it)")
	dryRun := fs.Bool("dry-run", false, "prune: say what would be removed (TL;DRs and bytes per version), and remove nothing")
	recent := fs.Bool("include-recent", false, fmt.Sprintf("prune: also remove a version written in the last %d minutes (left by default: workers may still write it, and a prune run without their settings would remove their version)", int(pruneRecent.Minutes())))
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	action := "list"
	if len(pos) > 0 {
		action = pos[0]
	}
	switch action {
	case "list":
		err = onlyFor(fs, "tldrs list", "json", "chat-model")
	case "prune":
		err = onlyFor(fs, "tldrs prune", "json", "chat-model", "keep", "force", "dry-run", "include-recent")
	default:
		return usageErr("unknown tldrs action %q: want list or prune", action)
	}
	if err != nil {
		return err
	}
	if len(pos) > 1 {
		if err := noMoreArgs("tldrs "+action, pos[1:]); err != nil {
			return err
		}
	}
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	current := configuredTLDR(c)
	if action == "list" {
		return listTLDRVersions(ctx, st, current, c.JSON, stdout)
	}
	opts := store.PruneOptions{Current: current, Keep: keep, Force: *force, DryRun: *dryRun, Recent: pruneRecent}
	if *recent {
		opts.Recent = 0
	}
	return pruneTLDRs(ctx, st, opts, c.JSON, stdout, os.Stderr)
}

// pruneRecent is how recently a version must have been written for `tldrs prune` to leave it
// without --include-recent: a version a worker writes is written every few seconds while papers
// arrive, and one the workers stopped writing when they were restarted with other settings is
// pruned a few minutes later.
const pruneRecent = 10 * time.Minute

func listTLDRVersions(ctx context.Context, st *store.Store, current store.TLDRKeep, asJSON bool, w io.Writer) error {
	versions, err := st.TLDRVersions(ctx)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(w, nonNil(versions))
	}
	if len(versions) == 0 {
		fmt.Fprintln(w, "no TL;DRs yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MODEL\tPROMPT\tTL;DRS\tOF CURRENT TEXT\tSIZE\tLAST WRITTEN\t")
	for _, v := range versions {
		var notes []string
		if v.Model == current.Model && v.PromptVersion == current.PromptVersion {
			notes = append(notes, "configured")
		}
		if len(v.OpenBatchJobs) > 0 {
			notes = append(notes, store.OpenBatchJobs(v.OpenBatchJobs))
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%s\t%s\t%s\n", v.Model, v.PromptVersion, v.TLDRs, v.Current, megabytes(v.Bytes),
			v.LastWritten.Format(time.DateTime), strings.Join(notes, "; "))
	}
	return tw.Flush()
}

func pruneTLDRs(ctx context.Context, st *store.Store, opts store.PruneOptions, asJSON bool, out, errw io.Writer) error {
	last := time.Now()
	opts.Progress = func(r store.PruneResult) {
		if time.Since(last) >= 10*time.Second {
			last = time.Now()
			fmt.Fprintf(errw, "tldrs prune: %s removed so far (%s)\n", plural(r.TLDRs, "TL;DR", "TL;DRs"), megabytes(r.Bytes))
		}
	}
	res, err := st.PruneTLDRs(ctx, opts)
	if err != nil {
		if res.TLDRs > 0 {
			fmt.Fprintf(errw, "tldrs prune: %s removed (%s) before it stopped; the same command goes on\n",
				plural(res.TLDRs, "TL;DR", "TL;DRs"), megabytes(res.Bytes))
		}
		return err
	}
	if asJSON {
		res.Versions = nonNil(res.Versions)
		return writeJSON(out, res)
	}
	verb := "removed"
	if opts.DryRun {
		verb = "would remove"
	}
	if len(res.Versions) == 0 {
		fmt.Fprintln(out, "nothing to remove: every stored TL;DR is of a version kept")
		return nil
	}
	for _, v := range res.Versions {
		line := fmt.Sprintf("%s %s: %s %s (%s)", v.Model, v.PromptVersion, verb, plural(v.TLDRs, "TL;DR", "TL;DRs"), megabytes(v.Bytes))
		if v.Skipped != "" {
			line = fmt.Sprintf("%s %s: left, %s", v.Model, v.PromptVersion, v.Skipped)
			if v.TLDRs > 0 {
				line += fmt.Sprintf(" (%s %s before)", plural(v.TLDRs, "TL;DR", "TL;DRs"), verb)
			}
		}
		if v.Sole > 0 && v.Skipped == "" {
			line += fmt.Sprintf("; %s left: the only TL;DR of their paper's current text", plural(v.Sole, "TL;DR", "TL;DRs"))
		}
		if v.WrittenMeanwhile > 0 && v.Skipped == "" {
			line += fmt.Sprintf("; %s written while it ran", plural(v.WrittenMeanwhile, "TL;DR", "TL;DRs"))
		}
		fmt.Fprintln(out, line)
	}
	fmt.Fprintf(out, "%s %s (%s)\n", verb, plural(res.TLDRs, "TL;DR", "TL;DRs"), megabytes(res.Bytes))
	if res.Sole > 0 {
		fmt.Fprintf(errw, "tldrs prune: %s %s left as the only TL;DR of their paper's current text, which the paper shows; "+
			"`paperpipe reprocess --tldr-only` writes the configured version's, after which a prune removes them (--force removes them now)\n",
			plural(res.Sole, "TL;DR", "TL;DRs"), pick(res.Sole, "is", "are"))
	}
	var recent []string
	for _, v := range res.Versions {
		if v.Recent {
			recent = append(recent, v.Model+" "+v.PromptVersion)
		}
	}
	if len(recent) > 0 {
		fmt.Fprintf(errw, "tldrs prune: left %s, written in the last %d minutes: if workers write it, run the prune with their settings "+
			"(PAPERPIPE_CHAT_MODEL, PAPERPIPE_TLDR_MAX_WORDS) or --keep it; if nothing writes it any more, --include-recent removes it\n",
			strings.Join(recent, ", "), int(pruneRecent.Minutes()))
	}
	if res.WrittenMeanwhile > 0 {
		fmt.Fprintf(errw, "tldrs prune: warning: %s of the versions it removed %s written while it ran: a worker or a run still writes them; "+
			"if it is a version the workers use, run the prune with their settings (PAPERPIPE_CHAT_MODEL, PAPERPIPE_TLDR_MAX_WORDS) "+
			"or --keep it: the prune removes every version but the configured one and those kept\n",
			plural(res.WrittenMeanwhile, "TL;DR", "TL;DRs"), pick(res.WrittenMeanwhile, "was", "were"))
	}
	if !opts.DryRun && res.TLDRs > 0 {
		fmt.Fprintln(errw, "tldrs prune: the space is reusable by new TL;DRs (the table was vacuumed); its files keep their size "+
			"until `VACUUM FULL tldrs` (which locks the table while it runs) or pg_repack rewrites it")
	}
	return nil
}

// megabytes is n bytes in MB, with one decimal.
func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }
