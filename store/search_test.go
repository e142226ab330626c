package store_test

import (
	"cmp"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
)

// topic makes a paper with the given id suffix, title and abstract.
func topic(n int, title, abstract string, cats ...string) paper.Abstract {
	return paper.Abstract{ID: fmt.Sprintf("arxiv:2402.%05d", n), Title: title, Abstract: abstract, Categories: cats}
}

// checkKeywordFinds fails unless KeywordSearch(q) finds exactly the papers want, in any order.
func checkKeywordFinds(t *testing.T, s *store.Store, q string, want []string) {
	t.Helper()
	hits, err := s.KeywordSearch(t.Context(), q, 10)
	if err != nil {
		t.Fatalf("KeywordSearch(%q): %v", q, err)
	}
	got := hitIDs(hits)
	slices.Sort(got)
	if !slices.Equal(got, want) {
		t.Errorf("KeywordSearch(%q) = %v, want %v", q, got, want)
	}
}

// checkListFinds fails unless the list's text filter q (ListFiltered) lists exactly the papers
// want, in any order.
func checkListFinds(t *testing.T, s *store.Store, q string, want []string) {
	t.Helper()
	recs, _, err := s.ListFiltered(t.Context(), store.ListFilter{Text: q}, 10, nil)
	if err != nil {
		t.Fatalf("ListFiltered(%q): %v", q, err)
	}
	var listed []string
	for _, r := range recs {
		listed = append(listed, r.ID)
	}
	slices.Sort(listed)
	if !slices.Equal(listed, want) {
		t.Errorf("ListFiltered(text %q) = %v, want %v", q, listed, want)
	}
}

func TestKeywordSearchRanksTitleAboveAbstract(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	inAbstract := topic(1, "A study of marsupials", "We observe quokkas on Rottnest Island over two years.")
	inTitle := topic(2, "Quokka behaviour in the wild", "We observe small animals on an island over two years.")
	neither := topic(3, "Kangaroo locomotion", "Hopping is efficient at speed.")
	upsert(t, s, []paper.Abstract{inAbstract, inTitle, neither}, store.Work{})
	if _, err := s.SaveSummaries(ctx, []paper.Summary{summaryOf(inTitle, testModel, testPrompt, "Quokkas are friendly.")}); err != nil {
		t.Fatal(err)
	}

	// "quokkas" is stemmed to match "Quokka" and "quokkas".
	hits, err := s.KeywordSearch(ctx, "quokkas", 10)
	if err != nil {
		t.Fatalf("KeywordSearch: %v", err)
	}
	if got, want := hitIDs(hits), []string{inTitle.ID, inAbstract.ID}; !slices.Equal(got, want) {
		t.Fatalf("KeywordSearch = %v, want %v (title match first)", got, want)
	}
	if hits[0].TLDR != "Quokkas are friendly." || hits[0].Title != inTitle.Title {
		t.Errorf("first hit = %+v, want its title and TL;DR", hits[0])
	}
	if !(hits[0].Score > hits[1].Score && hits[1].Score > 0) {
		t.Errorf("scores %v, %v: want decreasing and positive", hits[0].Score, hits[1].Score)
	}
	// Web-search syntax: a leading minus excludes.
	hits, err = s.KeywordSearch(ctx, "quokka -marsupials", 10)
	if err != nil || !slices.Equal(hitIDs(hits), []string{inTitle.ID}) {
		t.Errorf("KeywordSearch(quokka -marsupials) = %v, %v", hitIDs(hits), err)
	}
	if hits, err := s.KeywordSearch(ctx, "quokka", 1); err != nil || len(hits) != 1 {
		t.Errorf("KeywordSearch k=1 = %d hits, %v", len(hits), err)
	}
	// A query full-text search ignores whole can match nothing, and says so; one that merely
	// matches nothing does not.
	for _, q := range []string{"the of and", `"to be" or -not`, "!!! ..."} {
		if hits, err := s.KeywordSearch(ctx, q, 10); !errors.Is(err, paper.ErrNoSearchTerms) || len(hits) != 0 {
			t.Errorf("KeywordSearch(%q) = %v, %v; want ErrNoSearchTerms", q, hitIDs(hits), err)
		}
	}
	if hits, err := s.KeywordSearch(ctx, "wombat", 10); err != nil || len(hits) != 0 {
		t.Errorf("KeywordSearch(wombat) = %v, %v; want none, no error", hitIDs(hits), err)
	}
	for _, bad := range []struct {
		q string
		k int
	}{{"", 10}, {"   ", 10}, {"quokka", 0}, {"quokka", 1001}, {"bad \xff utf8", 10}, {"nul\x00byte", 10}} {
		if _, err := s.KeywordSearch(ctx, bad.q, bad.k); !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("KeywordSearch(%q, %d) = %v, want ErrInvalid", bad.q, bad.k, err)
		}
	}
}

// The paper whose title a query is ranks first, and the scores say it is better. ts_rank
// joins the scores of the query's word pairs as 1 - (1-a)(1-b)…, which reaches exactly 1 in
// float4 after a few close pairs in a title: both papers here scored 1, and the tie went by
// id. On the sample archive 14 of the 90 papers matching "large language models" scored 1, and
// the title "Scaling Sparse Fine-Tuning to Large Language Models" found its paper second.
func TestKeywordSearchRanksTheExactTitleFirst(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	// The other paper has the lower id, which the tie went to.
	other := topic(1, "Census of a Quokka Island", "The quokka island census counts each quokka of the island.")
	exact := topic(2, "Quokka Island Census", "The quokka island census of an island counts its quokkas.")
	upsert(t, s, []paper.Abstract{other, exact}, store.Work{})
	for _, q := range []string{"Quokka Island Census", "quokka island census"} {
		hits, err := s.KeywordSearch(ctx, q, 10)
		if err != nil || len(hits) != 2 {
			t.Fatalf("KeywordSearch(%q) = %v, %v; want both papers", q, hitIDs(hits), err)
		}
		if hits[0].ID != exact.ID || !(hits[0].Score > hits[1].Score) || hits[0].Score >= 1 {
			t.Errorf("KeywordSearch(%q) = %s %v, %s %v; want %s first, with the higher score, below 1",
				q, hits[0].ID, hits[0].Score, hits[1].ID, hits[1].Score, exact.ID)
		}
	}
}

