package pipeline_test

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// namedEmbedder is the offline embedder under another model's name: the workers of README's
// blue/green section, still configured for the old model, whose space is not the active one.
type namedEmbedder struct{ pipeline.Embedder }

func (namedEmbedder) Space() paper.Space {
	return paper.Space{Model: "old-api-model", Dimensions: 768, Template: embed.TemplateTitleAbstract}
}

// droppedSpaceRun runs a worker of a space other than the active one over three sample papers,
// with each delivery one of two (MaxDeliver 2). drop drops the worker's space from another
// process: at once when before, else the first time the worker saves vectors, after it
// bought them. It returns the worker's stats, the embedding requests it made and its log.
func droppedSpaceRun(t *testing.T, before bool) (pipeline.WorkerStats, int64, string, *testBundle) {
	t.Helper()
	ctx := context.Background()
	b := setup(t, embed.NewOffline(), pipeline.TopologyConfig{MaxDeliver: 2})
	emb := &countingEmbedder{Embedder: namedEmbedder{embed.NewOffline()}}
	old, err := b.store.EnsureSpace(ctx, emb.Space()) // the worker's process resolved its space at start
	if err != nil {
		t.Fatal(err)
	}
	other, err := store.Open(ctx, store.Config{URL: b.url}) // `paperpipe spaces drop`
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	drop := func() {
		if err := other.DropSpace(ctx, old.ID, store.DropOptions{}); err != nil {
			t.Error(err)
		}
	}
	var st pipeline.Store = b.store
	if before {
		drop()
	} else {
		st = &dropOnSave{Store: b.store, drop: drop}
	}
	publish(t, b.js, sampledata.Papers(t)[:3])
	var logs logBuffer
	w, err := pipeline.NewWorker(b.js, st, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		SpaceID: old.ID, ExitWhenIdle: true, FetchWait: 200 * time.Millisecond,
		Backoff: func(int) time.Duration { return 10 * time.Millisecond },
		Logger:  slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	rctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	if err := w.Run(rctx); err != nil {
		t.Fatal(err)
	}
	return w.Stats(), emb.calls.Load(), logs.String(), b
}

// dropOnSave drops the worker's space just before the worker's first save of vectors.
type dropOnSave struct {
	pipeline.Store
	once sync.Once
	drop func()
}

func (d *dropOnSave) SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (int, error) {
	d.once.Do(d.drop)
	return d.Store.SaveEmbeddings(ctx, spaceID, embs)
}

// checkDroppedSpaceRun checks that every paper got its TL;DR and was settled, none
// dead-lettered, and that the worker said once what to do.
func checkDroppedSpaceRun(t *testing.T, ws pipeline.WorkerStats, logs string, b *testBundle) {
	t.Helper()
	if ws.TLDRs != 3 || ws.Acked != 3 || ws.Embeddings != 0 || ws.Dead != 0 || ws.Retried != 0 {
		t.Errorf("stats %+v; want the three TL;DRs stored and their messages acknowledged at the first delivery", ws)
	}
	if dl := deadLetters(t, b.js); len(dl) > 0 {
		t.Errorf("%d papers dead-lettered, the first for %q; the papers are not at fault", len(dl), dl[0].Reason)
	}
	if n := strings.Count(logs, "was dropped"); n != 1 || !strings.Contains(logs, "restart it configured for the active space's embedding model") {
		t.Errorf("the worker warned %d times that its space was dropped (want once, saying what to do):\n%s", n, logs)
	}
	if strings.Contains(logs, "retrying") {
		t.Errorf("the save into the dropped space was retried:\n%s", logs)
	}
}

// A worker whose space was dropped (README's blue/green section: a worker still on the old
// model) buys no vector for it: no vector could be stored, and the paper was bought again on
// every delivery and dead-lettered. It writes the TL;DRs and says once what to do.
func TestWorkerOnADroppedSpaceBuysNoVectorAndWritesTheTLDRs(t *testing.T) {
	t.Parallel()
	ws, calls, logs, b := droppedSpaceRun(t, true)
	if calls != 0 {
		t.Errorf("%d embedding requests for a space that no longer exists, want none", calls)
	}
	checkDroppedSpaceRun(t, ws, logs, b)
}

// Vectors bought just before their space was dropped cannot be stored anywhere: the save is
// not retried, and the messages are settled with their TL;DRs instead of being redelivered
// (the vectors bought again) and dead-lettered.
func TestVectorsOfASpaceDroppedWhileTheyWereBoughtAreLetGo(t *testing.T) {
	t.Parallel()
	ws, calls, logs, b := droppedSpaceRun(t, false)
	if calls == 0 || calls > 3 {
		t.Errorf("%d embedding requests; want the papers' vectors bought once, before the drop", calls)
	}
	checkDroppedSpaceRun(t, ws, logs, b)
}
