package pipeline

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// BucketWorkers is the NATS key-value bucket where each running worker announces itself, one
// key per worker (see Announce): what `status`, the status page and GET /api/status list.
const BucketWorkers = "paperpipe_workers"

// DefaultAnnounceInterval is how often a worker writes its announcement again when nothing
// changed. The bucket keeps an entry for three of them (its TTL, set by the process that
// creates it): a worker killed without a word disappears within 30 s, and is shown as last
// seen so long ago until then. A change of state (a pause, its end, idle, working) is written
// within a second.
const DefaultAnnounceInterval = 10 * time.Second

// workersBucketMaxBytes bounds the bucket: an announcement is about 1 KB, so this is room for
// thousands of workers, and a runaway writer cannot fill the account's storage.
const workersBucketMaxBytes = 8 << 20

// The states a worker announces.
const (
	StateWorking  = "working"  // it holds messages
	StateIdle     = "idle"     // it holds none, and waits for some
	StatePaused   = "paused"   // see Pause
	StateStopping = "stopping" // it was told to stop, and finishes what it holds
	// StateStalled: a write of its results or papers to the database failed and is retried,
	// or has gone unanswered for a few seconds (see stallAfter), and its Pause says why (reason
	// StallDatabase) — before the database's breaker opens, if it does (StatePaused).
	StateStalled = "stalled"
)

// The reasons of a pause (Pause.Reason).
const (
	PauseAPIRefused  = "api_refused"          // the API refuses the key, the quota or the configuration (llm.ErrAccount)
	PauseRateLimited = "rate_limited"         // the API's rate limit holds every request (a 429's Retry-After)
	PauseUnavailable = "api_unavailable"      // the API said it is unavailable for a while (a 503's Retry-After)
	PauseAPIDown     = "api_unreachable"      // the API cannot be reached, or not over TLS (llm.ErrUnreachable, llm.ErrTLS)
	PauseAPIFailing  = "api_failing"          // the API fails every request (llm.ErrServerFailing)
	PauseDatabase    = "database_unreachable" // the database cannot be reached or cannot write (paper.ErrUnavailable)
	// StallDatabase is the reason of a stalled worker (StateStalled), not of a pause: its
	// writes wait for the database, which has not failed long enough to pause it.
	StallDatabase = "database_waiting"
)

// Pause is why a worker takes no work, and until when.
type Pause struct {
	Reason string `json:"reason"`
	// Detail is the answer that caused it (the API's, the database's), without the key or
	// the password; "" for a rate limit.
	Detail string `json:"detail,omitempty"`
	// Until is when the worker tries again (a rate limit: when the API said it lifts); zero
	// while it tries one message at a time after a pause, until one goes through.
	Until time.Time `json:"until,omitzero"`
}

// Text says the pause in words, with its end relative to now.
func (p Pause) Text(now time.Time) string {
	what := map[string]string{
		PauseAPIRefused:  "the API refuses the key, the quota or the configuration",
		PauseRateLimited: "rate limited by the API",
		PauseUnavailable: "the API says it is unavailable",
		PauseAPIDown:     "the API cannot be reached",
		PauseAPIFailing:  "the API fails every request",
		PauseDatabase:    "the database cannot be reached or cannot write",
		StallDatabase:    "waiting for the database: a write failed and is retried, or has no answer yet",
	}[p.Reason]
	if what == "" {
		what = p.Reason
	}
	if p.Reason == StallDatabase {
		return what
	}
	if p.Until.IsZero() {
		return what + "; trying one message at a time"
	}
	until := p.Until.UTC().Format("2006-01-02 15:04:05 UTC")
	if !p.Until.After(now) { // an entry not refreshed since (see AnnouncedWorker.Overdue)
		return what + " until " + until
	}
	return fmt.Sprintf("%s until %s (in %s)", what, until, p.Until.Sub(now).Round(time.Second))
}

// WorkerState is what a worker is doing at a moment.
type WorkerState struct {
	State string // StateWorking, StateIdle, StatePaused, StateStalled or StateStopping
	Pause *Pause // set when State is StatePaused or StateStalled
	Held  int    // messages held: fetched and not yet settled
}

