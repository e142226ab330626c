package pipeline

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// noSummarizer is a Summarizer for tests of a worker's settings: it is never called.
type noSummarizer struct{}

func (noSummarizer) Model() string         { return "none" }
func (noSummarizer) PromptVersion() string { return "none" }
func (noSummarizer) Summarize(context.Context, paper.Abstract) (paper.Summary, error) {
	panic("noSummarizer called")
}

// noEmbedder is an Embedder for tests of a worker's settings: it is never called.
type noEmbedder struct{}

func (noEmbedder) Space() paper.Space { return paper.Space{} }
func (noEmbedder) Embed(context.Context, []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	panic("noEmbedder called")
}

// NewWorker takes a summarizer, an embedder with its space, or both.
func TestNewWorkerChecksItsModelsAndSpace(t *testing.T) {
	for _, tc := range []struct {
		name    string
		sum     Summarizer
		emb     Embedder
		space   int64
		wantErr bool
	}{
		{"neither model", nil, nil, 0, true},
		{"TL;DRs only", noSummarizer{}, nil, 0, false},
		{"TL;DRs only, with a space", noSummarizer{}, nil, 3, true},
		{"embedder without its space", noSummarizer{}, noEmbedder{}, 0, true},
		{"embeddings only", nil, noEmbedder{}, 3, false},
		{"both", noSummarizer{}, noEmbedder{}, 3, false},
	} {
		_, err := NewWorker(nil, nil, tc.sum, tc.emb, WorkerConfig{SpaceID: tc.space})
		if (err != nil) != tc.wantErr {
			t.Errorf("%s: err = %v, want an error: %v", tc.name, err, tc.wantErr)
		}
	}
}

func TestSetTimeoutsKeepsTheMessageTimeoutBelowAckWait(t *testing.T) {
	tests := []struct {
		name                   string
		ackWait, msg, progress time.Duration
		wantMsg, wantProgress  time.Duration
		wantErr                bool
	}{
		{name: "defaults", ackWait: 60 * time.Second, wantMsg: 30 * time.Second, wantProgress: 15 * time.Second},
		{name: "shorter is kept", ackWait: 60 * time.Second, msg: 10 * time.Second, wantMsg: 10 * time.Second, wantProgress: 15 * time.Second},
		{name: "longer is lowered", ackWait: 60 * time.Second, msg: 5 * time.Minute, wantMsg: 30 * time.Second, wantProgress: 15 * time.Second},
		{name: "explicit progress", ackWait: 10 * time.Second, msg: time.Hour, progress: time.Second, wantMsg: 8 * time.Second, wantProgress: time.Second},
		{name: "progress too slow", ackWait: 10 * time.Second, progress: 6 * time.Second, wantErr: true},
		{name: "no AckWait: the server's 30s", wantMsg: 15 * time.Second, wantProgress: 7500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := WorkerConfig{MsgTimeout: tt.msg, ProgressInterval: tt.progress}
			w, err := NewWorker(nil, nil, noSummarizer{}, nil, cfg)
			if err != nil {
				t.Fatal(err)
			}
			err = w.setTimeouts(tt.ackWait, 8)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tm := w.timings()
			if tm.msgTimeout != tt.wantMsg || tm.progress != tt.wantProgress {
				t.Errorf("MsgTimeout %v, ProgressInterval %v; want %v and %v", tm.msgTimeout, tm.progress, tt.wantMsg, tt.wantProgress)
			}
			if tm.msgTimeout+tm.progress >= tm.ackWait {
				t.Errorf("MsgTimeout %v plus a renewal interval %v reaches AckWait %v", tm.msgTimeout, tm.progress, tm.ackWait)
			}
		})
	}
}

