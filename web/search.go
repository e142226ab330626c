package web

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"runtime/debug"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"golang.org/x/text/unicode/norm"

	"github.com/paperpipe/paperpipe/paper"
)

// Search modes.
const (
	ModeHybrid   = "hybrid"
	ModeSemantic = "semantic"
	ModeKeyword  = "keyword"
)

// searchParams is a validated search request.
type searchParams struct {
	q    string
	k    int
	mode string
	// explicitMode is false when the request named no mode (the UI then falls back to keyword
	// search when the embedder cannot serve the active space).
	explicitMode bool
	// embedWait, when above 0, bounds the wait for the query's embedding: past it the search
	// fails with a 504 (errEmbedWait), which the search page falls back from.
	embedWait time.Duration
}

// SearchResult is what a search found: the body of GET /api/search.
type SearchResult struct {
	Query   string      `json:"query"`
	Mode    string      `json:"mode"`
	Space   string      `json:"space,omitempty"` // the embedding space, for semantic and hybrid
	Results []paper.Hit `json:"results"`
	// CachedEmbedding is true when the query's embedding came from the cache, or from a search
	// of the same text made at the same time: this search made no API call.
	CachedEmbedding bool `json:"cached_embedding,omitempty"`
	// Notice says why the search ran in another mode than asked (a hybrid search of text the
	// model cannot embed runs as a keyword search), or why it found nothing (a keyword search
	// of stop words only).
	Notice string `json:"notice,omitempty"`
	// BoundedRanking is set when the query matched more papers than a keyword ranking ranks
	// (keyword mode, and hybrid mode's keyword ranking): only the newest of its matches were
	// ranked.
	BoundedRanking *BoundedRanking `json:"bounded_ranking,omitempty"`
}

// BoundedRanking says that a keyword ranking ranked only the RankedNewest most recently stored
// of the query's matches, of at least MatchesAtLeast.
type BoundedRanking struct {
	RankedNewest   int `json:"ranked_newest"`
	MatchesAtLeast int `json:"matches_at_least"`
}

// bounded is res.BoundedRanking for rk.
func bounded(rk Ranking) *BoundedRanking {
	if !rk.Bounded {
		return nil
	}
	return &BoundedRanking{RankedNewest: rk.Limit, MatchesAtLeast: rk.Limit + 1}
}

// parseSearch validates q, k and mode.
func parseSearch(r *http.Request) (searchParams, error) {
	v := r.URL.Query()
	p := searchParams{q: strings.TrimSpace(v.Get("q")), mode: v.Get("mode")}
	if err := checkText("q", p.q); err != nil {
		return p, err
	}
	if p.q == "" {
		return p, badRequest("q is required: the text to search for")
	}
	if n := utf8.RuneCountInString(p.q); n > MaxQueryChars {
		return p, badRequest(fmt.Sprintf("q is %d characters, limit %d", n, MaxQueryChars))
	}
	var err error
	if p.k, err = parseK(v.Get("k")); err != nil {
		return p, err
	}
	switch p.mode {
	case "":
		p.mode = ModeHybrid
	case ModeHybrid, ModeSemantic, ModeKeyword:
		p.explicitMode = true
	default:
		return p, badRequest(fmt.Sprintf("mode %.40q is unknown: want semantic, keyword or hybrid", p.mode))
	}
	return p, nil
}

// parseK reads k: DefaultK when empty, else 1 to MaxK.
func parseK(s string) (int, error) {
	if s == "" {
		return DefaultK, nil
	}
	k, err := strconv.Atoi(s)
	if err != nil || k < 1 || k > MaxK {
		return 0, badRequest(fmt.Sprintf("k is %.20q, want a whole number from 1 to %d", s, MaxK))
	}
	return k, nil
}

// search runs p, recording its latency by mode.
func (s *Server) search(ctx context.Context, p searchParams) (SearchResult, error) {
	start := time.Now()
	res, err := s.runSearch(ctx, p)
	s.cfg.Metrics.ObserveSearch(p.mode, time.Since(start), err)
	return res, err
}

func (s *Server) runSearch(ctx context.Context, p searchParams) (SearchResult, error) {
	res, err := Search(ctx, s.cfg.Store, serverQueries{s, p.embedWait}, p.q, p.k, p.mode)
	var nw *NoWordsError
	if errors.As(err, &nw) {
		return res, &httpError{status: http.StatusBadRequest, err: errNoWords,
			msg: nw.Error() + "; search with mode=keyword"}
	}
	return res, err
}

