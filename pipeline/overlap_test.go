package pipeline_test

import (
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/natstest"
	"github.com/paperpipe/paperpipe/pipeline"
)

// On a NATS server shared with other applications, a stream of another one that takes
// paperpipe's subjects (papers.>, say) makes JetStream refuse paperpipe's streams: every
// command stopped with `stream PAPERS: nats: API error: code=400 err_code=10065
// description=subjects overlap with an existing stream`, naming neither that stream nor the
// way out. The error names the stream and its subjects, and what to do.
func TestAnotherApplicationsStreamOnPaperpipesSubjectsIsNamed(t *testing.T) {
	for _, c := range []struct{ name, subject string }{
		{"EVENTS", "papers.>"},
		{"ARCHIVE_DEAD", "papers.dead.>"}, // the dead-letter stream's
	} {
		t.Run(c.name, func(t *testing.T) {
			js := natstest.Start(t).Connect(t)
			if _, err := js.CreateStream(t.Context(), jetstream.StreamConfig{Name: c.name, Subjects: []string{c.subject}}); err != nil {
				t.Fatal(err)
			}
			err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{})
			if err == nil {
				t.Fatal("Setup beside a stream on paperpipe's subjects: no error")
			}
			for _, want := range []string{c.name, c.subject, "account"} {
				if !strings.Contains(err.Error(), want) {
					t.Errorf("Setup beside stream %s on %s: %v; want it to name %q", c.name, c.subject, err, want)
				}
			}
		})
	}
}

// An account that requires a byte limit on every stream (max_bytes_required, as hosted NATS
// accounts often do) refuses paperpipe's streams, made without one: every command stopped with
// `stream PAPERS: nats: API error: code=400 err_code=10113 description=account requires a
// stream config to have max bytes set`, with no setting of paperpipe's to give one. The error
// says how to make the streams with a limit; paperpipe then keeps them (and their limits).
func TestAnAccountRequiringAByteLimitSaysHowToMakeTheStreams(t *testing.T) {
	srv := natstest.Start(t)
	if err := srv.GlobalAccount().UpdateJetStreamLimits(map[string]server.JetStreamAccountLimits{
		"": {MaxMemory: -1, MaxStore: 8 << 20, MaxStreams: -1, MaxConsumers: -1, MaxBytesRequired: true},
	}); err != nil {
		t.Fatal(err)
	}
	js := srv.Connect(t)
	err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{})
	if err == nil {
		t.Fatal("Setup on an account requiring a byte limit: no error")
	}
	for _, want := range []string{"nats stream add PAPERS ", "--max-bytes", "nats stream add PAPERS_DLQ "} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Setup on an account requiring a byte limit: %v; want it to say %q", err, want)
		}
	}
	// The streams made as the error says (as the nats CLI makes them) are kept.
	for _, cfg := range []jetstream.StreamConfig{
		{Name: pipeline.StreamPapers, Subjects: []string{"papers.new", "papers.reprocess.>"}, Retention: jetstream.WorkQueuePolicy,
			Discard: jetstream.DiscardNew, Duplicates: time.Hour, MaxBytes: 6 << 20},
		{Name: pipeline.StreamDead, Subjects: []string{"papers.dead.>"}, Duplicates: time.Hour, MaxBytes: 2 << 20},
	} {
		if _, err := js.CreateStream(t.Context(), cfg); err != nil {
			t.Fatal(err)
		}
	}
	if err := pipeline.Setup(t.Context(), js, pipeline.TopologyConfig{}); err != nil {
		t.Errorf("Setup once the streams are made with a byte limit: %v", err)
	}
}