func TestWorkIsNotStartedOnAStaleHold(t *testing.T) {
	w, err := NewWorker(nil, nil, noSummarizer{}, nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(60*time.Second, 8); err != nil {
		t.Fatal(err)
	}
	fresh := renewedAgo(10*time.Second, 10*time.Second)
	if _, err := w.workDeadline(fresh); err != nil {
		t.Errorf("hold renewed 10s ago: %v", err)
	}
	stale := renewedAgo(31*time.Second, 31*time.Second)
	if _, err := w.workDeadline(stale); !errors.Is(err, errStaleHold) {
		t.Errorf("hold renewed 31s ago (AckWait 60s, MsgTimeout 30s): err = %v, want errStaleHold", err)
	}
}

// renewedAgo is a hold renewed mono ago on the monotonic clock and wall ago on the wall clock.
func renewedAgo(mono, wall time.Duration) *hold {
	n := stampNow()
	h := &hold{}
	h.renewed.Store(&stamp{mono: n.mono - mono, wall: n.wall - int64(wall)})
	return h
}

// TestAHoldAgesOnTheClockThatRanLonger: a hold's age is the longer of the spans on the
// monotonic and the wall clock. It was the wall clock's alone: stepped back a minute (NTP)
// while NATS was out of reach, a hold unrenewed for 70 s (AckWait 60 s) looked 10 s old, and
// the worker started API work on a message the server had handed to another worker, bought
// twice. The monotonic clock alone would miss a suspended machine (it stops on Linux), which
// the wall clock sees.
func TestAHoldAgesOnTheClockThatRanLonger(t *testing.T) {
	w, err := NewWorker(nil, nil, noSummarizer{}, nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(60*time.Second, 8); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name       string
		mono, wall time.Duration
	}{
		{"the wall clock stepped back a minute", 70 * time.Second, 10 * time.Second},
		{"the machine suspended for a minute", 10 * time.Second, 70 * time.Second},
	} {
		h := renewedAgo(c.mono, c.wall)
		if !w.holdLapsed(h) {
			t.Errorf("%s (renewed %s ago, %s on the wall clock; AckWait 60s): the hold has not lapsed", c.name, c.mono, c.wall)
		}
		if _, err := w.workDeadline(h); !errors.Is(err, errStaleHold) {
			t.Errorf("%s: workDeadline: %v, want errStaleHold", c.name, err)
		}
	}
}

// A worker follows its consumer's AckWait while it runs: a ProgressInterval it was given that
// is too long for a lowered AckWait is lowered to a quarter of it (not an error, as at start),
// and the holds are told to renew at once.
// A billed embedding batch lingers at most half the MsgTimeout also once a running worker
// follows a lowered AckWait: lingering the EmbedLinger that suited the longer one, every batch
// would go after its messages' API work had to end (see workDeadline), and fail.
func TestEmbedLingerFollowsALoweredAckWait(t *testing.T) {
	w, err := NewWorker(nil, nil, noSummarizer{}, nil, WorkerConfig{ProgressInterval: 100 * time.Millisecond, EmbedLinger: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(10*time.Second, 8); err != nil {
		t.Fatal(err)
	}
	w.embedBills.Store(true)
	if got := w.embedLinger(); got != 2*time.Second {
		t.Fatalf("billed embeddings with AckWait 10s linger %v, want EmbedLinger 2s", got)
	}
	if err := w.setTimeouts(2*time.Second, 8); err != nil {
		t.Fatal(err)
	}
	if got, msg := w.embedLinger(), w.timings().msgTimeout; got > msg/2 {
		t.Errorf("after AckWait 2s (MsgTimeout %v), billed embeddings linger %v, want at most half the MsgTimeout", msg, got)
	}
}

func TestSetTimeoutsFollowsALoweredAckWait(t *testing.T) {
	w, err := NewWorker(nil, nil, noSummarizer{}, nil, WorkerConfig{ProgressInterval: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(10*time.Second, 8); err != nil {
		t.Fatal(err)
	}
	first := w.timings()
	if err := w.setTimeouts(2*time.Second, 3); err != nil {
		t.Fatalf("AckWait lowered to 2s while running: %v", err)
	}
	select {
	case <-first.changed:
	default:
		t.Error("the holds were not told of the new timings")
	}
	tm := w.timings()
	if tm.progress != 500*time.Millisecond || tm.msgTimeout != time.Second || tm.maxDeliver != 3 {
		t.Errorf("after AckWait 2s, MaxDeliver 3: ProgressInterval %v, MsgTimeout %v, MaxDeliver %d; want 500ms, 1s, 3",
			tm.progress, tm.msgTimeout, tm.maxDeliver)
	}
}
