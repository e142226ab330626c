package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/internal/nettest"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/paper"
)

func TestClassify(t *testing.T) {
	t.Parallel()
	synErr := func() *json.SyntaxError {
		var v any
		err := json.Unmarshal([]byte(`{"a" 1}`), &v)
		var s *json.SyntaxError
		errors.As(err, &s)
		return s
	}()
	for _, tc := range []struct {
		name string
		err  error
		want Class
	}{
		{"api 429", &openai.APIError{HTTPStatusCode: 429}, RateLimited},
		{"api 429 insufficient quota", &openai.APIError{HTTPStatusCode: 429, Code: "insufficient_quota"}, Account},
		{"api 400", &openai.APIError{HTTPStatusCode: 400}, Permanent},
		{"api 404", &openai.APIError{HTTPStatusCode: 404}, Account},
		{"api 413", &openai.APIError{HTTPStatusCode: 413}, Permanent},
		{"api 422", &openai.APIError{HTTPStatusCode: 422}, Permanent},
		{"api 500", &openai.APIError{HTTPStatusCode: 500}, Transient},
		{"api 503", &openai.APIError{HTTPStatusCode: 503}, Transient},
		{"llama.cpp loading its model", &openai.APIError{HTTPStatusCode: 503, Message: "Loading model", Type: "unavailable_error"}, Account},
		{"api 401", &openai.APIError{HTTPStatusCode: 401}, Account},
		{"api 403", &openai.APIError{HTTPStatusCode: 403}, Account},
		{"api 402 (a gateway's insufficient credits)", &openai.APIError{HTTPStatusCode: 402}, Account},
		{"api 501 (llama.cpp without --embeddings)", &openai.APIError{HTTPStatusCode: 501, Message: "This server does not support embeddings. Start it with `--embeddings`"}, Account},
		{"request 401", &openai.RequestError{HTTPStatusCode: 401}, Account},
		{"wrapped ErrAccount", fmt.Errorf("tldr: %w", ErrAccount), Account},
		{"request 429", &openai.RequestError{HTTPStatusCode: 429}, RateLimited},
		{"request 400", &openai.RequestError{HTTPStatusCode: 400}, Permanent},
		{"request 502", &openai.RequestError{HTTPStatusCode: 502}, Transient},
		{"wrapped api 400", fmt.Errorf("chat: %w", &openai.APIError{HTTPStatusCode: 400}), Permanent},
		{"ErrPermanent", fmt.Errorf("dimension: %w", paper.ErrPermanent), Permanent},
		{"dial error", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, Account},
		{"no such host", &net.DNSError{Err: "no such host", Name: "api.example"}, Account},
		{"proxy down", &url.Error{Op: "Post", Err: &net.OpError{Op: "proxyconnect", Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}}, Account},
		{"read error", &net.OpError{Op: "read", Err: errors.New("connection reset by peer")}, Transient},
		{"timeout", context.DeadlineExceeded, Transient},
		{"unexpected EOF", fmt.Errorf("decode: %w", io.ErrUnexpectedEOF), Transient},
		{"json syntax", synErr, Transient},
		{"json type", &json.UnmarshalTypeError{Value: "string"}, Transient},
		{"bad response", fmt.Errorf("no choices: %w", ErrBadResponse), Transient},
		{"unknown", errors.New("boom"), Transient},
	} {
		if got := Classify(tc.err); got != tc.want {
			t.Errorf("%s: Classify = %v, want %v", tc.name, got, tc.want)
		}
	}
}

func fastRetrier(maxRetries int) Retrier {
	return Retrier{MaxRetries: maxRetries, BaseDelay: time.Millisecond, MaxDelay: 2 * time.Millisecond, Timeout: time.Second}
}

func TestRetrierRetriesTransientThenSucceeds(t *testing.T) {
	t.Parallel()
	calls := 0
	res, err := fastRetrier(3).Do(context.Background(), 1, func(context.Context) error {
		calls++
		if calls < 3 {
			return &openai.APIError{HTTPStatusCode: 500}
		}
		return nil
	})
	if err != nil || res.Attempts != 3 || calls != 3 {
		t.Fatalf("Do = %+v, %v after %d calls; want success on the third", res, err, calls)
	}
}

func TestRetrierGivesUpAfterMaxRetriesWithTransientError(t *testing.T) {
	t.Parallel()
	calls := 0
	_, err := fastRetrier(2).Do(context.Background(), 1, func(context.Context) error {
		calls++
		return &openai.APIError{HTTPStatusCode: 503}
	})
	if err == nil || calls != 3 {
		t.Fatalf("calls = %d, err = %v; want 3 calls and an error", calls, err)
	}
	if errors.Is(err, paper.ErrPermanent) {
		t.Fatal("exhausted transient retries must stay transient")
	}
}

