package store

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/pgvector/pgvector-go"
	"golang.org/x/text/unicode/norm"

	"github.com/paperpipe/paperpipe/paper"
)

// RRFConstant is the k of reciprocal rank fusion: a paper ranked r by one query adds
// 1/(RRFConstant+r) to its fused score. 60 is the value of the original paper (Cormack et al.,
// 2009), which damps the weight of the very first ranks.
const RRFConstant = 60

// maxQueryBytes bounds a full-text query: websearch_to_tsquery's work grows with its length.
const maxQueryBytes = 4096

// tsRankWeights are the weights of ts_rank_cd for labels D, C, B and A: the title (A) counts
// 2.5 times as much as the abstract (B). They are PostgreSQL's defaults, spelled out because
// the title-above-abstract ordering is a promise of KeywordSearch.
const tsRankWeights = `'{0.1, 0.2, 0.4, 1.0}'::float4[]`

// tsRank is the score of a full-text match of tsq (SQL) for the tsvector tsv: cover density
// (ts_rank_cd: the spans of the document that hold the query's words, each weighted by its
// words' labels and by how short it is), normalised to [0, 1) as rank/(rank+1) (flag 32),
// which keeps the order. Not ts_rank: it joins the scores of the query's word pairs as
// 1 - (1-a)(1-b)…, which reaches exactly 1 in float4 after a few close pairs, and the ties went
// by id: 14 of the 90 sample papers matching "large language models" scored 1, and the title
// "Scaling Sparse Fine-Tuning to Large Language Models" found its own paper second, after one
// with two of its words in its title.
func tsRank(tsv, tsq string) string {
	return `ts_rank_cd(` + tsRankWeights + `, ` + tsv + `, ` + tsq + `, 32)`
}

// tsConfig is the text search configuration papers are indexed with (migration 00013), and so
// queries read with: PostgreSQL's english, with the words that have a letter outside ASCII
// passed through the unaccent dictionary first, so that a word matches with or without its
// accents (Nystrom finds Nyström, and Nyström Nystrom).
const tsConfig = `'paperpipe_english'`

// tsQuery is how a user's text, $1, becomes a tsquery (webSearchQuery).
var tsQuery = webSearchQuery(`$1`)

// webSearchQuery is the tsquery (SQL) of the text text (SQL): websearch_to_tsquery, which
// accepts any text (quotes for phrases, "or", a leading - to exclude) and never fails on
// syntax, with each lexeme that is an acronym with or without its plural's s made either:
// 'llm' and 'llms' become ( 'llm' | 'llms' ), wherever they are (a phrase, an exclusion). The
// English stemmer keeps the s of a word with no vowel but maybe its last letter before it
// ("LLMs", "GPUs", "CNNs" are llms, gpus, cnns, not llm, gpu, cnn), so a search for LLM missed
// the papers that say only LLMs: 26 of the 73 sample papers that say either (LLMs missed 7,
// GPU 3 of 13, MLLM 11 of 19). A lexeme of another form (a vowel before its last letter, as
// any stemmed English word of more than one syllable, or a hyphen, digit or accent) is left
// as it is. A hyphenated word finds the word written joined, and apart (hyphenatedWord). The
// text is read without the characters that show nothing inside a word (paperpipe_visible,
// migration 00016: a soft hyphen, zero-width characters), as papers are indexed, so that a word
// pasted with one finds the word. The tsquery is built once per statement (its parameters are
// known to the custom plan), so the rewrites cost nothing per paper.
func webSearchQuery(text string) string {
	tsq := `websearch_to_tsquery(` + tsConfig + `, paperpipe_visible(` + text + `))::text`
	for n := 2; n <= maxHyphenPieces; n++ {
		pattern, replacement := hyphenatedWord(n, true)
		tsq = `regexp_replace(` + tsq + `, ` + pattern + `, ` + replacement + `, 'g')`
		pattern, replacement = hyphenatedWord(n, false)
		tsq = `regexp_replace(` + tsq + `, ` + pattern + `, ` + replacement + `, 'g')`
	}
	tsq = numberForms(hyphenatedForms(wordNumberForms(tsq)))
	return `regexp_replace(` + tsq + `, ` + acronymLexeme + `, '( ''\1'' | ''\1s'' )', 'g')::tsquery`
}

// joinedPrefixes and joinedSuffixes are the pieces, as the English stemmer leaves them at the
// start or end of a word, before or after which a hyphen is as often written as not: of the
// sample archive's words written both ways (fine-tuning and finetuning, pre-trained, multi-modal,
// re-training, sub-optimal, under-explored, hyper-parameter, co-design, auto-regressive,
// multi-task, light-weight, layer-wise, trade-off), and the other common English and technical
// prefixes of the kind. Longer first where one begins another (real before re).
const (
	joinedPrefixes = `anti|auto|bi|co|cross|fine|few|high|hyper|inter|intra|long|low|macro|meta|micro|mini|multi|non|open|out|over|post|pre|pseudo|real|re|self|semi|sub|super|tri|ultra|under|uni|zero`
	joinedSuffixes = `fre|off|scal|weight|wis`
)

// hyphenatedForms is the tsquery text tsq (SQL) with each lexeme of a word written joined that
// begins with one of joinedPrefixes or ends with one of joinedSuffixes, three letters or digits
// besides, made either itself or the word written with that hyphen: 'pretrain' becomes
// ( 'pretrain' | ( 'pre-train' & 'pre-train' ) <2> !'pre-train' ). PostgreSQL indexes
// "pre-training" as pre-train, pre and train, never pretrain, so a keyword search for
// pretraining missed every paper that writes it hyphenated: on the sample archive, pretraining
// found 14 of the 44 papers that write it either way, finetuning 5 of 44, multimodal 24 of 29.
// The English stemmer stems the hyphenated word as it does the joined one but for the hyphen
// (hyphenatedWord), and a lexeme with a hyphen in it is only ever a hyphenated word, so the form
// matches only a paper that writes the query's word with that hyphen. Its pieces follow it, one
// position each ("pre-training data" is pre-train:1 pre:2 train:3 data:4): the phrase with a
// negation (the form cannot be two positions further on too) gives the form that span, so that
// "large pretraining data" in quotes finds "large pre-training data", and matches wherever the
// form is. The form is written twice so that the planner, which knows nothing of a lexeme
// missing from the column's statistics and counts it as matching up to 0.5% of the papers,
// counts its square: with every split of a word looked for (p-retrain, pr-etrain, …) a rare
// word's estimated matches grew tenfold, and every match cost a tenth of a millisecond more to
// check and rank, which is why only the pieces above are looked for. Applied after the
// hyphenated words' rewrites (hyphenatedWord), whose joined forms it then rewrites too.
func hyphenatedForms(tsq string) string {
	return `regexp_replace(` + tsq + `, '(?<!'')''(?:(` + joinedPrefixes + `)([[:alnum:]]{3,})|([[:alnum:]]{3,})(` + joinedSuffixes + `))''(?!'')', ` +
		`'( ''\1\2\3\4'' | ( ''\1\3-\2\4'' & ''\1\3-\2\4'' ) <2> !''\1\3-\2\4'' )', 'g')`
}

