package summarize

import (
	"fmt"

	"github.com/paperpipe/paperpipe/paper"
)

// Message is one chat message of a TL;DR request, for callers that send requests themselves
// (the Batch API runner).
type Message struct {
	Role    string // "system" or "user"
	Content string
}

// Messages returns the chat messages of the first TL;DR request for a, exactly as Client sends
// them, with a word limit of maxWords (30 when ≤ 0).
func Messages(a paper.Abstract, maxWords int) []Message {
	if maxWords <= 0 {
		maxWords = 30
	}
	msgs := buildPrompt(a, maxWords)
	out := make([]Message, len(msgs))
	for i, m := range msgs {
		out[i] = Message(m)
	}
	return out
}

// Accept turns a model's answer to the request of Messages into the TL;DR text to store, with
// the paper.Valid* outcome, without a thinking model's reasoning in front of it
// (splitThinking): the answer normalised when it passes Validate (paper.ValidOK),
// otherwise the answer cleaned by Clean when that passes (paper.ValidCleaned). An answer that
// stays invalid is an error wrapping ErrInvalidTLDR and paper.ErrPermanent. There is no retry:
// it is for answers that come back in bulk (the Batch API), where asking again means a new
// batch.
func Accept(answer string, a paper.Abstract, maxWords int) (text, validation string, err error) {
	if maxWords <= 0 {
		maxWords = 30
	}
	answer, _ = splitThinking(answer)
	verr := Validate(answer, a.Abstract, maxWords)
	if verr == nil {
		return Normalize(answer), paper.ValidOK, nil
	}
	if cleaned := Clean(answer, maxWords); Validate(cleaned, a.Abstract, maxWords) == nil {
		return cleaned, paper.ValidCleaned, nil
	}
	return "", "", fmt.Errorf("TL;DR of %s: %w: %w", a.ID, verr, paper.ErrPermanent)
}