// TestRetrierSaysWhenEveryAttemptWasAServerError: a call whose every attempt the API answered
// 5xx is marked ErrServerFailing, which a worker counts across papers to tell a server that
// fails everything; one with another failure among them (a broken body, a timeout) is not.
func TestRetrierSaysWhenEveryAttemptWasAServerError(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		errs []error
		want bool
	}{
		{"500, 502, 503", []error{&openai.APIError{HTTPStatusCode: 500}, &openai.APIError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 503}}, true},
		{"a 429 waited out among them", []error{&openai.APIError{HTTPStatusCode: 500}, &openai.APIError{HTTPStatusCode: 429}, &openai.APIError{HTTPStatusCode: 500}, &openai.APIError{HTTPStatusCode: 504}}, true},
		{"a malformed body among them", []error{&openai.APIError{HTTPStatusCode: 500}, io.ErrUnexpectedEOF, &openai.APIError{HTTPStatusCode: 500}}, false},
		{"timeouts", []error{context.DeadlineExceeded, context.DeadlineExceeded, context.DeadlineExceeded}, false},
		// A success status with an HTML page (a proxy's, a web app's): not the API's answer.
		{"bodies that are not JSON", []error{&json.SyntaxError{}, &openai.APIError{HTTPStatusCode: 502}, &json.SyntaxError{}}, true},
		{"an answer without choices among them", []error{&openai.APIError{HTTPStatusCode: 500}, fmt.Errorf("no choices: %w", ErrBadResponse), &openai.APIError{HTTPStatusCode: 500}}, false},
	} {
		calls := 0
		_, err := fastRetrier(2).Do(context.Background(), 1, func(context.Context) error {
			calls++
			return tc.errs[calls-1]
		})
		if err == nil || errors.Is(err, ErrServerFailing) != tc.want || Classify(err) != Transient {
			t.Errorf("%s: %v (%s); want a transient error, ErrServerFailing %v", tc.name, err, Classify(err), tc.want)
		}
	}
}

// TestRetrierSaysWhenEveryAttemptSpokeOfTheServer: a call whose every attempt was answered
// with a status of a server that is down (a proxy's 502, a 503) or a body that is not the
// API's answer is marked ErrServerDown as well, which a worker's probe after a pause uses no
// delivery for; one with a 500 or a gateway's 504 among them (which may be the input's: a 504 is
// a proxy's timeout of a model that an input hangs) is not, nor one whose message text changes.
func TestRetrierSaysWhenEveryAttemptSpokeOfTheServer(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		errs []error
		want bool
	}{
		{"502, 503, 502", []error{&openai.RequestError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 503}, &openai.APIError{HTTPStatusCode: 502}}, true},
		{"a 504 among them", []error{&openai.RequestError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 504}, &openai.APIError{HTTPStatusCode: 503}}, false},
		{"504s", []error{&openai.APIError{HTTPStatusCode: 504}, &openai.APIError{HTTPStatusCode: 504}, &openai.APIError{HTTPStatusCode: 504}}, false},
		{"a 429 waited out among them", []error{&openai.APIError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 429}, &openai.APIError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 502}}, true},
		{"bodies that are not JSON", []error{&json.SyntaxError{}, &openai.APIError{HTTPStatusCode: 502}, &json.SyntaxError{}}, true},
		{"a 500 among them", []error{&openai.APIError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 500}, &openai.APIError{HTTPStatusCode: 502}}, false},
		{"500s", []error{&openai.APIError{HTTPStatusCode: 500}, &openai.APIError{HTTPStatusCode: 500}, &openai.APIError{HTTPStatusCode: 500}}, false},
	} {
		calls := 0
		_, err := fastRetrier(2).Do(context.Background(), 1, func(context.Context) error {
			calls++
			return tc.errs[calls-1]
		})
		if !errors.Is(err, ErrServerFailing) || errors.Is(err, ErrServerDown) != tc.want {
			t.Errorf("%s: %v; want ErrServerFailing, ErrServerDown %v", tc.name, err, tc.want)
		}
		if err != nil && strings.Contains(err.Error(), ErrServerDown.Error()) {
			t.Errorf("%s: %v: the mark changed the message", tc.name, err)
		}
	}
}

