package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
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
	// subjectClaimsWC are the subjects of the claims a withdrawal of a dead letter publishes
	// (papers.dead.<consumer>.withdrawn, see claimSubject): in the dead-letter stream, whose
	// duplicate window they use, and not dead letters.
	subjectClaimsWC = SubjectDead + ".*." + claimToken
)

// TopologyConfig sets the streams' and consumers' limits. Setup applies every field when it
// creates a stream or a consumer. On one that exists, Replicas is never applied (an operator's
// `nats stream edit --replicas` stays), and a zero field leaves the existing value alone; a set
// DuplicateWindow or MaxAckPending is applied, and so are a longer AckWait and a higher
// MaxDeliver, while a shorter or lower one is announced and set once the running workers
// follow it (see setAckWait, setMaxDeliver).
type TopologyConfig struct {
	// Replicas of both streams when Setup creates them. Defaults to 1; use 3 on a JetStream
	// cluster.
	Replicas int
	// DuplicateWindow is how long the server remembers message ids to drop repeats.
	// Defaults to 1 hour, or a server's lower limit (max_duplicate_window) when Setup creates
	// the streams.
	DuplicateWindow time.Duration
	// AckWait is how long a delivered message may stay unacknowledged before redelivery; workers
	// extend it with InProgress during long calls, and follow the consumer's while they run
	// (see Worker.Run). Defaults to 60 seconds.
	AckWait time.Duration
	// MaxDeliver is how many times a message is delivered before it is dead-lettered.
	// Defaults to 8.
	MaxDeliver int
	// MaxAckPending bounds the messages delivered and not yet acknowledged per consumer, across
	// all workers. Defaults to DefaultMaxAckPending, or the lower limit of the server, the
	// account or the stream that refuses it when Setup creates a consumer.
	MaxAckPending int
	// KeepConsumer leaves an existing consumer's AckWait, MaxDeliver and MaxAckPending as they
	// are: they apply only to a consumer Setup creates. For processes that run no worker of it
	// (ingest, status, serve…): the workers' processes set them, and a command run from a
	// shell without the workers' settings would set the consumer back to the defaults.
	KeepConsumer bool
	// Archive names the archive (database and schema) whose workers take PAPERS' new papers:
	// set by the processes that run such workers on a NATS server of their own choosing
	// (NATS_URL), "" by the others. The first such process records it in the stream's metadata
	// (MetaArchive), and Setup refuses a process of another archive with ErrOtherArchive: on
	// one stream and one consumer its workers would take the first archive's papers and store
	// them in theirs (see checkArchive).
	Archive string
}

// MetaArchive is the key of PAPERS' metadata that names the archive whose workers take its new
// papers (TopologyConfig.Archive).
const MetaArchive = "paperpipe.archive"

// ErrOtherArchive is wrapped by Setup's error when PAPERS is another archive's.
var ErrOtherArchive = errors.New("the queue is another archive's")

// DefaultMaxAckPending is a consumer's MaxAckPending unless set: no more messages than this are
// in the workers' hands at once, so no worker can have more TL;DR requests in flight, nor pull
// more in one batch.
const DefaultMaxAckPending = 4096

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
		c.MaxAckPending = DefaultMaxAckPending
	}
}

// Setup creates the PAPERS and PAPERS_DLQ streams and the durable pull consumer for new papers
// when they are missing. It is idempotent: every process calls it at start. A stream or
// consumer that exists keeps what an operator may have set — replicas, age and size limits,
// placement, other consumer settings —, and Setup changes only what paperpipe owns: the
// streams' subjects (its own are added if missing), PAPERS' discard policy (see below) and the
// fields of cfg that are set (see TopologyConfig). A stream whose retention is not paperpipe's
// (PAPERS a work queue, PAPERS_DLQ limits) is an error: the server cannot change it, and the
// workers depend on it.
//
// PAPERS discards new messages when it is full (DiscardNew), an existing stream included: at
// a limit an operator set (`nats stream edit PAPERS --max-bytes`, --max-msgs) the server then
// refuses what is published, which the publisher reports, instead of deleting the oldest
// papers waiting for the workers (JetStream's default, DiscardOld), which nobody would be told
// about. PAPERS_DLQ keeps the default: at its limits the oldest dead letters go.
//
// On a JetStream cluster without a majority of its servers up and in touch, which elects no
// leader, the error says so (see explainNoLeader).
func Setup(ctx context.Context, js jetstream.JetStream, cfg TopologyConfig) error {
	return explainNoLeader(setup(ctx, js, cfg))
}

