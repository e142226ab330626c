package openaitest

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func BenchmarkEmbed300x1536(b *testing.B) {
	s := New(Config{})
	defer s.Close()
	inputs := make([]embedInput, 300)
	for i := range inputs {
		inputs[i] = textInput(fmt.Sprintf("abstract number %d about sparse experts", i))
	}
	b.ReportAllocs()
	for b.Loop() {
		s.embed(embedRequest{Model: "m"}, inputs, 1000)
	}
}

func BenchmarkChatHandler(b *testing.B) {
	s := New(Config{})
	defer s.Close()
	body := `{"model":"gpt-4o-mini","messages":[{"role":"system","content":"You write one-sentence TL;DRs."},{"role":"user","content":"Title: X\n\nWe propose a load-balancing loss for sparse mixture-of-experts models that keeps every expert busy. On language modelling it improves throughput by 30% at equal quality."}],"temperature":0.2}`
	b.ReportAllocs()
	for b.Loop() {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(body))
		w := httptest.NewRecorder()
		s.Handler().ServeHTTP(w, req)
		if w.Code != 200 {
			b.Fatal(w.Code, w.Body.String())
		}
	}
}