// TestRetrierSaysTheServerFailedWhenTheCallsTimeEndsBetweenAttempts: a call whose deadline
// (a worker's PAPERPIPE_MSG_TIMEOUT, half of a short PAPERPIPE_ACK_WAIT) ends while it waits
// to try again, every attempt so far answered 5xx, is a server failing every attempt it was
// given — the retries did not fit in its time, not a failure of the paper. It returned the
// deadline's error alone, so a worker under a server answering 500 to everything took each
// paper's call for the paper's failure and dead-lettered the backlog instead of pausing. The
// error names the server's answer, not the deadline (the server answered: it does not hang).
// A call with another failure among its attempts, or cancelled (a shutdown), stays as it was.
func TestRetrierSaysTheServerFailedWhenTheCallsTimeEndsBetweenAttempts(t *testing.T) {
	t.Parallel()
	// Backoffs of up to an hour: the call's deadline ends during a wait, after one or a few
	// attempts (should every attempt fit, the call gives up with ErrServerFailing all the same).
	r := Retrier{MaxRetries: 5, BaseDelay: time.Hour, MaxDelay: time.Hour, Timeout: time.Second}
	for _, tc := range []struct {
		name string
		errs []error
		want bool
		down bool // ErrServerDown too: every attempt's answer spoke of the server
	}{
		{"500s", []error{&openai.APIError{HTTPStatusCode: 500}}, true, false},
		{"502 then 503s", []error{&openai.APIError{HTTPStatusCode: 502}, &openai.APIError{HTTPStatusCode: 503}}, true, true},
		{"a truncated body first", []error{io.ErrUnexpectedEOF, &openai.APIError{HTTPStatusCode: 500}}, false, false},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 150*time.Millisecond)
		calls := 0
		_, err := r.Do(ctx, 1, func(context.Context) error {
			calls++
			return tc.errs[min(calls, len(tc.errs))-1]
		})
		cancel()
		if got := errors.Is(err, ErrServerFailing); got != tc.want || err == nil || Classify(err) != Transient {
			t.Errorf("%s: %v (%s) after %d calls; want a transient error, ErrServerFailing %v", tc.name, err, Classify(err), calls, tc.want)
		}
		if tc.want && (errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), "status code: 50")) {
			t.Errorf("%s: %v; want the server's answer, not the deadline, as the cause", tc.name, err)
		}
		if errors.Is(err, ErrServerDown) != tc.down {
			t.Errorf("%s: %v; want ErrServerDown %v", tc.name, err, tc.down)
		}
	}
	// Cancelled (a worker's shutdown) between attempts: the cancellation, as before.
	ctx, cancel := context.WithCancel(context.Background())
	_, err := r.Do(ctx, 1, func(context.Context) error {
		cancel()
		return &openai.APIError{HTTPStatusCode: 500}
	})
	if !errors.Is(err, context.Canceled) || errors.Is(err, ErrServerFailing) {
		t.Errorf("cancelled between attempts: %v; want context.Canceled alone", err)
	}
}

// TestRetrierSaysTheServerFailedWhenTheCallsTimeEndsEarlyInAnAttempt: the call's deadline
// ending early in an attempt (before minUnansweredConnect: no hang, the retries did not fit),
// every earlier attempt answered 5xx, is the server failing every attempt the call had time
// for, as a deadline ending in the wait before that attempt is. It returned the deadline's
// error alone: which of the two a call got depended on where its deadline fell — in the wait or
// in the next request, a server answering 500 after a few hundred milliseconds — and each call
// that got the deadline's error used a delivery of its paper as the paper's own failure.
func TestRetrierSaysTheServerFailedWhenTheCallsTimeEndsEarlyInAnAttempt(t *testing.T) {
	t.Parallel()
	// A 500 may be the input's; a proxy's 502 for its server that is down is not (ErrServerDown).
	for _, first := range []int{http.StatusInternalServerError, http.StatusBadGateway} {
		callsTimeEndsEarlyInAnAttempt(t, first)
	}
}

func callsTimeEndsEarlyInAnAttempt(t *testing.T, first int) {
	var mu sync.Mutex
	requests := 0
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		requests++
		n := requests
		mu.Unlock()
		if n == 1 {
			w.WriteHeader(first)
			return
		}
		<-r.Context().Done() // the next answer takes longer than the call has left
	}))
	defer ts.Close()
	r := Retrier{MaxRetries: 5, BaseDelay: time.Millisecond, MaxDelay: time.Millisecond, Timeout: time.Minute}
	ctx, cancel := context.WithTimeout(context.Background(), 400*time.Millisecond)
	defer cancel()
	_, err := r.Do(ctx, 1, func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ts.URL, nil)
		if err != nil {
			return err
		}
		resp, err := ts.Client().Do(req)
		if err != nil {
			return err
		}
		resp.Body.Close()
		return &openai.APIError{HTTPStatusCode: resp.StatusCode, Message: "server error"}
	})
	mu.Lock()
	n := requests
	mu.Unlock()
	if n < 2 {
		t.Skipf("the first attempt took the call's whole time (%d requests): the machine is too slow for this test", n)
	}
	if !errors.Is(err, ErrServerFailing) || errors.Is(err, context.DeadlineExceeded) || !strings.Contains(err.Error(), fmt.Sprintf("status code: %d", first)) {
		t.Errorf("Do = %v after %d requests; want ErrServerFailing with the first attempt's %d as the cause", err, n, first)
	}
	if errors.Is(err, ErrServerDown) != (first != http.StatusInternalServerError) {
		t.Errorf("first answer %d: Do = %v; want ErrServerDown only after a status that speaks of the server", first, err)
	}
}

