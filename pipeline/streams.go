package pipeline

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go/jetstream"
)

// Subjects, streams and consumers of paperpipe's JetStream topology.
const (
	StreamPapers     = "PAPERS"
	SubjectNew       = "papers.new"
	SubjectReprocess = "papers.reprocess"
	ConsumerNew      = "workers"
	ConsumerReproc   = "reprocess"

	StreamDead    = "PAPERS_DLQ"
	SubjectDead   = "papers.dead" // papers.dead.<consumer>
	subjectDeadWC = SubjectDead + ".>"
)

// TopologyConfig sets the streams' and consumers' limits.
type TopologyConfig struct {
	// Replicas of both streams. Defaults to 1; use 3 on a JetStream cluster.
	Replicas int
	// DuplicateWindow is how long the server remembers message ids to drop repeats.
	// Defaults to 1 hour.
	DuplicateWindow time.Duration
	// AckWait is how long a delivered message may stay unacknowledged before redelivery; workers
	// extend it with InProgress during long calls. Defaults to 60 seconds.
	AckWait time.Duration
	// MaxDeliver is how many times a message is delivered before it is dead-lettered.
	// Defaults to 8.
	MaxDeliver int
	// MaxAckPending bounds the messages delivered and not yet acknowledged per consumer, across
	// all workers. Defaults to 4096.
	MaxAckPending int
}

func (c *TopologyConfig) setDefaults() {
	if c.Replicas <= 0 {
		c.Replicas = 1
	}
	if c.DuplicateWindow <= 0 {
		c.DuplicateWindow = time.Hour
	}
	if c.AckWait <= 0 {
		c.AckWait = 60 * time.Second
	}
	if c.MaxDeliver <= 0 {
		c.MaxDeliver = 8
	}
	if c.MaxAckPending <= 0 {
		c.MaxAckPending = 4096
	}
}

// Setup creates or updates the PAPERS and PAPERS_DLQ streams and the durable pull consumers
// for new papers and for re-processing. It is idempotent: every process calls it at start.
func Setup(ctx context.Context, js jetstream.JetStream, cfg TopologyConfig) error {
	cfg.setDefaults()
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamPapers,
		Description: "paper abstracts waiting for a TL;DR and an embedding",
		Subjects:    []string{SubjectNew, SubjectReprocess},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		MaxMsgSize:  4 << 20,
	}); err != nil {
		return fmt.Errorf("create stream %s: %w", StreamPapers, err)
	}
	if _, err := js.CreateOrUpdateStream(ctx, jetstream.StreamConfig{
		Name:        StreamDead,
		Description: "messages that could not be processed, with the reason in their headers",
		Subjects:    []string{subjectDeadWC},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}); err != nil {
		return fmt.Errorf("create stream %s: %w", StreamDead, err)
	}
	for _, c := range []struct{ name, subject, desc string }{
		{ConsumerNew, SubjectNew, "workers processing new papers"},
		{ConsumerReproc, SubjectReprocess, "workers re-processing the archive"},
	} {
		if _, err := js.CreateOrUpdateConsumer(ctx, StreamPapers, jetstream.ConsumerConfig{
			Durable:       c.name,
			Description:   c.desc,
			FilterSubject: c.subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    cfg.MaxDeliver,
			MaxAckPending: cfg.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
		}); err != nil {
			return fmt.Errorf("create consumer %s: %w", c.name, err)
		}
	}
	return nil
}

// Backlog is the state of one consumer.
type Backlog struct {
	Consumer    string `json:"consumer"`
	Pending     uint64 `json:"pending"`     // not yet delivered
	AckPending  int    `json:"ack_pending"` // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"`
}

// Backlogs reports every paperpipe consumer's backlog.
func Backlogs(ctx context.Context, js jetstream.JetStream) ([]Backlog, error) {
	var out []Backlog
	for _, name := range []string{ConsumerNew, ConsumerReproc} {
		c, err := js.Consumer(ctx, StreamPapers, name)
		if errors.Is(err, jetstream.ErrConsumerNotFound) || errors.Is(err, jetstream.ErrStreamNotFound) {
			out = append(out, Backlog{Consumer: name})
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("consumer %s: %w", name, err)
		}
		info, err := c.Info(ctx)
		if err != nil {
			return nil, fmt.Errorf("consumer %s info: %w", name, err)
		}
		out = append(out, Backlog{Consumer: name, Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered})
	}
	return out, nil
}
