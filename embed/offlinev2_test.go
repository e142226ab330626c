package embed

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"math"
	"testing"

	"github.com/paperpipe/paperpipe/internal/sampledata"
)

// foldPairs are texts a reader takes for the same words: accented or not (precomposed or
// with a combining mark), with a soft hyphen or a zero-width character from a PDF or a web
// page inside a word, with a PDF's ligature, with a letter unaccent folds that has no
// decomposition.
var foldPairs = [][2]string{
	{"Schrödinger", "Schrodinger"},
	{"Co\u00ADoperation", "Cooperation"},
	{"Co\u00ADoperation in multi-agent reinforcement learning", "Cooperation in multi-agent reinforcement learning"},
	{"Nyström approximation of Schrödinger operators", "Nystrom approximation of Schrodinger operators"},
	{"A nai\u0308ve Erdős–Rényi construction", "A naive Erdos–Renyi construction"},
	{"multi\u200bagent co\u200doperation with zero\u2060shot trans\ufefffer", "multiagent cooperation with zeroshot transfer"},
	{"\ufb01ne-tuning the Łojasiewicz inequality for Søren's Æther", "fine-tuning the Lojasiewicz inequality for Soren's Aether"},
}

func cosine(a, b []float32) float64 {
	var ab, aa, bb float64
	for i := range a {
		ab += float64(a[i]) * float64(b[i])
		aa += float64(a[i]) * float64(a[i])
		bb += float64(b[i]) * float64(b[i])
	}
	if aa == 0 || bb == 0 {
		return 0
	}
	return ab / math.Sqrt(aa*bb)
}

// The v2 hashed model reads the words of each pair as one: their vectors are the same. The v1
// model (kept as it was) did not: "Schrödinger" and "Schrodinger" had cosine 0, a
// soft-hyphenated "Co\u00ADoperation" was "co" and "operation".
func TestOfflineV2FoldsAccentsAndInvisibleCharacters(t *testing.T) {
	t.Parallel()
	v1, v2 := NewOffline(), NewOfflineV2()
	for _, p := range foldPairs {
		c1, c2 := cosine(v1.Vector(p[0]), v1.Vector(p[1])), cosine(v2.Vector(p[0]), v2.Vector(p[1]))
		t.Logf("%+q / %+q: cosine %.3f on v1, %.3f on v2", p[0], p[1], c1, c2)
		if c2 < 1-1e-6 {
			t.Errorf("%s: %+q and %+q have cosine %.3f, want 1 (the same terms)", OfflineModelV2, p[0], p[1], c2)
		}
	}
	if got := TermsV2("Schrödinger co\u00ADoperation"); len(got) != 2 || got[0] != "schrodinger" || got[1] != "cooperation" {
		t.Errorf("TermsV2 = %q, want [schrodinger cooperation]", got)
	}
	// Marks that are not accents stay, as part of their word: a Hindi word is one term, as on
	// v1 it was broken at its vowel signs.
	if got := TermsV2("हिन्दी"); len(got) != 1 || got[0] != "हिन्दी" {
		t.Errorf("TermsV2(हिन्दी) = %q, want the word whole", got)
	}
	if sp := v2.Space(); sp.Model != OfflineModelV2 || sp.Dimensions != OfflineDimensions || !IsOfflineModel(sp.Model) || !IsHashedModel(sp.Model) {
		t.Errorf("v2 space %+v", sp)
	}
}

// vectorHash is the first 16 hex digits of the SHA-256 of v's float32 bits.
func vectorHash(v []float32) string {
	h := sha256.New()
	var b [4]byte
	for _, x := range v {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(x))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// The first hashed model's vectors are the ones it made before v2 existed, bit for bit: an
// archive whose space holds them goes on embedding new papers and queries into it. The
// hashes were taken at 15c1106, before v2.
func TestOfflineV1VectorsArePinned(t *testing.T) {
	t.Parallel()
	o := NewOffline()
	papers := sampledata.Papers(t)
	for _, c := range []struct{ text, want string }{
		{"Schrödinger operators and the Nyström method", "38a3ade0b399b72c"},
		{"Co\u00adoperation in multi\u200bagent reinforcement learning", "5426c09815d7dfd0"},
		{"naïve Erdős–Rényi graphs, ﬁne-tuning ǅ", "3829a8c35cdf03c2"},
		{TitleAbstract(papers[0]), "52f87d0bb90c387a"},
		{TitleAbstract(papers[17]), "91af6482542f13b6"},
		{TitleAbstract(papers[107]), "afe16ee094cd9daa"},
	} {
		if got := vectorHash(o.Vector(c.text)); got != c.want {
			t.Errorf("%s vector of %.40q: hash %s, want %s", OfflineModel, c.text, got, c.want)
		}
	}
	if sp := o.Space(); sp.Model != "paperpipe-offline-hash" {
		t.Errorf("v1 space %+v", sp)
	}
}

// A model fitted on format 1 (v1's terms) loads as it was, under its name, and embeds as it
// did; Fit now writes format 2, on v2's terms: another name on the same documents, and
// accents folded. The name and hash of format 1 were taken at 15c1106, before format 2.
func TestFittedFormatOneKeepsItsModelAndFormatTwoFolds(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)
	docs := make([]string, len(papers))
	for i, p := range papers {
		docs[i] = TitleAbstract(p)
	}
	m1, blob1, err := fit(docs, 0, 1)
	if err != nil {
		t.Fatal(err)
	}
	const v1Name = "paperpipe-offline-tfidf-0c6a35675089"
	if m1.Name() != v1Name {
		t.Fatalf("format 1 fit named %s, want %s (the name it had before format 2)", m1.Name(), v1Name)
	}
	l1, err := Load(blob1)
	if err != nil || l1.Name() != v1Name {
		t.Fatalf("Load(format 1) = %v, %v", l1, err)
	}
	if got := vectorHash(l1.Vector("Schrödinger operators")); got != "18b6ce4556599a35" {
		t.Errorf("format 1 vector hash %s, want 18b6ce4556599a35", got)
	}
	m2, _, err := Fit(docs, 0)
	if err != nil {
		t.Fatal(err)
	}
	if m2.Name() == v1Name || !IsFittedModel(m2.Name()) {
		t.Errorf("format 2 fit named %s", m2.Name())
	}
	for _, p := range foldPairs {
		c1, c2 := cosine(l1.Vector(p[0]), l1.Vector(p[1])), cosine(m2.Vector(p[0]), m2.Vector(p[1]))
		t.Logf("%+q / %+q: cosine %.3f fitted on format 1, %.3f on format 2", p[0], p[1], c1, c2)
		if c2 < 1-1e-5 {
			t.Errorf("fitted format 2: %+q and %+q have cosine %.3f, want 1", p[0], p[1], c2)
		}
	}
}

