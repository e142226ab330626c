package summarize

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"regexp"
	"regexp/syntax"
	"slices"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/paper"
)

// Offline model identity, stored with every TL;DR it writes (the prompt version with the word
// limit when it is not the default, Versioned).
const (
	OfflineModel         = "paperpipe-offline-extractive"
	OfflinePromptVersion = "extractive-v2"
)

// Offline is the built-in extractive summarizer: it picks the abstract's sentence that most
// likely states the paper's contribution and tightens it into a TL;DR, which must read alone:
// one that refers to what it does not say ("addresses this shortcoming"), keeps "we" or
// "our", or only names what the paper looks into gives way to a sentence without the flaw, or
// loses the clause holding it. It makes no API calls, is deterministic and safe for
// concurrent use.
type Offline struct {
	maxWords int
}

// NewOffline returns an Offline summarizer writing TL;DRs of at most maxWords words
// (DefaultMaxWords when maxWords ≤ 0).
func NewOffline(maxWords int) *Offline {
	if maxWords <= 0 {
		maxWords = DefaultMaxWords
	}
	return &Offline{maxWords: maxWords}
}

// Model returns OfflineModel.
func (o *Offline) Model() string { return OfflineModel }

// PromptVersion returns OfflinePromptVersion, with the word limit when it is not the default
// (Versioned).
func (o *Offline) PromptVersion() string { return Versioned(OfflinePromptVersion, o.maxWords) }

// Summarize returns the extractive TL;DR of a. Its Usage is zero but for the model and kind.
// The TL;DR passes Validate (its Validation is paper.ValidOK); an abstract with no text, or
// one from which no valid TL;DR can be made (nor from the title), is an error wrapping
// paper.ErrPermanent.
func (o *Offline) Summarize(ctx context.Context, a paper.Abstract) (paper.Summary, error) {
	if err := ctx.Err(); err != nil {
		return paper.Summary{}, err
	}
	text, err := o.tldr(a)
	if err != nil {
		return paper.Summary{}, fmt.Errorf("summarize %s: %w: %w", a.ID, err, paper.ErrPermanent)
	}
	return paper.Summary{
		PaperID:       a.ID,
		Text:          text,
		Model:         OfflineModel,
		PromptVersion: o.PromptVersion(),
		ContentHash:   a.ContentHash(),
		Validation:    paper.ValidOK,
		Usage:         paper.Usage{Model: OfflineModel, Kind: paper.KindChat},
	}, nil
}

// TLDR returns the TL;DR of a, or "" when none passes Validate (a has neither abstract nor
// title, say).
func (o *Offline) TLDR(a paper.Abstract) string {
	text, _ := o.tldr(a)
	return text
}

// tldr returns the cleaned sentence of the abstract that best states the contribution
// (choose); when that is invalid or has fewer than 4 words, the cleaned title, the paper's own
// one-line summary, if it is valid; else the short sentence if it is valid. With none valid it
// says why.
func (o *Offline) tldr(a paper.Abstract) (string, error) {
	sentences := Sentences(strings.Join(strings.Fields(a.Abstract), " "))
	scores := make([]float64, len(sentences))
	finding := make([]bool, len(sentences))
	best := -1
	for i, s := range sentences {
		scores[i], finding[i] = scoreSentence(s, i, len(sentences))
		if best < 0 || scores[i] > scores[best] {
			best = i
		}
	}
	var out string
	if best >= 0 {
		out = o.choose(sentences, scores, finding, best)
	}
	verr := Validate(out, a.Abstract, o.maxWords)
	if verr == nil && len(Words(out)) >= 4 {
		return out, nil
	}
	if verr == nil { // valid but short: still better than an invalid title
		if title := Clean(a.Title, o.maxWords); strings.TrimSpace(a.Title) != "" && Validate(title, a.Abstract, o.maxWords) == nil {
			return title, nil
		}
		return out, nil
	}
	why := "the abstract is empty"
	if strings.TrimSpace(a.Abstract) != "" {
		why = "the abstract's best sentence makes no valid TL;DR (" + problem(verr) + ")"
	}
	if strings.TrimSpace(a.Title) == "" {
		if strings.TrimSpace(a.Abstract) == "" {
			return "", errors.New("nothing to summarize")
		}
		return "", fmt.Errorf("%s and there is no title: %w", why, ErrInvalidTLDR)
	}
	title := Clean(a.Title, o.maxWords)
	terr := Validate(title, a.Abstract, o.maxWords)
	if terr != nil {
		return "", fmt.Errorf("%s, nor does the title (%s): %w", why, problem(terr), ErrInvalidTLDR)
	}
	return title, nil
}

