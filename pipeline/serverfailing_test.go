package pipeline_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/summarize"
)

// TestServerFailingEveryRequestPausesTheWorker: a server that answers 5xx to every request (a
// crashed engine behind a proxy, a broken deployment) failed no paper in particular, yet each
// paper's TL;DR was retried as a failure of its own until its deliveries were used up: the
// backlog dead-lettered within minutes of the outage (about 4 at the defaults). Once the
// calls of two papers in a row fail at every attempt, none answered between them, the worker
// pauses as for a server that cannot be reached, the messages wait in the queue, and when the
// server answers again every paper is done.
func TestServerFailingEveryRequestPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, Faults: openaitest.Faults{ServerError: 1}})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Enough deliveries that retries do not dead-letter the papers before the worker has
	// paused twice; without the pause they are dead-lettered in about 15 s.
	b, papers, w, logs := pausingWorkerWith(t, sum, embed.NewOffline(), 10, pipeline.WorkerConfig{Backoff: growingBackoff})
	checkPausedAllQueued(t, b, w, papers, 2, "a server failing every request")
	if !strings.Contains(logs.String(), "the API fails every request") {
		t.Errorf("the pause does not say the API fails every request:\n%s", logs.String())
	}
	api.SetFaults(openaitest.Faults{}) // the server is back
	checkAllDone(t, b, w, papers, "the server answers again")
}

// TestServerFailingEveryRequestPausesAWorkerWithAShortMessageTime: the same server under a
// message time too short for the client's retries (PAPERPIPE_MSG_TIMEOUT, half of a short
// PAPERPIPE_ACK_WAIT: 1 s here, where 5 retries back off up to 7.75 s): each call ended at the
// deadline between two attempts answered 5xx, which was taken for the paper's failure, not the
// server's, so the worker never paused and dead-lettered the backlog (with PAPERPIPE_ACK_WAIT=5s
// and the default 8 deliveries, within 3 minutes). It pauses, saying the API fails every
// request — it answers at once, it does not hang.
func TestServerFailingEveryRequestPausesAWorkerWithAShortMessageTime(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, Faults: openaitest.Faults{ServerError: 1}})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), Model: "m"}) // the default 5 retries
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, logs := pausingWorkerWith(t, sum, embed.NewOffline(), 10, pipeline.WorkerConfig{MsgTimeout: time.Second, Backoff: growingBackoff})
	checkPausedAllQueued(t, b, w, papers, 2, "a server failing every request, the message's time shorter than the retries")
	if out := logs.String(); !strings.Contains(out, "the API fails every request") || strings.Contains(out, "the API answers no request in time") {
		t.Errorf("the pause does not say the API fails every request (or says it answers nothing in time):\n%s", out)
	}
	api.SetFaults(openaitest.Faults{}) // the server is back
	checkAllDone(t, b, w, papers, "the server answers again")
}

// TestServerAnsweringNoJSONPausesTheWorker: a server that answers every request with a
// success status and a body that is no answer (a proxy's or captive portal's HTML page, a
// web app's page where the API was meant) failed no paper in particular either, yet each
// paper was retried as a failure of its own, then dead-lettered: the whole backlog. It
// pauses the worker as a server failing every request does.
func TestServerAnsweringNoJSONPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, Faults: openaitest.Faults{Malformed: 1}})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	b, papers, w, _ := pausingWorkerWith(t, sum, embed.NewOffline(), 10, pipeline.WorkerConfig{Backoff: growingBackoff})
	checkPausedAllQueued(t, b, w, papers, 2, "a server answering no JSON to every request")
	api.SetFaults(openaitest.Faults{}) // the server is back
	checkAllDone(t, b, w, papers, "the server answers again")
}

// growingBackoff waits 300 ms more at each delivery of a message.
func growingBackoff(n int) time.Duration { return time.Duration(n) * 300 * time.Millisecond }

// failingOn returns the URL of a server that answers as api does, but 500 to every chat
// request about a (its title in the request's body), as a model server that fails on one
// input it cannot handle.
func failingOn(t *testing.T, api *openaitest.Server, a paper.Abstract) string {
	t.Helper()
	quoted, err := json.Marshal(a.Title)
	if err != nil {
		t.Fatal(err)
	}
	title := string(quoted[1 : len(quoted)-1]) // as it is in a JSON body
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		if strings.HasSuffix(r.URL.Path, "/chat/completions") && bytes.Contains(body, []byte(title)) {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, `{"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}`)
			return
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		api.Handler().ServeHTTP(w, r)
	}))
	t.Cleanup(ts.Close)
	return ts.URL + "/v1"
}