func setup(ctx context.Context, js jetstream.JetStream, cfg TopologyConfig) error {
	set := cfg
	cfg.setDefaults()
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamPapers,
		Description: "paper abstracts waiting for a TL;DR and an embedding",
		Subjects:    []string{SubjectNew, SubjectReprocess + ".>"},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.WorkQueuePolicy,
		Discard:     jetstream.DiscardNew,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
		MaxMsgSize:  4 << 20,
	}, set.DuplicateWindow); err != nil {
		return explainNoResponders(ctx, js, err)
	}
	if err := checkArchive(ctx, js, cfg.Archive); err != nil {
		return err
	}
	if err := ensureStream(ctx, js, jetstream.StreamConfig{
		Name:        StreamDead,
		Description: "messages that could not be processed, with the reason in their headers",
		Subjects:    []string{subjectDeadWC},
		Storage:     jetstream.FileStorage,
		Retention:   jetstream.LimitsPolicy,
		Replicas:    cfg.Replicas,
		Duplicates:  cfg.DuplicateWindow,
	}, set.DuplicateWindow); err != nil {
		return err
	}
	return ensureConsumer(ctx, js, set, ConsumerNew, SubjectNew, "workers processing new papers", nil)
}

// checkArchive records archive in PAPERS' metadata (MetaArchive) when the stream records none,
// and refuses another archive's process with ErrOtherArchive: processes of two databases
// sharing one NATS server (or account) share its PAPERS stream and its consumer, so the
// workers of each took the other's new papers and stored them in their own database, where
// the other archive never got them. "" checks nothing.
func checkArchive(ctx context.Context, js jetstream.JetStream, archive string) error {
	if archive == "" {
		return nil
	}
	s, err := js.Stream(ctx, StreamPapers)
	if err != nil {
		return fmt.Errorf("stream %s: %w", StreamPapers, err)
	}
	cfg := s.CachedInfo().Config
	recorded, ok := cfg.Metadata[MetaArchive]
	if !ok {
		cfg.Metadata = maps.Clone(cfg.Metadata)
		if cfg.Metadata == nil {
			cfg.Metadata = map[string]string{}
		}
		cfg.Metadata[MetaArchive] = archive
		if _, err := js.UpdateStream(ctx, cfg); err != nil {
			return fmt.Errorf("update stream %s: record its archive: %w", StreamPapers, err)
		}
		return nil
	}
	if recorded != archive {
		return fmt.Errorf("%w: the NATS server's stream %s takes the new papers of %s, and DATABASE_URL names %s: "+
			"a worker here would take that archive's new papers and store them in this database, where that archive never gets them. "+
			"Give this database a NATS server, or a NATS account, of its own (streams are per account: a user of another account in "+
			"NATS_URL), or, if it is now that archive's home (restored or renamed), record it: "+
			"nats stream edit %s --metadata '%s=%s'", ErrOtherArchive, StreamPapers, recorded, archive, StreamPapers, MetaArchive, archive)
	}
	return nil
}

// jsClusterNotAvailable is the JetStream API's error code for "JetStream system temporarily
// unavailable": a cluster without a meta leader.
const jsClusterNotAvailable = 10008

