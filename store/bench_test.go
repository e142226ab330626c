package store_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// BenchmarkUpsertPapers measures the worker's ledger query: batches of 100 papers, half of them
// already stored unchanged, reported as papers/s.
func BenchmarkUpsertPapers(b *testing.B) {
	s := open(b, pgtest.URL(b))
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	sp, err := s.EnsureSpace(b.Context(), paper.Space{Model: "bench", Dimensions: 8, Template: "t"})
	if err != nil {
		b.Fatal(err)
	}
	w := store.Work{Model: "m", PromptVersion: "v1", SpaceID: sp.ID}
	const batch = 100
	seen := abstracts(batch / 2)
	if _, err := s.UpsertPapers(b.Context(), seen, w); err != nil {
		b.Fatal(err)
	}
	i := 0
	for ; b.Loop(); i++ {
		ps := append([]paper.Abstract(nil), seen...)
		for j := range batch / 2 {
			ps = append(ps, paper.Abstract{ID: fmt.Sprintf("id:b%d-%d", i, j), Title: "T", Abstract: "A b c."})
		}
		if _, err := s.UpsertPapers(b.Context(), ps, w); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(i*batch)/b.Elapsed().Seconds(), "papers/s")
}

// BenchmarkSaveEmbeddings measures storing batches of 100 vectors of 768 dimensions into a space
// with its HNSW index, reported as vectors/s.
func BenchmarkSaveEmbeddings(b *testing.B) {
	s := open(b, pgtest.URL(b))
	if err := s.Migrate(b.Context()); err != nil {
		b.Fatal(err)
	}
	const batch, dims = 100, 768
	sp, err := s.EnsureSpace(b.Context(), paper.Space{Model: "bench", Dimensions: dims, Template: "t"})
	if err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(1, 1))
	i := 0
	for ; b.Loop(); i++ {
		b.StopTimer()
		ps := make([]paper.Abstract, batch)
		embs := make([]paper.Embedding, batch)
		for j := range ps {
			ps[j] = paper.Abstract{ID: fmt.Sprintf("id:e%d-%d", i, j), Title: "T", Abstract: "A b c."}
			v := make([]float32, dims)
			for k := range v {
				v[k] = r.Float32()
			}
			embs[j] = embeddingOf(ps[j], v...)
		}
		if _, err := s.UpsertPapers(b.Context(), ps, store.Work{}); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if n, err := s.SaveEmbeddings(b.Context(), sp.ID, embs); err != nil || n != batch {
			b.Fatalf("SaveEmbeddings = %d, %v", n, err)
		}
	}
	b.ReportMetric(float64(i*batch)/b.Elapsed().Seconds(), "vectors/s")
}