// A symbol written against a word (a trademark sign, a service mark) is not
// part of it: NFKD spells it in letters ("™" is "TM"), which made "Kinect™" the term
// "kinecttm", not "kinect" — a paper naming a product so was not near a query naming it, as it
// was on v1 and is in keyword search (unaccent leaves the sign, which ends the word).
func TestOfflineV2KeepsSymbolsOutOfTheirWord(t *testing.T) {
	t.Parallel()
	v2 := NewOfflineV2()
	for _, p := range [][2]string{
		{"Kinect™ depth sensing", "Kinect depth sensing"},
		{"the Xeon℠ cluster", "the Xeon cluster"},
	} {
		if c := cosine(v2.Vector(p[0]), v2.Vector(p[1])); c < 1-1e-6 {
			t.Errorf("%s: %+q and %+q have cosine %.3f, want 1 (terms %q and %q)", OfflineModelV2, p[0], p[1], c,
				TermsV2(p[0]), TermsV2(p[1]))
		}
	}
}

// The letters unaccent folds are folded as it folds them also when NFKD decomposes them: "ŀ"
// (Catalan's l with middle dot) is "l", as its entry in foldedLetters says, not NFKD's "l·",
// whose dot broke "coŀlecció" into "col" and "leccio".
func TestOfflineV2FoldsLetterWithMiddleDotAsUnaccent(t *testing.T) {
	t.Parallel()
	v2 := NewOfflineV2()
	for _, p := range [][2]string{{"coŀlecció de dades", "colleccio de dades"}, {"COĿLECCIÓ", "COLLECCIO"}} {
		if c := cosine(v2.Vector(p[0]), v2.Vector(p[1])); c < 1-1e-6 {
			t.Errorf("%s: %+q and %+q have cosine %.3f, want 1 (terms %q and %q)", OfflineModelV2, p[0], p[1], c,
				TermsV2(p[0]), TermsV2(p[1]))
		}
	}
}

// Every combining diacritical mark (U+0300–U+036F) is dropped, the first and the last of the
// block with the rest: "è" is "e" and U+0300; and a letter that NFKD decomposes into one of
// the letters unaccent folds and an accent ("ǽ" is "æ" and U+0301) is folded after NFKD too.
func TestOfflineV2FoldsTheWholeDiacriticalBlock(t *testing.T) {
	t.Parallel()
	v2 := NewOfflineV2()
	for _, p := range [][2]string{
		{"Molière's théâtre", "Moliere's theatre"},
		{"sigma\u036f algebra", "sigma algebra"},
		{"mediǽval Ǿresund", "mediaeval Oresund"},
	} {
		if c := cosine(v2.Vector(p[0]), v2.Vector(p[1])); c < 1-1e-6 {
			t.Errorf("%s: %+q and %+q have cosine %.3f, want 1 (terms %q and %q)", OfflineModelV2, p[0], p[1], c,
				TermsV2(p[0]), TermsV2(p[1]))
		}
	}
}

// v1 is kept as it was: a combining mark separates words on it ("nai\u0308ve" was "nai" and
// "ve"); only v2 reads marks as part of their word.
func TestOfflineV1SplitsWordsAtCombiningMarks(t *testing.T) {
	t.Parallel()
	if got := Terms("nai\u0308ve"); len(got) != 2 || got[0] != "nai" || got[1] != "ve" {
		t.Errorf("Terms(%+q) = %q, want [nai ve]", "nai\u0308ve", got)
	}
	if got := TermsV2("nai\u0308ve"); len(got) != 1 || got[0] != "naiv" {
		t.Errorf("TermsV2(%+q) = %q, want [naiv] (naive, stemmed)", "nai\u0308ve", got)
	}
}
