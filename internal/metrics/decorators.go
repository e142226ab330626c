package metrics

import (
	"context"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

// Summarizer is the method set of pipeline.Summarizer.
type Summarizer interface {
	Model() string
	PromptVersion() string
	Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error)
}

// Embedder is the method set of pipeline.Embedder plus query embedding.
type Embedder interface {
	Space() paper.Space
	Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error)
	EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error)
}

// Store is the method set of pipeline.Store.
type Store interface {
	UpsertPapers(ctx context.Context, papers []paper.Abstract, w paper.Work) ([]paper.Pending, error)
	SaveSummaries(ctx context.Context, sums []paper.Summary) (int, error)
	SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (int, error)
	Removed(ctx context.Context, id string) (bool, error)
	LastRemoval(ctx context.Context) (time.Time, error)
	RecordUsage(ctx context.Context, u []paper.Usage) error
	RecordWithheld(ctx context.Context, ws []paper.Withheld) (int, error)
	ForgetWithheld(ctx context.Context, papers []paper.Abstract, w paper.Work) (int, error)
	Ping(ctx context.Context) error
}

// Summarizer returns s counting each TL;DR in StageSummarize and its tokens. With a nil
// Metrics it returns s itself.
func (m *Metrics) Summarizer(s Summarizer) Summarizer {
	if m == nil {
		return s
	}
	return summarizer{Summarizer: s, m: m}
}

type summarizer struct {
	Summarizer
	m *Metrics
}

func (s summarizer) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	start := time.Now()
	sum, err := s.Summarizer.Summarize(ctx, a)
	s.m.ObserveStage(StageSummarize, 1, time.Since(start), err)
	s.m.AddUsage(sum.Usage)
	return sum, err
}

// Embedder returns e counting papers in StageEmbed, queries in StageQueryEmbed, and their
// tokens. With a nil Metrics it returns e itself.
func (m *Metrics) Embedder(e Embedder) Embedder {
	if m == nil {
		return e
	}
	return embedder{Embedder: e, m: m}
}

type embedder struct {
	Embedder
	m *Metrics
}

func (e embedder) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	start := time.Now()
	embs, u, err := e.Embedder.Embed(ctx, papers)
	e.m.ObserveStage(StageEmbed, len(papers), time.Since(start), err)
	e.m.AddUsage(u)
	return embs, u, err
}

func (e embedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	start := time.Now()
	v, u, err := e.Embedder.EmbedQuery(ctx, text)
	e.m.ObserveStage(StageQueryEmbed, 1, time.Since(start), err)
	e.m.AddUsage(u)
	return v, u, err
}

// Store returns s counting papers recorded (StageUpsert) and results stored
// (StageSaveSummaries, StageSaveEmbeddings). With a nil Metrics it returns s itself.
func (m *Metrics) Store(s Store) Store {
	if m == nil {
		return s
	}
	return store{Store: s, m: m}
}

type store struct {
	Store
	m *Metrics
}

func (s store) UpsertPapers(ctx context.Context, papers []paper.Abstract, w paper.Work) ([]paper.Pending, error) {
	start := time.Now()
	p, err := s.Store.UpsertPapers(ctx, papers, w)
	s.m.ObserveStage(StageUpsert, len(papers), time.Since(start), err)
	return p, err
}

func (s store) SaveSummaries(ctx context.Context, sums []paper.Summary) (int, error) {
	start := time.Now()
	n, err := s.Store.SaveSummaries(ctx, sums)
	s.m.ObserveStage(StageSaveSummaries, len(sums), time.Since(start), err)
	return n, err
}

func (s store) SaveEmbeddings(ctx context.Context, spaceID int64, embs []paper.Embedding) (int, error) {
	start := time.Now()
	n, err := s.Store.SaveEmbeddings(ctx, spaceID, embs)
	s.m.ObserveStage(StageSaveEmbeddings, len(embs), time.Since(start), err)
	return n, err
}

func (s store) RecordUsage(ctx context.Context, u []paper.Usage) error {
	start := time.Now()
	err := s.Store.RecordUsage(ctx, u)
	s.m.ObserveStage(StageRecordUsage, len(u), time.Since(start), err)
	return err
}
