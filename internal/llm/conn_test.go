package llm

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// The base URLs users paste that are not one are refused with the URL to write: without a
// scheme (localhost:11434 was "not an http(s) URL", with no word of what is), an endpoint's
// URL (every request went to …/v1/chat/completions/chat/completions and was refused 404, on
// which workers pause) and an Azure OpenAI deployment's URL (404 on every request: its API
// wants an api-version query). Base URLs as they should be, with or without a trailing slash,
// are taken.
func TestCheckBaseURLSaysWhatToWrite(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ raw, write string }{
		{"localhost:11434", `write "http://localhost:11434/v1"`},
		{"127.0.0.1:8000/v1", `write "http://127.0.0.1:8000/v1"`},
		{"user:PassW0rd@gpu-box:8000/v1", `write "http://user:xxxxx@gpu-box:8000/v1"`},
		{"http://localhost:11434/v1/chat/completions", `write "http://localhost:11434/v1"`},
		{"https://api.openai.com/v1/embeddings/", `write "https://api.openai.com/v1"`},
		{"http://localhost:8080/completions", `write "http://localhost:8080"`},
		{"https://lab.openai.azure.com/openai/deployments/gpt-4o-mini", `write "https://lab.openai.azure.com/openai/v1" (Azure's v1 API)`},
		{"https://lab.openai.azure.com/openai/deployments/emb/embeddings?api-version=2024-10-21", `write "https://lab.openai.azure.com/openai/v1"`},
		{"not a url", "is not an http(s) URL"},
		{"ftp://host/v1", "is not an http(s) URL"},
		{"http://host/v1?key=K3y", "has a query or a fragment"},
	} {
		err := CheckBaseURL(tc.raw)
		if err == nil || !strings.Contains(err.Error(), tc.write) {
			t.Errorf("CheckBaseURL(%q) = %v, want an error saying %s", tc.raw, err, tc.write)
		}
		if err != nil && (strings.Contains(err.Error(), "PassW0rd") || strings.Contains(err.Error(), "K3y")) {
			t.Errorf("CheckBaseURL(%q) = %v, which shows a secret", tc.raw, err)
		}
	}
	for _, ok := range []string{"http://localhost:11434/v1", "http://localhost:11434/v1/", "https://api.openai.com/v1",
		"http://localhost:4000", "https://lab.openai.azure.com/openai/v1/", "https://router.huggingface.co/v1"} {
		if err := CheckBaseURL(ok); err != nil {
			t.Errorf("CheckBaseURL(%q) = %v, want nil", ok, err)
		}
	}
}

// An API key set as the base URL (the two variables swapped, or pasted into the wrong one) is
// not a URL, and its message, which goes to logs, showed it twice: as the value and inside the
// URL it said to write ("http://sk-…/v1"). A value with no dot, colon or slash is not shown;
// localhost still gets the URL to write.
func TestCheckBaseURLDoesNotShowAKey(t *testing.T) {
	t.Parallel()
	for _, key := range []string{"sk-proj-AbCdEf0123456789_xyz", "gsk_AbCdEf0123456789xyz"} {
		err := CheckBaseURL(key)
		if err == nil {
			t.Fatalf("CheckBaseURL(%q) = nil, want an error", key)
		}
		if strings.Contains(err.Error(), "AbCdEf0123456789") {
			t.Errorf("CheckBaseURL(%q) = %v, which shows the key", key, err)
		}
		if !strings.Contains(err.Error(), "https://api.openai.com/v1") {
			t.Errorf("CheckBaseURL(%q) = %v, want it to say what a base URL looks like", key, err)
		}
	}
	if err := CheckBaseURL("localhost"); err == nil || !strings.Contains(err.Error(), `write "http://localhost/v1"`) {
		t.Errorf("CheckBaseURL(localhost) = %v, want the URL to write", err)
	}
}

// A 404 names the base URL the request went to, and /v1 when it lacks it: Ollama at
// http://localhost:11434, without /v1, answers every request "404 page not found", and the
// workers paused with that message and no word of OPENAI_BASE_URL. A base URL with another
// version of an API (Gemini's /v1beta/openai, Zhipu's /api/paas/v4) is not told to add /v1:
// Gemini answers a model it does not serve (a retired gemini-1.5-flash) with a 404, and the
// hint sent its users to …/v1beta/openai/v1, where every request fails.
func TestNotFoundNamesTheBaseURL(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNotFound)
		_, _ = io.WriteString(w, "404 page not found\n")
	}))
	defer ts.Close()
	for _, tc := range []struct {
		base        string
		want, wantV string
	}{
		{ts.URL, "or that is not the API's base URL", "most servers' API is under /v1: " + ts.URL + "/v1"},
		{ts.URL + "/", "the model is not served at " + ts.URL + ",", "most servers' API is under /v1: " + ts.URL + "/v1)"},
		{ts.URL + "/v1", "the model is not served at " + ts.URL + "/v1,", ""},
		{ts.URL + "/v1beta/openai/", "the model is not served at " + ts.URL + "/v1beta/openai,", ""},
		{ts.URL + "/api/paas/v4", "the model is not served at " + ts.URL + "/api/paas/v4,", ""},
	} {
		api, retry, _ := Conn{BaseURL: tc.base, MaxRetries: -1, Timeout: 10 * time.Second}.Open()
		_, err := retry.Do(t.Context(), 1, func(ctx context.Context) error {
			_, err := api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "llama3.2",
				Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
			return err
		})
		if Classify(err) != Account || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("base URL %s: err = %v; want an account error saying %q", tc.base, err, tc.want)
			continue
		}
		if got := strings.Contains(err.Error(), "under /v1"); got != (tc.wantV != "") || (got && !strings.Contains(err.Error(), tc.wantV)) {
			t.Errorf("base URL %s: err = %v; want /v1 suggested (%q) only without it", tc.base, err, tc.wantV)
		}
	}
}

