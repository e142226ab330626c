package summarize

import (
	"context"

	"github.com/paperpipe/paperpipe/paper"
)

// summarizer is the interface the pipeline declares; both summarizers must satisfy it.
type summarizer interface {
	Model() string
	PromptVersion() string
	Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error)
}

var (
	_ summarizer = (*Client)(nil)
	_ summarizer = (*Offline)(nil)
)
