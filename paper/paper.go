package paper

import (
	"crypto/sha256"
	"encoding/hex"
	"math"
	"strconv"
	"time"
	"unicode"
	"unicode/utf8"
)

// Abstract is one paper as it arrives from a source: the unit that is published, processed and
// stored. ID is canonical (see CanonicalID); ContentHash identifies the text that models see.
type Abstract struct {
	ID         string    `json:"id"`
	Title      string    `json:"title"`
	Abstract   string    `json:"abstract"`
	Authors    []string  `json:"authors,omitempty"`
	Categories []string  `json:"categories,omitempty"`
	Published  time.Time `json:"published,omitzero"`
	URL        string    `json:"url,omitempty"`
	// Source names where the record came from, as "file:line" or a URL; informational only.
	Source string `json:"source,omitempty"`
	// LegacyHash, when set, is the content hash of the text as a release before 2026-12-06
	// stored it: arXiv's TeX accent commands as they came ("Schr\"odinger"), a PDF's
	// ligatures ("eﬃcient"), which ingest now writes as letters (Schrödinger, efficient). A
	// paper stored with that hash holds the same text, and the store keeps its TL;DR and
	// vector for the new form (store.UpsertPapers) rather than buying them again.
	LegacyHash string `json:"legacy_hash,omitempty"`
	// TextAt is when the text was read from its source (a worker sets it to the time the queue
	// stored the message); the store keeps a newer text over an older one. Zero means now.
	TextAt time.Time `json:"-"`
	// CreatedAt, when set, is when the archive an export came from first stored the paper
	// (import): a paper the store does not hold yet is stored with it as its created_at, which
	// orders lists and searches by date; one it holds keeps its own. Zero means now.
	CreatedAt time.Time `json:"-"`
}

// ContentHash returns the hex SHA-256 of the normalised title and abstract: the text a model
// sees. Two records with the same hash need no new TL;DR or embedding. Whitespace runs are
// folded so that re-wrapped text hashes the same.
func (a Abstract) ContentHash() string {
	buf := make([]byte, 0, len(a.Title)+len(a.Abstract)+1)
	buf = appendFolded(buf, a.Title)
	buf = append(buf, 0)
	buf = appendFolded(buf, a.Abstract)
	sum := sha256.Sum256(buf)
	return hex.EncodeToString(sum[:])
}

// appendFolded appends s trimmed, with every run of white space replaced by one space (what
// strings.Join(strings.FieldsFunc(s, unicode.IsSpace), " ") gives, bytes that are not valid
// UTF-8 included, in one pass and without allocating: the hash is computed several times per
// paper on the pipeline's hot path). Runs of ASCII that is not white space are copied whole;
// only other bytes are decoded.
func appendFolded(dst []byte, s string) []byte {
	wrote, space := false, false
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if asciiSpace[c] {
				space = wrote
				i++
				continue
			}
			j := i + 1
			for j < len(s) && s[j] < utf8.RuneSelf && !asciiSpace[s[j]] {
				j++
			}
			if space {
				dst = append(dst, ' ')
				space = false
			}
			dst = append(dst, s[i:j]...)
			wrote = true
			i = j
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if unicode.IsSpace(r) {
			space = wrote
		} else {
			if space {
				dst = append(dst, ' ')
				space = false
			}
			dst = append(dst, s[i:i+size]...)
			wrote = true
		}
		i += size
	}
	return dst
}

// asciiSpace holds the ASCII bytes unicode.IsSpace reports.
var asciiSpace = [utf8.RuneSelf]bool{'\t': true, '\n': true, '\v': true, '\f': true, '\r': true, ' ': true}

// Summary is a one-sentence TL;DR of a paper, with what made it.
type Summary struct {
	PaperID       string `json:"id"`
	Text          string `json:"tldr"`
	Model         string `json:"model"`
	PromptVersion string `json:"prompt_version"`
	// ContentHash is the Abstract.ContentHash the TL;DR was made from.
	ContentHash string `json:"content_hash"`
	// Validation says how the text passed validation: ValidOK, ValidRetried or ValidCleaned.
	Validation string `json:"validation,omitempty"`
	Usage      Usage  `json:"-"`
	// WrittenAt is when the TL;DR was written, for one read from another archive (an export's
	// tldr_created_at); the zero time means now, as for every TL;DR a model writes here.
	WrittenAt time.Time `json:"-"`
}

// Withheld is a TL;DR the API will not give for a paper's text under a target (a
// WithheldError's): its content filter withheld the answer, or the model refused. While the
// paper's text (ContentHash) and the target (Model, PromptVersion) are these, no run asks for
// it again: each bought the same refusal.
type Withheld struct {
	PaperID       string    `json:"paper_id"`
	Model         string    `json:"model"`
	PromptVersion string    `json:"prompt_version"`
	ContentHash   string    `json:"content_hash"`
	Reason        string    `json:"reason"`
	At            time.Time `json:"withheld_at"`
}