// The flaws of a cleaned sentence as a TL;DR (flaws).
const (
	// flawDangling: it refers to what it does not say ("addresses this shortcoming", "to
	// bridge such gap", "It …", "the following").
	flawDangling = 1 << iota
	// flawFirstPerson: "we", "our", "us" are left in it ("where we use").
	flawFirstPerson
	// flawTopic: it says what the paper looks into ("Investigates …", "Explores …"), not
	// what it found.
	flawTopic
)

// choose returns the TL;DR made of the sentences' best (the index of the highest score): the
// cleaned sentence, unless it has a flaw (flaws) another sentence that states a contribution
// does not. In that case the TL;DR is the first flawless one of: a sentence of similar score
// (within nearMargin); the best one with the clause holding its dangling reference or first
// person cut (repair); a sentence scored within farMargin, or for a topic sentence a later one
// stating a finding. Failing all, it is the best sentence as it is.
func (o *Offline) choose(sentences []string, scores []float64, finding []bool, best int) string {
	out := Clean(sentences[best], o.maxWords)
	fl := flaws(out)
	if fl == 0 {
		return out
	}
	near, _ := alternatives(scores, finding, best, fl, false)
	if c, ok := o.flawless(sentences, near); ok {
		return c
	}
	if fl&^flawTopic != 0 {
		if r := repair(out, o.maxWords); flaws(r) == 0 {
			return r
		}
	}
	_, far := alternatives(scores, finding, best, fl, true)
	if c, ok := o.flawless(sentences, far); ok {
		return c
	}
	return out
}

// alternatives returns the indices of the sentences that may stand in for the best one, which
// has the flaws fl, in order of score (ties: the earlier): near, those scored within nearMargin
// of it, and with withFar, far, those within farMargin or (fl has flawTopic) later ones
// stating a finding. Both hold only sentences scored minAltScore or more, but for those
// findings.
func alternatives(scores []float64, finding []bool, best, fl int, withFar bool) (near, far []int) {
	for i := range scores {
		switch {
		case i == best:
		case scores[i] >= minAltScore && scores[i] >= scores[best]-nearMargin:
			near = append(near, i)
		case !withFar:
		case scores[i] >= minAltScore && scores[i] >= scores[best]-farMargin && fl&^flawTopic != 0,
			i > best && fl&flawTopic != 0 && finding[i]:
			far = append(far, i)
		}
	}
	byScore := func(i, j int) int { return cmp.Compare(scores[j], scores[i]) }
	slices.SortStableFunc(near, byScore)
	slices.SortStableFunc(far, byScore)
	return near, far
}

// flawless returns the first of the sentences at indices that makes a valid TL;DR of at least
// six words without flaws, as it is or repaired.
func (o *Offline) flawless(sentences []string, indices []int) (string, bool) {
	for _, i := range indices {
		c := Clean(sentences[i], o.maxWords)
		if flaws(c) != 0 {
			c = repair(c, o.maxWords)
		}
		if flaws(c) == 0 && len(Words(c)) >= 6 && Validate(c, "", o.maxWords) == nil {
			return c, true
		}
	}
	return "", false
}

// How far below the best sentence's score another may be and still be taken instead of it
// when the best one has a flaw: nearMargin before the best one's repair, farMargin after.
const (
	nearMargin = 1
	farMargin  = 2.5
)

// minAltScore is the least score of a sentence taken instead of a flawed best one: it must
// state a contribution or a finding (a cue weighing 2 or more), not background.
const minAltScore = 2

