package embed

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/gob"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"

	"gonum.org/v1/gonum/lapack/lapack64"
	"gonum.org/v1/gonum/mat"

	"github.com/paperpipe/paperpipe/paper"
)

// FittedModelPrefix begins the name of every archive-fitted offline model; the rest of the
// name is the first 12 hex digits of the SHA-256 of the model's content, so a refit on a
// changed archive is a new model in a new embedding space.
const FittedModelPrefix = "paperpipe-offline-tfidf-"

// IsFittedModel reports whether model names an archive-fitted offline model.
func IsFittedModel(model string) bool { return strings.HasPrefix(model, FittedModelPrefix) }

// IsOfflineModel reports whether model names one of the built-in offline embedders.
func IsOfflineModel(model string) bool { return IsHashedModel(model) || IsFittedModel(model) }

// Fitted is the archive-fitted offline embedder: TF-IDF with the archive's own document
// frequencies, in a fixed number of dimensions, in two parts. The first k dimensions are the
// text's coordinates on the leading singular directions of the fitted archive's TF-IDF matrix
// (latent semantic analysis); the rest hold the part of its TF-IDF vector those directions
// miss (the residual), feature-hashed with random signs like the hashed embedder.
//
// Fit computes the Gram matrix G = X·Xᵀ of the L2-normalised TF-IDF rows X of the fitted
// documents and its eigendecomposition G = U·Λ·Uᵀ; the directions are the columns of
// Q = Xᵀ·U·Λ^-½, a text's coordinates Qᵀ·x for its TF-IDF vector x, and its residual
// x − Q·Qᵀ·x. When the archive spans no more directions than there is room for (up to three
// quarters of the dimensions), every direction is kept, the fitted documents have no residual,
// and the cosines of their vectors are exactly their TF-IDF cosines. A text fitted later — a
// new paper, a query — has an exact dot product with every fitted document (the residual is
// orthogonal to them), and its length, and so its cosines, are kept up to the hashing noise on
// its residual. Larger archives keep the leading directions and hash what is left.
//
// A Fitted is immutable and safe for concurrent use.
type Fitted struct {
	name   string
	dims   int
	k      int              // leading directions kept; dims − k hold the residual
	vocab  map[string]int32 // term → index
	idf    []float32
	oovIDF float64               // IDF of a term the fitted archive never used
	terms  func(string) []string // Terms (format 1) or TermsV2 (format 2)
	rows   []float32             // len(vocab)×k: row t of Q, each term's coordinates
	hq     []float32             // (dims−k)×k: H·Q, the hashed directions
	info   FitInfo
}

// FitInfo describes a fitted model.
type FitInfo struct {
	// Documents is how many documents the model was fitted on.
	Documents int `json:"documents"`
	// Terms is the size of the fitted vocabulary.
	Terms int `json:"terms"`
	// Components is how many singular directions the vectors use (at most three quarters of
	// Dimensions; fewer when the fitted archive spans fewer). The other dimensions hold the
	// hashed residual.
	Components int `json:"components"`
	// Dimensions is the length of every vector.
	Dimensions int `json:"dimensions"`
	// Retained is the share of the fitted documents' TF-IDF energy the kept components hold
	// (1 when every one is kept).
	Retained float64 `json:"retained"`
}

// fittedData is what a fitted model stores: compact (each fitted document's TF-IDF terms and
// its column of Λ^-½·Uᵀ) and exact. The term projections are derived from it at load.
type fittedData struct {
	Version    int
	Dimensions int
	Components int
	Retained   float64
	Vocab      []string  // sorted
	IDF        []float32 // per vocabulary term
	DocStart   []int32   // doc d's terms are DocTerms[DocStart[d]:DocStart[d+1]]
	DocTerms   []int32
	DocWeights []float32 // normalised TF-IDF weight of each DocTerms entry
	Proj       []float32 // documents × Components: row d is Λ^-½·Uᵀ[:,d]
}

