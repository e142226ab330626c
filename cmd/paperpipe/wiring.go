package main

import (
	"context"
	"errors"
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
			Limiter: lim, Logger: log, HTTPClient: c.httpClient,
		})
		if err != nil {
			return nil, fmt.Errorf("summarizer: %w", err)
		}
		m.sum = s
	}
	if c.EmbedModel == offline {
		m.emb = embed.NewOffline()
	} else {
		if c.EmbedBatchInputs <= 0 || c.EmbedBatchTokens <= 0 {
			return nil, fmt.Errorf("embedding batches: PAPERPIPE_EMBED_BATCH_INPUTS=%d and PAPERPIPE_EMBED_BATCH_TOKENS=%d must be positive",
				c.EmbedBatchInputs, c.EmbedBatchTokens)
		}
		e, err := embed.New(embed.Config{
			BaseURL: c.BaseURL, APIKey: c.APIKey, Model: c.EmbedModel, Dimensions: c.EmbedDims,
			MaxBatchInputs: c.EmbedBatchInputs, MaxBatchTokens: c.EmbedBatchTokens,
			// One input must fit in a request: a smaller token budget truncates inputs to it.
			ContextTokens: min(embedInputTokens, c.EmbedBatchTokens),
			Limiter:       lim, Logger: log, HTTPClient: c.httpClient,
		})
		if err != nil {
			return nil, fmt.Errorf("embedder: %w", err)
		}
		m.emb = e
	}
	return m, nil
}

// embedInputTokens is the input limit of OpenAI's embedding models (8,191 tokens).
const embedInputTokens = 8191

// openStore connects to DATABASE_URL and applies migrations.
func openStore(ctx context.Context, c *config, log *slog.Logger) (*store.Store, error) {
	st, err := store.Open(ctx, store.Config{URL: c.DatabaseURL, EFSearch: c.EFSearch, Logger: log})
	if err != nil {
		return nil, err
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		return nil, err
	}
	return st, nil
}

// openModelsAndStore opens what most commands need: the logger, the configured models and the
// migrated store. The caller closes the store.
func openModelsAndStore(ctx context.Context, c *config) (*slog.Logger, *models, *store.Store, error) {
	log := newLogger(c)
	m, err := buildModels(c, log)
	if err != nil {
		return nil, nil, nil, err
	}
	st, err := openStore(ctx, c, log)
	if err != nil {
		return nil, nil, nil, err
	}
	return log, m, st, nil
}

// lookupSpace returns the stored embedding space sp names, without creating it: a space that
// does not exist yet is returned with ID -1, which no stored vector has, so every paper counts
// as lacking its embedding there.
func lookupSpace(ctx context.Context, st *store.Store, sp paper.Space) (paper.Space, error) {
	info, err := st.ResolveSpace(ctx, sp.Name())
	switch {
	case err == nil:
		return info.Space, nil
	case errors.Is(err, paper.ErrNotFound):
		sp.ID = -1
		return sp, nil
	default:
		return sp, err
	}
}

// activeSpace returns the space queries use.
func activeSpace(ctx context.Context, st *store.Store) (paper.Space, error) {
	sp, err := st.ActiveSpace(ctx)
	if err != nil {
		return sp, fmt.Errorf("no active embedding space (has a worker processed any paper yet?): %w", err)
	}
	return sp, nil
}
