package openaitest

import (
	"crypto/sha256"
	"encoding/binary"
	"math"
	"math/rand/v2"
	"strings"
	"unicode"
)

// Kinds of embedding vectors, the values of Config.Vectors.
const (
	// VectorsText makes an embedding a lexical vector of its input (see
	// Vector): similar texts get similar vectors, as from a real model.
	VectorsText = "text"
	// VectorsRandom makes an embedding a uniformly random unit vector
	// seeded by its input (see RandomVector): unrelated to the text, and
	// the worst case for an HNSW index.
	VectorsRandom = "random"
)

// vectorFunc returns the function computing the vectors of kind.
func vectorFunc(kind string) func(string, int) []float32 {
	if kind == VectorsRandom {
		return RandomVector
	}
	return Vector
}

// tokenKeyPrefix starts the key of a token-id input (see tokenInput).
const tokenKeyPrefix = "\x00tokens:"

// Parameters of Vector.
const (
	// bandWidth is the width of the bands of dimensions a word is spread
	// over: each word adds ±weight to one dimension of every band.
	bandWidth = 8
	// jitter is the size of a text's own noise relative to its lexical
	// vector (a cosine of about 0.995 between them).
	jitter = 0.1
)

// Vector returns the embedding the server answers for text by default
// (Config.Vectors "text"): a deterministic lexical vector of the text, unit
// length, of the given dimensions.
//
// The text is split into lower-cased words (runs of letters and digits),
// common English function words dropped; each distinct word w, weighted
// 1+ln(count), adds ±weight to one dimension in every band of 8, the
// dimension and the sign drawn from a random source seeded by the word (a
// sparse random projection of the bag of words, so the cosine of two
// vectors follows the cosine of the texts' word counts). A small noise
// seeded by the SHA-256 of the whole text is added, so the same text always
// gets the same vector but two different texts never get exactly the same
// one. A shorter vector is the normalised prefix of a longer one, as with
// text-embedding-3 models. Token-id inputs are keyed by "\x00tokens:" and
// their ids joined by commas; each id counts as a word.
func Vector(text string, dims int) []float32 {
	v := make([]float64, dims)
	counts := map[string]int{}
	for _, w := range words(text) {
		counts[w]++
	}
	var energy float64 // sum of squared weights: each band gets it once
	for w, n := range counts {
		weight := 1 + math.Log(float64(n))
		energy += weight * weight
		spread(v, wordSeed(w), weight)
	}
	// Noise of per-dimension deviation jitter × the lexical vector's expected
	// per-dimension deviation, a scale that does not depend on dims so that
	// prefixes stay prefixes; a text without words is all noise.
	scale := jitter * math.Sqrt(energy/bandWidth)
	if energy == 0 {
		scale = 1
	}
	sum := sha256.Sum256([]byte(text))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	for i := range v {
		v[i] += scale * rng.NormFloat64()
	}
	return normalise(v)
}

// spread adds ±weight to one dimension of every band of bandWidth in v, the
// dimensions and signs drawn from a stream seeded by seed. The draw for a
// band does not depend on len(v).
func spread(v []float64, seed uint64, weight float64) {
	state := seed
	var bits uint64
	left := 0
	for band := 0; band < len(v); band += bandWidth {
		if left == 0 {
			bits, left = splitmix64(&state), 16
		}
		nib := bits & 0xf
		bits >>= 4
		left--
		i := band + int(nib&(bandWidth-1))
		if i >= len(v) {
			continue
		}
		if nib&bandWidth != 0 {
			v[i] -= weight
		} else {
			v[i] += weight
		}
	}
}

// splitmix64 advances state and returns its next output.
func splitmix64(state *uint64) uint64 {
	*state += 0x9e3779b97f4a7c15
	z := *state
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// wordSeed is the FNV-1a hash of w.
func wordSeed(w string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(w); i++ {
		h ^= uint64(w[i])
		h *= 1099511628211
	}
	return h
}

// words splits text into the words Vector counts: lower-cased runs of
// letters and digits, stop words dropped; for a token-id key, the ids.
func words(text string) []string {
	if ids, ok := strings.CutPrefix(text, tokenKeyPrefix); ok {
		return strings.FieldsFunc(ids, func(r rune) bool { return r == ',' })
	}
	fields := strings.FieldsFunc(strings.ToLower(text), func(r rune) bool {
		return !unicode.IsLetter(r) && !unicode.IsDigit(r)
	})
	out := fields[:0]
	for _, f := range fields {
		if !stopWords[f] {
			out = append(out, f)
		}
	}
	return out
}

// stopWords are English function words, which carry no topic.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a an and are as at be been but by can for from has have in into is it its
		of on or our that the their these this those to we which with`) {
		m[w] = true
	}
	return m
}()

// RandomVector returns the embedding the server answers for text with
// Config.Vectors "random": a unit vector of the given dimensions, drawn
// from a random source seeded with the SHA-256 of the text. The same text
// always gets the same vector, and a shorter one is the normalised prefix
// of a longer one, but vectors of similar texts are no closer than those of
// unrelated ones: uniformly spread points, the worst case for an HNSW index.
func RandomVector(text string, dims int) []float32 {
	sum := sha256.Sum256([]byte(text))
	rng := rand.New(rand.NewPCG(binary.LittleEndian.Uint64(sum[:8]), binary.LittleEndian.Uint64(sum[8:16])))
	v := make([]float64, dims)
	for i := range v {
		v[i] = rng.NormFloat64()
	}
	return normalise(v)
}

// normalise returns v scaled to unit length as float32s.
func normalise(v []float64) []float32 {
	var norm float64
	for _, x := range v {
		norm += x * x
	}
	norm = math.Sqrt(norm)
	out := make([]float32, len(v))
	for i, x := range v {
		out[i] = float32(x / norm)
	}
	return out
}