// explainNoLeader says what err means when JetStream did not answer, or answered that it is
// unavailable: on a cluster, fewer than a majority of the servers (2 of 3) of the cluster, or
// of a stream's replicas, are up and in touch, so there is no leader to answer — the error
// alone ("context deadline exceeded", "JetStream system temporarily unavailable") said
// neither why nor that it passes once they are back.
func explainNoLeader(err error) error {
	var apiErr *jetstream.APIError
	switch {
	case errors.As(err, &apiErr) && apiErr.ErrorCode == jsClusterNotAvailable:
		return fmt.Errorf("%w: the JetStream cluster has no leader: fewer than a majority of its servers (2 of 3, 3 of 5) are up and in touch; "+
			"the queue is back once they are", err)
	case errors.Is(err, context.DeadlineExceeded):
		return fmt.Errorf("%w: JetStream did not answer in time; on a cluster, a stream has no leader while fewer than a majority of "+
			"its replicas' servers (2 of 3, 3 of 5) are up and in touch, and is back once they are", err)
	}
	return err
}

// explainNoResponders says what err, the first JetStream request's failure, means when it is
// "no responders": most often a NATS server that runs without JetStream (a bare `nats-server`,
// `docker run nats`: JetStream is off unless -js is given), which one account-info request
// tells apart from the rest (a JetStream domain or an import the account lacks, a server
// restarting). The error then wraps jetstream.ErrJetStreamNotEnabled (or
// ErrJetStreamNotEnabledForAccount) and says how to enable it; otherwise it is err.
func explainNoResponders(ctx context.Context, js jetstream.JetStream, err error) error {
	if !errors.Is(err, nats.ErrNoResponders) {
		return err
	}
	_, aerr := js.AccountInfo(ctx)
	switch {
	case errors.Is(aerr, jetstream.ErrJetStreamNotEnabledForAccount):
		return fmt.Errorf("%w: the NATS server runs JetStream, but not for the account paperpipe connects as: "+
			"enable it in that account's block of the server's configuration (jetstream: enabled)", aerr)
	case errors.Is(aerr, jetstream.ErrJetStreamNotEnabled):
		return fmt.Errorf("%w: the NATS server runs without JetStream, which paperpipe's queue needs "+
			"(its API has no responders): start the server with -js (`nats-server -js`, `docker run nats -js`) "+
			"or add a `jetstream {}` block to its configuration", aerr)
	}
	return err
}

// ensureStream creates the stream of want when it is missing. When it exists, it adds want's
// subjects the stream lacks, sets the duplicate window when dupWindow is set and the discard
// policy when want's is DiscardNew, and leaves the rest of the stream's configuration as it
// is; it updates the stream only when that changes something.
func ensureStream(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, dupWindow time.Duration) error {
	s, err := js.Stream(ctx, want.Name)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		s, err = js.CreateStream(ctx, want)
		// The default window is a choice, not a need: under a server's lower limit the stream
		// takes the limit (repeats published further apart are queued, and cost a database
		// check each, no API call).
		if limit, ok := duplicateWindowLimit(err); ok && dupWindow <= 0 && limit < want.Duplicates {
			want.Duplicates = limit
			s, err = js.CreateStream(ctx, want)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) { // another process created it meanwhile
			s, err = js.Stream(ctx, want.Name)
		}
	}
	if err != nil {
		return fmt.Errorf("stream %s: %w", want.Name, explainMaxBytesRequired(explainOverlap(ctx, js, want, err)))
	}
	cfg := s.CachedInfo().Config
	if cfg.Retention != want.Retention {
		return fmt.Errorf("stream %s has the retention policy %s, paperpipe needs %s (the server cannot change it: "+
			"move its messages away, delete the stream and start paperpipe again)", want.Name, cfg.Retention, want.Retention)
	}
	changed := false
	for _, subj := range want.Subjects {
		if !slices.Contains(cfg.Subjects, subj) {
			cfg.Subjects = append(cfg.Subjects, subj)
			changed = true
		}
	}
	setIfGiven(&cfg.Duplicates, dupWindow, &changed)
	if want.Discard == jetstream.DiscardNew && cfg.Discard != jetstream.DiscardNew {
		cfg.Discard, changed = jetstream.DiscardNew, true
	}
	if !changed {
		return nil
	}
	if _, err := js.UpdateStream(ctx, cfg); err != nil {
		return fmt.Errorf("update stream %s: %w", want.Name, explainOverlap(ctx, js, want, err))
	}
	return nil
}

