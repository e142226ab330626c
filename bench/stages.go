package bench

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// StageResult is the cost of one store call the worker makes per micro-batch, measured alone.
type StageResult struct {
	Stage string `json:"stage"`
	// Papers is how many papers went through, in batches of Batch.
	Papers int `json:"papers"`
	Batch  int `json:"batch"`
	// WallPer1000 and PostgresPer1000 are seconds of wall time and of the bench database's
	// backends' CPU per 1,000 papers; PapersPerSecond is the rate of one caller.
	WallPer1000     float64 `json:"wall_s_per_1000"`
	PostgresPer1000 float64 `json:"postgres_cpu_s_per_1000"`
	PapersPerSecond float64 `json:"papers_per_s"`
}

// RunStages measures, one caller at a time, the store calls a worker makes for n new papers in
// batches of batch: UpsertPapers, SaveSummaries, and SaveEmbeddings of 768-dimensional
// vectors into an HNSW-indexed space (offline-embedder vectors and the fake API's default
// text vectors, which cluster like real embeddings, and uniformly random unit vectors, the
// fake's -vectors random) and into a space without an index. It shows where PostgreSQL's CPU goes per abstract.
func RunStages(ctx context.Context, db *DB, corpus []paper.Abstract, n, batch int, log *slog.Logger) ([]StageResult, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// st creates spaces indexed as store.IndexHNSW (the "HNSW space" rows); stHalf and stBin
	// below, on the same schema, the other kinds.
	st, drop, err := db.Schema(ctx, "stages", store.Config{Logger: log, VectorIndex: store.IndexHNSW})
	if err != nil {
		return nil, err
	}
	defer drop()
	abs := GenerateAbstracts(corpus, n, "stages", 3)
	off := embed.NewOfflineV2()
	spOff, err := st.EnsureSpace(ctx, off.Space())
	if err != nil {
		return nil, err
	}
	spRand, err := st.EnsureSpace(ctx, paper.Space{Model: "random-unit", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	spText, err := st.EnsureSpace(ctx, paper.Space{Model: "fake-text", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	spBare, _, err := st.EnsureSpaceForLoad(ctx, paper.Space{Model: "random-unit-noindex", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	// The same schema through a store that creates binary-code spaces (store.IndexHNSWBinary).
	stBin, err := store.Open(ctx, store.Config{URL: st.Pool().Config().ConnString(), VectorIndex: store.IndexHNSWBinary, Logger: log})
	if err != nil {
		return nil, err
	}
	defer stBin.Close()
	spBinText, err := stBin.EnsureSpace(ctx, paper.Space{Model: "fake-text-binary", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	spBinOff, err := stBin.EnsureSpace(ctx, paper.Space{Model: "offline-binary", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	// And through one that creates halfvec spaces (store.IndexHNSWHalfvec).
	stHalf, err := store.Open(ctx, store.Config{URL: st.Pool().Config().ConnString(), VectorIndex: store.IndexHNSWHalfvec, Logger: log})
	if err != nil {
		return nil, err
	}
	defer stHalf.Close()
	spHalf, err := stHalf.EnsureSpace(ctx, paper.Space{Model: "offline-halfvec", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	// Experiment (SQL on the bench schema only): the same vectors into a vector index built
	// with ef_construction 32 instead of 64.
	spEf32, _, err := st.EnsureSpaceForLoad(ctx, paper.Space{Model: "offline-ef32", Dimensions: 768, Template: "bench"})
	if err != nil {
		return nil, err
	}
	if _, err := st.Pool().Exec(ctx, fmt.Sprintf(`CREATE INDEX bench_ef32_s%[1]d ON embeddings USING hnsw ((embedding::vector(768)) vector_cosine_ops) WITH (ef_construction = 32) WHERE space_id = %[1]d`,
		spEf32.ID)); err != nil {
		return nil, fmt.Errorf("experiment index: %w", err)
	}
	work := paper.Work{Model: "bench-model", PromptVersion: "v1", SpaceID: spOff.ID}
	r := rand.New(rand.NewPCG(5, 5))
	randVec := func() []float32 {
		v := make([]float32, 768)
		for i := range v {
			v[i] = float32(r.NormFloat64())
		}
		return Normalize(v)
	}
	offEmbs, _, err := off.Embed(ctx, abs)
	if err != nil {
		return nil, err
	}
	randEmbs, textEmbs := make([]paper.Embedding, n), make([]paper.Embedding, n)
	for i, a := range abs {
		randEmbs[i] = paper.Embedding{PaperID: a.ID, ContentHash: a.ContentHash(), Vector: randVec()}
		textEmbs[i] = paper.Embedding{PaperID: a.ID, ContentHash: a.ContentHash(), Vector: openaitest.Vector(embed.TitleAbstract(a), 768)}
	}
	sums := make([]paper.Summary, n)
	for i, a := range abs {
		sums[i] = paper.Summary{PaperID: a.ID, Text: "A one-sentence TL;DR of paper " + a.ID + ".", Model: work.Model,
			PromptVersion: work.PromptVersion, ContentHash: a.ContentHash(), Validation: paper.ValidOK}
	}
	// setup, when set, runs before a stage's timing starts.
	stages := []struct {
		name  string
		do    func(i, j int) error
		setup func() error
	}{
		{"UpsertPapers (new papers)", func(i, j int) error { _, err := st.UpsertPapers(ctx, abs[i:j], work); return err }, nil},
		{"SaveSummaries", func(i, j int) error { _, err := st.SaveSummaries(ctx, sums[i:j]); return err }, nil},
		{"SaveEmbeddings, HNSW space, offline vectors", func(i, j int) error { _, err := st.SaveEmbeddings(ctx, spOff.ID, offEmbs[i:j]); return err }, nil},
		// After the TL;DRs and vectors of work are stored, as the worker finds a paper it skips.
		{"UpsertPapers (unchanged papers, the skip path)", func(i, j int) error { return skipPath(ctx, st, abs[i:j], work) }, nil},
		{"SaveEmbeddings, HNSW space, fake API text vectors (its default)", func(i, j int) error { _, err := st.SaveEmbeddings(ctx, spText.ID, textEmbs[i:j]); return err }, nil},
		{"SaveEmbeddings, HNSW space, random vectors (fake API -vectors random)", func(i, j int) error { _, err := st.SaveEmbeddings(ctx, spRand.ID, randEmbs[i:j]); return err }, nil},
		{"SaveEmbeddings, space without index, random vectors", func(i, j int) error { _, err := st.SaveEmbeddings(ctx, spBare.ID, randEmbs[i:j]); return err }, nil},
		{"SaveEmbeddings, hnsw-binary space, offline vectors", func(i, j int) error { _, err := stBin.SaveEmbeddings(ctx, spBinOff.ID, offEmbs[i:j]); return err }, nil},
		{"SaveEmbeddings, hnsw-binary space, fake API text vectors", func(i, j int) error { _, err := stBin.SaveEmbeddings(ctx, spBinText.ID, textEmbs[i:j]); return err }, nil},
		{"SaveEmbeddings, hnsw-halfvec space (the default), offline vectors", func(i, j int) error { _, err := stHalf.SaveEmbeddings(ctx, spHalf.ID, offEmbs[i:j]); return err }, nil},
		{"experiment: SaveEmbeddings, HNSW ef_construction 32, offline vectors", func(i, j int) error { _, err := st.SaveEmbeddings(ctx, spEf32.ID, offEmbs[i:j]); return err }, nil},
		{"experiment: UpsertPapers (unchanged papers, the skip path) without the generated tsv column",
			func(i, j int) error { return skipPath(ctx, st, abs[i:j], work) },
			func() error {
				_, err := st.Pool().Exec(ctx, "DROP TRIGGER IF EXISTS papers_tsv ON papers; ALTER TABLE papers DROP COLUMN tsv")
				return err
			}},
	}
	var out []StageResult
	for _, s := range stages {
		if s.setup != nil {
			if err := s.setup(); err != nil {
				return out, fmt.Errorf("stage %s: %w", s.name, err)
			}
		}
		c0 := SampleCPU(0, db.Name)
		t0 := time.Now()
		for i := 0; i < n; i += batch {
			if err := s.do(i, min(i+batch, n)); err != nil {
				return out, fmt.Errorf("stage %s: %w", s.name, err)
			}
		}
		d := time.Since(t0)
		u := SampleCPU(0, db.Name).Since(c0)
		res := StageResult{Stage: s.name, Papers: n, Batch: batch,
			WallPer1000: round3(d.Seconds() / float64(n) * 1000), PostgresPer1000: round3(u.PostgresSeconds / float64(n) * 1000),
			PapersPerSecond: round3(Rate(n, d))}
		log.Info("stage", "stage", s.name, "wall_s_per_1000", res.WallPer1000, "pg_cpu_s_per_1000", res.PostgresPer1000)
		out = append(out, res)
	}
	return out, nil
}

// skipPath is UpsertPapers of papers the worker has nothing to do for: unchanged, their TL;DRs
// and embeddings of work stored. It fails when the call finds work pending, as then it is not
// the worker's skip path.
func skipPath(ctx context.Context, st *store.Store, papers []paper.Abstract, work paper.Work) error {
	pending, err := st.UpsertPapers(ctx, papers, work)
	if err != nil {
		return err
	}
	for _, p := range pending {
		if p.NeedTLDR || p.NeedEmbedding || p.Changed || p.New {
			return fmt.Errorf("paper %s has work pending (%+v): not the worker's skip path", p.ID, p)
		}
	}
	return nil
}