// fittedDataVersion is the format Fit writes. Format 2 is fitted on, and embeds with, the
// terms of TermsV2 (accents folded, invisible characters dropped); format 1, on those of Terms.
// Load reads both: an archive fitted on format 1 keeps its model and its vectors. The version
// is part of the hashed data, so a fit of format 2 is a new model name even on the same
// documents.
const fittedDataVersion = 2

// termsOfVersion returns the terms function of a fitted model's format.
func termsOfVersion(v int) func(string) []string {
	if v == 1 {
		return Terms
	}
	return TermsV2
}

// minResidualShare: at least 1/minResidualShare of the dimensions is left to the hashed
// residual.
const minResidualShare = 4

// MinFittedDimensions is the fewest dimensions a fitted model may have: one for a direction and
// one for the residual, at the least.
const MinFittedDimensions = minResidualShare

// eigenFloor drops components whose eigenvalue is below this share of the largest: directions
// the fitted documents do not really span, which would only amplify rounding noise.
const eigenFloor = 1e-9

// Fit fits the offline embedder on docs (texts as TitleAbstract makes them) with vectors of
// dims dimensions (0: OfflineDimensions; at least MinFittedDimensions). It costs the sum over terms of their document
// frequency squared for the Gram matrix and O(n³) for its eigendecomposition, n = len(docs):
// well under a minute for a few thousand documents; fit larger archives on a sample. It
// returns the model and its serialised form, which Load reads back.
func Fit(docs []string, dims int) (*Fitted, []byte, error) {
	return fit(docs, dims, fittedDataVersion)
}

// fit is Fit writing format version (1 or 2).
func fit(docs []string, dims, version int) (*Fitted, []byte, error) {
	terms := termsOfVersion(version)
	if dims == 0 {
		dims = OfflineDimensions
	}
	if dims < MinFittedDimensions {
		return nil, nil, fmt.Errorf("fit the offline embedder in %d dimensions, want at least %d: %w", dims, MinFittedDimensions, paper.ErrInvalid)
	}
	// Vocabulary and document frequencies.
	termsOf := make([]map[string]int, 0, len(docs))
	df := map[string]int{}
	for _, d := range docs {
		tf := map[string]int{}
		for _, t := range terms(d) {
			tf[t]++
		}
		if len(tf) == 0 {
			continue // no terms: nothing to fit, and its vector would be zero anyway
		}
		termsOf = append(termsOf, tf)
		for t := range tf {
			df[t]++
		}
	}
	n := len(termsOf)
	if n < 2 {
		return nil, nil, fmt.Errorf("fit the offline embedder: %d documents with terms, want at least 2: %w", n, paper.ErrInvalid)
	}
	data := fittedData{Version: version, Dimensions: dims, Vocab: make([]string, 0, len(df))}
	for t := range df {
		data.Vocab = append(data.Vocab, t)
	}
	slices.Sort(data.Vocab)
	index := make(map[string]int32, len(data.Vocab))
	data.IDF = make([]float32, len(data.Vocab))
	for i, t := range data.Vocab {
		index[t] = int32(i)
		data.IDF[i] = float32(idf(n, df[t]))
	}

	// Normalised TF-IDF rows, and the postings that give the Gram matrix.
	type posting struct {
		doc int32
		w   float64
	}
	postings := make([][]posting, len(data.Vocab))
	data.DocStart = make([]int32, 0, n+1)
	for d, tf := range termsOf {
		data.DocStart = append(data.DocStart, int32(len(data.DocTerms)))
		ids := make([]int32, 0, len(tf))
		for t := range tf {
			ids = append(ids, index[t])
		}
		slices.Sort(ids)
		ws := make([]float64, len(ids))
		var norm float64
		for i, id := range ids {
			ws[i] = tfWeight(tf[data.Vocab[id]]) * float64(data.IDF[id])
			norm += ws[i] * ws[i]
		}
		norm = math.Sqrt(norm)
		for i, id := range ids {
			w := ws[i] / norm
			data.DocTerms = append(data.DocTerms, id)
			data.DocWeights = append(data.DocWeights, float32(w))
			postings[id] = append(postings[id], posting{int32(d), w})
		}
	}
	data.DocStart = append(data.DocStart, int32(len(data.DocTerms)))

	// Upper triangle of G; postings are in document order, so p.doc ≤ q.doc.
	g := make([]float64, n*n)
	for _, ps := range postings {
		for a, p := range ps {
			row := g[int(p.doc)*n:][:n]
			for _, q := range ps[a:] {
				row[q.doc] += p.w * q.w
			}
		}
	}
	gram := mat.NewSymDense(n, g)
	values, vecs, err := topEigen(gram, dims-dims/minResidualShare)
	if err != nil {
		return nil, nil, fmt.Errorf("fit the offline embedder: %w", err)
	}
	var total float64
	for d := range n {
		total += gram.At(d, d)
	}
	var kept []int
	var keptEnergy float64
	for c, v := range values {
		if v <= eigenFloor*values[0] {
			break
		}
		kept = append(kept, c)
		keptEnergy += v
	}
	data.Components = len(kept)
	data.Retained = keptEnergy / total
	data.Proj = make([]float32, n*len(kept))
	for d := range n {
		for j, c := range kept {
			data.Proj[d*len(kept)+j] = float32(vecs.At(d, c) / math.Sqrt(values[c]))
		}
	}

	blob, err := encodeFitted(data)
	if err != nil {
		return nil, nil, err
	}
	m, err := Load(blob)
	if err != nil {
		return nil, nil, err
	}
	return m, blob, nil
}