// jsStreamInvalidConfig is the JetStream API's error code for an invalid stream configuration,
// among which "duplicates window can not be larger then server limit of D".
const jsStreamInvalidConfig = 10052

// duplicateWindowLimit returns the server's limit on a stream's duplicate window (its
// `jetstream { limits { max_duplicate_window } }`) that err, a stream's creation's, says the
// window exceeds; false for another error. Without it, a server limiting the window below
// paperpipe's hour, which no setting changes, refused every process at start.
func duplicateWindowLimit(err error) (time.Duration, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamInvalidConfig {
		return 0, false
	}
	_, after, ok := strings.Cut(apiErr.Description, "duplicates window can not be larger then server limit of ")
	if !ok {
		return 0, false
	}
	d, perr := time.ParseDuration(strings.TrimSpace(after))
	if perr != nil || d <= 0 {
		return 0, false
	}
	return d, true
}

// jsStreamMaxBytesRequired is the JetStream API's error code for "account requires a stream
// config to have max bytes set".
const jsStreamMaxBytesRequired = 10113

// explainMaxBytesRequired says what err means when the account requires a byte limit on every
// stream (max_bytes_required, as hosted NATS accounts often do), which paperpipe's streams are
// made without: how to make them with one, which paperpipe then keeps. Otherwise it is err.
func explainMaxBytesRequired(err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamMaxBytesRequired {
		return err
	}
	return fmt.Errorf("%w: the NATS account paperpipe connects as requires a byte limit on every stream, which paperpipe does not choose for you; "+
		"make its two streams once with the limits you give them (within the account's storage), and every process keeps them: "+
		"nats stream add %s --subjects '%s,%s.>' --retention work --discard new --dupe-window 1h --max-bytes 1GB --defaults; "+
		"nats stream add %s --subjects '%s' --dupe-window 1h --max-bytes 100MB --defaults "+
		"(add --replicas 3 to both on a JetStream cluster)",
		err, StreamPapers, SubjectNew, SubjectReprocess, StreamDead, subjectDeadWC)
}

// jsStreamSubjectOverlap is the JetStream API's error code for "subjects overlap with an
// existing stream".
const jsStreamSubjectOverlap = 10065

// explainOverlap says what err means when JetStream refused want's subjects as another
// stream's: on a NATS server (or account) shared with another application, a stream of its
// takes subjects of paperpipe's (papers.>, say), and JetStream gives a subject to one stream
// only. The error then names that stream, its subjects and the ways out; otherwise it is err.
func explainOverlap(ctx context.Context, js jetstream.JetStream, want jetstream.StreamConfig, err error) error {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsStreamSubjectOverlap {
		return err
	}
	var others []string
	for _, subj := range want.Subjects {
		l := js.ListStreams(ctx, jetstream.WithStreamListSubject(subj))
		for info := range l.Info() {
			if info.Config.Name == want.Name {
				continue
			}
			o := fmt.Sprintf("%s (subjects %s)", info.Config.Name, strings.Join(info.Config.Subjects, ", "))
			if !slices.Contains(others, o) {
				others = append(others, o)
			}
		}
	}
	if len(others) == 0 {
		return err
	}
	return fmt.Errorf("%w: the subjects paperpipe's stream %s needs (%s) are taken by another stream of this NATS account: %s; "+
		"JetStream gives a subject to one stream only. Give paperpipe a NATS account of its own (streams and subjects are per account: "+
		"a user of that account in NATS_URL), or take paperpipe's subjects out of that stream",
		err, want.Name, strings.Join(want.Subjects, ", "), strings.Join(others, ", "))
}

