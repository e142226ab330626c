package summarize

import (
	"errors"
	"strings"
	"testing"

	"github.com/paperpipe/paperpipe/paper"
)

const zhAbstract = "我们提出了一种降低大型模型训练成本的方法。我们在多个基准上验证了它的效果。"

const enAbstract = `Large language models are expensive to train. In this paper, we propose a method that
reduces the cost of training by half. We show that the method works on several benchmarks and
that the results hold for models of different sizes.`

const deAbstract = `Große Sprachmodelle sind teuer im Training. In dieser Arbeit stellen wir eine Methode vor,
die die Kosten des Trainings halbiert. Wir zeigen, dass die Methode auf mehreren Benchmarks
funktioniert und dass die Ergebnisse für Modelle verschiedener Größe gelten.`

func TestSentences(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want int
	}{
		{"One sentence.", 1},
		{"One sentence without a stop", 1},
		{"First. Second.", 2},
		{"Is it? Yes!", 2},
		{"Models, e.g. GPT-4, are big.", 1},
		{"Models, e.g., GPT-4, are big.", 1},
		{"That is, i.e. Large ones, cost more.", 1},
		{"Smith et al. Show that it works.", 1},
		{"Smith et al. show that it works.", 1},
		{"Accuracy rises from 3.5 to 4.2 points.", 1},
		{"Ours vs. Theirs: a comparison.", 1},
		{"See Fig. 3 for details.", 1},
		{"Trained in the U.S. On weekends.", 1},
		{"Code at arxiv.org today. It works.", 2},
		{"It ends (as shown.) Then more.", 2},
		{`He said "stop." Then left.`, 2},
		{"It beats the baseline.Based on this, we win.", 2},
		{"Between matrices A and B. Secondly, we propose X.", 2},
		{"Para one\n\nPara two", 2},
		{"这是第一句。这是第二句。", 2},
		// Other scripts' sentence marks end a sentence, with or without a space after them.
		{"提案手法を示す．実験で確かめた．", 2},
		{"本当か？！次に進む。", 2},
		{"هل يمكن تقليل التكلفة؟ نقترح طريقة جديدة.", 2},
		{"یک روش جدید پیشنهاد می\u200cکنیم۔ آزمایش\u200cها آن را تأیید می\u200cکنند۔", 2},
		{"यह पहला वाक्य है। यह दूसरा वाक्य है।", 2},
		{"Τι είναι αυτό; Μια νέα μέθοδος.", 2},
		{"", 0},
	} {
		if got := Sentences(tc.in); len(got) != tc.want {
			t.Errorf("Sentences(%q) = %q (%d), want %d", tc.in, got, len(got), tc.want)
		}
	}
}