// An acronym finds its plural and its plural the acronym: the English stemmer keeps the s of
// a word with no vowel before its last letter, so "LLMs" was the lexeme llms, not llm, and on
// the sample archive a keyword search for LLM missed 26 of the 73 papers that say LLM or LLMs
// (LLMs missed 7; GPU 3 of 13; MLLM 14 of 22). So is an excluded one.
func TestKeywordSearchOfAnAcronymFindsItsPlural(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "acronyms", 3)
	singular := topic(1, "Serving an LLM on one GPU", "We serve a quokka LLM from a GPU.")
	plural := topic(2, "Serving LLMs on GPUs", "We serve quokka LLMs from GPUs.")
	neither := topic(3, "Serving quokkas", "We serve quokka food on an island.")
	upsert(t, s, []paper.Abstract{singular, plural, neither}, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{
		embeddingOf(singular, 1, 0, 0), embeddingOf(plural, 0, 1, 0), embeddingOf(neither, 0, 0, 1),
	}); err != nil {
		t.Fatal(err)
	}
	both := []string{singular.ID, plural.ID}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"LLM", both}, {"LLMs", both}, {"llms", both}, {"GPU", both}, {"GPUs", both},
		{"LLMs on GPUs", both}, {`"quokka LLMs"`, both}, {"LLM or island", []string{singular.ID, plural.ID, neither.ID}},
		{"quokka -LLM", []string{neither.ID}}, {"quokka -GPUs", []string{neither.ID}},
	} {
		checkKeywordFinds(t, s, c.q, c.want)
		hy, err := s.HybridSearch(ctx, sp.ID, c.q, []float32{1, 1, 1}, 10)
		if err != nil {
			t.Fatalf("HybridSearch(%q): %v", c.q, err)
		}
		if strings.Contains(c.q, "-") {
			// The excluded papers are left out of the semantic ranking as well.
			if got := hitIDs(hy); !slices.Equal(got, c.want) {
				t.Errorf("HybridSearch(%q) = %v, want %v", c.q, got, c.want)
			}
			sem, err := s.SemanticSearch(ctx, sp.ID, c.q, []float32{1, 1, 1}, 10)
			if err != nil || !slices.Equal(hitIDs(sem), c.want) {
				t.Errorf("SemanticSearch(%q) = %v, %v; want %v", c.q, hitIDs(sem), err, c.want)
			}
		}
		checkListFinds(t, s, c.q, c.want)
	}
	// Words with a vowel are stemmed as before: no plural is added that another word could be.
	if hits, err := s.KeywordSearch(ctx, "foods", 10); err != nil || !slices.Equal(hitIDs(hits), []string{neither.ID}) {
		t.Errorf("KeywordSearch(foods) = %v, %v", hitIDs(hits), err)
	}
}

// A short English word is not taken for an acronym's plural: "gas" (one consonant, then a
// vowel, then s) found the papers of a GA (a genetic algorithm) as well, "bus" those of a BU.
// An acronym has two consonants or more before its vowel (GPU, CPU, TPU).
func TestKeywordSearchOfAShortWordIsNotTakenForAnAcronym(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	gas := topic(1, "Quokka gas dynamics", "We model the gas of a quokka burrow on a bus.")
	ga := topic(2, "A quokka GA", "We tune a GA for quokka burrows, trained on a BU cluster.")
	upsert(t, s, []paper.Abstract{gas, ga}, store.Work{})
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"gas", []string{gas.ID}}, {"bus", []string{gas.ID}}, {"GA", []string{ga.ID}},
		{"quokka -gas", []string{ga.ID}},
	} {
		hits, err := s.KeywordSearch(ctx, c.q, 10)
		if err != nil {
			t.Fatalf("KeywordSearch(%q): %v", c.q, err)
		}
		if got := hitIDs(hits); !slices.Equal(got, c.want) {
			t.Errorf("KeywordSearch(%q) = %v, want %v", c.q, got, c.want)
		}
	}
}

// A hyphenated query word finds the word written joined as well: PostgreSQL reads "pre-training"
// as the phrase pre-train <-> pre <-> train and "pretraining" as pretrain, so on the sample
// archive a keyword search for pre-training found 32 of the 44 papers that write it either way,
// and multi-modal 6 of 29. In a phrase, an exclusion and the list's text filter alike; a word
// with stop words between its hyphens (state-of-the-art) as well.
func TestKeywordSearchOfAHyphenatedWordFindsItJoined(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "hyphens", 3)
	hyphenated := topic(1, "Multi-modal pre-training of quokkas", "We pre-train a multi-modal quokka model, state-of-the-art.")
	joined := topic(2, "Multimodal pretraining of quokkas", "We pretrain a multimodal quokka model, stateoftheart.")
	neither := topic(3, "Training quokkas", "We train a model of quokkas on an island.")
	upsert(t, s, []paper.Abstract{hyphenated, joined, neither}, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{
		embeddingOf(hyphenated, 1, 0, 0), embeddingOf(joined, 0, 1, 0), embeddingOf(neither, 0, 0, 1),
	}); err != nil {
		t.Fatal(err)
	}
	both := []string{hyphenated.ID, joined.ID}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"pre-training", both}, {"Multi-Modal", both}, {"multi-modal pre-training", both},
		{`"multi-modal pre-training of quokkas"`, both}, {`"quokka model"`, both},
		{"state-of-the-art", both}, {"island or multi-modal", []string{hyphenated.ID, joined.ID, neither.ID}},
		{"quokka -multi-modal", []string{neither.ID}}, {"quokka -pre-training", []string{neither.ID}},
		{`quokka -"multi-modal pre-training"`, []string{neither.ID}},
		{"pre-island", nil},
	} {
		checkKeywordFinds(t, s, c.q, c.want)
		if strings.Contains(c.q, " -") {
			// The excluded papers are left out of the semantic ranking as well.
			sem, err := s.SemanticSearch(ctx, sp.ID, c.q, []float32{1, 1, 1}, 10)
			if err != nil || !slices.Equal(hitIDs(sem), c.want) {
				t.Errorf("SemanticSearch(%q) = %v, %v; want %v", c.q, hitIDs(sem), err, c.want)
			}
		}
		checkListFinds(t, s, c.q, c.want)
	}
}