// ensureConsumer creates the durable consumer name on subject when it is missing. When it
// exists, it sets its filter subject and, unless set.KeepConsumer, the fields of set that are
// set (AckWait, MaxDeliver, MaxAckPending), and leaves the rest of its configuration as it is;
// it updates the consumer only when that changes something.
func ensureConsumer(ctx context.Context, js jetstream.JetStream, set TopologyConfig, name, subject, desc string, meta map[string]string) error {
	cfg := set
	cfg.setDefaults()
	c, err := js.Consumer(ctx, StreamPapers, name)
	if errors.Is(err, jetstream.ErrConsumerNotFound) {
		cc := jetstream.ConsumerConfig{
			Durable:       name,
			Description:   desc,
			FilterSubject: subject,
			AckPolicy:     jetstream.AckExplicitPolicy,
			AckWait:       cfg.AckWait,
			MaxDeliver:    cfg.MaxDeliver,
			MaxAckPending: cfg.MaxAckPending,
			DeliverPolicy: jetstream.DeliverAllPolicy,
			Metadata:      meta,
		}
		c, err = js.CreateConsumer(ctx, StreamPapers, cc)
		// DefaultMaxAckPending is a bound, not a need: under a lower limit of the server, the
		// account or the stream (each refuses in turn), the consumer takes the limit.
		for try := 0; try < 3 && set.MaxAckPending <= 0; try++ {
			limit, ok := maxAckPendingLimit(err)
			if !ok || limit >= cc.MaxAckPending {
				break
			}
			cc.MaxAckPending = limit
			c, err = js.CreateConsumer(ctx, StreamPapers, cc)
		}
		if err == nil {
			return nil
		}
		if errors.Is(err, jetstream.ErrConsumerExists) { // another process created it meanwhile
			c, err = js.Consumer(ctx, StreamPapers, name)
		}
	}
	if err != nil {
		return fmt.Errorf("consumer %s: %w", name, err)
	}
	info := c.CachedInfo()
	cc := info.Config
	changed := false
	if !set.KeepConsumer {
		// MaxDeliver first: its announcement is dated by the AckWait the workers follow now.
		setMaxDeliver(&cc, set.MaxDeliver, serverTime(info), &changed)
		setAckWait(&cc, set.AckWait, serverTime(info), &changed)
		setIfGiven(&cc.MaxAckPending, set.MaxAckPending, &changed)
	}
	if cc.FilterSubject != subject || len(cc.FilterSubjects) > 0 {
		cc.FilterSubject, cc.FilterSubjects, changed = subject, nil, true
	}
	for k, v := range meta {
		if cur, ok := cc.Metadata[k]; !ok || cur != v {
			cc.Metadata = maps.Clone(cc.Metadata)
			if cc.Metadata == nil {
				cc.Metadata = map[string]string{}
			}
			cc.Metadata[k], changed = v, true
		}
	}
	if !changed {
		return nil
	}
	if _, err := js.UpdateConsumer(ctx, StreamPapers, cc); err != nil {
		return fmt.Errorf("update consumer %s: %w", name, err)
	}
	return nil
}

// jsConsumerMaxPendingAckExcess is the JetStream API's error code for "consumer max ack
// pending exceeds system limit of N".
const jsConsumerMaxPendingAckExcess = 10121

// maxAckPendingLimit returns the limit err, a consumer's creation's, says its MaxAckPending
// exceeds: a server's (`jetstream { limits { max_ack_pending } }`), an account's or the
// stream's consumer limits; false for another error. Without it, a server or account limiting
// consumers below DefaultMaxAckPending, which no setting changes, refused every process at
// start.
func maxAckPendingLimit(err error) (int, bool) {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) || apiErr.ErrorCode != jsConsumerMaxPendingAckExcess {
		return 0, false
	}
	i := strings.LastIndexByte(apiErr.Description, ' ')
	n, perr := strconv.Atoi(apiErr.Description[i+1:])
	if perr != nil || n <= 0 {
		return 0, false
	}
	return n, true
}

