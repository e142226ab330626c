package web

import (
	"bytes"
	"cmp"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/paper"
)

//go:embed openapi.json
var openAPIDoc []byte

// OpenAPI returns the OpenAPI 3 document that describes every route, as served at
// /api/openapi.json.
func OpenAPI() []byte { return bytes.Clone(openAPIDoc) }

// maxIDBytes bounds an id in a path.
const maxIDBytes = 1024

// lookup returns the paper raw names: its id as given, or its canonical form
// ("2401.01234v2" finds arxiv:2401.01234).
func (s *Server) lookup(ctx context.Context, raw string) (paper.Record, error) {
	raw = strings.TrimSpace(raw)
	switch {
	case raw == "":
		return paper.Record{}, &httpError{status: http.StatusNotFound, msg: "no paper id given"}
	case len(raw) > maxIDBytes:
		return paper.Record{}, badRequest(fmt.Sprintf("paper id is %d bytes, limit %d", len(raw), maxIDBytes))
	}
	if err := checkText("paper id", raw); err != nil {
		return paper.Record{}, err
	}
	rec, err := s.cfg.Store.Paper(ctx, raw)
	if errors.Is(err, paper.ErrNotFound) {
		if c, cerr := paper.CanonicalID(uncollapsedURL(raw)); cerr == nil && c != raw {
			rec, err = s.cfg.Store.Paper(ctx, c)
		}
	}
	if errors.Is(err, paper.ErrNotFound) {
		return rec, &httpError{status: http.StatusNotFound, err: err, msg: fmt.Sprintf("no paper has the id %.200q", raw)}
	}
	if err != nil {
		return rec, fmt.Errorf("read paper %q: %w", raw, err)
	}
	return rec, nil
}

// uncollapsedURL is id with the "//" of its URL scheme back: an abstract page's URL pasted
// after /papers/ or /api/papers/ reaches the handler as "https:/arxiv.org/abs/…", since the
// mux collapses a path's repeated slashes (redirecting to the cleaned path).
func uncollapsedURL(id string) string {
	for _, scheme := range []string{"https:/", "http:/"} {
		if rest, ok := strings.CutPrefix(id, scheme); ok && !strings.HasPrefix(rest, "/") {
			return scheme + "/" + rest
		}
	}
	return id
}

// relatedOf returns the k papers nearest to rec in the active space, and the space's name.
func (s *Server) relatedOf(ctx context.Context, rec paper.Record, k int) ([]paper.Hit, string, error) {
	sp, err := s.cfg.Store.ActiveSpace(ctx)
	if errors.Is(err, paper.ErrNotFound) {
		return nil, "", &httpError{status: http.StatusConflict, err: err,
			msg: "no embedding space is active yet (has a worker processed any paper?)"}
	}
	if err != nil {
		return nil, "", fmt.Errorf("active space: %w", err)
	}
	hits, err := s.cfg.Store.Related(ctx, sp.ID, rec.ID, k)
	if errors.Is(err, paper.ErrNotFound) {
		// The spaces that hold a vector of the paper make the hint; without them (the lookup
		// failed) the answer is still the 409, with the hint of a paper in none.
		in, ierr := s.cfg.Store.EmbeddedIn(ctx, rec.ID)
		if ierr != nil {
			s.log.Warn("related: the spaces holding a vector of the paper could not be read", "paper", rec.ID, "err", ierr)
			in = nil
		}
		return nil, sp.Name(), &httpError{status: http.StatusConflict, err: err, msg: embed.NoVectorHint(rec.ID, sp, in)}
	}
	if err != nil {
		return nil, sp.Name(), fmt.Errorf("related to %s: %w", rec.ID, err)
	}
	return nonNil(hits), sp.Name(), nil
}

func (s *Server) apiPaper(w http.ResponseWriter, r *http.Request) {
	s.servePaper(w, r, r.PathValue("id"))
}

func (s *Server) apiRelated(w http.ResponseWriter, r *http.Request) {
	s.serveRelated(w, r, r.PathValue("id"))
}