// searchHeadCheck is what a HEAD request of a search checks besides its parameters: that the
// vectors can be used, for a semantic or hybrid search. It makes no API call: a HEAD, which
// link checkers and previewers send, answers the status and headers of the GET (bar a failure
// of the embedding API) without searching.
func (s *Server) searchHeadCheck(ctx context.Context, p searchParams) error {
	if p.mode == ModeKeyword {
		return nil
	}
	_, err := s.querySpace(ctx)
	return err
}

// SearchStore is what a search reads from the database.
type SearchStore interface {
	// SemanticSearch returns the k papers nearest to vec, the embedding of the text of the
	// web-search query q (paper.ParseQuery), in space spaceID, leaving out the papers that
	// match an excluded word or phrase of q.
	SemanticSearch(ctx context.Context, spaceID int64, q string, vec []float32, k int) ([]paper.Hit, error)
	// KeywordSearch returns the k best full-text matches of q, and how they were ranked.
	KeywordSearch(ctx context.Context, q string, k int) ([]paper.Hit, Ranking, error)
	// HybridSearch fuses SemanticSearch and KeywordSearch by reciprocal rank fusion, and says
	// how the keyword ranking was made.
	HybridSearch(ctx context.Context, spaceID int64, q string, vec []float32, k int) ([]paper.Hit, Ranking, error)
}

// QueryVectors makes the vector a semantic or hybrid search looks for.
type QueryVectors interface {
	// QuerySpace returns the embedding space to search in, or an error that says why there
	// is none a query can be embedded for.
	QuerySpace(ctx context.Context) (paper.Space, error)
	// EmbedQuery returns the vector of text in sp, and whether it was had without an API call.
	EmbedQuery(ctx context.Context, sp paper.Space, text string) (vec []float32, cached bool, err error)
}

// NoWordsError is the error of a semantic search of text the embedding model Model makes the
// zero vector of: nothing in it is a word the model knows, or it has only excluded words.
type NoWordsError struct{ Model string }

func (e *NoWordsError) Error() string {
	return fmt.Sprintf("the query has no words the embedding model %s can use (excluded words do not count)", e.Model)
}

func (e *NoWordsError) Unwrap() error { return errNoWords }

// Search runs the search q in mode (ModeSemantic, ModeKeyword or ModeHybrid) for up to k
// papers: GET /api/search, the search page and `paperpipe search` all search with it, so that
// they fall back to keyword search, and say why, alike. emb is not used in keyword mode (it
// may be nil there). A semantic search of text the model makes no vector of is a
// *NoWordsError; a hybrid one runs as a keyword search, with a notice.
func Search(ctx context.Context, st SearchStore, emb QueryVectors, q string, k int, mode string) (SearchResult, error) {
	res := SearchResult{Query: q, Mode: mode, Results: []paper.Hit{}}
	// The store's errors name the search they are of ("keyword search: …").
	if mode == ModeKeyword {
		hits, rk, err := st.KeywordSearch(ctx, q, k)
		if errors.Is(err, paper.ErrNoSearchTerms) {
			res.Notice = noSearchTerms
			return res, nil
		}
		if err != nil {
			return res, err
		}
		res.Results, res.BoundedRanking = nonNil(hits), bounded(rk)
		return res, nil
	}
	sp, err := emb.QuerySpace(ctx)
	if err != nil {
		return res, err
	}
	res.Space = sp.Name()
	// What is embedded is the text without the web-search syntax and the excluded words:
	// embedding "-marsupials" would pull the results toward marsupials.
	var (
		vec    []float32
		cached bool
	)
	// In NFC, the form of the stored text (ingest): the offline models split a decomposed
	// "nai\u0308ve" at its combining mark, and hash the bytes of what is left.
	text := paper.ParseQuery(norm.NFC.String(q)).Text
	if text != "" {
		if vec, cached, err = emb.EmbedQuery(ctx, sp, text); err != nil {
			return res, err
		}
	}
	if isZero(vec) {
		// Nothing in the text is a word the model knows (a stop word, an arXiv id for the
		// offline models), or it has only excluded words: no vector, so no paper's neighbour.
		if mode == ModeSemantic {
			return res, &NoWordsError{Model: sp.Model}
		}
		// The fusion of no ranking with the keyword ranking is the keyword ranking.
		hits, rk, err := st.KeywordSearch(ctx, q, k)
		res.Mode, res.Space, res.Results, res.BoundedRanking = ModeKeyword, "", nonNil(hits), bounded(rk)
		res.Notice = fmt.Sprintf("the query has no words the embedding model %s can use; showing keyword results", sp.Model)
		if text == "" {
			res.Notice = "the query has only excluded words, nothing to look for by meaning; showing keyword results: papers without them"
		}
		if errors.Is(err, paper.ErrNoSearchTerms) {
			res.Notice = fmt.Sprintf("the query has no words the embedding model %s can use, and %s", sp.Model, noSearchTerms)
			return res, nil
		}
		if err != nil {
			return res, err
		}
		return res, nil
	}
	res.CachedEmbedding = cached // only a vector that is used (not a zero one) counts
	var (
		hits []paper.Hit
		rk   Ranking
	)
	if mode == ModeSemantic {
		hits, err = st.SemanticSearch(ctx, sp.ID, q, vec, k)
	} else {
		hits, rk, err = st.HybridSearch(ctx, sp.ID, q, vec, k)
	}
	if err != nil {
		return res, err
	}
	res.Results, res.BoundedRanking = nonNil(hits), bounded(rk)
	return res, nil
}

