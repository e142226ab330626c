package pipeline

import (
	"context"
	"io"
	"log/slog"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/summarize"
)

// fullJetStream is a JetStream whose every look-up of a bucket fails at once, as a server
// without JetStream storage left answers; it counts them.
type fullJetStream struct {
	jetstream.JetStream
	looks atomic.Int32
}

func (js *fullJetStream) KeyValue(context.Context, string) (jetstream.KeyValue, error) {
	js.looks.Add(1)
	return nil, &jetstream.APIError{Code: 500, ErrorCode: 10023, Description: "insufficient resources"}
}

// TestAWorkerThatCannotAnnounceItselfTriesAgainEachIntervalNotEachLook: a bucket that cannot
// be made or written is tried again every Interval (Announce's promise). The first failure left
// the state last written at its zero value, which differs from every state: each look, every
// second, tried again — a request to the server a second for every worker that could not
// announce itself, and a debug line each.
func TestAWorkerThatCannotAnnounceItselfTriesAgainEachIntervalNotEachLook(t *testing.T) {
	js := &fullJetStream{}
	w, err := NewWorker(js, nil, summarize.NewOffline(30), nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	looks := make(chan time.Time)
	an := announceLooking(js, w, AnnounceConfig{Interval: time.Hour, Logger: slog.New(slog.NewTextHandler(io.Discard, nil))}, looks)
	defer an.Stop()
	// Each send is received once the look before it is done (the channel is unbuffered): after
	// the fourth, three looks have followed the first write.
	for range 4 {
		looks <- time.Now()
	}
	if n := js.looks.Load(); n != 1 {
		t.Errorf("the bucket was tried %d times in an interval of a write and three looks or more, want 1", n)
	}
}