// apiPaperRest serves ids sent with unescaped slashes: /api/papers/doi:10.1/x and
// /api/papers/doi:10.1/x/related.
func (s *Server) apiPaperRest(w http.ResponseWriter, r *http.Request) {
	rest := r.PathValue("rest")
	if id, ok := strings.CutSuffix(rest, "/related"); ok {
		if err := checkParams(r, "k"); err != nil {
			s.fail(w, r, err)
			return
		}
		s.serveRelated(w, r, id)
		return
	}
	if err := checkParams(r); err != nil {
		s.fail(w, r, err)
		return
	}
	s.servePaper(w, r, rest)
}

func (s *Server) servePaper(w http.ResponseWriter, r *http.Request, id string) {
	rec, err := s.lookup(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rec)
}

// relatedAnswer is the body of GET /api/papers/{id}/related.
type relatedAnswer struct {
	ID      string      `json:"id"`
	Space   string      `json:"space"`
	Results []paper.Hit `json:"results"`
}

func (s *Server) serveRelated(w http.ResponseWriter, r *http.Request, id string) {
	k, err := parseK(r.URL.Query().Get("k"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	rec, err := s.lookup(r.Context(), id)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	hits, space, err := s.relatedOf(r.Context(), rec, k)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, relatedAnswer{ID: rec.ID, Space: space, Results: hits})
}

// listAnswer is the body of GET /api/papers.
type listAnswer struct {
	Papers []paper.Record `json:"papers"`
	Next   string         `json:"next,omitempty"`
	// Notice says why the list is empty when its text can match no paper: full-text search
	// ignores every word of it (stop words, punctuation).
	Notice string `json:"notice,omitempty"`
}

// parseList reads the query of a paper list: limit, cursor, since, category, text.
func parseList(r *http.Request, defLimit int) (ListQuery, error) {
	v := r.URL.Query()
	q := ListQuery{Limit: defLimit, Cursor: v.Get("cursor"), Category: strings.TrimSpace(v.Get("category")), Text: strings.TrimSpace(v.Get("text"))}
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > MaxListLimit {
			return q, badRequest(fmt.Sprintf("limit is %.20q, want a whole number from 1 to %d", s, MaxListLimit))
		}
		q.Limit = n
	}
	if s := v.Get("since"); s != "" {
		t, err := parseSince(s)
		if err != nil {
			return q, err
		}
		q.Since = t
	}
	for _, f := range []struct{ name, v string }{{"category", q.Category}, {"text", q.Text}, {"cursor", q.Cursor}} {
		if err := checkText(f.name, f.v); err != nil {
			return q, err
		}
		if utf8.RuneCountInString(f.v) > MaxQueryChars {
			return q, badRequest(fmt.Sprintf("%s is longer than %d characters", f.name, MaxQueryChars))
		}
	}
	return q, nil
}

// parseSince reads an RFC 3339 time or a date (midnight UTC).
func parseSince(s string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339, s); err == nil {
		return t, nil
	}
	// A + sent unencoded in a URL arrives as a space: 2025-01-31T08:00:00 02:00.
	if i := strings.LastIndexByte(s, ' '); i > 0 && strings.ContainsRune(s[:i], 'T') {
		if t, err := time.Parse(time.RFC3339, s[:i]+"+"+s[i+1:]); err == nil {
			return t, nil
		}
	}
	if t, err := time.Parse(time.DateOnly, s); err == nil {
		return t, nil
	}
	return time.Time{}, badRequest(fmt.Sprintf("since is %.40q, want a date (2025-01-31) or an RFC 3339 time (2025-01-31T08:00:00Z)", s))
}

func (s *Server) apiListPapers(w http.ResponseWriter, r *http.Request) {
	q, err := parseList(r, DefaultListLimit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	page, notice, err := s.listPapers(r.Context(), q)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, listAnswer{Papers: nonNil(page.Papers), Next: page.Next, Notice: notice})
}

