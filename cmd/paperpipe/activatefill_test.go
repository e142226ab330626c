package main

import (
	"bytes"
	"log/slog"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// A space activated while a `paperpipe reprocess` fills it is said to be filling: activate
// told to fill it with `paperpipe reprocess --embed-only …`, a command the run in progress
// refuses (another run is writing the embeddings), and not that searches find only what the
// run has embedded until it ends.
func TestActivateOfASpaceARunIsFillingSaysSo(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-large", Dimensions: 64, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	// The run filling it, in another process: it holds the space's run lock.
	unlock, err := e.st.LockRun(ctx, store.SpaceRunKey(sp.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	var errw bytes.Buffer
	if err := runActivate(ctx, e.c, e.st, "text-embedding-3-large", &errw); err != nil {
		t.Fatal(err)
	}
	out := errw.String()
	if !strings.Contains(out, "3 papers have no vector in it yet") || !strings.Contains(out, "is filling it now") || strings.Contains(out, "fill it with") {
		t.Errorf("activate of a space a run is filling said:\n%s\nwant it to say the run is filling it, and no command to fill it", out)
	}
	unlock()
	errw.Reset()
	if err := runActivate(ctx, e.c, e.st, "text-embedding-3-large", &errw); err != nil {
		t.Fatal(err)
	}
	if out := errw.String(); !strings.Contains(out, "fill it with `paperpipe reprocess --embed-only --embed-model text-embedding-3-large --embed-dimensions 64`") {
		t.Errorf("activate of a space no run fills said:\n%s\nwant the command that fills it", out)
	}
}

// serve started on the model of a space a `paperpipe reprocess` is filling (restarted on the new
// model before the run ended and activate) says the run is filling it, as activate does: it
// told the operator to fill it with `paperpipe reprocess --embed-only …`, which the run in
// progress refuses.
func TestServeOnTheModelOfASpaceARunIsFillingSaysSo(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 3)
	ctx := t.Context()
	if _, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-small", Dimensions: 64, Template: embed.TemplateTitleAbstract}); err != nil {
		t.Fatal(err)
	}
	large, err := e.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-large", Dimensions: 64, Template: embed.TemplateTitleAbstract})
	if err != nil {
		t.Fatal(err)
	}
	if active, err := e.st.ActiveSpace(ctx); err != nil || active.ID == large.ID {
		t.Fatalf("active space %+v, %v; want the small model's", active, err)
	}
	warn := func() string {
		var b bytes.Buffer
		warnQueriesRefused(ctx, e.cfg(func(c *config) { c.EmbedModel = "text-embedding-3-large" }), slog.New(slog.NewTextHandler(&b, nil)), e.st, e.st, large)
		return b.String()
	}
	// The run filling it, in another process: it holds the space's run lock.
	unlock, err := e.st.LockRun(ctx, store.SpaceRunKey(large.ID))
	if err != nil {
		t.Fatal(err)
	}
	defer unlock()
	if out := warn(); !strings.Contains(out, "is filling it now") || strings.Contains(out, "fill it with") {
		t.Errorf("serve on the model of a space a run is filling warned:\n%s\nwant it to say the run is filling it, and no command to fill it", out)
	}
	unlock()
	if out := warn(); !strings.Contains(out, "fill it with `paperpipe reprocess --embed-only --embed-model text-embedding-3-large --embed-dimensions 64`") {
		t.Errorf("serve on the model of a space no run fills warned:\n%s\nwant the command that fills it", out)
	}
}