// exactEigenLimit is the largest Gram matrix topEigen decomposes exactly; beyond it the full
// decomposition costs minutes, and randomized subspace iteration gives the leading part.
const exactEigenLimit = 1200

// topEigen returns the (at most) k largest eigenvalues of the positive semi-definite g in
// descending order, and their eigenvectors as the columns of vecs. Small matrices are
// decomposed exactly; larger ones by randomized subspace iteration (Halko, Martinsson and
// Tropp 2011, algorithm 4.4 with 20 extra columns and 3 power iterations) from a fixed seed,
// so the same archive gives the same model.
func topEigen(g *mat.SymDense, k int) ([]float64, *mat.Dense, error) {
	n := g.SymmetricDim()
	var sub *mat.Dense // n × l orthonormal basis of the subspace to decompose g on
	var small *mat.SymDense
	if n <= exactEigenLimit {
		small = g
	} else {
		l := min(k+20, n)
		rng := rand.New(rand.NewPCG(0x9e3779b97f4a7c15, uint64(n)))
		omega := mat.NewDense(n, l, nil)
		for i := range n {
			for j := range l {
				omega.Set(i, j, rng.NormFloat64())
			}
		}
		// As a general matrix: gonum's Dgemm is blocked and parallel, its Dsymm is neither.
		gd := mat.DenseCopyOf(g)
		var y mat.Dense
		y.Mul(gd, omega)
		for range 3 {
			q := orthonormal(&y)
			y.Mul(gd, q)
		}
		sub = orthonormal(&y)
		var gq mat.Dense
		gq.Mul(gd, sub)
		var b mat.Dense
		b.Mul(sub.T(), &gq)
		small = mat.NewSymDense(l, nil)
		for i := range l {
			for j := i; j < l; j++ {
				small.SetSym(i, j, (b.At(i, j)+b.At(j, i))/2)
			}
		}
	}
	var eig mat.EigenSym
	if !eig.Factorize(small, true) {
		return nil, nil, errors.New("eigendecomposition did not converge")
	}
	asc := eig.Values(nil)
	var w mat.Dense
	eig.VectorsTo(&w)
	m := min(k, len(asc))
	values := make([]float64, m)
	cols := mat.NewDense(w.RawMatrix().Rows, m, nil)
	for c := range m {
		src := len(asc) - 1 - c
		values[c] = asc[src]
		cols.SetCol(c, mat.Col(nil, src, &w))
	}
	if sub == nil {
		return values, cols, nil
	}
	var vecs mat.Dense
	vecs.Mul(sub, cols)
	return values, &vecs, nil
}