// numberForms is the tsquery text tsq (SQL) with each number, signed or not, made either sign,
// and each word of letters joined to a number (gpt4, covid19, llama3.1) made either itself or
// the letters followed by the number of either sign. PostgreSQL's parser reads a number after a
// hyphen as a signed number: "COVID-19" is covid -19, "GPT-4" gpt -4, "Llama-3.1" llama -3.1
// ("T5-11B" and "GPT-4o", a number with letters, are a hyphenated word, hyphenatedWord), so a
// search for covid 19, covid19, gpt 4 or gpt4 found no paper that writes COVID-19 or GPT-4, and
// covid-19 none that writes COVID 19.
func numberForms(tsq string) string {
	const number = `([0-9]+(?:\.[0-9]+)*)`
	tsq = `regexp_replace(` + tsq + `, '(?<!'')''-?` + number + `''(?!'')', '( ''\1'' | ''-\1'' )', 'g')`
	return `regexp_replace(` + tsq + `, '(?<!'')''([[:alpha:]]+)` + number + `''(?!'')', '( ''\1\2'' | ''\1'' <-> ( ''\2'' | ''-\2'' ) )', 'g')`
}

// wordNumberForms is the tsquery text tsq (SQL) with each word of letters followed by a number
// (a signed one: after a hyphen, see numberForms) made either itself or the two written
// joined: 'gpt' & '4' (gpt 4) and 'gpt' <-> '-4' (gpt-4) become ( 'gpt' & '4' | 'gpt4' ), so
// that they find a paper that writes GPT4, as gpt4 finds one that writes GPT-4 or GPT 4
// (numberForms). Applied before hyphenatedForms (which rewrites a word such as covid or resnet,
// and would leave it no longer next to its number) and numberForms (which then makes the number
// of either sign).
func wordNumberForms(tsq string) string {
	const number = `-?([0-9]+(?:\.[0-9]+)*)`
	// Inside a phrase (<->, "track covid 19" or gpt-4) the group is one more step of the
	// phrase. Joined by & (two words of a query), not where the word ends a phrase or is
	// excluded, nor where the number begins one ('b' & '10' <-> '000' from "10,000", 'a' <->
	// 'b' & '4', !'b' & '4'): the group would take the phrase's or the negation's operator
	// with it, and a title with "More Than 10,000 GPUs" found nothing.
	tsq = `regexp_replace(` + tsq + `, '(?<!'')''([[:alpha:]]+)'' <-> ''` + number + `''(?!'')', ` +
		`'( ''\1'' <-> ''\2'' | ''\1\2'' )', 'g')`
	return `regexp_replace(` + tsq + `, '(?<!<-> )(?<!!)(?<!'')''([[:alpha:]]+)'' & ''` + number + `''(?!'')(?! <->)', ` +
		`'( ''\1'' & ''\2'' | ''\1\2'' )', 'g')`
}

// maxHyphenPieces is the most pieces a hyphenated word of a query may have for a search to
// find it joined or apart: state-of-the-art has 4. (Its pieces and those of its run are groups
// of hyphenatedWord's pattern, and a replacement names 9 at most.)
const maxHyphenPieces = 5

