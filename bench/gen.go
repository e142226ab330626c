package bench

import (
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"

	"github.com/paperpipe/paperpipe/ingest"
	"github.com/paperpipe/paperpipe/paper"
)

// LoadCorpus reads the papers of an archive in any ingest format (the sample archive,
// testdata/sample-papers.txt, in the benchmarks), skipping bad records.
func LoadCorpus(path string) ([]paper.Abstract, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("open corpus: %w", err)
	}
	defer f.Close()
	r, err := ingest.NewReader(f, path, ingest.Options{})
	if err != nil {
		return nil, fmt.Errorf("read corpus %s: %w", path, err)
	}
	var out []paper.Abstract
	for {
		a, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		var bad *ingest.RecordError
		if errors.As(err, &bad) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("read corpus %s: %w", path, err)
		}
		out = append(out, a)
	}
	if len(out) == 0 {
		return nil, fmt.Errorf("corpus %s holds no paper", path)
	}
	return out, nil
}

// sentences splits text after each ". ", "? " or "! ".
func sentences(text string) []string {
	var out []string
	start := 0
	for i := 0; i+1 < len(text); i++ {
		if (text[i] == '.' || text[i] == '?' || text[i] == '!') && text[i+1] == ' ' {
			out = append(out, strings.TrimSpace(text[start:i+1]))
			start = i + 2
		}
	}
	if rest := strings.TrimSpace(text[start:]); rest != "" {
		out = append(out, rest)
	}
	return out
}

// GenerateAbstracts returns n distinct abstracts made from the corpus, deterministic in seed: the
// i-th takes the title and sentences of corpus paper i mod len(corpus), splices in one sentence
// of another paper and ends with a sentence naming its index, so that texts, content hashes and
// TL;DRs differ while reading like the corpus. Ids are "bench:<tag>:<i>".
func GenerateAbstracts(corpus []paper.Abstract, n int, tag string, seed uint64) []paper.Abstract {
	if len(corpus) == 0 {
		return nil
	}
	split := make([][]string, len(corpus))
	for i, a := range corpus {
		split[i] = sentences(a.Abstract)
	}
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]paper.Abstract, n)
	for i := range out {
		b := i % len(corpus)
		o := r.IntN(len(corpus))
		base, other := split[b], split[o]
		ss := make([]string, 0, len(base)+2)
		ss = append(ss, base...)
		if len(other) > 0 {
			at := 1 + r.IntN(max(len(ss), 1))
			ss = append(ss[:min(at, len(ss))], append([]string{other[r.IntN(len(other))]}, ss[min(at, len(ss)):]...)...)
		}
		ss = append(ss, fmt.Sprintf("Experiment %d of series %s confirms the findings.", i, tag))
		out[i] = paper.Abstract{
			ID:       fmt.Sprintf("bench:%s:%07d", tag, i),
			Title:    fmt.Sprintf("%s (%s variant %d)", corpus[b].Title, tag, i),
			Abstract: strings.Join(ss, " "),
		}
	}
	return out
}

// ClusterSpec describes synthetic clustered vectors: Clusters centres drawn from N(0, I); each
// vector is its centre plus Spread·B·z, where B is a fixed Dims×Intrinsic matrix of N(0,1)
// entries and z ~ N(0, I) (so most of the variation lies in a low-dimensional subspace, as in
// real embeddings), plus isotropic N(0, Noise²) noise; then it is normalised to unit length.
type ClusterSpec struct {
	Dims      int     `json:"dims"`
	Clusters  int     `json:"clusters"`
	Intrinsic int     `json:"intrinsic_dims"`
	Spread    float64 `json:"spread"`
	Noise     float64 `json:"noise"`
	Seed      uint64  `json:"seed"`
}

// DefaultClusters returns the benchmarks' clustered data for n vectors of dims dimensions: one
// cluster per 1,000 vectors (at least 10), a 32-dimensional intrinsic subspace, spread 0.15 and
// noise 0.3, which puts neighbouring clusters about as far apart as points within a cluster.
func DefaultClusters(n, dims int, seed uint64) ClusterSpec {
	return ClusterSpec{Dims: dims, Clusters: max(n/1000, 10), Intrinsic: 32, Spread: 0.15, Noise: 0.3, Seed: seed}
}

// Generate returns n unit vectors drawn from spec; vector i depends only on spec and i, so a
// prefix of a larger set is the smaller set. They share one backing array.
func (spec ClusterSpec) Generate(n int) [][]float32 {
	return spec.generate(0, n)
}

// Queries returns n held-out vectors from the same distribution (indexes after any stored set).
func (spec ClusterSpec) Queries(n int) [][]float32 {
	return spec.generate(1<<40, n)
}

func (spec ClusterSpec) generate(first uint64, n int) [][]float32 {
	d, m := spec.Dims, spec.Intrinsic
	r := rand.New(rand.NewPCG(spec.Seed, 1))
	centres := make([]float32, spec.Clusters*d)
	for i := range centres {
		centres[i] = float32(r.NormFloat64())
	}
	basis := make([]float32, d*m) // row-major d×m
	for i := range basis {
		basis[i] = float32(r.NormFloat64())
	}
	backing := make([]float32, n*d)
	out := make([][]float32, n)
	var wg sync.WaitGroup
	workers := runtime.GOMAXPROCS(0)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			z := make([]float32, m)
			for i := w; i < n; i += workers {
				idx := first + uint64(i)
				pr := rand.New(rand.NewPCG(spec.Seed^0x9e3779b97f4a7c15, idx))
				c := pr.IntN(spec.Clusters)
				for j := range z {
					z[j] = float32(pr.NormFloat64() * spec.Spread)
				}
				v := backing[i*d : (i+1)*d : (i+1)*d]
				ctr := centres[c*d : (c+1)*d]
				for k := range v {
					v[k] = ctr[k] + dot(basis[k*m:(k+1)*m], z) + float32(pr.NormFloat64()*spec.Noise)
				}
				out[i] = Normalize(v)
			}
		}()
	}
	wg.Wait()
	return out
}