// serverQueries is the server's QueryVectors: its embedder, its cache of query vectors and
// its answers of why a query cannot be embedded; wait, when above 0, bounds the wait for an
// embedding.
type serverQueries struct {
	s    *Server
	wait time.Duration
}

func (q serverQueries) QuerySpace(ctx context.Context) (paper.Space, error) {
	return q.s.querySpace(ctx)
}

func (q serverQueries) EmbedQuery(ctx context.Context, sp paper.Space, text string) ([]float32, bool, error) {
	return q.s.embedQuery(ctx, sp, text, q.wait)
}

// withoutKeywordAdvice is msg, an answer of why the vectors cannot be used, without its advice
// to search with mode=keyword: the search page that falls back shows keyword results already.
func withoutKeywordAdvice(msg string) string {
	for _, advice := range []string{"; use mode=keyword", ", or use mode=keyword", "; search with mode=keyword"} {
		if m, ok := strings.CutSuffix(msg, advice); ok {
			return m
		}
	}
	return msg
}

// errEmbedWait is the cause of a search whose query embedding took longer than its
// searchParams.embedWait.
var errEmbedWait = errors.New("the query's embedding took longer than the search page waits for it")

// maxEmbedWait is the longest the search page without a mode waits for a query's embedding
// before it shows keyword results (at most a third of the request's time).
const maxEmbedWait = 10 * time.Second

// noSearchTerms is the notice of a keyword search of text full-text search ignores whole.
const noSearchTerms = "full-text search ignores every word of it (stop words such as the, of, and; punctuation), so no paper can match: try other words"

// errNoWords is the cause of the 400 of a semantic search of text the model embeds as the
// zero vector.
var errNoWords = fmt.Errorf("the query embeds as the zero vector: %w", paper.ErrInvalid)

// isZero reports whether every value of v is 0.
func isZero(v []float32) bool {
	for _, x := range v {
		if x != 0 {
			return false
		}
	}
	return true
}

// querySpace returns the active space when the configured embedder can make its vectors, and
// otherwise a 409 that says why and what to do.
func (s *Server) querySpace(ctx context.Context) (paper.Space, error) {
	sp, err := s.cfg.Store.ActiveSpace(ctx)
	if errors.Is(err, paper.ErrNotFound) {
		return sp, &httpError{status: http.StatusConflict, err: err,
			msg: "no embedding space is active yet (has a worker processed any paper?); use mode=keyword"}
	}
	if err != nil {
		return sp, fmt.Errorf("active space: %w", err)
	}
	if s.cfg.Embedder == nil {
		return sp, &httpError{status: http.StatusConflict, err: paper.ErrSpaceMismatch,
			msg: fmt.Sprintf("no query embedder is configured for the active space %s; use mode=keyword", sp.Name())}
	}
	if es := s.cfg.Embedder.Space(); es.Model != sp.Model || es.Dimensions != sp.Dimensions || es.Template != sp.Template {
		return sp, &httpError{status: http.StatusConflict, err: paper.ErrSpaceMismatch,
			msg: fmt.Sprintf("the active embedding space is %s but the configured embedder makes %s: set PAPERPIPE_EMBED_MODEL (and PAPERPIPE_EMBED_DIMENSIONS) to the active space's, or use mode=keyword",
				sp.Name(), es.Name())}
	}
	return sp, nil
}

