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
			err = w.setTimeouts(tt.ackWait)
			if tt.wantErr {
				if err == nil {
					t.Fatal("want an error")
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if w.msgTimeout != tt.wantMsg || w.cfg.ProgressInterval != tt.wantProgress {
				t.Errorf("MsgTimeout %v, ProgressInterval %v; want %v and %v", w.msgTimeout, w.cfg.ProgressInterval, tt.wantMsg, tt.wantProgress)
			}
			if w.msgTimeout+w.cfg.ProgressInterval >= w.ackWait {
				t.Errorf("MsgTimeout %v plus a renewal interval %v reaches AckWait %v", w.msgTimeout, w.cfg.ProgressInterval, w.ackWait)
			}
		})
	}
}

func TestWorkIsNotStartedOnAStaleHold(t *testing.T) {
	w, err := NewWorker(nil, nil, noSummarizer{}, nil, WorkerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.setTimeouts(60 * time.Second); err != nil {
		t.Fatal(err)
	}
	fresh := &hold{}
	fresh.renewed.Store(time.Now().Add(-10 * time.Second).UnixNano())
	if _, err := w.workDeadline(fresh); err != nil {
		t.Errorf("hold renewed 10s ago: %v", err)
	}
	stale := &hold{}
	stale.renewed.Store(time.Now().Add(-31 * time.Second).UnixNano())
	if _, err := w.workDeadline(stale); !errors.Is(err, errStaleHold) {
		t.Errorf("hold renewed 31s ago (AckWait 60s, MsgTimeout 30s): err = %v, want errStaleHold", err)
	}
}
