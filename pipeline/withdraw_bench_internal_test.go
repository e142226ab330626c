package pipeline

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
)

// BenchmarkLastDeliveryWithdrawal measures what settling a last delivery costs beyond its
// acknowledgement: the withdrawal of the dead letter a reaper may have written
// (withdrawDeadLetter: a claim published into the dead-letter stream, the stream looked up, the
// claim removed), which every acknowledgement pays with PAPERPIPE_MAX_DELIVER=1. On the
// embedded server, a ~1.3 KB abstract as the claim's body, 1,000 dead letters in the stream;
// per paper, serially. recent: a message queued a moment ago; queued-2h-ago: one that waited
// in a backlog longer than the dead-letter stream's duplicate window (an hour). ack: a plain
// acknowledgement, for comparison.
func BenchmarkLastDeliveryWithdrawal(b *testing.B) {
	abstract := []byte(`{"id":"bench:1","title":"T","abstract":"` + strings.Repeat("We study the cost of durable queues for research paper pipelines. ", 20) + `"}`)
	start := func(b *testing.B) (jetstream.JetStream, *Worker) {
		e, err := StartEmbedded(EmbeddedConfig{Dir: b.TempDir()})
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
		if err := Setup(context.Background(), js, TopologyConfig{}); err != nil {
			b.Fatal(err)
		}
		for i := range 1000 { // other papers' letters
			m := nats.NewMsg(SubjectDead + "." + ConsumerNew)
			m.Data = abstract
			m.Header.Set(HeaderReason, "bench")
			m.Header.Set(jetstream.MsgIDHeader, fmt.Sprint("other:", i))
			if _, err := js.PublishMsg(context.Background(), m); err != nil {
				b.Fatal(err)
			}
		}
		return js, &Worker{js: js, cfg: WorkerConfig{Consumer: ConsumerNew}, log: slog.New(slog.DiscardHandler)}
	}
	for _, c := range []struct {
		name   string
		queued time.Duration
	}{{"recent", 0}, {"queued-2h-ago", 2 * time.Hour}} {
		b.Run("withdraw/"+c.name, func(b *testing.B) {
			js, w := start(b)
			ctx := context.Background()
			stored := time.Now().Add(-c.queued)
			jobs := make([]job, b.N)
			for range b.N {
				if _, err := js.Publish(ctx, SubjectNew, abstract); err != nil {
					b.Fatal(err)
				}
			}
			cons, err := js.Consumer(ctx, StreamPapers, ConsumerNew)
			if err != nil {
				b.Fatal(err)
			}
			for got := 0; got < b.N; {
				batch, err := cons.Fetch(256)
				if err != nil {
					b.Fatal(err)
				}
				for m := range batch.Messages() {
					meta, _ := m.Metadata()
					meta.Timestamp = stored // as if queued then
					jobs[got] = job{msg: m, meta: meta, a: paper.Abstract{ID: "bench:1"}, received: time.Now()}
					got++
				}
			}
			b.ResetTimer()
			for _, j := range jobs {
				w.withdrawDeadLetter(j, "bench")
			}
		})
	}
	b.Run("ack", func(b *testing.B) {
		js, _ := start(b)
		ctx := context.Background()
		for range b.N {
			if _, err := js.Publish(ctx, SubjectNew, abstract); err != nil {
				b.Fatal(err)
			}
		}
		cons, err := js.Consumer(ctx, StreamPapers, ConsumerNew)
		if err != nil {
			b.Fatal(err)
		}
		var msgs []jetstream.Msg
		for len(msgs) < b.N {
			batch, err := cons.Fetch(256)
			if err != nil {
				b.Fatal(err)
			}
			for m := range batch.Messages() {
				msgs = append(msgs, m)
			}
		}
		b.ResetTimer()
		for _, m := range msgs {
			if err := m.Ack(); err != nil {
				b.Fatal(err)
			}
		}
	})
}
