package summarize

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

// ErrInvalidTLDR marks a TL;DR that breaks the rules Validate checks; the wrapping error says
// which.
var ErrInvalidTLDR = errors.New("invalid TL;DR")

var (
	// preambleRe matches chatter and labels an answer should not start with. Chatter ("Sure",
	// "Certainly") has punctuation after it or opens "here is …": "SURE estimates …" (Stein's
	// estimate) and "Absolutely continuous …" are content.
	preambleRe = regexp.MustCompile(`(?i)^(?:` +
		`(?:sure|certainly|of course|okay|absolutely|ok|great)(?:[!,.:]|\s+here\b)` +
		`|here(?:'s|’s| is| are)\b` +
		`|(?:tl;?\s?dr|tldr|summary|one[- ]sentence summary|short summary|answer|abstract)\s*[:：\-–—]` +
		`|assistant\s*[:：]` + // a role's label, from another model's chat template (Vicuna's "ASSISTANT:")
		// A role's marker, the special tokens left in (Phi-3's and Zephyr's "<|assistant|>",
		// ChatML's "<|im_start|>assistant", Llama 3's header, Gemma's "<start_of_turn>model"),
		// or OpenChat's label "GPT4 Correct Assistant:".
		`|<\|assistant\|>|<\|im_start\|>\s*assistant\b|<\|start_header_id\|>\s*assistant\s*<\|end_header_id\|>` +
		`|<start_of_turn>\s*model\b|gpt4 correct assistant\s*[:：]` +
		`|tl;?dr\b` +
		`|in (?:summary|short|brief)\b` +
		`|(?:in )?this (?:paper|work|study|article|report|technical report|manuscript)\b` +
		`|the (?:authors|paper)\b)`)
	// refusalRe matches the start of an answer in which the model declines, apologises or asks
	// for the abstract instead of giving a TL;DR ("I'm sorry, but I can't help with that.",
	// "Please provide the abstract …"), in the content of models and servers that have no
	// message.refusal: first person singular, which no TL;DR of a paper starts with ("I-JEPA
	// …" is a name), and "Sorry" followed by punctuation or "I". Matched with ’ read as ', and
	// in a sentence's case, the first letter aside: a title in title case ("I Can't Believe It's
	// Not Better") is no refusal. "As a(n) … AI/model/assistant …," (Llama 2 Chat's "As a
	// responsible AI language model, I must …"), "Unfortunately" and "Apologies" are one when the
	// model goes on about itself: "As an AI safety benchmark, …", "Unfortunately, I/O …",
	// "Apologies from a robot …" and a single author's "As a first step, I …" are not.
	refusalRe = regexp.MustCompile(`^(?:` +
		`[Ii]'?m (?:so |very |truly )?(?:sorry|afraid|unable|not able|an AI)\b|[Ii] am (?:so |very |truly )?(?:sorry|afraid|unable|not able|an AI)\b` +
		`|[Ss]orry(?:[,!.]|\s+(?:but\s+)?[Ii]\b)` +
		`|[Ii] (?:must |sincerely )?apologi[sz]e\b` +
		`|[Ii] (?:cannot|can't|can ?not|won't|will not|do not have|don't have)\b` +
		`|[Uu]nfortunately,? [Ii][\s']` +
		`|[Aa]s an? [^,.]{0,60}(?:AI|model|assistant|chatbot)[^,.]{0,30}, [Ii][\s']` +
		`|[Mm]y apologies\b|[Aa]pologies,? (?:but )?[Ii][\s']` +
		`|(?:[Pp]lease|(?:[Cc]ould|[Cc]an|[Ww]ould) you(?: please)?) (?:provide|share|give|paste|send)\b)`)
	// markdownRe matches markdown anywhere in the text.
	markdownRe = regexp.MustCompile("\\*\\*|__|`|\\]\\(")
	// latexQuoteRe matches LaTeX quotes (``like this''), which abstracts carry and which are
	// not markdown code.
	latexQuoteRe = regexp.MustCompile("``([^`']*)''")
	// markdownLeadRe matches markdown block syntax at the start.
	markdownLeadRe = regexp.MustCompile(`^(?:#+\s|[-*+>]\s|\d+[.)]\s)`)
)