// State reports what the worker is doing now: stopping once told to stop, whatever holds it
// (a drain held by the API's rate limit read as paused, a worker that would go on once the
// limit lifted); else paused while a pause of its own runs or its breakers are open (see
// pauses) — the database's first, which stops every message —, or while the API holds every
// request (WorkerConfig.APILimitedBy); else stalled while a write to the database is retried
// or unanswered (see stalls); else working or idle.
func (w *Worker) State() WorkerState {
	var s WorkerState
	s.Held = int(w.held.Load())
	if w.stopping.Load() {
		s.State = StateStopping
		return s
	}
	now := time.Now()
	if p := &w.pause; p.active.Load() {
		p.mu.Lock()
		var b *breaker
		switch {
		case p.db.n > 0:
			b = &p.db
		case p.api.n > 0:
			b = &p.api
		}
		if b != nil {
			reason, _ := pauseCause(b.cause, 0)
			ps := &Pause{Reason: reason, Detail: pauseDetail(b.cause)}
			if b.until.After(now) {
				ps.Until = b.until
			}
			s.State, s.Pause = StatePaused, ps
		}
		p.mu.Unlock()
		if s.Pause != nil {
			return s
		}
	}
	if f := w.cfg.APILimitedBy; f != nil {
		if until, unavailable := f(); until.After(now) {
			reason := PauseRateLimited
			if unavailable {
				reason = PauseUnavailable
			}
			s.State, s.Pause = StatePaused, &Pause{Reason: reason, Until: until}
			return s
		}
	}
	if p := w.stalls.stalled(now); p != nil {
		s.State, s.Pause = StateStalled, p
		return s
	}
	switch {
	case s.Held > 0:
		s.State = StateWorking
	default:
		s.State = StateIdle
	}
	return s
}

// maxPauseDetail bounds Pause.Detail: an API's answer may carry a long body.
const maxPauseDetail = 400

func pauseDetail(cause error) string {
	if cause == nil {
		return ""
	}
	// One line: the status command prints it as one. The errors of a join (a TL;DR's and an
	// embedding's, each failing on its own) are told apart by a semicolon: joined by the
	// newline of errors.Join made a space, and the second read as the end of the first's
	// sentence (`… connection refused embedding: embed papers …`, found in session 29, walking a
	// lab's journey).
	text := cause.Error()
	if j, ok := cause.(interface{ Unwrap() []error }); ok {
		// errors.Join's, whose text is its errors' a line each; not fmt.Errorf's of several
		// %w, which has its own text.
		var parts []string
		for _, e := range j.Unwrap() {
			if e != nil {
				parts = append(parts, e.Error())
			}
		}
		if strings.Join(parts, "\n") == text {
			text = strings.Join(parts, "; ")
		}
	}
	d := strings.Join(strings.Fields(text), " ")
	if len(d) > maxPauseDetail {
		d = strings.ToValidUTF8(d[:maxPauseDetail], "") + "…"
	}
	return d
}

// Announcement is one worker's entry in BucketWorkers.
type Announcement struct {
	Host        string    `json:"host"`
	PID         int       `json:"pid"`
	Started     time.Time `json:"started"`
	Consumer    string    `json:"consumer"`
	Target      string    `json:"target"`      // what it writes: the TL;DR model and prompt, the embedding space
	Concurrency int       `json:"concurrency"` // TL;DR slots; 0 for a worker that writes no TL;DRs (a reprocess run of a space)
	State       string    `json:"state"`
	Pause       *Pause    `json:"pause,omitempty"`
	Held        int       `json:"held"`      // messages held
	Processed   int64     `json:"processed"` // messages whose work is stored (acknowledged) since it started
	Version     string    `json:"version"`
	// Refresh is how often, in seconds, the worker writes its entry when nothing changes: an
	// entry not written for longer is a worker that stopped without a word or lost NATS.
	Refresh float64 `json:"refresh_seconds"`
}

