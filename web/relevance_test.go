package web_test

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"testing"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/web"
)

// judgement is a query a reader of the sample archive might type, and the papers that answer
// it: title fragments of the sample papers, any of which is a right answer. why says how the
// judgement was made.
type judgement struct {
	kind string
	q    string
	want []string
	why  string
}

// The LoRA papers of the sample: low-rank adaptation is their method or their subject.
var loraPapers = []string{"Higher Layers Need More LoRA", "LQ-LoRA", "LLaVA-MoLE", "NLoRA",
	"LoLDU", "IncreLoRA", "Initialization using Update Approximation"}

// The sample's papers on mixtures of experts (in title).
var moePapers = []string{"A Survey on Mixture of Experts", "Demons in the Detail", "Branch-Train-Merge",
	"Every FLOP Counts", "Scalable and Efficient MoE Training", "BAM! Just Like That", "Read-ME",
	"Uni-MoE", "MC-MoE", "Higher Layers Need More LoRA", "LLaVA-MoD", "DMoERM", "UOE:",
	"LLaVA-MoLE", "MoE-LLaVA"}

// The sample's papers on multimodal large language models (in title).
var mllmPapers = []string{"Accelerating Multimodal Large Language Models", "InfMLLM", "MIBench",
	"MMMT-IF", "Multimodal Mamba", "MANTIS", "Uni-MoE", "SemiHVision", "ARMOR", "ProVision",
	"T2Vid", "Multimodal Needle", "MaTVLM", "A Review of Multi-Modal", "LLaVA-MoD",
	"StreamingBench", "Align^2LLaVA", "MM-Instruct", "Aligning Multimodal LLM", "Pixel-Level Insight",
	"LLaVA-MoLE", "MMEvol", "MoE-LLaVA", "POINTS:", "NoteLLM-2", "MLLM-DataEngine"}