// A joined query word finds the word written hyphenated as well: PostgreSQL reads "pretraining"
// as pretrain and indexes "pre-training" as pre-train, pre and train, never pretrain, so on the
// sample archive a keyword search for pretraining found 14 of the 44 papers that write it either
// way, finetuning 5 of 44. In a phrase, an exclusion and the list's text filter alike; with a
// prefix or a suffix (lightweight, tradeoff) of those written both ways (hyphenatedForms).
func TestKeywordSearchOfAJoinedWordFindsItHyphenated(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "joined", 3)
	hyphenated := topic(1, "Multi-modal pre-training of quokkas", "We pre-train a multi-modal quokka model, light-weight, a trade-off.")
	joined := topic(2, "Multimodal pretraining of quokkas", "We pretrain a multimodal quokka model, lightweight, a tradeoff.")
	neither := topic(3, "Training quokkas", "We train a model of quokkas on an island.")
	upsert(t, s, []paper.Abstract{hyphenated, joined, neither}, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{
		embeddingOf(hyphenated, 1, 0, 0), embeddingOf(joined, 0, 1, 0), embeddingOf(neither, 0, 0, 1),
	}); err != nil {
		t.Fatal(err)
	}
	both := []string{hyphenated.ID, joined.ID}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"pretraining", both}, {"Multimodal", both}, {"multimodal pretraining", both},
		{"lightweight", both}, {"tradeoffs", both},
		{`"multimodal pretraining of quokkas"`, both}, {`"pretrain a multimodal quokka"`, both},
		{`"multi-modal pretraining"`, both}, {"pre-training multimodal", both},
		{"island or multimodal", []string{hyphenated.ID, joined.ID, neither.ID}},
		{"quokka -multimodal", []string{neither.ID}}, {"quokka -pretraining", []string{neither.ID}},
		{`quokka -"multimodal pretraining"`, []string{neither.ID}},
		{"island or quokka -pretraining", []string{neither.ID}},
		{"pretraining island", nil}, {"modalmulti", nil},
	} {
		checkKeywordFinds(t, s, c.q, c.want)
		if strings.Contains(c.q, " -") {
			// The excluded papers are left out of the semantic ranking as well.
			sem, err := s.SemanticSearch(ctx, sp.ID, c.q, []float32{1, 1, 1}, 10)
			if err != nil || !slices.Equal(hitIDs(sem), c.want) {
				t.Errorf("SemanticSearch(%q) = %v, %v; want %v", c.q, hitIDs(sem), err, c.want)
			}
		}
		checkListFinds(t, s, c.q, c.want)
	}
}

// A number after a hyphen is a signed number to PostgreSQL's parser ("COVID-19" is covid and
// -19, "GPT-4" gpt and -4), so a search for covid 19, covid19, gpt 4 or gpt4 found no paper that
// writes COVID-19 or GPT-4, and covid-19 none that writes COVID 19. A number finds it after a
// hyphen and the other way round; a word joined to its number finds it apart or hyphenated,
// and a word then a number, apart or hyphenated, finds them joined (gpt 4 and GPT-4 missed the
// papers that write GPT4).
func TestKeywordSearchOfANumberFindsItAfterAHyphen(t *testing.T) {
	t.Parallel()
	s := setup(t)
	hyphenated := topic(1, "Quokkas on GPT-4", "We track COVID-19 in quokkas with ResNet-50 and Llama-3.1.")
	spaced := topic(2, "Quokkas on GPT 4", "We track COVID 19 in quokkas with ResNet 50 and Llama 3.1.")
	neither := topic(3, "Wombats", "We track wombats and quokkas with 19 cameras in 4 parks.")
	joined := topic(4, "Quokkas on GPT4", "We track COVID19 in quokkas with ResNet50 and Llama3.1.")
	// A number with a thousands separator is two numbers in a phrase ('10' <-> '000'): the word
	// before it is not grouped with its first half (the title below went unfound so).
	thousands := topic(5, "Training Wallabies on More Than 10,000 GPUs", "We count kangaroos.")
	upsert(t, s, []paper.Abstract{hyphenated, spaced, neither, joined, thousands}, store.Work{})
	both := []string{hyphenated.ID, spaced.ID, joined.ID}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"gpt 4", both}, {"GPT-4", both}, {"gpt4", both}, {"covid19", both}, {"covid 19", both},
		{"COVID-19", both}, {"resnet50", both}, {"resnet 50", both}, {"llama 3.1", both}, {"llama3.1", both},
		{"Llama-3.1", both}, {`"track covid19 in quokkas"`, both}, {`"track covid 19 in quokkas"`, both},
		{"quokkas -covid19", []string{neither.ID}}, {"quokkas -covid-19", []string{neither.ID}},
		{"19 cameras", []string{neither.ID}}, {"gpt5", nil},
		{"Training Wallabies on More Than 10,000 GPUs", []string{thousands.ID}},
	} {
		checkKeywordFinds(t, s, c.q, c.want)
		checkListFinds(t, s, c.q, c.want)
	}
}

// A hyphenated query word finds the words written apart as well: a keyword search for
// Mixture-of-Experts found 10 of the 16 sample papers that write it with or without its
// hyphens. Not when a word's pieces but one are stop words: in-context is not context.
func TestKeywordSearchOfAHyphenatedWordFindsItSpaced(t *testing.T) {
	t.Parallel()
	s := setup(t)
	hyphenated := topic(1, "Mixture-of-Experts quokkas", "A pre-trained mixture-of-experts quokka learns in-context.")
	spaced := topic(2, "Mixture of experts quokkas", "A pre trained mixture of experts quokka learns in context.")
	neither := topic(3, "A mixture of quokka experts", "Experts of a mixture of quokkas, trained in a context.")
	upsert(t, s, []paper.Abstract{hyphenated, spaced, neither}, store.Work{})
	both := []string{hyphenated.ID, spaced.ID}
	for _, c := range []struct {
		q    string
		want []string
	}{
		{"Mixture-of-Experts", both}, {"pre-trained", both}, {`"pre-trained mixture-of-experts quokka"`, both},
		{"quokka -mixture-of-experts", []string{neither.ID}},
		{"in-context", []string{hyphenated.ID}},
	} {
		checkKeywordFinds(t, s, c.q, c.want)
		checkListFinds(t, s, c.q, c.want)
	}
}

