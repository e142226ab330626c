package main

import (
	"bytes"
	"errors"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/web"
)

// `spaces drop ID` run again after a drop that could not remove the space's re-processing
// queue (NATS unreachable, or the drop killed after its commit) removes that space's queue:
// the one whose consumer records the id. It removed the queues of every space no longer
// there, and named them all as the id's — and an id no space ever had (a typo) did the same,
// saying the space "no longer exists". A queue made before consumers recorded their space's id
// is still found as before, by its space's name being gone.
func TestSpacesDropByIDRemovesThatSpacesQueueOnly(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	e.seed(t, 2)
	ctx := t.Context()
	js := e.jetStream(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	var spaces []paper.Space
	for _, m := range []string{"active", "first", "second", "old-release"} {
		sp, err := e.st.EnsureSpace(ctx, paper.Space{Model: m, Dimensions: 3, Template: "title-abstract-v1"})
		if err != nil {
			t.Fatal(err)
		}
		spaces = append(spaces, sp)
	}
	// What an interrupted run into sp leaves: its consumer, and a paper's message. old: as a
	// release made it whose consumers did not record their space's id.
	interrupted := func(sp paper.Space, old bool) pipeline.ReprocessTarget {
		t.Helper()
		return interruptedRun(t, e, js, sp, old, "arxiv:2401.00000")
	}
	has := func(target pipeline.ReprocessTarget) bool { t.Helper(); return hasQueue(t, js, target) }
	noNATS := e.cfg(func(c *config) { c.NATSURL = "nats://127.0.0.1:1" })
	id := func(sp paper.Space) string { return strconv.FormatInt(sp.ID, 10) }
	var targets []pipeline.ReprocessTarget
	dropLeavingQueue := func(sp paper.Space, old bool) {
		t.Helper()
		targets = append(targets, interrupted(sp, old))
		var said bytes.Buffer
		if err := dropSpace(ctx, noNATS, e.st, id(sp), false, &said); err != nil {
			t.Fatalf("spaces drop %d without NATS: %v", sp.ID, err)
		}
	}
	dropLeavingQueue(spaces[1], false)
	dropLeavingQueue(spaces[2], false)

	var said bytes.Buffer
	if err := dropSpace(ctx, e.c, e.st, "999", false, &said); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("spaces drop of an id no space had: %v, want not found; said:\n%s", err, said.String())
	}
	if !has(targets[0]) || !has(targets[1]) {
		t.Errorf("spaces drop 999, an id no space had, removed the queues of spaces %s (%v) and %s (%v); said:\n%s",
			spaces[1].Name(), !has(targets[0]), spaces[2].Name(), !has(targets[1]), said.String())
	}

	said.Reset()
	if err := dropSpace(ctx, e.c, e.st, id(spaces[1]), false, &said); err != nil {
		t.Fatalf("spaces drop %d run again: %v", spaces[1].ID, err)
	}
	if has(targets[0]) || !strings.Contains(said.String(), spaces[1].Name()) {
		t.Errorf("spaces drop %d run again left its queue (%v), or did not name its space %s:\n%s",
			spaces[1].ID, has(targets[0]), spaces[1].Name(), said.String())
	}
	if !has(targets[1]) || strings.Contains(said.String(), spaces[2].Name()) {
		t.Errorf("spaces drop %d run again removed space %d's queue too (%v), or named it:\n%s",
			spaces[1].ID, spaces[2].ID, !has(targets[1]), said.String())
	}

	said.Reset()
	if err := dropSpace(ctx, e.c, e.st, id(spaces[2]), false, &said); err != nil || has(targets[1]) {
		t.Errorf("spaces drop %d run again: %v, its queue left: %v; said:\n%s", spaces[2].ID, err, has(targets[1]), said.String())
	}
	// The old release's queue records no id: found by its space's name being gone.
	dropLeavingQueue(spaces[3], true)
	said.Reset()
	if err := dropSpace(ctx, e.c, e.st, id(spaces[3]), false, &said); err != nil || has(targets[2]) {
		t.Errorf("spaces drop %d run again (a queue without its space's id): %v, its queue left: %v; said:\n%s",
			spaces[3].ID, err, has(targets[2]), said.String())
	}
}