// hyphenatedWord is the pattern (a SQL string) of a hyphenated word of n pieces in a tsquery's
// text, and its replacement (a SQL string): the word, or the word written joined, or — when
// apart, which matches only a word with two of its pieces or more not stop words — the word
// written apart, its pieces in a row. websearch_to_tsquery makes "pre-training" the phrase
// 'pre-train' <-> 'pre' <-> 'train', the whole word stemmed and then each piece, which a paper
// that writes "pretraining" ('pretrain') or "pre training" does not match: a keyword search for
// pre-training found 32 of the 44 sample papers that write it either way, multi-modal 6 of the
// 29 that write multi-modal or multimodal, Mixture-of-Experts 10 of the 16 that write it with
// or without its hyphens. The pattern is the word's lexeme, its pieces groups 1 to n (letters
// and digits: a lexeme with a quote or a backslash in it is left alone), and the run of the
// pieces that follow it, those not stop words: each piece is one position further on, so the
// run is the longest one whose distances add up to n at most (a word after a last piece that
// is a stop word is further away). With apart, the run from its first piece on is one of the
// groups n+1 to 2n-1 (one for each distance of the first piece); without, the pattern matches
// only a run of one piece or none that no piece follows, so not a word that the pattern with
// apart rewrote. A word of one piece but stop words (in-context, 'in-context' <2> 'context')
// is not looked for apart: its run alone is the word context. The English stemmer stems the
// hyphenated word as it does the joined one, but for the hyphens (all 442 hyphenated words of
// the sample archive), so the joined word's lexeme is the pieces of the hyphenated one's.
func hyphenatedWord(n int, apart bool) (pattern, replacement string) {
	const lexeme = `'[^']*'`
	op := func(d int) string {
		if d == 1 {
			return " <-> "
		}
		return " <" + strconv.Itoa(d) + "> "
	}
	// noPiece is a run of at most left more positions ending here: no piece follows.
	noPiece := func(left int) string {
		if left == 0 {
			return ""
		}
		ds := []string{"-"}
		for d := 2; d <= left; d++ {
			ds = append(ds, strconv.Itoa(d))
		}
		return `(?! <(?:` + strings.Join(ds, "|") + `)> ')`
	}
	// runs are the runs of one piece or more within left positions.
	var runs func(left int) []string
	runs = func(left int) []string {
		var rs []string
		for d := 1; d <= left; d++ {
			rs = append(rs, op(d)+lexeme)
			for _, r := range runs(left - d) {
				rs = append(rs, op(d)+lexeme+r)
			}
		}
		return rs
	}
	var pieces, joined []string
	for i := 1; i <= n; i++ {
		pieces = append(pieces, `([^' \\-]+)`)
		joined = append(joined, `\`+strconv.Itoa(i))
	}
	var alts []string
	replacement = `( \& | ''` + strings.Join(joined, "") + `''`
	if apart {
		var groups []string
		for d := 1; d < n; d++ {
			alts = append(alts, op(d)+`(`+lexeme+`(?:`+strings.Join(runs(n-d), "|")+`))`)
			groups = append(groups, `\`+strconv.Itoa(n+d))
		}
		replacement += ` | ` + strings.Join(groups, "")
	} else {
		alts = append(alts, noPiece(n))
		for d := 1; d <= n; d++ {
			alts = append(alts, op(d)+lexeme+noPiece(n-d))
		}
	}
	pattern = `(?<!')'` + strings.Join(pieces, "-") + `'(?!')(?:` + strings.Join(alts, "|") + `)`
	return `'` + strings.ReplaceAll(pattern, `'`, `''`) + `'`, `'` + replacement + ` )'`
}

// acronymLexeme is the pattern (a SQL string) of a quoted lexeme in a tsquery's text that is
// two consonants or more, the last not an s, or two consonants or more and one final vowel (y
// counts: GPU, CPU), with or without a plural s: its form without the s is group 1. One
// consonant before the vowel is an English word as often as an acronym ("gas" and "bus" found
// the papers of a GA and a BU), and is left as it is. A quote that is half of a doubled quote
// (a quote in a lexeme) starts no lexeme.
const acronymLexeme = `'(?<!'')''((?:[b-df-hj-np-tv-xz]+[b-df-hj-np-rtv-xz])|(?:[b-df-hj-np-tv-xz]{2,}[aeiouy]))s?'''`

// pgQuery is q with every white-space character a plain space, in NFC. paper.ParseQuery reads
// any Unicode space as one; websearch_to_tsquery does not (under the database's ctype a
// no-break space joins two words into a phrase), and both must read the same query:
// "quokka\u00a0-wombat" left wombat papers out of the semantic ranking and looked for the
// phrase "quokka wombat" in the keyword one. Stored text is in NFC (ingest), and a word
// matches only in the same form: "nai\u0308ve" typed decomposed found no "naïve". A dash with a
// space after it is punctuation, as ParseQuery reads it (paper.LoneDashesToSpaces):
// websearch_to_tsquery would exclude the word after the space, and a title with " - " in it,
// pasted whole, matched no paper, not even its own.
func pgQuery(q string) string {
	return paper.LoneDashesToSpaces(strings.Map(func(r rune) rune {
		if unicode.IsSpace(r) {
			return ' '
		}
		return r
	}, norm.NFC.String(q)))
}

// checkQuery validates the text of a full-text query.
func checkQuery(q string) error {
	switch {
	case strings.TrimSpace(q) == "":
		return fmt.Errorf("empty query: %w", paper.ErrInvalid)
	case len(q) > maxQueryBytes:
		return fmt.Errorf("query is %d bytes, limit %d: %w", len(q), maxQueryBytes, paper.ErrInvalid)
	case !utf8.ValidString(q):
		return fmt.Errorf("query is not valid UTF-8: %w", paper.ErrInvalid)
	}
	return validText(q)
}

// DefaultKeywordRankLimit is Config.KeywordRankLimit's default: how many matches of a
// full-text query are ranked at most. Ranking 10,000 took about 0.1 s on the shared 2-core
// development machine (the ranking reads each match's tsvector out of line, about 4 pages), and it
// covers every match of all but the commonest words; see README, "Keyword search on a large
// archive".
const DefaultKeywordRankLimit = 10000

// MaxKeywordRankLimit is the largest Config.KeywordRankLimit: more than any archive holds, so
// it turns the bound off.
const MaxKeywordRankLimit = 1_000_000_000_000

// Ranking says how a full-text ranking was made.
type Ranking struct {
	// Bounded is true when the query matched more than Limit papers, and only the Limit most
	// recently stored of them (papers.created_at, then id) were ranked: the results are the
	// best of those, by the same score as always.
	Bounded bool
	// Limit is the store's Config.KeywordRankLimit.
	Limit int
}

// keywordCandidates is the CTE, named name, of the matches of the tsquery tsq (SQL) that a
// full-text ranking ranks: at most limit+1 of them (limit is a parameter), the newest by
// (created_at, id), so that whether more than limit matched is known without counting them
// all. edges are the parameters of the created_at of the 4, 16 and 64 × limit-th newest papers
// (those the archive holds, newest first; Store.tierEdgesFor): see tieredMatches, which looks
// for the matches window by window, newest first, and reads the matches older than the last
// edge from the GIN index, sorted, never by walking the created_at index through the newer
// papers.
func keywordCandidates(name, tsq, limit string, edges []string) string {
	return name + ` AS (
	` + tieredMatches(`p.id, p.created_at, p.tsv`, `p.tsv @@ `+tsq, limit+`::bigint + 1`, edges) + `
)`
}

// tieredMatches is a statement of the first lim (SQL) rows of cols of the papers p that pass
// cond, the newest by (created_at DESC, id DESC) — the rows of
//
//	SELECT cols FROM papers p WHERE cond ORDER BY p.created_at DESC, p.id DESC LIMIT lim
//
// though not in that order. The planner, which sees the values (the statements run with custom
// plans, see searchOptionsSQL) and cond's frequency (ANALYZE), but assumes the papers that pass
// it are spread evenly over the archive's dates, walks papers_created_at_id testing each paper
// when they are common, and reads cond's GIN index and sorts when they are rare. A common word
// only old papers have (a topic out of fashion) was then walked to through every newer paper.
//
// So the archive is cut into windows by the created_at of edges (parameters, newest first:
// papers at or after the first, before it and at or after the second, …, and before the last),
// each one a branch of a UNION ALL under the LIMIT, newest first: PostgreSQL runs the branches
// in order and stops as soon as lim rows came, so a common word is found in the first window
// as before, by a walk of about lim / its share papers, and an old-only word passes windows
// where the planner, expecting fewer matches than lim, intersects the GIN index with the
// window's range of papers_created_at_id (5–12 ms for the empty window of the 40,000 newest of
// 500,000 papers, 14–22 ms for the next 120,000: it grows with the window, not the archive)
// before reaching the old papers. Those older than the last edge are read from the GIN index
// and sorted (created_at + interval '0' hides the index's order from the planner), never
// walked: all of them, which is what an old-only word then costs (its 60,000 matches, ~0.1 s).
// The planner may still walk a window it expects to fill that the word is absent from: at most
// that window's papers (64 × the limit in all, not the archive).
// The windows are disjoint and cover the archive whatever the edges (papers that share a
// created_at are all in one window), so the rows are those of the plain statement. Parallel
// plans could interleave the branches; the statements run without them (searchOptionsSQL).
func tieredMatches(cols, cond, lim string, edges []string) string {
	branch := func(where, order string) string {
		return `(SELECT ` + cols + ` FROM papers p WHERE ` + cond + where + `
	ORDER BY ` + order + ` DESC, p.id DESC LIMIT ` + lim + `)`
	}
	if len(edges) == 0 {
		return `SELECT ` + cols + ` FROM papers p WHERE ` + cond + `
	ORDER BY p.created_at DESC, p.id DESC LIMIT ` + lim
	}
	var parts []string
	for i, e := range edges {
		where := ` AND p.created_at >= ` + e
		if i > 0 {
			where = ` AND p.created_at < ` + edges[i-1] + where
		}
		parts = append(parts, branch(where, `p.created_at`))
	}
	parts = append(parts, branch(` AND p.created_at < `+edges[len(edges)-1], `(p.created_at + interval '0')`))
	return `SELECT * FROM (
	` + strings.Join(parts, `
	UNION ALL
	`) + `
) tiers LIMIT ` + lim
}

// keywordRanked is the subquery that ranks the limit newest papers of candidates (see
// keywordCandidates) by tsRank for tsq, best first, and returns the first n as id and r. The
// candidates come newest first (the CTE keeps the order its statement made them in, which the
// windows of tieredMatches do not show the planner): its first limit rows are the limit newest,
// taken without sorting the limit+1 again (which cost 8% of a common word's search).
func keywordRanked(candidates, tsq, limit, n string) string {
	return `SELECT c.id, ` + tsRank(`c.tsv`, tsq) + ` AS r
	FROM (SELECT id, tsv FROM ` + candidates + ` LIMIT ` + limit + `::bigint) c
	ORDER BY r DESC, c.id
	LIMIT ` + n
}

// keywordTSQuery is the tsquery (SQL) a full-text search of q matches — a ranking, or the
// listing's text filter — with q as the parameter text and, when needed (the second result),
// q's excluded words and phrases (paper.Query.Excluded) as the parameter excl.
// websearch_to_tsquery leaves out the papers with an excluded word itself ('a' & !'b') unless q
// has an or ("a or -b" is 'a' | !'b'): then the exclusion is added (&& !!). Only then: added to a
// query that has it already, it made the planner count it twice, expect few matches and read
// every match of a common word from the GIN index.
func keywordTSQuery(q, text, excl string) (string, bool) {
	tsq := webSearchQuery(text)
	if paper.ParseQuery(q).Excluded == "" || !hasOr(q) {
		return tsq, false
	}
	return `(` + tsq + ` && !!` + webSearchQuery(excl) + `)`, true
}

// keywordTSQueryArgs is keywordTSQuery of q, the parameter text, for a statement of
// parameters args: the excluded words, when the tsquery needs them, are the next parameter,
// appended to args.
func keywordTSQueryArgs(q, text string, args []any) (string, []any) {
	tsq, excluding := keywordTSQuery(q, text, "$"+strconv.Itoa(len(args)+1))
	if excluding {
		args = append(args, paper.ParseQuery(q).Excluded)
	}
	return tsq, args
}

// hasOr reports whether q holds the word or outside quotes (websearch_to_tsquery's operator;
// when in doubt, true).
func hasOr(q string) bool {
	quoted := false
	return slices.ContainsFunc(strings.FieldsFunc(q, func(r rune) bool {
		if r == '"' {
			quoted = !quoted
			return true
		}
		return !quoted && !unicode.IsLetter(r) && !unicode.IsDigit(r)
	}), func(w string) bool { return strings.EqualFold(w, "or") })
}

// keywordSQL is KeywordSearch's statement for the tsquery tsq (keywordTSQueryArgs): $1 the text,
// $2 k, $3 the rank limit (and $4 the excluded words when tsq needs them); edges are the
// parameters of the windows' edges (keywordCandidates).
func keywordSQL(tsq string, edges []string) string {
	return `WITH ` + keywordCandidates("cand", tsq, "$3", edges) + `,
m AS (` + keywordRanked("cand", tsq, "$3", "$2") + `)
SELECT p.id, p.title, coalesce(t.tldr, ''), coalesce(t.model, ''), m.r, (SELECT count(*) FROM cand) > $3::bigint
FROM m
JOIN papers p ON p.id = m.id
` + latestTLDRJoin + `
ORDER BY m.r DESC, m.id`
}

// KeywordSearch returns the k papers that best match q by PostgreSQL full-text search
// (English stemming, accents folded: tsConfig; q is read as web-search syntax: "quoted
// phrases", or, -excluded),
// best first. Matches in the title weigh more than matches in the abstract. The score is
// ts_rank_cd, normalised to [0, 1) (tsRank). It needs no embedding space. k must be 1 to 1000.
// A query of only stop words or punctuation, which can match nothing, is an error wrapping
// paper.ErrNoSearchTerms. A query matching more than Config.KeywordRankLimit papers ranks only
// that many, the newest: see KeywordSearchRanked, which says when.
func (s *Store) KeywordSearch(ctx context.Context, q string, k int) ([]paper.Hit, error) {
	hits, _, err := s.KeywordSearchRanked(ctx, q, k)
	return hits, err
}

// KeywordSearchRanked is KeywordSearch, with how it ranked: a query that matches at most
// Config.KeywordRankLimit papers ranks all its matches; one that matches more ranks only the
// KeywordRankLimit most recently stored, and its Ranking is Bounded. The work of a search is
// then bounded by the limit, not by the archive: ranking every match of "learning" took 1.7 s
// at 500,000 papers.
func (s *Store) KeywordSearchRanked(ctx context.Context, q string, k int) (_ []paper.Hit, _ Ranking, err error) {
	defer func() { err = unavailable(ctx, err) }()
	rk := Ranking{Limit: s.keywordLimit}
	if err := checkK(k); err != nil {
		return nil, rk, fmt.Errorf("keyword search: %w", err)
	}
	if err := checkQuery(q); err != nil {
		return nil, rk, fmt.Errorf("keyword search: %w", err)
	}
	q = pgQuery(q)
	tsq, args := keywordTSQueryArgs(q, "$1", []any{q, k, s.keywordLimit})
	edges, err := s.keywordEdges(ctx, q, &args)
	if err != nil {
		return nil, rk, fmt.Errorf("keyword search %.60q: %w", q, err)
	}
	rows, err := searchRows(ctx, s, DefaultEFSearch(s.index), keywordSQL(tsq, edges), args, scanRankedHit)
	if err != nil {
		return nil, rk, fmt.Errorf("keyword search %.60q: %w", q, err)
	}
	hits := rankedHits(rows, &rk)
	if len(hits) == 0 {
		// Found nothing: say so when nothing could be found.
		none, err := s.matchesNothing(ctx, q)
		if err != nil {
			return nil, rk, fmt.Errorf("keyword search %.60q: %w", q, err)
		}
		if none {
			return nil, rk, fmt.Errorf("keyword search %.60q: the query has only stop words or punctuation: %w", q, paper.ErrNoSearchTerms)
		}
	}
	return hits, rk, nil
}

// matchesNothing reports whether full-text search ignores every word of q (pgQuery'd): stop
// words and punctuation only, a tsquery with no node, which no paper can match.
func (s *Store) matchesNothing(ctx context.Context, q string) (bool, error) {
	var none bool
	err := s.pool.QueryRow(ctx, `SELECT numnode(`+tsQuery+`) = 0`, q).Scan(&none)
	return none, err
}

// keywordEdges appends the edges of the windows of a full-text ranking of q (see
// keywordCandidates and Store.tierEdgesFor: the 4, 16 and 64 × Config.KeywordRankLimit-th
// newest papers) to args and returns their parameters; none when the planner reads q's
// matches from the GIN index (walksByDate), as it does for all but common words: the windows
// only keep a walk through the newer papers from going on, and would make such a ranking read
// the GIN index and a window's range of papers_created_at_id once per window (a rare word
// 2 → 5 ms at 500,000 papers).
func (s *Store) keywordEdges(ctx context.Context, q string, args *[]any) ([]string, error) {
	if !s.tiers.always {
		walks, err := s.walksByDate(ctx, q)
		if err != nil || !walks {
			return nil, err
		}
	}
	edges, err := s.tierEdgesFor(ctx, int64(s.keywordLimit))
	if err != nil {
		return nil, fmt.Errorf("window edges: %w", err)
	}
	var params []string
	for _, e := range edges {
		*args = append(*args, e)
		params = append(params, "$"+strconv.Itoa(len(*args))+"::timestamptz")
	}
	return params, nil
}

// walksByDate reports whether the planner finds the Config.KeywordRankLimit + 1 newest matches
// of q (keywordCandidates without windows) by walking papers_created_at_id: EXPLAIN of that
// statement, with the search's settings (about 0.3 ms).
func (s *Store) walksByDate(ctx context.Context, q string) (bool, error) {
	tsq, args := keywordTSQueryArgs(q, "$1", []any{q, s.keywordLimit})
	plan, err := searchRows(ctx, s, DefaultEFSearch(s.index), `EXPLAIN (FORMAT JSON) `+tieredMatches(`p.id`, `p.tsv @@ `+tsq, `$2::bigint + 1`, nil), args, pgx.RowTo[string])
	if err != nil {
		return false, fmt.Errorf("plan of the matches: %w", err)
	}
	return len(plan) == 1 && strings.Contains(plan[0], `"Index Name": "papers_created_at_id"`), nil
}

// rankedHit is a row of a statement with a full-text ranking: a hit, and whether the ranking
// was bounded (the same on every row).
type rankedHit struct {
	hit     paper.Hit
	bounded bool
}

func scanRankedHit(r pgx.CollectableRow) (rankedHit, error) {
	var h rankedHit
	err := r.Scan(&h.hit.ID, &h.hit.Title, &h.hit.TLDR, &h.hit.TLDRModel, &h.hit.Score, &h.bounded)
	return h, err
}

// rankedHits returns the hits of rows and sets rk.Bounded from them.
func rankedHits(rows []rankedHit, rk *Ranking) []paper.Hit {
	var hits []paper.Hit
	for _, r := range rows {
		hits = append(hits, r.hit)
		rk.Bounded = rk.Bounded || r.bounded
	}
	return hits
}

// latestTLDRJoin adds t.tldr, the latest TL;DR of p's current text, and t.model, the model that
// wrote it, to a query over papers p.
const latestTLDRJoin = `LEFT JOIN LATERAL (SELECT tldr, model FROM tldrs t WHERE t.paper_id = p.id AND t.content_hash = p.content_hash
	ORDER BY t.created_at DESC, t.model, t.prompt_version LIMIT 1) t ON true`

func scanHit(r pgx.CollectableRow) (paper.Hit, error) {
	var h paper.Hit
	err := r.Scan(&h.ID, &h.Title, &h.TLDR, &h.TLDRModel, &h.Score)
	return h, err
}

// SemanticSearch is Search for the text q a user typed, read as web-search syntax (see
// paper.ParseQuery): it returns the k papers nearest to vec (q's embedding) in space spaceID by
// cosine similarity, nearest first, leaving out every paper that matches an excluded word or
// phrase of q as KeywordSearch reads them, however near its vector is. vec should be the
// embedding of paper.ParseQuery(q).Text, which leaves the excluded words out. The papers are
// left out as the HNSW index scan returns them, which then walks on for more
// (hnsw.iterative_scan, see searchOptionsSQL): k papers come back while the space holds k
// without an excluded word among the hnsw.max_scan_tuples (20,000 by default) it visits. A
// vector whose length is not the space's dimension is an error wrapping
// paper.ErrSpaceMismatch. k must be 1 to 1000.
func (s *Store) SemanticSearch(ctx context.Context, spaceID int64, q string, vec []float32, k int) (_ []paper.Hit, err error) {
	defer func() { err = unavailable(ctx, err) }()
	hits, _, err := s.textVectorSearch(ctx, semanticQuery, spaceID, q, vec, k)
	return hits, err
}

// ExplainSemantic returns the query plan (EXPLAIN, text format) of the statement
// SemanticSearch runs, with the same settings, so tests and operators can check that it scans
// the space's HNSW index.
func (s *Store) ExplainSemantic(ctx context.Context, spaceID int64, q string, vec []float32, k int) (string, error) {
	return s.textVectorExplain(ctx, semanticQuery, spaceID, q, vec, k)
}

// vectorQueryInput checks the arguments of a search by the text q and its vector vec
// (SemanticSearch, HybridSearch) and returns the space. With semantic, only the excluded words
// of q reach SQL and are held to checkQuery's limit: a semantic search of a pasted abstract
// longer than it is fine.
func (s *Store) vectorQueryInput(ctx context.Context, spaceID int64, q string, vec []float32, k int, semantic bool) (spaceRow, error) {
	if err := checkK(k); err != nil {
		return spaceRow{}, err
	}
	if semantic {
		// Only the excluded words reach SQL (and its 4 KiB limit); the rest was embedded.
		if strings.TrimSpace(q) == "" {
			return spaceRow{}, fmt.Errorf("empty query: %w", paper.ErrInvalid)
		}
		if err := validText(q); err != nil {
			return spaceRow{}, err
		}
		if ex := paper.ParseQuery(q).Excluded; ex != "" {
			if err := checkQuery(ex); err != nil {
				return spaceRow{}, err
			}
		}
	} else if err := checkQuery(q); err != nil {
		return spaceRow{}, err
	}
	sp, err := s.space(ctx, spaceID)
	if err != nil {
		return spaceRow{}, err
	}
	if err := validateEmbedding(paper.Embedding{PaperID: "query", ContentHash: "-", Vector: vec}, sp); err != nil {
		return spaceRow{}, err
	}
	return sp, nil
}

// excludedFilter is the filter of a vector index scan (SemanticSearch's knnStatement, and
// HybridSearch's semantic ranking) that leaves out the excluded words and phrases of a query
// (paper.Query.Excluded, the statement's parameter param): a row of embeddings whose paper matches them is dropped
// as the index scan returns it. The paper's tsv is read by its primary key, one row per
// scanned row; a correlated subquery, not a join, so that the planner keeps the filter on the
// index scan instead of joining the scan's result.
func excludedFilter(param string) string {
	return ` AND NOT coalesce((SELECT p.tsv FROM papers p WHERE p.id = embeddings.paper_id) @@ ` + webSearchQuery(param) + `, false)`
}

// semanticStatement returns SemanticSearch's statement for space sp, the hnsw.ef_search it
// runs with, and its arguments: knnStatement's, with excludedFilter when q excludes words.
func (s *Store) semanticStatement(_ context.Context, sp spaceRow, q string, vec []float32, k int) (string, int, []any, error) {
	v, ef := vectorSQLFor(sp, "$1"), s.efFor(sp, k)
	args := []any{pgvector.NewVector(vec), "", k, v.candidates(k, ef)}
	filter := ""
	if excluded := paper.ParseQuery(q).Excluded; excluded != "" {
		filter = excludedFilter("$5")
		args = append(args, excluded)
	}
	return knnStatement(v.dist, v.order, sp.ID, filter), ef, args, nil
}

// HybridSearch returns the k papers that best match q by fusing two rankings with reciprocal
// rank fusion, in one SQL statement: the nearest neighbours of vec (q's embedding) in space
// spaceID by cosine similarity, and the full-text matches of q as KeywordSearch ranks them.
// Each ranking contributes its first max(4k, 50) candidates (at most 1000), and a paper's score
// is the sum over the rankings it appears in of 1/(RRFConstant + rank). A paper found by
// both ranks above one found by only one at the same rank. q is read as web-search syntax (see
// paper.ParseQuery): a paper that matches an excluded word or phrase is in neither ranking, so
// vec should be the embedding of paper.ParseQuery(q).Text, which leaves the excluded words out.
// A vector whose length is not the space's dimension is an error wrapping
// paper.ErrSpaceMismatch. k must be 1 to 1000. The keyword ranking is bounded as
// KeywordSearch's: see HybridSearchRanked, which says when.
func (s *Store) HybridSearch(ctx context.Context, spaceID int64, q string, vec []float32, k int) ([]paper.Hit, error) {
	hits, _, err := s.HybridSearchRanked(ctx, spaceID, q, vec, k)
	return hits, err
}

// HybridSearchRanked is HybridSearch, with how its keyword ranking was made: as
// KeywordSearchRanked's, from the Config.KeywordRankLimit newest matches when q matches more
// papers than that (Ranking.Bounded).
func (s *Store) HybridSearchRanked(ctx context.Context, spaceID int64, q string, vec []float32, k int) (_ []paper.Hit, _ Ranking, err error) {
	defer func() { err = unavailable(ctx, err) }()
	return s.textVectorSearch(ctx, hybridQuery, spaceID, q, vec, k)
}

// hybridStatement returns HybridSearch's statement for space sp, the hnsw.ef_search it runs
// with, and its arguments.
func (s *Store) hybridStatement(ctx context.Context, sp spaceRow, q string, vec []float32, k int) (string, int, []any, error) {
	v, cand := vectorSQLFor(sp, "$2"), hybridCandidates(k)
	ef := s.efFor(sp, cand)
	args := []any{q, pgvector.NewVector(vec), cand, k, RRFConstant, v.candidates(cand, ef), s.keywordLimit}
	excluded := paper.ParseQuery(q).Excluded
	if excluded != "" {
		args = append(args, excluded)
	}
	edges, err := s.keywordEdges(ctx, q, &args)
	if err != nil {
		return "", 0, nil, err
	}
	return hybridSQL(v, sp.ID, q, excluded != "", edges), ef, args, nil
}

// hybridCandidates is how many papers each ranking of a hybrid search for k results offers
// to the fusion.
func hybridCandidates(k int) int { return min(max(4*k, 50), MaxK) }

// hybridSQL is the hybrid statement of one space, whose vectors appear as v (with the query
// vector as $2): $1 the text, $2 the query vector, $3 the candidates per ranking, $4 k, $5 the
// RRF constant, $6 the rows the vector index scan returns ($3, or more for a binary index,
// re-ranked by exact distance as in knnStatement), $7 the keyword rank limit
// (Config.KeywordRankLimit). The semantic CTE repeats the space's index expression and literal
// space_id predicate (see knnStatement) so that it is answered from the space's HNSW index; the
// keyword CTEs rank the $7 newest matches as KeywordSearch does (keywordCandidates). The last
// column says whether more than $7 matched. With exclude, $8 is
// the query's excluded words and phrases (paper.Query.Excluded), and a paper matching them is
// left out of both rankings: of the semantic one as the index scan returns it
// (excludedFilter), so that the scan walks on for candidates without them, as SemanticSearch's;
// of the keyword one by its tsquery (keywordTSQuery). edges are the parameters of the keyword
// ranking's windows (keywordCandidates), after $7 or $8.
func hybridSQL(v vectorSQL, spaceID int64, q string, exclude bool, edges []string) string {
	semanticWhere, tsq := "", tsQuery
	if exclude {
		semanticWhere = excludedFilter("$8")
		tsq, _ = keywordTSQuery(q, "$1", "$8")
	}
	return `WITH semantic AS (
	SELECT paper_id, row_number() OVER (ORDER BY dist, paper_id) AS rank
	FROM (
		SELECT c.paper_id, c.dist FROM (
			SELECT paper_id, ` + v.dist + ` AS dist
			FROM embeddings
			WHERE space_id = ` + itoa(spaceID) + semanticWhere + `
			ORDER BY ` + v.order + `
			LIMIT $6
		) c
		ORDER BY c.dist, c.paper_id
		LIMIT $3
	) n
), ` + keywordCandidates("kcand", tsq, "$7", edges) + `, keyword AS (
	SELECT id AS paper_id, row_number() OVER (ORDER BY r DESC, id) AS rank
	FROM (` + keywordRanked("kcand", tsq, "$7", "$3") + `) m
), fused AS (
	SELECT coalesce(s.paper_id, kw.paper_id) AS paper_id,
		coalesce(1.0 / ($5::int + s.rank), 0) + coalesce(1.0 / ($5::int + kw.rank), 0) AS score
	FROM semantic s FULL OUTER JOIN keyword kw ON kw.paper_id = s.paper_id
	ORDER BY score DESC, paper_id
	LIMIT $4
)
SELECT f.paper_id, p.title, coalesce(t.tldr, ''), coalesce(t.model, ''), f.score::float8, (SELECT count(*) FROM kcand) > $7::bigint
FROM fused f
JOIN papers p ON p.id = f.paper_id
` + latestTLDRJoin + `
ORDER BY f.score DESC, f.paper_id`
}

// ExplainHybrid returns the query plan (EXPLAIN, text format) of the statement HybridSearch
// runs, with the same settings, so tests and operators can check which indexes it uses.
func (s *Store) ExplainHybrid(ctx context.Context, spaceID int64, q string, vec []float32, k int) (string, error) {
	return s.textVectorExplain(ctx, hybridQuery, spaceID, q, vec, k)
}

// textVectorQuery is one of the searches by a typed query and its vector: its name in errors,
// whether only its excluded words reach SQL (semantic, see vectorQueryInput), and its statement.
// Whether its statement has a full-text ranking (ranked): its rows end with the column that
// says whether it was bounded.
type textVectorQuery struct {
	name      string
	semantic  bool
	ranked    bool
	statement func(s *Store, ctx context.Context, sp spaceRow, q string, vec []float32, k int) (string, int, []any, error)
}

var (
	semanticQuery = textVectorQuery{"semantic search", true, false, (*Store).semanticStatement}
	hybridQuery   = textVectorQuery{"hybrid search", false, true, (*Store).hybridStatement}
)

// textVectorSearch runs query's statement for q and vec in space spaceID.
func (s *Store) textVectorSearch(ctx context.Context, query textVectorQuery, spaceID int64, q string, vec []float32, k int) ([]paper.Hit, Ranking, error) {
	rk := Ranking{Limit: s.keywordLimit}
	sp, err := s.vectorQueryInput(ctx, spaceID, q, vec, k, query.semantic)
	if err != nil {
		return nil, rk, fmt.Errorf("%s: %w", query.name, err)
	}
	sql, ef, args, err := query.statement(s, ctx, sp, pgQuery(q), vec, k)
	if err != nil {
		return nil, rk, fmt.Errorf("%s %.60q in space %s: %w", query.name, q, sp.Name(), err)
	}
	var hits []paper.Hit
	if query.ranked {
		var rows []rankedHit
		rows, err = searchRows(ctx, s, ef, sql, args, scanRankedHit)
		hits = rankedHits(rows, &rk)
	} else {
		hits, err = searchRows(ctx, s, ef, sql, args, scanHit)
	}
	if err != nil {
		return nil, rk, fmt.Errorf("%s %.60q in space %s: %w", query.name, q, sp.Name(), err)
	}
	return hits, rk, nil
}

// textVectorExplain returns the plan of the statement textVectorSearch runs, with its settings.
func (s *Store) textVectorExplain(ctx context.Context, query textVectorQuery, spaceID int64, q string, vec []float32, k int) (string, error) {
	sp, err := s.vectorQueryInput(ctx, spaceID, q, vec, k, query.semantic)
	if err != nil {
		return "", fmt.Errorf("explain %s: %w", query.name, err)
	}
	sql, ef, args, err := query.statement(s, ctx, sp, pgQuery(q), vec, k)
	if err != nil {
		return "", fmt.Errorf("explain %s in space %s: %w", query.name, sp.Name(), err)
	}
	lines, err := searchRows(ctx, s, ef, "EXPLAIN (FORMAT TEXT) "+sql, args, pgx.RowTo[string])
	if err != nil {
		return "", fmt.Errorf("explain %s in space %s: %w", query.name, sp.Name(), err)
	}
	return strings.Join(lines, "\n"), nil
}

// ListFilter narrows ListFiltered. The zero value lists every paper.
type ListFilter struct {
	// Since keeps papers stored at or after this time (their created_at, the time List orders
	// by). created_at is when the paper's insert began; its transaction commits later (up to
	// RowLockTimeout per locked row the write meets), so a poller should overlap its polls by
	// a margin (a minute is safe) and drop the ids it has seen. created_at is the database's
	// clock: a poller takes its next Since from the newest created_at it read, not its own clock.
	// Defaults to the zero time: no limit.
	Since time.Time
	// Category keeps papers with this category among theirs, compared exactly ("cs.LG") once
	// folded as ingest stores a category (foldCategory). Defaults to "": any.
	Category string
	// Text keeps papers whose title or abstract matches this full-text query (web-search
	// syntax, as KeywordSearch reads it); a text of only stop words or punctuation, which
	// full-text search ignores, can match nothing, and is an error wrapping
	// paper.ErrNoSearchTerms. Defaults to "": any.
	Text string
}

// ListFiltered is List with filters: up to limit papers that pass f, newest first, after the
// position before (nil for the first page), and the cursor of the next page, nil on the last
// one. limit must be 1 to 1000. Bad filter values are errors wrapping paper.ErrInvalid; a
// Text full-text search ignores whole one wrapping paper.ErrNoSearchTerms.
func (s *Store) ListFiltered(ctx context.Context, f ListFilter, limit int, before *Cursor) (_ []paper.Record, _ *Cursor, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if limit < 1 || limit > MaxListLimit {
		return nil, nil, fmt.Errorf("list papers: limit is %d, want 1 to %d: %w", limit, MaxListLimit, paper.ErrInvalid)
	}
	var (
		conds []string
		args  = []any{limit + 1}
	)
	param := func(v any) string {
		args = append(args, v)
		return "$" + strconv.Itoa(len(args))
	}
	if !f.Since.IsZero() {
		conds = append(conds, "p.created_at >= "+param(f.Since))
	}
	if f.Category != "" {
		if err := validText(f.Category); err != nil {
			return nil, nil, fmt.Errorf("list papers: category: %w", err)
		}
		conds = append(conds, "p.categories @> ARRAY["+param(foldCategory(f.Category))+"::text]")
	}
	if strings.TrimSpace(f.Text) != "" {
		if err := checkQuery(f.Text); err != nil {
			return nil, nil, fmt.Errorf("list papers: text: %w", err)
		}
		// Read as a keyword search reads it: "a or -b" leaves out the papers with b too.
		text := pgQuery(f.Text)
		textParam := param(text)
		var tsq string
		tsq, args = keywordTSQueryArgs(text, textParam, args)
		conds = append(conds, "p.tsv @@ "+tsq)
	}
	if before != nil {
		conds = append(conds, "(p.created_at, p.id) < ("+param(before.createdAt)+", "+param(before.id)+")")
	}
	q := recordSQL
	if len(conds) > 0 {
		q += " WHERE " + strings.Join(conds, " AND ")
	}
	q += " ORDER BY p.created_at DESC, p.id DESC LIMIT $1"
	rows, err := s.pool.Query(ctx, q, args...)
	if err != nil {
		return nil, nil, fmt.Errorf("list papers: %w", err)
	}
	recs, err := pgx.CollectRows(rows, scanRecord)
	if err != nil {
		return nil, nil, fmt.Errorf("list papers: %w", err)
	}
	if len(recs) == 0 && strings.TrimSpace(f.Text) != "" {
		// Found nothing: say so when the text could match nothing.
		none, err := s.matchesNothing(ctx, pgQuery(f.Text))
		if err != nil {
			return nil, nil, fmt.Errorf("list papers: %w", err)
		}
		if none {
			return nil, nil, fmt.Errorf("list papers: text %.60q has only stop words or punctuation: %w", f.Text, paper.ErrNoSearchTerms)
		}
	}
	if len(recs) <= limit {
		return recs, nil, nil
	}
	recs = recs[:limit]
	last := recs[limit-1]
	return recs, &Cursor{createdAt: last.CreatedAt, id: last.ID}, nil
}

// Categories returns the categories of the archive with how many papers carry each, most
// common first, at most limit of them.
func (s *Store) Categories(ctx context.Context, limit int) ([]CategoryCount, error) {
	if limit < 1 || limit > MaxListLimit {
		return nil, fmt.Errorf("categories: limit is %d, want 1 to %d: %w", limit, MaxListLimit, paper.ErrInvalid)
	}
	rows, err := s.pool.Query(ctx, `SELECT c, count(*) FROM papers, unnest(categories) AS c
		GROUP BY c ORDER BY count(*) DESC, c LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (CategoryCount, error) {
		var c CategoryCount
		err := r.Scan(&c.Category, &c.Papers)
		return c, err
	})
	if err != nil {
		return nil, fmt.Errorf("categories: %w", err)
	}
	return out, nil
}

// CategoryCount is one category and the number of papers that carry it.
type CategoryCount struct {
	Category string
	Papers   int64
}

// MapPoint is one paper's vector with what a map of the archive labels it with.
type MapPoint struct {
	ID         string
	Title      string
	Categories []string
	Vector     []float32
}

// mapFrom is the vectors of space $1 of their papers' current text.
const mapFrom = ` FROM embeddings e JOIN papers p ON p.id = e.paper_id AND p.content_hash = e.content_hash
	WHERE e.space_id = $1`

// mapSampleSQL is MapPoints' sample: the ids are sorted and cut to $2 first, and only then are
// the sample's vectors read. Sorting the rows with their vectors (3 kB each at 768
// dimensions) spilled the whole space to temporary files at every request: ~1 GB at 300k.
const mapSampleSQL = `WITH sample AS (SELECT p.id` + mapFrom + ` ORDER BY md5(p.id), p.id LIMIT $2)
	SELECT p.id, p.title, p.categories, e.embedding FROM sample
	JOIN papers p ON p.id = sample.id
	JOIN embeddings e ON e.space_id = $1 AND e.paper_id = p.id AND e.content_hash = p.content_hash
	ORDER BY md5(p.id), p.id`

// MapPoints returns the vectors of space spaceID (of the papers' current text) with their
// papers' ids, titles and categories, and how many such vectors the space holds. When it holds
// more than limit, a deterministic sample of limit of them is returned: the same papers on
// every call while the archive does not change (ordered by the MD5 of their id, which is
// independent of when or in what order they arrived). The points come in that order. limit
// must be at least 1.
func (s *Store) MapPoints(ctx context.Context, spaceID int64, limit int) (_ []MapPoint, _ int, err error) {
	defer func() { err = unavailable(ctx, err) }()
	if limit < 1 {
		return nil, 0, fmt.Errorf("map points: limit is %d, want at least 1: %w", limit, paper.ErrInvalid)
	}
	sp, err := s.space(ctx, spaceID)
	if err != nil {
		return nil, 0, fmt.Errorf("map points: %w", err)
	}
	var (
		out   []MapPoint
		total int
	)
	err = pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{AccessMode: pgx.ReadOnly, IsoLevel: pgx.RepeatableRead}, func(tx pgx.Tx) error {
		if err := tx.QueryRow(ctx, `SELECT count(*)`+mapFrom, spaceID).Scan(&total); err != nil {
			return err
		}
		rows, err := tx.Query(ctx, mapSampleSQL, spaceID, limit)
		if err != nil {
			return err
		}
		out, err = pgx.CollectRows(rows, func(r pgx.CollectableRow) (MapPoint, error) {
			var (
				m MapPoint
				v pgvector.Vector
			)
			err := r.Scan(&m.ID, &m.Title, &m.Categories, &v)
			m.Vector = v.Slice()
			return m, err
		})
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("map points of space %s: %w", sp.Name(), err)
	}
	return out, total, nil
}

// foldCategory is category c as ingest and the API's records store a category: in NFC, its
// words separated by one space. A filter compared as typed missed the papers of a category
// typed decomposed ("Fi" + U+0301 + "sica") or with other white space than stored.
func foldCategory(c string) string { return paper.Fold(c) }
