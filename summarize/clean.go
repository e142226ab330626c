package summarize

import (
	"regexp"
	"strings"
	"unicode"
	"unicode/utf8"
)

var (
	// leadLabelRe strips chatter and labels in front of the content: "Sure! ", "Here's a
	// TL;DR: ", "TL;DR: ", "Summary - ".
	leadLabelRe = regexp.MustCompile(`(?i)^(?:` +
		`(?:sure|certainly|of course|okay|ok|absolutely|great)[!,.:]?\s+` +
		`|here(?:'s|’s| is| are)\b[^:\n]{0,60}[:：]\s*` +
		`|(?:tl;?\s?dr|tldr|summary|one[- ]sentence summary|short summary|answer|abstract)(?:\s*[:：–—]|\s+-)\s*` +
		`|in (?:summary|short|brief),?\s+)`)
	// paperLeadRe matches "In this paper, we VERB" and friends; group 1 is the verb when the
	// subject is "we" or "the authors", group 2 when the paper itself is the subject.
	paperLeadRe = regexp.MustCompile(`(?i)^(?:in )?(?:this|the present|our) ` + paperNouns + `(?:,?\s+(?:here,?\s+)?(?:we|the authors)\s+` + adverb + `(\w+)|\s+` + adverb + `(\w+))`)
	inPaperRe   = regexp.MustCompile(`(?i)^in (?:this|the present|our) ` + paperNouns + `,?\s+`)
	authorsRe   = regexp.MustCompile(`(?i)^(?:the authors|(?:here,?\s+)?we)\s+` + adverb + `(\w+)\s+`)
	// leadClauseRe matches a leading clause before the contribution: "To overcome X, we first
	// develop", "Based on this dataset, we design", "Rather than Y, this paper proposes".
	leadClauseRe = regexp.MustCompile(`(?i)^[^,;:]{3,160}, (?:here,? )?(we|this ` + paperNouns + `)\s+` + adverb + `(\w+)\s`)
	// connectiveRe strips discourse lead-ins that mean nothing on their own.
	connectiveRe = regexp.MustCompile(`(?i)^(?:specifically|in particular|in essence|furthermore|moreover|additionally|in addition|here|finally|overall|thus|therefore|consequently|hence|accordingly|to this end|to that end|as a result|instead|besides|notably|importantly|concretely|in contrast|by contrast|building on (?:this|these)(?: \w+)?|motivated by (?:this|these)(?: \w+)?|to (?:address|tackle|solve|overcome|bridge|fill|mitigate|alleviate|remedy|close|fix) (?:this|these|that|those|the|such)\b[^,]{0,50}),\s+`)
	andVerbRe    = regexp.MustCompile(`\band (\w+)\b`)
	parenRe      = regexp.MustCompile(`\s*\([^()]*\)`)
	bracketRe    = regexp.MustCompile(`\s*\[[^\[\]]*\]`)
	latexRe      = regexp.MustCompile(`\\([%&$#_])`)
	latexCmdRe   = regexp.MustCompile(`\\?\btext(?:it|bf|tt|rm|sc|sf|sl)\{([^{}]*)\}|\\(?:emph|mathrm|mathbf)\{([^{}]*)\}`)
	latexAccRe   = regexp.MustCompile("\\\\[\"'^~`]")
	spaceRe      = regexp.MustCompile(`\s+`)
	spacePunct   = regexp.MustCompile(`\s+([,;:.!?])`)
	mdStrip      = regexp.MustCompile("\\*\\*|__|`")
	mdLeadLine   = regexp.MustCompile(`^\s*(?:#+\s+|[-*+>]\s+|\d+[.)]\s+)`)
	appositive   = regexp.MustCompile(`^([^,;:]{2,80}?), (an?|the) (.+)$`)
)

// paperNouns are what a paper calls itself; adverb is an optional adverb after "we".
const (
	paperNouns = `(?:paper|work|study|article|report|technical report|manuscript|survey|review|note)`
	adverb     = `(?:(?:\w+ly|first|also|further|then|here|now|instead)\s+)?`
)

// contributionVerbs are verbs that open a statement of contribution; a leading "we" (or "this
// paper" / "the authors") with one of them becomes a subject-less third-person clause:
// "In this paper, we propose X" → "Proposes X".
var (
	contributionVerbs = map[string]string{}
	thirdPersonVerbs  = map[string]bool{}
)

