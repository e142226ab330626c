package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
)

// Subjects, streams and consumers of paperpipe's JetStream topology.
const (
	StreamPapers = "PAPERS"
	SubjectNew   = "papers.new"
	ConsumerNew  = "workers"
	// SubjectReprocess prefixes the subjects of re-processing runs: each target (models,
	// prompt version and embedding space) has its own subject and durable consumer, see
	// ReprocessTarget, so runs for different targets never take each other's messages and an
	// interrupted run resumes where it stopped.
	SubjectReprocess = "papers.reprocess"

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
		Subjects:    []string{SubjectNew, SubjectReprocess + ".>"},
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
	return ensureConsumer(ctx, js, cfg, ConsumerNew, SubjectNew, "workers processing new papers")
}

func ensureConsumer(ctx context.Context, js jetstream.JetStream, cfg TopologyConfig, name, subject, desc string) error {
	cfg.setDefaults()
	if _, err := js.CreateOrUpdateConsumer(ctx, StreamPapers, jetstream.ConsumerConfig{
		Durable:       name,
		Description:   desc,
		FilterSubject: subject,
		AckPolicy:     jetstream.AckExplicitPolicy,
		AckWait:       cfg.AckWait,
		MaxDeliver:    cfg.MaxDeliver,
		MaxAckPending: cfg.MaxAckPending,
		DeliverPolicy: jetstream.DeliverAllPolicy,
	}); err != nil {
		return fmt.Errorf("create consumer %s: %w", name, err)
	}
	return nil
}

// ReprocessTarget is the subject and durable consumer of re-processing runs for one target.
type ReprocessTarget struct {
	Key      string // short stable hash of the target
	Subject  string // papers.reprocess.<key>
	Consumer string // reprocess-<key>
}

// NewReprocessTarget names the subject and consumer of re-processing for w, where space is the
// target embedding space's name and w.Model/w.PromptVersion the TL;DR target ("" when the run
// does not regenerate TL;DRs).
func NewReprocessTarget(w paper.Work, space string) ReprocessTarget {
	sum := sha256.Sum256([]byte(w.Model + "\x00" + w.PromptVersion + "\x00" + space))
	key := hex.EncodeToString(sum[:6])
	return ReprocessTarget{Key: key, Subject: SubjectReprocess + "." + key, Consumer: "reprocess-" + key}
}

// EnsureReprocessConsumer creates (idempotently) the durable consumer of a re-processing target.
func EnsureReprocessConsumer(ctx context.Context, js jetstream.JetStream, cfg TopologyConfig, t ReprocessTarget, desc string) error {
	return ensureConsumer(ctx, js, cfg, t.Consumer, t.Subject, desc)
}

// Backlog is the state of one consumer.
type Backlog struct {
	Consumer    string `json:"consumer"`
	Description string `json:"description"`
	Pending     uint64 `json:"pending"`     // not yet delivered
	AckPending  int    `json:"ack_pending"` // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"`
}

// Backlogs reports the backlog of every consumer of the PAPERS stream: new papers and each
// re-processing target.
func Backlogs(ctx context.Context, js jetstream.JetStream) ([]Backlog, error) {
	s, err := js.Stream(ctx, StreamPapers)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("stream %s: %w", StreamPapers, err)
	}
	var out []Backlog
	lister := s.ListConsumers(ctx)
	for info := range lister.Info() {
		out = append(out, Backlog{Consumer: info.Name, Description: info.Config.Description,
			Pending: info.NumPending, AckPending: info.NumAckPending, Redelivered: info.NumRedelivered})
	}
	if err := lister.Err(); err != nil {
		return nil, fmt.Errorf("list consumers: %w", err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Consumer > out[j].Consumer })
	return out, nil
}
