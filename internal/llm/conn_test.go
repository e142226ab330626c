package llm

import (
	"strings"
	"testing"
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
