package pipeline

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// errPaused hands back a message whose work was not started because the worker is paused: the
// API refused the account or the configuration, or could not be reached (llm.ErrAccount), or
// the database could not be reached (paper.ErrUnavailable), a moment ago.
var errPaused = errors.New("worker paused: the API refuses the account or the configuration, cannot be reached, fails at TLS, is loading its model or fails every request, or the database cannot be reached or cannot write")

// pauses is a worker's pair of circuit breakers: one for the API — its refusals of the
// account or the configuration (a bad or revoked key, an unknown model, a wrong base URL, an
// exhausted quota, see llm.ErrAccount), an API that cannot be reached (llm.ErrUnreachable)
// or whose TLS connection cannot be made (llm.ErrTLS: a certificate this machine does not trust)
// — or that fails every paper's requests (llm.ErrServerFailing, see serverDown) — and one for a database that cannot be reached or cannot write (paper.ErrUnavailable). No
// paper is at fault, and every message would fail the same way. Each failure opens its
// breaker's pause of Backoff(n) for the n-th pause in a row: the worker pulls nothing, hands
// back what it holds without calling the API, and then tries one message at a time (see pull)
// until one goes through. Each breaker is closed by its own service only: the API's by a
// message whose API work was answered (apiAnswered), the database's by a micro-batch recorded
// (storeReached) or, after a database that answered but could not write (paper.ErrCannotWrite:
// a full disk), by a message whose results were saved (storeAnswered) — an intake of papers
// stored already writes nothing, and succeeds on a full disk. The worker is paused while
// either pause runs, and tries one message at a time while either breaker is open.
type pauses struct {
	mu      sync.Mutex
	api, db breaker
	// dbWrite: the database's last pause was for a database that answers but cannot write
	// (paper.ErrCannotWrite): only a save closes it, not an intake (which for papers stored
	// already writes nothing).
	dbWrite  bool
	lastOpen error // the cause of the pause opened last (kept after it: see pauseErr)
	// failing: the papers whose API calls the server failed at every attempt
	// (llm.ErrServerFailing) since a message's API work was last answered; failingN is its
	// size, for apiAnswered's fast path. See serverDown.
	failing  map[string]struct{}
	failingN atomic.Int32
	// active is api.n > 0 || db.n > 0 (a pause, or trying one message at a time after it): the
	// fast path of the hot path's checks.
	active atomic.Bool
}

// breaker is one service's state in pauses.
type breaker struct {
	until time.Time // the pause in progress ends
	n     int       // pauses since the service last answered
	cause error     // the failure that opened the last pause (State reports it)
}

// openPause opens a pause after a refusal of the account or the configuration, an API that
// cannot be reached, or a database that is unavailable, unless that service's pause is open
// already. It logs one line per pause, with the cause (which llm keeps free of the API key,
// and store of the database's password).
func (w *Worker) openPause(cause error) {
	p := &w.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	reason, what := pauseCause(cause, w.timings().msgTimeout)
	b := &p.api
	if reason == PauseDatabase {
		b = &p.db
	}
	now := time.Now()
	if now.Before(b.until) {
		return
	}
	b.n++
	// Never shorter than a pull request's wait: a Backoff of 0 ("retry at once") would make
	// every refused request a pause of its own, and a warning.
	d := max(w.cfg.Backoff(b.n), w.cfg.FetchWait)
	b.until, b.cause, p.lastOpen = now.Add(d), cause, cause
	p.active.Store(true)
	if b == &p.db {
		p.dbWrite = errors.Is(cause, paper.ErrCannotWrite)
		w.stats.dbPaused.Add(1)
	} else {
		w.stats.paused.Add(1)
	}
	if w.cfg.ExitWhenIdle {
		w.log.Warn(what+" (not the papers' fault): stopping the run; its messages stay queued", "err", cause)
		return
	}
	w.log.Warn(what+" (not the papers' fault): pausing the worker; its messages stay queued",
		"pause", d.Round(time.Millisecond), "pauses_in_a_row", b.n, "err", cause)
}

// pauseCause classifies the cause of a pause, for openPause and State alike: its Reason
// (PauseDatabase: the database's breaker; the others the API's), and what the worker's log
// says of it (msgTimeout is the message's time, which a slow model may need raised).
func pauseCause(cause error, msgTimeout time.Duration) (reason, what string) {
	switch {
	case errors.Is(cause, paper.ErrUnavailable):
		return PauseDatabase, "the database cannot be reached or cannot write"
	case errors.Is(cause, llm.ErrUnreachable):
		return PauseAPIDown, "the API cannot be reached"
	case errors.Is(cause, llm.ErrTLS):
		return PauseAPIDown, "the connection to the API fails at TLS"
	case errors.Is(cause, llm.ErrServerFailing) && errors.Is(cause, context.DeadlineExceeded):
		return PauseAPIFailing, fmt.Sprintf("the API answers no request in time (several papers in a row, none answered within the message's %s: "+
			"the API hangs, or the model needs longer: raise PAPERPIPE_MSG_TIMEOUT, with PAPERPIPE_ACK_WAIT, for a slow model)", msgTimeout)
	case errors.Is(cause, llm.ErrServerFailing):
		return PauseAPIFailing, "the API fails every request (server errors, or bodies that are no answer, for several papers in a row, none answered)"
	}
	return PauseAPIRefused, "the API refuses the account or the configuration"
}