// listPapers asks the Store for a page of q, and says why it is empty when q's text can match
// nothing (noSearchTerms), as a keyword search does.
func (s *Server) listPapers(ctx context.Context, q ListQuery) (Page, string, error) {
	page, err := s.cfg.Store.ListPapers(ctx, q)
	if errors.Is(err, paper.ErrNoSearchTerms) {
		return Page{}, noSearchTerms, nil
	}
	return page, "", err
}

func (s *Server) apiSearch(w http.ResponseWriter, r *http.Request) {
	p, err := parseSearch(r)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if r.Method == http.MethodHead {
		// A link checker's or a previewer's HEAD buys no embedding: it is answered as the GET
		// would be, bar a failure of the embedding API, without searching.
		if err := s.searchHeadCheck(r.Context(), p); err != nil {
			s.fail(w, r, err)
			return
		}
		writeJSON(w, http.StatusOK, SearchResult{Query: p.q, Mode: p.mode, Results: []paper.Hit{}})
		return
	}
	res, err := s.search(r.Context(), p)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) apiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, st)
}

// status asks the StatusProvider.
func (s *Server) status(ctx context.Context) (Status, error) {
	if s.cfg.Status == nil {
		return Status{}, &httpError{status: http.StatusServiceUnavailable, msg: "this server has no status source"}
	}
	st, err := s.cfg.Status.Status(ctx)
	if err != nil {
		return st, fmt.Errorf("status: %w", err)
	}
	st.Backlog, st.Recent, st.Usage = nonNil(st.Backlog), nonNil(st.Recent), nonNil(st.Usage)
	for i := range st.Backlog {
		st.Backlog[i].Workers = nonNil(st.Backlog[i].Workers)
	}
	return st, nil
}

