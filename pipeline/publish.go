package pipeline

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/paper"
)

// MsgID is the Nats-Msg-Id of an abstract published on subject: its canonical id, its content
// hash and a short hash of the metadata the store merges (authors, categories, published date,
// URL; see metaHash), prefixed by the subject for re-processing. So the same version of a paper
// published twice within the duplicate window (a file ingested twice) is dropped by the server,
// while a changed abstract, or the same text with added or corrected metadata (a Hugging Face
// feed without categories, then the arXiv record of the same papers), goes through; and a
// re-processing run is not mistaken for the ingest of the paper.
func MsgID(subject string, a paper.Abstract) string {
	id := a.ID + "@" + a.ContentHash()[:16] + "." + metaHash(a)
	if subject != SubjectNew {
		id = subject + ":" + id
	}
	return id
}

// metaHash is 8 hex digits of the SHA-256 of the metadata the store keeps beside the text:
// authors, categories, published date and URL. Source and TextAt are left out: they differ
// between two ingests of the same file, which must stay repeats.
func metaHash(a paper.Abstract) string {
	h := sha256.New()
	for _, list := range [][]string{a.Authors, a.Categories} {
		for _, s := range list {
			h.Write([]byte(s))
			h.Write([]byte{0})
		}
		h.Write([]byte{1})
	}
	if !a.Published.IsZero() {
		h.Write([]byte(a.Published.UTC().Format(time.RFC3339Nano)))
	}
	h.Write([]byte{1})
	h.Write([]byte(a.URL))
	return hex.EncodeToString(h.Sum(nil)[:4])
}

// Publisher puts abstracts on the PAPERS stream. It publishes asynchronously with a bounded
// number of unacknowledged messages and is not safe for concurrent use.
type Publisher struct {
	js      jetstream.JetStream
	subject string
	run     string // prefix of message ids; "" for ingest
	space   int64  // HeaderSpace of every message; 0: none
	window  []pending
	max     int
	stats   PublishStats
	// unanswered counts the messages whose wait failed without an answer from the server.
	unanswered int
	// silentSince is when the stream last left a message unanswered after answering one (zero
	// while it answers), and resendFor how long unanswered messages are sent again from then.
	silentSince time.Time
	resendFor   time.Duration
	onAck       func(id string)
	// streamMax is the PAPERS stream's MaxMsgSize, read at the first Publish (streamRead);
	// 0 when it has none or it could not be read.
	streamMax  int64
	streamRead bool
	// dupWindow is the PAPERS stream's duplicate window then (0: not known).
	dupWindow time.Duration
	// firstSeq is the PAPERS stream's last sequence then, plus one: a message of this
	// Publisher's is stored at it or after (0: not known; see settle).
	firstSeq uint64
	// gone is the error of a stream found missing (see streamGone); nil while it is not known
	// to be. goneAsked: the server was asked since the stream last answered.
	gone      error
	goneAsked bool
}

// TooLargeError is Publish's error for an abstract whose message is larger than the queue
// takes: nothing was sent, and the Publisher can go on with the next abstract. It wraps
// paper.ErrInvalid: the record is at fault, and sending it again cannot help.
type TooLargeError struct {
	ID   string // the abstract's id
	Size int64  // the message's size in bytes, headers included
	Max  int64  // the largest message the queue takes
}

func (e *TooLargeError) Error() string {
	return fmt.Sprintf("message is %d bytes, the queue takes at most %d", e.Size, e.Max)
}

// Unwrap returns paper.ErrInvalid.
func (e *TooLargeError) Unwrap() error { return paper.ErrInvalid }

// pending is a message awaiting the server's answer, and the id of its abstract. resent: it
// was sent again after a send that got no answer, which the server may have stored.
type pending struct {
	f      jetstream.PubAckFuture
	id     string
	resent bool
}

// resendFor is how long a message the stream leaves unanswered — no responders, no answer
// within the JetStream context's timeout, the connection lost — is sent again, under its own
// message id, resendWait apart: on a JetStream cluster whose stream leader died (kill -9, a
// crash), the messages on their way to it are lost and those that follow find no leader until
// the others have elected one, a few seconds later; the stream's duplicate window drops a
// message that was stored after all. It is bounded, from the first message left unanswered
// since the last answer, so that a cluster without a majority, or a lone server that stays
// down, still stops the publishing with an error, once.
const resendFor = time.Minute