// apiAnswered closes the API's breaker: a message's API work went through. The server fails
// no longer every paper's calls (see serverDown).
func (w *Worker) apiAnswered() {
	if p := &w.pause; p.failingN.Load() > 0 {
		p.mu.Lock()
		clear(p.failing)
		p.failingN.Store(0)
		p.mu.Unlock()
	}
	w.closeBreaker(&w.pause.api, "the API accepts the requests again")
}

// serverFailingPapers is how many papers' calls in a row, none answered between them, the
// server must fail at every attempt to be taken for down (see serverDown).
const serverFailingPapers = 2

// serverDown records that the server failed the API calls for paper at every attempt
// (llm.ErrServerFailing), and reports whether it fails everything: it failed so the calls of
// serverFailingPapers different papers since a message's API work was last answered, or the
// API's breaker is open already (a pause, or a probe after it). One paper that the server fails
// on while it answers the others is that paper's failure; a server that fails every paper is
// down, as one that cannot be reached.
func (w *Worker) serverDown(id string) bool {
	p := &w.pause
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.failing == nil {
		p.failing = map[string]struct{}{}
	}
	p.failing[id] = struct{}{}
	p.failingN.Store(int32(len(p.failing)))
	return len(p.failing) >= serverFailingPapers || p.api.n > 0
}

// storeAnswered closes the database's breaker: a message's results were saved.
func (w *Worker) storeAnswered() { w.closeBreaker(&w.pause.db, "the database saves results again") }

// storeReached closes the database's breaker after a micro-batch was recorded, unless the
// pause was for a database that cannot write: a connection works again.
func (w *Worker) storeReached() {
	w.closeBreakerIf(&w.pause.db, "the database answers again", func() bool { return !w.pause.dbWrite })
}

func (w *Worker) closeBreaker(b *breaker, what string) { w.closeBreakerIf(b, what, nil) }

// closeBreakerIf closes breaker b when ok (nil: always) holds, under the pauses' lock.
func (w *Worker) closeBreakerIf(b *breaker, what string, ok func() bool) {
	p := &w.pause
	if !p.active.Load() {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if b.n == 0 || ok != nil && !ok() {
		return
	}
	n := b.n
	*b = breaker{}
	p.active.Store(p.api.n > 0 || p.db.n > 0)
	if p.active.Load() {
		w.log.Info(what+"; the worker stays paused for the other service", "after_pauses", n)
		return
	}
	w.log.Info(what+": the worker resumes", "after_pauses", n)
}

// pausedFor returns what is left of the pauses in progress, 0 when none is.
func (w *Worker) pausedFor() time.Duration {
	p := &w.pause
	if !p.active.Load() {
		return 0
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return max(time.Until(p.api.until), time.Until(p.db.until), 0)
}

// Paused reports whether the worker is paused for the API (api) or for the database (db): from
// the first pause for that service until it answers again — the pauses and the messages tried
// one at a time between them.
func (w *Worker) Paused() (api, db bool) {
	p := &w.pause
	if !p.active.Load() {
		return false, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.api.n > 0, p.db.n > 0
}

// probing reports whether the worker is past its pauses with a breaker still open: it then
// tries one message at a time.
func (w *Worker) probing() bool { return w.pause.active.Load() && w.pausedFor() == 0 }

// pauseErr is the error of an ExitWhenIdle worker that stops at a pause.
func (w *Worker) pauseErr() error {
	w.pause.mu.Lock()
	defer w.pause.mu.Unlock()
	return fmt.Errorf("worker of consumer %s stopped: %w; the messages stay queued for the next run", w.cfg.Consumer, w.pause.lastOpen)
}

// handBack returns a message that failed for no fault of its own (the API refused the
// account, the database was unavailable or slow) to the queue: after the pause in progress, or FetchWait, so that this worker's open
// pull request does not get it back at once; on its last delivery, which the server would give
// up (and the message be dead-lettered), it is requeued as a new message once no pull request
// of this worker is open.
func (w *Worker) handBack(ctx context.Context, j job, why string) {
	if w.lastDelivery(j) {
		w.requeueAfterPull(ctx, j, why)
		return
	}
	j.release()
	if err := j.msg.NakWithDelay(max(w.pausedFor(), w.cfg.FetchWait)); err != nil {
		w.log.Debug("nak failed", "paper", j.a.ID, "err", err)
	}
	w.stats.retried.Add(1)
}

// waitSettled waits until every message the worker holds is settled (slots all free). It
// returns false when ctx is done first.
func waitSettled(ctx context.Context, slots chan struct{}) bool {
	n := 0
	defer func() {
		for range n {
			<-slots
		}
	}()
	for n < cap(slots) {
		select {
		case slots <- struct{}{}:
			n++
		case <-ctx.Done():
			return false
		}
	}
	return true
}
