package pipeline_test

import (
	"strings"
	"testing"

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