// AnnounceConfig configures Announce.
type AnnounceConfig struct {
	// Interval is how often the entry is written when nothing changes. Defaults to
	// DefaultAnnounceInterval. A process that creates the bucket gives it a TTL of 3× it.
	Interval time.Duration
	// Target, Version: see Announcement. Host defaults to os.Hostname, PID to os.Getpid.
	Target, Version, Host string
	PID                   int
	// Replicas of the bucket when this process creates it and cannot read the queue's stream
	// (PAPERS), whose replicas it takes otherwise. Defaults to 1.
	Replicas int
	// Logger receives the warning that the worker cannot announce itself. Defaults to the
	// worker's (WorkerConfig.Logger).
	Logger *slog.Logger
}

// Announcer keeps a worker's entry in BucketWorkers; Stop removes it.
type Announcer struct {
	js     jetstream.JetStream
	w      *Worker
	cfg    AnnounceConfig
	key    string
	a      Announcement
	cancel context.CancelFunc
	done   chan struct{}

	// kv is nil until the bucket is found or made. Only run's goroutine uses it, and Stop once
	// that goroutine has ended (done closed).
	kv jetstream.KeyValue
}

// keyUnsafe is what a key of the bucket may not hold (NATS keys: letters, digits, - _ = /).
var keyUnsafe = regexp.MustCompile(`[^A-Za-z0-9_=-]+`)

