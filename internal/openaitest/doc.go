// Package openaitest is an OpenAI-compatible HTTP test server: the one thing
// paperpipe fakes in its tests and benchmarks, at the HTTP boundary.
//
// It answers POST /v1/chat/completions and POST /v1/embeddings in the real
// wire format (usage and x-ratelimit-* headers included), and implements the
// files and batches endpoints of OpenAI's Batch API. Answers are
// deterministic: a chat answer is the first sentence of the longest paragraph
// of the last user message, without a paper lead-in ("This paper presents",
// "In this report, we"), trimmed to 25 words, so it is a TL;DR paperpipe's
// validation accepts unless a junk fault is configured; an embedding is a
// lexical unit vector of the input (a random projection of its word counts
// plus a little noise seeded by the text), so the same text always gets the
// same vector and similar texts get close ones, as from a real model
// (Config.Vectors "random" answers uniformly random vectors instead).
//
// Every request body it receives and every response body it sends is
// validated against OpenAI's published OpenAPI description (embedded,
// trimmed to these endpoints, see openapi.yaml and LICENSE-openai). An
// invalid request gets the 400 OpenAI would send; every violation is
// recorded in Stats.ValidationErrors, and Start fails the test at cleanup for
// each one, so neither paperpipe's clients nor this server can drift from the
// real API unnoticed. (Config.ValidateEvery makes a benchmark's server check a
// sample instead.)
//
// Faults (429 with Retry-After, 5xx, held requests ending in 504, truncated
// and malformed bodies, junk TL;DRs) are injected at configurable rates from
// a seeded random source, and Stats counts what was actually delivered — what
// a provider would bill. Config.EmbedFailsOn names inputs a model cannot
// embed: every request holding one gets Ollama's 500.
//
// Use Start in tests:
//
//	s := openaitest.Start(t, openaitest.Config{})
//	cfg := openai.DefaultConfig("test-key")
//	cfg.BaseURL = s.URL()
//	client := openai.NewClientWithConfig(cfg)
//
// and New with your own listener elsewhere (cmd/openai-fake runs it as a
// separate process).
package openaitest