const resendWait = 250 * time.Millisecond

// PublishStats counts what a Publisher has done.
type PublishStats struct {
	Published  int `json:"published"`  // stored by the server
	Duplicates int `json:"duplicates"` // dropped by the server as repeats
	Refused    int `json:"refused"`    // refused by the server (a full queue, say): not stored
}

// ErrQueueFull is in the error of messages the server refused because the queue is full: the
// PAPERS stream is at a limit an operator set (it discards new messages, see Setup), or the
// server's JetStream storage (its max_file_store, by default 75% of the disk that was free
// when it started) is used up. Nothing is lost: what was queued before stays, and the messages
// refused can be published again once the workers have drained the queue or the server has
// room. It is paper.ErrQueueFull, which the web API, not importing this package, tells by.
var ErrQueueFull = paper.ErrQueueFull

// queueFull reports whether err, a publish's answer from the server, says the queue is full:
// the server's or the account's JetStream storage is used up (insufficient resources, or the
// account's limits exceeded: its max_file on a server shared by accounts), or the stream is at
// its MaxMsgs or MaxBytes.
func queueFull(err error) bool {
	var apiErr *jetstream.APIError
	if !errors.As(err, &apiErr) {
		return false
	}
	switch apiErr.ErrorCode {
	case 10023, 10047: // JSInsufficientResourcesErr, JSStorageResourcesExceededErr
		return true
	case 10002: // JSAccountResourcesExceededErr: the account's max_file (a server shared by accounts)
		return true
	case 10077: // JSStreamStoreFailedF: the store's error, such as the stream's limits
		return strings.Contains(apiErr.Description, "maximum messages exceeded") ||
			strings.Contains(apiErr.Description, "maximum bytes exceeded")
	}
	return false
}

// NewPublisher returns a Publisher for subject (SubjectNew or a ReprocessTarget.Subject). maxPending
// bounds the messages in flight; it defaults to 256.
func NewPublisher(js jetstream.JetStream, subject string, maxPending int) *Publisher {
	if maxPending <= 0 {
		maxPending = 256
	}
	return &Publisher{js: js, subject: subject, max: maxPending, resendFor: resendFor}
}

// PublishAll publishes papers on subject with a Publisher of its own (maxPending messages in
// flight) and waits for their answers, as POST /api/papers does (web.Publisher): it returns the
// ids the server acknowledged, once per message, with an error those acknowledged before it, so
// a request whose publishing failed part way reports the papers that were taken as accepted. A
// paper too large for the queue is refused in refused, by its index in papers, and the others
// go on. When the connection is down it fails at once: published while reconnecting, the
// messages would wait in the client's buffer and the request for their acks (30 s).
func PublishAll(ctx context.Context, js jetstream.JetStream, subject string, maxPending int, papers []paper.Abstract) (acked []string, refused map[int]error, err error) {
	if nc := js.Conn(); !nc.IsConnected() {
		return nil, nil, fmt.Errorf("not connected to NATS (%s)", nc.Status())
	}
	pub := NewPublisher(js, subject, maxPending)
	pub.OnAck(func(id string) { acked = append(acked, id) })
	for i, a := range papers {
		err := pub.Publish(ctx, a)
		var tl *TooLargeError
		if errors.As(err, &tl) {
			if refused == nil {
				refused = map[int]error{}
			}
			refused[i] = tl
			continue
		}
		if err != nil {
			// The messages sent before it may still be taken: wait for their answers.
			return acked, refused, errors.Join(err, pub.Flush(ctx))
		}
	}
	return acked, refused, pub.Flush(ctx)
}

// ForSpace marks every message Publish sends as queued for embedding space id (HeaderSpace).
// Call it before the first Publish.
func (p *Publisher) ForSpace(id int64) { p.space = id }

// OnAck has fn called with the id of each abstract the server acknowledges (stored, or dropped
// as a repeat), when Publish or Flush sees the acknowledgement: with an error, what was taken
// before it. Call it before the first Publish.
func (p *Publisher) OnAck(fn func(id string)) { p.onAck = fn }

