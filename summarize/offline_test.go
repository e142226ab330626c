package summarize

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
)

func TestOfflineTLDRsOfSampleArchiveAreValidAndDeterministic(t *testing.T) {
	t.Parallel()
	papers := sampledata.Papers(t)
	o := NewOffline(30)
	ctx := context.Background()
	for i, p := range papers {
		s, err := o.Summarize(ctx, p)
		if err != nil {
			t.Fatalf("%q: %v", p.Title, err)
		}
		if err := Validate(s.Text, p.Abstract, 30); err != nil {
			t.Errorf("%q: TL;DR %q fails validation: %v", p.Title, s.Text, err)
		}
		if n := len(Words(s.Text)); n > 30 {
			t.Errorf("%q: %d words", p.Title, n)
		}
		again, _ := NewOffline(30).Summarize(ctx, p)
		if again.Text != s.Text {
			t.Errorf("%q: not deterministic: %q vs %q", p.Title, s.Text, again.Text)
		}
		if s.Model != OfflineModel || s.PromptVersion != OfflinePromptVersion || s.ContentHash != p.ContentHash() ||
			s.Validation != paper.ValidOK || s.Usage.Requests != 0 || s.Usage.Kind != paper.KindChat {
			t.Errorf("%q: summary metadata %+v", p.Title, s)
		}
		if i%12 == 0 {
			t.Logf("%s\n    → %s", p.Title, s.Text)
		}
	}
}

func TestOfflineFallsBackToTitle(t *testing.T) {
	t.Parallel()
	got := NewOffline(30).TLDR(paper.Abstract{Title: "A Tiny Model for Big Things", Abstract: "Short."})
	if got != "A Tiny Model for Big Things." {
		t.Fatalf("TLDR = %q", got)
	}
	if _, err := NewOffline(30).Summarize(context.Background(), paper.Abstract{}); err == nil || !strings.Contains(err.Error(), "nothing") {
		t.Fatalf("empty abstract: err = %v", err)
	}
}

// A title the offline summarizer falls back on is held to Validate like any TL;DR: it is used
// only when valid, a valid short sentence of the abstract is kept before an invalid title, and
// with neither the paper is a permanent error, never an invalid TL;DR recorded as ValidOK.
func TestOfflineFallbackIsValidatedOrRefused(t *testing.T) {
	t.Parallel()
	o := NewOffline(30)
	s, err := o.Summarize(t.Context(), paper.Abstract{ID: "x:1", Title: "Sure", Abstract: "Models scale well."}) // "Sure." is a preamble
	if err != nil || s.Text != "Models scale well." || s.Validation != paper.ValidOK {
		t.Errorf("title %q, a short valid abstract: %q (%s), %v; want the abstract's sentence", "Sure", s.Text, s.Validation, err)
	}
	for _, a := range []paper.Abstract{
		{ID: "x:2", Title: "OK", Abstract: "Sure."},
		{ID: "x:3", Title: "Sure", Abstract: "OK."},
	} {
		s, err := o.Summarize(t.Context(), a)
		if !errors.Is(err, paper.ErrPermanent) {
			t.Errorf("title %q, abstract %q: TL;DR %q (%s), error %v; want an error wrapping ErrPermanent", a.Title, a.Abstract, s.Text, s.Validation, err)
			continue
		}
		if !strings.Contains(err.Error(), "nor does the title (starts with a preamble") {
			t.Errorf("error %q does not say what is wrong with the title", err)
		}
	}
}

// An abstract in a script with sentence marks of its own gets a TL;DR of one of its
// sentences, not two run together or one cut at the word limit in the middle of the next.
func TestOfflineTLDROfOtherScriptsIsOneSentence(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, abstract, want string }{
		{"arabic",
			"تتطلب نماذج اللغة الكبيرة موارد حسابية هائلة. هل يمكن تقليل هذه التكلفة؟ " +
				"نقترح في هذا البحث طريقة جديدة تعتمد على التوجيه المتناثر للخبراء تقلل تكلفة التدريب بنسبة أربعين بالمئة. " +
				"تظهر التجارب أن الطريقة تتفوق على الأساليب الحالية.",
			"نقترح في هذا البحث طريقة جديدة تعتمد على التوجيه المتناثر للخبراء تقلل تكلفة التدريب بنسبة أربعين بالمئة."},
		{"hindi",
			"बड़े भाषा मॉडल को भारी संगणना संसाधनों की आवश्यकता होती है। " +
				"इस शोध में हम विरल विशेषज्ञ रूटिंग पर आधारित एक नई प्रशिक्षण विधि प्रस्तुत करते हैं जो प्रशिक्षण लागत को चालीस प्रतिशत कम करती है। " +
				"प्रयोग दिखाते हैं कि यह विधि मौजूदा तरीकों से बेहतर है।",
			"इस शोध में हम विरल विशेषज्ञ रूटिंग पर आधारित एक नई प्रशिक्षण विधि प्रस्तुत करते हैं जो प्रशिक्षण लागत को चालीस प्रतिशत कम करती है।"},
	} {
		a := paper.Abstract{ID: "x:" + tc.name, Title: "عنوان", Abstract: tc.abstract}
		s, err := NewOffline(30).Summarize(t.Context(), a)
		if err != nil || s.Text != tc.want {
			t.Errorf("%s:\n got %q, %v\nwant %q", tc.name, s.Text, err, tc.want)
		}
	}
}