var (
	// danglingWords refer to what a TL;DR does not say ("this shortcoming", "such gap"),
	// but "such as" and "such that" do not; danglingStarts do so as its first word ("It …");
	// danglingThat are the nouns after which "that" is one ("that gap").
	danglingWords  = map[string]bool{"this": true, "these": true, "those": true, "such": true, "aforementioned": true}
	danglingStarts = map[string]bool{"it": true, "its": true, "they": true, "their": true}
	danglingThat   = map[string]bool{"gap": true, "goal": true, "problem": true, "issue": true, "limitation": true,
		"challenge": true, "shortcoming": true, "question": true, "need": true, "end": true, "constraint": true, "direction": true}
	// danglingThe are the words after which "the" is one ("the following").
	danglingThe = map[string]bool{"following": true, "aforementioned": true, "above": true, "former": true, "latter": true}
	firstPerson = map[string]bool{"we": true, "our": true, "ours": true, "us": true, "ourselves": true}
	// topicVerbs open a TL;DR that says what the paper looks into.
	topicVerbs = map[string]bool{"investigates": true, "studies": true, "explores": true, "examines": true, "delves": true,
		"considers": true, "conducts": true, "poses": true, "revisits": true}
)

// flaws returns the flaws of tldr as a TL;DR.
func flaws(tldr string) int {
	words := strings.Fields(tldr)
	fl, _, _ := flawWords(words, 0)
	if len(words) > 0 && topicVerbs[strings.ToLower(words[0])] && !statesFinding(tldr) {
		fl |= flawTopic
	}
	return fl
}

// flawWords returns the dangling references and first person in words (flawDangling,
// flawFirstPerson), and the index and kind of the first one at or after from (-1 if none): a
// reference of two words ("that gap", "the following") starts at its first.
func flawWords(words []string, from int) (fl, at, kind int) {
	at = -1
	mark := func(i, k int) {
		fl |= k
		if at < 0 && i >= from {
			at, kind = i, k
		}
	}
	prev := ""
	var buf [16]byte
	for i, f := range words {
		w := lowerWord(&buf, f)
		switch {
		case firstPerson[w]:
			mark(i, flawFirstPerson)
		case i == 0 && danglingStarts[w], danglingWords[w] && w != "such":
			mark(i, flawDangling)
		case prev == "such" && w != "as" && w != "that",
			prev == "that" && danglingThat[w],
			prev == "the" && danglingThe[w]:
			mark(i-1, flawDangling)
		}
		prev = w
	}
	if prev == "such" {
		mark(len(words)-1, flawDangling)
	}
	return fl, at, kind
}

