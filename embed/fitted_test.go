package embed

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

// fittedTFIDF is the exact TF-IDF vector of text under a model fitted on fitted: the
// vocabulary's IDF, and the IDF of an unseen term for the others; L2-normalised.
func fittedTFIDF(fitted []string, text string) map[string]float64 {
	df := map[string]int{}
	for _, d := range fitted {
		for _, tc := range termCounts(TermsV2(d)) {
			df[tc.term]++
		}
	}
	v := map[string]float64{}
	var norm float64
	for _, tc := range termCounts(TermsV2(text)) {
		w := tfWeight(tc.n) * idf(len(fitted), df[tc.term])
		v[tc.term] = w
		norm += w * w
	}
	for t := range v {
		v[t] /= math.Sqrt(norm)
	}
	return v
}

func sparseDot(a, b map[string]float64) float64 {
	var s float64
	for t, w := range a {
		s += w * b[t]
	}
	return s
}

func TestFittedCosinesAreExactTFIDFCosinesOfFittedPapers(t *testing.T) {
	t.Parallel()
	_, docs := sampleDocs(t)
	m, _, err := Fit(docs, OfflineDimensions)
	if err != nil {
		t.Fatal(err)
	}
	if info := m.Info(); info.Components != len(docs) || info.Documents != len(docs) || math.Abs(info.Retained-1) > 1e-9 {
		t.Fatalf("Info = %+v, want every one of %d documents' directions kept", info, len(docs))
	}
	exact := tfidfVectors(docs, TermsV2)
	vecs := make([][]float32, len(docs))
	for i, d := range docs {
		vecs[i] = m.Vector(d)
		if len(vecs[i]) != OfflineDimensions {
			t.Fatalf("vector of %d dimensions, want %d", len(vecs[i]), OfflineDimensions)
		}
	}
	var worst float64
	for i := range docs {
		for j := range docs {
			worst = max(worst, math.Abs(dot(vecs[i], vecs[j])-sparseDot(exact[i], exact[j])))
		}
	}
	if worst > 1e-4 {
		t.Fatalf("largest |cosine − exact TF-IDF cosine| = %g, want ≤ 1e-4", worst)
	}
}

// A text the model was not fitted on has the exact TF-IDF dot product with every fitted
// paper, up to one factor for the text: so the ratio of the two is the same for every paper.
func TestFittedScoresOfNewTextsAreProportionalToExactTFIDF(t *testing.T) {
	t.Parallel()
	_, docs := sampleDocs(t)
	var fitted, unseen []string
	for i, d := range docs {
		if i%2 == 0 {
			fitted = append(fitted, d)
		} else {
			unseen = append(unseen, d)
		}
	}
	m, _, err := Fit(fitted, OfflineDimensions)
	if err != nil {
		t.Fatal(err)
	}
	fittedExact := make([]map[string]float64, len(fitted))
	fittedVecs := make([][]float32, len(fitted))
	for j, d := range fitted {
		fittedExact[j] = fittedTFIDF(fitted, d)
		fittedVecs[j] = m.Vector(d)
	}
	for _, text := range append(unseen, "sparse mixture of experts routing with a load balancing loss") {
		x, v := fittedTFIDF(fitted, text), m.Vector(text)
		lo, hi := math.Inf(1), math.Inf(-1)
		for j := range fitted {
			e := sparseDot(x, fittedExact[j])
			if e < 0.02 {
				continue // ratios of tiny scores only measure float32 rounding
			}
			r := dot(v, fittedVecs[j]) / e
			lo, hi = min(lo, r), max(hi, r)
		}
		if hi/lo > 1.001 {
			t.Fatalf("%.40q: score / exact TF-IDF score ranges over [%.5f, %.5f], want one constant", text, lo, hi)
		}
		// The hashed residual keeps the text's length up to hashing noise: the constant is
		// near 1 (short texts, with few terms, vary most).
		if lo < 0.8 || hi > 1.25 {
			t.Errorf("%.40q: score / exact TF-IDF score ≈ %.3f, want ≈ 1", text, lo)
		}
	}
}