func TestValidate(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("word ", 31) + "end."
	for _, tc := range []struct {
		name, tldr, abstract string
		wantErr              string // "" = valid
	}{
		{"valid", "Halving training cost with a simple method that works across model sizes.", enAbstract, ""},
		{"valid no final stop", "Halving training cost with a simple method", enAbstract, ""},
		{"valid e.g. inside", "Cheap training for big models, e.g. GPT-style transformers, at half the cost.", enAbstract, ""},
		{"valid decimal", "Improves accuracy by 3.5 points over the baseline.", enAbstract, ""},
		{"valid et al.", "Extends the method of Smith et al. to larger models.", enAbstract, ""},
		{"valid vs.", "Compares dense vs. sparse training at equal cost.", enAbstract, ""},
		{"valid exactly 30 words", strings.TrimSpace(strings.Repeat("word ", 29)) + " end.", enAbstract, ""},
		{"empty", "  ", enAbstract, "empty"},
		{"two sentences", "It halves cost. It works well.", enAbstract, "2 sentences"},
		{"too long", long, enAbstract, "32 words"},
		{"newline", "Halves cost\nfor models.", enAbstract, "more than one line"},
		{"sure", "Sure! It halves the training cost.", enAbstract, "preamble"},
		{"sure here", "Sure here is the TL;DR: it halves the training cost.", enAbstract, "preamble"},
		{"certainly", "Certainly, it halves the training cost.", enAbstract, "preamble"},
		{"SURE is a name", "SURE estimates the denoising risk without any ground truth.", enAbstract, ""},
		{"absolutely continuous", "Absolutely continuous flows model the densities of images exactly.", enAbstract, ""},
		{"here is", "Here is a summary of the paper that halves cost.", enAbstract, "preamble"},
		{"here's", "Here's the TL;DR of it all.", enAbstract, "preamble"},
		{"tldr label", "TL;DR: a method halves the training cost.", enAbstract, "preamble"},
		{"summary label", "Summary: a method halves the training cost.", enAbstract, "preamble"},
		{"this paper", "This paper proposes a method that halves cost.", enAbstract, "preamble"},
		{"in this paper", "In this paper, a method halves cost.", enAbstract, "preamble"},
		{"the authors", "The authors propose a method that halves cost.", enAbstract, "preamble"},
		{"bold", "A method that **halves** training cost.", enAbstract, "markdown"},
		{"underscore bold", "A method that __halves__ training cost.", enAbstract, "markdown"},
		{"code", "A `method` that halves training cost.", enAbstract, "markdown"},
		{"heading", "# A method that halves training cost.", enAbstract, "markdown"},
		{"bullet dash", "- A method that halves training cost.", enAbstract, "markdown"},
		{"bullet star", "* A method that halves training cost.", enAbstract, "markdown"},
		{"quoted", `"A method that halves training cost."`, enAbstract, "quotes"},
		{"quoted curly", `“A method that halves training cost”.`, enAbstract, "quotes"},
		{"inner quotes ok", `A "cheap" method that halves training cost.`, enAbstract, ""},
		{"latex quotes ok", "Prompts models with a ``chain-of-thought'' to answer step by step.", enAbstract, ""},
		{"snake_case ok", "Tunes the learning_rate schedule to halve training cost.", enAbstract, ""},
		{"okvqa not preamble", "OK-VQA questions get answered at half the cost.", enAbstract, ""},
		{"german for english", "Eine Methode, die die Kosten des Trainings für große Modelle halbiert.", enAbstract, "language de"},
		{"english for german", "A method that halves the cost of training for all of the large models.", deAbstract, "language en"},
		{"german for german", "Eine Methode, die die Kosten des Trainings für große Modelle halbiert.", deAbstract, ""},
		{"russian for english", "Метод, который вдвое снижает стоимость обучения больших моделей.", enAbstract, "language cyrillic"},
		{"unknown language never rejects", "LoRA-SB: 2x faster.", enAbstract, ""},
		{"summary- compound ok", "Summary-statistics methods halve the training cost of large models.", enAbstract, ""},
		{"answer- compound ok", "Answer-set programming solvers run twice as fast with learned heuristics.", enAbstract, ""},
		{"the paper- compound ok", "The paper-and-pencil test shows that large models fail at arithmetic.", enAbstract, ""},
		{"this work- compound ok", "This work-stealing scheduler halves the training cost of large models.", enAbstract, ""},
		{"summary dash label", "Summary — a method halves the training cost.", enAbstract, "preamble"},
		{"abstract label", "Abstract: a method halves the training cost of large models.", enAbstract, "preamble"},
		{"abstract- compound ok", "Abstract-syntax trees make code models twice as accurate.", enAbstract, ""},
		{"NUL byte", "Halves the training cost\x00 of large models.", enAbstract, "control or invisible"},
		{"escape sequence", "Halves the \x1b[31mtraining cost\x1b[0m of large models.", enAbstract, "control or invisible"},
		{"bidi override", "Halves the training cost of large \u202emodels.", enAbstract, "control or invisible"},
		{"zero-width space", "Halves the training\u200b cost of large models.", enAbstract, "control or invisible"},
		{"replacement character", "Halves the training cost of \ufffd\ufffd models.", enAbstract, "control or invisible"},
		{"soft hyphen", "Halves the train\u00ading cost of large models.", enAbstract, "control or invisible"},
		// The joiners and the marks of right-to-left text are how some languages are written.
		{"persian with zero-width non-joiners", "روشی جدید که هزینهٔ آموزش مدل\u200cهای زبانی بزرگ را نصف می\u200cکند.", "", ""},
		{"emoji sequence with zero-width joiners", "A coding assistant \U0001F469\u200d\U0001F4BB halves the training cost of large models.", enAbstract, ""},
		{"hebrew with right-to-left mark", "שיטה שמקטינה את עלות האימון ב\u200f-50%.", "", ""},
		{"chinese over the limit", strings.Repeat("我们提出了一种降低大型模型训练成本的方法并且", 10) + "。", zhAbstract, "words"},
		{"chinese within the limit", "一种将大型模型训练成本减半的简单方法。", zhAbstract, ""},
		{"arabic question then answer", "هل يمكن تقليل تكلفة التدريب؟ نقترح طريقة جديدة تقللها إلى النصف.", "", "2 sentences"},
		{"hindi two sentences", "यह विधि लागत को आधा करती है। प्रयोग इसकी पुष्टि करते हैं।", "", "2 sentences"},
		{"japanese two sentences", "学習コストを半減する手法を提案する．実験で効果を確かめた．", "", "2 sentences"},
		{"hindi one sentence", "यह विधि बड़े मॉडलों के प्रशिक्षण की लागत को आधा करती है।", "", ""},
	} {
		err := Validate(tc.tldr, tc.abstract, 30)
		switch {
		case tc.wantErr == "" && err != nil:
			t.Errorf("%s: Validate(%q) = %v, want valid", tc.name, tc.tldr, err)
		case tc.wantErr != "" && err == nil:
			t.Errorf("%s: Validate(%q) = nil, want error containing %q", tc.name, tc.tldr, tc.wantErr)
		case tc.wantErr != "" && !strings.Contains(err.Error(), tc.wantErr):
			t.Errorf("%s: Validate(%q) = %v, want error containing %q", tc.name, tc.tldr, err, tc.wantErr)
		case err != nil && !errors.Is(err, ErrInvalidTLDR):
			t.Errorf("%s: error %v does not wrap ErrInvalidTLDR", tc.name, err)
		}
	}
}