// Announce starts announcing w in BucketWorkers: its entry is written at once, on each change
// of its state (looked at every second, or every half Interval when shorter) and every
// Interval, until Stop, which removes it. It never fails the worker: a bucket that cannot be
// made or written (an account that may not create streams or write to it, a server without
// JetStream storage left) is warned about once, and tried again every Interval; a bucket
// deleted meanwhile (a NATS server that lost its store) is made again. Announce's context is
// its own: the entry outlives the Run's context while the worker drains, so the caller stops
// it once Run has returned.
func Announce(js jetstream.JetStream, w *Worker, cfg AnnounceConfig) *Announcer {
	if cfg.Interval <= 0 {
		cfg.Interval = DefaultAnnounceInterval
	}
	if cfg.Host == "" {
		cfg.Host, _ = os.Hostname()
	}
	if cfg.PID == 0 {
		cfg.PID = os.Getpid()
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Logger == nil {
		cfg.Logger = w.log
	}
	started := time.Now().UTC()
	slots := w.cfg.Concurrency
	if w.sum == nil {
		slots = 0
	}
	an := &Announcer{js: js, w: w, cfg: cfg, done: make(chan struct{}),
		// Unique per run: a process restarted with the same pid (a container) is a new entry.
		key: fmt.Sprintf("%s.%s.%d.%d", keyPart(w.cfg.Consumer), keyPart(cfg.Host), cfg.PID, started.UnixNano()),
		a: Announcement{Host: cfg.Host, PID: cfg.PID, Started: started, Consumer: w.cfg.Consumer, Target: cfg.Target,
			Concurrency: slots, Version: cfg.Version, Refresh: cfg.Interval.Seconds()}}
	ctx, cancel := context.WithCancel(context.Background())
	an.cancel = cancel
	go an.run(ctx)
	return an
}

func keyPart(s string) string {
	s = strings.Trim(keyUnsafe.ReplaceAllString(s, "_"), "_")
	if s == "" {
		return "_"
	}
	return s
}

// Stop stops announcing and removes the entry (within a few seconds: a NATS that does not
// answer leaves it to its TTL).
func (an *Announcer) Stop() {
	an.cancel()
	<-an.done
	kv := an.kv
	if kv == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	// A removal leaves a marker of the key (a Purge's as a Delete's, with a history of 1); the
	// bucket's TTL takes it with the entries, so none accumulates.
	if err := kv.Purge(ctx, an.key); err != nil {
		an.cfg.Logger.Debug("could not remove the worker's announcement; it expires by itself", "key", an.key, "err", err)
	}
}

// run writes the entry at once, then looks at the worker's state every second (every half
// Interval when shorter).
func (an *Announcer) run(ctx context.Context) {
	defer close(an.done)
	looks := time.NewTicker(min(time.Second, an.cfg.Interval/2))
	defer looks.Stop()
	var last WorkerState
	var written time.Time
	warned := false
	for {
		s := an.w.State()
		if written.IsZero() || time.Since(written) >= an.cfg.Interval || changed(last, s) {
			if err := an.write(ctx, s); err != nil {
				if ctx.Err() != nil {
					return
				}
				if !warned {
					an.cfg.Logger.Warn("this worker cannot announce itself in the NATS key-value bucket "+BucketWorkers+
						" (status and the status page will not list it; the worker goes on): "+explainAnnounce(err), "err", err)
					warned = true
				} else {
					an.cfg.Logger.Debug("announcing the worker failed", "err", err)
				}
				// Tried again at the next Interval, or at a change of state, not at each look: the
				// state tried is taken for the last, else every look took it for a change.
				written, last = time.Now(), s
			} else {
				if warned {
					an.cfg.Logger.Info("this worker announces itself in the NATS key-value bucket " + BucketWorkers + " again")
					warned = false
				}
				written, last = time.Now(), s
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-looks.C:
		}
	}
}

// changed reports whether the state worth writing at once changed: the state, the pause's
// reason or its end.
func changed(a, b WorkerState) bool {
	if a.State != b.State || (a.Pause == nil) != (b.Pause == nil) {
		return true
	}
	if a.Pause == nil {
		return false
	}
	return a.Pause.Reason != b.Pause.Reason || a.Pause.Until.Sub(b.Pause.Until).Abs() >= time.Second
}

func (an *Announcer) write(ctx context.Context, s WorkerState) error {
	ctx, cancel := context.WithTimeout(ctx, max(an.cfg.Interval, 5*time.Second))
	defer cancel()
	if an.kv == nil {
		kv, err := ensureWorkersBucket(ctx, an.js, an.cfg.Interval, an.cfg.Replicas)
		if err != nil {
			return err
		}
		an.kv = kv
	}
	kv := an.kv
	a := an.a
	a.State, a.Pause, a.Held, a.Processed = s.State, s.Pause, s.Held, an.w.stats.acked.Load()
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	if _, err := kv.Put(ctx, an.key, raw); err != nil {
		if errors.Is(err, jetstream.ErrNoStreamResponse) || errors.Is(err, nats.ErrNoResponders) || errors.Is(err, jetstream.ErrStreamNotFound) {
			// The bucket is gone (deleted, or a server that lost its store): made again next time.
			an.kv = nil
		}
		return &entryWriteError{key: an.key, size: len(raw), err: err}
	}
	return nil
}

// entryWriteError is the error of a write of a worker's entry to a bucket that exists (as opposed to
// one that could not be found or made).
type entryWriteError struct {
	key  string
	size int // the entry's, in bytes
	err  error
}

func (e *entryWriteError) Error() string { return fmt.Sprintf("write %s: %v", e.key, e.err) }
func (e *entryWriteError) Unwrap() error { return e.err }

// jsStoreFailed is the JetStream API's error code for a message the stream could not store:
// its description says why ("maximum bytes exceeded" at a full stream that discards new
// messages, as a bucket does).
const jsStoreFailed = 10077

// ensureWorkersBucket returns BucketWorkers, creating it when missing: history 1, a TTL of 3×
// interval, a byte limit (accounts may require one), file storage and replicas as the queue's
// (replicas, when PAPERS cannot be read). The process's own setting made an R1 bucket beside
// R3 streams on a cluster whose streams another process made, or an operator edited: the
// workers' list was lost with one server while the queue went on.
func ensureWorkersBucket(ctx context.Context, js jetstream.JetStream, interval time.Duration, replicas int) (jetstream.KeyValue, error) {
	kv, err := js.KeyValue(ctx, BucketWorkers)
	if !errors.Is(err, jetstream.ErrBucketNotFound) {
		return kv, err
	}
	if s, err := js.Stream(ctx, StreamPapers); err == nil && s.CachedInfo().Config.Replicas > 0 {
		replicas = s.CachedInfo().Config.Replicas
	}
	kv, err = js.CreateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      BucketWorkers,
		Description: "paperpipe workers announcing themselves (paperpipe status)",
		History:     1,
		TTL:         3 * interval,
		MaxBytes:    workersBucketMaxBytes,
		Storage:     jetstream.FileStorage,
		Replicas:    replicas,
	})
	if errors.Is(err, jetstream.ErrBucketExists) { // another process made it meanwhile, or with other limits
		return js.KeyValue(ctx, BucketWorkers)
	}
	return kv, err
}

