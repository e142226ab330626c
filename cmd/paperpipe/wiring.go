package main

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/pipeline"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/summarize"
)

// models is the configured summarizer and embedder.
type models struct {
	sum pipeline.Summarizer
	emb embedder
}

// embedder is what the CLI needs of an embedder: the pipeline's interface plus query embedding.
type embedder interface {
	pipeline.Embedder
	EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error)
}

// buildModels returns the summarizer and embedder the configuration names: the built-in
// offline models for "offline", otherwise OpenAI-compatible clients sharing one rate limiter.
func buildModels(c *config, log *slog.Logger) (*models, error) {
	c.resolveModels()
	var lim *llm.Limiter
	if c.ChatModel != offline || c.EmbedModel != offline {
		lim = llm.NewLimiter(llm.LimiterConfig{RequestsPerMinute: c.RPM, TokensPerMinute: c.TPM, Logger: log})
	}
	m := &models{}
	if c.ChatModel == offline {
		m.sum = summarize.NewOffline(c.MaxWords)
	} else {
		s, err := summarize.New(summarize.Config{
			BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.ChatModel, MaxWords: c.MaxWords,
			Limiter: lim, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("summarizer: %w", err)
		}
		m.sum = s
	}
	if c.EmbedModel == offline {
		m.emb = embed.NewOffline()
	} else {
		e, err := embed.New(embed.Config{
			BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.EmbedModel, Dimensions: c.EmbedDims,
			Limiter: lim, Logger: log,
		})
		if err != nil {
			return nil, fmt.Errorf("embedder: %w", err)
		}
		m.emb = e
	}
	return m, nil
}

// openStore connects to DATABASE_URL and applies migrations.
func openStore(ctx context.Context, c *config, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(ctx, store.Config{URL: c.DatabaseURL, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// activeSpace returns the space queries use.
func activeSpace(ctx context.Context, st *store.Store) (paper.Space, error) {
	sp, err := st.ActiveSpace(ctx)
	if err != nil {
		return sp, fmt.Errorf("no active embedding space (has a worker processed any paper yet?): %w", err)
	}
	return sp, nil
}