// embedQuery returns q's vector in sp, from the cache when it was embedded before, and whether
// this search made no API call for it. Searches of the same text in the same space at the same
// time share one call: the first starts it and every search of the text waits for its vector (a
// page linked in a chat, opened by a dozen people at once, bought a dozen identical embeddings).
// The call goes on while any of them waits, whichever client leaves, and is given up when none
// does (see queryFlight). wait, when above 0, bounds this search's wait (errEmbedWait): the call
// then goes on without it, for the search's time, and its vector is cached for the next.
func (s *Server) embedQuery(ctx context.Context, sp paper.Space, q string, wait time.Duration) ([]float32, bool, error) {
	key := cacheKey{spaceKey(sp), q}
	if vec, ok := s.cache.get(key.space, key.text); ok {
		s.cfg.Metrics.ObserveQueryCache(true)
		return vec, true, nil
	}
	s.cfg.Metrics.ObserveQueryCache(false)
	var waitOver <-chan time.Time
	if wait > 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		waitOver = t.C
	}
	for {
		f, lead := s.joinFlight(ctx, key, sp)
		if f == nil { // embedded since the look-up above
			if vec, ok := s.cache.get(key.space, key.text); ok {
				return vec, true, nil
			}
			continue
		}
		select {
		case <-f.done:
		case <-ctx.Done():
			s.leaveFlight(key, f, false)
			return nil, false, waitEnded(ctx)
		case <-waitOver:
			s.leaveFlight(key, f, true)
			return nil, false, &httpError{status: http.StatusGatewayTimeout, err: errEmbedWait,
				msg: fmt.Sprintf("the embedding API did not answer within %s", wait.Round(100*time.Millisecond))}
		}
		if lead {
			switch {
			case f.panicked: // a 500 for the search that started the call (runFlight logged it)
				return nil, false, fmt.Errorf("embed the query: the embedder panicked: %v", f.panicValue)
			case f.ranOut:
				// The call had this search's deadline, whose own end is due: its error is
				// the search's (a page's wait for the embedding tells it from the request's).
				<-ctx.Done()
				return nil, false, waitEnded(ctx)
			}
			return f.vec, false, f.err
		}
		if !f.panicked && !f.ranOut {
			return f.vec, f.err == nil, f.err
		}
		// The embedder panicked, or the call ran out of the time of the search that started
		// it: its outcome says nothing about the text; this search asks again, unless it has
		// ended too.
		if ctx.Err() != nil {
			return nil, false, waitEnded(ctx)
		}
	}
}

// waitEnded is the error of a search whose ctx ended while it waited for its query's embedding.
func waitEnded(ctx context.Context) error {
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The request's time ran out (see guard), not the API's.
		return &httpError{status: http.StatusServiceUnavailable, err: ctx.Err(),
			msg: "embedding the query took too long; try again, or use mode=keyword"}
	}
	return ctx.Err() // a 499 when the client left; a 503 when the server is shutting down
}

// queryFlight is a query embedding in progress, which the searches of the same text and space
// wait for. Its call runs on a context of its own, not on the request of the search that started
// it: that search's client leaving (a tab closed, a crawler's timeout) while others wait would
// otherwise end the call, whose embedding was being paid for, and the next in line would buy it
// again, waiting the API's whole latency over (with a slow API and impatient clients, no search
// of the text was ever answered). The call keeps the starter's deadline, so it takes no longer
// than a search could, and is cancelled once every search waiting for it has gone.
type queryFlight struct {
	done   chan struct{} // closed when the outcome below is set
	cancel context.CancelFunc
	// waiting counts the searches waiting for the call; keep is set when one stopped waiting
	// at its wait's bound, and then the call goes on to its deadline, so that its vector is
	// cached for the next search of the text. Both are guarded by Server.flightsMu.
	waiting int
	keep    bool

	vec        []float32
	err        error
	ranOut     bool // the call ran out of its time (the starter's deadline)
	panicked   bool // the embedder panicked (with panicValue)
	panicValue any
}

