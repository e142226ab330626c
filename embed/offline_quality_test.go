package embed

import (
	"context"
	"math"
	"sort"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
)

// tfidfVectors computes exact sparse TF-IDF vectors of docs on the embedder's own
// tokenization (terms: Terms or TermsV2): sublinear tf (1 + ln tf) × smoothed corpus IDF
// ln((1+N)/(1+df)) + 1, L2-normalised.
func tfidfVectors(docs []string, terms func(string) []string) []map[string]float64 {
	tfs := make([]map[string]int, len(docs))
	df := map[string]int{}
	for i, d := range docs {
		tfs[i] = map[string]int{}
		for _, t := range terms(d) {
			tfs[i][t]++
		}
		for t := range tfs[i] {
			df[t]++
		}
	}
	n := float64(len(docs))
	out := make([]map[string]float64, len(docs))
	for i, tf := range tfs {
		v := map[string]float64{}
		var norm float64
		for t, c := range tf {
			w := (1 + math.Log(float64(c))) * (math.Log((1+n)/(1+float64(df[t]))) + 1)
			v[t] = w
			norm += w * w
		}
		norm = math.Sqrt(norm)
		for t := range v {
			v[t] /= norm
		}
		out[i] = v
	}
	return out
}

// topK returns the indices of the k highest scores other than self, ties broken by index.
func topK(scores []float64, self, k int) []int {
	idx := make([]int, 0, len(scores)-1)
	for j := range scores {
		if j != self {
			idx = append(idx, j)
		}
	}
	sort.SliceStable(idx, func(a, b int) bool { return scores[idx[a]] > scores[idx[b]] })
	return idx[:k]
}

// issueBar is the overlap the end-to-end issue asks of the offline embedder.
const issueBar = 0.80

// hashFloor is what the corpus-free hashed embedder is held to. Signed feature hashing cannot
// reach issueBar in 768 dimensions on this archive: hashing the exact TF-IDF vectors
// themselves into 768 dimensions gives about 0.53 (2000: 0.67, 8000: 0.83), because collision
// noise (≈ 1/√768 ≈ 0.036 in cosine) is far larger than the gaps between neighbours ranked
// 8th to 12th (≈ 0.005); that is why the archive-fitted model exists.
const hashFloor = 0.58

// overlap returns the mean over papers of |top-k by vectors ∩ top-k by exact TF-IDF| / k, the
// worst paper's overlap and its index.
func overlap(exact []map[string]float64, vecs [][]float32, k int) (mean, worst float64, worstI int) {
	worst = 1
	for i := range vecs {
		exactScores := make([]float64, len(vecs))
		vecScores := make([]float64, len(vecs))
		for j := range vecs {
			for term, w := range exact[i] {
				exactScores[j] += w * exact[j][term]
			}
			vecScores[j] = dot(vecs[i], vecs[j])
		}
		want := map[int]bool{}
		for _, j := range topK(exactScores, i, k) {
			want[j] = true
		}
		hits := 0
		for _, j := range topK(vecScores, i, k) {
			if want[j] {
				hits++
			}
		}
		o := float64(hits) / float64(k)
		mean += o
		if o < worst {
			worst, worstI = o, i
		}
	}
	return mean / float64(len(vecs)), worst, worstI
}

func dot(a, b []float32) float64 {
	var s float64
	for i, x := range a {
		s += float64(x) * float64(b[i])
	}
	return s
}

func sampleDocs(t *testing.T) ([]paper.Abstract, []string) {
	papers := sampledata.Papers(t)
	docs := make([]string, len(papers))
	for i, p := range papers {
		docs[i] = TitleAbstract(p)
	}
	return papers, docs
}

func vectorsOf(t *testing.T, e interface {
	Embed(context.Context, []paper.Abstract) ([]paper.Embedding, paper.Usage, error)
}, papers []paper.Abstract) [][]float32 {
	embs, _, err := e.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	out := make([][]float32, len(embs))
	for i, e := range embs {
		out[i] = e.Vector
	}
	return out
}

