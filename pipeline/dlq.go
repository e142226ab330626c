package pipeline

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

// Headers carried by a dead letter, next to the original message body.
const (
	// HeaderTextAt dates a message's text (RFC 3339) when it was read before the message was
	// published: a stored text republished (the follow backfill, a replayed dead letter) keeps
	// the date it had, so that it cannot pass for newer than a version queued meanwhile.
	HeaderTextAt = "Paperpipe-Text-At"
	// HeaderSpace names the embedding space (its id) a message was queued for: the follow
	// backfill's copies of the papers a newly active space lacks. A worker on another space
	// hands such a copy back when WorkerConfig.OtherSpace says so, instead of taking it for its
	// own space, where the paper may lack nothing.
	HeaderSpace     = "Paperpipe-Space"
	HeaderReason    = "Paperpipe-Reason"
	HeaderAttempts  = "Paperpipe-Attempts"
	HeaderSubject   = "Paperpipe-Subject"
	HeaderStreamSeq = "Paperpipe-Stream-Seq"
	HeaderFailedAt  = "Paperpipe-Failed-At"
	HeaderPaperID   = "Paperpipe-Paper-Id"
	// HeaderRequeuedFrom is on a copy requeue published: the dead-letter message id of the
	// message it was requeued from, whose letter the copy's worker withdraws (withdrawOriginal);
	// one value for each message of a chain of copies (see requeued).
	HeaderRequeuedFrom = "Paperpipe-Requeued-From"
	// HeaderBodyLeftOut is on a dead letter written without its message's body: the body's
	// size in bytes. A message within a few hundred bytes of the server's max_payload leaves
	// no room for a dead letter's headers; such a letter says why its message failed, and
	// cannot be replayed (see fitDeadLetter).
	HeaderBodyLeftOut = "Paperpipe-Body-Left-Out"
	// HeaderReplayed is on a message a dead letter's replay published (ReplayDeadLetter): the
	// letter's sequence. Its paper's TL;DR is asked for again even when the API withheld it
	// (paper.WithheldError) for the same text and prompt: the user replays it on purpose, and
	// the record would keep it out of every worker and run (Store.ForgetWithheld).
	HeaderReplayed = "Paperpipe-Replayed"
)

// deadLetter copies the message, its reason and its delivery count to the dead-letter stream,
// then terminates it. If the copy fails the message is returned for redelivery instead, so a
// message is never terminated without a dead letter.
func (w *Worker) deadLetter(ctx context.Context, j job, reason error) {
	j.release()
	attempts, seq, stored := uint64(0), uint64(0), time.Time{}
	if j.meta != nil {
		attempts, seq, stored = j.meta.NumDelivered, j.meta.Sequence.Stream, j.meta.Timestamp
	}
	if _, err := w.publishDead(ctx, j.msg.Subject(), j.msg.Data(), seq, stored, attempts, j.a.ID, reason.Error(), j.a.TextAt, j.msg.Headers()); err != nil {
		w.log.Error("dead-lettering failed; message returned to the queue", "paper", j.a.ID, "err", err)
		_ = j.msg.NakWithDelay(w.cfg.Backoff(int(attempts)))
		w.stats.retried.Add(1)
		return
	}
	w.log.Warn("dead-lettered", "paper", j.a.ID, "attempts", attempts, "reason", reason)
	w.withdrawOriginal(j, "dead-lettered")
	if err := j.msg.TermWithReason(truncate(reason.Error(), 200)); err != nil {
		w.log.Debug("term failed", "paper", j.a.ID, "err", err)
	}
	w.stats.dead.Add(1)
}