// joinFlight returns the embedding of key in progress, counting the caller among the searches
// waiting for it, or, when there is none, starts one (lead). It returns nil, false when key's
// vector has been cached since the caller looked.
func (s *Server) joinFlight(ctx context.Context, key cacheKey, sp paper.Space) (f *queryFlight, lead bool) {
	s.flightsMu.Lock()
	defer s.flightsMu.Unlock()
	if f := s.flights[key]; f != nil {
		f.waiting++
		return f, false
	}
	// A flight ends after its vector is cached: without a flight, the cache may have it now.
	if _, ok := s.cache.get(key.space, key.text); ok {
		return nil, false
	}
	if s.flights == nil {
		s.flights = make(map[cacheKey]*queryFlight)
	}
	// The call keeps the values and the deadline of the request that starts it, not its
	// cancellation.
	fctx := context.WithoutCancel(ctx)
	var cancel context.CancelFunc
	if d, ok := ctx.Deadline(); ok {
		fctx, cancel = context.WithDeadline(fctx, d)
	} else {
		fctx, cancel = context.WithCancel(fctx)
	}
	// A shutdown ends it with the requests in flight.
	unhook := context.AfterFunc(s.flightsBase, cancel)
	f = &queryFlight{done: make(chan struct{}), cancel: func() { unhook(); cancel() }, waiting: 1}
	s.flights[key] = f
	s.flightsRunning.Add(1)
	go s.runFlight(fctx, key, f, sp)
	return f, true
}

// leaveFlight takes a search that stopped waiting out of f's; the last one to go cancels the
// call, unless one stopped at the bound of its wait (keep), and a later search of the text
// starts a new one.
func (s *Server) leaveFlight(key cacheKey, f *queryFlight, keep bool) {
	s.flightsMu.Lock()
	defer s.flightsMu.Unlock()
	f.keep = f.keep || keep
	if f.waiting--; f.waiting == 0 && !f.keep {
		if s.flights[key] == f {
			delete(s.flights, key)
		}
		f.cancel()
	}
}

// runFlight makes the query embedding of flight f and hands its outcome to the searches waiting
// for it, also when the embedder panics (they then ask again, and the one that started the call
// answers 500): a flight left in progress would hold every later search of its text until its
// time ran out.
func (s *Server) runFlight(ctx context.Context, key cacheKey, f *queryFlight, sp paper.Space) {
	defer s.flightsRunning.Done()
	defer func() {
		if p := recover(); p != nil {
			f.panicked, f.panicValue = true, p
			s.log.Error("panic embedding a search query", "panic", p, "stack", string(debug.Stack()))
		}
		f.ranOut = f.err != nil && errors.Is(ctx.Err(), context.DeadlineExceeded)
		s.flightsMu.Lock()
		if s.flights[key] == f {
			delete(s.flights, key)
		}
		s.flightsMu.Unlock()
		f.cancel()
		close(f.done)
	}()
	f.vec, f.err = s.embedNew(ctx, sp, key.text)
}

// embedNew embeds q with the API, checks the vector is of sp, and caches it.
func (s *Server) embedNew(ctx context.Context, sp paper.Space, q string) ([]float32, error) {
	vec, usage, err := s.cfg.Embedder.EmbedQuery(ctx, q)
	s.usage.add(usage) // paid for, whether the vector is used or not
	if err != nil {
		if errors.Is(err, paper.ErrInvalid) || errors.Is(err, context.Canceled) {
			return nil, err // the embedder's errors say they are of the query's embedding
		}
		if ctx.Err() != nil { // the request's own time ran out (see guard), not the API
			return nil, &httpError{status: http.StatusServiceUnavailable, err: err,
				msg: "embedding the query took too long; try again, or use mode=keyword"}
		}
		return nil, &httpError{status: http.StatusBadGateway, err: err,
			msg: "the embedding API failed to embed the query; try again, or use mode=keyword"}
	}
	if usage.Model != "" && usage.Model != sp.Model {
		// The embedder follows the active space (cmd/paperpipe's offline one reads it again
		// for each call): a fit activated since querySpace made another model's vector, which
		// must neither search nor be cached as sp's.
		return nil, &httpError{status: http.StatusConflict, err: paper.ErrSpaceMismatch,
			msg: fmt.Sprintf("the query was embedded by %s, not by the active space %s's model: the active space changed during the search; try again", usage.Model, sp.Name())}
	}
	if len(vec) != sp.Dimensions {
		return nil, &httpError{status: http.StatusConflict, err: paper.ErrSpaceMismatch,
			msg: fmt.Sprintf("the embedder returned %d dimensions, the active space %s holds %d", len(vec), sp.Name(), sp.Dimensions)}
	}
	s.cache.put(spaceKey(sp), q, vec)
	return vec, nil
}

// spaceKey names space sp in the cache of query vectors and their flights: by its id as well as
// its name. A space dropped and made again under the same name (the model behind the name
// changed, and the archive is embedded again) is another space, whose queries the old one's
// vectors, of the old model, must not answer.
func spaceKey(sp paper.Space) string {
	return strconv.FormatInt(sp.ID, 10) + " " + sp.Name()
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}