// lowerWord returns the letters of word f in lower case, using buf when they are ASCII and
// fit, or "" when they are longer than any word flawWords looks for.
func lowerWord(buf *[16]byte, f string) string {
	f = strings.TrimFunc(f, func(r rune) bool { return !unicode.IsLetter(r) })
	if len(f) > len(buf) {
		return ""
	}
	for i := 0; i < len(f); i++ {
		c := f[i]
		if c >= 0x80 {
			return strings.ToLower(f)
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		buf[i] = c
	}
	return string(buf[:len(f)])
}

// repair cuts the last clause of tldr when it holds a dangling reference or the first person
// and what is left is most of the sentence ("Proposes X to overcome these limitations." →
// "Proposes X."), or, for the first person, a clause of its own ("Proposes X, where we use
// Y." → "Proposes X."); else it returns tldr.
func repair(tldr string, maxWords int) string {
	w := Words(strings.TrimRight(tldr, "."))
	_, i, fl := flawWords(w, 3)
	if i < 0 {
		return tldr
	}
	// The clause holding it starts at a comma or a clause word before it: the first such that
	// leaves most of the sentence, or for the first person the last before it.
	for k := 3; k <= i; k++ {
		word := strings.ToLower(strings.TrimRight(w[k], ","))
		if !clauseStarts[word] && !(fl == flawDangling && strings.HasSuffix(w[k-1], ",")) {
			continue
		}
		switch {
		case fl == flawDangling && 2*(len(w)-k) <= len(w)+1,
			fl == flawFirstPerson && !slices.ContainsFunc(w[k+1:i], func(x string) bool { return clauseStarts[strings.ToLower(x)] }):
			return finish(strings.Join(w[:k], " "), maxWords)
		}
	}
	return tldr
}

type cue struct {
	re     *regexp.Regexp
	weight float64
	// leads are strings one of which every match of re starts with (nil: unknown). A cue
	// with leads is tried only where one of them starts in a sentence (cueTable), with at,
	// instead of with re at every position of the sentence: most of the offline model's time
	// went to that.
	leads []string
	// at is re anchored at the start of its input, without re's leading \b (cueTable checks
	// it against the byte before).
	at *regexp.Regexp
	// ci is re case-insensitive, for a sentence holding a letter (?i) folds to ASCII that
	// foldASCII does not: the long s (U+017F) and the Kelvin sign (U+212A).
	ci *regexp.Regexp
}

// cueTable matches a list of cues (up to 64) against a sentence in one pass over it.
type cueTable struct {
	cues []cue
	// byFirst holds the cues' leads by their first byte.
	byFirst [256][]cueLead
	// always are the cues without leads, tried with their re on the whole sentence.
	always []int
}

type cueLead struct {
	text string
	cue  int
}

func newCueTable(cues []cue) *cueTable {
	if len(cues) > 64 {
		panic("summarize: more than 64 cues in a table")
	}
	t := &cueTable{cues: cues}
	for i, c := range cues {
		if c.leads == nil {
			t.always = append(t.always, i)
			continue
		}
		for _, l := range c.leads {
			t.byFirst[l[0]] = append(t.byFirst[l[0]], cueLead{l, i})
		}
	}
	return t
}

// match returns the set of cues matching folded, a sentence folded with foldASCII: bit i
// for cues[i]. It is what each cue's re (ci, for a sentence holding a letter foldASCII does
// not fold) says: a match starts where re's leading \b holds (Go's \b is ASCII's: a word byte
// on one side only) with one of the cue's leads, and at matches from there (its trailing \b
// sees the same end of the sentence).
func (t *cueTable) match(folded string) uint64 {
	var hits uint64
	// (Two Contains: ContainsAny of multi-byte runes scans once per rune, byte by byte.)
	if strings.Contains(folded, "\u017f") || strings.Contains(folded, "\u212a") {
		for i, c := range t.cues {
			if c.ci.MatchString(folded) {
				hits |= 1 << i
			}
		}
		return hits
	}
	for _, i := range t.always {
		if t.cues[i].re.MatchString(folded) {
			hits |= 1 << i
		}
	}
	wordBefore := false
	for i := 0; i < len(folded); i++ {
		word := isWordByte(folded[i])
		if word != wordBefore {
			for _, l := range t.byFirst[folded[i]] {
				if hits&(1<<l.cue) == 0 && strings.HasPrefix(folded[i:], l.text) && t.cues[l.cue].at.MatchString(folded[i:]) {
					hits |= 1 << l.cue
				}
			}
		}
		wordBefore = word
	}
	return hits
}

// isWordByte reports whether b is in \w (ASCII letters, digits and '_').
func isWordByte(b byte) bool {
	return 'a' <= b && b <= 'z' || 'A' <= b && b <= 'Z' || '0' <= b && b <= '9' || b == '_'
}

// cues compiles phrases (lower case) into one cue; it is matched against a sentence folded
// with foldASCII, which costs far less than a case-insensitive match.
func cues(weight float64, phrases ...string) cue {
	alt := `(?:` + strings.Join(phrases, "|") + `)\b`
	c := cue{re: regexp.MustCompile(`\b` + alt), at: regexp.MustCompile(`^` + alt),
		ci: regexp.MustCompile(`(?i)\b` + alt), weight: weight}
	for _, p := range phrases {
		re, err := syntax.Parse(p, syntax.Perl)
		if err != nil {
			panic(err) // MustCompile above took it
		}
		l := leadLiterals(re)
		if l == nil {
			c.leads = nil
			break
		}
		c.leads = append(c.leads, l...)
	}
	return c
}

// leadLiterals returns strings one of which every match of re starts with (as long as it can
// tell them, up to maxLeads of them), or nil when it cannot tell.
func leadLiterals(re *syntax.Regexp) []string {
	switch re.Op {
	case syntax.OpCapture:
		return leadLiterals(re.Sub[0])
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			l := leadLiterals(sub)
			if l == nil || len(out)+len(l) > maxLeads {
				return nil
			}
			out = append(out, l...)
		}
		return out
	case syntax.OpConcat:
		// The strings of the subexpressions matched exactly, one after the other, then the
		// leads of the first one that is not such.
		out := []string{""}
		for _, sub := range re.Sub {
			next, exact := exactLiterals(sub)
			if !exact {
				next = leadLiterals(sub)
			}
			if next == nil || len(out)*len(next) > maxLeads {
				break
			}
			out = cross(out, next)
			if !exact {
				break
			}
		}
		if slices.Contains(out, "") {
			return nil
		}
		return out
	}
	if l, ok := exactLiterals(re); ok && !slices.Contains(l, "") {
		return l
	}
	return nil
}

