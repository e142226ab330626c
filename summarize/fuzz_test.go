package summarize

import (
	"testing"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// FuzzCleanAndValidate checks what Accept and Client rely on for any answer a model may write:
// what Clean makes of it, unless it is empty, chatter alone, less than three words or starts
// with another character than a letter, passes Validate's form rules and is left as it is by
// Clean again; a valid answer stays valid, and unchanged, once Normalize
// stores it; and Accept never returns a TL;DR that Validate refuses.
func FuzzCleanAndValidate(f *testing.F) {
	for _, s := range []string{
		"Sure! Here's a TL;DR: **A method halves the training cost of large models.** Hope this helps!",
		"In this paper, we propose a method that halves the training cost.",
		"<think>The user wants one sentence.</think>\n\nProposes a method that halves the cost.",
		"</think>A method *halves* the training cost",
		"## Summary\n\n- A method halves the training cost [3].\n- It also works well.",
		"We present Branch-Train-Merge (BTM), a communication-efficient algorithm for parallel training.",
		"“A method halves the cost.”",
		"这是第一句。这是第二句。",
		"Models, e.g. GPT-4, are big",
		"A method\x00 halves the training\u202e cost of large models.",
		"We, therefore, proposed a ``fast'' method (Smith et al., 2020) that works.",
	} {
		f.Add(s, uint8(30))
	}
	abstract := "We propose a method that halves the training cost of large language models. It works at every scale."
	f.Fuzz(func(t *testing.T, s string, mw uint8) {
		maxWords := int(mw) % 41 // 0: no limit
		c := Clean(s, maxWords)
		// Chatter alone ("Sure") is left as it is ended ("Sure."), for Validate to refuse, and
		// so is what is left of an answer without a sentence of three words ("! 0.") or one
		// that starts with a mark of its own ("! 00 0.").
		if first, _ := utf8.DecodeRuneInString(c); c != "" && dropPreamble(c) != "" && CountWords(c) >= 3 && unicode.IsLetter(first) {
			if err := Validate(c, "", maxWords); err != nil {
				t.Errorf("Clean(%q, %d) = %q, which Validate refuses: %v", s, maxWords, c, err)
			}
			if cc := Clean(c, maxWords); cc != c {
				t.Errorf("Clean is not idempotent: Clean(%q) = %q, Clean of that = %q", s, c, cc)
			}
		}
		if Validate(s, "", maxWords) == nil {
			n := Normalize(s)
			if err := Validate(n, "", maxWords); err != nil {
				t.Errorf("Validate accepts %q, not its Normalize %q: %v", s, n, err)
			}
			if nn := Normalize(n); nn != n {
				t.Errorf("Normalize is not idempotent: %q, then %q", n, nn)
			}
		}
		a := paper.Abstract{ID: "arxiv:2401.00001", Title: "A title", Abstract: abstract}
		if text, _, err := Accept(s, a, maxWords); err == nil {
			if verr := Validate(text, a.Abstract, maxWords); verr != nil {
				t.Errorf("Accept(%q) = %q, which Validate refuses: %v", s, text, verr)
			}
		}
	})
}