// Publish sends one abstract. It returns once the message is handed to the connection (waiting,
// while the process's JetStream context has as many messages in flight as it allows, for room
// or for ctx to end); errors from the server surface from a later Publish or from Flush, which
// send a message the stream left unanswered again under its own id, for up to resendFor. An abstract whose message is
// larger than the queue takes (the server's max_payload, or the PAPERS stream's MaxMsgSize,
// whichever is smaller) is not sent: Publish returns a *TooLargeError for it at once, and the
// messages before and after it are unaffected.
func (p *Publisher) Publish(ctx context.Context, a paper.Abstract) error {
	data, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("encode %s: %w", a.ID, err)
	}
	msg := &nats.Msg{Subject: p.subject, Data: data, Header: nats.Header{}}
	if !a.TextAt.IsZero() { // a stored text: it keeps its date (see HeaderTextAt)
		msg.Header.Set(HeaderTextAt, a.TextAt.UTC().Format(time.RFC3339Nano))
	}
	if p.space != 0 {
		msg.Header.Set(HeaderSpace, strconv.FormatInt(p.space, 10))
	}
	id := MsgID(p.subject, a)
	if p.run != "" {
		id = p.run + "/" + id
	}
	msg.Header.Set(jetstream.MsgIDHeader, id)
	if size, max := int64(msg.Size()-len(msg.Subject)), p.maxMsgSize(ctx); max > 0 && size > max {
		return &TooLargeError{ID: a.ID, Size: size, Max: max}
	}
	f, resent, err := p.publishAsync(ctx, msg)
	if err != nil {
		return fmt.Errorf("publish %s: %w", a.ID, err)
	}
	p.window = append(p.window, pending{f: f, id: a.ID, resent: resent})
	if len(p.window) >= p.max {
		return p.settle(ctx, len(p.window)/2)
	}
	return nil
}

// publishAsync sends msg, waiting while the JetStream context has as many messages in flight
// as it allows (its PublishAsyncMaxPending, shared by every Publisher of the process: the
// POST /api/papers requests of a server at once) until one is answered, or ctx ends. nats.go
// gives up on such a wait after 200 ms (ErrTooManyStalledMsgs): a request that came while
// others filled the context failed, and its papers were answered 503, though the queue had
// refused nothing.
//
// A send the connection fails under (the server it was on died, a kill -9 of a cluster's
// stream leader: "broken pipe", "connection reset") is sent again, under its own message id,
// resendWait apart, while nats.go reconnects to another server, for up to resendFor; resent
// reports such a send, which the server may have stored.
func (p *Publisher) publishAsync(ctx context.Context, msg *nats.Msg) (_ jetstream.PubAckFuture, resent bool, _ error) {
	var failedSince time.Time
	for {
		f, err := p.js.PublishMsgAsync(msg)
		switch {
		case errors.Is(err, jetstream.ErrTooManyStalledMsgs):
		case sendFailed(err):
			if failedSince.IsZero() {
				failedSince = time.Now()
			}
			if time.Since(failedSince) >= p.resendFor {
				return nil, false, err
			}
			select {
			case <-time.After(resendWait):
			case <-ctx.Done():
			}
		default:
			return f, !failedSince.IsZero(), err
		}
		if ctx.Err() != nil {
			if !failedSince.IsZero() {
				return nil, false, fmt.Errorf("%w (sent again while reconnecting): %w", err, ctx.Err())
			}
			return nil, false, fmt.Errorf("waiting for room among the messages in flight (%d): %w", p.js.PublishAsyncPending(), ctx.Err())
		}
	}
}

// sendFailed reports whether err, a publish's, is the connection failing under the send (its
// server gone: a reset, a broken pipe, a reconnect buffer full), which a reconnect to another
// server mends — not a closed connection, nor the server's answer.
func sendFailed(err error) bool {
	var opErr *net.OpError
	return errors.As(err, &opErr) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, nats.ErrReconnectBufExceeded) || errors.Is(err, nats.ErrDisconnected)
}

