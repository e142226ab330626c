package pipeline_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
)

// BenchmarkEmbeddedSync measures what the embedded server's fsync of every write
// (EmbeddedConfig.SyncAlways, PAPERPIPE_NATS_SYNC=always) costs the queue's two sides next to
// its default (a sync every 2 minutes): publish, papers published as ingest publishes them
// (256 in flight); take, papers fetched as a worker pulls them (batches of 64) and each
// acknowledged (the work queue removes it: a write). An abstract of ~1.3 KB. The figures are
// per paper; the pipeline itself does ~500–800 papers/s on this machine (bench).
func BenchmarkEmbeddedSync(b *testing.B) {
	abstract := strings.Repeat("We study the cost of durable queues for research paper pipelines. ", 20)
	for _, sync := range []struct {
		name   string
		always bool
	}{{"default", false}, {"always", true}} {
		start := func(b *testing.B) jetstream.JetStream {
			e, err := pipeline.StartEmbedded(pipeline.EmbeddedConfig{Dir: b.TempDir(), SyncAlways: sync.always})
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(e.Shutdown)
			nc, err := nats.Connect(e.ClientURL())
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(nc.Close)
			js, err := jetstream.New(nc)
			if err != nil {
				b.Fatal(err)
			}
			if err := pipeline.Setup(context.Background(), js, pipeline.TopologyConfig{}); err != nil {
				b.Fatal(err)
			}
			return js
		}
		publishN := func(b *testing.B, js jetstream.JetStream, n int) {
			ctx := context.Background()
			pub := pipeline.NewPublisher(js, pipeline.SubjectNew, 256)
			for i := range n {
				if err := pub.Publish(ctx, paper.Abstract{ID: fmt.Sprintf("bench:%d", i), Title: "T", Abstract: abstract}); err != nil {
					b.Fatal(err)
				}
			}
			if err := pub.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		}
		b.Run(sync.name+"/publish", func(b *testing.B) {
			js := start(b)
			b.ResetTimer()
			publishN(b, js, b.N)
		})
		b.Run(sync.name+"/take", func(b *testing.B) {
			js := start(b)
			publishN(b, js, b.N)
			ctx := context.Background()
			cons, err := js.Consumer(ctx, pipeline.StreamPapers, pipeline.ConsumerNew)
			if err != nil {
				b.Fatal(err)
			}
			b.ResetTimer()
			for got := 0; got < b.N; {
				batch, err := cons.Fetch(64, jetstream.FetchMaxWait(5*time.Second))
				if err != nil {
					b.Fatal(err)
				}
				for m := range batch.Messages() {
					if err := m.Ack(); err != nil {
						b.Fatal(err)
					}
					got++
				}
			}
			b.StopTimer()
			// The acks are sent without waiting: count the time until the queue is empty.
			b.StartTimer()
			for {
				s, err := js.Stream(ctx, pipeline.StreamPapers)
				if err != nil {
					b.Fatal(err)
				}
				if s.CachedInfo().State.Msgs == 0 {
					break
				}
				time.Sleep(time.Millisecond)
			}
		})
	}
}