const (
	openQuotes  = `"'“‘«„`
	closeQuotes = `"'”’»“`
)

// Validate reports whether tldr is an acceptable TL;DR of abstract, returning nil or an error
// wrapping ErrInvalidTLDR that says what is wrong: it must be exactly one sentence (see
// Sentences) on one line, with a word in it (a letter or a digit, not punctuation alone), at most maxWords words, with no preamble ("Sure", "Here is/Here's",
// "TL;DR:", "Summary:", "This paper", "In this paper", "The authors", a role's label or marker
// such as "Assistant:" or "<|im_start|>assistant" …), no markdown ("**",
// "__", "`", links, a leading "#", "- ", "* " or "1. "), not the model's refusal or request for
// the abstract in words ("I'm sorry, but I can't …", "Please provide …"), not wrapped in quotes, and in the
// abstract's language when DetectLanguage knows both. A missing final full stop is not an
// error (Normalize adds it). maxWords ≤ 0 means no limit.
func Validate(tldr, abstract string, maxWords int) error {
	t := strings.TrimSpace(tldr)
	switch {
	case t == "":
		return fmt.Errorf("%w: empty", ErrInvalidTLDR)
	case strings.ContainsAny(t, "\n\r"):
		return fmt.Errorf("%w: more than one line", ErrInvalidTLDR)
	case markdownRe.MatchString(latexQuoteRe.ReplaceAllString(t, `"$1"`)) || markdownLeadRe.MatchString(t) ||
		markdownLeadRe.MatchString(Normalize(t)): // "*# 1 method*" and "#\u200a1 method" are stored as "# 1 method."
		return fmt.Errorf("%w: contains markdown", ErrInvalidTLDR)
	case wrappedInQuotes(t):
		return fmt.Errorf("%w: wrapped in quotes", ErrInvalidTLDR)
	}
	// As Normalize stores it: "Sure" alone is chatter once it is "Sure.", "In  this paper" once
	// its white space is folded.
	stored := Normalize(t)
	if findPreamble(stored) != nil {
		return fmt.Errorf("%w: starts with a preamble (%q)", ErrInvalidTLDR, stored[:findPreamble(stored)[1]])
	}
	if refusalRe.MatchString(strings.ReplaceAll(stored, "’", "'")) {
		return fmt.Errorf("%w: reads as the model's refusal, or its request for the abstract, not a TL;DR", ErrInvalidTLDR)
	}
	// Punctuation alone ("," "—" "…") is no TL;DR, and Normalize stores some of it as "",
	// which the store refuses.
	if !strings.ContainsFunc(stored, func(r rune) bool { return unicode.IsLetter(r) || unicode.IsNumber(r) }) {
		return fmt.Errorf("%w: no words", ErrInvalidTLDR)
	}
	if i := strings.IndexFunc(t, unprintable); i >= 0 {
		r, _ := utf8.DecodeRuneInString(t[i:])
		return fmt.Errorf("%w: contains a control or invisible character (%U)", ErrInvalidTLDR, r)
	}
	n := len(Sentences(t))
	if n == 1 {
		n = len(Sentences(stored)) // "*!* 0" is stored as "! 0.", two
	}
	if n != 1 {
		return fmt.Errorf("%w: %d sentences, want exactly one", ErrInvalidTLDR, n)
	}
	if n := CountWords(t); maxWords > 0 && n > maxWords {
		return fmt.Errorf("%w: %d words, at most %d allowed", ErrInvalidTLDR, n, maxWords)
	}
	if la := DetectLanguage(abstract); la != "" {
		if lt := DetectLanguage(t); lt != "" && la != lt {
			return fmt.Errorf("%w: language %s differs from the abstract's %s", ErrInvalidTLDR, lt, la)
		}
	}
	return nil
}

// findPreamble returns the location of the preamble t starts with, or nil. A match that is
// the start of a hyphenated compound is none: "Summary-statistics methods …", "Answer-set
// programming …", "The paper-and-pencil test …", "This work-stealing scheduler …".
func findPreamble(t string) []int {
	loc := preambleRe.FindStringIndex(t)
	if loc == nil {
		return nil
	}
	end := loc[1]
	if end < len(t) && t[end] == '-' {
		return nil
	}
	if end >= 2 && t[end-1] == '-' && t[end-2] != ' ' && end < len(t) && t[end] != ' ' {
		return nil
	}
	return loc
}