// A base URL that is a web page's (a chat web UI's, a static site's, a proxy's catch-all), not
// the API's, answers the API's POSTs with HTML: 405 Method Not Allowed was retried as a
// transient failure (six attempts a call, then a redelivery: a worker sent every paper to the
// dead letters instead of pausing), and a 200 with the page (a single-page app's fallback) was
// reported as "the API answered a server error or no answer at every attempt: invalid
// character '<' looking for beginning of value". Both now name the page and the base URL.
func TestAWebPageAtTheBaseURLIsNamed(t *testing.T) {
	t.Parallel()
	const page = "<!doctype html><html><head><title>Open WebUI</title></head><body><div id=app></div></body></html>"
	for _, status := range []int{http.StatusMethodNotAllowed, http.StatusOK} {
		ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, page)
		}))
		defer ts.Close()
		base := ts.URL + "/v1"
		api, retry, _ := Conn{BaseURL: base, MaxRetries: 1, Timeout: 10 * time.Second}.Open()
		retry.BaseDelay = time.Millisecond
		_, err := retry.Do(t.Context(), 1, func(ctx context.Context) error {
			_, err := api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "llama3.2",
				Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
			return err
		})
		if err == nil {
			t.Fatalf("%d: a web page was taken for the API's answer", status)
		}
		for _, want := range []string{"an HTML page: Open WebUI", base, "not the API's base URL"} {
			if !strings.Contains(err.Error(), want) {
				t.Errorf("%d: err = %v; want it to say %q", status, err, want)
			}
		}
		for _, not := range []string{"invalid character", "server error or no answer"} {
			if strings.Contains(err.Error(), not) {
				t.Errorf("%d: err = %v; want no %q", status, err, not)
			}
		}
		switch status {
		case http.StatusMethodNotAllowed:
			// Every request gets it, whatever the paper: the configuration's fault, on which a
			// worker pauses with the messages queued.
			if Classify(err) != Account {
				t.Errorf("405: class %v, want Account: %v", Classify(err), err)
			}
		case http.StatusOK:
			// Still a body that is no answer, counted so, and a server failing every call (a
			// worker pauses after two papers so).
			if UnusableReason(err) != UnusableNotJSON || !errors.Is(err, ErrServerFailing) {
				t.Errorf("200: reason %q, server failing %v, want %q and true: %v", UnusableReason(err), errors.Is(err, ErrServerFailing), UnusableNotJSON, err)
			}
		}
	}
}

// An answer of JSON under an HTML Content-Type (a gateway or proxy that labels every body
// text/html) is the API's answer: only a body that is not JSON is a web page's.
func TestJSONLabelledHTMLIsStillTheAnswer(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		_, _ = io.WriteString(w, "  \n"+`{"id":"c1","object":"chat.completion","created":1,"model":"llama3.2",`+
			`"choices":[{"index":0,"message":{"role":"assistant","content":"Proposes a thing."},"finish_reason":"stop"}],`+
			`"usage":{"prompt_tokens":3,"completion_tokens":4,"total_tokens":7}}`)
	}))
	defer ts.Close()
	api, retry, _ := Conn{BaseURL: ts.URL + "/v1", MaxRetries: -1, Timeout: 10 * time.Second}.Open()
	var got string
	_, err := retry.Do(t.Context(), 1, func(ctx context.Context) error {
		resp, err := api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "llama3.2",
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
		if err == nil && len(resp.Choices) > 0 {
			got = resp.Choices[0].Message.Content
		}
		return err
	})
	if err != nil || got != "Proposes a thing." {
		t.Errorf("a JSON answer labelled text/html: %q, %v; want the answer", got, err)
	}
}

// A server that wants an API key (vLLM started with --api-key, a gateway), asked without one
// (OPENAI_BASE_URL set, OPENAI_API_KEY not), answered 401 "Unauthorized", and the workers
// paused with that word alone: nothing said that no key had been sent. A 401 to a request
// with a key says that the server does not take the key of OPENAI_API_KEY: such a server's
// "Unauthorized" said neither that the key was what it refused nor where the key comes from
// (found in session 28, a lab's journey with a wrong key; OpenAI's own answer names the key).
func TestUnauthorizedWithoutAKeySaysNoneWasSent(t *testing.T) {
	t.Parallel()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = io.WriteString(w, `{"error":"Unauthorized"}`)
	}))
	defer ts.Close()
	for _, key := range []string{"", "sk-wrong-key-1234"} {
		api, retry, _ := Conn{BaseURL: ts.URL + "/v1", APIKey: key, MaxRetries: -1, Timeout: 10 * time.Second}.Open()
		_, err := retry.Do(t.Context(), 1, func(ctx context.Context) error {
			_, err := api.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "llama3.2",
				Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "Hi."}}})
			return err
		})
		if Classify(err) != Account {
			t.Fatalf("key %q: %v, want an account error", key, err)
		}
		if got := strings.Contains(err.Error(), "sent without an API key"); got != (key == "") {
			t.Errorf("key %q: err = %v; want it to say no key was sent only when none was", key, err)
		}
		if got := strings.Contains(err.Error(), "does not take the key in OPENAI_API_KEY"); got != (key != "") {
			t.Errorf("key %q: err = %v; want it to say the key of OPENAI_API_KEY was refused only when one was sent", key, err)
		}
		if key != "" && strings.Contains(err.Error(), key) {
			t.Errorf("the error shows the key: %v", err)
		}
	}
}
