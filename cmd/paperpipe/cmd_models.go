package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
)

// sourcesExitStatus is what summarize's and embed's help say of a bad record and of a source
// that fails, as ingest's does: the exit status of each was said by README alone.
const sourcesExitStatus = "A bad record is reported with its file and line and skipped, and the exit status is 1 at the end;\n" +
	"a source that cannot be read to its end stops the command, exit 1, after a line for every record read before it."

// readAbstracts reads every good record of the named sources; bad records are reported on
// stderr and counted, and so is a source without papers, as a warning ("FILE: no papers in
// it"), not a failure. ctx ends a download (a URL) at once. opts.Command names the command
// running in the conversions an unreadable source's error suggests, and in the warning.
func readAbstracts(ctx context.Context, paths []string, opts ingest.Options, each func(paper.Abstract) error) (rejected int, err error) {
	for _, path := range paths {
		r, closer, err := ingest.OpenContext(ctx, path, opts)
		if err != nil {
			return rejected, err
		}
		for {
			a, err := r.Next()
			if errors.Is(err, io.EOF) {
				if r.Empty() {
					fmt.Fprintf(os.Stderr, "paperpipe %s: %s\n", opts.Command, termSafe(noPapers(ingest.Name(path)).Error(), false))
				}
				break
			}
			var rec *ingest.RecordError
			if errors.As(err, &rec) {
				rejected++
				fmt.Fprintln(os.Stderr, termSafe(rec.Error(), false))
				continue
			}
			if err != nil {
				closer.Close()
				return rejected, err // it names the file and line
			}
			if err := each(a); err != nil {
				closer.Close()
				return rejected, err
			}
		}
		closer.Close()
	}
	return rejected, nil
}

// fileModels builds the models of the commands that work on files. They read no database,
// unless the embedding model named is a fitted offline model, which lives in one: then the
// files of paths are checked first (see checkFiles).
func fileModels(ctx context.Context, c *config, paths []string) (*models, func(), error) {
	log := newLogger(c)
	if !embed.IsFittedModel(c.EmbedModel) {
		m, err := buildModels(ctx, c, log, nil)
		return m, func() {}, err
	}
	if err := checkFiles(paths...); err != nil {
		return nil, nil, err
	}
	st, err := openStore(ctx, c, log)
	if err != nil {
		return nil, nil, err
	}
	m, err := buildModels(ctx, c, log, st)
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return m, st.Close, nil
}

func cmdSummarize(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("summarize", "FILE|URL|- ...", "Print one JSON line {id, tldr, model, prompt_version, validation} per paper. No database or queue.\n"+sourcesExitStatus)
	c.addChatModelFlag(fs)
	input := addInputFlags(fs)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	opts, err := input.options(pos, "summarize")
	if err != nil {
		return err
	}
	if err := c.checkAPI(true, false); err != nil {
		return err
	}
	m, closeStore, err := fileModels(ctx, c, pos)
	if err != nil {
		return err
	}
	defer closeStore()
	enc := newJSONEncoder(stdout)
	rejected, err := readAbstracts(ctx, pos, opts, func(a paper.Abstract) error {
		s, err := m.sum.Summarize(ctx, a)
		if err != nil {
			return fmt.Errorf("%s: %w", a.ID, err)
		}
		return enc.Encode(struct {
			ID            string `json:"id"`
			TLDR          string `json:"tldr"`
			Model         string `json:"model"`
			PromptVersion string `json:"prompt_version"`
			Validation    string `json:"validation"`
		}{a.ID, s.Text, s.Model, s.PromptVersion, s.Validation})
	})
	if err != nil {
		return err
	}
	if rejected > 0 {
		return fmt.Errorf("%s rejected", plural(rejected, "record", "records"))
	}
	return nil
}

func cmdEmbed(ctx context.Context, c *config, args []string) error {
	fs := newFlagSet("embed", "FILE|URL|- ...", "Print one JSON line {id, embedding, model, dimensions, template, content_hash} per paper, as import-embeddings reads them.\n"+
		"No database or queue.\n"+sourcesExitStatus)
	c.addEmbedModelFlags(fs, storelessOffline)
	input := addInputFlags(fs)
	batch := fs.Int("batch", 256, "abstracts per Embed call, at least 1")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	opts, err := input.options(pos, "embed")
	if err != nil {
		return err
	}
	if *batch < 1 {
		return usageErr("--batch is %d, want at least 1", *batch)
	}
	if err := c.checkAPI(false, true); err != nil {
		return err
	}
	m, closeStore, err := fileModels(ctx, c, pos)
	if err != nil {
		return err
	}
	defer closeStore()
	enc := newJSONEncoder(stdout)
	// The space and the text's content hash go with each vector, so that import-embeddings puts
	// it in the right space and skips it when the paper's text has changed since.
	space := m.emb.Space()
	var buf []paper.Abstract
	flush := func() error {
		if len(buf) == 0 {
			return nil
		}
		embs, _, err := m.emb.Embed(ctx, buf)
		if err != nil {
			return err
		}
		for _, e := range embs {
			if err := enc.Encode(embeddingLine{ID: jsonID(e.PaperID), Embedding: e.Vector, Model: space.Model, Dimensions: len(e.Vector), Template: space.Template, ContentHash: e.ContentHash, Truncated: e.Truncated}); err != nil {
				return err
			}
		}
		buf = buf[:0]
		return nil
	}
	var embedErr error // a failure of the model or of the output, not of a source
	rejected, err := readAbstracts(ctx, pos, opts, func(a paper.Abstract) error {
		buf = append(buf, a)
		if len(buf) >= *batch {
			embedErr = flush()
			return embedErr
		}
		return nil
	})
	switch {
	case err == nil:
		err = flush()
	case embedErr == nil && ctx.Err() == nil:
		// A source that failed (cut short, missing): the records read before it are written
		// too, as ingest publishes them, not left in a batch that was not full.
		if ferr := flush(); ferr != nil {
			err = errors.Join(ferr, err)
		}
	}
	if err != nil {
		return err
	}
	if rejected > 0 {
		return fmt.Errorf("%s rejected", plural(rejected, "record", "records"))
	}
	return nil
}