// A Chinese abstract of one long sentence under a long title has a TL;DR: the title, cut to
// the limit (it was left whole, over the limit, and the paper failed).
func TestOfflineTLDROfLongChineseTextIsCut(t *testing.T) {
	t.Parallel()
	a := paper.Abstract{ID: "x:zh",
		Title: "一种基于稀疏专家路由的大规模语言模型高效训练方法及其在多模态任务和强化学习任务中的推广应用研究与实验分析",
		Abstract: "本文提出了一种基于稀疏专家路由的新方法能够在保持模型质量的同时将训练成本降低百分之四十并且在多个基准测试上" +
			"优于现有方法同时还能够推广到多模态任务以及强化学习任务之中并且不需要额外的超参数调整或者人工干预即可直接使用。"}
	s, err := NewOffline(15).Summarize(t.Context(), a)
	if want := "一种基于稀疏专家路由的大规模语言模型高效训练方法及其在多模态。"; err != nil || s.Text != want {
		t.Errorf("got %q, %v; want %q", s.Text, err, want)
	}
}

// A TL;DR is read alone: the offline summarizer avoids one that refers to what it does not say
// ("this shortcoming"), keeps "we" or "our", or says what the paper looks into when a later
// sentence says what it found, as long as another sentence, or the same one cut, does without.
func TestOfflineAvoidsFlawedTLDRs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, abstract, want string }{
		{"dangling reference cut off",
			"Load balancing matters for mixture-of-experts models. Existing frameworks compute the balancing loss per micro-batch, which is too strict. " +
				"In this work, we propose calculating the loss over a global batch to loosen this constraint. " +
				"Experiments on models of up to 42.8B parameters show better perplexity.",
			"Proposes calculating the loss over a global batch."},
		{"dangling reference: a sentence of similar score instead",
			"Mixture-of-experts models are expensive to train from scratch. Existing methods reuse only the feed-forward layers of dense models. " +
				"We propose a simple method that addresses this shortcoming. " +
				"We introduce BAM, which initializes the attention experts from the dense models as well.",
			"Introduces BAM, which initializes the attention experts from the dense models as well."},
		{"first person cut off",
			"Large language models show impressive results on few-shot tasks. However, these models are memory-intensive. " +
				"To overcome this issue, we propose meta-training with demonstration retrieval, where we use a dense passage retriever to retrieve demonstrations. " +
				"We construct a meta-training set from UnifiedQA.",
			"Proposes meta-training with demonstration retrieval."},
		{"topic gives way to a finding",
			"Small language models are popular on edge devices. Conventional approaches either pre-train them or prune large models. " +
				"In this paper, we investigate the family of acceleration methods that involve both structured pruning and model training. " +
				"We find that layer-wise adaptive pruning is extremely effective in LLMs and yields significant improvements over existing pruning techniques.",
			"Finds that layer-wise adaptive pruning is extremely effective in LLMs and yields significant improvements over existing pruning techniques."},
		{"flawed best kept when nothing better states a contribution",
			"Transformers are slow on long inputs. Prior methods remain limited. " +
				"We propose a new attention scheme to overcome these limitations in every layer of very long and deep models at the same time everywhere.",
			"Proposes a new attention scheme to overcome these limitations in every layer of very long and deep models at the same time everywhere."},
	} {
		got := NewOffline(30).TLDR(paper.Abstract{Title: "A title of the paper", Abstract: tc.abstract})
		if got != tc.want {
			t.Errorf("%s:\n got %q\nwant %q", tc.name, got, tc.want)
		}
	}
}

