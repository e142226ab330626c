package pipeline

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// heldStore answers UpsertPapers with what each call receives on answers, after saying on
// entered that the call came: a database that has not answered yet, for as long as the test
// likes. Its other methods are not called.
type heldStore struct {
	Store
	entered chan struct{}
	answers chan error
}

func (s heldStore) UpsertPapers(ctx context.Context, _ []paper.Abstract, _ paper.Work) ([]paper.Pending, error) {
	s.entered <- struct{}{}
	return nil, <-s.answers
}

// A worker's write that has gone unanswered for 5 s is a worker waiting for the database (status
// says "stalled"), whether it is a save of results (saveWithRetry) or a micro-batch's intake
// (upsertBy), and one answered sooner is not; a save whose attempt failed is stalled from the
// failure on, while its retries run, naming the error; a write that ended is no stall. The
// stall is read at times after the write began (stalls.stalled(now)), not waited for.
func TestAWriteUnansweredForFiveSecondsOrRetriedIsAStall(t *testing.T) {
	t.Parallel()
	w := stateWorker(nil)
	st := heldStore{entered: make(chan struct{}), answers: make(chan error)}
	w.store = st

	// An intake, unanswered.
	began := time.Now()
	intake := make(chan error, 1)
	go func() {
		_, err := w.upsertBy(t.Context(), []paper.Abstract{{ID: "x"}}, time.Now().Add(time.Hour))
		intake <- err
	}()
	<-st.entered
	// The attempt began after began: at began+4.99s it has waited less than 5 s.
	if p := w.stalls.stalled(began.Add(5*time.Second - 10*time.Millisecond)); p != nil {
		t.Errorf("an intake under way for less than 5 s is a stall: %+v", p)
	}
	p := w.stalls.stalled(time.Now().Add(5 * time.Second))
	if p == nil || p.Reason != StallDatabase || !strings.Contains(p.Detail, "writing papers: no answer from the database for ") {
		t.Errorf("an intake unanswered for 5 s: stall %+v, want %s saying that the papers' write has had no answer", p, StallDatabase)
	}
	st.answers <- nil
	if err := <-intake; err != nil {
		t.Fatal(err)
	}
	if p := w.stalls.stalled(time.Now().Add(time.Hour)); p != nil {
		t.Errorf("an intake answered is still a stall: %+v", p)
	}

	// A save of TL;DRs, unanswered, then failing and retried, then done.
	saved := make(chan error, 1)
	go func() {
		saved <- w.saveWithRetry(t.Context(), "TL;DRs", func(ctx context.Context) error {
			_, err := st.UpsertPapers(ctx, nil, paper.Work{})
			return err
		})
	}()
	<-st.entered
	p = w.stalls.stalled(time.Now().Add(5 * time.Second))
	if p == nil || !strings.Contains(p.Detail, "writing TL;DRs: no answer from the database for ") {
		t.Errorf("a save unanswered for 5 s: stall %+v, want one saying that the TL;DRs' write has had no answer", p)
	}
	st.answers <- errors.New("connection reset by peer")
	<-st.entered // the second attempt
	p = w.stalls.stalled(time.Now())
	if p == nil || p.Reason != StallDatabase || !strings.Contains(p.Detail, "saving TL;DRs failed, retrying") || !strings.Contains(p.Detail, "connection reset by peer") {
		t.Errorf("a save retried after a failure: stall %+v, want %s naming the save and its error at once", p, StallDatabase)
	}
	st.answers <- nil
	if err := <-saved; err != nil {
		t.Fatal(err)
	}
	if p := w.stalls.stalled(time.Now().Add(time.Hour)); p != nil {
		t.Errorf("a save done is still a stall: %+v", p)
	}
}

// A stall is no pause: status's line of a stalled worker says that it waits for the database,
// not that it tries one message at a time (a pause's probing), nor until when (a stall has no
// end of its own).
func TestAStallsTextSaysItWaitsForTheDatabaseAndNothingOfAPause(t *testing.T) {
	t.Parallel()
	got := Pause{Reason: StallDatabase, Detail: "writing TL;DRs: no answer from the database for 5s"}.Text(time.Now())
	if want := "waiting for the database: a write failed and is retried, or has no answer yet"; got != want {
		t.Errorf("a stall's text: %q, want %q", got, want)
	}
}