// Stored text is composed (NFC, as ingest stores it); a query typed or pasted with its accents
// decomposed ("nai\u0308ve") finds the same papers, in the query and in the list's text filter.
func TestKeywordSearchOfDecomposedAccents(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	naive := topic(1, "Na\u00efve Bayes for spam", "We revisit the na\u00efve classifier on r\u00e9sum\u00e9 data.")
	other := topic(2, "Kangaroo locomotion", "Hopping is efficient at speed.")
	upsert(t, s, []paper.Abstract{naive, other}, store.Work{})
	for _, q := range []string{"na\u00efve", "nai\u0308ve", "re\u0301sume\u0301", "nai\u0308ve -kangaroo"} {
		hits, err := s.KeywordSearch(ctx, q, 10)
		if err != nil || !slices.Equal(hitIDs(hits), []string{naive.ID}) {
			t.Errorf("KeywordSearch(%+q) = %v, %v; want %s", q, hitIDs(hits), err, naive.ID)
		}
	}
	hits, err := s.KeywordSearch(ctx, "bayes -nai\u0308ve", 10)
	if err != nil || len(hits) != 0 {
		t.Errorf("KeywordSearch excluding the decomposed word = %v, %v; want none", hitIDs(hits), err)
	}
}

// A dash with a space after it is punctuation, not an exclusion (paper.LoneDashesToSpaces): a
// title with " - " in it, pasted whole, finds its paper in every mode and in the listing's
// text filter; websearch_to_tsquery alone read it as 'quokka' & … & !'wombat', which the paper
// itself fails.
func TestSearchReadsALoneDashAsPunctuation(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "lone-dash", 3)
	dashed := topic(1, "Quokka Counts - Wombats are Like Quokkas", "We count quokkas and wombats on an island.")
	other := topic(2, "Quokka counts on the mainland", "We count quokkas in a forest.")
	upsert(t, s, []paper.Abstract{dashed, other}, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(dashed, 1, 0, 0), embeddingOf(other, 0, 1, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{dashed.Title, "quokka counts -- wombats", "quokka counts -\u00a0wombats", "wombats -"} {
		kw, err := s.KeywordSearch(ctx, q, 10)
		if err != nil || len(kw) == 0 || kw[0].ID != dashed.ID {
			t.Errorf("KeywordSearch(%q) = %v, %v; want %s first", q, hitIDs(kw), err, dashed.ID)
		}
		hy, err := s.HybridSearch(ctx, sp.ID, q, []float32{1, 0, 0}, 10)
		if err != nil || len(hy) == 0 || hy[0].ID != dashed.ID {
			t.Errorf("HybridSearch(%q) = %v, %v; want %s first", q, hitIDs(hy), err, dashed.ID)
		}
		sem, err := s.SemanticSearch(ctx, sp.ID, q, []float32{1, 0, 0}, 10)
		if err != nil || len(sem) != 2 || sem[0].ID != dashed.ID {
			t.Errorf("SemanticSearch(%q) = %v, %v; want both papers, %s first", q, hitIDs(sem), err, dashed.ID)
		}
		recs, _, err := s.ListFiltered(ctx, store.ListFilter{Text: q}, 10, nil)
		if err != nil || len(recs) == 0 || recs[0].ID != dashed.ID {
			t.Errorf("ListFiltered(text %q) = %d papers, %v; want %s", q, len(recs), err, dashed.ID)
		}
	}
	// A dash written against a word still excludes it.
	if kw, err := s.KeywordSearch(ctx, "quokka - counts -wombats", 10); err != nil || !slices.Equal(hitIDs(kw), []string{other.ID}) {
		t.Errorf("KeywordSearch(quokka - counts -wombats) = %v, %v; want %s", hitIDs(kw), err, other.ID)
	}
}

func TestSearchTextIsNeverSQL(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "inj", 3)
	p := topic(1, "Robert'); DROP TABLE papers;-- and friends", "An abstract about tables & (students | !teachers).")
	upsert(t, s, []paper.Abstract{p}, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{embeddingOf(p, 1, 0, 0)}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		"'; DROP TABLE papers; --",
		`" OR 1=1 --`,
		"tables & | ! ( ) :* <-> \\",
		"Robert'); DROP TABLE papers;--",
		"$1 $2 ::text",
	} {
		if _, err := s.KeywordSearch(ctx, q, 5); err != nil {
			t.Errorf("KeywordSearch(%q): %v", q, err)
		}
		if _, err := s.HybridSearch(ctx, sp.ID, q, []float32{0, 1, 0}, 5); err != nil {
			t.Errorf("HybridSearch(%q): %v", q, err)
		}
		if _, _, err := s.ListFiltered(ctx, store.ListFilter{Text: q, Category: q}, 5, nil); err != nil {
			t.Errorf("ListFiltered(%q): %v", q, err)
		}
	}
	hits, err := s.KeywordSearch(ctx, "Robert'); DROP TABLE papers;--", 5)
	if err != nil || !slices.Equal(hitIDs(hits), []string{p.ID}) {
		t.Errorf("the payload as text finds the paper whose title holds it: %v, %v", hitIDs(hits), err)
	}
	if n := countRows(t, s, "papers"); n != 1 {
		t.Errorf("papers has %d rows after the payloads, want 1", n)
	}
}