// Over the sample archive, the flaws TestOfflineAvoidsFlawedTLDRs shows are rare: what is
// left of them has no flawless alternative.
func TestOfflineTLDRsOfSampleArchiveAreSeldomFlawed(t *testing.T) {
	t.Parallel()
	o := NewOffline(30)
	var dangling, firstPerson []string
	for _, p := range sampledata.Papers(t) {
		s := o.TLDR(p)
		fl := flaws(s)
		if fl&flawDangling != 0 {
			dangling = append(dangling, s)
		}
		if fl&flawFirstPerson != 0 {
			firstPerson = append(firstPerson, s)
		}
		if strings.Contains(s, "?") {
			t.Errorf("%q: a question", s)
		}
	}
	// Before the flaws were looked for: 12 and 5 of the 108.
	if len(dangling) > 4 || len(firstPerson) > 1 {
		t.Errorf("%d TL;DRs with a dangling reference (want at most 4), %d in the first person (at most 1):\n%s\n%s",
			len(dangling), len(firstPerson), strings.Join(dangling, "\n"), strings.Join(firstPerson, "\n"))
	}
}

// TestCuesSkipOnlySentencesTheyCannotMatch: a cue is tried only where one of its leads (the
// literal strings every match starts with) starts in the sentence, with its regexp anchored
// there; that must never change whether it matches. Every cue is checked both ways against every sentence of the sample archive and
// sentences made to match each cue.
func TestCuesSkipOnlySentencesTheyCannotMatch(t *testing.T) {
	t.Parallel()
	sentences := []string{
		"In this paper, we propose a method.", "With this work, we study graphs.", "Here we show it works.",
		"Our results indicate gains.", "Experiments reveal a gap.", "A novel dataset of images.", "We also present a tool.",
		"This is a promising direction.", "It is an important problem.", "Code will be publicly released.",
		"See https://example.org for details.", "The data are available at our site.", "(3) a third point.",
		"We consider 2) the second case.", "Prior approaches struggle, e.g. on long inputs.",
		// Word boundaries on either side of a lead, and a lead that occurs first where it
		// does not match: the anchored try at each place must agree with the whole regexp.
		"Swe propose nothing; _we propose less; we proposed; so we propose more.", "we", "we propose",
		"ourselves our", "(we) present", "x(3) and 4)", "habitually, we widely held", "github_x github",
		"resultsshow results show", "we,propose", "e.g.x", "é we present", "we\u017f present and we show",
	}
	for _, p := range sampledata.Papers(t) {
		sentences = append(sentences, Sentences(p.Abstract)...)
	}
	matched := 0
	for _, s := range sentences {
		matched += checkCues(t, s)
	}
	if len(sentenceCues.always) > 0 {
		t.Errorf("cues without leads (tried with their regexp everywhere, slow): %v", sentenceCues.always)
	}
	if matched < 100 {
		t.Errorf("only %d matches over the sentences: the check tries too little", matched)
	}
}

// FuzzCueTable: whatever the sentence, the one-pass match of sentenceCues says what each cue's
// regexp says.
func FuzzCueTable(f *testing.F) {
	for _, s := range []string{"In this paper, we propose a method.", "x(3) and 4) we,propose", "_we present",
		"We\u017f show", "see https://x.org e.g.y", "é we present \xff we", "prior work has been limited"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) { checkCues(t, s) })
}

// checkCues checks sentenceCues.match on s against each cue's regexp and returns how many of
// the cues match s.
func checkCues(t *testing.T, s string) int {
	t.Helper()
	f := foldASCII(s)
	hits, matched := sentenceCues.match(f), 0
	for i, c := range sentenceCues.cues {
		want := c.re.MatchString(f)
		if strings.Contains(f, "\u017f") || strings.Contains(f, "\u212a") {
			want = c.ci.MatchString(f)
		}
		if got := hits&(1<<i) != 0; got != want {
			t.Errorf("cue %s on %q: matches %v, its regexp %v (leads %q)", c.re, s, got, want, c.leads)
		}
		if want {
			matched++
		}
	}
	return matched
}

// BenchmarkOfflineTLDR: the offline summarizer over the sample archive (ns/op is per abstract).
func BenchmarkOfflineTLDR(b *testing.B) {
	papers := sampledata.Papers(b)
	o := NewOffline(0)
	b.ResetTimer()
	for i := range b.N {
		o.TLDR(papers[i%len(papers)])
	}
}
