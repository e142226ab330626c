package openaitest

import (
	"context"
	"math"
	"testing"

	"github.com/sashabaranov/go-openai"
)

func cosine(a, b []float32) float64 {
	var dot, na, nb float64
	for i := range a {
		dot += float64(a[i]) * float64(b[i])
		na += float64(a[i]) * float64(a[i])
		nb += float64(b[i]) * float64(b[i])
	}
	return dot / math.Sqrt(na*nb)
}

// Abstracts for the similarity tests: moe and moe2 share a topic, the
// others do not.
const (
	moe = "Sparse mixture-of-experts models route each token to a few experts. We propose a load-balancing loss " +
		"that keeps every expert busy and improves language modelling throughput by 30% at equal quality."
	moe2 = "We study routing in mixture-of-experts language models: a new balancing loss for the experts keeps " +
		"the load even across experts and raises training throughput of sparse models."
	proteins = "We predict protein structures from amino-acid sequences with a geometric deep network trained on " +
		"crystallographic data, reaching atomic accuracy on most targets of the assessment."
	galaxies = "Spectroscopic surveys of distant galaxies reveal that star formation peaked ten billion years ago; " +
		"we measure the decline with a sample of quiescent galaxies."
)

func TestVectorSimilarTextsAreCloserThanUnrelated(t *testing.T) {
	for _, dims := range []int{256, 768, 1536} {
		a, b := Vector(moe, dims), Vector(moe2, dims)
		related := cosine(a, b)
		for _, other := range []string{proteins, galaxies} {
			o := Vector(other, dims)
			if c := cosine(a, o); c >= related-0.2 {
				t.Errorf("dims %d: cosine(moe, unrelated) = %.3f, want well below cosine(moe, moe2) = %.3f", dims, c, related)
			}
		}
		if related < 0.3 {
			t.Errorf("dims %d: cosine of two abstracts on the same topic = %.3f, want ≥ 0.3", dims, related)
		}
		// The random vectors of the same texts are unrelated: near-orthogonal.
		if c := cosine(RandomVector(moe, dims), RandomVector(moe2, dims)); math.Abs(c) > 0.25 {
			t.Errorf("dims %d: cosine of random vectors = %.3f, want about 0", dims, c)
		}
	}
}

func TestVectorIsDeterministicUnitAndDistinct(t *testing.T) {
	for _, fn := range []struct {
		name string
		f    func(string, int) []float32
	}{{"Vector", Vector}, {"RandomVector", RandomVector}} {
		a, b := fn.f(moe, 768), fn.f(moe, 768)
		if !equal(a, b) {
			t.Errorf("%s: two vectors of the same text differ", fn.name)
		}
		if n := norm(a); math.Abs(n-1) > 1e-5 {
			t.Errorf("%s: norm %v, want 1", fn.name, n)
		}
		// Same words, other case and order: a different text, so a different
		// (but for Vector very close) vector.
		c := fn.f("HELLO world", 768)
		d := fn.f("world hello", 768)
		if equal(c, d) {
			t.Errorf("%s: two different texts got the same vector", fn.name)
		}
		if cs := cosine(c, d); fn.name == "Vector" && cs < 0.98 {
			t.Errorf("%s: cosine of texts with the same words = %.3f, want ≥ 0.98", fn.name, cs)
		}
	}
}

func TestVectorOfTextWithoutWordsIsUnit(t *testing.T) {
	for _, text := range []string{"!!!", "the of and", "\x00tokens:"} {
		v := Vector(text, 64)
		if n := norm(v); math.Abs(n-1) > 1e-5 {
			t.Errorf("Vector(%q): norm %v, want 1", text, n)
		}
	}
}

func TestVectorShorterIsNormalisedPrefix(t *testing.T) {
	for _, fn := range []func(string, int) []float32{Vector, RandomVector} {
		long, short := fn(moe, 1536), fn(moe, 100)
		var n float64
		for _, x := range long[:100] {
			n += float64(x) * float64(x)
		}
		n = math.Sqrt(n)
		for i, x := range short {
			if math.Abs(float64(x)-float64(long[i])/n) > 1e-6 {
				t.Fatalf("dimension %d: %v, want %v", i, x, float64(long[i])/n)
			}
		}
	}
}

func TestVectorOfTokenIDsCountsIDsAsWords(t *testing.T) {
	a := Vector(tokenInput([]int64{101, 2023, 2003, 1037, 3231, 102}).key, 768)
	b := Vector(tokenInput([]int64{101, 2023, 2003, 1037, 3231, 4937, 102}).key, 768)
	c := Vector(tokenInput([]int64{7, 8, 9, 10, 11}).key, 768)
	if ab, ac := cosine(a, b), cosine(a, c); ab < 0.7 || ab <= ac+0.3 {
		t.Errorf("cosine(ids, ids plus one) = %.3f, cosine(ids, other ids) = %.3f; want the first ≥ 0.7 and well above", ab, ac)
	}
}

func TestEmbeddingsFollowConfigVectors(t *testing.T) {
	for _, tc := range []struct {
		vectors string
		want    func(string, int) []float32
	}{{"", Vector}, {VectorsText, Vector}, {VectorsRandom, RandomVector}} {
		s := Start(t, Config{Vectors: tc.vectors})
		resp, err := client(s, "k").CreateEmbeddings(context.Background(), openai.EmbeddingRequestStrings{
			Input: []string{moe, proteins}, Model: openai.SmallEmbedding3, Dimensions: 64})
		if err != nil {
			t.Fatal(err)
		}
		for i, in := range []string{moe, proteins} {
			if !equal(resp.Data[i].Embedding, tc.want(in, 64)) {
				t.Errorf("Vectors %q: data[%d] is not the vector of its input", tc.vectors, i)
			}
		}
	}
}