// Validation outcomes recorded with each Summary.
const (
	ValidOK      = "ok"      // the first answer was valid
	ValidRetried = "retried" // the first answer was invalid, the stricter retry was valid
	ValidCleaned = "cleaned" // both answers were invalid; the text was cleaned deterministically
)

// Embedding is the vector of one paper in one embedding space.
type Embedding struct {
	PaperID     string    `json:"id"`
	Vector      []float32 `json:"embedding"`
	ContentHash string    `json:"content_hash"`
	// Truncated is true when the input was cut to fit the model's context.
	Truncated bool  `json:"truncated,omitempty"`
	Usage     Usage `json:"-"`
}

// VectorFault says what makes v unusable as an embedding: nonFinite is the index of its first
// NaN or infinite value (-1 when every value is finite), and zero whether every value is zero
// (reported only when all are finite) — the zero vector has no direction, so its cosine
// distance to anything is NaN: a paper with it would be nobody's neighbour, and a query made of
// it would score every paper NaN. The embedding client, the batch runner, `import` and the
// store all check vectors with it.
func VectorFault(v []float32) (nonFinite int, zero bool) {
	zero = true
	for i, x := range v {
		if math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) {
			return i, false
		}
		zero = zero && x == 0
	}
	return -1, zero
}

// Space is an embedding space: vectors of one model, dimension and input template. Vectors of
// different spaces are never compared.
type Space struct {
	ID         int64  `json:"id,omitempty"`
	Model      string `json:"model"`
	Dimensions int    `json:"dimensions"`
	// Template names how a paper becomes the embedded text (see embed.Template).
	Template string `json:"template"`
	Active   bool   `json:"active,omitempty"`
}

// Name is the space's human-readable identity: model/dimensions/template.
func (s Space) Name() string {
	return s.Model + "/" + strconv.Itoa(s.Dimensions) + "/" + s.Template
}

// Usage is what one or more API calls cost: requests and tokens, by model and kind.
type Usage struct {
	Model        string `json:"model"`
	Kind         string `json:"kind"` // KindChat or KindEmbedding
	Requests     int    `json:"requests"`
	InputTokens  int    `json:"input_tokens"`
	OutputTokens int    `json:"output_tokens"`
}

// Usage kinds.
const (
	KindChat      = "chat"
	KindEmbedding = "embedding"
)

// FormatUSD writes an amount of US dollars as paperpipe shows costs (`status`, the status page,
// `reprocess --dry-run`): cents, and a sum under a cent to the millionth of a dollar (a few
// thousand query embeddings cost hundredths of a cent, which "$0.00" would hide).
func FormatUSD(v float64) string {
	if v != 0 && v < 0.01 {
		return "$" + strconv.FormatFloat(v, 'f', 6, 64)
	}
	return "$" + strconv.FormatFloat(v, 'f', 2, 64)
}

// Record is a stored paper with its latest TL;DR, as the query surfaces show it.
type Record struct {
	Abstract
	ContentHash string    `json:"content_hash"`
	TLDR        *Summary  `json:"tldr,omitempty"`
	Embedded    bool      `json:"embedded"`
	CreatedAt   time.Time `json:"created_at"`
}

// Hit is one result of a related-papers or search query.
type Hit struct {
	ID    string `json:"id"`
	Title string `json:"title"`
	TLDR  string `json:"tldr,omitempty"`
	// TLDRModel names the model that wrote TLDR (paperpipe-offline-extractive for the offline
	// summarizer), so that a list of hits tells an extractive TL;DR from an LLM's.
	TLDRModel string `json:"tldr_model,omitempty"`
	// Score is the cosine similarity for vector queries (1 is identical), PostgreSQL's cover
	// density ts_rank_cd normalised to [0, 1) for keyword queries, or the fused score for hybrid
	// queries; higher is better.
	Score float64 `json:"score"`
}

// Work names what the configured models produce: the key under which a TL;DR or an embedding
// counts as done. A paper needs no API call when results for its current content hash exist
// under the same Work.
type Work struct {
	Model         string // summarizer model
	PromptVersion string // summarizer prompt version
	SpaceID       int64  // embedding space
}

// Pending says what one paper still needs under a Work after it was stored.
type Pending struct {
	// ID is the paper's id and ContentHash the hash of its stored text.
	ID, ContentHash string
	// NeedTLDR is true when no TL;DR of Work.Model and Work.PromptVersion exists for the
	// current text; NeedEmbedding when space Work.SpaceID holds no vector of the current text.
	NeedTLDR, NeedEmbedding bool
	// Changed is true when the paper was stored before with a different text.
	Changed bool
	// New is true when the paper was not stored before.
	New bool
	// NoSpace is true when Work.SpaceID names a space that no longer exists (it was dropped):
	// no vector can be stored there, so NeedEmbedding is false.
	NoSpace bool
	// Removed is true when the paper was removed (paperpipe remove) after this text of it was
	// read: nothing was stored and nothing is needed.
	Removed bool
}
