package pipeline

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// stateWorker is a worker as far as State and openPause need it: an hour's pause at each
// failure, and the rate limit rateLimited reports (nil: none).
func stateWorker(rateLimited func() time.Time) *Worker {
	w := &Worker{log: slog.New(slog.DiscardHandler), cfg: WorkerConfig{Backoff: func(int) time.Duration { return time.Hour }}}
	// The timings Run sets from the consumer before any pause (a pause's log line names the
	// message timeout).
	w.tm.Store(&workerTimings{ackWait: time.Minute, progress: 15 * time.Second, msgTimeout: 45 * time.Second, maxDeliver: 8, changed: make(chan struct{})})
	if rateLimited != nil {
		w.cfg.APILimitedBy = func() (time.Time, bool) { return rateLimited(), false }
	}
	return w
}

// State says why a worker pauses as the cause that opened its pause: status and the status page
// show a reason from it (and what to fix), so a database that cannot be reached must not read
// as the API's refusal, nor a certificate's failure as a refused key. It says it from the first
// pause on, and the database's first when both services failed: while the database is down no
// message goes through, whatever the API does.
func TestStateSaysEachPauseWithTheReasonOfItsCause(t *testing.T) {
	for _, tc := range []struct {
		name   string
		causes []error
		want   string
	}{
		{"database", []error{fmt.Errorf("save: %w", paper.ErrUnavailable)}, PauseDatabase},
		{"unreachable API", []error{fmt.Errorf("call: %w", llm.ErrUnreachable)}, PauseAPIDown},
		{"TLS", []error{fmt.Errorf("call: %w", llm.ErrTLS)}, PauseAPIDown},
		{"failing API", []error{fmt.Errorf("call: %w", llm.ErrServerFailing)}, PauseAPIFailing},
		{"API answering nothing in time", []error{fmt.Errorf("call: %w: %w", llm.ErrServerFailing, context.DeadlineExceeded)}, PauseAPIFailing},
		{"refused account", []error{fmt.Errorf("call: %w", llm.ErrAccount)}, PauseAPIRefused},
		{"API, then the database", []error{fmt.Errorf("call: %w", llm.ErrAccount), fmt.Errorf("save: %w", paper.ErrUnavailable)}, PauseDatabase},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w := stateWorker(nil)
			before := time.Now()
			for _, c := range tc.causes {
				w.openPause(c)
			}
			s := w.State()
			if s.State != StatePaused || s.Pause == nil || s.Pause.Reason != tc.want {
				t.Fatalf("State after a pause for %v: %+v (pause %+v), want paused, %s", tc.causes, s, s.Pause, tc.want)
			}
			last := tc.causes[len(tc.causes)-1]
			if s.Pause.Detail != last.Error() || s.Pause.Until.Before(before.Add(59*time.Minute)) {
				t.Errorf("pause %+v, want the detail %q and the hour's end", s.Pause, last.Error())
			}
		})
	}
}

// A pause whose end has passed, while the worker tries one message at a time until one goes
// through, has no end to show (Text: "trying one message at a time"), not a past one; and a
// worker whose only pause is the API's rate limit shows it, with the end the API gave, until
// that end — then it is idle again.
func TestStateGivesAPausesEndOnlyWhileItRuns(t *testing.T) {
	w := stateWorker(nil)
	w.openPause(fmt.Errorf("call: %w", llm.ErrUnreachable))
	w.pause.mu.Lock()
	w.pause.api.until = time.Now().Add(-time.Second)
	w.pause.mu.Unlock()
	if s := w.State(); s.State != StatePaused || s.Pause == nil || !s.Pause.Until.IsZero() {
		t.Errorf("State once the pause has ended and the breaker is still open: %+v (pause %+v), want paused, no end", s, s.Pause)
	}

	end := time.Now().Add(time.Hour)
	until := end
	w = stateWorker(func() time.Time { return until })
	if s := w.State(); s.State != StatePaused || s.Pause == nil || s.Pause.Reason != PauseRateLimited || !s.Pause.Until.Equal(end) {
		t.Errorf("State while rate limited for an hour: %+v (pause %+v), want paused, %s until %s", s, s.Pause, PauseRateLimited, end)
	}
	until = time.Now().Add(-time.Second)
	if s := w.State(); s.State != StateIdle || s.Pause != nil {
		t.Errorf("State once the rate limit has lifted: %+v (pause %+v), want idle", s, s.Pause)
	}
}

