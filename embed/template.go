package embed

import (
	"fmt"
	"strings"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
)

// TemplateTitleAbstract is the input template "title, blank line, abstract": the default, and
// so far the only one.
const TemplateTitleAbstract = "title-abstract-v1"

// Text returns the text that template makes of a; an unknown template is an error.
func Text(template string, a paper.Abstract) (string, error) {
	switch template {
	case TemplateTitleAbstract:
		return TitleAbstract(a), nil
	}
	return "", fmt.Errorf("unknown embedding template %q", template)
}

// TitleAbstract returns a's title and abstract, trimmed, separated by a blank line (just one
// of them when the other is empty).
func TitleAbstract(a paper.Abstract) string {
	t, ab := strings.TrimSpace(a.Title), strings.TrimSpace(a.Abstract)
	switch {
	case t == "":
		return ab
	case ab == "":
		return t
	}
	return t + "\n\n" + ab
}

// EstimateTokens is the token estimate used for batching and truncation:
// llm.EstimateTokens, a token per 3 ASCII bytes and per byte of anything else, which stays
// above real tokenizers' counts (about 4 bytes of English per token), so batches sized by it
// fit the API's limits.
func EstimateTokens(s string) int { return llm.EstimateTokens(s) }
