package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/store"
)

// fitOptions are the flags of `paperpipe fit`.
type fitOptions struct {
	maxDocs    int
	dimensions int
	fill       bool
	activate   bool
}

func cmdFit(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("fit", "", "Fit the offline embedder on the archive (TF-IDF with the archive's own statistics, "+
		"in a fixed dimension), store it, embed every paper with it into its own space, and make that space active.")
	c.addWorkerTuningFlags(fs) // no model flags: the fill embeds with the fitted model, and makes no TL;DR
	// It writes no TL;DR: the flag sets only how many messages its fill holds at once.
	fs.Lookup("concurrency").Usage = "the fill holds up to max(4×`N`, 256) messages at once, from which its embedding batches gather " +
		"(fit writes no TL;DR: an N below 65 changes nothing); env PAPERPIPE_CONCURRENCY"

	o := fitOptions{}
	fs.IntVar(&o.maxDocs, "max-docs", 4000, "fit on at most `N` papers, at least 2 (a fixed, hash-ordered sample of a larger archive); time grows with N² to N³")
	fs.IntVar(&o.dimensions, "dimensions", embed.OfflineDimensions,
		fmt.Sprintf("vector dimensions, %d to %d", embed.MinFittedDimensions, store.MaxDimensions))
	fs.BoolVar(&o.fill, "fill", true, "embed every paper with the new model (false: only fit and store it)")
	fs.BoolVar(&o.activate, "activate", true, "make the new model's space the one queries use once it is filled (--fill=false implies --activate=false)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	activateGiven := false
	fs.Visit(func(f *flag.Flag) { activateGiven = activateGiven || f.Name == "activate" })
	if !o.fill && !activateGiven {
		o.activate = false // nothing to activate: the space is filled later, and activated then
	}
	if err := c.checkWorkerFlags(); err != nil {
		return err
	}
	if o.maxDocs < 2 {
		return usageErr("--max-docs must be at least 2")
	}
	if o.dimensions < embed.MinFittedDimensions || o.dimensions > store.MaxDimensions {
		return usageErr("--dimensions must be between %d and %d", embed.MinFittedDimensions, store.MaxDimensions)
	}
	if o.activate && !o.fill {
		return usageErr("--activate needs --fill: an empty space cannot answer queries")
	}
	return runFit(ctx, c, o, os.Stderr)
}

// runFit fits, stores and (with o.fill) reprocesses into the new model's space, then (with
// o.activate) activates it.
func runFit(ctx context.Context, c *config, o fitOptions, errw io.Writer) error {
	st, err := openStore(ctx, c, newLogger(c))
	if err != nil {
		return err
	}
	defer st.Close()
	sample, err := st.FitSample(ctx, o.maxDocs)
	if err != nil {
		return err
	}
	if len(sample) < 2 {
		return fmt.Errorf("the archive has %s; ingest and process some before fitting (`paperpipe ingest FILE`, `paperpipe worker --exit-when-idle`)", plural(len(sample), "paper", "papers"))
	}
	docs := make([]string, len(sample))
	for i, a := range sample {
		docs[i] = embed.TitleAbstract(a)
	}
	start := time.Now()
	m, blob, err := fitModel(ctx, func() (*embed.Fitted, []byte, error) { return embed.Fit(docs, o.dimensions) })
	if err != nil {
		return err
	}
	info := m.Info()
	if err := st.SaveOfflineModel(ctx, store.OfflineModel{Name: m.Name(), Documents: info.Documents, Terms: info.Terms,
		Components: info.Components, Dimensions: info.Dimensions, Data: blob}); err != nil {
		return err
	}
	fmt.Fprintf(errw, "fit: %s fitted in %s on %s: %d terms, %d directions holding %.1f%% of the sample's TF-IDF, %d dimensions (%d KB stored)\n",
		m.Name(), time.Since(start).Round(time.Millisecond), plural(info.Documents, "paper", "papers"), info.Terms, info.Components,
		100*info.Retained, info.Dimensions, len(blob)/1024)
	if !o.fill {
		fmt.Fprintf(errw, "fit: fill its space with `paperpipe reprocess --embed-only --embed-model %s`, then `paperpipe activate %s`\n",
			m.Name(), m.Name())
		return nil
	}
	configured := *c // the processes' embedder, which the activation may leave behind
	c.EmbedModel = m.Name()
	res, err := runReprocess(ctx, c, reprocessOptions{all: true, embedOnly: true, activating: o.activate}, io.Discard, errw)
	if errors.Is(err, errDeadLettered) && o.activate {
		return fmt.Errorf("%w; space %d (%s) is not activated: `paperpipe activate %d` makes it the one queries use all the same",
			err, res.Space.ID, res.Space.Name(), res.Space.ID)
	}
	if err != nil {
		return err
	}
	if !o.activate {
		return nil
	}
	prev := activeBefore(ctx, st)
	sp, err := activateSpace(ctx, st, res.Space.Name())
	if err != nil {
		return err
	}
	// Running processes on "offline" follow the active space (see runWorkers and activeOffline).
	fmt.Fprintf(errw, "fit: space %d (%s) is active: %d of %s embedded; running workers on PAPERPIPE_EMBED_MODEL=offline "+
		"switch to it within PAPERPIPE_FOLLOW_INTERVAL (30s unless set), and the searches of serve and up at once\n",
		sp.ID, sp.Name(), sp.Embedded, plural(sp.Papers, "paper", "papers"))
	if note := previousSpaceNote(prev, sp.Space); note != "" {
		fmt.Fprintln(errw, "fit: note: "+note)
	}
	if w := embedderMismatch(&configured, sp.Space); w != "" {
		fmt.Fprintln(errw, "fit: warning: "+w)
	}
	return nil
}

// fitModel returns what fit returns, or at once when ctx ends. fit (embed.Fit) is tens of
// seconds of matrix algebra at the default 4,000 papers, which nothing can interrupt: Ctrl-C or
// SIGTERM waited for all of it, and then failed with "save offline model …: context
// canceled". An interrupted fit has stored nothing, so it is left to end in the background
// with the process.
func fitModel(ctx context.Context, fit func() (*embed.Fitted, []byte, error)) (*embed.Fitted, []byte, error) {
	type result struct {
		m    *embed.Fitted
		blob []byte
		err  error
	}
	done := make(chan result, 1) // the fit ends even when no one waits for it
	go func() {
		m, blob, err := fit()
		done <- result{m, blob, err}
	}()
	select {
	case r := <-done:
		return r.m, r.blob, r.err
	case <-ctx.Done():
		return nil, nil, fmt.Errorf("interrupted while fitting; nothing was stored: %w", context.Cause(ctx))
	}
}
