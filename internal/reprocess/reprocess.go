// Package reprocess holds the parts of `paperpipe reprocess` (cmd/paperpipe) that the
// benchmark (bench/) runs too, so that the figures it publishes for a reprocess are those of
// the command's own path: the selection of the stale papers, their publication, and the store
// as a re-processing worker sees it. Like internal/webstore, it wires store and pipeline
// together, which those packages never do themselves.
package reprocess

import (
	"context"
	"errors"

	"github.com/nats-io/nats.go/jetstream"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
)

// Store is the store as a re-processing worker sees it: one that never writes texts.
type Store struct{ *store.Store }

// UpsertPapers does not write the messages' texts: they were read from the store when the run
// published them, and a newer text may have arrived since (a run resumed after an ingest, a
// replayed dead letter); see store.PendingFor.
func (s Store) UpsertPapers(ctx context.Context, papers []paper.Abstract, w paper.Work) ([]paper.Pending, error) {
	return s.Store.PendingFor(ctx, papers, w)
}

// PublishStale publishes the papers sel selects (store.StalePapers) through pub and flushes it.
// With between set, every `every` papers are flushed and between is called (reprocess drains
// its workers there) before more are published. A paper whose message is over the queue's
// limit (one ingest took with little to spare: a reprocess message's id and headers are
// longer) is left out and passed to tooLarge; the others go on. It returns how many papers
// were published.
func PublishStale(ctx context.Context, st *store.Store, sel store.Selection, pub *pipeline.Publisher,
	every int, between func() error, tooLarge func(id string, err error)) (int, error) {
	n := 0
	err := st.StalePapers(ctx, sel, 500, func(page []store.StalePaper) error {
		for _, p := range page {
			if err := pub.Publish(ctx, p.Abstract); err != nil {
				var big *pipeline.TooLargeError
				if errors.As(err, &big) {
					tooLarge(p.ID, err)
					continue
				}
				return err
			}
			if n++; between == nil || n%every != 0 {
				continue
			}
			if err := pub.Flush(ctx); err != nil {
				return err
			}
			if err := between(); err != nil {
				return err
			}
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return n, err
	}
	return n, pub.Flush(ctx)
}

// NeedsDrain reports whether a run that has published published papers (PublishStale's count)
// must start a worker on target once more to finish: when it published any, or when target's
// consumer holds messages all the same (a dead letter replayed onto the run's subject
// meanwhile). A run over an archive with nothing stale starts none: a worker finds its consumer
// empty only after one empty pull (pipeline.WorkerConfig.FetchWait, a second), which was most
// of such a run's time. Not knowing (the consumer cannot be read), true.
func NeedsDrain(ctx context.Context, js jetstream.JetStream, target pipeline.ReprocessTarget, published int) bool {
	if published > 0 {
		return true
	}
	n, err := pipeline.Queued(ctx, js, target)
	return err != nil || n > 0
}
