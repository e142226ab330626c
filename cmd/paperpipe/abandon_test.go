package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// A run stopped after its first line (its estimate over the budget, a wrong model) left its
// queue for good: status and the status page said that no worker ran it and to run "the
// `paperpipe reprocess` of that target" again, which buys it, and nothing else removed it
// (found in session 29, walking a lab's journey). The note names the run by what it writes,
// and the same command with --abandon drops the queue, sending nothing; the papers stay
// stale, and a later run writes them.
func TestAbandonDropsWhatAnInterruptedRunLeftAndSendsNothing(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 40)
	ctx, stop := context.WithCancel(t.Context())
	var asked atomic.Int32
	c := e.fakeBehind(t, func(http.ResponseWriter, *http.Request) bool {
		if asked.Add(1) == 1 {
			stop() // the Ctrl-C, at the run's first request
		}
		return false
	}, nil)
	o := reprocessOptions{tldrOnly: true}
	if _, err := runReprocess(ctx, c, o, io.Discard, io.Discard); err == nil {
		t.Fatal("the run stopped at its first request ended without an error")
	}
	js := e.jetStream(t)
	target := pipeline.NewReprocessTarget(paper.Work{Model: c.ChatModel, PromptVersion: summarize.PromptVersion}, "")
	bls, err := pipeline.Backlogs(t.Context(), js)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, b := range bls {
		if b.Consumer != target.Consumer {
			continue
		}
		found = true
		note := noWorkerNote(statusBacklog{Backlog: b}, false)
		if !strings.Contains(note, "re-processing: TL;DRs "+c.ChatModel+" "+summarize.PromptVersion) || !strings.Contains(note, "with --abandon drops them") {
			t.Errorf("the note on the interrupted run's backlog does not name its run, or --abandon: %q", note)
		}
	}
	if !found {
		t.Fatalf("the interrupted run left no queue (%s) to abandon: %+v", target.Consumer, bls)
	}

	sent := asked.Load()
	var said bytes.Buffer
	o.abandon = true
	if _, err := runReprocess(t.Context(), c, o, io.Discard, &said); err != nil {
		t.Fatalf("reprocess --abandon: %v\n%s", err, said.String())
	}
	if hasQueue(t, js, target) || !strings.Contains(said.String(), "dropped what an interrupted run left queued") {
		t.Errorf("reprocess --abandon left the queue (%v), or said:\n%s", hasQueue(t, js, target), said.String())
	}
	if n := asked.Load(); n != sent {
		t.Errorf("reprocess --abandon sent %d requests to the API", n-sent)
	}
	dry, _ := e.reprocess(t, t.Context(), c, reprocessOptions{tldrOnly: true, dryRun: true})
	if dry.Counts.TLDRs == 0 {
		t.Fatalf("no TL;DR is stale after the interrupted run: the test stopped it too late")
	}
	res, _ := e.reprocess(t, t.Context(), c, reprocessOptions{tldrOnly: true})
	if res.Worker.TLDRs != int64(dry.Counts.TLDRs) {
		t.Errorf("the run after --abandon wrote %d TL;DRs, want the %d stale", res.Worker.TLDRs, dry.Counts.TLDRs)
	}
}