// publishDead publishes a dead letter for the message of stream sequence seq (0 when unknown),
// which the queue stored at stored. Its message id, dead:<consumer>:<seq>:<stored>, makes the
// server drop a second copy of the same message within the duplicate window, so several
// workers may dead-letter one message safely; duplicate reports that this copy was dropped.
// The time tells apart messages of one sequence number in two lives of the stream (PAPERS
// deleted and created again numbers from 1): a letter of the second would be dropped as a
// repeat of the first's, and the message, terminated, lost. The letter keeps the space the
// message was queued for (HeaderSpace of orig, the message's headers), for its replay.
func (w *Worker) publishDead(ctx context.Context, subject string, data []byte, seq uint64, stored time.Time, attempts uint64, paperID, reason string, textAt time.Time, orig nats.Header) (duplicate bool, err error) {
	dead := &nats.Msg{
		Subject: SubjectDead + "." + w.cfg.Consumer,
		Data:    data,
		Header:  nats.Header{},
	}
	dead.Header.Set(HeaderReason, reason)
	if !textAt.IsZero() {
		dead.Header.Set(HeaderTextAt, textAt.UTC().Format(time.RFC3339Nano))
	}
	dead.Header.Set(HeaderAttempts, strconv.FormatUint(attempts, 10))
	dead.Header.Set(HeaderSubject, subject)
	dead.Header.Set(HeaderStreamSeq, strconv.FormatUint(seq, 10))
	dead.Header.Set(HeaderFailedAt, time.Now().UTC().Format(time.RFC3339))
	dead.Header.Set(HeaderPaperID, paperID)
	if space := orig.Get(HeaderSpace); space != "" {
		dead.Header.Set(HeaderSpace, space)
	}
	if seq > 0 {
		dead.Header.Set(jetstream.MsgIDHeader, w.deadLetterID(seq, stored))
	}
	fitDeadLetter(dead, maxPayload(w.js))
	pctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	ack, err := w.js.PublishMsg(pctx, dead)
	if err != nil {
		return false, fmt.Errorf("publish dead letter: %w", err)
	}
	return ack.Duplicate, nil
}

// minReason is the least of its reason a dead letter keeps when it is cut to fit the server's
// max_payload (fitDeadLetter): what the worker's log says when it terminates a message.
const minReason = 200

// fitDeadLetter makes dead, a dead letter with every header set, no larger than max (its
// headers and body; max ≤ 0: unknown, nothing done). The publish of a larger one fails
// ("maximum payload exceeded"): the message it is for was returned to the queue, delivered,
// failed and returned again until the server gave it up, and the reaper's letter failed the
// same way at every sweep. Its reason is cut first, to no less than minReason bytes; if that
// is not enough, the message's body is left out (HeaderBodyLeftOut), the reason saying so.
func fitDeadLetter(dead *nats.Msg, max int64) {
	over := func() int64 { return int64(dead.Size()-len(dead.Subject)-len(dead.Reply)) - max }
	if max <= 0 || over() <= 0 {
		return
	}
	reason := dead.Header.Get(HeaderReason)
	if keep := int64(len(reason)) - over(); keep >= minReason {
		dead.Header.Set(HeaderReason, truncate(reason, int(keep)))
		return
	}
	size := len(dead.Data)
	dead.Data = nil
	dead.Header.Set(HeaderBodyLeftOut, strconv.Itoa(size))
	dead.Header.Set(HeaderReason, fmt.Sprintf("%s [its message, %d bytes, is not in this dead letter: with the dead letter's headers it was over the server's max_payload of %d bytes]",
		truncate(reason, minReason), size, max))
}

// maxPayload is the connection's MaxPayload (the server's max_payload), 0 when not known.
func maxPayload(js jetstream.JetStream) int64 {
	if nc := js.Conn(); nc != nil {
		return nc.MaxPayload()
	}
	return 0
}

// deadLetterID is the message id of the dead letter of the message of stream sequence seq,
// which the queue stored at stored (see publishDead).
func (w *Worker) deadLetterID(seq uint64, stored time.Time) string {
	return "dead:" + w.cfg.Consumer + ":" + strconv.FormatUint(seq, 10) + ":" + strconv.FormatInt(stored.UnixNano(), 10)
}