// A reprocess consumer's description names its space in full (model/dimensions/template), and
// status marks the consumer of a space that no longer exists. Any client of the NATS account
// may make a consumer, described as it likes: one naming a model of two spaces made status
// fail, every part of it ("model m has 2 spaces …: ambiguous"). Such a description names no
// space, dropped or not: its backlog is listed as any other.
func TestStatusListsAReprocessConsumerWhoseDescriptionNamesAModelOfTwoSpaces(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	js := e.jetStream(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	for _, dims := range []int{3, 4} {
		if _, err := e.st.EnsureSpace(ctx, paper.Space{Model: "m", Dimensions: dims, Template: "title-abstract-v1"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := js.CreateConsumer(ctx, pipeline.StreamPapers, jetstream.ConsumerConfig{Durable: "reprocess-forged",
		FilterSubject: pipeline.SubjectReprocess + ".forged", Description: "re-processing: TL;DRs a b, space m", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	bls, err := statusBacklogs(ctx, e.st, js)
	if err != nil {
		t.Fatalf("status with a reprocess consumer described as of model m, which has two spaces: %v", err)
	}
	for _, bl := range bls {
		if bl.Consumer == "reprocess-forged" && bl.DroppedSpace != "" {
			t.Errorf("status marks reprocess-forged as of the dropped space %q; want it listed as any other", bl.DroppedSpace)
		}
	}
}

// An embed-only reprocess run's consumer was described "re-processing: TL;DRs  , space X"
// (no model, no prompt), which status shows: it is now "re-processing: space X". The space's
// name is read back from both (a stopped run's consumer keeps the old description), and from
// the other runs' descriptions as before.
func TestAnEmbedOnlyReprocessQueueIsDescribedByItsSpaceAlone(t *testing.T) {
	t.Parallel()
	sp := paper.Space{Model: "text-embedding-3-small", Dimensions: 1536, Template: "title-abstract-v1"}
	desc := reprocessDescription(paper.Work{SpaceID: 7}, sp)
	if desc != "re-processing: space "+sp.Name() {
		t.Errorf("embed-only run's description %q; want %q", desc, "re-processing: space "+sp.Name())
	}
	for _, d := range []string{desc, "re-processing: TL;DRs  , space " + sp.Name(),
		reprocessDescription(paper.Work{SpaceID: 7, Model: "gpt-4o-mini", PromptVersion: "tldr-v1"}, sp)} {
		if name, ok := reprocessSpaceOf(d); !ok || name != sp.Name() {
			t.Errorf("reprocessSpaceOf(%q) = %q, %v; want %q", d, name, ok, sp.Name())
		}
	}
	if name, ok := reprocessSpaceOf(reprocessDescription(paper.Work{Model: "gpt-4o-mini", PromptVersion: "tldr-v1"}, paper.Space{})); ok {
		t.Errorf("a TL;DR-only run's description names space %q", name)
	}
}

// Whether a reprocess consumer's space still exists is read from the database; its error made
// `status` fail, and the status page leave the whole queue out (every backlog and dead letter)
// for one backlog's question. Each backlog is listed, that one with the error beside it.
func TestABacklogWhoseSpaceCannotBeLookedUpIsListedWithTheError(t *testing.T) {
	t.Parallel()
	e := newArchiveEnv(t, openaitest.Config{})
	ctx := t.Context()
	js := e.jetStream(t)
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{}); err != nil {
		t.Fatal(err)
	}
	if _, err := js.CreateConsumer(ctx, pipeline.StreamPapers, jetstream.ConsumerConfig{Durable: "reprocess-0123456789ab",
		FilterSubject: pipeline.SubjectReprocess + ".0123456789ab", Description: reprocessSpaceOnly + "m/3/title-abstract-v1", AckPolicy: jetstream.AckExplicitPolicy}); err != nil {
		t.Fatal(err)
	}
	closed, err := openStore(ctx, e.c, newLogger(e.c))
	if err != nil {
		t.Fatal(err)
	}
	closed.Close() // every query fails
	const want = "whether its space m/3/title-abstract-v1 still exists could not be read from the database"

	bls, err := statusBacklogs(ctx, closed, js)
	if err != nil {
		t.Fatalf("status: %v; want the backlogs, the space's error beside its own", err)
	}
	var consumers []string
	for _, bl := range bls {
		consumers = append(consumers, bl.Consumer)
		if bl.Consumer == "reprocess-0123456789ab" && (!strings.Contains(bl.SpaceError, want) || bl.DroppedSpace != "") {
			t.Errorf("status's backlog %s: space error %q, dropped %q; want %q and no dropped space", bl.Consumer, bl.SpaceError, bl.DroppedSpace, want)
		}
	}
	if !slices.Contains(consumers, pipeline.ConsumerNew) || !slices.Contains(consumers, "reprocess-0123456789ab") {
		t.Errorf("status lists backlogs %v; want workers' and reprocess-0123456789ab", consumers)
	}

	var page web.Status
	if err := (&webStatus{st: closed, js: js}).queue(ctx, &page, ""); err != nil {
		t.Fatalf("the status page's queue: %v; want the backlogs, the space's error beside its own", err)
	}
	found := false
	for _, bl := range page.Backlog {
		if bl.Consumer == "reprocess-0123456789ab" {
			found = strings.Contains(bl.SpaceError, want)
		}
	}
	if !found || len(page.Backlog) != len(bls) {
		t.Errorf("the status page's backlogs %+v; want %d, reprocess-0123456789ab's space error %q", page.Backlog, len(bls), want)
	}
}