func TestFitIsDeterministicAndLoadRoundTrips(t *testing.T) {
	t.Parallel()
	_, docs := sampleDocs(t)
	m1, blob1, err := Fit(docs[:40], 256)
	if err != nil {
		t.Fatal(err)
	}
	m2, blob2, err := Fit(docs[:40], 256)
	if err != nil {
		t.Fatal(err)
	}
	if m1.Name() != m2.Name() || !bytes.Equal(blob1, blob2) {
		t.Fatalf("two fits of the same documents: %s and %s", m1.Name(), m2.Name())
	}
	if !IsFittedModel(m1.Name()) || !IsOfflineModel(m1.Name()) || IsFittedModel(OfflineModel) {
		t.Errorf("IsFittedModel/IsOfflineModel disagree with the name %s", m1.Name())
	}
	other, _, err := Fit(docs[1:41], 256)
	if err != nil {
		t.Fatal(err)
	}
	if other.Name() == m1.Name() {
		t.Errorf("fits of different documents share the name %s", m1.Name())
	}
	loaded, err := Load(blob1)
	if err != nil {
		t.Fatal(err)
	}
	if sp := loaded.Space(); sp.Model != m1.Name() || sp.Dimensions != 256 || sp.Template != TemplateTitleAbstract {
		t.Errorf("loaded space %+v", sp)
	}
	for _, d := range docs[35:45] {
		a, b := m1.Vector(d), loaded.Vector(d)
		for i := range a {
			if a[i] != b[i] {
				t.Fatalf("vector %d differs after Load: %v vs %v", i, a[i], b[i])
			}
		}
	}
	if _, err := Load(blob1[:len(blob1)/2]); err == nil {
		t.Error("Load of a truncated model succeeded")
	}
	if _, err := Load([]byte("not a model")); err == nil {
		t.Error("Load of junk succeeded")
	}
}

func TestFitNeedsTwoDocumentsWithTermsAndRoomForTheResidual(t *testing.T) {
	t.Parallel()
	for _, docs := range [][]string{nil, {"one lonely paper about graphs"}, {"the of and", "a an"}} {
		if _, _, err := Fit(docs, 0); !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("Fit(%q): %v, want ErrInvalid", docs, err)
		}
	}
	two := []string{"graph neural networks", "sparse mixture of experts"}
	for _, dims := range []int{-1, 1, MinFittedDimensions - 1} {
		if _, _, err := Fit(two, dims); !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("Fit in %d dimensions: %v, want ErrInvalid", dims, err)
		}
	}
	m, _, err := Fit(two, MinFittedDimensions)
	if err != nil {
		t.Fatalf("Fit in %d dimensions: %v", MinFittedDimensions, err)
	}
	if v := m.Vector("sparse experts"); len(v) != MinFittedDimensions {
		t.Errorf("vector of %d dimensions, want %d", len(v), MinFittedDimensions)
	}
}

// Beyond exactEigenLimit documents the decomposition is randomized: it must still keep the
// leading directions, so that it retains nearly as much of the archive as the exact one.
func TestFitLargeArchiveKeepsLeadingDirections(t *testing.T) {
	if testing.Short() {
		t.Skip("fits 1,300 documents")
	}
	t.Parallel()
	_, docs := sampleDocs(t)
	var big []string
	for i := 0; len(big) < exactEigenLimit+100; i++ {
		// Every paper several times over, each copy with a few of its words dropped.
		words := strings.Fields(docs[i%len(docs)])
		var kept []string
		for j, w := range words {
			if (j+i)%7 != 0 {
				kept = append(kept, w)
			}
		}
		big = append(big, strings.Join(kept, " "))
	}
	m, _, err := Fit(big, 256)
	if err != nil {
		t.Fatal(err)
	}
	info := m.Info()
	if info.Components != 192 || info.Documents != len(big) {
		t.Fatalf("Info = %+v, want 192 directions of %d documents", info, len(big))
	}
	// 108 distinct papers, each copied ~12 times with small changes: 108 directions hold
	// nearly all of it, and 192 hold more.
	if info.Retained < 0.9 {
		t.Errorf("retained %.3f of the archive's energy, want ≥ 0.9", info.Retained)
	}
	t.Logf("%+v", info)
}
