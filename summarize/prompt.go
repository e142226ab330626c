package summarize

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/paperpipe/paperpipe/paper"
)

// PromptVersion names the prompt below at the default word limit; it is stored with every
// TL;DR the Client writes, so a change here must bump it (and makes `paperpipe reprocess`
// regenerate TL;DRs). With another word limit the Client stores Versioned(PromptVersion, limit).
const PromptVersion = "tldr-v1"

// DefaultMaxWords is the TL;DR word limit when none is configured.
const DefaultMaxWords = 30

// Versioned returns the prompt version of base with a word limit of maxWords: base itself at
// DefaultMaxWords, base + "-w" + the limit otherwise ("tldr-v1-w15"). The limit is part of the
// prompt and of the validation, so TL;DRs written under another limit are stale for this one,
// while those stored at the default stay current.
func Versioned(base string, maxWords int) string {
	if maxWords == DefaultMaxWords {
		return base
	}
	return fmt.Sprintf("%s-w%d", base, maxWords)
}

// Unversioned is Versioned's inverse: the base and the word limit of a prompt version —
// "tldr-v1-w15" is tldr-v1 and 15, a version without a "-wN" limit itself and DefaultMaxWords.
func Unversioned(version string) (base string, maxWords int) {
	if i := strings.LastIndex(version, "-w"); i >= 0 {
		if n, err := strconv.Atoi(version[i+2:]); err == nil && n > 0 {
			return version[:i], n
		}
	}
	return version, DefaultMaxWords
}

// systemPrompt is the standing instruction; %d is the word limit.
const systemPrompt = `You write TL;DRs of research papers: one plain sentence that tells a reader what the paper contributes.
Rules:
- Exactly one sentence, at most %d words.
- Start directly with the content. No preamble such as "Sure", "Here is", "TL;DR:", "Summary:", "This paper" or "The authors".
- Plain text only: no markdown, no bullet points, no quotation marks around the sentence.
- Write in the same language as the abstract.`

// strictSystemPrompt replaces systemPrompt on the single retry after an invalid answer.
const strictSystemPrompt = systemPrompt + `
Your answer is checked by a program. Anything other than the single sentence itself is rejected.`

// userPrompt frames the paper. The abstract is the last and longest paragraph of the message.
const userPrompt = `Write the one-sentence TL;DR (at most %d words) of this paper.

Title: %s

%s`

// retryPrompt is the user message of the retry; %s is what was wrong with the first answer.
const retryPrompt = `Your previous answer was rejected (%s). Answer again with only one plain sentence of at most %d words, without any preamble, label, markdown or quotes, in the language of the abstract.

Title: %s

%s`

// message is one chat message of a prompt.
type message struct {
	Role    string // "system" or "user"
	Content string
}

// buildPrompt returns the messages of the first request for a.
func buildPrompt(a paper.Abstract, maxWords int) []message {
	return []message{
		{Role: "system", Content: fmt.Sprintf(systemPrompt, maxWords)},
		{Role: "user", Content: fmt.Sprintf(userPrompt, maxWords, oneLine(a.Title), strings.TrimSpace(a.Abstract))},
	}
}

// buildRetryPrompt returns the messages of the stricter retry; problem says what the rejected
// answer did wrong (the answer itself is not repeated).
func buildRetryPrompt(a paper.Abstract, maxWords int, problem string) []message {
	return []message{
		{Role: "system", Content: fmt.Sprintf(strictSystemPrompt, maxWords)},
		{Role: "user", Content: fmt.Sprintf(retryPrompt, problem, maxWords, oneLine(a.Title), strings.TrimSpace(a.Abstract))},
	}
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }
