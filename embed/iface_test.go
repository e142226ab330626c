package embed

import (
	"context"

	"github.com/paperpipe/paperpipe/paper"
)

// embedder is the interface the pipeline declares; both embedders must satisfy it.
type embedder interface {
	Space() paper.Space
	Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error)
	EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error)
}

var (
	_ embedder = (*Client)(nil)
	_ embedder = (*Offline)(nil)
)