// A stopping worker is stopping while it still holds messages (it finishes them): a worker
// told to stop must not read as working on.
func TestStateOfAStoppingWorkerHoldingMessagesIsStopping(t *testing.T) {
	w := stateWorker(nil)
	w.held.Store(3)
	if s := w.State(); s.State != StateWorking || s.Held != 3 {
		t.Errorf("State holding 3 messages: %+v, want working, 3 held", s)
	}
	w.stopping.Store(true)
	if s := w.State(); s.State != StateStopping || s.Held != 3 {
		t.Errorf("State stopping with 3 messages held: %+v, want stopping, 3 held", s)
	}
}

// A worker told to stop while the API's rate limit holds its requests, or its own pause runs,
// is stopping: it read as paused, as a worker that would go on once the limit lifted, while
// it was handing its messages back to end.
func TestAStoppingWorkerHeldByARateLimitOrAPauseIsStopping(t *testing.T) {
	end := time.Now().Add(time.Hour)
	w := stateWorker(func() time.Time { return end })
	w.held.Store(2)
	w.stopping.Store(true)
	if s := w.State(); s.State != StateStopping || s.Held != 2 || s.Pause != nil {
		t.Errorf("State stopping while rate limited for an hour: %+v (pause %+v), want stopping, 2 held", s, s.Pause)
	}
	w = stateWorker(nil)
	w.openPause(fmt.Errorf("call: %w", llm.ErrUnreachable))
	w.stopping.Store(true)
	if s := w.State(); s.State != StateStopping || s.Pause != nil {
		t.Errorf("State stopping while paused: %+v (pause %+v), want stopping", s, s.Pause)
	}
}

// A pause's detail is one line (status prints it so, under the worker) and bounded: an API's
// error may carry a long body over many lines.
func TestAPausesDetailIsOneBoundedLine(t *testing.T) {
	if d := pauseDetail(errors.New("401 Unauthorized:\n  {\"error\":\n\t\"bad key\"}")); d != `401 Unauthorized: {"error": "bad key"}` {
		t.Errorf("detail %q, want one line", d)
	}
	long := pauseDetail(errors.New(strings.Repeat("é", maxPauseDetail)))
	if !strings.HasSuffix(long, "…") || len(long) > maxPauseDetail+len("…") || !strings.HasPrefix(long, "éé") {
		t.Errorf("detail of %d bytes %q…, want at most %d and an ellipsis", len(long), long[:min(len(long), 20)], maxPauseDetail)
	}
}

// The errors of a pause's join (a TL;DR's and an embedding's) are told apart in its one line.
func TestAPausesDetailSeparatesTheErrorsItJoins(t *testing.T) {
	cause := errors.Join(errors.New("tldr: connection refused"), errors.New("embedding: connection\nrefused"))
	if d, want := pauseDetail(cause), "tldr: connection refused; embedding: connection refused"; d != want {
		t.Errorf("detail %q, want %q", d, want)
	}
}

// An entry is overdue once it is older than twice its worker's refresh (a worker killed, or cut
// off from NATS: status says so), and not before — one write late is a busy moment; an entry
// without a refresh is never said overdue.
func TestAnAnnouncementIsOverdueAfterTwoMissedRefreshes(t *testing.T) {
	seen := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	a := AnnouncedWorker{Announcement: Announcement{Refresh: 10}, LastSeen: seen}
	for ago, want := range map[time.Duration]bool{19 * time.Second: false, 21 * time.Second: true, time.Hour: true} {
		if got := a.Overdue(seen.Add(ago)); got != want {
			t.Errorf("Overdue %s after the last write, refresh 10 s: %v, want %v", ago, got, want)
		}
	}
	if (AnnouncedWorker{LastSeen: seen}).Overdue(seen.Add(time.Hour)) {
		t.Error("an entry without a refresh is overdue")
	}
}

