package summarize

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// TestRefusalInTheContentIsNoTLDR: a model that declines an abstract, or answers that it has
// none, in its content (the models and servers that have no message.refusal: open models on
// vLLM, llama.cpp or Ollama, most gateways) wrote one sentence that passed every check — "I'm
// sorry, but I can't help with that." was stored as the paper's TL;DR and shown on its page and
// in search results. It is invalid, saying so; a TL;DR that starts with "I" as a name is not.
func TestRefusalInTheContentIsNoTLDR(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"I'm sorry, but I can't help with that.",
		"I’m sorry, but I can’t assist with that request.",
		"I am sorry, I cannot summarize this abstract.",
		"Sorry, I can't assist with that request.",
		"I apologize, but I am unable to summarize this text.",
		"I cannot provide a summary of this abstract.",
		"I can't help with summarizing this content.",
		"I won't summarize this abstract.",
		"Unfortunately, I cannot fulfill this request.",
		"As an AI language model, I cannot access the full paper.",
		"Please provide the abstract you would like me to summarize.",
		"Could you please provide the abstract?",
	} {
		if err := Validate(s, enAbstract, 30); !errors.Is(err, ErrInvalidTLDR) || !strings.Contains(err.Error(), "refus") {
			t.Errorf("Validate(%q) = %v; want it invalid as a refusal", s, err)
		}
	}
	for _, s := range []string{
		"I-JEPA learns semantic image features by predicting representations of masked image blocks.",
		"I/O-aware attention halves the memory traffic of long-context transformers.",
		"Sorry-state detection in dialogue improves repair strategies of chatbots.",
		"Please-and-thank-you prompts do not change the accuracy of large language models.",
	} {
		if err := Validate(s, enAbstract, 30); err != nil {
			t.Errorf("Validate(%q) = %v; want it valid", s, err)
		}
	}

	url, calls := answering(t, http.StatusOK, chatAnswer("I'm sorry, but I can't help with that.", "stop"))
	c, err := New(Config{BaseURL: url, MaxRetries: 1})
	if err != nil {
		t.Fatal(err)
	}
	s, err := c.Summarize(context.Background(), testPaper)
	if !errors.Is(err, paper.ErrPermanent) || s.Text != "" {
		t.Errorf("Summarize = %q (%s), %v after %d requests; want no TL;DR stored, a permanent error", s.Text, s.Validation, err, calls())
	}
}

// TestTLDRsThatOnlyStartLikeARefusalAreValid: the refusal check took any answer starting "As an
// AI" for a model's "As an AI language model, I cannot …", any "Unfortunately, I" for "…, I
// cannot …", and a title in title case, "I Can't Believe It's Not Better", for "I can't …": TL;DRs
// of papers about AI detectors and benchmarks, I/O and that workshop's papers were refused — a
// summarizer's answer asked again and dead-lettered, a TL;DR of an archive moved by `import` (or
// `import-tldrs`) refused as a bad line. What marks a refusal is the model speaking of itself, in
// a sentence's case: "As an AI …, I …", "Unfortunately, I cannot".
func TestTLDRsThatOnlyStartLikeARefusalAreValid(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"As an AI-generated text detector, DetectGPT uses the curvature of log probability to spot machine-written passages.",
		"As an AI safety benchmark, SORRY-Bench measures how often language models fulfil unsafe requests across 45 categories.",
		"Unfortunately, I/O stalls dominate the training time of large models, so a new loader overlaps reads with compute.",
		"I Can't Believe It's Not Better collects negative results showing that Bayesian deep learning rarely beats ensembles.",
		"I Am Not a Number: large language models fail at arithmetic over long digit strings.",
	} {
		if err := Validate(s, enAbstract, 30); err != nil {
			t.Errorf("Validate(%q) = %v; want it valid", s, err)
		}
	}
}

// TestRefusalsOfOtherWordingsAreNoTLDR: refusals as open chat models word them that the check
// missed, each one sentence that passed every other check and was stored as the paper's TL;DR —
// Llama 2 Chat's "As a responsible AI language model, I must …" and "As a helpful and respectful
// assistant, I …", "As a language model, I …", "My apologies, but …", "Apologies, but I …",
// "I'm an AI and …".
func TestRefusalsOfOtherWordingsAreNoTLDR(t *testing.T) {
	t.Parallel()
	for _, s := range []string{
		"As a responsible AI language model, I must point out that summarizing this abstract could spread misinformation.",
		"As a helpful and respectful assistant, I cannot provide a summary that could be harmful.",
		"As a language model, I cannot provide a summary of this abstract.",
		"My apologies, but I cannot summarize this abstract as it discusses weapons.",
		"Apologies, but I can't help with that request.",
		"I'm an AI and cannot summarize copyrighted text.",
		"I am an AI language model and do not have access to the full paper.",
	} {
		if err := Validate(s, enAbstract, 30); !errors.Is(err, ErrInvalidTLDR) || !strings.Contains(err.Error(), "refus") {
			t.Errorf("Validate(%q) = %v; want it invalid as a refusal", s, err)
		}
	}
	for _, s := range []string{
		"Apologies from a robot after its error restore the trust of its users, a study of 120 participants finds.",
		"As a baseline, I-JEPA is outperformed by masked autoencoders on fine-grained classification.",
		"As a first step, I construct a family of expanders whose spectral gap is optimal.",
	} {
		if err := Validate(s, enAbstract, 30); err != nil {
			t.Errorf("Validate(%q) = %v; want it valid", s, err)
		}
	}
}