// explainAnnounce says what an operator can do about err, a failure to make or write the bucket:
// advice that fits its cause. The advice to make the bucket by hand was given for every refusal,
// also by a bucket that exists: a full one, or one made by hand whose values are limited below an
// entry's size.
func explainAnnounce(err error) string {
	var (
		apiErr *jetstream.APIError
		we     *entryWriteError
	)
	isAPI := errors.As(err, &apiErr)
	written := errors.As(err, &we) // the bucket exists: its write failed
	unanswered := errors.Is(err, nats.ErrPermissionViolation) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout)
	switch {
	case written && isAPI && apiErr.ErrorCode == jetstream.JSErrCodeStreamMessageExceedsMaximum:
		return fmt.Sprintf("the bucket exists and refuses an entry of %d bytes, more than the largest value it takes "+
			"(made by hand with --max-value-size? `nats kv info %s` shows it): let the bucket take values of 16 KiB "+
			"(`nats stream edit KV_%s --max-msg-size 16KiB`), or delete it (`nats kv del %s`) for a worker to make it again", we.size, BucketWorkers, BucketWorkers, BucketWorkers)
	case written && isAPI && apiErr.ErrorCode == jsStoreFailed && strings.Contains(apiErr.Description, "maximum"):
		return fmt.Sprintf("the bucket exists and is full (%s): its entries are other clients' of the NATS account, "+
			"or it was made by hand with less room or without a TTL (`nats kv info %s`, `nats kv ls %s`); "+
			"`nats stream purge KV_%s` empties it, and the running workers write theirs again within their refresh", apiErr.Description, BucketWorkers, BucketWorkers, BucketWorkers)
	case written && unanswered:
		return fmt.Sprintf("the bucket exists and NATS did not acknowledge the write: if the NATS account may not publish to it, "+
			"allow the workers to publish to $KV.%s.>", BucketWorkers)
	case written:
		return "tried again every refresh"
	case isAPI || unanswered:
		return fmt.Sprintf("if the NATS account may not create streams, create the bucket once with "+
			"`nats kv add %s --history 1 --ttl 30s --max-bytes 8MiB` and allow the workers to publish to $KV.%s.> and $JS.API.STREAM.INFO.KV_%s", BucketWorkers, BucketWorkers, BucketWorkers)
	}
	return "tried again every refresh"
}

// AnnouncedWorker is an entry of BucketWorkers as read back.
type AnnouncedWorker struct {
	Announcement
	// LastSeen is when the entry was last written, by the NATS server's clock.
	LastSeen time.Time `json:"last_seen"`
}

// Overdue reports whether the entry is older, at now, than twice its worker's refresh: the
// worker stopped without a word (killed) or lost NATS, and its entry expires soon.
func (a AnnouncedWorker) Overdue(now time.Time) bool {
	return a.Refresh > 0 && now.Sub(a.LastSeen).Seconds() > 2*a.Refresh
}

// ErrNoWorkersBucket is AnnouncedWorkers' error when BucketWorkers does not exist: no worker
// of this version has run on the server, or none could make the bucket (an account that may
// not create streams), and so workers may run unannounced.
var ErrNoWorkersBucket = errors.New("no worker has made the bucket " + BucketWorkers)

// maxAnnouncementBytes bounds an entry AnnouncedWorkers lists. A worker's own is about 1 KB
// (its pause's detail is cut at maxPauseDetail); any client of the NATS account may write the
// bucket, a value up to the server's max_payload (1 MB by default), and a larger entry would be
// shown whole by every status page and `status`.
const maxAnnouncementBytes = 16 << 10