func TestHybridSearchFusesBothRankings(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "hybrid", 3)
	// Vector ranking for the query (1,0,0): near, both, far-ish, keyword-only last.
	near := topic(1, "Gradient methods", "We analyse convergence of first order methods.")
	both := topic(2, "Sparse models", "Routing tokens to an expert.")
	far := topic(3, "Image segmentation", "Pixels are labelled.")
	kwOnly := topic(4, "Expert routing", "Routing and expert choice.")
	unembedded := topic(5, "Unrelated", "Nothing to see.")
	upsert(t, s, []paper.Abstract{near, both, far, kwOnly, unembedded}, store.Work{})
	embs := []paper.Embedding{
		embeddingOf(near, 1, 0, 0),
		embeddingOf(both, 0.9, 0.3, 0),
		embeddingOf(far, 0.5, 0.8, 0),
		embeddingOf(kwOnly, -1, 0, 0),
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	// Keyword ranking for "expert routing": kwOnly (title and abstract), then both (abstract).
	kw, err := s.KeywordSearch(ctx, "expert routing", 10)
	if err != nil || !slices.Equal(hitIDs(kw), []string{kwOnly.ID, both.ID}) {
		t.Fatalf("keyword ranking = %v, %v; the test's premise is wrong", hitIDs(kw), err)
	}

	hits, err := s.HybridSearch(ctx, sp.ID, "expert routing", []float32{1, 0, 0}, 10)
	if err != nil {
		t.Fatalf("HybridSearch: %v", err)
	}
	// both: vector rank 2, keyword rank 2 → 2/62. kwOnly: keyword rank 1 and vector rank 4 →
	// 1/61 + 1/64, a little less. near: vector rank 1 → 1/61. far: vector rank 3 → 1/63.
	want := []struct {
		id    string
		score float64
	}{
		{both.ID, 2.0 / 62},
		{kwOnly.ID, 1.0/61 + 1.0/64},
		{near.ID, 1.0 / 61},
		{far.ID, 1.0 / 63},
	}
	if len(hits) != len(want) {
		t.Fatalf("HybridSearch = %+v, want %d hits", hits, len(want))
	}
	for i, w := range want {
		if hits[i].ID != w.id || math.Abs(hits[i].Score-w.score) > 1e-9 {
			t.Errorf("hit %d = %s %.6f, want %s %.6f", i+1, hits[i].ID, hits[i].Score, w.id, w.score)
		}
	}
	if hits, err := s.HybridSearch(ctx, sp.ID, "expert routing", []float32{1, 0, 0}, 2); err != nil || len(hits) != 2 {
		t.Errorf("HybridSearch k=2 = %d hits, %v", len(hits), err)
	}
	// A query with only stop words has no keyword ranking: the vector ranking alone remains.
	hits, err = s.HybridSearch(ctx, sp.ID, "the of and", []float32{1, 0, 0}, 2)
	if err != nil || !slices.Equal(hitIDs(hits), []string{near.ID, both.ID}) {
		t.Errorf("HybridSearch(stop words) = %v, %v", hitIDs(hits), err)
	}
	if _, err := s.HybridSearch(ctx, sp.ID, "routing", []float32{1, 0}, 5); !errors.Is(err, paper.ErrSpaceMismatch) {
		t.Errorf("HybridSearch with a 2-d vector in a 3-d space = %v, want ErrSpaceMismatch", err)
	}
	if _, err := s.HybridSearch(ctx, sp.ID+100, "routing", []float32{1, 0, 0}, 5); !errors.Is(err, paper.ErrNotFound) {
		t.Errorf("HybridSearch in a missing space = %v, want ErrNotFound", err)
	}
}

