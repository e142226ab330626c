package embed

import (
	"context"
	"iter"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// Offline model identity. OfflineModel is the hashed model as it was first written, kept bit
// for bit for the archives whose spaces hold its vectors; OfflineModelV2 is the same model on
// terms with their accents folded and without invisible characters (foldText): Schrödinger
// and Schrodinger, or a soft-hyphenated co-operation and cooperation, are one term. A new
// archive embeds with v2 (the CLI's "offline").
const (
	OfflineModel      = "paperpipe-offline-hash"
	OfflineModelV2    = "paperpipe-offline-hash-v2"
	OfflineDimensions = 768
)

// IsHashedModel reports whether model names a version of the hashed offline embedder.
func IsHashedModel(model string) bool { return model == OfflineModel || model == OfflineModelV2 }

// Offline is the built-in lexical embedder. A text becomes terms (lower-cased runs of letters
// and digits; a hyphenated word gives its parts and the joined form; English stop words
// dropped; a light suffix stripper for plurals, -ing, -ed and a final e), each weighted by
// sublinear term frequency (1 + ln tf) times a fixed prior (see termPrior), hashed with
// FNV-1a into one of 768 dimensions with a sign taken from another bit of the hash (so
// collisions cancel in expectation instead of adding up), and the vector is L2-normalised.
// Cosine similarity of two vectors then approximates the TF-IDF cosine of the texts. It is
// deterministic and safe for concurrent use. Its two versions differ only in their terms (see
// OfflineModelV2).
type Offline struct {
	model string
	terms func(string) []string
}

// NewOffline returns the offline embedder of the first version, OfflineModel.
func NewOffline() *Offline { return &Offline{model: OfflineModel, terms: Terms} }

// NewOfflineV2 returns the offline embedder of the second version, OfflineModelV2.
func NewOfflineV2() *Offline { return &Offline{model: OfflineModelV2, terms: TermsV2} }

// NewHashed returns the hashed offline embedder model names (OfflineModel or OfflineModelV2),
// and false for any other name.
func NewHashed(model string) (*Offline, bool) {
	switch model {
	case OfflineModel:
		return NewOffline(), true
	case OfflineModelV2:
		return NewOfflineV2(), true
	}
	return nil, false
}

// Space returns the offline space: the model's name, 768 dimensions, title+abstract.
func (o *Offline) Space() paper.Space {
	return paper.Space{Model: o.model, Dimensions: OfflineDimensions, Template: TemplateTitleAbstract}
}

// Embed returns one embedding per paper, in order. Usage names the model and kind and counts
// no requests or tokens.
func (o *Offline) Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error) {
	return embedLocally(ctx, o.model, papers, o.Vector)
}

// EmbedQuery returns the vector of a free-text query in the same space.
func (o *Offline) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	return queryLocally(ctx, o.model, text, o.Vector)
}

// Vector returns the unit vector of text (all zeros when text has no terms).
func (o *Offline) Vector(text string) []float32 {
	v := make([]float64, OfflineDimensions)
	for _, tc := range termCounts(o.terms(text)) {
		b, sign := bucket(tc.term, OfflineDimensions)
		v[b] += sign * tfWeight(tc.n) * termPrior(tc.term)
	}
	return unit(v, OfflineDimensions)
}

// bucket is the feature hash of a term into n dimensions: FNV-1a picks the dimension, its top
// bit the sign, so collisions cancel in expectation instead of adding up.
func bucket(term string, n int) (int, float64) {
	// FNV-1a, 64 bits (hash/fnv's New64a, without its allocations).
	sum := uint64(14695981039346656037)
	for i := 0; i < len(term); i++ {
		sum ^= uint64(term[i])
		sum *= 1099511628211
	}
	if sum>>63 == 1 {
		return int(sum % uint64(n)), -1
	}
	return int(sum % uint64(n)), 1
}

// termCount is a term of a text and how often it occurs.
type termCount struct {
	term string
	n    int
}

// termCounts returns the distinct terms with their counts, in term order, so that vectors are
// summed in one order and are the same bit for bit on every call. It sorts terms.
func termCounts(terms []string) []termCount {
	slices.Sort(terms)
	var out []termCount
	for i, t := range terms {
		if i > 0 && t == terms[i-1] {
			out[len(out)-1].n++
			continue
		}
		out = append(out, termCount{t, 1})
	}
	return out
}

// Terms returns the terms of text in order, as the offline embedder sees them: lower-cased
// runs of letters and digits, stop words dropped, light stemming applied. A hyphenated
// word ("mixture-of-experts") yields its parts that are not stop words and the joined form
// ("mixtureofexperts"), so both spellings meet. These are the terms of OfflineModel and of
// fitted models of format 1; TermsV2 folds accents first.
func Terms(text string) []string {
	return terms(strings.ToLower(text), false)
}

// TermsV2 returns the terms of text as OfflineModelV2 and fitted models of format 2 see them:
// Terms of the text with its accents folded and its invisible characters dropped (foldText),
// and with the combining marks left after folding read as part of their word.
func TermsV2(text string) []string {
	return terms(strings.ToLower(foldText(text)), true)
}

// terms is Terms of a lower-cased text; marks says whether a combining mark belongs to its
// word (v2) or separates words (v1).
func terms(text string, marks bool) []string {
	var out []string
	add := func(w string) {
		if utf8.RuneCountInString(w) < 2 || stopWords[w] || hasDigit(w) {
			return
		}
		out = append(out, stem(w))
	}
	for word := range words(text, marks) {
		if strings.IndexByte(word, '-') < 0 {
			add(word)
			continue
		}
		parts := strings.FieldsFunc(word, func(r rune) bool { return r == '-' })
		for _, p := range parts {
			add(p)
		}
		if len(parts) > 1 {
			add(strings.Join(parts, ""))
		}
	}
	return out
}

