package batch

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// A refusal of the account is reported without the API key, should the API's answer quote it
// (as llm.ErrAccount's errors are for the workers' clients).
func TestAccountErrorsOfBatchCallsLeaveOutTheKey(t *testing.T) {
	t.Parallel()
	const key = "sk-live-0123456789abcdef"
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		_, _ = w.Write([]byte(`{"error":{"message":"Invalid API key: ` + key + `","type":"invalid_request_error","code":"invalid_api_key"}}`))
	}))
	defer srv.Close()
	r, err := New(Config{BaseURL: srv.URL + "/v1", APIKey: key, Store: struct{ Store }{},
		Chat: &ChatWork{Model: "m", PromptVersion: "v", Messages: func(paper.Abstract) []Message { return nil },
			Accept: func(string, paper.Abstract) (string, string, error) { return "", "", nil }}})
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.CreateTemp(t.TempDir(), "download")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	err = r.download(context.Background(), "file-abc", f)
	if !errors.Is(err, llm.ErrAccount) {
		t.Fatalf("download = %v, want llm.ErrAccount", err)
	}
	if strings.Contains(err.Error(), key) {
		t.Errorf("the error of a refused batch call shows the API key: %v", err)
	}
}
