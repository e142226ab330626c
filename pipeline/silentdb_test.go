package pipeline_test

import (
	"context"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// blackhole is a TCP proxy to PostgreSQL that can stop forwarding without closing anything:
// what a connection sees when its peer silently vanishes (a failover to another host, a NAT or
// firewall dropping an idle flow, a VM that died).
type blackhole struct {
	ln     net.Listener
	target string
	frozen atomic.Bool
	mu     sync.Mutex
	conns  []net.Conn
}

func newBlackhole(t *testing.T, target string) *blackhole {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	b := &blackhole{ln: ln, target: target}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			u, err := net.Dial("tcp", target)
			if err != nil {
				c.Close()
				continue
			}
			b.mu.Lock()
			b.conns = append(b.conns, c, u)
			b.mu.Unlock()
			go b.pipe(c, u)
			go b.pipe(u, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		b.mu.Lock()
		defer b.mu.Unlock()
		for _, c := range b.conns {
			c.Close()
		}
	})
	return b
}

func (b *blackhole) pipe(from, to net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		for b.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // dropped on the floor, as far as both ends know
		}
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			to.Close()
			return
		}
	}
}

// TestWorkerHandsBackItsBatchWhenTheDatabaseGoesSilent: recording a micro-batch had no
// deadline, while every message of it was marked InProgress every quarter AckWait: a database
// connection gone silent (no reset: a failover, a NAT or firewall dropping the flow) held the
// messages, never redelivered, for as long as TCP took to declare it dead (~15 minutes), or for
// ever behind a proxy. Saves were bounded (15 s an attempt); intake is now too (IntakeTimeout),
// and a batch that runs out of it goes back to the queue without using a delivery.
func TestWorkerHandsBackItsBatchWhenTheDatabaseGoesSilent(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	js := natstest.Start(t).Connect(t)
	// Every delivery the last: a message handed back on a delivery would be dead-lettered.
	if err := pipeline.Setup(ctx, js, pipeline.TopologyConfig{AckWait: 2 * time.Second, MaxDeliver: 1}); err != nil {
		t.Fatal(err)
	}
	base := pgtest.URL(t)
	// Route the store through the proxy: replace host:port of the test database's URL.
	hostport := strings.SplitN(strings.SplitN(strings.SplitN(base, "@", 2)[1], "/", 2)[0], "?", 2)[0]
	bh := newBlackhole(t, hostport)
	url := strings.Replace(base, hostport, bh.ln.Addr().String(), 1)
	st, err := store.Open(ctx, store.Config{URL: url})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	emb := embed.NewOffline()
	sp, err := st.EnsureSpace(ctx, emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	w, err := pipeline.NewWorker(js, st, summarize.NewOffline(30), emb, pipeline.WorkerConfig{
		SpaceID: sp.ID, FetchWait: 200 * time.Millisecond, DrainTimeout: time.Second, IntakeTimeout: 3 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { defer close(done); _ = w.Run(wctx) }()
	defer func() { bh.frozen.Store(false); stop(); <-done }()

	bh.frozen.Store(true) // the database goes silent
	publish(t, js, []paper.Abstract{{ID: "arxiv:2401.00001", Title: "A title", Abstract: strings.Repeat("words of an abstract ", 10)}})

	// The intake ends after IntakeTimeout: the message goes back to the queue, without using a
	// delivery (the database's fault, not the paper's), instead of being held while the
	// database is silent.
	waitFor(t, "the message handed back", func() (bool, string) {
		s := w.Stats()
		return s.Retried > 0, fmt.Sprintf("%+v", s)
	})
	if s := w.Stats(); s.Dead != 0 {
		t.Errorf("a silent database dead-lettered a paper on its last delivery: %+v", s)
	}
	if dls := deadLetters(t, js); len(dls) != 0 {
		t.Errorf("%d dead letters: %s", len(dls), dls[0].Reason)
	}
}