// TestUnusableReason: what go-openai returns for a 200 whose body it cannot use, by why; a
// request that got no answer (net/http's "Post …: EOF" for a connection closed before the
// answer) or an error status is no unusable answer.
func TestUnusableReason(t *testing.T) {
	t.Parallel()
	decode := func(body string) error {
		var v openai.ChatCompletionResponse
		return json.NewDecoder(strings.NewReader(body)).Decode(&v) // as go-openai decodes
	}
	for _, tc := range []struct {
		err  error
		want string
	}{
		{decode("<html>502 Bad Gateway</html>"), UnusableNotJSON},
		{decode(`{"id":"c1","choices":[{"index":0`), UnusableTruncated},
		{decode(""), UnusableEmpty},
		{decode(`{"choices":"none"}`), UnusableWrongShape},
		{fmt.Errorf("chat completion without choices: %w", ErrBadResponse), UnusableIncomplete},
		{&url.Error{Op: "Post", URL: "http://x/v1/chat/completions", Err: io.EOF}, ""},
		{&openai.APIError{HTTPStatusCode: 500}, ""},
		{context.DeadlineExceeded, ""},
	} {
		if got := UnusableReason(tc.err); got != tc.want {
			t.Errorf("UnusableReason(%v) = %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestRetrierStopsAtPermanentError(t *testing.T) {
	t.Parallel()
	calls := 0
	_, err := fastRetrier(5).Do(context.Background(), 1, func(context.Context) error {
		calls++
		return &openai.APIError{HTTPStatusCode: 400, Message: "bad"}
	})
	if calls != 1 || !errors.Is(err, paper.ErrPermanent) {
		t.Fatalf("calls = %d, err = %v; want one call and ErrPermanent", calls, err)
	}
	var apiErr *openai.APIError
	if !errors.As(err, &apiErr) {
		t.Fatal("the cause must stay inspectable")
	}
}

// An error the caller's function already marks permanent is returned as it is: wrapped again it
// read "permanent failure: …: permanent failure" in dead letters' reasons.
func TestRetrierSaysPermanentFailureOnce(t *testing.T) {
	t.Parallel()
	calls := 0
	_, err := fastRetrier(5).Do(context.Background(), 1, func(context.Context) error {
		calls++
		return fmt.Errorf("the answer cannot be used: %w", paper.ErrPermanent)
	})
	if calls != 1 || !errors.Is(err, paper.ErrPermanent) {
		t.Fatalf("calls = %d, err = %v; want one call and ErrPermanent", calls, err)
	}
	if n := strings.Count(err.Error(), paper.ErrPermanent.Error()); n != 1 {
		t.Errorf("error %q says %q %d times, want once", err, paper.ErrPermanent, n)
	}
}

// TestRetrierReturnsAccountErrorsAtOnceWithoutTheKey: a 401, 403, 404 or an exhausted quota
// gets the same answer a moment later: no retry; the error says what the API said, marked
// ErrAccount for the worker to pause on, without the key should the answer quote it.
func TestRetrierReturnsAccountErrorsAtOnceWithoutTheKey(t *testing.T) {
	t.Parallel()
	const key = "sk-proj-abcdefghijklmnop"
	for _, apiErr := range []*openai.APIError{
		{HTTPStatusCode: 401, Message: "Incorrect API key provided: " + key + "."},
		{HTTPStatusCode: 429, Code: "insufficient_quota", Message: "You exceeded your current quota."},
		{HTTPStatusCode: 404, Message: "The model `gpt-9` does not exist."},
	} {
		calls := 0
		r := fastRetrier(5)
		r.APIKey = key
		_, err := r.Do(context.Background(), 1, func(context.Context) error {
			calls++
			return apiErr
		})
		if calls != 1 || !errors.Is(err, ErrAccount) || errors.Is(err, paper.ErrPermanent) {
			t.Errorf("%d: calls = %d, err = %v; want one call and ErrAccount (not ErrPermanent)", apiErr.HTTPStatusCode, calls, err)
		}
		var cause *openai.APIError
		if !errors.As(err, &cause) || Classify(err) != Account {
			t.Errorf("%d: the cause must stay inspectable and the class Account: %v", apiErr.HTTPStatusCode, err)
		}
		if msg := err.Error(); strings.Contains(msg, key) || !strings.Contains(msg, apiErr.Message[:20]) {
			t.Errorf("%d: message %q: want the API's message without the key", apiErr.HTTPStatusCode, msg)
		}
	}
}

// TestRetrierLeavesTheKeyOutOfEveryError: a server that quotes the request's key in a 400 or a
// 5xx answer (a gateway echoing its headers) does not get it into the errors Do returns, which
// reach logs and dead-letter reasons; the cause stays inspectable.
func TestRetrierLeavesTheKeyOutOfEveryError(t *testing.T) {
	t.Parallel()
	const key = "sk-proj-abcdefghijklmnop"
	for _, apiErr := range []*openai.APIError{
		{HTTPStatusCode: 400, Message: "Invalid header Authorization: Bearer " + key},
		{HTTPStatusCode: 502, Message: "upstream refused Bearer " + key},
		{HTTPStatusCode: 429, Message: "Rate limit for key " + key},
	} {
		r := fastRetrier(1)
		r.APIKey = key
		r.MaxRateLimitWait = time.Millisecond
		_, err := r.Do(context.Background(), 1, func(context.Context) error { return apiErr })
		var cause *openai.APIError
		if err == nil || strings.Contains(err.Error(), key) || !errors.As(err, &cause) {
			t.Errorf("%d: err = %v; want an error without the key, its cause inspectable", apiErr.HTTPStatusCode, err)
		}
	}
}

// embedErrorOf returns Do's error for an embeddings request (go-openai's, not retried) that a
// server answers with status and body, of contentType unless it is "".
func embedErrorOf(t *testing.T, status int, contentType, body string) error {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if contentType != "" {
			w.Header().Set("Content-Type", contentType)
		}
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
	}))
	defer ts.Close()
	cfg := openai.DefaultConfig("k")
	cfg.BaseURL = ts.URL + "/v1"
	api := openai.NewClientWithConfig(cfg)
	_, err := fastRetrier(-1).Do(context.Background(), 1, func(ctx context.Context) error {
		_, err := api.CreateEmbeddings(ctx, openai.EmbeddingRequestStrings{Input: []string{"a"}, Model: "m"})
		return err
	})
	return err
}