// withdrawDeadLetter removes the dead letter a reaper may have written for j, a last delivery
// whose results the worker has stored or which it requeued, and keeps one from being written
// later. The server may give up a last delivery its worker still holds: a worker cut off from
// NATS for about AckWait cannot mark it in progress, and a server that restarted a moment
// after the delivery, before the worker's first InProgress reached it, restores the delivery as
// made when the message was queued (see startHold) — while the worker's hold looks fresh. A
// reaper that finds its results not stored yet dead-letters it ("max deliveries exceeded"): a
// dead letter of a paper that is done or queued again, which a user would see and replay for
// nothing. Every settlement of a last delivery withdraws it (a claim and a removal: last
// deliveries are few). The worker publishes a claim with the dead letter's message id: if
// a letter holds that id, the server drops the claim as its repeat and answers with the
// letter's sequence; if none does, the claim is stored and the server will drop a reaper's
// letter published later (within the duplicate window) as a repeat. Either way the answer's
// sequence is what to remove. A message requeued after such a lapse (requeue) is withdrawn the
// same way: its copy carries the work. done says what became of the message, for the log.
//
// A letter of this delivery is written once the server gave it up, after it delivered it: not
// before the worker took it (received, less the time a pull request gathers its messages and
// a minute's slack). While that is within the stream's duplicate window the claim alone finds
// it; the stream is searched (findLetter) only after a hold that long. The message's own
// queueing time bounded the letter before: every last delivery of a backlog more than an hour
// old (the window) searched the stream, reading every letter written since it was queued.
func (w *Worker) withdrawDeadLetter(j job, done string) {
	if j.meta == nil {
		return
	}
	since := j.meta.Timestamp
	if !j.received.IsZero() {
		since = later(since, j.received.Add(-time.Minute-w.cfg.FetchWait))
	}
	w.withdrawLetter(j.msg.Data(), j.a.ID, w.deadLetterID(j.meta.Sequence.Stream, j.meta.Timestamp), since, "its worker held its last delivery and "+done,
		"the worker "+done+" on its last delivery, which the server may have given up")
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// withdrawOriginal withdraws, as withdrawDeadLetter does, the dead letter of the message j, a
// copy requeue published, was requeued from (HeaderRequeuedFrom), once j is settled — its
// results stored, or j dead-lettered in turn, its own letter carrying the paper (done says
// which, for the log): a requeue whose sends the server left unanswered handed the original
// back, on its last delivery, and the server gave it up — a reaper dead-lettered a paper whose
// copy was then processed (and a lost Term does the same).
func (w *Worker) withdrawOriginal(j job, done string) {
	w.withdrawOriginals(j.msg.Headers(), j.msg.Data(), j.a.ID, done)
}

// withdrawOriginals is withdrawOriginal for the message of headers h, body data and paper
// paperID.
func (w *Worker) withdrawOriginals(h nats.Header, data []byte, paperID, done string) {
	for _, from := range h.Values(HeaderRequeuedFrom) {
		since, _ := storedAt(from) // the zero time when from does not say
		w.withdrawLetter(data, paperID, from, since, "its requeued copy was "+done,
			"the worker settled a requeued copy ("+done+"), whose original the server may have given up")
	}
}

// withdrawLetter removes the dead letter of message id id of paper paperID (whose message's
// body is data), if any, and keeps one from being written later (see withdrawDeadLetter);
// since is the earliest such a letter can have been written (zero: any time); reason is the
// claim's, and what the log says of a failure.
func (w *Worker) withdrawLetter(data []byte, paperID, id string, since time.Time, reason, what string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	letters := SubjectDead + "." + w.cfg.Consumer
	claim := &nats.Msg{Subject: claimSubject(letters), Data: data, Header: nats.Header{}}
	claim.Header.Set(HeaderReason, "none: "+reason+" (withdrawn)")
	claim.Header.Set(HeaderPaperID, paperID)
	claim.Header.Set(jetstream.MsgIDHeader, id)
	fitDeadLetter(claim, maxPayload(w.js))
	ack, err := w.js.PublishMsg(ctx, claim)
	letter := uint64(0) // the letter withdrawn, if any
	if err == nil {
		var s jetstream.Stream
		if s, err = w.js.Stream(ctx, StreamDead); err == nil {
			err = deleteMsg(ctx, s, ack.Sequence)
			if ack.Duplicate {
				letter = ack.Sequence
			} else if err == nil && pastWindow(since, s.CachedInfo().Config.Duplicates) {
				// The stream may have forgotten the id of a letter written more than its
				// duplicate window ago: the claim was stored beside it.
				if letter, err = findLetter(ctx, s, letters, id, since, ack.Sequence); err == nil && letter > 0 {
					err = deleteMsg(ctx, s, letter)
				}
			}
		}
	}
	if err != nil {
		w.log.Warn(what+"; a dead letter of it, if any, could not be withdrawn", "paper", paperID, "err", err)
		return
	}
	if letter > 0 {
		w.log.Info(what+", and it had been dead-lettered; dead letter withdrawn", "paper", paperID, "dead_letter", letter)
	}
}

// claimToken ends the subject of a withdrawal's claim (see claimSubject).
const claimToken = "withdrawn"

// claimSubject is the subject of the claims withdrawing letters of subject letters
// (papers.dead.<consumer>): one of its own, in the dead-letter stream. The claim must be in
// that stream (its message id is what drops a letter written later), and is stored there when
// no letter holds its id; it is removed at once, but a removal that fails (NATS lost between
// the two) left it among the letters: `dlq list`, `status` and the status page showed a dead
// letter "none: … (withdrawn)" of a paper that is done. The lists and the counts leave these
// subjects out (isClaim, subjectClaimsWC).
func claimSubject(letters string) string { return letters + "." + claimToken }

// isClaim reports whether subject, in the dead-letter stream, is a withdrawal's claim's (see
// claimSubject): one token more than a letter's, a consumer named like claimToken included.
func isClaim(subject string) bool {
	return strings.HasSuffix(subject, "."+claimToken) && strings.Count(subject, ".") == strings.Count(SubjectDead, ".")+2
}

// pastWindow reports whether a dead letter written not before since (zero: any time) may have
// been written more than window, the dead-letter stream's duplicate window, ago.
func pastWindow(since time.Time, window time.Duration) bool {
	return window <= 0 || since.IsZero() || time.Since(since) >= window
}

// storedAt is when the message a dead letter's message id id names was stored (its last field,
// Unix nanoseconds: see deadLetterID); ok is false when id does not say.
func storedAt(id string) (t time.Time, ok bool) {
	nanos, err := strconv.ParseInt(id[strings.LastIndexByte(id, ':')+1:], 10, 64)
	if err != nil {
		return time.Time{}, false
	}
	return time.Unix(0, nanos), true
}

// findLetter returns the sequence of the dead letter on subject whose message id is id, among
// those stored before sequence before and not before since (the zero time: any; see
// pastWindow); 0 when there is none. It finds the first letter of that time by bisection, then
// reads the letters from there on: those of the time a copy waited in the queue.
func findLetter(ctx context.Context, s jetstream.Stream, subject, id string, since time.Time, before uint64) (uint64, error) {
	next := func(seq uint64) (*jetstream.RawStreamMsg, error) {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subject))
		if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && raw.Sequence >= before {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("look for dead letter %s: %w", id, err)
		}
		return raw, nil
	}
	lo, hi := uint64(1), before // the first letter not older than since is at lo or later, before hi
	for lo < hi {
		mid := lo + (hi-lo)/2
		raw, err := next(mid)
		if err != nil {
			return 0, err
		}
		if raw == nil || !raw.Time.Before(since) {
			hi = mid
		} else {
			lo = raw.Sequence + 1
		}
	}
	for seq := lo; ; {
		raw, err := next(seq)
		if raw == nil || err != nil {
			return 0, err
		}
		if raw.Header.Get(jetstream.MsgIDHeader) == id {
			return raw.Sequence, nil
		}
		seq = raw.Sequence + 1
	}
}