// A pause's text gives its end, and how far off it is only while it is ahead: an entry not
// refreshed since shows a past end, not "in 0s" or "in -5m".
func TestAPausesTextGivesItsEndAndTheTimeLeftOnlyAhead(t *testing.T) {
	now := time.Date(2026, 1, 1, 12, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		p    Pause
		want string
	}{
		{Pause{Reason: PauseRateLimited, Until: now.Add(time.Hour)}, "rate limited by the API until 2026-01-01 13:00:00 UTC (in 1h0m0s)"},
		{Pause{Reason: PauseRateLimited, Until: now.Add(-5 * time.Minute)}, "rate limited by the API until 2026-01-01 11:55:00 UTC"},
		{Pause{Reason: PauseDatabase}, "the database cannot be reached or cannot write; trying one message at a time"},
		{Pause{Reason: "new_reason"}, "new_reason; trying one message at a time"},
	} {
		if got := tc.p.Text(now); got != tc.want {
			t.Errorf("Text of %+v = %q, want %q", tc.p, got, tc.want)
		}
	}
}

// A worker that cannot announce itself because NATS refused it (an API error: a stream it may
// not create, a limit of the account) is told how to make the bucket for it.
func TestAnAnnouncementRefusedByNATSSaysHowToMakeTheBucket(t *testing.T) {
	err := fmt.Errorf("create bucket: %w", &jetstream.APIError{Code: 400, ErrorCode: 10027, Description: "insufficient resources"})
	if got := explainAnnounce(err); !strings.Contains(got, "nats kv add "+BucketWorkers) {
		t.Errorf("explainAnnounce(%v) = %q, want how to make the bucket", err, got)
	}
}

// A worker whose entry the bucket, which exists, did not take for another cause than its size or
// room is not told to make the bucket: a write NATS did not acknowledge (the account may not
// publish to the bucket's subjects, or the server was slow) says how to allow the publish, and
// any other failure that the write is tried again at each refresh.
func TestAnEntryTheBucketDidNotTakeIsNotAdvisedToMakeTheBucket(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{nats.ErrTimeout, "NATS did not acknowledge the write"},
		{nats.ErrPermissionViolation, "allow the workers to publish to $KV." + BucketWorkers + ".>"},
		{context.DeadlineExceeded, "NATS did not acknowledge the write"},
		{errors.New("connection closed"), "tried again every refresh"},
		{&jetstream.APIError{Code: 503, ErrorCode: 10008, Description: "JetStream system temporarily unavailable"}, "tried again every refresh"},
	} {
		err := &entryWriteError{key: "k", size: 300, err: tc.err}
		if got := explainAnnounce(fmt.Errorf("announce: %w", err)); strings.Contains(got, "nats kv add") || !strings.Contains(got, tc.want) {
			t.Errorf("explainAnnounce of a write refused with %v = %q, want %q and no advice to make the bucket", tc.err, got, tc.want)
		}
	}
}

// The warning of a pause for an API that answers no request in time names the message's time,
// which a slow model may need raised (PAPERPIPE_MSG_TIMEOUT): the consumer's, as Run follows it.
func TestAPauseForAnAPIAnsweringNothingInTimeNamesTheMessagesTime(t *testing.T) {
	w := stateWorker(nil)
	var logs bytes.Buffer
	w.log = slog.New(slog.NewTextHandler(&logs, nil))
	w.openPause(fmt.Errorf("call: %w: %w", llm.ErrServerFailing, context.DeadlineExceeded))
	if !strings.Contains(logs.String(), "none answered within the message's 45s") {
		t.Errorf("the pause's warning does not name the message's time, 45s:\n%s", logs.String())
	}
}