// TestFittedNeighboursOverlapExactTFIDF holds the archive-fitted offline embedder to the
// issue's bar: fitted on the sample archive, its top-10 neighbours overlap the exact TF-IDF
// cosine ranking by at least 80% on average.
func TestFittedNeighboursOverlapExactTFIDF(t *testing.T) {
	t.Parallel()
	papers, docs := sampleDocs(t)
	m, _, err := Fit(docs, OfflineDimensions)
	if err != nil {
		t.Fatal(err)
	}
	mean, worst, wi := overlap(tfidfVectors(docs, TermsV2), vectorsOf(t, m, papers), 10)
	t.Logf("fitted embedder (%s, %+v): mean top-10 overlap with exact TF-IDF = %.3f (worst %.1f: %q)",
		m.Name(), m.Info(), mean, worst, papers[wi].Title)
	if mean < issueBar {
		t.Fatalf("mean top-10 overlap %.3f, want ≥ %.2f", mean, issueBar)
	}
}

// TestFittedOnHalfGeneralises fits on every other paper (and on every third) and measures the
// overlap over the whole archive, so half the papers (two thirds) are texts the model never saw:
// the figure users get for papers that arrive after a fit, before the next one. It is logged
// (README, The offline embedder: 80% and 70%), and held to the hashed embedder's floor: a fit
// must never be worse than not fitting.
func TestFittedOnHalfGeneralises(t *testing.T) {
	t.Parallel()
	papers, docs := sampleDocs(t)
	for _, every := range []int{2, 3} {
		var part []string
		for i := 0; i < len(docs); i += every {
			part = append(part, docs[i])
		}
		m, _, err := Fit(part, OfflineDimensions)
		if err != nil {
			t.Fatal(err)
		}
		mean, _, _ := overlap(tfidfVectors(docs, TermsV2), vectorsOf(t, m, papers), 10)
		t.Logf("fitted on %d of %d papers: mean top-10 overlap with exact TF-IDF over all = %.3f", len(part), len(docs), mean)
		if mean < hashFloor {
			t.Fatalf("fitted on %d of %d papers: mean top-10 overlap %.3f, want ≥ %.2f", len(part), len(docs), mean, hashFloor)
		}
	}
}

// TestOfflineNeighboursOverlapExactTFIDF measures the corpus-free hashed embedder (the one a
// worker uses before any fit) and guards it against regressions.
func TestOfflineNeighboursOverlapExactTFIDF(t *testing.T) {
	t.Parallel()
	papers, docs := sampleDocs(t)
	for _, o := range []*Offline{NewOffline(), NewOfflineV2()} {
		mean, worst, wi := overlap(tfidfVectors(docs, o.terms), vectorsOf(t, o, papers), 10)
		t.Logf("hashed embedder %s: mean top-10 overlap with exact TF-IDF = %.3f over %d papers (worst %.1f: %q)",
			o.model, mean, len(papers), worst, papers[wi].Title)
		if mean < hashFloor {
			t.Errorf("%s: mean top-10 overlap %.3f, want ≥ %.2f", o.model, mean, hashFloor)
		}
	}
}

func TestOfflineMixtureOfExpertsNeighbours(t *testing.T) {
	t.Parallel()
	for _, o := range []*Offline{NewOffline(), NewOfflineV2()} {
		t.Run(o.model, func(t *testing.T) { mixtureOfExpertsNeighbours(t, o) })
	}
}

func mixtureOfExpertsNeighbours(t *testing.T, o *Offline) {
	papers := sampledata.Papers(t)
	embs, _, err := o.Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	q := -1
	for i, p := range papers {
		if strings.Contains(p.Title, "Load Balancing Loss") {
			q = i
		}
	}
	scores := make([]float64, len(papers))
	for j := range papers {
		for d, x := range embs[q].Vector {
			scores[j] += float64(x) * float64(embs[j].Vector[d])
		}
	}
	moe := 0
	for _, j := range topK(scores, q, 5) {
		t.Logf("  %.3f %s", scores[j], papers[j].Title)
		text := strings.ToLower(papers[j].Title + " " + papers[j].Abstract)
		if strings.Contains(text, "mixture-of-expert") || strings.Contains(text, "mixture of expert") || strings.Contains(text, "moe") {
			moe++
		}
	}
	if moe < 4 {
		t.Fatalf("%d of the top 5 neighbours of the load-balancing paper are about mixture-of-experts, want ≥ 4", moe)
	}
}