// truncate cuts s to at most n bytes, at a rune's start.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// DeadLetter is one message in the dead-letter stream, without its body (the message, up to
// the server's max_payload: a list of thousands held every one, and showed none).
type DeadLetter struct {
	Seq      uint64    `json:"seq"` // sequence in the dead-letter stream; the id for replay
	PaperID  string    `json:"paper_id"`
	Subject  string    `json:"subject"` // where it came from
	Reason   string    `json:"reason"`
	Attempts int       `json:"attempts"`
	FailedAt time.Time `json:"failed_at"`
	// BodyLeftOut is the size of the message's body when the letter was written without it
	// (HeaderBodyLeftOut); such a letter cannot be replayed.
	BodyLeftOut int `json:"body_left_out,omitempty"`
	// ReasonBytes is the size of the whole reason when Reason is cut (see MaxShownReason);
	// GetDeadLetter gives it whole.
	ReasonBytes int `json:"reason_bytes,omitempty"`
	// PaperIDBytes is the size of the whole paper id when PaperID is cut (see
	// MaxShownPaperID); GetDeadLetter gives it whole.
	PaperIDBytes int `json:"paper_id_bytes,omitempty"`
}

// MaxShownReason bounds the reason of each letter a list gives (ListDeadLetters,
// DeadLettersFrom, LatestDeadLetters: `dlq list`, status, the status page and GET
// /api/status): a reason is a header any client of the NATS account may write, up to
// JetStream's limit of a message's headers (64 KiB), and a forged or runaway one was shown
// whole on every line and every page. The letter keeps it whole; GetDeadLetter (`dlq show`) gives it.
const MaxShownReason = 1000