// Consumer metadata keys of an AckWait or a MaxDeliver being lowered (see setAckWait,
// setMaxDeliver): the new value, and when (the server's time, RFC 3339) it may be set.
const (
	metaAckWait      = "paperpipe_ack_wait"
	metaAckWaitAt    = "paperpipe_ack_wait_at"
	metaMaxDeliver   = "paperpipe_max_deliver"
	metaMaxDeliverAt = "paperpipe_max_deliver_at"
)

// setAckWait sets the consumer's AckWait to want when want is given. A longer AckWait is set
// at once. A shorter one is not: the workers running hold their messages by the AckWait they
// follow (renewing every quarter of it, working up to half of it), and the server would deliver
// their messages to other workers as soon as it counted the shorter one. It is announced
// instead, in the consumer's metadata, with the time it may be set: now plus the current
// AckWait. Workers follow the announced AckWait at once (within a quarter of the current one,
// see consumerAckWait and Worker.follow), the work they started by the longer one is over by
// then, and a worker sets it when that time has come (lowerWhenDue).
func setAckWait(cc *jetstream.ConsumerConfig, want time.Duration, now time.Time, changed *bool) {
	if want <= 0 {
		return
	}
	pending, _ := pendingAckWait(*cc)
	switch {
	case want >= cc.AckWait:
		if want > cc.AckWait {
			cc.AckWait, *changed = want, true
		}
		withdraw(cc, metaAckWait, metaAckWaitAt, changed)
	case want != pending:
		announce(cc, metaAckWait, metaAckWaitAt, want.String(), now.Add(cc.AckWait), changed)
	}
}

// setMaxDeliver sets the consumer's MaxDeliver to want when want is given. A higher one is set
// at once. A lower one is not: a running worker that has not read it yet takes a message's
// real last delivery for one that is not, and hands the message back (a shutdown, a pause, a
// slow database) with a Nak where it would requeue it — and the server, counting the lower
// one, gives the message up and it is dead-lettered for a cause that was not its own. It is
// announced instead, as a shorter AckWait is (setAckWait): the workers follow it within a
// quarter of the AckWait (consumerMaxDeliver), and a worker sets it one AckWait later
// (lowerWhenDue). A consumer without a limit (MaxDeliver -1, an operator's) counts as the
// highest.
func setMaxDeliver(cc *jetstream.ConsumerConfig, want int, now time.Time, changed *bool) {
	if want <= 0 {
		return
	}
	pending, _ := pendingMaxDeliver(*cc)
	switch {
	case cc.MaxDeliver > 0 && want >= cc.MaxDeliver:
		if want > cc.MaxDeliver {
			cc.MaxDeliver, *changed = want, true
		}
		withdraw(cc, metaMaxDeliver, metaMaxDeliverAt, changed)
	case want != pending:
		announce(cc, metaMaxDeliver, metaMaxDeliverAt, strconv.Itoa(want), now.Add(cc.AckWait), changed)
	}
}

// announce writes in cc's metadata the value of a setting being lowered under key, and when it
// may be set under atKey.
func announce(cc *jetstream.ConsumerConfig, key, atKey, value string, at time.Time, changed *bool) {
	cc.Metadata = maps.Clone(cc.Metadata)
	if cc.Metadata == nil {
		cc.Metadata = map[string]string{}
	}
	cc.Metadata[key] = value
	cc.Metadata[atKey] = at.UTC().Format(time.RFC3339Nano)
	*changed = true
}

// withdraw removes the announcement under key and atKey from cc's metadata, if any.
func withdraw(cc *jetstream.ConsumerConfig, key, atKey string, changed *bool) {
	_, ok := cc.Metadata[key]
	_, okAt := cc.Metadata[atKey]
	if !ok && !okAt {
		return
	}
	cc.Metadata = maps.Clone(cc.Metadata)
	delete(cc.Metadata, key)
	delete(cc.Metadata, atKey)
	*changed = true
}