// judged is the judged query set of the sample archive (testdata/sample-papers.txt, 108
// papers, read whole to judge): each query has the papers a reader typing it looks for.
var judged = []judgement{
	// Exact titles, pasted: the paper itself is the one answer, and belongs first.
	{"exact title", "Scaling Sparse Fine-Tuning to Large Language Models", []string{"Scaling Sparse Fine-Tuning"}, "the paper's title"},
	{"exact title", "A Survey on Mixture of Experts", []string{"A Survey on Mixture of Experts"}, "the paper's title; 15 other papers are on MoE"},
	{"exact title", "Higher Layers Need More LoRA Experts", []string{"Higher Layers Need More LoRA"}, "the paper's title"},
	{"exact title", "Forget What You Know about LLMs Evaluations - LLMs are Like a Chameleon", []string{"Forget What You Know"}, "the paper's title, with its ' - '"},
	{"exact title", "1.5-Pints Technical Report: Pretraining in Days, Not Months -- Your Language Model Thrives on Quality Data", []string{"1.5-Pints"}, "the paper's title, with its ' -- '"},
	{"exact title", "Does your data spark joy? Performance gains from domain upsampling at the end of training", []string{"spark joy"}, "the paper's title"},
	{"exact title", "To Repeat or Not To Repeat: Insights from Scaling LLM under Token-Crisis", []string{"To Repeat or Not"}, "the paper's title, with an 'or' in it"},
	{"exact title", "Scattered or Connected? An Optimized Parameter-efficient Tuning Approach for Information Retrieval", []string{"Scattered or Connected"}, "the paper's title, with an 'or' in it"},
	{"exact title", "Large Batch Optimization for Deep Learning: Training BERT in 76 minutes", []string{"Training BERT in 76"}, "the paper's title"},
	{"exact title", "Split & Merge: Unlocking the Potential of Visual Adapters via Sparse Training", []string{"Split & Merge"}, "the paper's title, with an '&'"},
	{"exact title", "S^{2}FT: Efficient, Scalable and Generalizable LLM Fine-tuning by Structured Sparsity", []string{"S^{2}FT"}, "the paper's title, with TeX"},
	{"exact title", "E^2-LLM: Efficient and Extreme Length Extension of Large Language Models", []string{"E^2-LLM"}, "the paper's title, with TeX"},
	{"exact title", "medusa: simple llm inference acceleration framework with multiple decoding heads", []string{"Medusa"}, "the paper's title, lower-cased"},
	{"exact title", "Unraveling the Mystery of Scaling Laws: Part I", []string{"Unraveling the Mystery"}, "the paper's title"},
	// Title fragments: a reader remembers part of a title.
	{"title fragment", "Activation Beacon", []string{"Activation Beacon"}, "two words of one title, in no other paper"},
	{"title fragment", "needle in a haystack", []string{"Multimodal Needle in a Haystack"}, "an idiom only that title has"},
	{"title fragment", "Power Scheduler", []string{"Power Scheduler"}, "its title's name"},
	{"title fragment", "Demons in the Detail", []string{"Demons in the Detail"}, "its title's opening"},
	{"title fragment", "spark joy", []string{"spark joy"}, "its title's phrase"},
	// Acronyms of methods.
	{"acronym", "LoRA", loraPapers, "low-rank adaptation is their method or subject"},
	{"acronym", "MoE", moePapers, "mixture of experts is their subject"},
	{"acronym", "MLLM", mllmPapers, "multimodal LLMs are their subject"},
	{"acronym", "PEFT", []string{"IncreLoRA", "LoLDU", "NLoRA", "Scattered or Connected", "Scaling Sparse Fine-Tuning", "HFT:", "S^{2}FT", "LiST:"}, "parameter-efficient fine-tuning is their method"},
	{"acronym", "QAT", []string{"EfficientQAT"}, "quantization-aware training, that paper's method"},
	{"acronym", "BERT", []string{"Training BERT in 76"}, "the only paper about training BERT"},
	{"acronym", "VLM prompt learning", []string{"Active Prompt Learning in Vision Language Models"}, "its subject; its abstract says VLMs"},
	{"acronym", "MLLM benchmark multiple images", []string{"MIBench"}, "its subject; its abstract says MLLMs"},
	{"acronym", "RLHF reward model", []string{"DMoERM"}, "the archive's one paper on reward models"},
	// Misspellings: one word wrong, the rest right.
	{"misspelling", "Matryoshka embedings", []string{"Starbucks"}, "its title's Matryoshka Embeddings"},
	{"misspelling", "survey of mixture of experst", []string{"A Survey on Mixture of Experts"}, "experts misspelt"},
	{"misspelling", "Vietnames chatbot", []string{"Vietnamese Chatbot"}, "Vietnamese misspelt"},
	// Questions in plain words.
	{"question", "how do I train a language model on more than ten thousand GPUs?", []string{"MegaScale", "ByteScale", "Optimizing Distributed Training on Frontier"}, "training at that scale is their subject"},
	{"question", "how can a mixture of experts model be compressed?", []string{"MC-MoE", "LLaVA-MoD"}, "compressing MoE models is their subject"},
	{"question", "how to extend the context window of an LLM", []string{"Activation Beacon", "E^2-LLM", "ByteScale"}, "context extension is their subject"},
	{"question", "which learning rate schedule works for any batch size?", []string{"Power Scheduler"}, "its subject"},
	// Paragraphs pasted from an abstract.
	{"abstract paragraph", "Large Language Models (LLMs) are difficult to fully fine-tune (e.g., with instructions or human feedback) due to their sheer number of parameters. A family of parameter-efficient sparse fine-tuning (SFT) methods have proven promising in terms of performance but their memory requirements increase proportionally to the size of the LLMs.", []string{"Scaling Sparse Fine-Tuning"}, "the opening of its abstract"},
	{"abstract paragraph", "The training data for fine-tuning large language models (LLMs) is typically structured as input-output pairs. However, for many tasks, there can be multiple equally valid output variations for the same input.", []string{"Efficient Response Generation Method Selection"}, "the opening of its abstract"},
	// Other languages.
	{"other language", "chatbot vietnamien", []string{"Vietnamese Chatbot"}, "French; chatbot is the same word"},
	{"other language", "mélange d'experts multimodal", []string{"Uni-MoE", "MoE-LLaVA", "LLaVA-MoD", "LLaVA-MoLE"}, "French; multimodal and experts are the same words"},
	// Quoted phrases.
	{"quoted phrase", `"knowledge distillation"`, []string{"Compact Language Models via Pruning and Knowledge Distillation", "LLaVA-MoD", "Multimodal Mamba"}, "the phrase is their method"},
	{"quoted phrase", `"load balancing"`, []string{"Demons in the Detail"}, "the phrase is its subject"},
	{"quoted phrase", `"scaling laws"`, []string{"Unraveling the Mystery of Scaling Laws"}, "the phrase is its subject"},
	// Hyphenated terms.
	{"hyphenated", "chain-of-thought", []string{"Training Chain-of-Thought"}, "its title's term"},
	{"hyphenated", "training-free fine-tuning", []string{"Dynamic Sparse No Training"}, "its title's terms"},
	{"hyphenated", "multi-image instruction tuning", []string{"MANTIS"}, "its title's terms"},
	{"hyphenated", "Mixture-of-Experts", moePapers, "mixture of experts is their subject"},
	// A hyphenated word finds the word written joined (multi-modal finds multimodal) or apart
	// (mixture of experts); a joined word finds it hyphenated when a hyphen often follows its
	// prefix or precedes its suffix (pretraining finds pre-training; store.hyphenatedForms).
	{"hyphenated", "multi-modal needle in a haystack", []string{"Multimodal Needle in a Haystack"}, "its title, with a hyphen it does not have"},
	{"hyphenated", "pre-training sample reweighting", []string{"Sample Reweighting for Improved"}, "its title, with a hyphen it does not have"},
	{"hyphenated", "sparse plus low-rank pre-training", []string{"SLTrain"}, "its title, with a hyphen it does not have"},
	{"hyphenated", "multi-modal state space model", []string{"Multimodal Mamba"}, "its title, with a hyphen it does not have"},
	{"hyphenated", "fine-tuning by quantized matrix decomposition", []string{"LQ-LoRA"}, "its title, with a hyphen it does not have"},
	{"hyphenated", "mixture-of-experts survey", []string{"A Survey on Mixture of Experts"}, "its title, with hyphens it does not have"},
	{"hyphenated", "pretraining model growth", []string{"Stacking Your Transformers"}, "its title says Pre-Training and Model Growth"},
	{"hyphenated", "scaling sparse finetuning", []string{"Scaling Sparse Fine-Tuning"}, "its title, joined: it writes Fine-Tuning"},
	{"hyphenated", "transductive fewshot learning", []string{"Transductive Few-Shot"}, "its title, joined: it writes Few-Shot"},
	{"number", "nemotron 4 pruning", []string{"Compact Language Models via Pruning"}, "its abstract's Nemotron-4, typed apart"},
	{"number", "llama3 8b retraining", []string{"Compact Language Models via Pruning"}, "its abstract compares with Llama-3 8B after re-training"},
	{"hyphenated", "trainingfree finetuning", []string{"Dynamic Sparse No Training"}, "its title, joined: it writes Training-Free Fine-tuning"},
	// TeX and Unicode.
	{"tex/unicode", "Nyström", []string{"NLoRA"}, "the word of its title"},
	{"tex/unicode", "Nystrom initialization", []string{"NLoRA"}, "its title's Nyström-Initiated, typed without the accent"},
	// A word matches with or without its accents (store: paperpipe_english folds them).
	{"tex/unicode", "Nystrom", []string{"NLoRA"}, "the word of its title, typed without the accent"},
	{"tex/unicode", "Nystrom-initiated low-rank adaptation", []string{"NLoRA"}, "its title, typed without the accent"},
	{"tex/unicode", "nystrom method", []string{"NLoRA"}, "its abstract's Nyström method, typed without the accent"},
	{"tex/unicode", "S2FT", []string{"S^{2}FT"}, "its name as people type it"},
	{"tex/unicode", "E2-LLM", []string{"E^2-LLM"}, "its name as people type it"},
	{"tex/unicode", "Align2LLaVA", []string{"Align^2LLaVA"}, "its name as people type it"},
}