// MaxShownPaperID bounds the paper id of each letter a list gives, as MaxShownReason bounds
// its reason: the id is a header too, up to 64 KiB, and a paper's is at most 512 bytes.
const MaxShownPaperID = 512

// cut cuts d's reason to MaxShownReason bytes and its paper id to MaxShownPaperID, saying so
// and where the whole is.
func (d *DeadLetter) cut() {
	if len(d.Reason) > MaxShownReason {
		d.ReasonBytes = len(d.Reason)
		d.Reason = fmt.Sprintf("%s… [cut: %d bytes in all; paperpipe dlq show %d prints it whole]", truncate(d.Reason, MaxShownReason), d.ReasonBytes, d.Seq)
	}
	if len(d.PaperID) > MaxShownPaperID {
		d.PaperIDBytes = len(d.PaperID)
		d.PaperID = fmt.Sprintf("%s… [cut: %d bytes in all; paperpipe dlq show %d prints it whole]", truncate(d.PaperID, MaxShownPaperID), d.PaperIDBytes, d.Seq)
	}
}

// deadStream returns the dead-letter stream and its state, with the number of messages of
// each subject of claims (State.Subjects: see claimSubject); a nil stream when it does not exist.
func deadStream(ctx context.Context, js jetstream.JetStream) (jetstream.Stream, *jetstream.StreamInfo, error) {
	s, err := js.Stream(ctx, StreamDead)
	if errors.Is(err, jetstream.ErrStreamNotFound) {
		return nil, nil, nil
	}
	if err != nil {
		return nil, nil, fmt.Errorf("dead-letter stream: %w", err)
	}
	info, err := s.Info(ctx, jetstream.WithSubjectFilter(subjectClaimsWC))
	if err != nil {
		return nil, nil, fmt.Errorf("dead-letter stream info: %w", err)
	}
	return s, info, nil
}