// TestRetrierGivesTheMessageOfAnErrorBodyNotInOpenAIsShape: go-openai reads only OpenAI's
// error body ({"error":{"message":…}}); for vLLM's {"object":"error","message":…} and the like
// its error read "message: %!s(<nil>), body: …". Do's error gives the server's message, with
// the class of the status.
func TestRetrierGivesTheMessageOfAnErrorBodyNotInOpenAIsShape(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name, body, want string
		status           int
		class            Class
	}{
		{"vLLM", `{"object":"error","message":"Model \"BAAI/bge-m3\" does not support matryoshka representation","type":"BadRequestError","param":null,"code":400}`,
			`message: Model "BAAI/bge-m3" does not support matryoshka representation`, 400, Permanent},
		{"vLLM unknown model", `{"object":"error","message":"The model ` + "`x`" + ` does not exist.","type":"NotFoundError","param":null,"code":404}`,
			"message: The model `x` does not exist.", 404, Account},
		{"error string", `{"error":"model 'x' not found"}`, "message: model 'x' not found", 404, Account},
		{"FastAPI detail", `{"detail":"Not Found"}`, "message: Not Found", 404, Account},
		{"plain text", "404 page not found\n", "message: 404 page not found", 404, Account},
		// LM Studio without a model loaded, and asked for one it does not have: 400s, no paper's
		// fault (tinyhumansai/openhuman#4181, assafelovic/gpt-researcher#1556).
		{"LM Studio, no model", `{"error":"No models loaded. Please load a model in the developer page or use the 'lms load' command."}`,
			"message: No models loaded. Please load a model", 400, Account},
		{"LM Studio, unknown model", `{"error":{"message":"Invalid model identifier \"o4-mini\". Please specify a valid downloaded model (e.g., qwen3-vl-8b).","type":"invalid_request_error","param":"model","code":"model_not_found"}}`,
			`Invalid model identifier "o4-mini"`, 400, Account},
		// Gemini's OpenAI compatibility (generativelanguage.googleapis.com/v1beta/openai)
		// answers Google's error object in a list, pretty-printed (as quoted in
		// FuzzAnything/PromptFuzz#42, SuzumiyaAkizuki/ComfyUI-NewBie-LLM-Formatter#3).
		{"Gemini", "[{\n  \"error\": {\n    \"code\": 404,\n    \"message\": \"models/gemini-1.0-pro is not found for API version v1main, or is not supported for generateContent. " +
			"Call ListModels to see the list of available models and their supported methods.\",\n    \"status\": \"NOT_FOUND\"\n  }\n}\n]\n",
			"message: models/gemini-1.0-pro is not found for API version v1main, or is not supported for generateContent. Call ListModels to see the list of available models and their supported methods.",
			404, Account},
		{"Gemini, details", "[{\n  \"error\": {\n    \"code\": 400,\n    \"message\": \"* BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch\\n\",\n" +
			"    \"status\": \"INVALID_ARGUMENT\",\n    \"details\": [\n      {\n        \"@type\": \"type.googleapis.com/google.rpc.BadRequest\",\n        \"fieldViolations\": [\n" +
			"          {\n            \"field\": \"requests\",\n            \"description\": \"at most 100 requests can be in one batch\"\n          }\n        ]\n      }\n    ]\n  }\n}\n]\n",
			"message: * BatchEmbedContentsRequest.requests: at most 100 requests can be in one batch", 400, Permanent},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := embedErrorOf(t, tc.status, "", tc.body)
			if msg := err.Error(); !strings.Contains(msg, tc.want) || strings.Contains(msg, "%!") {
				t.Errorf("err = %q, want it to contain %q", msg, tc.want)
			}
			if Classify(err) != tc.class || HTTPStatus(err) != tc.status {
				t.Errorf("class %v, status %d; want %v, %d", Classify(err), HTTPStatus(err), tc.class, tc.status)
			}
		})
	}
}