// cross returns every string of heads followed by every string of tails.
func cross(heads, tails []string) []string {
	out := make([]string, 0, len(heads)*len(tails))
	for _, h := range heads {
		for _, t := range tails {
			out = append(out, h+t)
		}
	}
	return out
}

// maxLeads bounds the strings leadLiterals and exactLiterals enumerate.
const maxLeads = 32

// exactLiterals returns the strings re matches when they are few (up to maxLeads) and it can
// tell them.
func exactLiterals(re *syntax.Regexp) ([]string, bool) {
	switch re.Op {
	case syntax.OpLiteral:
		if re.Flags&syntax.FoldCase != 0 {
			return nil, false
		}
		return []string{string(re.Rune)}, true
	case syntax.OpEmptyMatch:
		return []string{""}, true
	case syntax.OpCapture:
		return exactLiterals(re.Sub[0])
	case syntax.OpQuest:
		l, ok := exactLiterals(re.Sub[0])
		if !ok || len(l) >= maxLeads {
			return nil, false
		}
		return append(l, ""), true
	case syntax.OpAlternate:
		var out []string
		for _, sub := range re.Sub {
			l, ok := exactLiterals(sub)
			if !ok || len(out)+len(l) > maxLeads {
				return nil, false
			}
			out = append(out, l...)
		}
		return out, true
	case syntax.OpConcat:
		out := []string{""}
		for _, sub := range re.Sub {
			l, ok := exactLiterals(sub)
			if !ok || len(out)*len(l) > maxLeads {
				return nil, false
			}
			out = cross(out, l)
		}
		return out, true
	case syntax.OpCharClass:
		// Pairs of runes, lo and hi; a small class is its runes.
		var out []string
		for i := 0; i+1 < len(re.Rune); i += 2 {
			for r := re.Rune[i]; r <= re.Rune[i+1]; r++ {
				if len(out) == maxLeads {
					return nil, false
				}
				out = append(out, string(r))
			}
		}
		return out, true
	}
	return nil, false
}