// letterCount is the number of dead letters in the dead-letter stream of state info (from
// deadStream): its messages but the claims left there.
func letterCount(info *jetstream.StreamInfo) uint64 {
	n := info.State.Msgs
	for _, claims := range info.State.Subjects {
		n -= min(claims, n)
	}
	return n
}

// ListDeadLetters returns up to limit dead letters, oldest first (limit ≤ 0: all).
func ListDeadLetters(ctx context.Context, js jetstream.JetStream, limit int) ([]DeadLetter, error) {
	return DeadLettersFrom(ctx, js, 0, limit)
}

// DeadLettersFrom returns up to limit dead letters (≤ 0: all) of sequence from on, oldest
// first: the next page of a list whose last letter was from-1.
func DeadLettersFrom(ctx context.Context, js jetstream.JetStream, from uint64, limit int) ([]DeadLetter, error) {
	s, info, err := deadStream(ctx, js)
	if s == nil {
		return nil, err
	}
	return deadLettersFrom(ctx, s, max(from, info.State.FirstSeq), info.State.LastSeq, limit)
}

// deadLettersFrom returns up to limit dead letters (≤ 0: all) with sequences from..to, oldest
// first. It asks the server for the next letter from a sequence on, so the sequences of
// letters already replayed (deleted) cost nothing: one request per letter, where reading
// sequence by sequence made every status page pay for every letter ever replayed.
func deadLettersFrom(ctx context.Context, s jetstream.Stream, from, to uint64, limit int) ([]DeadLetter, error) {
	var out []DeadLetter
	for seq := max(from, 1); seq <= to && (limit <= 0 || len(out) < limit); {
		raw, err := s.GetMsg(ctx, seq, jetstream.WithGetMsgSubject(subjectDeadWC))
		if errors.Is(err, jetstream.ErrMsgNotFound) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("dead letter from %d: %w", seq, err)
		}
		if raw.Sequence > to {
			break
		}
		if isClaim(raw.Subject) {
			seq = raw.Sequence + 1
			continue
		}
		dl := deadLetterOf(raw)
		dl.cut()
		out = append(out, dl)
		seq = raw.Sequence + 1
	}
	return out, nil
}

// CountDeadLetters returns the number of dead letters (0 when the stream does not exist), from
// the stream's state: no message is read.
func CountDeadLetters(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, info, err := deadStream(ctx, js)
	if s == nil {
		return 0, err
	}
	return letterCount(info), nil
}

// LatestDeadLetters returns the newest n dead letters, newest first. It reads the letters of a
// window of the newest sequences, widened (four times, each round) until it holds n letters or
// reaches the first: its cost follows the letters there are, not the sequences replayed.
func LatestDeadLetters(ctx context.Context, js jetstream.JetStream, n int) ([]DeadLetter, error) {
	s, info, err := deadStream(ctx, js)
	if s == nil || n <= 0 {
		return nil, err
	}
	first, last := info.State.FirstSeq, info.State.LastSeq
	var letters []DeadLetter // those of sequences from..last, oldest first
	to := last               // the window's part not read yet ends here
	for width := uint64(n); ; width *= 4 {
		from := first
		if last >= width && last-width+1 > first {
			from = last - width + 1
		}
		older, err := deadLettersFrom(ctx, s, from, to, 0)
		if err != nil {
			return nil, err
		}
		letters = append(older, letters...)
		to = from - 1
		if len(letters) >= n || from == first {
			if len(letters) > n {
				letters = letters[len(letters)-n:]
			}
			slices.Reverse(letters)
			return letters, nil
		}
	}
}