// TestRetrierDescribesAnErrorBodyWithNoMessage: a proxy's or a CDN's HTML error page (nginx's
// 413 in front of a model server, a gateway's 5xx page of several kilobytes), an empty body or
// JSON of another kind were quoted whole after go-openai's JSON error ("invalid character '<'
// …, body: <html>…"): in every retry's log line and in the dead letter's reason. Do's error
// names the status and describes the body in a line; the class and status stay the status's.
func TestRetrierDescribesAnErrorBodyWithNoMessage(t *testing.T) {
	t.Parallel()
	cdnPage := "<!DOCTYPE html>\n<html lang=\"en-US\">\n<head>\n<title>api.example.com | 502: Bad gateway</title>\n<style>" +
		strings.Repeat("body{margin:0;padding:0}\n", 250) + "</style></head>\n<body><h1>Bad gateway</h1></body></html>\n"
	for _, tc := range []struct {
		name, body, want string
		status           int
		class            Class
	}{
		{"nginx 413", "<html>\r\n<head><title>413 Request Entity Too Large</title></head>\r\n<body>\r\n<center><h1>413 Request Entity Too Large</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n",
			"message: an HTML page: 413 Request Entity Too Large", 413, Permanent},
		{"CDN 502", cdnPage, "message: an HTML page: api.example.com | 502: Bad gateway", 502, Transient},
		{"HTML without a title", "<html><body>" + strings.Repeat("<p>down</p>", 500) + "</body></html>", "message: an HTML page of 5526 bytes", 503, Transient},
		{"empty", "", "message: an empty body", 500, Transient},
		{"JSON of another kind", `{"errors":[` + strings.Repeat(`{"reason":"upstream"},`, 200) + `{}]}`, `message: a body of 4415 bytes starting {"errors":[{"reason":"upstream"}`, 500, Transient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			err := embedErrorOf(t, tc.status, "text/html", tc.body)
			msg := err.Error()
			if !strings.Contains(msg, tc.want) || strings.ContainsAny(msg, "<\n") || len(msg) > 400 {
				t.Errorf("err = %q (%d bytes), want one line of at most 400 bytes containing %q", msg, len(msg), tc.want)
			}
			if Classify(err) != tc.class || HTTPStatus(err) != tc.status {
				t.Errorf("class %v, status %d; want %v, %d", Classify(err), HTTPStatus(err), tc.class, tc.status)
			}
		})
	}
}

func TestRetrierRateLimitDoesNotConsumeRetries(t *testing.T) {
	t.Parallel()
	l := NewLimiter(LimiterConfig{})
	calls := 0
	r := fastRetrier(1)
	r.Limiter = l
	res, err := r.Do(context.Background(), 1, func(context.Context) error {
		calls++
		if calls <= 6 {
			l.Pause(time.Millisecond) // what the Transport does on a 429
			return &openai.APIError{HTTPStatusCode: 429}
		}
		return nil
	})
	if err != nil || res.RateLimited != 6 || res.Attempts != 7 {
		t.Fatalf("Do = %+v, %v; want success after 6 rate-limited attempts with MaxRetries 1", res, err)
	}
}