func TestHybridSearchUsesBothIndexes(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	const n, dims = 1000, 16
	sp := space(t, s, "planned", dims)
	words := []string{"routing", "experts", "sparse", "dense", "vision", "language", "graphs", "proteins"}
	ps := make([]paper.Abstract, n)
	r := rand.New(rand.NewPCG(3, 4))
	embs := make([]paper.Embedding, n)
	for i := range ps {
		ps[i] = topic(i, fmt.Sprintf("Paper %d on %s", i, words[i%len(words)]),
			fmt.Sprintf("We study %s and %s in setting %d.", words[(i/3)%len(words)], words[(i/7)%len(words)], i))
		if i%97 == 0 { // a rare word, so that an index scan pays off
			ps[i].Title += " and quasicrystals"
		}
		v := make([]float32, dims)
		for j := range v {
			v[j] = r.Float32()*2 - 1
		}
		embs[i] = embeddingOf(ps[i], v...)
	}
	upsert(t, s, ps, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE papers; ANALYZE embeddings"); err != nil {
		t.Fatal(err)
	}
	// An excluded word filters both rankings; the scans stay on their indexes.
	for _, q := range []string{"quasicrystals", "quasicrystals -proteins"} {
		plan, err := s.ExplainHybrid(ctx, sp.ID, q, embs[0].Vector, 10)
		if err != nil {
			t.Fatalf("ExplainHybrid: %v", err)
		}
		if want := "Index Scan using embeddings_hnsw_s" + strconv.FormatInt(sp.ID, 10) + " "; !strings.Contains(plan, want) {
			t.Errorf("hybrid search of %q does not use the space's HNSW index; plan:\n%s", q, plan)
		}
		if !strings.Contains(plan, "papers_tsv_gin") {
			t.Errorf("hybrid search of %q does not use the full-text GIN index; plan:\n%s", q, plan)
		}
	}
	// The plan of a search HybridSearch would refuse is refused as HybridSearch refuses it.
	for _, tc := range []struct {
		name string
		q    string
		vec  []float32
		want error
	}{
		{"a vector of another size", "quasicrystals", embs[0].Vector[:dims-1], paper.ErrSpaceMismatch},
		{"a blank query", "  ", embs[0].Vector, paper.ErrInvalid},
		{"an empty query", "", embs[0].Vector, paper.ErrInvalid},
	} {
		if _, err := s.ExplainHybrid(ctx, sp.ID, tc.q, tc.vec, 10); !errors.Is(err, tc.want) {
			t.Errorf("ExplainHybrid with %s: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := s.HybridSearch(ctx, sp.ID, tc.q, tc.vec, 10); !errors.Is(err, tc.want) {
			t.Errorf("HybridSearch with %s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

func TestListFiltered(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	old := []paper.Abstract{
		topic(1, "Old learning paper", "About learning.", "cs.LG"),
		topic(2, "Old vision paper", "About images.", "cs.CV", "cs.LG"),
	}
	upsert(t, s, old, store.Work{})
	var mid time.Time
	if err := s.Pool().QueryRow(ctx, "SELECT clock_timestamp()").Scan(&mid); err != nil {
		t.Fatal(err)
	}
	fresh := []paper.Abstract{
		topic(3, "New learning paper", "About learning again.", "cs.LG"),
		topic(4, "New language paper", "About words.", "cs.CL"),
		topic(5, "New uncategorised paper", "About learning, without categories."),
	}
	upsert(t, s, fresh, store.Work{})

	ids := func(f store.ListFilter, limit int) []string {
		t.Helper()
		var (
			out    []string
			cursor *store.Cursor
		)
		for range 10 {
			recs, next, err := s.ListFiltered(ctx, f, limit, cursor)
			if err != nil {
				t.Fatalf("ListFiltered(%+v): %v", f, err)
			}
			for _, r := range recs {
				out = append(out, r.ID)
			}
			if next == nil {
				return out
			}
			cursor, err = store.DecodeCursor(next.Encode())
			if err != nil {
				t.Fatal(err)
			}
		}
		t.Fatalf("ListFiltered(%+v) does not end", f)
		return nil
	}
	id := func(ps ...paper.Abstract) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	for _, tc := range []struct {
		name string
		f    store.ListFilter
		want []string
	}{
		{"all", store.ListFilter{}, id(fresh[2], fresh[1], fresh[0], old[1], old[0])},
		{"since", store.ListFilter{Since: mid}, id(fresh[2], fresh[1], fresh[0])},
		{"category", store.ListFilter{Category: "cs.LG"}, id(fresh[0], old[1], old[0])},
		{"category is exact", store.ListFilter{Category: "cs"}, nil},
		{"text", store.ListFilter{Text: "learning"}, id(fresh[2], fresh[0], old[0])},
		{"all three", store.ListFilter{Since: mid, Category: "cs.LG", Text: "learning"}, id(fresh[0])},
	} {
		for _, limit := range []int{1, 2, 100} {
			if got := ids(tc.f, limit); !slices.Equal(got, tc.want) {
				t.Errorf("%s, pages of %d: %v, want %v", tc.name, limit, got, tc.want)
			}
		}
	}
	// A text full-text search ignores whole can match nothing, and says so, as KeywordSearch
	// does; one that merely matches nothing does not.
	for _, f := range []store.ListFilter{{Text: "the of and"}, {Text: `"to be" or -not`}, {Text: "!!! ..."}, {Text: "the", Category: "cs.LG", Since: mid}} {
		if recs, _, err := s.ListFiltered(ctx, f, 5, nil); !errors.Is(err, paper.ErrNoSearchTerms) || len(recs) != 0 {
			t.Errorf("ListFiltered(%+v) = %d papers, %v; want ErrNoSearchTerms", f, len(recs), err)
		}
	}
	if recs, _, err := s.ListFiltered(ctx, store.ListFilter{Text: "wombat"}, 5, nil); err != nil || len(recs) != 0 {
		t.Errorf("ListFiltered(wombat) = %d papers, %v; want none, no error", len(recs), err)
	}
	if _, _, err := s.ListFiltered(ctx, store.ListFilter{}, 0, nil); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("limit 0 = %v, want ErrInvalid", err)
	}
	if _, _, err := s.ListFiltered(ctx, store.ListFilter{Category: "a\x00b"}, 5, nil); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("NUL in category = %v, want ErrInvalid", err)
	}

	cats, err := s.Categories(ctx, 10)
	if err != nil {
		t.Fatal(err)
	}
	want := []store.CategoryCount{{"cs.LG", 3}, {"cs.CL", 1}, {"cs.CV", 1}}
	if !slices.Equal(cats, want) {
		t.Errorf("Categories = %v, want %v", cats, want)
	}
}

// TestListFilteredTextLeavesOutExcludedWordsAsSearchDoes: the listing's text filter reads
// web-search syntax as KeywordSearch does (ListFilter.Text), so a paper with an excluded word
// is left out also when the text has an or: websearch_to_tsquery alone reads "quokka or
// -wombat" as 'quokka' | !'wombat', which lists the papers that say quokka and wombat.
func TestListFilteredTextLeavesOutExcludedWordsAsSearchDoes(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	papers := []paper.Abstract{
		topic(1, "Quokka census", "We count quokkas on the island."),
		topic(2, "Quokka and wombat", "A quokka meets a wombat."),
		topic(3, "Wombat burrows", "A wombat digs in sand."),
		topic(4, "Red kangaroo and wombat", "A red kangaroo passes a wombat."),
		topic(5, "Red kangaroo locomotion", "Hopping is efficient."),
		topic(6, "Island shrubs", "Shrubs grow in sand."),
	}
	upsert(t, s, papers, store.Work{})
	for _, q := range []string{"quokka or -wombat", "quokka -wombat or kangaroo", `kangaroo or -"red kangaroo"`,
		"quokka -wombat", "-wombat", "quokka or kangaroo"} {
		hits, err := s.KeywordSearch(ctx, q, 100)
		if err != nil {
			t.Fatalf("KeywordSearch(%q): %v", q, err)
		}
		want := hitIDs(hits)
		slices.Sort(want)
		recs, next, err := s.ListFiltered(ctx, store.ListFilter{Text: q}, 100, nil)
		if err != nil || next != nil {
			t.Fatalf("ListFiltered(%q): next %v, %v", q, next, err)
		}
		var got []string
		for _, r := range recs {
			got = append(got, r.ID)
		}
		slices.Sort(got)
		if !slices.Equal(got, want) {
			t.Errorf("ListFiltered(text %q) = %v; want the papers KeywordSearch finds: %v", q, got, want)
		}
	}
	// Stated without the oracle: the quokka paper that says wombat is not listed.
	recs, _, err := s.ListFiltered(ctx, store.ListFilter{Text: "quokka or -wombat"}, 100, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if r.ID == papers[1].ID {
			t.Errorf("ListFiltered(text %q) lists %s, which says wombat", "quokka or -wombat", r.ID)
		}
	}
}

func TestMapPointsSampleDeterministically(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "map", 2)
	other := space(t, s, "other", 2)
	ps := abstracts(30)
	ps[0].Categories = []string{"cs.LG", "stat.ML"}
	upsert(t, s, ps, store.Work{})
	embs := make([]paper.Embedding, len(ps))
	for i, p := range ps {
		embs[i] = embeddingOf(p, float32(i), 1)
	}
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SaveEmbeddings(ctx, other.ID, embs[:5]); err != nil {
		t.Fatal(err)
	}
	// A changed abstract makes paper 29's vector stale: it leaves the map.
	changed := ps[29]
	changed.Abstract += " Revised."
	upsert(t, s, []paper.Abstract{changed}, store.Work{})

	all, total, err := s.MapPoints(ctx, sp.ID, 100)
	if err != nil {
		t.Fatalf("MapPoints: %v", err)
	}
	if total != 29 || len(all) != 29 {
		t.Fatalf("MapPoints = %d points of %d, want 29 of 29", len(all), total)
	}
	byID := map[string]store.MapPoint{}
	for _, p := range all {
		byID[p.ID] = p
	}
	if _, ok := byID[ps[29].ID]; ok {
		t.Error("a stale vector is on the map")
	}
	p0 := byID[ps[0].ID]
	if p0.Title != ps[0].Title || !slices.Equal(p0.Categories, ps[0].Categories) || !slices.Equal(p0.Vector, []float32{0, 1}) {
		t.Errorf("point of paper 1 = %+v", p0)
	}
	if p := byID[ps[7].ID]; !slices.Equal(p.Vector, []float32{7, 1}) {
		t.Errorf("point of paper 8 has vector %v, want [7 1]", p.Vector)
	}

	sample, total, err := s.MapPoints(ctx, sp.ID, 10)
	if err != nil || total != 29 || len(sample) != 10 {
		t.Fatalf("MapPoints(10) = %d points of %d, %v", len(sample), total, err)
	}
	again, _, err := s.MapPoints(ctx, sp.ID, 10)
	if err != nil {
		t.Fatal(err)
	}
	ids := func(ps []store.MapPoint) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.ID)
		}
		return out
	}
	if !slices.Equal(ids(sample), ids(again)) {
		t.Errorf("two samples differ: %v vs %v", ids(sample), ids(again))
	}
	// The sample is the first 10 of the full, equally ordered list: a prefix, not a random draw.
	if !slices.Equal(ids(sample), ids(all)[:10]) {
		t.Errorf("sample %v is not the first 10 of %v", ids(sample), ids(all))
	}
	if pts, total, err := s.MapPoints(ctx, other.ID, 100); err != nil || total != 5 || len(pts) != 5 {
		t.Errorf("other space: %d points of %d, %v", len(pts), total, err)
	}
	if _, _, err := s.MapPoints(ctx, sp.ID, 0); !errors.Is(err, paper.ErrInvalid) {
		t.Errorf("MapPoints(0) = %v, want ErrInvalid", err)
	}
}