func deadLetterOf(raw *jetstream.RawStreamMsg) DeadLetter {
	attempts, _ := strconv.Atoi(raw.Header.Get(HeaderAttempts))
	at, _ := time.Parse(time.RFC3339, raw.Header.Get(HeaderFailedAt))
	leftOut, _ := strconv.Atoi(raw.Header.Get(HeaderBodyLeftOut))
	return DeadLetter{
		Seq: raw.Sequence, PaperID: raw.Header.Get(HeaderPaperID), Subject: raw.Header.Get(HeaderSubject),
		Reason: raw.Header.Get(HeaderReason), Attempts: attempts, FailedAt: at, BodyLeftOut: leftOut,
	}
}

// GetDeadLetter returns the dead letter of sequence seq with its reason whole (the lists cut
// it: see MaxShownReason). One not in the stream wraps ErrDeadLetterGone.
func GetDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (DeadLetter, error) {
	s, err := js.Stream(ctx, StreamDead)
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead-letter stream: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) || err == nil && isClaim(raw.Subject) {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterGone)
	}
	if err != nil {
		return DeadLetter{}, fmt.Errorf("dead letter %d: %w", seq, err)
	}
	return deadLetterOf(raw), nil
}

// ErrDeadLetterGone is wrapped by ReplayDeadLetter's error when the dead letter is not in the
// stream: a wrong number, or one replayed (or removed) meanwhile, by another replay too.
var ErrDeadLetterGone = errors.New("not found")

// ErrNoBody is wrapped by ReplayDeadLetter's error for a dead letter written without its
// message's body (DeadLetter.BodyLeftOut).
var ErrNoBody = errors.New("dead letter without its message")

// ReplayDeadLetter republishes one dead letter onto the subject it came from and removes it
// from the dead-letter stream, and returns that subject. The message is marked replayed
// (HeaderReplayed): a TL;DR the API withheld for its text is asked for again. The republished message's id names
// the letter (its sequence and when the dead-letter stream stored it), not the replay: within
// the queue's duplicate window the server drops a second copy of one letter, so two replays
// of it at once (two shells' `dlq replay --all`) or a replay run again after one interrupted
// between the publish and the removal queue the paper once; and no other letter, nor the
// letter of a replayed message dead-lettered again, has that id. A letter that is gone
// meanwhile (another replay removed it) is not an error of the removal. A dead letter the
// queue refuses for being full stays, and the error wraps ErrQueueFull; one not in the stream
// wraps ErrDeadLetterGone.
func ReplayDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) (subject string, err error) {
	s, err := js.Stream(ctx, StreamDead)
	if err != nil {
		return "", fmt.Errorf("dead-letter stream: %w", err)
	}
	raw, err := s.GetMsg(ctx, seq)
	if errors.Is(err, jetstream.ErrMsgNotFound) {
		return "", fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterGone)
	}
	if err != nil {
		return "", fmt.Errorf("dead letter %d: %w", seq, err)
	}
	if isClaim(raw.Subject) { // not a dead letter, and not listed as one
		return "", fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterGone)
	}
	dl := deadLetterOf(raw)
	if dl.BodyLeftOut > 0 {
		of := ""
		if dl.PaperID != "" {
			of = " (paper " + dl.PaperID + ")"
		}
		return "", fmt.Errorf("dead letter %d%s holds no message to replay (its %d bytes did not fit in a dead letter): "+
			"publish the paper again (`paperpipe ingest`), then drop the letter (`paperpipe dlq drop %d`): %w",
			seq, of, dl.BodyLeftOut, seq, ErrNoBody)
	}
	subject = dl.Subject
	if subject != SubjectNew && !strings.HasPrefix(subject, SubjectReprocess+".") {
		subject = SubjectNew
	}
	msg := &nats.Msg{Subject: subject, Data: raw.Data, Header: nats.Header{}}
	if at := raw.Header.Get(HeaderTextAt); at != "" {
		msg.Header.Set(HeaderTextAt, at) // the text keeps its date (see HeaderTextAt)
	}
	if space := raw.Header.Get(HeaderSpace); space != "" {
		msg.Header.Set(HeaderSpace, space) // still for the space it was queued for (see HeaderSpace)
	}
	msg.Header.Set(HeaderReplayed, strconv.FormatUint(seq, 10)) // asked again, even withheld (see HeaderReplayed)
	id := "replay:" + strconv.FormatUint(seq, 10) + ":" + strconv.FormatInt(raw.Time.UnixNano(), 10)
	if _, err := js.PublishMsg(ctx, msg, jetstream.WithMsgID(id)); err != nil {
		if queueFull(err) { // the next replays would be refused too
			return "", fmt.Errorf("replay dead letter %d: %w: %w", seq, ErrQueueFull, err)
		}
		return "", fmt.Errorf("replay dead letter %d: %w", seq, err)
	}
	if err := deleteMsg(ctx, s, seq); err != nil {
		return subject, fmt.Errorf("replayed dead letter %d but could not remove it: %w", seq, err)
	}
	return subject, nil
}