// maxMsgSize is the largest message, headers and data, the queue takes: the smaller of the
// connection's MaxPayload (the server's max_payload, read each time as a reconnect may reach
// another server) and the PAPERS stream's MaxMsgSize (read once); 0 when neither is known.
func (p *Publisher) maxMsgSize(ctx context.Context) int64 {
	if !p.streamRead {
		p.streamRead = true
		if s, err := p.js.Stream(ctx, StreamPapers); err == nil {
			if max := s.CachedInfo().Config.MaxMsgSize; max > 0 {
				p.streamMax = int64(max)
			}
			p.firstSeq = s.CachedInfo().State.LastSeq + 1
			p.dupWindow = s.CachedInfo().Config.Duplicates
		}
	}
	max := p.streamMax
	if mp := maxPayload(p.js); mp > 0 && (max == 0 || mp < max) {
		max = mp
	}
	return max
}

// Flush waits until the server has acknowledged every message published so far. When ctx ends
// first, it returns ctx's error joined to the errors of the messages the server refused before
// (as Publish does when it waits); the answers that had come are still counted (see Stats) and
// the rest stay unconfirmed (see Unconfirmed): a later Flush may wait for them again.
func (p *Publisher) Flush(ctx context.Context) error {
	return p.settle(ctx, len(p.window))
}

// DuplicateWindow returns the PAPERS stream's duplicate window, read at the first Publish:
// how far apart a repeat of a message is dropped (an hour, or a NATS server's lower
// max_duplicate_window, see TopologyConfig.DuplicateWindow); 0 when it could not be read.
func (p *Publisher) DuplicateWindow() time.Duration { return p.dupWindow }

// Stats returns the counts of acknowledged messages so far.
func (p *Publisher) Stats() PublishStats { return p.stats }

// Unconfirmed returns the number of messages sent whose answer has not been seen, which the
// server may or may not have stored: those a Flush cut short by its context left (a later Flush
// may wait for them again), and those whose answer never came (a timeout).
func (p *Publisher) Unconfirmed() int { return len(p.window) + p.unanswered }

// PublishError is the error of the messages that failed in one wait of Publish or Flush: the
// first one's, and how many more failed after it (a full queue refuses every message in flight
// alike). It wraps the first failure, and ErrQueueFull when the server answered that the queue
// is full.
type PublishError struct {
	MsgID string // the first failed message's Nats-Msg-Id
	Err   error  // its failure: the server's answer, or none (a timeout)
	More  int    // messages failed after it
}

func (e *PublishError) Error() string {
	msg := fmt.Sprintf("publish %s: %v", e.MsgID, e.Err)
	if queueFull(e.Err) {
		msg = ErrQueueFull.Error() + ": " + msg
	}
	if e.More > 0 {
		msg += fmt.Sprintf(" (and %d more messages failed)", e.More)
	}
	return msg
}

// Unwrap returns the first failure, and ErrQueueFull when it says the queue is full.
func (e *PublishError) Unwrap() []error {
	if queueFull(e.Err) {
		return []error{e.Err, ErrQueueFull}
	}
	return []error{e.Err}
}

// isAPIError reports whether err, a message's failure, is the server's answer (not stored):
// also streamGone's error, which wraps jetstream.ErrStreamNotFound, an *jetstream.APIError.
func isAPIError(err error) bool {
	_, ok := errors.AsType[*jetstream.APIError](err)
	return ok
}

// streamGone returns, for err, a message's failure without an answer, the error that says
// the PAPERS stream does not exist, when err is "no response from stream" (the server's no
// responders: nothing takes the subject) and the server says so (asked once a silence); nil
// otherwise.
// Deleted while a publishing process runs (`nats stream rm PAPERS` beside a running `serve`),
// the stream left every message unanswered: sent again for resendFor as to a cluster electing a
// leader, each publish (each POST /api/papers) waited a minute and was then told of a leader
// election that was not happening. A cluster without a leader answers the question otherwise
// (no answer, or unavailable), and its messages are sent again as before.
func (p *Publisher) streamGone(ctx context.Context, err error) error {
	if p.gone != nil || p.goneAsked || !errors.Is(err, jetstream.ErrNoStreamResponse) {
		return p.gone
	}
	p.goneAsked = true // once for the messages one silence leaves unanswered
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, serr := p.js.Stream(ctx, StreamPapers); errors.Is(serr, jetstream.ErrStreamNotFound) {
		p.gone = fmt.Errorf("%w: %w: the queue's stream %s does not exist (deleted?); starting a paperpipe process recreates it "+
			"(restart `serve`, `up` or the workers)", err, serr, StreamPapers)
	}
	return p.gone
}