// A hybrid search reads web-search syntax as the keyword search does: a paper that has an
// excluded word or phrase is in neither ranking, however near its vector is to the query's.
func TestHybridSearchLeavesOutExcludedPapers(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	sp := space(t, s, "hybrid-excl", 3)
	marsupial := topic(1, "A study of marsupials", "We observe quokkas on Rottnest Island over two years.")
	quokka := topic(2, "Quokka behaviour in the wild", "We observe small animals on an island over two years.")
	kangaroo := topic(3, "Red kangaroo herds", "We observe quokkas and kangaroos in the outback.")
	upsert(t, s, []paper.Abstract{marsupial, quokka, kangaroo}, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, []paper.Embedding{
		embeddingOf(marsupial, 1, 0, 0), embeddingOf(quokka, 0, 1, 0), embeddingOf(kangaroo, 0.9, 0, 0.1),
	}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		q    string
		want []string
	}{
		// The vector (1, 0.1, 0) is nearest the excluded papers.
		{"quokka -marsupials", []string{quokka.ID, kangaroo.ID}},
		{`quokka -marsupials -"red kangaroo"`, []string{quokka.ID}},
		{"island --marsupials", []string{marsupial.ID, quokka.ID, kangaroo.ID}}, // -- cancels
		{"quokka", []string{marsupial.ID, quokka.ID, kangaroo.ID}},
	} {
		hits, err := s.HybridSearch(ctx, sp.ID, c.q, []float32{1, 0.1, 0}, 10)
		if err != nil {
			t.Fatal(err)
		}
		got := hitIDs(hits)
		slices.Sort(got)
		if !slices.Equal(got, c.want) {
			t.Errorf("HybridSearch(%q) = %v, want %v", c.q, got, c.want)
		}
	}
	plan, err := s.ExplainHybrid(ctx, sp.ID, "quokka -marsupials", []float32{1, 0.1, 0}, 10)
	if err != nil || !strings.Contains(plan, "papers") {
		t.Errorf("ExplainHybrid with an excluded word: %v\n%s", err, plan)
	}
}

// nearestExcluded is a space of 1,000 papers in which the 300 nearest to query — more than
// the default hnsw.ef_search, 160 — have the word "quasicrystals", and want the 10 nearest
// without it, as an exact search finds them.
type nearestExcluded struct {
	s        *store.Store
	sp       paper.Space
	query    []float32
	excluded map[string]bool
	want     []string
}

func withNearestExcluded(t *testing.T) nearestExcluded {
	t.Helper()
	s := setup(t)
	ctx := t.Context()
	const n, dims, near = 1000, 16, 300
	sp := space(t, s, "nearest-excl", dims)
	r := rand.New(rand.NewPCG(7, 8))
	randomVector := func() []float32 {
		v := make([]float32, dims)
		for j := range v {
			v[j] = r.Float32()*2 - 1
		}
		return v
	}
	query := randomVector()
	ps := abstracts(n)
	vecs := make([][]float32, n)
	for i := range vecs {
		vecs[i] = randomVector()
	}
	order := make([]int, n) // the papers, nearest to the query first
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return cmp.Compare(cosine(query, vecs[b]), cosine(query, vecs[a])) })
	excluded := map[string]bool{}
	for _, i := range order[:near] {
		ps[i].Abstract += " On quasicrystals."
		excluded[ps[i].ID] = true
	}
	embs := make([]paper.Embedding, n)
	for i := range ps {
		embs[i] = embeddingOf(ps[i], vecs[i]...)
	}
	upsert(t, s, ps, store.Work{})
	if _, err := s.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Pool().Exec(ctx, "ANALYZE papers; ANALYZE embeddings"); err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, i := range order[near : near+10] {
		want = append(want, ps[i].ID)
	}
	return nearestExcluded{s: s, sp: sp, query: query, excluded: excluded, want: want}
}