// orthonormal returns an orthonormal basis of the columns of y: the thin Q of its QR
// factorisation (n × l, without forming the n × n one).
func orthonormal(y *mat.Dense) *mat.Dense {
	q := mat.DenseCopyOf(y)
	a := q.RawMatrix()
	tau := make([]float64, a.Cols)
	work := make([]float64, 1)
	lapack64.Geqrf(a, tau, work, -1)
	work = make([]float64, int(work[0]))
	lapack64.Geqrf(a, tau, work, len(work))
	lapack64.Orgqr(a, tau, work[:1], -1)
	if need := int(work[0]); need > len(work) {
		work = make([]float64, need)
	}
	lapack64.Orgqr(a, tau, work, len(work))
	return q
}

// idf is the smoothed inverse document frequency ln((1+n)/(1+df)) + 1.
func idf(n, df int) float64 { return math.Log(float64(1+n)/float64(1+df)) + 1 }

// tfWeight is the sublinear term frequency 1 + ln tf.
func tfWeight(tf int) float64 { return 1 + math.Log(float64(tf)) }

func encodeFitted(data fittedData) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestSpeed)
	if err != nil {
		return nil, err
	}
	if err := gob.NewEncoder(zw).Encode(data); err != nil {
		return nil, fmt.Errorf("encode the fitted offline model: %w", err)
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("encode the fitted offline model: %w", err)
	}
	return buf.Bytes(), nil
}

// Load reads a model that Fit serialised. Its name is derived from its content.
func Load(blob []byte) (*Fitted, error) {
	zr, err := gzip.NewReader(bytes.NewReader(blob))
	if err != nil {
		return nil, fmt.Errorf("load the fitted offline model: %w", err)
	}
	raw, err := io.ReadAll(zr)
	if err != nil {
		return nil, fmt.Errorf("load the fitted offline model: %w", err)
	}
	var data fittedData
	if err := gob.NewDecoder(bytes.NewReader(raw)).Decode(&data); err != nil {
		return nil, fmt.Errorf("load the fitted offline model: %w", err)
	}
	if err := data.validate(); err != nil {
		return nil, fmt.Errorf("load the fitted offline model: %w", err)
	}
	sum := sha256.Sum256(raw)
	k := data.Components
	m := &Fitted{
		name:  FittedModelPrefix + hex.EncodeToString(sum[:6]),
		dims:  data.Dimensions,
		k:     k,
		vocab: make(map[string]int32, len(data.Vocab)),
		idf:   data.IDF,
		terms: termsOfVersion(data.Version),
		rows:  make([]float32, len(data.Vocab)*k),
		info: FitInfo{Documents: len(data.DocStart) - 1, Terms: len(data.Vocab), Components: k,
			Dimensions: data.Dimensions, Retained: data.Retained},
	}
	docs := len(data.DocStart) - 1
	m.oovIDF = idf(docs, 0)
	for i, t := range data.Vocab {
		m.vocab[t] = int32(i)
	}
	// rows[t] = Σ over documents d using t of X[d,t] · Proj[d].
	for d := range len(data.DocStart) - 1 {
		proj := data.Proj[d*k : (d+1)*k]
		for i := data.DocStart[d]; i < data.DocStart[d+1]; i++ {
			w, row := data.DocWeights[i], m.rows[int(data.DocTerms[i])*k:][:k]
			for c, p := range proj {
				row[c] += w * p
			}
		}
	}
	// hq = H·Q: each term's row of Q, signed, added into its residual bucket.
	r := m.dims - k
	m.hq = make([]float32, r*k)
	for i, t := range data.Vocab {
		b, sign := bucket(t, r)
		dst := m.hq[b*k:][:k]
		for c, q := range m.rows[i*k:][:k] {
			dst[c] += float32(sign) * q
		}
	}
	return m, nil
}