// settle waits for the oldest n futures; it returns a *PublishError for those that failed,
// and ctx's error with it if ctx ends first.
func (p *Publisher) settle(ctx context.Context, n int) error {
	var failed *PublishError
	var errs []error // failed, once there is one
	take := func(pm pending, ack *jetstream.PubAck, err error) {
		if err != nil {
			if isAPIError(err) {
				p.stats.Refused++ // the server's answer, or no stream (streamGone's error wraps one): not stored
			} else {
				p.unanswered++ // a timeout, a lost connection: it may have been stored
			}
			if failed != nil {
				failed.More++
			} else {
				failed = &PublishError{MsgID: pm.f.Msg().Header.Get(jetstream.MsgIDHeader), Err: err}
				errs = append(errs, failed)
			}
			return
		}
		// A message sent again after a send left unanswered is answered as a repeat when the
		// first send was stored: a repeat stored since this Publisher began (at or after
		// firstSeq) is its own, published (or, rarely, another process's publishing the same
		// record at the same time). Counted as a repeat, ingest called papers it had just
		// queued "dropped as repeats". When firstSeq is not known (the stream's state could
		// not be read at the first Publish, as a rule in the same silence that left the
		// answers unanswered), such a repeat counts as published too: its own first send is
		// by far the likelier, and an earlier ingest's record repeated is queued or stored as
		// well, where the other way every paper of the silence was said dropped.
		if ack.Duplicate && !(pm.resent && (p.firstSeq == 0 || ack.Sequence >= p.firstSeq)) {
			p.stats.Duplicates++
		} else {
			p.stats.Published++
		}
		if p.onAck != nil {
			p.onAck(pm.id)
		}
	}
	stop := func(i int) error {
		// The ones settled are not waited for again; their errors are not lost.
		p.window = append(p.window[:0], p.window[i:]...)
		return errors.Join(append(errs, ctx.Err())...)
	}
	for i := 0; i < n; i++ {
		pm := &p.window[i]
		var ack *jetstream.PubAck
		var err error
		select {
		case ack = <-pm.f.Ok():
		case err = <-pm.f.Err():
		case <-ctx.Done():
			// An answer that has come counts: select picks at random among ready cases.
			select {
			case ack = <-pm.f.Ok():
			case err = <-pm.f.Err():
			default:
				return stop(i)
			}
		}
		if err != nil && !isAPIError(err) && p.streamGone(ctx, err) != nil {
			err = p.gone // no stream to answer: nothing to wait for
		}
		if err == nil || isAPIError(err) {
			p.silentSince, p.goneAsked = time.Time{}, false // an answer
		} else {
			// No answer: the stream may be electing a leader. Send it again, under its id: at
			// once when the stream answered since (the rest of what one outage left
			// unanswered), else after a pause.
			pause := !p.silentSince.IsZero()
			if !pause {
				p.silentSince = time.Now()
			}
			if time.Since(p.silentSince) < p.resendFor {
				if pause {
					select {
					case <-time.After(resendWait):
					case <-ctx.Done():
						return stop(i)
					}
				}
				if f, _, perr := p.publishAsync(ctx, pm.f.Msg()); perr == nil {
					pm.f, pm.resent = f, true
					i-- // wait for it again
					continue
				}
			}
			// Both causes, as the client cannot tell them apart: naming the cluster alone sent the
			// operator of a single server whose disk had filled looking for a leader election.
			err = fmt.Errorf("%w (the stream has answered nothing for %s, sent again meanwhile: on a JetStream cluster, it has no leader "+
				"while fewer than a majority of its servers (2 of 3) are up and in touch; a server that could not write the stream, "+
				"its disk full or out of file descriptors, answers nothing until its JetStream restarts, its log saying so)",
				err, time.Since(p.silentSince).Round(time.Second))
		}
		take(*pm, ack, err)
	}
	p.window = append(p.window[:0], p.window[n:]...)
	return errors.Join(errs...)
}
