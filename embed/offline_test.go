package embed

import (
	"context"
	"math"
	"reflect"
	"slices"
	"strings"
	"testing"
	"unicode"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
)

func TestTerms(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want []string
	}{
		{"The models are training", []string{"model", "train"}},
		{"Mixture-of-Experts", []string{"mixtur", "expert", "mixtureofexpert"}},
		{"scaling scaled scales scale", []string{"scal", "scal", "scal", "scal"}},
		{"studies of 42 LLMs", []string{"study", "llm"}},
		{"processes boxes", []string{"process", "box"}},
		{"Running is fun", []string{"run", "fun"}},
		{"", nil},
	} {
		if got := Terms(tc.in); !reflect.DeepEqual(got, tc.want) {
			t.Errorf("Terms(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestTermPriorDownWeightsGenericWords(t *testing.T) {
	t.Parallel()
	for _, w := range []string{"propose", "method", "results", "paper", "approach", "show", "performance"} {
		if p := termPrior(stem(w)); p >= 1 {
			t.Errorf("prior of %q = %v, want < 1", w, p)
		}
	}
	for _, w := range []string{"expert", "quantization", "pruning", "retrieval"} {
		if p := termPrior(stem(w)); p != 1 {
			t.Errorf("prior of %q = %v, want 1", w, p)
		}
	}
}

func TestOfflineIsDeterministicUnitAndNamed(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)[:10]
	a, ua, err := NewOffline().Embed(context.Background(), papers)
	if err != nil {
		t.Fatal(err)
	}
	b, _, _ := NewOffline().Embed(context.Background(), papers)
	for i := range papers {
		if !reflect.DeepEqual(a[i].Vector, b[i].Vector) {
			t.Fatalf("paper %d: vectors differ between runs", i)
		}
		if len(a[i].Vector) != 768 || a[i].PaperID != papers[i].ID || a[i].ContentHash != papers[i].ContentHash() {
			t.Fatalf("paper %d: %d dims, id %q", i, len(a[i].Vector), a[i].PaperID)
		}
		var n float64
		for _, x := range a[i].Vector {
			n += float64(x) * float64(x)
		}
		if math.Abs(n-1) > 1e-5 {
			t.Fatalf("paper %d: squared norm %v, want 1", i, n)
		}
	}
	if ua.Requests != 0 || ua.Model != OfflineModel || ua.Kind != paper.KindEmbedding {
		t.Fatalf("usage %+v", ua)
	}
	want := paper.Space{Model: "paperpipe-offline-hash", Dimensions: 768, Template: TemplateTitleAbstract}
	if got := NewOffline().Space(); got != want {
		t.Fatalf("Space = %+v", got)
	}
	q, _, err := NewOffline().EmbedQuery(context.Background(), TitleAbstract(papers[0]))
	if err != nil || !reflect.DeepEqual(q, a[0].Vector) {
		t.Fatal("EmbedQuery of a paper's text should equal its embedding")
	}
}

func TestOfflineEmptyTextIsZeroVector(t *testing.T) {
	t.Parallel()
	v := NewOffline().Vector("the of and")
	for _, x := range v {
		if x != 0 {
			t.Fatal("a text of stop words only should embed to the zero vector")
		}
	}
}

func TestTemplateText(t *testing.T) {
	t.Parallel()
	a := paper.Abstract{Title: " T ", Abstract: " A "}
	if s, err := Text(TemplateTitleAbstract, a); err != nil || s != "T\n\nA" {
		t.Fatalf("Text = %q, %v", s, err)
	}
	if s := TitleAbstract(paper.Abstract{Abstract: "A"}); s != "A" {
		t.Fatalf("TitleAbstract without title = %q", s)
	}
	if _, err := Text("nope", a); err == nil {
		t.Fatal("unknown template accepted")
	}
}

// BenchmarkOfflineVector: the offline embedder, each version, over the sample archive's
// title+abstract texts (ns/op is per paper).
func BenchmarkOfflineVector(b *testing.B) {
	b.Run("v1", func(b *testing.B) { benchmarkOfflineVector(b, NewOffline()) })
	b.Run("v2", func(b *testing.B) { benchmarkOfflineVector(b, NewOfflineV2()) })
}

func benchmarkOfflineVector(b *testing.B, o *Offline) {
	papers := sampledata.Papers(b)
	texts := make([]string, len(papers))
	for i, p := range papers {
		texts[i] = p.Title + "\n\n" + p.Abstract
	}
	b.ResetTimer()
	for i := range b.N {
		o.Vector(texts[i%len(texts)])
	}
}

// FuzzWords: words splits a lower-cased text as strings.FieldsFunc did with the embedder's
// rule (letters, digits and hyphens, and for v2 combining marks; any other rune, or a byte
// that is not UTF-8, separates).
func FuzzWords(f *testing.F) {
	for _, s := range []string{"Mixture-of-Experts models", "naïve café-au-lait \xff\xfe x", "ΣΑΣ 3d-cnn -- -x- ", "\u00a0a\u2028b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		s = strings.ToLower(s)
		want := strings.FieldsFunc(s, func(r rune) bool { return !unicode.IsLetter(r) && !unicode.IsDigit(r) && r != '-' })
		if got := slices.Collect(words(s, false)); !slices.Equal(got, want) {
			t.Errorf("words(%q) = %q, want %q", s, got, want)
		}
		want = strings.FieldsFunc(s, func(r rune) bool {
			return !unicode.IsLetter(r) && !unicode.IsDigit(r) && !unicode.IsMark(r) && r != '-'
		})
		if got := slices.Collect(words(s, true)); !slices.Equal(got, want) {
			t.Errorf("words(%q, marks) = %q, want %q", s, got, want)
		}
	})
}
