package summarize

import (
	"regexp"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

var (
	// leadLabelRe strips chatter and labels in front of the content: "Sure! ", "Here's a
	// TL;DR: ", "TL;DR: ", "Summary - ". Chatter is a word such as "Sure" with punctuation
	// after it, or before "here's …:": "Great Lakes", "SURE estimates" and "Absolutely
	// continuous" are content.
	leadLabelRe = regexp.MustCompile(`(?i)^(?:` +
		`(?:sure|certainly|of course|okay|ok|absolutely|great)(?:[!,.:]+\s*|\s+here(?:'s|’s| is| are)\b[^:\n]{0,60}[:：]\s*)` +
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
	// findingLeadRe matches what says that a finding follows, not the finding: "Experimental
	// results on X demonstrate that", "Our findings reveal that".
	findingLeadRe = regexp.MustCompile(`(?i)^(?:the |our )?(?:[\w-]+ ){0,2}?(?:results|findings|experiments|evaluations?|analys[ie]s)(?: on [^,]{1,60}?)? (?:\w+ly )?(?:show|shows|showed|demonstrate[sd]?|reveal(?:s|ed)?|indicate[sd]?|suggest(?:s|ed)?|confirm(?:s|ed)?) that\s+`)
	// weAsideRe matches an aside after "we" ("we, therefore, propose"), in lower case.
	weAsideRe = regexp.MustCompile(`\bwe, (?:therefore|thus|hence|then|consequently|accordingly|instead|however|in turn|in addition|moreover|furthermore|first|finally|also|here|in this (?:paper|work|study)), `)
	// weCallRe matches a relative clause naming what precedes it: ", which we call SLTrain".
	weCallRe = regexp.MustCompile(`(?i),? (?:which|that) we (?:call|term|name|dub|coin|refer to as)\b`)
	// byProposingRe matches the contribution in "We progress towards X by proposing Y".
	byProposingRe    = regexp.MustCompile(`\bby (proposing|introducing|presenting|developing|designing|building)\s+`)
	byProposingVerbs = map[string]string{"proposing": "proposes", "introducing": "introduces", "presenting": "presents",
		"developing": "develops", "designing": "designs", "building": "builds"}
	// enumeratorRe matches an enumerator in a sentence, "(I) ", "(2) ", "ii) ", and the word after it.
	enumeratorRe = regexp.MustCompile(`(?:\((?:[ivxIVX]{1,4}|\d{1,2}|[a-zA-Z])\)|(?:^|\s)(?:[ivx]{1,4}|\d{1,2})\))\s+(\pL[\pL\d'-]*)`)
	parenRe      = regexp.MustCompile(`\s*\([^()]*\)`)
	bracketRe    = regexp.MustCompile(`\s*\[[^\[\]]*\]`)
	latexRe      = regexp.MustCompile(`\\([%&$#_])`)
	latexCmdRe   = regexp.MustCompile(`\\?\btext(?:it|bf|tt|rm|sc|sf|sl)\{([^{}]*)\}|\\(?:emph|mathrm|mathbf)\{([^{}]*)\}`)
	latexAccRe   = regexp.MustCompile("\\\\[\"'^~`]")
	spaceRe      = regexp.MustCompile(`\s+`)
	spacePunct   = regexp.MustCompile(`\s+([,;:.!?])`)
	mdStrip      = regexp.MustCompile("\\*\\*|__|`")
	// mdLinkRe matches a markdown link or image, "[text](url)"; its text is kept.
	mdLinkRe   = regexp.MustCompile(`!?\[([^\[\]]*)\]\([^()\s]*\)`)
	mdLeadLine = regexp.MustCompile(`^\s*(?:#+\s+|[-*+>]\s+|\d+[.)]\s+)`)
	appositive = regexp.MustCompile(`^([^,;:]{2,80}?), (an?|the) (.+)$`)
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
		pose overview delineate elaborate seek discover`) {
		contributionVerbs[v] = thirdPerson(v)
		thirdPersonVerbs[thirdPerson(v)] = true
	}
}

// contributionVerb returns the third-person form of v, a contribution verb in its base form or
// its past tense ("proposed", "studied", "found"), and whether it is one.
func contributionVerb(v string) (string, bool) {
	if conj, ok := contributionVerbs[v]; ok {
		return conj, true
	}
	var stems []string
	switch {
	case v == "found":
		stems = []string{"find"}
	case v == "built":
		stems = []string{"build"}
	case strings.HasSuffix(v, "ied"):
		stems = []string{v[:len(v)-3] + "y"}
	case strings.HasSuffix(v, "ed"):
		stems = []string{v[:len(v)-1], v[:len(v)-2]}
	}
	for _, stem := range stems {
		if conj, ok := contributionVerbs[stem]; ok {
			return conj, true
		}
	}
	return "", false
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
// it strips markdown, chatter and labels ("Sure! Here's a TL;DR:"), wrapping quotes, paper
// lead-ins ("In this paper, we propose X" → "Proposes X", also "We, therefore, proposed X",
// "We progress towards X by proposing Y"), what announces a finding ("Results on X show
// that"), enumerators run into the sentence ("(I) Reducing" → "reducing"), keeps the first
// sentence with content, cuts it to maxWords as CountWords counts them (at a clause boundary
// when one is close, else at a word boundary, never after a dangling "of" or "and", nor a
// "both" without its "and"; Chinese, Japanese or Thai between two characters, after a "，"
// when one is close) and ends it with a full stop ("。" after Chinese or Japanese).
func Clean(text string, maxWords int) string {
	text = strings.Map(func(r rune) rune {
		if r != '\n' && unprintable(r) {
			return -1
		}
		return r
	}, text)
	var lines, sentences []string
	for _, line := range strings.Split(text, "\n") {
		line = latexQuoteRe.ReplaceAllString(line, `"$1"`)
		line = mdLeadLine.ReplaceAllString(line, "")
		line = replaceWhere(mdLinkRe, line, "$1", "]")
		line = stripEmphasis(mdStrip.ReplaceAllString(line, ""))
		line = strings.Join(strings.Fields(line), " ") // a no-break space or a tab as a space, as Normalize folds them
		line = mdLeadLine.ReplaceAllString(line, "")   // what emphasis or a Unicode space hid: "*- A method*", "#\u200aA method"
		if line == "" {
			continue
		}
		lines = append(lines, line)
		sentences = append(sentences, Sentences(line)...)
	}
	for _, s := range sentences {
		s = tidyFirst(s)
		if CountWords(s) >= 3 { // as Validate counts them: Chinese, Japanese and Thai have no spaces
			return finish(s, maxWords)
		}
	}
	// Nothing with three words: join the lines (a sentence a model broke across them, "A
	// router\nhalves cost.") and keep the first sentence of what is left, as above; what
	// follows it would make two, which Validate refuses.
	// The lines are joined as the loop above read them: "A\n*0 0*" is "A 0 0", not "A *0 0*".
	// Emphasis may span them: "A *router\nhalves*".
	return finish(tidyFirst(stripEmphasis(strings.Join(lines, " "))), maxWords)
}

// tidyFirst is the first sentence of what tidy makes of s: the lines Clean's fallback joins
// may hold more than one ("A router halves cost. Works well."), and tidy may make two of one
// ("A00 .0. 0" → "A00.0. 0"); a second would make the TL;DR two sentences, which Validate
// refuses.
func tidyFirst(s string) string {
	for range 8 {
		t := tidy(s)
		ss := Sentences(t)
		if len(ss) <= 1 {
			return t
		}
		if ss[0] == s {
			return s
		}
		s = ss[0]
	}
	return s
}

// tidy is tighten and dropPreamble, again while dropPreamble uncovers what tighten rewrites
// ("This paper: we propose X" → "We propose X" → "Proposes X"), a few times at most.
func tidy(s string) string {
	for range 4 {
		t := dropPreamble(tighten(s))
		if t == s {
			break
		}
		s = t
	}
	return s
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
		if c := strings.IndexByte(s, ','); c > 0 && c <= maxConnective {
			s = connectiveRe.ReplaceAllString(s, "")
		}
		if len(s) > 4 && strings.EqualFold(s[:4], "we, ") {
			if loc := weAsideRe.FindStringIndex(foldASCII(s)); loc != nil && loc[0] == 0 {
				s = s[:2] + " " + s[loc[1]:] // "We, therefore, propose" → "We propose"
			}
		}
		if mayLeadFinding(s) {
			if loc := findingLeadRe.FindStringIndex(s); loc != nil {
				s = capitalize(s[loc[1]:])
			}
		}
		s = rewriteLeadIn(s)
		if s == before {
			break
		}
	}
	if hasEnumerator(s) {
		s = dropEnumerators(s)
	}
	if strings.Contains(s, "which we ") || strings.Contains(s, "that we ") {
		s = weCallRe.ReplaceAllString(s, ", called")
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
	if spaceBeforePunct(s) {
		s = spacePunct.ReplaceAllString(s, "$1")
	}
	s = strings.TrimSpace(s)
	return capitalize(s)
}

// maxConnective is the farthest a comma ending what connectiveRe matches can be from the
// start of a sentence.
const maxConnective = 100

// spaceBeforePunct reports whether s holds what spacePunct matches in a sentence whose white
// space is single spaces.
func spaceBeforePunct(s string) bool {
	for at := 0; ; {
		i := strings.IndexByte(s[at:], ' ')
		if i < 0 || at+i+1 >= len(s) {
			return false
		}
		at += i + 1
		if strings.IndexByte(",;:.!? ", s[at]) >= 0 {
			return true
		}
	}
}

// hasEnumerator reports whether s may hold what enumeratorRe matches: a ')' after one to four
// letters or digits that follow a '(', a space or the start.
func hasEnumerator(s string) bool {
	for at := 0; ; {
		i := strings.IndexByte(s[at:], ')')
		if i < 0 {
			return false
		}
		i += at
		j := i
		for j > 0 && i-j < 4 && isWordByte(s[j-1]) {
			j--
		}
		if e := s[j:i]; e != "" && (j == 0 || s[j-1] == '(' || s[j-1] == ' ') &&
			(len(e) == 1 || strings.Trim(e, "ivxIVX") == "" || len(e) == 2 && strings.Trim(e, "0123456789") == "") {
			return true
		}
		at = i + 1
	}
}

// mayLeadFinding reports whether s may start with what findingLeadRe matches: a noun it
// names comes early, and " that " follows.
func mayLeadFinding(s string) bool {
	head := s[:min(len(s), 90)]
	return (strings.Contains(head, "esult") || strings.Contains(head, "inding") || strings.Contains(head, "xperiment") ||
		strings.Contains(head, "valuation") || strings.Contains(head, "nalys")) && strings.Contains(s, " that ")
}

// dropEnumerators removes the enumerators of a list run into a sentence ("from two scenarios,
// (I) Reducing cost", "contributions: 1) We trained"), and the capital of the word after one in
// mid-sentence goes with it ("from two scenarios, reducing cost").
func dropEnumerators(s string) string {
	ms := enumeratorRe.FindAllStringSubmatchIndex(s, -1)
	if ms == nil {
		return s
	}
	var b strings.Builder
	last := 0
	for _, m := range ms {
		start := m[0]
		if s[start] == ' ' || s[start] == '\t' {
			start++
		}
		b.WriteString(s[last:start])
		word := s[m[2]:m[3]]
		if strings.TrimSpace(s[:start]) != "" && isCapitalized(word) {
			word = strings.ToLower(word[:1]) + word[1:]
		}
		b.WriteString(word)
		last = m[3]
	}
	b.WriteString(s[last:])
	return b.String()
}

// isCapitalized reports whether word is a capital followed by lower-case letters only
// ("Reducing", not "LoRA" or "GPT-4").
func isCapitalized(word string) bool {
	for i, r := range word {
		if i == 0 && !unicode.IsUpper(r) || i > 0 && !unicode.IsLower(r) {
			return false
		}
	}
	return word != ""
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
	verb, rest, past := "", "", false
	if m := leadClauseRe.FindStringSubmatchIndex(s); m != nil && !paperLeadRe.MatchString(s) {
		subject, v := strings.ToLower(s[m[2]:m[3]]), strings.ToLower(s[m[4]:m[5]])
		if subject == "we" {
			if conj, ok := contributionVerb(v); ok {
				return finishRewrite(conj, s[m[5]:], pastTense(v))
			}
		} else if thirdPersonVerbs[v] {
			return finishRewrite(v, s[m[5]:], false)
		}
	}
	if m := paperLeadRe.FindStringSubmatchIndex(s); m != nil {
		switch {
		case m[2] >= 0: // "... we VERB"
			v := strings.ToLower(s[m[2]:m[3]])
			if conj, ok := contributionVerb(v); ok {
				verb, rest, past = conj, s[m[3]:], pastTense(v)
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
		conj, ok := contributionVerb(v)
		switch {
		case ok:
		case strings.HasSuffix(v, "ed"):
			conj = v
		case strings.EqualFold(s[:3], "the"):
			conj = thirdPerson(v) // "The authors X" must lose its subject.
		default:
			// "We progress towards X by proposing Y" states its contribution in the end.
			if b := byProposingRe.FindStringSubmatchIndex(s); b != nil {
				return finishRewrite(byProposingVerbs[s[b[2]:b[3]]], s[b[1]:], false)
			}
			return s // "We X" stays.
		}
		verb, rest, past = conj, s[m[3]:], pastTense(v)
	} else {
		return s
	}
	return finishRewrite(verb, rest, past)
}

// pastTense reports whether v, a lower-case verb, has the form of a past tense.
func pastTense(v string) bool {
	return strings.HasSuffix(v, "ed") || v == "found" || v == "built"
}

// finishRewrite builds the subject-less sentence "Verb rest", or "NAME is a …" when the verb
// introduces a named artefact in apposition. past says whether the lead verb was in the past
// tense: a past form coordinated with a lead verb in the present is a participle, not a verb
// ("We study X in a careful and measured way"); after a lead verb in the past, a verb in either
// tense is one ("We studied X and measured Y", "We trained X and find that Y").
func finishRewrite(verb, rest string, past bool) string {
	rest = strings.TrimSpace(rest)
	// A coordinated second verb agrees too: "… and find X" → "… and finds X".
	// (The first "and" may join nouns: "… between X and Y and investigate Z".)
	for at := 0; ; {
		i := strings.Index(rest[at:], "and ")
		if i < 0 {
			break
		}
		start := at + i + len("and ")
		end := start
		for end < len(rest) && isWordByte(rest[end]) {
			end++
		}
		at = start
		if start-len("and ") > 0 && isWordByte(rest[start-len("and ")-1]) || end == start {
			continue // "band ", "and ,"
		}
		w := strings.ToLower(rest[start:end])
		if pastTense(w) && !past {
			continue // a participle: "in a careful and measured way"
		}
		if conj, ok := contributionVerb(w); ok && !strings.HasPrefix(rest[end:], " of ") {
			rest = rest[:start] + conj + rest[end:]
			break
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
		// A "both" whose "and" was cut goes too: "… abilities of both the base."
		for i := len(w) - 1; i >= max(1, len(w)-4); i-- {
			if strings.EqualFold(w[i], "both") {
				if !slices.ContainsFunc(w[i+1:], func(x string) bool { return strings.EqualFold(x, "and") }) {
					w = w[:i]
				}
				break
			}
		}
	}
	if maxWords > 0 && CountWords(strings.Join(w, " ")) > maxWords {
		w = cutDense(w, maxWords)
	}
	for len(w) > 1 {
		last := strings.ToLower(strings.TrimRight(w[len(w)-1], ",;:"))
		if !danglers[last] && !strings.HasSuffix(w[len(w)-1], "-") {
			break
		}
		w = w[:len(w)-1]
	}
	out := strings.Join(w, " ")
	out = strings.TrimRight(out, ",;:-–— "+clauseMarks)
	// An unmatched opening bracket or quote left by the cut is dropped with what follows, and
	// so is one it leaves unmatched in turn ("[see (Smith").
	for i := strings.LastIndexAny(out, "(["); i > 0 && !strings.ContainsAny(out[i:], ")]"); i = strings.LastIndexAny(out, "([") {
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

// cutDense keeps the words w that fit in max as CountWords counts them, when some are written
// without spaces (Chinese, Japanese, Thai: two characters to a word), cutting the word that
// overflows between two of its characters: after the last clause mark ("，", "、", "；", "：")
// that keeps at least half of what fits, else where the limit falls, and never before a
// combining mark (the grapheme stays whole).
func cutDense(w []string, max int) []string {
	used := 0
	for i, word := range w {
		n := CountWords(word)
		if used+n <= max {
			used += n
			continue
		}
		room := 2 * (max - used) // characters of word that still fit
		if room <= 0 {
			return w[:i]
		}
		dense, cut, clause, base := 0, len(word), -1, 0
		for j, r := range word {
			if !unicode.IsMark(r) {
				base = j
			}
			if paper.Dense(r) {
				if dense == room {
					cut = j
					if unicode.IsMark(r) {
						cut = base // with the character the mark belongs to
					}
					break
				}
				dense++
			}
			if strings.ContainsRune(clauseMarks, r) && dense >= room/2 {
				clause = j + utf8.RuneLen(r)
			}
		}
		if clause > 0 {
			cut = clause
		}
		if cut == 0 {
			return w[:i]
		}
		return append(w[:i:i], word[:cut])
	}
	return w
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
