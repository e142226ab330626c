package web

import (
	"fmt"
	"math/rand/v2"
	"testing"
)

// BenchmarkLayoutMap draws the archive map of 3,000 papers, clustered, at the dimensions of the
// offline embedder (768) and of OpenAI's text-embedding-3-small (1,536).
func BenchmarkLayoutMap(b *testing.B) {
	for _, d := range []int{768, 1536} {
		b.Run(fmt.Sprintf("3000x%d", d), func(b *testing.B) {
			points := clusteredPoints(3000, d, 12)
			for b.Loop() {
				layoutMap(points)
			}
		})
	}
}

// clusteredPoints makes n unit-length points of d dimensions around k random centres.
func clusteredPoints(n, d, k int) []MapPoint {
	r := rand.New(rand.NewPCG(1, 2))
	centres := make([][]float32, k)
	for c := range centres {
		centres[c] = make([]float32, d)
		for j := range centres[c] {
			centres[c][j] = float32(r.NormFloat64())
		}
	}
	points := make([]MapPoint, n)
	for i := range points {
		v := make([]float32, d)
		c := centres[i%k]
		for j := range v {
			v[j] = c[j] + 0.8*float32(r.NormFloat64())
		}
		points[i] = MapPoint{ID: fmt.Sprintf("p%d", i), Title: fmt.Sprintf("Paper %d on topic %d", i, i%k), Vector: v}
	}
	return points
}