// announcedAt returns when the setting announced under atKey may be set; false when the time
// is missing or unreadable.
func announcedAt(cc jetstream.ConsumerConfig, atKey string) (time.Time, bool) {
	at, err := time.Parse(time.RFC3339Nano, cc.Metadata[atKey])
	return at, err == nil
}

// pendingAckWait returns the shorter AckWait announced in cc's metadata and when it may be set;
// zero when none is (or it is not shorter than cc's).
func pendingAckWait(cc jetstream.ConsumerConfig) (time.Duration, time.Time) {
	d, err := time.ParseDuration(cc.Metadata[metaAckWait])
	if err != nil || d <= 0 || d >= cc.AckWait {
		return 0, time.Time{}
	}
	at, ok := announcedAt(cc, metaAckWaitAt)
	if !ok {
		return 0, time.Time{}
	}
	return d, at
}

// pendingMaxDeliver returns the lower MaxDeliver announced in cc's metadata and when it may be
// set; zero when none is (or it is not lower than cc's).
func pendingMaxDeliver(cc jetstream.ConsumerConfig) (int, time.Time) {
	n, err := strconv.Atoi(cc.Metadata[metaMaxDeliver])
	if err != nil || n <= 0 || cc.MaxDeliver > 0 && n >= cc.MaxDeliver {
		return 0, time.Time{}
	}
	at, ok := announcedAt(cc, metaMaxDeliverAt)
	if !ok {
		return 0, time.Time{}
	}
	return n, at
}

// consumerAckWait is the AckWait workers of cc hold their messages by: its AckWait, or the
// shorter one announced to replace it (see setAckWait).
func consumerAckWait(cc jetstream.ConsumerConfig) time.Duration {
	if d, _ := pendingAckWait(cc); d > 0 {
		return d
	}
	return cc.AckWait
}

// consumerMaxDeliver is the MaxDeliver workers of cc count a message's last delivery by: its
// MaxDeliver, or the lower one announced to replace it (see setMaxDeliver).
func consumerMaxDeliver(cc jetstream.ConsumerConfig) int {
	if n, _ := pendingMaxDeliver(cc); n > 0 {
		return n
	}
	return cc.MaxDeliver
}

// lowerWhenDue sets the shorter AckWait and the lower MaxDeliver announced in info's metadata
// (see setAckWait, setMaxDeliver) once their time has come by the server's clock, and reports
// which it set. The consumer is updated from info's configuration: another process's change
// made meanwhile would be undone, but every paperpipe process changes only the AckWait and
// MaxDeliver, from its settings, at start.
func lowerWhenDue(ctx context.Context, js jetstream.JetStream, info *jetstream.ConsumerInfo) (ackWait, maxDeliver bool, err error) {
	now := serverTime(info)
	cc := info.Config
	changed := false
	if d, at := pendingAckWait(cc); d > 0 && !now.Before(at) {
		cc.AckWait, ackWait = d, true
		withdraw(&cc, metaAckWait, metaAckWaitAt, &changed)
	}
	if n, at := pendingMaxDeliver(cc); n > 0 && !now.Before(at) {
		cc.MaxDeliver, maxDeliver = n, true
		withdraw(&cc, metaMaxDeliver, metaMaxDeliverAt, &changed)
	}
	if !changed {
		return false, false, nil
	}
	if _, err := js.UpdateConsumer(ctx, info.Stream, cc); err != nil {
		return false, false, fmt.Errorf("update consumer %s: %w", info.Name, err)
	}
	return ackWait, maxDeliver, nil
}

// serverTime is when the server gathered info, or now by the local clock for a server that
// does not say.
func serverTime(info *jetstream.ConsumerInfo) time.Time {
	if info.TimeStamp.IsZero() {
		return time.Now()
	}
	return info.TimeStamp
}

