package paper

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// The hash must not change with the implementation of the folding: every stored TL;DR and
// vector is keyed by it.
func TestAppendFoldedMatchesFieldsJoin(t *testing.T) {
	pieces := []string{"a", "Ünïcode", " ", "  ", "\t", "\n", "\r\n", "\u00a0", "\u2003", "\u3000", "\xff", "\xe2\x80", "x\x00y", "—", "end.",
		"\v", "\f", "\x85", "\u0085", "\u2028", "ascii run", "\x7f", "abc\xc3"}
	rng := rand.New(rand.NewPCG(1, 2))
	cases := []string{"", " ", "  lead and trail  ", "one\n\ntwo\tthree", "\xff\xfe", "\u00a0nbsp\u00a0"}
	for range 2000 {
		var b strings.Builder
		for range rng.IntN(12) {
			b.WriteString(pieces[rng.IntN(len(pieces))])
		}
		cases = append(cases, b.String())
	}
	for _, s := range cases {
		want := strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ")
		if got := string(appendFolded(nil, s)); got != want {
			t.Fatalf("appendFolded(%q) = %q, want %q", s, got, want)
		}
	}
}

func TestAppendFoldedASCIISpaceTable(t *testing.T) {
	for c := range utf8.RuneSelf {
		if asciiSpace[c] != unicode.IsSpace(rune(c)) {
			t.Errorf("asciiSpace[%#x] = %v, unicode.IsSpace says %v", c, asciiSpace[c], !asciiSpace[c])
		}
	}
}

func TestVectorFault(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(-1))
	for _, c := range []struct {
		v    []float32
		bad  int
		zero bool
	}{
		{[]float32{0.1, -0.2, 0}, -1, false},
		{[]float32{0, 0, 0}, -1, true},
		{[]float32{0, nan, inf}, 1, false},
		{[]float32{1, 2, inf}, 2, false},
		{[]float32{math.MaxFloat32, 0}, -1, false},
	} {
		if bad, zero := VectorFault(c.v); bad != c.bad || zero != c.zero {
			t.Errorf("VectorFault(%v) = %d, %v; want %d, %v", c.v, bad, zero, c.bad, c.zero)
		}
	}
}