func (s *Server) openAPI(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.Write(openAPIDoc)
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

// readyAnswer is the body of GET /readyz.
type readyAnswer struct {
	Status string            `json:"status"` // "ok", "unavailable" or "shutting down"
	Checks map[string]string `json:"checks"` // check name → "ok" or the error
}

// readyzTimeout bounds each readiness check; reportOnlyTimeout a check that only reports
// (Check.ReportOnly): one that does not answer (a NATS gone silent, its client still
// "connected") must not hold up the answer, and a probe's timeout with it.
const (
	readyzTimeout     = 3 * time.Second
	reportOnlyTimeout = 500 * time.Millisecond
)

func (s *Server) readyz(w http.ResponseWriter, r *http.Request) {
	if s.stopping.Load() {
		writeJSON(w, http.StatusServiceUnavailable, readyAnswer{Status: "shutting down", Checks: map[string]string{}})
		return
	}
	ans := readyAnswer{Status: "ok", Checks: make(map[string]string, len(s.cfg.Checks))}
	showReasons := s.allowed(read, r)
	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for _, c := range s.cfg.Checks {
		wg.Go(func() {
			timeout := readyzTimeout
			if c.ReportOnly {
				timeout = reportOnlyTimeout
			}
			ctx, cancel := context.WithTimeout(r.Context(), timeout)
			defer cancel()
			res := "ok"
			if err := c.Check(ctx); err != nil {
				// The probe is open to anyone. Where reads are protected, the reason (a
				// database error names its host, user and database) is for those who may
				// read: others get "failed", and the log has it.
				res = err.Error()
				if !showReasons {
					res = "failed"
				}
				s.log.Warn("readiness check failed", "check", c.Name, "err", err)
			}
			mu.Lock()
			defer mu.Unlock()
			ans.Checks[c.Name] = res
			if res != "ok" && !c.ReportOnly {
				ans.Status = "unavailable"
			}
		})
	}
	wg.Wait()
	code := http.StatusOK
	if ans.Status != "ok" {
		code = http.StatusServiceUnavailable
	}
	writeJSON(w, code, ans)
}

// postAnswer is the body of POST /api/papers.
type postAnswer struct {
	// Error and Status are set when the answer is an error (no record accepted).
	Error    string         `json:"error,omitempty"`
	Status   int            `json:"status,omitempty"`
	Accepted []recordResult `json:"accepted"`
	Rejected []recordResult `json:"rejected"`
}

// recordResult is what became of one posted record.
type recordResult struct {
	// Index is the record's position in the body, from 0; Line its line for JSON lines.
	Index int    `json:"index"`
	Line  int    `json:"line,omitempty"`
	ID    string `json:"id,omitempty"`
	Error string `json:"error,omitempty"`
}

// postsBusyRetryAfter is the Retry-After, in seconds, of a post refused while the others hold
// the bytes they may (Config.MaxPostBytesInFlight): a post is served in seconds.
const postsBusyRetryAfter = 2

func (s *Server) apiPostPapers(w http.ResponseWriter, r *http.Request) {
	if s.cfg.Publisher == nil {
		writeJSON(w, http.StatusServiceUnavailable, postAnswer{Error: "this server does not accept papers: it has no queue",
			Status: http.StatusServiceUnavailable, Accepted: []recordResult{}, Rejected: []recordResult{}})
		return
	}
	lines := false
	if ct := r.Header.Get("Content-Type"); ct != "" {
		mt, _, err := mime.ParseMediaType(ct)
		switch {
		case err == nil && mt == "application/json":
		case err == nil && (mt == "application/x-ndjson" || mt == "application/jsonl" || mt == "application/jsonlines"):
			lines = true
		default:
			s.fail(w, r, &httpError{status: http.StatusUnsupportedMediaType,
				msg: fmt.Sprintf("Content-Type %.60q is not accepted: send application/json (an object or an array of objects) or application/x-ndjson (one object per line)", ct)})
			return
		}
	}
	if ce := r.Header.Get("Content-Encoding"); ce != "" && !strings.EqualFold(ce, "identity") {
		s.fail(w, r, &httpError{status: http.StatusUnsupportedMediaType,
			msg: fmt.Sprintf("Content-Encoding %.60q is not accepted: send the body uncompressed", ce)})
		return
	}
	// What the body and its records will hold, bounded with the other posts': a burst of large
	// posts held them all at once.
	weight := min(s.cfg.MaxBodyBytes, s.cfg.MaxPostBytesInFlight)
	if r.ContentLength >= 0 {
		weight = min(weight, r.ContentLength)
	}
	if !s.postBytes.TryAcquire(weight) {
		w.Header().Set("Retry-After", strconv.Itoa(postsBusyRetryAfter))
		ans := postAnswer{Status: http.StatusServiceUnavailable, Accepted: []recordResult{}, Rejected: []recordResult{},
			Error: fmt.Sprintf("the server is busy with other posts of papers (%d bytes at most at once); nothing was read: send it again shortly",
				s.cfg.MaxPostBytesInFlight)}
		s.log.Warn("post of papers refused: the posts in progress hold what they may", "bytes", weight,
			"max_post_bytes_in_flight", s.cfg.MaxPostBytesInFlight)
		writeJSON(w, http.StatusServiceUnavailable, ans)
		return
	}
	defer s.postBytes.Release(weight)
	body, err := io.ReadAll(r.Body)
	var tooBig *http.MaxBytesError
	if errors.As(err, &tooBig) {
		s.fail(w, r, &httpError{status: http.StatusRequestEntityTooLarge, err: err,
			msg: fmt.Sprintf("body is larger than %d bytes; send fewer papers per request", tooBig.Limit)})
		return
	}
	var timeout net.Error
	if errors.As(err, &timeout) && timeout.Timeout() {
		// The server's ReadTimeout ended before the body did (a large post over a slow link):
		// the request is not malformed, and a 400 told the client not to send it again.
		s.fail(w, r, &httpError{status: http.StatusRequestTimeout, err: err,
			msg: fmt.Sprintf("the body did not arrive within %s, the server's read timeout: send fewer papers per request", s.cfg.ReadTimeout)})
		return
	}
	if err != nil {
		s.fail(w, r, badRequest("could not read the body"))
		return
	}
	recs, err := splitRecords(body, lines)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	ans := postAnswer{Accepted: []recordResult{}, Rejected: []recordResult{}}
	var (
		good    []paper.Abstract
		goodRes []recordResult
	)
	for _, rec := range recs {
		if err := r.Context().Err(); err != nil {
			// Its time ran out (a burst of large posts on a busy server), its client left, or
			// the server is stopping: the rest is not parsed, which would take the CPU from
			// the other requests for an answer nobody reads.
			s.fail(w, r, fmt.Errorf("parse posted papers: %w", err))
			return
		}
		res := recordResult{Index: rec.index, Line: rec.line}
		a, err := s.cfg.ParseRecord(rec.raw)
		if err != nil {
			res.ID = a.ID
			res.Error = reason(err)
			ans.Rejected = append(ans.Rejected, res)
			continue
		}
		res.ID = a.ID
		good = append(good, a)
		goodRes = append(goodRes, res)
	}
	if len(good) > 0 {
		accepted, refused, err := s.cfg.Publisher.Publish(r.Context(), good)
		// The queue's acknowledgements name the paper, not the record: the records of an id
		// sent more than once (two versions of a paper) count as accepted only when every
		// one of them was acknowledged; otherwise which was taken is not known, and the client
		// sends them all again (a repeat is dropped by the queue, or stored unchanged).
		unacked := make(map[string]int, len(good)) // by id: the records sent less the acknowledgements
		for i, res := range goodRes {
			if _, bad := refused[i]; !bad {
				unacked[res.ID]++
			}
		}
		for _, id := range accepted {
			unacked[id]--
		}
		for i, res := range goodRes {
			if e, bad := refused[i]; bad {
				res.Error = reason(e) // sending it again cannot help
				ans.Rejected = append(ans.Rejected, res)
			} else if unacked[res.ID] <= 0 {
				ans.Accepted = append(ans.Accepted, res)
			} else {
				res.Error = "the queue did not take it; send it again"
				ans.Rejected = append(ans.Rejected, res)
			}
		}
		// In index order, also in the answers of a publishing that failed below.
		slices.SortFunc(ans.Rejected, func(a, b recordResult) int { return cmp.Compare(a.Index, b.Index) })
		if err != nil && r.Context().Err() != nil {
			// The request's time ran out (a burst of large posts on a busy server), its client
			// left, or the server is stopping: the queue is not at fault, and is not said to be.
			err = duringShutdown(r, fmt.Errorf("publish posted papers (%d, %d accepted): %w", len(good), len(accepted), err))
			code, msg := statusOf(err)
			s.logFailure(r, code, err)
			ans.Error, ans.Status = msg+"; records not accepted may be sent again", code
			writeJSON(w, code, ans)
			return
		}
		if err != nil {
			s.log.Error("publish posted papers", "papers", len(good), "accepted", len(accepted), "err", err)
			ans.Error, ans.Status = "the queue is unavailable; records not accepted may be sent again", http.StatusServiceUnavailable
			if errors.Is(err, paper.ErrQueueFull) {
				// Not an outage: sent again at once, they would be refused again.
				ans.Error = "the queue is full (the workers are behind, or it is at its limit); records not accepted may be sent again once it has drained"
				w.Header().Set("Retry-After", "60")
			}
			writeJSON(w, http.StatusServiceUnavailable, ans)
			return
		}
	}
	if len(ans.Accepted) == 0 {
		ans.Error, ans.Status = "no record was accepted: see rejected", http.StatusUnprocessableEntity
		writeJSON(w, http.StatusUnprocessableEntity, ans)
		return
	}
	writeJSON(w, http.StatusAccepted, ans)
}

// checkText refuses a parameter PostgreSQL's text cannot hold, saying which of the two it is:
// bytes that are not UTF-8, or a NUL character (%00, which is valid UTF-8).
func checkText(name, v string) error {
	if !utf8.ValidString(v) {
		return badRequest(name + " is not valid UTF-8 text")
	}
	if strings.ContainsRune(v, 0) {
		return badRequest(name + " contains a NUL character (%00), which no text in the archive can hold")
	}
	return nil
}