// foldASCII is s with its ASCII capitals in lower case: what the cues' phrases need to
// match case-insensitively (they are ASCII; of the non-ASCII letters only two fold to ASCII
// ones, and cue.matches matches a sentence holding either case-insensitively).
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; 'A' <= c && c <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if c := b[j]; 'A' <= c && c <= 'Z' {
					b[j] = c + 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// contributionCues raise a sentence's score; backgroundCues lower it. A sentence collects
// the weight of every group that matches it once.
var (
	contributionCues = []cue{
		cues(4, `we (?:(?:\w+ly|first|also|further|then|here) )?(?:propose|present|introduce|develop|design|release|unveil|build)`,
			`(?:this|our) (?:paper|work|report|study|technical report|survey|review) (?:proposes|presents|introduces|develops|describes|revisits|identifies|studies|investigates|explores|tackles|addresses|seeks|aims)`,
			`(?:in|with) this (?:paper|work|study|report|survey|review), we`, `here,? we`),
		cues(2, `we (?:(?:\w+ly|first|also|further|then) )?(?:show|showed|find|found|demonstrate|demonstrated|reveal|revealed|study|investigate|explore|revisit|analy[sz]e|examine|reveal|identify|formulate|tackle|address|argue|prove|derive|establish)`,
			`our (?:method|approach|framework|model|system|algorithm|analysis|results|findings|experiments)`,
			`results (?:show|demonstrate|indicate|reveal)`, `experiments (?:show|demonstrate|reveal)`,
			`this (?:paper|work|study|report|survey|review)`, `(?:novel|new) (?:method|approach|framework|technique|algorithm|architecture|benchmark|dataset)`),
		cues(0.5, `we`, `our`),
		// "We also present" is usually a secondary contribution.
		cues(-1.5, `we (?:also|further|additionally|then|finally)`),
	}
	backgroundCues = []cue{
		cues(-2, `however`, `recent(?:ly)?`, `existing`, `has been`, `have been`, `remains?`, `despite`,
			`although`, `typically`, `traditional(?:ly)?`, `conventional(?:ly)?`, `previous(?:ly)?`,
			`prior (?:work|methods|approaches)`, `has emerged`, `in recent years`, `widely`, `increasingly`,
			`is (?:a|an) (?:promising|important|fundamental|key|critical|crucial)`, `limited`, `struggle`,
			`suffers?`, `challeng(?:e|es|ing)`),
		cues(-5, `https?://`, `github`, `code (?:is|and|will be) (?:publicly )?(?:available|released)`,
			`(?:is|are) (?:publicly )?available at`, `can be (?:accessed|found) at`),
		cues(-1, `for example`, `e\.g\.`, `such as`),
		cues(-2, `the following`, `\(?\d\)`),
	}
	// findingCue marks a sentence that states a finding; it weighs nothing.
	findingCue = cues(0, `we (?:\w+ly )?(?:find|found|show|showed|demonstrate|demonstrated|reveal|revealed|observe|observed|discover|discovered)`,
		`(?:results|findings|experiments|evaluations?|analys[ie]s)(?: on [^,.]{1,60})? (?:show|shows|showed|demonstrate[sd]?|reveal(?:s|ed)?|indicate[sd]?|suggest(?:s|ed)?|confirm(?:s|ed)?)`,
		`(?:finds|shows|reveals|demonstrates|observes|discovers|revealing|finding|showing|demonstrating) that`)
	// sentenceCues are the contribution cues, then the background ones, then findingCue.
	sentenceCues = newCueTable(slices.Concat(contributionCues, backgroundCues, []cue{findingCue}))
	// findingBit is findingCue's bit in what sentenceCues.match returns.
	findingBit = uint64(1) << (len(sentenceCues.cues) - 1)
)

// countWords is len(Words(s)) without building the slice.
func countWords(s string) int {
	n, in := 0, false
	for _, r := range s {
		space := r == ' ' || r < utf8.RuneSelf && asciiSpace(byte(r)) || r >= utf8.RuneSelf && unicode.IsSpace(r)
		if !space && !in {
			n++
		}
		in = !space
	}
	return n
}

// asciiSpace reports whether b is an ASCII white space byte (unicode.IsSpace's).
func asciiSpace(b byte) bool {
	return b == ' ' || '\t' <= b && b <= '\r'
}

// statesFinding reports whether s states a finding (findingCue).
func statesFinding(s string) bool {
	return sentenceCues.match(foldASCII(s))&findingBit != 0
}

// scoreSentence rates how well sentence i of n states the paper's contribution, and reports
// whether it states a finding (findingCue).
func scoreSentence(s string, i, n int) (float64, bool) {
	score := 0.0
	folded := foldASCII(s)
	if strings.Contains(folded, "we, ") { // "We, therefore, propose" is "we propose"
		folded = weAsideRe.ReplaceAllString(folded, "we ")
	}
	hits := sentenceCues.match(folded)
	for k, c := range sentenceCues.cues {
		if hits&(1<<k) != 0 {
			score += c.weight
		}
	}
	strong := hits&1 != 0 // the first contribution cue
	// Position prior: the contribution usually follows the opening motivation; the first
	// sentence is background more often than not, the last is often an outlook or a link.
	switch {
	case n > 2 && i == 0 && !strong:
		score -= 0.5
	case i == 0:
	case i < n/2:
		score += 0.5
	case n > 2 && i == n-1:
		score -= 0.5
	}
	w := countWords(s)
	switch {
	case w < 6:
		score -= 3
	case w > 60:
		score -= 1.5
	case w > 45:
		score -= 0.5
	}
	return score, hits&findingBit != 0
}