// MaxAnnouncementsRead bounds the entries of BucketWorkers that AnnouncedWorkers reads: the
// newest ones. Any client of the NATS account may write the bucket, and its 8 MiB held 36,840
// tiny entries, which every `status`, status page and GET /api/status read whole (0.6–1 s) and
// listed. A worker writes its entry at least every refresh (10 s), so the running workers are
// among the newest unless something writes the bucket faster than that.
const MaxAnnouncementsRead = 1000

// AnnouncedWorkers returns the workers announced in BucketWorkers, by consumer, host and
// start, read from its newest MaxAnnouncementsRead entries, and how many older entries were left
// unread (0 when it read them all); ErrNoWorkersBucket when the bucket does not exist. An entry
// that does not decode, or is larger than maxAnnouncementBytes, is left out.
func AnnouncedWorkers(ctx context.Context, js jetstream.JetStream) (_ []AnnouncedWorker, unread uint64, _ error) {
	kv, err := js.KeyValue(ctx, BucketWorkers)
	if errors.Is(err, jetstream.ErrBucketNotFound) {
		return nil, 0, ErrNoWorkersBucket
	}
	if err != nil {
		return nil, 0, fmt.Errorf("bucket %s: %w", BucketWorkers, err)
	}
	var opts []jetstream.WatchOpt
	status, err := kv.Status(ctx)
	if err != nil {
		return nil, 0, fmt.Errorf("read bucket %s: %w", BucketWorkers, err)
	}
	total := status.Values() // entries, and the markers of removed ones
	if bs, ok := status.(*jetstream.KeyValueBucketStatus); ok && total > MaxAnnouncementsRead {
		// From the revision MaxAnnouncementsRead before the last on: every message of the
		// stream is an entry's latest revision or a removal's marker (history 1; a hand-made
		// bucket's older revisions are taken over by the newer ones below).
		last := bs.StreamInfo().State.LastSeq
		if last > MaxAnnouncementsRead {
			opts = append(opts, jetstream.ResumeFromRevision(last-MaxAnnouncementsRead+1))
		}
	}
	watch, err := kv.WatchAll(ctx, opts...)
	if err != nil {
		return nil, 0, fmt.Errorf("read bucket %s: %w", BucketWorkers, err)
	}
	defer func() { _ = watch.Stop() }()
	type entry struct {
		a   AnnouncedWorker
		rev uint64
	}
	byKey := map[string]entry{}
	var read uint64
	for {
		select {
		case <-ctx.Done():
			return nil, 0, fmt.Errorf("read bucket %s: %w", BucketWorkers, ctx.Err())
		case e, ok := <-watch.Updates():
			if !ok {
				return nil, 0, fmt.Errorf("read bucket %s: the watch ended", BucketWorkers)
			}
			if e == nil { // the entries there were are all read
				entries := slices.SortedFunc(maps.Values(byKey), func(a, b entry) int { return cmp.Compare(a.rev, b.rev) })
				out := make([]AnnouncedWorker, len(entries))
				for i, e := range entries {
					out[i] = e.a
				}
				sort.SliceStable(out, func(i, j int) bool {
					a, b := out[i], out[j]
					if a.Consumer != b.Consumer {
						return a.Consumer > b.Consumer // as Backlogs: new before reprocess-…
					}
					if a.Host != b.Host {
						return a.Host < b.Host
					}
					return a.Started.Before(b.Started)
				})
				if read < total {
					unread = total - read
				}
				return out, unread, nil
			}
			read++
			delete(byKey, e.Key())
			var a AnnouncedWorker
			if e.Operation() != jetstream.KeyValuePut || len(e.Value()) > maxAnnouncementBytes || json.Unmarshal(e.Value(), &a.Announcement) != nil {
				continue
			}
			a.LastSeen = e.Created()
			byKey[e.Key()] = entry{a, e.Revision()}
		}
	}
}