// judgedRank returns the rank (1-based) of the first paper of want among hits, 0 when none
// is there.
func judgedRank(hits []paper.Hit, want map[string]bool) int {
	for i, h := range hits {
		if want[h.ID] {
			return i + 1
		}
	}
	return 0
}

// judgedScores are the figures of one mode over the judged set.
type judgedScores struct {
	n, hit1, hit10 int
	mrr            float64
}

func (s judgedScores) String() string {
	return fmt.Sprintf("hit@1 %d/%d, hit@10 %d/%d, MRR %.3f", s.hit1, s.n, s.hit10, s.n, s.mrr/float64(s.n))
}

// TestJudgedQueries measures every search mode on the judged set through GET /api/search (what
// the pages and `paperpipe search` run too) with the hashed offline model, the model `paperpipe
// fit` makes of the sample, and the fake embedding API's vectors; it logs each query's rank and
// each mode's hit@1, hit@10 and MRR (go test -v -run TestJudgedQueries ./web), and fails when a
// mode's hit@1 falls below the one measured (judgedFloors).
func TestJudgedQueries(t *testing.T) {
	t.Parallel()
	t.Run("offline", func(t *testing.T) {
		t.Parallel()
		measureJudged(t, "offline", withSample(t), []string{web.ModeKeyword, web.ModeSemantic, web.ModeHybrid})
	})
	t.Run("offline v2", func(t *testing.T) {
		t.Parallel()
		measureJudged(t, "offline v2", sampleEmbeddedBy(t, embed.NewOfflineV2()), []string{web.ModeSemantic, web.ModeHybrid})
	})
	t.Run("fitted", func(t *testing.T) {
		t.Parallel()
		measureJudged(t, "fitted", fittedSample(t), []string{web.ModeSemantic, web.ModeHybrid})
	})
	t.Run("api", func(t *testing.T) {
		t.Parallel()
		measureJudged(t, "fake API", apiSample(t), []string{web.ModeSemantic, web.ModeHybrid})
	})
}