// Markdown emphasis around words is not refused (a second request costs), but not stored.
func TestNormalizeRemovesEmphasis(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"A *sparse* router halves the training cost", "A sparse router halves the training cost."},
		{"_Mamba_ layers replace half of the *attention layers*.", "Mamba layers replace half of the attention layers."},
		{"Tunes the learning_rate schedule to halve training cost.", "Tunes the learning_rate schedule to halve training cost."},
		{"Computes a*b*c in one pass.", "Computes a*b*c in one pass."},
		{"Halves the training cost, *without* retraining.", "Halves the training cost, without retraining."},
	} {
		if err := Validate(tc.in, enAbstract, 30); err != nil {
			t.Errorf("Validate(%q) = %v, want valid", tc.in, err)
		}
		if got := Normalize(tc.in); got != tc.want {
			t.Errorf("Normalize(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := Clean(tc.in, 30); got != tc.want {
			t.Errorf("Clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// A TL;DR ending with another script's final mark keeps it as it is: no full stop after it.
func TestNormalizeKeepsOtherScriptsFinalMark(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		"यह विधि प्रशिक्षण की लागत को आधा करती है।",
		"هل يمكن تقليل تكلفة تدريب النماذج الكبيرة إلى النصف؟",
		"学習コストを半減する手法を提案する．",
		"学習コストを半減する手法を提案する。」",
		"آیا می\u200cتوان هزینهٔ آموزش مدل\u200cهای بزرگ را نصف کرد؟",
	} {
		if err := Validate(in, in, 30); err != nil {
			t.Errorf("Validate(%q) = %v, want valid", in, err)
		}
		if got := Normalize(in); got != in {
			t.Errorf("Normalize(%q) = %q, want it unchanged", in, got)
		}
		if got := Clean(in, 30); got != in {
			t.Errorf("Clean(%q) = %q, want it unchanged", in, got)
		}
	}
}

func TestDetectLanguage(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{enAbstract, "en"},
		{deAbstract, "de"},
		{"Nous proposons une méthode pour réduire le coût de l'entraînement des grands modèles, et nous montrons que cette méthode est efficace sur les données.", "fr"},
		{"Proponemos un método para reducir el costo del entrenamiento de los modelos grandes y mostramos que es eficaz con los datos.", "es"},
		{"Предлагаем метод снижения стоимости обучения.", "cyrillic"},
		{"我们提出了一种降低大型模型训练成本的方法。", "han"},
		{"大規模言語モデルの学習コストを削減する手法を提案する。", "kana"},
		{"LoRA-SB 2x", ""},
		{"", ""},
	} {
		if got := DetectLanguage(tc.in); got != tc.want {
			t.Errorf("DetectLanguage(%.40q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want string }{
		{"Sure! Here's a TL;DR: **A method halves the training cost of large models.** Hope this helps!",
			"A method halves the training cost of large models."},
		{"TL;DR: a method halves the training cost", "A method halves the training cost."},
		{`"A method halves the training cost."`, "A method halves the training cost."},
		{"In this paper, we propose a method that halves the training cost.", "Proposes a method that halves the training cost."},
		{"This paper revisits load balancing for mixture-of-experts models.", "Revisits load balancing for mixture-of-experts models."},
		{"The authors study scaling laws for sparse models.", "Studies scaling laws for sparse models."},
		{"We present Branch-Train-Merge (BTM), a communication-efficient algorithm for parallel training.",
			"Branch-Train-Merge is a communication-efficient algorithm for parallel training."},
		{"## Summary\n\n- A method halves the training cost [3].\n- It also works well.", "A method halves the training cost."},
		{"Specifically, we introduce an extra communication step to synchronize statistics across micro-batches.",
			"Introduces an extra communication step to synchronize statistics across micro-batches."},
		{"To address this, we propose a heterogeneity-adaptive sequence parallelism method.",
			"Proposes a heterogeneity-adaptive sequence parallelism method."},
		{"We study how the size of the batch, the learning rate, the warmup schedule, and the weight decay interact with each other when training very large transformer language models on web data at scale",
			"Studies how the size of the batch, the learning rate, the warmup schedule, and the weight decay interact with each other when training very large transformer language models."},
		{"This paper's method halves cost for all models.", "Method halves cost for all models."},
		{"Summary-statistics methods halve the training cost.", "Summary-statistics methods halve the training cost."},
		{"The paper-and-pencil test shows models fail at arithmetic.", "The paper-and-pencil test shows models fail at arithmetic."},
		{"A method\x00 halves the training\u202e cost of large models.", "A method halves the training cost of large models."},
		// A joiner is part of the text (Persian spelling, an emoji sequence): Clean keeps it.
		{"A coding assistant \U0001F469\u200d\U0001F4BB halves the training cost.", "A coding assistant \U0001F469\u200d\U0001F4BB halves the training cost."},
		{"Answer-set programming solvers run twice as fast.", "Answer-set programming solvers run twice as fast."},
		{"Abstract: a method halves the training cost.", "A method halves the training cost."},
		// Chatter has punctuation after it (or a "here's …:" label); a name or a term does not.
		{"Great Lakes ice cover is forecast ten days ahead by a graph network.", "Great Lakes ice cover is forecast ten days ahead by a graph network."},
		{"SURE estimates the denoising risk without any ground truth.", "SURE estimates the denoising risk without any ground truth."},
		{"Sure here's the TL;DR: a method halves the training cost.", "A method halves the training cost."},
		{"Certainly, a method halves the training cost.", "A method halves the training cost."},
		// A markdown link keeps its text (the brackets and parentheses removed, it lost it).
		{"[Sparse routers](https://example.org/routers) halve the training cost of large models.",
			"Sparse routers halve the training cost of large models."},
		// An enumerator dropped in mid-sentence takes the capital of the word after it along.
		{"In this paper, we consider improving efficiency from two scenarios, (I) Reducing cost without degrading the performance.",
			"Considers improving efficiency from two scenarios, reducing cost without degrading the performance."},
		{"To address these issues, we propose three changes: 1) We filter the data, 2) we tune the schedule.",
			"Proposes three changes: we filter the data, we tune the schedule."},
		// The first person goes where a rewrite says the same without it.
		{"In this work, we propose to parameterize the weights as a sum of low-rank and sparse matrices, which we call SLTrain.",
			"Proposes to parameterize the weights as a sum of low-rank and sparse matrices, called SLTrain."},
		{"In this paper, we progress towards resolving this problem by proposing a new structured compression approach, called ZipLM.",
			"Proposes a new structured compression approach, called ZipLM."},
		{"We found that layer-wise adaptive pruning is effective in LLMs.", "Finds that layer-wise adaptive pruning is effective in LLMs."},
		{"We, therefore, propose IncreLoRA, an incremental parameter allocation method.", "IncreLoRA is an incremental parameter allocation method."},
		// A coordinated verb agrees with the subject-less clause, also after an "and" between nouns.
		{"In this study, we delve into the relationship between pre-training and fine-tuning and investigate its impact.",
			"Delves into the relationship between pre-training and fine-tuning and investigates its impact."},
		// A participle after "and" is not a verb coordinated with a lead verb of another tense
		// ("measured" became "measures"); one of the same tense is.
		{"We study the scaling of sparse expert models in a careful and measured way across many settings.",
			"Studies the scaling of sparse expert models in a careful and measured way across many settings."},
		{"We studied the scaling of sparse expert models and measured their cost across many settings.",
			"Studies the scaling of sparse expert models and measures their cost across many settings."},
		{"We study a careful and measured way of scaling experts and find that routing matters.",
			"Studies a careful and measured way of scaling experts and finds that routing matters."},
		// A lead verb in the past tense is often followed by one in the present: what was done,
		// then what it shows ("and find" stayed, unconjugated).
		{"We trained a family of sparse models on web text and find that routing matters most.",
			"Trains a family of sparse models on web text and finds that routing matters most."},
		{"In this paper, we introduced a new benchmark and show that current models fail on it.",
			"Introduces a new benchmark and shows that current models fail on it."},
		// What announces a finding goes; the finding stays.
		{"Experimental results on LLaMA-3.1-8B demonstrate that Adapt-Pruner outperforms conventional pruning methods.",
			"Adapt-Pruner outperforms conventional pruning methods."},
	} {
		got := Clean(tc.in, 30)
		if got != tc.want {
			t.Errorf("Clean(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		if err := Validate(got, enAbstract, 30); err != nil {
			t.Errorf("Clean(%q) = %q fails Validate: %v", tc.in, got, err)
		}
	}
}

// A cut that keeps "both" but not the "and" after it leaves the "both" out.
func TestCleanCutDoesNotLeaveBothWithoutAnd(t *testing.T) {
	t.Parallel()
	in := "Delves into the relationship between continuous pre-training and instruction fine-tuning of the LLMs and investigates the impact of continuous pre-training on the abilities of both the base and its instruction finetuned model."
	got := Clean(in, 30)
	if want := "Delves into the relationship between continuous pre-training and instruction fine-tuning of the LLMs and investigates the impact of continuous pre-training on the abilities."; got != want {
		t.Errorf("Clean(…, 30)\n got %q\nwant %q", got, want)
	}
}

func TestCleanCutsLongSentenceAtBoundaryWithinLimit(t *testing.T) {
	t.Parallel()
	in := "Proposes a scalable, approximate method for estimating the quality of a small subset of generated training data derived from the same input, which we then evaluate on many tasks and many models with care."
	for _, max := range []int{10, 15, 20, 30} {
		got := Clean(in, max)
		if n := len(Words(got)); n > max {
			t.Errorf("Clean(…, %d) has %d words: %q", max, n, got)
		}
		if strings.HasSuffix(got, "scalable.") || strings.HasSuffix(got, " of.") || strings.HasSuffix(got, " the.") {
			t.Errorf("Clean(…, %d) ends on a dangling word: %q", max, got)
		}
		if !strings.HasSuffix(got, ".") {
			t.Errorf("Clean(…, %d) does not end with a full stop: %q", max, got)
		}
	}
}

// Text written without spaces (Chinese, Japanese, Thai: two characters to a word) is cut to
// the word limit like any other, between characters, preferably after a clause mark, with
// the ideographic full stop after Chinese or Japanese; never between a character and its
// combining mark.
func TestCleanCutsTextWithoutSpacesToTheLimit(t *testing.T) {
	t.Parallel()
	const zh = "本文提出了一种基于稀疏专家路由的新方法，能够在保持模型质量的同时将训练成本降低百分之四十，" +
		"并且在多个基准测试上优于现有方法，同时还能够推广到多模态任务。"
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{zh, 30, "本文提出了一种基于稀疏专家路由的新方法，能够在保持模型质量的同时将训练成本降低百分之四十，并且在多个基准测试上优于现有方法。"},
		{zh, 20, "本文提出了一种基于稀疏专家路由的新方法，能够在保持模型质量的同时将训练成本降低百分。"},
		{zh, 15, "本文提出了一种基于稀疏专家路由的新方法。"},
		{zh, 5, "本文提出了一种基于稀。"},
		{"LoRA 方法" + strings.Repeat("很好", 20), 4, "LoRA 方法很好很好。"},
		// Thai: the cut leaves out the consonant whose vowel mark would not fit.
		{"งานวิจัยนี้เสนอวิธีการฝึกแบบจำลองภาษาขนาดใหญ่", 2, "งาน."},
		{"งานวิจัยนี้เสนอวิธีการฝึกแบบจำลองภาษาขนาดใหญ่", 4, "งานวิจัย."},
	} {
		got := Clean(tc.in, tc.max)
		if got != tc.want {
			t.Errorf("Clean(%q, %d)\n got %q\nwant %q", tc.in, tc.max, got, tc.want)
		}
		if err := Validate(got, tc.in, tc.max); err != nil {
			t.Errorf("Clean(%q, %d) = %q fails Validate: %v", tc.in, tc.max, got, err)
		}
	}
}

// A Chinese or Japanese answer of two sentences is cleaned to its first, as an English one
// is: Clean counted the words of a sentence by its spaces, found none with three in text
// written without spaces, kept the whole answer, and Validate refused it ("2 sentences"), so
// Accept lost the Batch API's paid answer and Summarize, after paying for the stricter retry
// too, gave the paper up as invalid.
func TestCleanKeepsTheFirstSentenceOfTextWithoutSpaces(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, abstract, want string }{
		{"一种将大型模型训练成本减半的简单方法。它在多个基准上优于现有方法。", zhAbstract, "一种将大型模型训练成本减半的简单方法。"},
		{"大規模言語モデルの学習コストを半減する手法を提案する。実験で効果を確かめた。",
			"大規模言語モデルの学習コストを削減する手法を提案する。複数のベンチマークで効果を確かめた。", "大規模言語モデルの学習コストを半減する手法を提案する。"},
	} {
		if got := Clean(tc.in, 30); got != tc.want {
			t.Errorf("Clean(%q)\n got %q\nwant %q", tc.in, got, tc.want)
		}
		a := paper.Abstract{ID: "x:1", Title: "T", Abstract: tc.abstract}
		if text, v, err := Accept(tc.in, a, 30); err != nil || text != tc.want || v != paper.ValidCleaned {
			t.Errorf("Accept(%q) = %q, %q, %v; want %q, cleaned", tc.in, text, v, err, tc.want)
		}
	}
}

// A lead-in behind a preamble that only dropPreamble removes ("This paper: we propose X") is
// rewritten like any other ("Proposes X."): it was left as "We propose X.", which Clean of
// that rewrote, so Clean was not idempotent (found by FuzzCleanAndValidate).
func TestCleanRewritesALeadInBehindAPreamble(t *testing.T) {
	t.Parallel()
	const want = "Proposes a sparse router that halves the training cost."
	for _, in := range []string{
		"This paper: we propose a sparse router that halves the training cost.",
		"The authors — we propose a sparse router that halves the training cost.",
	} {
		if got := Clean(in, 30); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// An answer of chatter alone ("Sure", "Okay") was valid, as its preamble is chatter only with
// punctuation after it, and stored as the TL;DR "Sure." once Normalize ended it, which Validate
// refuses: Validate judges the text as it is stored (found by FuzzCleanAndValidate).
func TestAnAnswerOfChatterAloneIsNoTLDR(t *testing.T) {
	t.Parallel()
	a := paper.Abstract{ID: "x:1", Title: "T", Abstract: "We propose a method that halves the training cost of large models."}
	for _, in := range []string{"Sure", "Okay", "Certainly!", "  Of course  "} {
		if err := Validate(in, a.Abstract, 30); !errors.Is(err, ErrInvalidTLDR) {
			t.Errorf("Validate(%q) = %v, want it refused", in, err)
		}
		if text, v, err := Accept(in, a, 30); err == nil {
			t.Errorf("Accept(%q) = %q (%s), want an error", in, text, v)
		}
	}
}

// An answer with two brackets left open, as when it stops in a citation ("[see (Smith"), loses
// both with what follows them: the first was left ("… models [see."), and Clean of that took it
// away, so Clean was not idempotent (found by FuzzCleanAndValidate).
func TestCleanDropsEveryBracketLeftOpen(t *testing.T) {
	t.Parallel()
	const want = "A sparse router halves the training cost of large language models."
	for _, in := range []string{
		"A sparse router halves the training cost of large language models [see (Smith",
		"A sparse router halves the training cost of large language models (see [Smith",
	} {
		if got := Clean(in, 30); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// A preamble written with two spaces or a no-break space ("In  this paper", "This\u00a0paper")
// passed, as the preamble's words are matched with single spaces, and was stored as "In this
// paper …" once Normalize folded them (found by FuzzCleanAndValidate).
func TestAPreambleWithOtherWhiteSpaceIsRefused(t *testing.T) {
	t.Parallel()
	a := paper.Abstract{ID: "x:1", Title: "T", Abstract: "We propose a sparse router that halves the training cost of large models."}
	for _, in := range []string{
		"In  this paper we propose a sparse router that halves the training cost.",
		"This\u00a0paper proposes a sparse router that halves the training cost.",
		"The\tauthors propose a sparse router that halves the training cost.",
	} {
		if err := Validate(in, a.Abstract, 30); !errors.Is(err, ErrInvalidTLDR) || !strings.Contains(err.Error(), "preamble") {
			t.Errorf("Validate(%q) = %v, want it refused for its preamble", in, err)
		}
		if text, v, err := Accept(in, a, 30); err != nil || v != paper.ValidCleaned || strings.HasPrefix(text, "In this") || strings.HasPrefix(text, "This paper") || strings.HasPrefix(text, "The authors") {
			t.Errorf("Accept(%q) = %q (%s), %v; want it cleaned of its preamble", in, text, v, err)
		}
	}
}

// TestAnAnswerWithoutAWordIsNoTLDR: an answer of punctuation alone ("," "—" "...") passed
// Validate, which counts no words against a least, and Normalize stored what its trimming of
// trailing separators left: "" for "," or "—", which Accept returned as a valid TL;DR and the
// store refused ("empty text"), the paper failing after its answer was paid for, where the
// stricter prompt would have been asked (found by FuzzCleanAndValidate: "Validate accepts ",",
// not its Normalize """). Such an answer is invalid.
func TestAnAnswerWithoutAWordIsNoTLDR(t *testing.T) {
	t.Parallel()
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "A title",
		Abstract: "We propose a method that halves the training cost of large language models."}
	for _, s := range []string{",", "—", " - ", "...", ";:", "“…”"} {
		if err := Validate(s, a.Abstract, 30); !errors.Is(err, ErrInvalidTLDR) {
			t.Errorf("Validate(%q) = %v; want ErrInvalidTLDR (Normalize stores %q)", s, err, Normalize(s))
		}
		if text, _, err := Accept(s, a, 30); err == nil {
			t.Errorf("Accept(%q) = %q; want an error, no TL;DR", s, text)
		}
	}
}

// An answer whose only sentence of three words is broken across lines, with a short one after
// it, was kept whole by Clean's fallback ("A router halves cost. Works well."), two
// sentences that Validate refuses: the paid answer was dead-lettered. The fallback joins the
// lines and keeps the first sentence, as Clean does (found by FuzzCleanAndValidate: "A 0! 0").
func TestCleanKeepsTheFirstSentenceOfJoinedLines(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"A router\nhalves cost. Works well.": "A router halves cost.",
		"A *router\nhalves* cost":            "A router halves cost.",
		"A router\n*halves cost*":            "A router halves cost.",
		"这 00第一。第":                           "这 00第一。",
		"A 0! 0":                             "A 0!",
	} {
		got := Clean(in, 30)
		if got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
		if CountWords(got) >= 3 {
			if err := Validate(got, "", 30); err != nil {
				t.Errorf("Clean(%q) = %q, which Validate refuses: %v", in, got, err)
			}
		}
	}
}

// An answer in emphasis whose words start as a markdown heading or list item does ("*# 1
// method*", "*- A method halves cost*") was valid, and stored by Normalize, which takes the
// emphasis out, as "# 1 method." (found by FuzzCleanAndValidate: "*# 0*"). Validate judges
// the text as it is stored; Clean takes the marker out with the emphasis.
func TestMarkdownUnderEmphasisIsMarkdown(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]string{
		"*# 1 method halves cost*":        "1 method halves cost.",
		"*- A method halves the cost*":    "A method halves the cost.",
		"#\u200aA method halves the cost": "A method halves the cost.",
		"_1. A method halves the cost._":  "A method halves the cost.",
	} {
		if err := Validate(in, "", 30); !errors.Is(err, ErrInvalidTLDR) {
			t.Errorf("Validate(%q) = %v, want it refused (stored as %q)", in, err, Normalize(in))
		}
		if got := Clean(in, 30); got != want {
			t.Errorf("Clean(%q) = %q, want %q", in, got, want)
		}
	}
}

// An answer that is one sentence only while its emphasis stands ("*!* 0") was valid, and stored
// by Normalize, which takes the emphasis out, as two: "! 0." (found by FuzzCleanAndValidate).
func TestOneSentenceOnlyWithItsEmphasisIsRefused(t *testing.T) {
	t.Parallel()
	for _, in := range []string{"*!* 0", "A method *works!* Really"} {
		if err := Validate(in, "", 30); !errors.Is(err, ErrInvalidTLDR) {
			t.Errorf("Validate(%q) = %v, want it refused (stored as %q)", in, err, Normalize(in))
		}
	}
}

// Words in emphasis side by side ("*fast* *sparse*") kept the second's markers: the first
// match took the space the second needed before it, so "*a* *b*" was stored as "a *b*." and
// Normalize was not idempotent (found by FuzzCleanAndValidate: "*0* *0*").
func TestNormalizeStripsEmphasisSideBySide(t *testing.T) {
	t.Parallel()
	if got, want := Normalize("A *fast* *sparse* _low_ _rank_ router"), "A fast sparse low rank router."; got != want {
		t.Errorf("Normalize = %q, want %q", got, want)
	}
}