// setIfGiven sets *field to v when v is given (above zero) and differs, and then reports the
// change in changed.
func setIfGiven[T int | time.Duration](field *T, v T, changed *bool) {
	if v > 0 && *field != v {
		*field, *changed = v, true
	}
}

// ReprocessTarget is the subject and durable consumer of re-processing runs for one target.
type ReprocessTarget struct {
	Key      string // short stable hash of the target
	Subject  string // papers.reprocess.<key>
	Consumer string // reprocess-<key>
	// SpaceID is the id of the target's embedding space, 0 when the runs embed nothing. The
	// key hashes the space's name, which a later space may have again; the consumer records
	// the id (MetaSpaceID), so that the queue of a space dropped by id is found by it.
	SpaceID int64
}

// MetaSpaceID is the consumer metadata key under which a re-processing target's consumer
// records the id of its embedding space (ReprocessTarget.SpaceID, in decimal).
const MetaSpaceID = "paperpipe_space_id"

// ReprocessSpaceID returns the id of the embedding space a re-processing consumer records
// (MetaSpaceID); false for one that records none (made before consumers recorded it, or of a
// target that embeds nothing).
func ReprocessSpaceID(cc jetstream.ConsumerConfig) (int64, bool) {
	id, err := strconv.ParseInt(cc.Metadata[MetaSpaceID], 10, 64)
	return id, err == nil && id > 0
}

// NewReprocessTarget names the subject and consumer of re-processing for w, where space is the
// target embedding space's name and w.Model/w.PromptVersion the TL;DR target ("" when the run
// does not regenerate TL;DRs).
func NewReprocessTarget(w paper.Work, space string) ReprocessTarget {
	sum := sha256.Sum256([]byte(w.Model + "\x00" + w.PromptVersion + "\x00" + space))
	key := hex.EncodeToString(sum[:6])
	return ReprocessTarget{Key: key, Subject: SubjectReprocess + "." + key, Consumer: "reprocess-" + key, SpaceID: w.SpaceID}
}

// EnsureReprocessConsumer creates (idempotently) the durable consumer of a re-processing target;
// one that exists is updated as Setup updates the consumer of new papers, and records the
// target's space id (MetaSpaceID) when it has one: a space of the same name made after one
// dropped with its queue left takes the queue over.
func EnsureReprocessConsumer(ctx context.Context, js jetstream.JetStream, cfg TopologyConfig, t ReprocessTarget, desc string) error {
	var meta map[string]string
	if t.SpaceID != 0 {
		meta = map[string]string{MetaSpaceID: strconv.FormatInt(t.SpaceID, 10)}
	}
	return ensureConsumer(ctx, js, cfg, t.Consumer, t.Subject, desc, meta)
}

// Backlog is the state of one consumer.
type Backlog struct {
	Consumer    string `json:"consumer"`
	Description string `json:"description"`
	Pending     uint64 `json:"pending"`     // not yet delivered
	AckPending  int    `json:"ack_pending"` // delivered, not yet acknowledged
	Redelivered int    `json:"redelivered"`
}

// Waiting counts the consumer's messages not yet acknowledged: those not delivered yet and
// those delivered — in a running worker's hands, or, when none runs (NoWorkerRunning, the
// only place it is counted), handed back by one that stopped, or held by one killed until its
// AckWait ends. (Left.Waiting, a reprocess run's, leaves the delivered ones out.)
func (b Backlog) Waiting() uint64 { return b.Pending + uint64(b.AckPending) }

// NoWorkerRunning reports whether b's messages wait with none of its consumer's workers
// announced (workers of them): `paperpipe status` and the status page say so. A reprocess
// consumer of a dropped space (dropped) is no such backlog: no worker could process it.
func (b Backlog) NoWorkerRunning(workers int, dropped bool) bool {
	return workers == 0 && b.Waiting() > 0 && !dropped
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