func init() {
	for _, v := range strings.Fields(`propose present introduce develop design show find demonstrate
		study investigate explore analyze analyse examine describe provide offer release build
		construct train evaluate identify formulate derive prove establish argue report revisit
		address tackle leverage use employ apply create collect curate compile extend improve
		achieve reveal observe implement conduct benchmark compare focus aim seek consider
		discuss summarize summarise outline review survey quantify characterize characterise
		measure detail unveil open-source scale combine enable reduce utilize utilise delve attempt
		pose overview delineate elaborate seek`) {
		contributionVerbs[v] = thirdPerson(v)
		thirdPersonVerbs[thirdPerson(v)] = true
	}
}

// thirdPerson conjugates a base-form English verb for a singular subject.
func thirdPerson(v string) string {
	switch {
	case strings.HasSuffix(v, "s"), strings.HasSuffix(v, "sh"), strings.HasSuffix(v, "ch"),
		strings.HasSuffix(v, "x"), strings.HasSuffix(v, "z"):
		return v + "es"
	case strings.HasSuffix(v, "y") && len(v) > 1 && !strings.ContainsRune("aeiou", rune(v[len(v)-2])):
		return v[:len(v)-1] + "ies"
	}
	return v + "s"
}

// Clean turns any answer into a TL;DR that passes Validate's form rules, deterministically:
// it strips markdown, chatter and labels ("Sure! Here's a TL;DR:"), wrapping quotes and
// paper lead-ins ("In this paper, we propose X" → "Proposes X"), keeps the first sentence
// with content, cuts it to maxWords (at a clause boundary when one is close, else at a word
// boundary, never after a dangling "of" or "and") and ends it with a full stop.
func Clean(text string, maxWords int) string {
	text = strings.Map(func(r rune) rune {
		if r != '\n' && unprintable(r) {
			return -1
		}
		return r
	}, text)
	var sentences []string
	for _, line := range strings.Split(text, "\n") {
		line = latexQuoteRe.ReplaceAllString(line, `"$1"`)
		line = mdLeadLine.ReplaceAllString(line, "")
		line = mdStrip.ReplaceAllString(line, "")
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		sentences = append(sentences, Sentences(line)...)
	}
	for _, s := range sentences {
		s = dropPreamble(tighten(s))
		if len(Words(s)) >= 3 {
			return finish(s, maxWords)
		}
	}
	// Nothing with three words: keep whatever is left of the whole text.
	whole := spaceRe.ReplaceAllString(strings.TrimSpace(mdStrip.ReplaceAllString(text, "")), " ")
	return finish(dropPreamble(tighten(whole)), maxWords)
}

// dropPreamble removes whatever preamble tighten could not rewrite ("This paper's …"), so
// the result cannot fail Validate for it.
func dropPreamble(s string) string {
	for {
		loc := findPreamble(s)
		if loc == nil || loc[1] == 0 {
			return s
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(s[loc[1]:], "'s"), "’s")
		s = capitalize(strings.TrimLeft(rest, " ,;:!.-–—"))
	}
}