// words yields the runs of letters, digits and hyphens of s (and of combining marks, when
// marks is set), as strings.FieldsFunc would split them (a byte that is not UTF-8 separates),
// without a call per rune for ASCII text.
func words(s string, marks bool) iter.Seq[string] {
	return func(yield func(string) bool) {
		start := -1
		for i := 0; i < len(s); {
			c, size := rune(s[i]), 1
			var in bool
			if c < utf8.RuneSelf {
				in = 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-'
			} else {
				c, size = utf8.DecodeRuneInString(s[i:])
				in = unicode.IsLetter(c) || unicode.IsDigit(c) || marks && unicode.IsMark(c)
			}
			switch {
			case in && start < 0:
				start = i
			case !in && start >= 0:
				if !yield(s[start:i]) {
					return
				}
				start = -1
			}
			i += size
		}
		if start >= 0 {
			yield(s[start:])
		}
	}
}

func hasDigit(w string) bool {
	return strings.IndexFunc(w, unicode.IsDigit) >= 0
}

// stem is a small suffix stripper: plural -s/-es/-ies, -ing, -ed (undoubling a final double
// consonant), then a final -e, keeping at least three letters of stem. It conflates "models",
// "modeling" and "modeled"; "scale", "scales", "scaled" and "scaling".
func stem(w string) string {
	n := len(w)
	switch {
	case n > 4 && strings.HasSuffix(w, "ies"):
		w = w[:n-3] + "y"
	case n > 4 && strings.HasSuffix(w, "sses"):
		w = w[:n-2]
	case n > 4 && (strings.HasSuffix(w, "xes") || strings.HasSuffix(w, "ches") || strings.HasSuffix(w, "shes")):
		w = w[:n-2]
	case n > 3 && strings.HasSuffix(w, "s") && !strings.HasSuffix(w, "ss") && !strings.HasSuffix(w, "us") && !strings.HasSuffix(w, "is"):
		w = w[:n-1]
	}
	for _, suf := range []string{"ing", "ed"} {
		if len(w) >= len(suf)+4 && strings.HasSuffix(w, suf) && hasVowel(w[:len(w)-len(suf)]) {
			w = w[:len(w)-len(suf)]
			if m := len(w); m >= 2 && w[m-1] == w[m-2] && !strings.ContainsRune("aeioulsz", rune(w[m-1])) {
				w = w[:m-1]
			}
			break
		}
	}
	if len(w) > 4 && strings.HasSuffix(w, "e") {
		w = w[:len(w)-1]
	}
	return w
}

func hasVowel(s string) bool { return strings.ContainsAny(s, "aeiouy") }

// termPrior is the fixed IDF prior of a stemmed term: 1 for ordinary words; lower for words
// that are frequent in research abstracts in general and so say little about a paper's
// topic. It is a general prior, written from what abstracts of any field (and of machine
// learning, the archive's main field) commonly say, not fitted to the sample archive or to
// the quality test's answer.
func termPrior(t string) float64 {
	if w, ok := priors[t]; ok {
		return w
	}
	return 1
}

var priors = func() map[string]float64 {
	m := map[string]float64{}
	// Words of scientific writing in every field: how a paper talks, not what it is about.
	for _, w := range strings.Fields(`paper work study propose present introduce show demonstrate
		result method approach novel new use using base based performance achieve improve
		improvement outperform existing significant significantly effective effectively
		state art state-of-the-art stateoftheart also well various different provide further
		furthermore moreover however specifically address challenge challenging recent recently
		first second third two three several many problem task experiment experimental
		extensive comprehensive analysis evaluate evaluation compare compared comparable
		approach key important critical crucial while often typically enable allow lead
		leverage finding find reveal suggest consider investigate explore propose design
		develop strategy technique framework effectiveness efficiency superior better best
		high higher low lower large larger small smaller number set way aim goal focus
		potential application applications general overall including include previous prior
		current standard simple simply robust strong across various thus therefore hence
		specific particular main primary additional additionally even though without within
		via make made take given however yet still remain remains lack limited limitation
		issue issues gap insight insights code available publicly release open source`) {
		m[stem(w)] = 0.3
	}
	// Words that most machine-learning abstracts share.
	for _, w := range strings.Fields(`model learning train training data dataset language neural
		network deep benchmark accuracy algorithm system parameter input output
		llm llms largescale`) {
		m[stem(w)] = 0.6
	}
	return m
}()

// stopWords are common English function words, dropped before weighting.
var stopWords = func() map[string]bool {
	m := map[string]bool{}
	for _, w := range strings.Fields(`a about above after again against all am an and any are as at be because
		been before being below between both but by can could did do does doing down during each few
		for from further had has have having he her here hers herself him himself his how i if in into
		is it its itself just me more most my myself no nor not now of off on once only or other our
		ours ourselves out over own same she should so some such than that the their theirs them
		themselves then there these they this those through to too under until up very was we were
		what when where which while who whom why will with would you your yours yourself yourselves
		et al eg ie etc vs cf may might must shall also upon whether either neither whose another
		per among amongst within without onto toward towards whereas thus hence ones one`) {
		m[w] = true
	}
	return m
}()