// unprintable reports whether r has no place in a TL;DR: a control character (NUL, an escape
// sequence's ESC; a tab is white space and folded by Normalize), an invisible format
// character (a bidirectional override, a zero-width space, a soft hyphen), or U+FFFD, the
// mark of bytes that were not text. The format characters that are part of how text is
// written (writingFormat) are not.
func unprintable(r rune) bool {
	return r != '\t' && unicode.IsControl(r) || unicode.Is(unicode.Cf, r) && !writingFormat(r) || r == utf8.RuneError
}

// writingFormat reports whether r is a format character that real text holds and that shows
// as it is meant on a terminal and a web page: the zero-width non-joiner, which standard
// Persian spelling needs ("می‌کنیم") as do Indic scripts, the zero-width joiner (Indic
// conjuncts, emoji sequences such as 👩‍💻), and the left-to-right, right-to-left and Arabic
// letter marks of right-to-left text. The CLI prints them as they are (termSafe).
func writingFormat(r rune) bool {
	return r == '\u200c' || r == '\u200d' || r == '\u200e' || r == '\u200f' || r == '\u061c'
}

// wrappedInQuotes reports whether t, ignoring final punctuation, starts with an opening quote
// and ends with a closing one.
func wrappedInQuotes(t string) bool {
	t = strings.TrimRight(t, ".!? ")
	if utf8.RuneCountInString(t) < 2 {
		return false
	}
	first, _ := utf8.DecodeRuneInString(t)
	last, _ := utf8.DecodeLastRuneInString(t)
	return strings.ContainsRune(openQuotes, first) && strings.ContainsRune(closeQuotes, last)
}

// Normalize makes the small fixes that do not change a valid TL;DR's content: folds white
// space, removes markdown emphasis around words ("a *sparse* router", "_Mamba_ layers": not
// refused, which would cost a second request, but not stored either) and ends it with a full
// stop when it has no final '.', '!' or '?'.
func Normalize(tldr string) string {
	t := strings.Join(strings.Fields(tldr), " ")
	return endSentence(stripEmphasis(t))
}

// emphasisRes match words in markdown emphasis, *like this* or _like this_ (group 2), between
// white space or punctuation (groups 1 and 3): not "a*b*c" nor "learning_rate".
var emphasisRes = []*regexp.Regexp{
	regexp.MustCompile(`(^|[\s(\[“‘"'])\*([^\s*](?:[^*]*[^\s*])?)\*($|[\s.,;:!?)\]”’"'])`),
	regexp.MustCompile(`(^|[\s(\[“‘"'])_([^\s_](?:[^_]*[^\s_])?)_($|[\s.,;:!?)\]”’"'])`),
}

// stripEmphasis removes the markers of markdown emphasis from t. A match takes the space
// after it, which the next one needs before it ("*a* *b*"): again, until none is left.
func stripEmphasis(t string) string {
	for i, marker := range "*_" {
		for strings.ContainsRune(t, marker) {
			u := emphasisRes[i].ReplaceAllString(t, "$1$2$3")
			if u == t {
				break
			}
			t = u
		}
	}
	return t
}

// endSentence strips trailing separators and adds a full stop if the text has no terminal
// punctuation (isStop: "।", "؟" and "。" are such): the ideographic "。" after Chinese or
// Japanese, else ".".
func endSentence(t string) string {
	t = strings.TrimRightFunc(t, func(r rune) bool {
		return unicode.IsSpace(r) || strings.ContainsRune(",;:-–—"+clauseMarks, r)
	})
	if t == "" {
		return t
	}
	last, _ := utf8.DecodeLastRuneInString(t)
	if isStop(last) {
		return t
	}
	if strings.ContainsRune(closers, last) {
		// A closer after the terminal punctuation: "… (2024)." is fine, "… (2024)" is not.
		inner := strings.TrimRight(t, closers)
		if l, _ := utf8.DecodeLastRuneInString(inner); isStop(l) {
			return t
		}
	}
	if unicode.In(last, unicode.Han, unicode.Hiragana, unicode.Katakana) {
		return t + "。"
	}
	return t + "."
}