// apiSample is a bundle whose archive, the whole sample, is embedded by the fake embedding
// API (internal/openaitest: a random projection of the text's word counts, 256 dimensions),
// active, and served with that model as the query embedder.
func apiSample(t *testing.T) *bundle {
	t.Helper()
	ai := openaitest.Start(t, openaitest.Config{})
	client, err := embed.New(embed.Config{BaseURL: ai.URL(), APIKey: "test", Model: "text-embedding-3-small", Dimensions: 256})
	if err != nil {
		t.Fatal(err)
	}
	return sampleEmbeddedBy(t, client)
}

// sampleEmbeddedBy is a bundle whose archive, the whole sample, is embedded by emb in its
// space, active, and served with emb as the query embedder.
func sampleEmbeddedBy(t *testing.T, emb interface {
	web.QueryEmbedder
	Embed(ctx context.Context, papers []paper.Abstract) ([]paper.Embedding, paper.Usage, error)
}) *bundle {
	t.Helper()
	b := newBundle(t)
	ctx := t.Context()
	papers := sampledata.Papers(t)
	if _, err := b.st.UpsertPapers(ctx, papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	sp, err := b.st.EnsureSpace(ctx, emb.Space())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.Activate(ctx, sp.ID); err != nil {
		t.Fatal(err)
	}
	embs, _, err := emb.Embed(ctx, papers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	cfg := b.config()
	cfg.Embedder = emb
	b.serve(cfg)
	return b
}

// fittedSample is a bundle whose archive, the whole sample, is embedded by the offline model
// fitted on it (what `paperpipe fit` makes: TF-IDF with the archive's document frequencies),
// active, and served with that model as the query embedder.
func fittedSample(t *testing.T) *bundle {
	t.Helper()
	papers := sampledata.Papers(t)
	docs := make([]string, len(papers))
	for i, p := range papers {
		docs[i] = embed.TitleAbstract(p)
	}
	m, _, err := embed.Fit(docs, 0)
	if err != nil {
		t.Fatal(err)
	}
	return sampleEmbeddedBy(t, m)
}

// measureJudged runs the judged set in each of modes on b's server and logs the figures.
func measureJudged(t *testing.T, embedder string, b *bundle, modes []string) {
	sample := sampledata.Papers(t)
	for _, mode := range modes {
		var sc judgedScores
		for _, j := range judged {
			want := map[string]bool{}
			for _, f := range j.want {
				want[idOf(t, sample, f)] = true
			}
			var res hitsBody
			r := b.get("/api/search?" + url.Values{"q": {j.q}, "k": {"10"}, "mode": {mode}}.Encode())
			if r.code != http.StatusOK && r.code != http.StatusBadRequest {
				t.Fatalf("%s %q: %d %s", mode, j.q, r.code, r.body)
			}
			if r.code == http.StatusOK {
				r.json(t, &res)
			}
			rank := judgedRank(res.Results, want)
			sc.n++
			if rank == 1 {
				sc.hit1++
			}
			if rank > 0 {
				sc.hit10++
				sc.mrr += 1 / float64(rank)
			}
			top := ""
			if len(res.Results) > 0 {
				top = res.Results[0].Title
			}
			t.Logf("%s %-8s %-18s rank %2d  %.50q  (first: %.50q)", embedder, mode, j.kind, rank, j.q, top)
		}
		t.Logf("%s, %s: %s", embedder, mode, sc)
		if floor, ok := judgedFloors[embedder+", "+mode]; ok && sc.hit1 < floor {
			t.Errorf("%s, %s: hit@1 %d/%d, below the %d measured on 2026-12-06: a query the set judges is no longer answered first (the log has each query's rank)",
				embedder, mode, sc.hit1, sc.n, floor)
		}
	}
}

// judgedFloors are the hit@1 of the judged set measured on 2026-12-06, by embedder and mode:
// the searches are deterministic, so fewer is a query answered worse than it was. (Before that
// day's fixes — a dash with a space after it read as an exclusion, ts_rank's ties at 1, an
// acronym that did not find its plural — they
// were 36 keyword, 39 semantic and 43 hybrid with the hashed offline model; 48 and 47 fitted; 30
// and 39 with the fake API, of 53 queries. Of the 58 with the five hyphenated ones added, before
// a hyphenated word found the word written joined or apart: 40 keyword, 48 hybrid offline, 53
// fitted, 44 with the fake API. Of the 61 with three joined ones added, before a joined word
// found it hyphenated: 46 keyword, 52 hybrid offline, 56 fitted, 48 with the fake API. Of the 63
// with two numbers added, before a number found it after a hyphen (Nemotron-4, Llama-3): 50
// keyword, 53 hybrid offline, 59 fitted, 50 with the fake API. Of the 66 with three Nyström
// queries typed without the accent added, before keyword search folded accents: 53 keyword, 56
// hybrid offline, 61 fitted, 54 with the fake API.) "offline v2" is the hashed model's second
// version (accents folded: one more Nyström query first in each mode), measured on 2026-12-07;
// "fitted" is since that day a fit on v2's terms (fitted format 2), which raised it from 58
// semantic and 63 hybrid.
var judgedFloors = map[string]int{
	"offline, keyword": 57, "offline, semantic": 47, "offline, hybrid": 58,
	"offline v2, semantic": 48, "offline v2, hybrid": 59,
	"fitted, semantic": 61, "fitted, hybrid": 64,
	"fake API, semantic": 33, "fake API, hybrid": 56,
}

// Each sample paper's title, pasted whole, finds that paper first in keyword and hybrid mode
// (semantic mode with the hashed offline model finds 104 of the 108 first: its hashing noise,
// see README, The offline embedder). Before 2026-12-06 three did not: ts_rank gave the title's
// paper and another the same score, 1, and the tie went by id; and a title with " - " excluded
// its own word.
func TestEveryTitleFindsItsPaperFirst(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	for _, mode := range []string{web.ModeKeyword, web.ModeHybrid} {
		for _, p := range sampledata.Papers(t) {
			var res hitsBody
			r := b.get("/api/search?" + url.Values{"q": {p.Title}, "k": {"10"}, "mode": {mode}}.Encode())
			r.json(t, &res)
			if r.code != http.StatusOK || res.Mode != mode {
				t.Fatalf("%s search of %q: %d %s", mode, p.Title, r.code, r.body)
			}
			if rank := judgedRank(res.Results, map[string]bool{p.ID: true}); rank != 1 {
				first := ""
				if len(res.Results) > 0 {
					first = fmt.Sprintf("%q (%.4f)", res.Results[0].Title, res.Results[0].Score)
				}
				t.Errorf("%s search of the title %q: its paper is at rank %d of 10 (0: absent); first %s", mode, p.Title, rank, first)
			}
		}
	}
}