func (d *fittedData) validate() error {
	docs := len(d.DocStart) - 1
	switch {
	case d.Version != 1 && d.Version != fittedDataVersion:
		return fmt.Errorf("format version %d, want 1 or %d", d.Version, fittedDataVersion)
	case d.Dimensions <= 0 || d.Components <= 0 || d.Components > d.Dimensions-d.Dimensions/minResidualShare:
		return fmt.Errorf("%d components in %d dimensions", d.Components, d.Dimensions)
	case len(d.IDF) != len(d.Vocab):
		return fmt.Errorf("%d IDF weights for %d terms", len(d.IDF), len(d.Vocab))
	case docs < 1 || len(d.Proj) != docs*d.Components:
		return fmt.Errorf("projection of %d values for %d documents × %d components", len(d.Proj), docs, d.Components)
	case len(d.DocTerms) != len(d.DocWeights) || int(d.DocStart[docs]) != len(d.DocTerms):
		return errors.New("document terms and weights disagree")
	}
	for i := range docs {
		if d.DocStart[i] > d.DocStart[i+1] {
			return errors.New("document offsets out of order")
		}
	}
	for _, t := range d.DocTerms {
		if t < 0 || int(t) >= len(d.Vocab) {
			return fmt.Errorf("term %d outside a vocabulary of %d", t, len(d.Vocab))
		}
	}
	return nil
}

// Name returns the model's name: FittedModelPrefix and 12 hex digits of its content hash.
func (m *Fitted) Name() string { return m.name }

// Info describes the fit.
func (m *Fitted) Info() FitInfo { return m.info }

// Space returns the model's space: its name, its dimensions, title+abstract.
func (m *Fitted) Space() paper.Space {
	return paper.Space{Model: m.name, Dimensions: m.dims, Template: TemplateTitleAbstract}
}

// Embed returns one embedding per paper, in order. Usage names the model and counts no
// requests or tokens.
func (m *Fitted) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	return embedLocally(ctx, m.name, papers, m.Vector)
}

// EmbedQuery returns the vector of a free-text query in the same space.
func (m *Fitted) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	return queryLocally(ctx, m.name, text, m.Vector)
}

// Vector returns the unit vector of text (all zeros when it has no terms): its coordinates
// Qᵀ·x, then its hashed residual H·x − (H·Q)·(Qᵀ·x).
func (m *Fitted) Vector(text string) []float32 {
	k, r := m.k, m.dims-m.k
	acc := make([]float64, m.dims)
	coords, resid := acc[:k], acc[k:]
	for _, tc := range termCounts(m.terms(text)) {
		w := tfWeight(tc.n) * m.oovIDF
		if id, ok := m.vocab[tc.term]; ok {
			w = tfWeight(tc.n) * float64(m.idf[id])
			for c, q := range m.rows[int(id)*k:][:k] {
				coords[c] += w * float64(q)
			}
		}
		b, sign := bucket(tc.term, r)
		resid[b] += sign * w
	}
	for b := range resid {
		var s float64
		for c, h := range m.hq[b*k:][:k] {
			s += float64(h) * coords[c]
		}
		resid[b] -= s
	}
	return unit(acc, m.dims)
}

// unit returns v, zero-padded to dims, scaled to unit length (all zeros when v is).
func unit(v []float64, dims int) []float32 {
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	out := make([]float32, dims)
	if norm == 0 {
		return out
	}
	norm = math.Sqrt(norm)
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}

// embedLocally embeds papers one by one with vector, for the offline models.
func embedLocally(ctx context.Context, model string, papers []paper.Abstract, vector func(string) []float32) ([]paper.Embedding, paper.Usage, error) {
	usage := paper.Usage{Model: model, Kind: paper.KindEmbedding}
	out := make([]paper.Embedding, len(papers))
	for i, p := range papers {
		if i%64 == 0 {
			if err := ctx.Err(); err != nil {
				return nil, usage, err
			}
		}
		out[i] = paper.Embedding{
			PaperID:     p.ID,
			Vector:      vector(TitleAbstract(p)),
			ContentHash: p.ContentHash(),
			Usage:       usage,
		}
	}
	return out, usage, nil
}

// queryLocally embeds one query with vector, for the offline models.
func queryLocally(ctx context.Context, model, text string, vector func(string) []float32) ([]float32, paper.Usage, error) {
	usage := paper.Usage{Model: model, Kind: paper.KindEmbedding}
	if err := ctx.Err(); err != nil {
		return nil, usage, err
	}
	return vector(text), usage, nil
}