// tighten rewrites one sentence into TL;DR form without cutting it: labels, quotes, paper
// lead-ins, discourse connectives, parentheticals and citations go.
func tighten(s string) string {
	s = replaceWhere(latexRe, s, "$1", `\`)
	s = replaceWhere(latexQuoteRe, s, `"$1"`, "`")
	s = replaceWhere(latexCmdRe, s, "$1$2", "{")
	s = replaceWhere(latexAccRe, s, "", `\`)
	for {
		before := s
		s = strings.TrimSpace(s)
		s = leadLabelRe.ReplaceAllString(s, "")
		s = stripQuotes(s)
		s = connectiveRe.ReplaceAllString(s, "")
		s = rewriteLeadIn(s)
		if s == before {
			break
		}
	}
	for {
		before := s
		s = replaceWhere(parenRe, s, "", "(")
		s = replaceWhere(bracketRe, s, "", "[")
		if s == before {
			break
		}
	}
	if strings.ContainsAny(s, "\t\n\f\r") || strings.Contains(s, "  ") { // what spaceRe (\s+) changes
		s = spaceRe.ReplaceAllString(s, " ")
	}
	s = spacePunct.ReplaceAllString(s, "$1")
	s = strings.TrimSpace(s)
	return capitalize(s)
}

// replaceWhere is re.ReplaceAllString(s, repl) for a regexp every match of which holds one of
// the bytes of need: s without any is returned as it is, without a search (the offline
// summarizer's time went to such searches).
func replaceWhere(re *regexp.Regexp, s, repl, need string) string {
	if !strings.ContainsAny(s, need) {
		return s
	}
	return re.ReplaceAllString(s, repl)
}

// rewriteLeadIn turns "In this paper, we propose X", "This paper proposes X", "The authors
// propose X" and "We propose X" into "Proposes X"; "We present NAME, a … X" becomes "NAME is a
// … X". Other sentences are returned unchanged, except that a bare "In this paper," is
// dropped.
func rewriteLeadIn(s string) string {
	verb, rest := "", ""
	if m := leadClauseRe.FindStringSubmatchIndex(s); m != nil && !paperLeadRe.MatchString(s) {
		subject, v := strings.ToLower(s[m[2]:m[3]]), strings.ToLower(s[m[4]:m[5]])
		if subject == "we" {
			if conj, ok := contributionVerbs[v]; ok {
				return finishRewrite(conj, s[m[5]:])
			}
		} else if thirdPersonVerbs[v] {
			return finishRewrite(v, s[m[5]:])
		}
	}
	if m := paperLeadRe.FindStringSubmatchIndex(s); m != nil {
		switch {
		case m[2] >= 0: // "... we VERB"
			v := strings.ToLower(s[m[2]:m[3]])
			if conj, ok := contributionVerbs[v]; ok {
				verb, rest = conj, s[m[3]:]
			}
		case m[4] >= 0: // "This paper VERBs"
			verb, rest = strings.ToLower(s[m[4]:m[5]]), s[m[5]:]
		}
		if verb == "" {
			if loc := inPaperRe.FindStringIndex(s); loc != nil {
				return capitalize(s[loc[1]:])
			}
			return s
		}
	} else if m := authorsRe.FindStringSubmatchIndex(s); m != nil {
		v := strings.ToLower(s[m[2]:m[3]])
		conj, ok := contributionVerbs[v]
		switch {
		case ok:
		case strings.HasSuffix(v, "ed"):
			conj = v
		case strings.EqualFold(s[:3], "the"):
			conj = thirdPerson(v) // "The authors X" must lose its subject.
		default:
			return s // "We X" stays.
		}
		verb, rest = conj, s[m[3]:]
	} else {
		return s
	}
	return finishRewrite(verb, rest)
}

// finishRewrite builds the subject-less sentence "Verb rest", or "NAME is a …" when the verb
// introduces a named artefact in apposition.
func finishRewrite(verb, rest string) string {
	rest = strings.TrimSpace(rest)
	// A coordinated second verb agrees too: "… and find X" → "… and finds X".
	if m := andVerbRe.FindStringSubmatchIndex(rest); m != nil {
		if conj, ok := contributionVerbs[strings.ToLower(rest[m[2]:m[3]])]; ok {
			rest = rest[:m[2]] + conj + rest[m[3]:]
		}
	}
	switch verb {
	case "presents", "proposes", "introduces", "develops", "releases", "designs", "builds", "unveils":
		// "We present Branch-Train-Merge (BTM), a communication-efficient algorithm …" →
		// "Branch-Train-Merge is a communication-efficient algorithm …"
		r := parenRe.ReplaceAllString(rest, "")
		if m := appositive.FindStringSubmatch(r); m != nil && looksLikeName(m[1]) {
			return capitalize(m[1]) + " is " + m[2] + " " + m[3]
		}
	}
	return capitalize(verb) + " " + rest
}

// looksLikeName reports whether an appositive's head is a name rather than a clause: a few
// words, one with a capital letter or digit past the first character, no verb-like "that".
func looksLikeName(s string) bool {
	w := Words(s)
	if len(w) == 0 || len(w) > 8 {
		return false
	}
	for _, x := range w {
		if strings.EqualFold(x, "that") || strings.EqualFold(x, "which") {
			return false
		}
	}
	for _, x := range w {
		for i, r := range x {
			if (i > 0 && unicode.IsUpper(r)) || unicode.IsDigit(r) {
				return true
			}
		}
		if r, _ := utf8.DecodeRuneInString(x); unicode.IsUpper(r) && !strings.EqualFold(x, w[0]) {
			return true
		}
	}
	r, _ := utf8.DecodeRuneInString(w[0])
	return unicode.IsUpper(r) && len(w) <= 3
}

// stripQuotes removes quotes wrapping the whole text.
func stripQuotes(s string) string {
	if !wrappedInQuotes(s) {
		return s
	}
	tail := ""
	t := strings.TrimRight(s, ".!? ")
	if len(t) < len(s) {
		tail = strings.TrimSpace(s[len(t):])
	}
	_, fs := utf8.DecodeRuneInString(t)
	_, ls := utf8.DecodeLastRuneInString(t)
	inner := strings.TrimSpace(t[fs : len(t)-ls])
	if strings.HasSuffix(inner, ".") || strings.HasSuffix(inner, "!") || strings.HasSuffix(inner, "?") {
		return inner
	}
	return inner + tail
}

// danglers are words a cut sentence must not end with.
var danglers = map[string]bool{
	"a": true, "an": true, "the": true, "and": true, "or": true, "but": true, "of": true,
	"to": true, "with": true, "for": true, "in": true, "on": true, "by": true, "that": true,
	"which": true, "from": true, "as": true, "at": true, "its": true, "their": true,
	"our": true, "using": true, "via": true, "while": true, "is": true, "are": true,
	"be": true, "into": true, "than": true, "such": true, "both": true, "whereas": true,
	"where": true, "when": true, "whose": true, "this": true, "these": true, "e.g.": true,
	"i.e.": true, "through": true, "between": true, "across": true, "without": true,
	"within": true, "over": true, "under": true, "was": true, "were": true, "has": true,
	"have": true, "can": true, "we": true, "it": true, "not": true, "so": true, "thereby": true,
	"namely": true, "including": true, "like": true, "among": true, "toward": true, "towards": true,
}

// clauseStarts are words before which a long sentence may be cut, keeping the clause before.
var clauseStarts = map[string]bool{
	"which": true, "while": true, "whereas": true, "where": true, "thereby": true,
	"by": true, "using": true, "through": true, "via": true, "and": true, "but": true,
	"that": true, "with": true, "to": true, "achieving": true, "leading": true,
	"resulting": true, "enabling": true, "allowing": true, "yielding": true, "including": true,
	"on": true, "at": true, "in": true, "for": true, "when": true, "during": true, "across": true,
	"under": true, "without": true, "beyond": true, "compared": true, "leveraging": true,
	"based": true, "as": true, "so": true, "such": true,
}

// finish cuts s to maxWords words and ends it with a full stop.
func finish(s string, maxWords int) string {
	s = strings.Join(Words(s), " ")
	w := Words(s)
	if maxWords > 0 && len(w) > maxWords {
		w = cutWords(w, maxWords)
	}
	for len(w) > 1 {
		last := strings.ToLower(strings.TrimRight(w[len(w)-1], ",;:"))
		if !danglers[last] && !strings.HasSuffix(w[len(w)-1], "-") {
			break
		}
		w = w[:len(w)-1]
	}
	out := strings.Join(w, " ")
	out = strings.TrimRight(out, ",;:-–— ")
	// An unmatched opening bracket or quote left by the cut is dropped with what follows.
	if i := strings.LastIndexAny(out, "(["); i > 0 && !strings.ContainsAny(out[i:], ")]") {
		out = strings.TrimRight(out[:i], ",;:-–— ")
	}
	return capitalize(endSentence(out))
}

// cutWords keeps at most max words, preferring to end at a clause boundary that keeps at
// least half of them (and at least eight).
func cutWords(w []string, max int) []string {
	minKeep := min(max, maxInt(8, max/2))
	// A comma, semicolon or colon at the end of a word within the limit.
	for i := max; i >= minKeep; i-- {
		if strings.HasSuffix(w[i-1], ";") || strings.HasSuffix(w[i-1], ":") ||
			strings.HasSuffix(w[i-1], ",") && !adjectiveList(w, i) {
			return w[:i]
		}
	}
	// Before a word that opens a subordinate clause.
	for i := max; i >= minKeep; i-- {
		if i < len(w) && clauseStarts[strings.ToLower(w[i])] {
			return w[:i]
		}
	}
	return w[:max]
}

// adjectiveList reports whether the comma ending w[i-1] separates adjectives of one noun
// phrase ("a scalable, approximate method"), where a cut would leave a dangling adjective.
func adjectiveList(w []string, i int) bool {
	if i < 2 || i >= len(w) {
		return false
	}
	next, _ := utf8.DecodeRuneInString(w[i])
	if !unicode.IsLower(next) {
		return false
	}
	for _, d := range w[max(0, i-3) : i-1] {
		switch strings.ToLower(d) {
		case "a", "an", "the":
			return true
		}
	}
	return false
}

func maxInt(a, b int) int {
	if a > b {
		return a
	}
	return b
}

// capitalize upper-cases the first letter of s.
func capitalize(s string) string {
	r, size := utf8.DecodeRuneInString(s)
	if r == utf8.RuneError || !unicode.IsLower(r) {
		return s
	}
	return string(unicode.ToUpper(r)) + s[size:]
}
