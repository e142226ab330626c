// Package summarize writes one-sentence TL;DRs of paper abstracts.
//
// Two summarizers satisfy the pipeline's Summarizer interface: Client, which asks an
// OpenAI-compatible chat API (OpenAI, Ollama, vLLM, llama.cpp server, …) with the prompt in
// prompt.go, validates the answer, retries once with a stricter instruction and otherwise
// cleans it deterministically; and Offline, the built-in extractive summarizer that finds the
// sentence stating a paper's contribution and tightens it, with no API at all.
//
// Validate and Clean are the pure rules every TL;DR is held to: one sentence, a word limit, no
// preamble, no markdown or wrapping quotes, and the abstract's language.
package summarize