// Without a Limiter to wait on, the delay after each 429 of a call grows like a transient
// retry's: an API that keeps answering 429 is not asked again at a constant rate.
func TestRetrierWithoutLimiterBacksOffLongerAfterEach429(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	r := Retrier{BaseDelay: 10 * time.Millisecond, MaxDelay: time.Minute, MaxRateLimitWait: time.Hour}
	calls := 0
	_, err := r.Do(ctx, 1, func(context.Context) error {
		calls++
		return &openai.APIError{HTTPStatusCode: 429}
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Do = %v, want the context's deadline", err)
	}
	// Growing delays (full jitter, ceilings 10, 20, 40 … ms) leave room for about 8 calls in
	// 500 ms, and 20 only with vanishing probability; a constant 0-10 ms delay makes ~100.
	if calls > 20 {
		t.Errorf("%d calls in 500 ms of 429s, want the delay to grow (at most 20)", calls)
	}
}

func TestRetrierReturnsContextErrorPromptly(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	r := Retrier{MaxRetries: 5, BaseDelay: time.Hour, MaxDelay: time.Hour}
	calls := 0
	_, err := r.Do(ctx, 1, func(context.Context) error {
		calls++
		cancel()
		return &openai.APIError{HTTPStatusCode: 500}
	})
	if !errors.Is(err, context.Canceled) || calls != 1 {
		t.Fatalf("err = %v after %d calls; want context.Canceled after 1", err, calls)
	}
}

func TestRetrierPerAttemptTimeoutIsTransient(t *testing.T) {
	t.Parallel()
	r := fastRetrier(1)
	r.Timeout = 5 * time.Millisecond
	calls := 0
	_, err := r.Do(context.Background(), 1, func(ctx context.Context) error {
		calls++
		if calls == 1 {
			<-ctx.Done()
			return ctx.Err()
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Fatalf("err = %v after %d calls; want a retry after the attempt timed out", err, calls)
	}
}

func TestBackoffStaysWithinCeiling(t *testing.T) {
	t.Parallel()
	for retry := range 40 {
		ceil := min(250*time.Millisecond<<min(retry, 20), 20*time.Second)
		for range 20 {
			if d := Backoff(retry, 250*time.Millisecond, 20*time.Second); d < 0 || d > ceil {
				t.Fatalf("Backoff(%d) = %v, want in [0, %v]", retry, d, ceil)
			}
		}
	}
}

// TestRetrierReturnsUnreachableAsAnAccountErrorAfterItsRetries: a connection that cannot be
// made (the server down, a wrong host) is no paper's fault: once its retries are used up (a
// blip is absorbed by them), Do returns ErrUnreachable with ErrAccount (a worker pauses on it
// instead of using up its messages' deliveries), where a connection reset mid-call stays
// transient.
func TestRetrierReturnsUnreachableAsAnAccountErrorAfterItsRetries(t *testing.T) {
	t.Parallel()
	// Nothing listens there, below the ephemeral range: no other test's server takes the port
	// (then the call got an answer).
	addr := "127.0.0.1:" + strconv.Itoa(nettest.FreePort(t))
	calls := 0
	r := fastRetrier(5)
	get := getModels(http.DefaultClient, addr)
	_, err := r.Do(context.Background(), 1, func(ctx context.Context) error {
		calls++
		return get(ctx)
	})
	if calls != 6 || !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrAccount) || Classify(err) != Account {
		t.Errorf("calls %d, err %v; want 6 calls (5 retries) and ErrUnreachable with ErrAccount", calls, err)
	}
	// A blip: refused once, then answered.
	calls = 0
	_, err = r.Do(context.Background(), 1, func(ctx context.Context) error {
		calls++
		if calls == 1 {
			return &url.Error{Op: "Post", URL: "http://" + addr, Err: &net.OpError{Op: "dial", Err: errors.New("connection refused")}}
		}
		return nil
	})
	if err != nil || calls != 2 {
		t.Errorf("a refused connection then an answer: calls %d, err %v; want the retry to succeed", calls, err)
	}
}

// An API whose connections fail until the call's deadline (dials that time out, slow DNS, a
// short MsgTimeout) is unreachable, not a timeout of the paper's: Do returns ErrUnreachable
// with ErrAccount when the deadline ends after a failed dial (it returned the deadline's error,
// and the worker used a delivery and dead-lettered the paper instead of pausing).
func TestUnreachableUntilTheCallsDeadlineIsAnAccountError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second) // a short MsgTimeout
	defer cancel()
	var r Retrier
	calls := 0
	_, err := r.Do(ctx, 1, func(ctx context.Context) error {
		calls++
		select { // a dial that times out after 1 s
		case <-time.After(time.Second):
		case <-ctx.Done():
		}
		return &url.Error{Op: "Post", URL: "http://10.255.255.1/v1/embeddings",
			Err: &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("i/o timeout")}}
	})
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrAccount) {
		t.Errorf("after %d dials of an unreachable API within the message's deadline: err %v; want ErrUnreachable with ErrAccount (the worker pauses)", calls, err)
	}
}