// A hybrid search's semantic ranking drops the papers with an excluded word in its index scan,
// which walks on for more: with the 300 nearest papers excluded (and no keyword match), the
// fusion still gets the nearest papers without the word. Filtered after the scan, it got none.
func TestHybridSearchLeavesOutExcludedPapersInItsIndexScan(t *testing.T) {
	t.Parallel()
	ne := withNearestExcluded(t)
	hits, err := ne.s.HybridSearch(t.Context(), ne.sp.ID, "xylophonic -quasicrystals", ne.query, 10)
	if err != nil {
		t.Fatal(err)
	}
	found := 0
	for _, h := range hits {
		if ne.excluded[h.ID] {
			t.Errorf("HybridSearch answers %s, which has the excluded word", h.ID)
		}
		if slices.Contains(ne.want, h.ID) {
			found++
		}
	}
	if len(hits) != 10 || found < 8 {
		t.Errorf("HybridSearch = %v, want 10 papers holding most of the 10 nearest without the word %v", hitIDs(hits), ne.want)
	}
	plan, err := ne.s.ExplainHybrid(t.Context(), ne.sp.ID, "xylophonic -quasicrystals", ne.query, 10)
	if err != nil {
		t.Fatal(err)
	}
	if want := "Index Scan using embeddings_hnsw_s" + strconv.FormatInt(ne.sp.ID, 10) + " "; !strings.Contains(plan, want) {
		t.Errorf("a hybrid search with an excluded word does not scan the space's HNSW index; plan:\n%s", plan)
	}
}

// A semantic search reads web-search syntax as the hybrid search does: a paper that has an
// excluded word or phrase is not a result, however near its vector is to the query's. The
// papers are left out as the HNSW index scan returns them, which walks on for more: when the
// papers nearest to the query, more than hnsw.ef_search of them, all have the excluded word,
// the search still answers k papers, the nearest without it.
func TestSemanticSearchLeavesOutExcludedPapers(t *testing.T) {
	t.Parallel()
	ne := withNearestExcluded(t)
	s, sp, query, excluded, want, ctx := ne.s, ne.sp, ne.query, ne.excluded, ne.want, t.Context()
	dims := sp.Dimensions

	// Without the exclusion the nearest papers are the ones with the word.
	hits, err := s.SemanticSearch(ctx, sp.ID, "problem", query, 10)
	if err != nil || len(hits) != 10 || !excluded[hits[0].ID] {
		t.Fatalf("SemanticSearch(problem) = %v, %v; want 10 papers, the nearest with quasicrystals", hitIDs(hits), err)
	}
	for _, q := range []string{"problem -quasicrystals", `problem -quasicrystals -"no such phrase"`} {
		hits, err := s.SemanticSearch(ctx, sp.ID, q, query, 10)
		if err != nil {
			t.Fatalf("SemanticSearch(%q): %v", q, err)
		}
		if len(hits) != 10 {
			t.Errorf("SemanticSearch(%q) = %d papers, want 10", q, len(hits))
		}
		found := 0
		for i, h := range hits {
			if excluded[h.ID] {
				t.Errorf("SemanticSearch(%q) answers %s, which has the excluded word", q, h.ID)
			}
			if slices.Contains(want, h.ID) {
				found++
			}
			if i > 0 && h.Score > hits[i-1].Score {
				t.Errorf("SemanticSearch(%q): scores not in decreasing order: %v", q, hits)
			}
		}
		// The index is approximate: most of the exact answer is enough.
		if found < 8 {
			t.Errorf("SemanticSearch(%q) = %v, holds %d of the 10 nearest papers without the word %v", q, hitIDs(hits), found, want)
		}
	}
	// The search with an exclusion is still answered from the space's HNSW index.
	plan, err := s.ExplainSemantic(ctx, sp.ID, "problem -quasicrystals", query, 10)
	if err != nil {
		t.Fatalf("ExplainSemantic: %v", err)
	}
	if want := "Index Scan using embeddings_hnsw_s" + strconv.FormatInt(sp.ID, 10) + " "; !strings.Contains(plan, want) {
		t.Errorf("a semantic search with an excluded word does not scan the space's HNSW index; plan:\n%s", plan)
	}
	// What SemanticSearch refuses, ExplainSemantic refuses.
	for _, tc := range []struct {
		name string
		q    string
		vec  []float32
		want error
	}{
		{"a vector of another size", "problem", query[:dims-1], paper.ErrSpaceMismatch},
		{"an empty query", "  ", query, paper.ErrInvalid},
	} {
		if _, err := s.SemanticSearch(ctx, sp.ID, tc.q, tc.vec, 10); !errors.Is(err, tc.want) {
			t.Errorf("SemanticSearch with %s: %v, want %v", tc.name, err, tc.want)
		}
		if _, err := s.ExplainSemantic(ctx, sp.ID, tc.q, tc.vec, 10); !errors.Is(err, tc.want) {
			t.Errorf("ExplainSemantic with %s: %v, want %v", tc.name, err, tc.want)
		}
	}
}

// A category filter is read as a category is stored: ingest (and the API's records) store each
// category in NFC with its white space folded, and list --category, ?category= and export
// --category compared the filter as typed, so "Física" typed decomposed (e and a combining
// accent, as some keyboards and file names give it) or "Machine  Learning" found none of the
// papers the category list shows under the same name.
func TestCategoryFilterIsFoldedAsCategoriesAreStored(t *testing.T) {
	t.Parallel()
	s := setup(t)
	ctx := t.Context()
	ps := []paper.Abstract{
		topic(1, "A physics paper", "About matter.", "Física"),
		topic(2, "A learning paper", "About learning.", "Machine Learning"),
	}
	upsert(t, s, ps, store.Work{})
	for _, tc := range []struct{ category, want string }{
		{"Fi\u0301sica", ps[0].ID},
		{"Machine  Learning", ps[1].ID},
		{"Machine\u00a0Learning", ps[1].ID},
	} {
		recs, _, err := s.ListFiltered(ctx, store.ListFilter{Category: tc.category}, 10, nil)
		if err != nil || len(recs) != 1 || recs[0].ID != tc.want {
			t.Errorf("ListFiltered(category %+q) = %d papers, %v; want %s", tc.category, len(recs), err, tc.want)
		}
		var got []string
		if err := s.Export(ctx, store.ExportSelection{Category: tc.category}, nil, func(p store.ExportedPaper) error {
			got = append(got, p.ID)
			return nil
		}); err != nil || !slices.Equal(got, []string{tc.want}) {
			t.Errorf("Export(category %+q) = %v, %v; want %s", tc.category, got, err, tc.want)
		}
	}
}
