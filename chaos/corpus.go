package chaos

import (
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

// Corpus derives n distinct abstracts from base (the sample archive): abstract i takes the
// sentences of base paper i mod len(base) in a seeded shuffled order behind a first sentence
// that states a contribution, and ends with a sentence of its own, so every id, text and
// content hash differs.
//
// The fake's TL;DR is an abstract's first sentence (without a lead-in such as "This paper").
// The corpus opens every abstract with a sentence that is a valid TL;DR as it stands (one
// sentence, no preamble, at most 25 words): one of the paper's own when it has one, else one
// built from its title. Any validation retry left in a run is then real (a junk answer), and
// the cases' request counts do not depend on how the fake rewrites a first sentence.
func Corpus(base []paper.Abstract, n int, seed uint64) []paper.Abstract {
	rng := rand.New(rand.NewPCG(seed, 0x5eed))
	out := make([]paper.Abstract, 0, n)
	for i := range n {
		b := base[i%len(base)]
		sents := summarize.Sentences(b.Abstract)
		lead := -1
		for k, s := range sents {
			if goodLead(s, b.Abstract) {
				lead = k
				break
			}
		}
		var first string
		rest := make([]string, 0, len(sents))
		for k, s := range sents {
			if k == lead {
				first = s
				continue
			}
			rest = append(rest, s)
		}
		if first == "" {
			first = "We study " + strings.TrimRight(oneLine(b.Title), ".") + "."
		}
		rng.Shuffle(len(rest), func(a, c int) { rest[a], rest[c] = rest[c], rest[a] })
		text := strings.Join(append(append([]string{first}, rest...),
			fmt.Sprintf("Code and data for configuration %d are released.", i+1)), " ")
		id, err := paper.CanonicalID(fmt.Sprintf("chaos-%05d", i+1))
		if err != nil {
			panic(err) // cannot happen: the id is not empty
		}
		out = append(out, paper.Abstract{
			ID:       id,
			Title:    fmt.Sprintf("%s (variant %d)", oneLine(b.Title), i+1),
			Abstract: text,
		})
	}
	return out
}

// goodLead reports whether s is a sentence the fake's TL;DR can be taken from as it is.
func goodLead(s, abstract string) bool {
	words := strings.Fields(s)
	if len(words) < 6 || len(words) > 25 || !strings.HasSuffix(s, ".") {
		return false
	}
	// One full stop, at the end: the fake's and the validator's sentence splitters agree.
	if strings.Count(s, ".") != 1 || strings.ContainsAny(s, "?!;:\"") {
		return false
	}
	return summarize.Validate(s, abstract, 30) == nil
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// WriteJSONL writes abstracts as paperpipe's JSONL ingest format.
func WriteJSONL(w io.Writer, papers []paper.Abstract) error {
	enc := json.NewEncoder(w)
	for _, a := range papers {
		if err := enc.Encode(map[string]string{"id": a.ID, "title": a.Title, "abstract": a.Abstract}); err != nil {
			return fmt.Errorf("write %s: %w", a.ID, err)
		}
	}
	return nil
}
