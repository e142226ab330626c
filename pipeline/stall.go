package pipeline

import (
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// stallAfter is how long one write to the database (a save attempt, a micro-batch's intake)
// may go unanswered before the worker says it waits for the database: writes take milliseconds,
// and the breaker opens only once a save's retries give up (up to 2.6 minutes when the database
// is silent) or an intake runs out of IntakeTimeout (a minute), during which status showed the
// worker as working.
const stallAfter = 5 * time.Second

// stalls watches the worker's writes to the database that are under way: a save between its
// first failed attempt and its end (saveWithRetry retrying it), or a write unanswered for
// stallAfter, is a worker that waits for the database (State: StateStalled).
type stalls struct {
	mu   sync.Mutex
	next uint64
	ops  map[uint64]*stallOp
}

// stallOp is one write under way.
type stallOp struct {
	what    string    // "TL;DRs", "embeddings", "papers" (an intake)
	attempt time.Time // its current attempt began; zero between attempts
	failed  error     // its last attempt's error, while it is retried; nil before any failed
}

// begin starts watching a write of what; end(id) stops.
func (s *stalls) begin(what string) uint64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.ops == nil {
		s.ops = map[uint64]*stallOp{}
	}
	s.next++
	s.ops[s.next] = &stallOp{what: what}
	return s.next
}

func (s *stalls) end(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.ops, id)
}

// started records that an attempt of write id begins.
func (s *stalls) started(id uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if op := s.ops[id]; op != nil {
		op.attempt = time.Now()
	}
}

// ended records that an attempt of write id ended with err: a failure its retries may mend
// keeps the write stalled until it ends.
func (s *stalls) ended(id uint64, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	op := s.ops[id]
	if op == nil {
		return
	}
	op.attempt = time.Time{}
	if err != nil && !saveFinal(err) {
		op.failed = err
	}
}

// stalled reports the pause-like account of a worker that waits for the database at now: a
// save retried after a failure, or a write unanswered for stallAfter; nil when none is.
func (s *stalls) stalled(now time.Time) *Pause {
	s.mu.Lock()
	defer s.mu.Unlock()
	var waited time.Duration
	var slow, failed *stallOp
	for _, op := range s.ops {
		if op.failed != nil && failed == nil {
			failed = op
		}
		if !op.attempt.IsZero() && now.Sub(op.attempt) >= stallAfter && now.Sub(op.attempt) > waited {
			slow, waited = op, now.Sub(op.attempt)
		}
	}
	switch {
	case failed != nil:
		return &Pause{Reason: StallDatabase, Detail: pauseDetail(fmt.Errorf("saving %s failed, retrying: %w", failed.what, failed.failed))}
	case slow != nil:
		return &Pause{Reason: StallDatabase, Detail: fmt.Sprintf("writing %s: no answer from the database for %s", slow.what, waited.Round(time.Second))}
	}
	return nil
}

// saveFinal reports whether a save's error ends its retries (see retryTiming.do): the records'
// own failure, not the database's.
func saveFinal(err error) bool {
	return errors.Is(err, paper.ErrInvalid) || errors.Is(err, paper.ErrSpaceDropped) || errors.Is(err, paper.ErrLocked)
}