// DropDeadLetter removes the dead letter of sequence seq from the dead-letter stream for good:
// its paper is not processed (a producer's malformed message, a paper that can never go
// through). One not in the stream (a wrong number, or one replayed or dropped meanwhile) wraps
// ErrDeadLetterGone.
func DropDeadLetter(ctx context.Context, js jetstream.JetStream, seq uint64) error {
	s, info, err := deadStream(ctx, js)
	if err != nil {
		return err
	}
	if s == nil || seq < info.State.FirstSeq || seq > info.State.LastSeq {
		return fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterGone)
	}
	err = s.DeleteMsg(ctx, seq)
	if msgGone(err) {
		return fmt.Errorf("dead letter %d: %w", seq, ErrDeadLetterGone)
	}
	if err != nil {
		return fmt.Errorf("drop dead letter %d: %w", seq, err)
	}
	return nil
}

// DropDeadLettersOf removes the dead letters of the papers ids names (by their
// HeaderPaperID), those the stream holds when it is called, and returns how many it removed
// (with dryRun, how many it would remove; it removes none). A letter gone meanwhile (replayed
// or dropped by another process) is not counted. It is for the papers `paperpipe remove` took
// out: a replay of such a letter would store nothing, and it would stay listed, and counted as
// a failure, until dropped by hand.
func DropDeadLettersOf(ctx context.Context, js jetstream.JetStream, ids []string, dryRun bool) (int, error) {
	of := make(map[string]bool, len(ids))
	for _, id := range ids {
		of[id] = true
	}
	dls, err := ListDeadLetters(ctx, js, 0)
	if err != nil {
		return 0, err
	}
	n := 0
	for _, d := range dls {
		if d.PaperID == "" || !of[d.PaperID] {
			continue
		}
		if !dryRun {
			err := DropDeadLetter(ctx, js, d.Seq)
			if errors.Is(err, ErrDeadLetterGone) {
				continue
			}
			if err != nil {
				return n, err
			}
		}
		n++
	}
	return n, nil
}

// DropAllDeadLetters removes every dead letter the dead-letter stream holds when it is called
// — one purge up to its last sequence then, so that a letter a worker writes meanwhile is kept
// for its owner to read — and returns how many it held then (a replay running at the same
// time may have taken some of them first).
func DropAllDeadLetters(ctx context.Context, js jetstream.JetStream) (uint64, error) {
	s, info, err := deadStream(ctx, js)
	if s == nil || err != nil || info.State.Msgs == 0 {
		return 0, err
	}
	if err := s.Purge(ctx, jetstream.WithPurgeSequence(info.State.LastSeq+1)); err != nil {
		return 0, fmt.Errorf("drop the dead letters: %w", err)
	}
	return letterCount(info), nil
}

// textAt dates a message's text: by its HeaderTextAt when it has one (a stored text
// republished), else by when the queue stored the message.
func textAt(h nats.Header, stored time.Time) time.Time {
	if v := h.Get(HeaderTextAt); v != "" {
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t
		}
	}
	return stored
}