// getModels returns a call that sends GET /v1/models to addr with c, for Do.
func getModels(c *http.Client, addr string) func(ctx context.Context) error {
	return func(ctx context.Context) error {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/v1/models", nil)
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
}

// TestHostThatDropsConnectionsIsUnreachable: a host that answers no SYN (a firewall dropping
// the packets, a partition) never gives a dial error: net/http reports the context's end
// when the call's deadline comes mid-connect (at the defaults, a message's 30 s end before the
// transport's 30 s dial timeout). It was a transient failure, so every message used up its
// deliveries and the backlog was dead-lettered; it is now ErrUnreachable, as a refused
// connection is, and the worker pauses.
func TestHostThatDropsConnectionsIsUnreachable(t *testing.T) {
	t.Parallel()
	addr := nettest.BlackholeAddr(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := Retrier{}.Do(ctx, 1, getModels(HTTPClient(nil, nil), addr))
	if !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrAccount) {
		t.Errorf("err %v: want ErrUnreachable and ErrAccount", err)
	}
	// A server that accepted the TCP connection and is slow to take it, answer the TLS
	// handshake or the request is reachable: its time running out is a timeout, over HTTPS too.
	for _, tls := range []bool{false, true} {
		srv := httptest.NewUnstartedServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
		srv.Listener = slowAccept{srv.Listener, time.Second}
		if tls {
			srv.StartTLS()
		} else {
			srv.Start()
		}
		c := HTTPClient(srv.Client(), nil)
		sctx, scancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		_, err := Retrier{}.Do(sctx, 1, func(ctx context.Context) error {
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, srv.URL, nil)
			resp, err := c.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
		scancel()
		srv.Close()
		if errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
			t.Errorf("a slow server (tls %v): err %v, want the deadline's, not ErrUnreachable", tls, err)
		}
	}
}

// slowAccept is a listener whose server takes its connections late: a busy server (the kernel
// completed the TCP handshake; the process has not read the request or the ClientHello yet).
type slowAccept struct {
	net.Listener
	delay time.Duration
}

func (l slowAccept) Accept() (net.Conn, error) {
	c, err := l.Listener.Accept()
	time.Sleep(l.delay)
	return c, err
}

// TestConnectCutShortByTheDeadlineIsATimeout: an attempt that starts with almost no time
// left (a retry or a rate-limit wait that used up the message's time) and is still connecting
// when that time ends says nothing about the host — a connect takes a round trip — yet it was
// ErrUnreachable: the worker paused for the API, warning that it cannot be reached. It is the
// deadline's error now; a connect that went unanswered for long enough before it, in this
// call, still makes the call unreachable.
func TestConnectCutShortByTheDeadlineIsATimeout(t *testing.T) {
	t.Parallel()
	addr := nettest.BlackholeAddr(t)
	get := getModels(HTTPClient(nil, nil), addr)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := Retrier{}.Do(ctx, 1, get)
	if errors.Is(err, ErrUnreachable) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a connect cut short after 30 ms: err %v, want the deadline's, not ErrUnreachable", err)
	}

	// An attempt waits for the connection until the call's deadline (past Timeout, see
	// Retrier.Timeout): unanswered for over a second, the call is unreachable.
	ctx, cancel = context.WithTimeout(context.Background(), 1200*time.Millisecond)
	defer cancel()
	attempts := 0
	_, err = Retrier{Timeout: time.Second, BaseDelay: time.Millisecond}.Do(ctx, 1, func(ctx context.Context) error {
		attempts++
		return get(ctx)
	})
	if attempts != 1 || !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrAccount) {
		t.Errorf("after %d attempts, unanswered for 1.2 s: err %v, want one attempt, ErrUnreachable with ErrAccount", attempts, err)
	}

	// A call without a deadline: each attempt waits Timeout for the connection, and the call is
	// unreachable once the retries are used up.
	attempts = 0
	_, err = Retrier{Timeout: 600 * time.Millisecond, MaxRetries: 1, BaseDelay: time.Millisecond}.Do(context.Background(), 1, func(ctx context.Context) error {
		attempts++
		return get(ctx)
	})
	if attempts != 2 || !errors.Is(err, ErrUnreachable) || !errors.Is(err, ErrAccount) {
		t.Errorf("after %d attempts, each unanswered for its Timeout: err %v, want two attempts, ErrUnreachable with ErrAccount", attempts, err)
	}
}