// TestPaperTheServerAloneFailsOnIsDeadLetteredAfterMaxDeliver: a paper whose requests the
// server fails at every attempt while it answers the others is that paper's failure: retried
// on each delivery, each waiting the Backoff of the delivery that failed, then dead-lettered —
// no pause — while the other papers are done.
func TestPaperTheServerAloneFailsOnIsDeadLetteredAfterMaxDeliver(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16})
	papers := sampledata.Papers(t)[:4]
	bad := papers[1]
	sum, _ := summarize.New(summarize.Config{BaseURL: failingOn(t, api, bad), APIKey: "k", Model: "m", MaxRetries: 1})
	emb := embed.NewOffline()
	b := setup(t, emb, pipeline.TopologyConfig{MaxDeliver: 3})
	publish(t, b.js, papers)
	var (
		mu      sync.Mutex
		backoff []int
	)
	ws := runUntilIdle(t, b, sum, emb, pipeline.WorkerConfig{Backoff: func(n int) time.Duration {
		mu.Lock()
		defer mu.Unlock()
		backoff = append(backoff, n)
		return 10 * time.Millisecond
	}})
	mu.Lock()
	defer mu.Unlock()
	if ws.Dead != 1 || ws.Acked != 3 || ws.Paused != 0 {
		t.Fatalf("stats = %+v, want the one paper dead, the others done, no pause", ws)
	}
	if len(backoff) != 2 || backoff[0] != 1 || backoff[1] != 2 {
		t.Errorf("Backoff asked for deliveries %v, want [1 2]: the paper's first and second delivery, not its last", backoff)
	}
	dls := deadLetters(t, b.js)
	if len(dls) != 1 || dls[0].PaperID != bad.ID || dls[0].Attempts != 3 || !strings.Contains(dls[0].Reason, "gave up after 3 deliveries") {
		t.Errorf("dead letters %+v, want %s's after 3 deliveries", dls, bad.ID)
	}
	// The embedding part succeeded and stays stored: a replay would only need the TL;DR.
	if c := counts(t, b, sum); c.WithEmbedding != 4 || c.WithTLDR != 3 {
		t.Errorf("counts = %+v, want 4 embeddings and 3 TL;DRs", c)
	}
}

// TestAPIThatAnswersNothingPausesTheWorker: an API that hangs — it takes every request and
// answers none (an engine stuck behind a proxy, a GPU hung), or a model slower than the
// message's time allows — failed no paper in particular either, yet each message's call was
// cut at its MsgTimeout and the message retried as a failure of its own until its deliveries
// were used up: the backlog dead-lettered. Once the calls of two papers in a row get no answer
// in their time, none answered between them, the worker pauses as for a server failing every
// request, saying what the message's time is; when the API answers again every paper is done.
func TestAPIThatAnswersNothingPausesTheWorker(t *testing.T) {
	t.Parallel()
	api := openaitest.Start(t, openaitest.Config{Dimensions: 16, Faults: openaitest.Faults{Timeout: 1, TimeoutHold: time.Minute}})
	sum, err := summarize.New(summarize.Config{BaseURL: api.URL(), Model: "m", MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	// Enough deliveries that the failed calls do not dead-letter the papers before the worker
	// has paused twice; without the pause they are dead-lettered in about 20 s.
	b, papers, w, logs := pausingWorkerWith(t, sum, embed.NewOffline(), 10, pipeline.WorkerConfig{MsgTimeout: time.Second, Backoff: growingBackoff})
	checkPausedAllQueued(t, b, w, papers, 2, "an API that answers nothing")
	if out := logs.String(); !strings.Contains(out, "the API answers no request in time") || !strings.Contains(out, "PAPERPIPE_MSG_TIMEOUT") {
		t.Errorf("the pause does not say the API answers nothing in time, and what sets the time:\n%s", out)
	}
	api.SetFaults(openaitest.Faults{}) // the API answers again
	checkAllDone(t, b, w, papers, "the API answers again")
}
