package web_test

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/embed"
	"github.com/paperpipe/paperpipe/internal/openaitest"
	"github.com/paperpipe/paperpipe/internal/pgtest"
	"github.com/paperpipe/paperpipe/internal/sampledata"
	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/store"
	"github.com/paperpipe/paperpipe/web"
)

type listBody struct {
	Papers []paper.Record `json:"papers"`
	Next   string         `json:"next"`
}

type hitsBody struct {
	ID              string      `json:"id"`
	Query           string      `json:"query"`
	Mode            string      `json:"mode"`
	Space           string      `json:"space"`
	Results         []paper.Hit `json:"results"`
	CachedEmbedding bool        `json:"cached_embedding"`
}

func isMoE(title string) bool {
	t := strings.ToLower(title)
	return strings.Contains(t, "mixture") || strings.Contains(t, "moe") || strings.Contains(t, "expert")
}

// TestAPIOnTheSampleArchive exercises the read API on the processed sample archive, against
// real PostgreSQL and NATS.
func TestAPIOnTheSampleArchive(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	sample := sampledata.Papers(t)
	moe := idOf(t, sample, "Implementing Load Balancing Loss")

	t.Run("list pages through every paper once, newest first", func(t *testing.T) {
		seen := map[string]bool{}
		cursor, pages := "", 0
		var last time.Time
		for {
			r := b.get("/api/papers?limit=25&cursor=" + url.QueryEscape(cursor))
			if r.code != http.StatusOK {
				t.Fatalf("page %d: %d %s", pages+1, r.code, r.body)
			}
			var body listBody
			r.json(t, &body)
			for _, p := range body.Papers {
				if seen[p.ID] {
					t.Errorf("%s listed twice", p.ID)
				}
				seen[p.ID] = true
				if p.TLDR == nil || p.TLDR.Model != summarizeModel || !p.Embedded {
					t.Errorf("%s: TL;DR %+v, embedded %v", p.ID, p.TLDR, p.Embedded)
				}
				if !last.IsZero() && p.CreatedAt.After(last) {
					t.Errorf("%s is newer than the paper before it", p.ID)
				}
				last = p.CreatedAt
			}
			pages++
			if body.Next == "" {
				break
			}
			cursor = body.Next
		}
		if len(seen) != len(sample) || pages != (len(sample)+24)/25 {
			t.Errorf("listed %d papers on %d pages, want %d", len(seen), pages, len(sample))
		}
	})

	t.Run("list filters by text", func(t *testing.T) {
		var body listBody
		r := b.get("/api/papers?limit=100&text=" + url.QueryEscape(`"mixture of experts"`))
		r.json(t, &body)
		if r.code != http.StatusOK || len(body.Papers) < 5 {
			t.Fatalf("text filter: %d, %d papers", r.code, len(body.Papers))
		}
		for _, p := range body.Papers {
			if !strings.Contains(strings.ToLower(p.Title+" "+p.Abstract.Abstract), "expert") {
				t.Errorf("%q does not mention experts", p.Title)
			}
		}
		r = b.get("/api/papers?category=cs.LG")
		r.json(t, &body)
		if r.code != http.StatusOK || len(body.Papers) != 0 {
			t.Errorf("category filter on an archive without categories: %d, %d papers", r.code, len(body.Papers))
		}
		r = b.get("/api/papers?since=2999-01-01")
		r.json(t, &body)
		if r.code != http.StatusOK || len(body.Papers) != 0 {
			t.Errorf("since the future: %d, %d papers", r.code, len(body.Papers))
		}
		// A text full-text search ignores whole matches nothing, and the answer says why, as
		// a keyword search's does; a text that merely matches nothing has no notice.
		for _, text := range []string{"the", "the of and", "!!!"} {
			var got struct {
				listBody
				Notice string `json:"notice"`
			}
			r = b.get("/api/papers?text=" + url.QueryEscape(text))
			r.json(t, &got)
			if r.code != http.StatusOK || len(got.Papers) != 0 || !strings.Contains(got.Notice, "full-text search ignores every word of it") {
				t.Errorf("text=%s: %d, %d papers, notice %q; want none, and a notice that full-text search ignores those words", text, r.code, len(got.Papers), got.Notice)
			}
			page := b.get("/?text=" + url.QueryEscape(text))
			if page.code != http.StatusOK || !bytes.Contains(page.body, []byte(`<p class="notice">Full-text search ignores every word of it`)) {
				t.Errorf("front page with text=%s: %d; want the notice that full-text search ignores those words", text, page.code)
			}
		}
		var got struct {
			listBody
			Notice *string `json:"notice"`
		}
		r = b.get("/api/papers?text=wombat")
		r.json(t, &got)
		if r.code != http.StatusOK || len(got.Papers) != 0 || got.Notice != nil {
			t.Errorf("text=wombat: %d, %d papers, notice %v; want none, without a notice", r.code, len(got.Papers), got.Notice)
		}
	})

	t.Run("paper by id and by a non-canonical form", func(t *testing.T) {
		var rec paper.Record
		r := b.get("/api/papers/" + url.PathEscape(moe))
		r.json(t, &rec)
		if r.code != http.StatusOK || rec.ID != moe || rec.TLDR == nil || rec.TLDR.Text == "" {
			t.Fatalf("GET paper: %d %+v", r.code, rec)
		}
		// Title ids are canonical in lower case; the upper-case form canonicalises to it.
		r = b.get("/api/papers/" + url.PathEscape(strings.ToUpper(moe[:6])+moe[6:]))
		if r.code != http.StatusOK {
			t.Errorf("non-canonical id: %d %s", r.code, r.body)
		}
		msg := wantError(t, "unknown id", b.get("/api/papers/arxiv:0000.00000"), http.StatusNotFound)
		if !strings.Contains(msg, "arxiv:0000.00000") {
			t.Errorf("404 message %q does not name the id", msg)
		}
	})

	t.Run("related finds mixture-of-experts papers", func(t *testing.T) {
		var body hitsBody
		r := b.get("/api/papers/" + url.PathEscape(moe) + "/related?k=5")
		r.json(t, &body)
		if r.code != http.StatusOK || len(body.Results) != 5 || body.Space != b.space.Name() {
			t.Fatalf("related: %d %+v", r.code, body)
		}
		n := 0
		for _, h := range body.Results {
			if h.ID == moe {
				t.Error("a paper is related to itself")
			}
			if isMoE(h.Title) {
				n++
			}
		}
		if n < 4 {
			t.Errorf("%d of the 5 related papers are about mixtures of experts: %+v", n, body.Results)
		}
		wantError(t, "k=0", b.get("/api/papers/"+url.PathEscape(moe)+"/related?k=0"), http.StatusBadRequest)
		wantError(t, "k=101", b.get("/api/papers/"+url.PathEscape(moe)+"/related?k=101"), http.StatusBadRequest)
		wantError(t, "unknown", b.get("/api/papers/nope/related"), http.StatusNotFound)
	})

	t.Run("search in every mode", func(t *testing.T) {
		for _, mode := range []string{web.ModeKeyword, web.ModeSemantic, web.ModeHybrid} {
			var body hitsBody
			r := b.get("/api/search?k=5&mode=" + mode + "&q=" + url.QueryEscape("mixture of experts"))
			r.json(t, &body)
			if r.code != http.StatusOK || body.Mode != mode || len(body.Results) != 5 {
				t.Fatalf("%s: %d %s", mode, r.code, r.body)
			}
			for _, h := range body.Results {
				if !isMoE(h.Title) {
					t.Errorf("%s: %q is not about experts", mode, h.Title)
				}
				if h.TLDR == "" {
					t.Errorf("%s: %s has no TL;DR", mode, h.ID)
				}
			}
			r = b.get("/api/search?k=3&mode=" + mode + "&q=" + url.QueryEscape("load balancing loss for mixture of experts"))
			r.json(t, &body)
			if r.code != http.StatusOK || len(body.Results) == 0 || body.Results[0].ID != moe {
				t.Errorf("%s: the load-balancing paper is not first: %d %s", mode, r.code, r.body)
			}
		}
		var body hitsBody
		b.get("/api/search?q="+url.QueryEscape("sparse expert routing")).json(t, &body)
		if body.Mode != web.ModeHybrid || body.Space != b.space.Name() {
			t.Errorf("default mode %q in space %q, want hybrid in %s", body.Mode, body.Space, b.space.Name())
		}
	})

	t.Run("search limits", func(t *testing.T) {
		wantError(t, "no q", b.get("/api/search"), http.StatusBadRequest)
		wantError(t, "blank q", b.get("/api/search?q=+++"), http.StatusBadRequest)
		wantError(t, "long q", b.get("/api/search?q="+strings.Repeat("a", web.MaxQueryChars+1)), http.StatusBadRequest)
		if r := b.get("/api/search?mode=keyword&q=" + strings.Repeat("é", web.MaxQueryChars)); r.code != http.StatusOK {
			t.Errorf("a query of %d characters (more bytes): %d %s", web.MaxQueryChars, r.code, r.body)
		}
		wantError(t, "k=0", b.get("/api/search?q=x&k=0"), http.StatusBadRequest)
		wantError(t, "k=101", b.get("/api/search?q=x&k=101"), http.StatusBadRequest)
		wantError(t, "k=abc", b.get("/api/search?q=x&k=abc"), http.StatusBadRequest)
		wantError(t, "mode", b.get("/api/search?q=x&mode=telepathy"), http.StatusBadRequest)
		var body hitsBody
		b.get("/api/search?k=100&mode=keyword&q=language").json(t, &body)
		if len(body.Results) == 0 || len(body.Results) > 100 {
			t.Errorf("k=100 gave %d results", len(body.Results))
		}
	})

	t.Run("bad list parameters", func(t *testing.T) {
		wantError(t, "limit=0", b.get("/api/papers?limit=0"), http.StatusBadRequest)
		wantError(t, "limit=101", b.get("/api/papers?limit=101"), http.StatusBadRequest)
		wantError(t, "since", b.get("/api/papers?since=yesterday"), http.StatusBadRequest)
		wantError(t, "cursor", b.get("/api/papers?cursor=not-a-cursor"), http.StatusBadRequest)
	})

	t.Run("status", func(t *testing.T) {
		var st web.Status
		r := b.get("/api/status")
		r.json(t, &st)
		if r.code != http.StatusOK || st.Papers != int64(len(sample)) || st.WithTLDR != st.Papers || st.WithEmbedding != st.Papers {
			t.Errorf("status: %d %+v", r.code, st)
		}
	})

	t.Run("probes", func(t *testing.T) {
		if r := b.get("/healthz"); r.code != http.StatusOK {
			t.Errorf("healthz: %d", r.code)
		}
		var ready struct {
			Status string            `json:"status"`
			Checks map[string]string `json:"checks"`
		}
		r := b.get("/readyz")
		r.json(t, &ready)
		if r.code != http.StatusOK || ready.Status != "ok" || ready.Checks["database"] != "ok" || ready.Checks["nats"] != "ok" {
			t.Errorf("readyz: %d %+v", r.code, ready)
		}
	})

	t.Run("unknown routes and methods answer in the error format", func(t *testing.T) {
		wantError(t, "unknown path", b.get("/api/nothing-here"), http.StatusNotFound)
		r := b.do(http.MethodDelete, "/api/papers", nil)
		wantError(t, "DELETE", r, http.StatusMethodNotAllowed)
		if allow := r.header.Get("Allow"); !strings.Contains(allow, "GET") || !strings.Contains(allow, "POST") {
			t.Errorf("Allow = %q", allow)
		}
	})

	t.Run("metrics count requests by route and searches by mode", func(t *testing.T) {
		r := b.get("/metrics")
		text := string(r.body)
		for _, want := range []string{
			`paperpipe_http_request_duration_seconds_count{code="200",method="GET",route="GET /api/search"}`,
			`paperpipe_search_duration_seconds_count{mode="keyword",outcome="ok"}`,
			`paperpipe_search_duration_seconds_count{mode="hybrid",outcome="ok"}`,
			`paperpipe_query_embedding_cache_total{result="miss"}`,
		} {
			if !strings.Contains(text, want) {
				t.Errorf("/metrics lacks %s", want)
			}
		}
	})
}

// TestTamperedCursorIsABadRequest: a cursor altered into an id PostgreSQL cannot hold (invalid
// UTF-8, NUL) is a 400 like any cursor the server did not make, on the API and the front page,
// not a 500 logged as a server failure.
func TestTamperedCursorIsABadRequest(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	for _, raw := range []string{"1796483913902748|\xff\xfe", "1796483913902748|a\x00b"} {
		cur := base64.RawURLEncoding.EncodeToString([]byte(raw))
		wantError(t, "GET /api/papers?cursor= of "+strconv.Quote(raw), b.get("/api/papers?limit=2&cursor="+cur), http.StatusBadRequest)
		if r := b.get("/?after=" + cur); r.code != http.StatusBadRequest {
			t.Errorf("GET /?after= of %q: status %d, want 400", raw, r.code)
		}
	}
}

// TestTextParameterErrorsSayWhatIsWrong: a parameter PostgreSQL's text cannot hold is a 400
// that names what is wrong with it; a NUL character (%00) is valid UTF-8, and was answered
// "is not valid UTF-8 text", sending the client to look for an encoding problem it does not have.
func TestTextParameterErrorsSayWhatIsWrong(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	for _, tc := range []struct{ path, want string }{
		{"/api/search?q=a%ffb", "q is not valid UTF-8 text"},
		{"/api/search?q=a%00b", "q contains a NUL character (%00)"},
		{"/api/search?mode=keyword&q=a%00b", "q contains a NUL character (%00)"},
		{"/api/papers?text=a%00b", "text contains a NUL character (%00)"},
		{"/api/papers?category=a%00b", "category contains a NUL character (%00)"},
		{"/api/papers?category=a%ffb", "category is not valid UTF-8 text"},
		{"/api/papers?cursor=a%00b", "cursor contains a NUL character (%00)"},
		{"/api/papers/a%00b", "paper id contains a NUL character (%00)"},
		{"/api/papers/a%ffb/related", "paper id is not valid UTF-8 text"},
	} {
		if msg := wantError(t, "GET "+tc.path, b.get(tc.path), http.StatusBadRequest); !strings.Contains(msg, tc.want) {
			t.Errorf("GET %s: error %q, want it to say %q", tc.path, msg, tc.want)
		}
	}
}

// lockedBuffer is a log destination safe for the server's goroutines and the test.
type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// inSpace is an embedder that says it makes the vectors of sp.
type inSpace struct {
	web.QueryEmbedder
	sp paper.Space
}

func (e inSpace) Space() paper.Space { return e.sp }

// TestEmbeddingAPIFailureIsLoggedWithItsCause: a search the embedding API failed is logged
// with why it failed (here a 401), which the client is rightly not told, and without the API
// key the API's answer quotes: on the API's 502, on the page's 502, and when the page falls
// back to keyword results.
func TestEmbeddingAPIFailureIsLoggedWithItsCause(t *testing.T) {
	t.Parallel()
	const key = "sk-test-0123456789abcdef"
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusUnauthorized)
		fmt.Fprintf(w, `{"error": {"message": "Incorrect API key provided: %s.", "type": "invalid_request_error", "code": "invalid_api_key"}}`, key)
	}))
	t.Cleanup(api.Close)
	client, err := embed.New(embed.Config{BaseURL: api.URL, APIKey: key, Model: "text-embedding-3-small", Dimensions: 64, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:10])
	b.process()
	logs := &lockedBuffer{}
	cfg := b.config()
	cfg.Embedder = inSpace{client, b.space}
	cfg.Logger = slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelInfo}))
	b.serve(cfg)
	for _, c := range []struct {
		path string
		code int
	}{
		{"/api/search?mode=semantic&q=experts", http.StatusBadGateway},
		{"/search?mode=semantic&q=experts", http.StatusBadGateway},
		{"/search?q=experts", http.StatusOK}, // the page falls back to keyword results
	} {
		before := len(logs.String())
		if r := b.get(c.path); r.code != c.code {
			t.Errorf("GET %s: %d, want %d", c.path, r.code, c.code)
		}
		got := logs.String()[before:]
		if !strings.Contains(got, "401") || !strings.Contains(got, "Incorrect API key provided") {
			t.Errorf("GET %s: the log does not say why the embedding API failed:\n%s", c.path, got)
		}
		if strings.Contains(got, key) {
			t.Errorf("GET %s: the log shows the API key:\n%s", c.path, got)
		}
	}
}

// TestSearchPageFallbackSaysBothWhyAndThatStopWordsMatchNothing: when the embedding API fails
// and the page falls back to keyword results of text full-text search ignores, it must say
// both: that the embedding API failed (or the user never learns it, and blames the words) and
// that no paper can match those words.
func TestSearchPageFallbackSaysBothWhyAndThatStopWordsMatchNothing(t *testing.T) {
	t.Parallel()
	api := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}`)
	}))
	t.Cleanup(api.Close)
	client, err := embed.New(embed.Config{BaseURL: api.URL, APIKey: "sk-test", Model: "text-embedding-3-small", Dimensions: 64, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:3])
	b.process()
	cfg := b.config()
	cfg.Embedder = inSpace{client, b.space}
	b.serve(cfg)
	r := b.get("/search?q=" + url.QueryEscape("the of and"))
	body := string(r.body)
	if r.code != http.StatusOK {
		t.Fatalf("GET /search?q=the of and with the embedding API failing: %d, want 200 with keyword results", r.code)
	}
	for _, want := range []string{`<p class="notice">The embedding API failed to embed the query`, "showing keyword results", "ull-text search ignores every word of it"} {
		if !strings.Contains(body, want) {
			i := strings.Index(body, `<p class="notice">`)
			t.Errorf("the page does not say %q; it says %.400s", want, body[max(i, 0):])
		}
	}
}

// TestSearchOfTextTheModelCannotEmbed: text the model embeds as the zero vector (a stop word,
// an arXiv id for the offline model) has no vector to search with. A hybrid search, the
// default, answers its keyword results and says so; a semantic search is a 400 that says
// what to do, once, without the store's and the web layer's prefixes; the search page shows
// the keyword results.
func TestSearchOfTextTheModelCannotEmbed(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	for _, q := range []string{"the", "2401.01234"} {
		var body struct {
			hitsBody
			Notice string `json:"notice"`
		}
		r := b.get("/api/search?q=" + url.QueryEscape(q))
		r.json(t, &body)
		if r.code != http.StatusOK || body.Mode != web.ModeKeyword || !strings.Contains(body.Notice, "no words") || body.Results == nil {
			t.Errorf("GET /api/search?q=%s: %d %s, want 200, mode keyword and a notice", q, r.code, r.body)
		}
		// Asked again, its (zero) vector comes from the cache; the answer used none.
		var again hitsBody
		if b.get("/api/search?q="+url.QueryEscape(q)).json(t, &again); again.Mode != web.ModeKeyword || again.CachedEmbedding {
			t.Errorf("GET /api/search?q=%s again: mode %s, cached_embedding %v; want keyword, without cached_embedding (no embedding was used)", q, again.Mode, again.CachedEmbedding)
		}
		msg := wantError(t, "semantic search of "+q, b.get("/api/search?mode=semantic&q="+url.QueryEscape(q)), http.StatusBadRequest)
		if !strings.Contains(msg, "no words") || !strings.Contains(msg, "mode=keyword") || strings.Contains(msg, "search:") {
			t.Errorf("semantic search of %s: message %q, want one that says the model can use no word of it and to use mode=keyword", q, msg)
		}
		page := b.get("/search?q=" + url.QueryEscape(q))
		// The notice is a sentence, as the front page's is.
		if page.code != http.StatusOK || !strings.Contains(string(page.body), `<p class="notice">The query has no words`) {
			t.Errorf("GET /search?q=%s: %d, want 200 with the notice:\n%s", q, page.code, page.body)
		}
	}
	// With one word the model knows, the search is hybrid.
	var hy hitsBody
	b.get("/api/search?q="+url.QueryEscape("the experts")).json(t, &hy)
	if hy.Mode != web.ModeHybrid || len(hy.Results) == 0 {
		t.Errorf("a hybrid search with a word the model knows: mode %s, %d results", hy.Mode, len(hy.Results))
	}
}

// TestRelatedOfAPaperWithoutEmbeddingPointsAtTheDeadLetters: a paper without a vector may be
// waiting for a worker, or have failed for good; the 409 names where the failures are.
func TestRelatedOfAPaperWithoutEmbeddingPointsAtTheDeadLetters(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	late := paper.Abstract{ID: "arxiv:2502.00042", Title: "A paper no worker embedded", Abstract: "Stored, never embedded."}
	if _, err := b.st.UpsertPapers(t.Context(), []paper.Abstract{late}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	msg := wantError(t, "related of a paper without embedding", b.get("/api/papers/"+url.PathEscape(late.ID)+"/related"), http.StatusConflict)
	if !strings.Contains(msg, "is a worker running") || !strings.Contains(msg, "paperpipe dlq list") {
		t.Errorf("409 message %q: want it to ask whether a worker runs and to point at `paperpipe dlq list`", msg)
	}
}

// apiArchive is a bundle whose archive (ten sample papers) is embedded by an embedding API
// model, active, and the client of that API.
func apiArchive(t *testing.T) (*bundle, *embed.Client, *openaitest.Server) {
	t.Helper()
	ai := openaitest.Start(t, openaitest.Config{})
	client, err := embed.New(embed.Config{BaseURL: ai.URL(), APIKey: "test", Model: "text-embedding-3-small", Dimensions: 64})
	if err != nil {
		t.Fatal(err)
	}
	b := newBundle(t)
	ctx := t.Context()
	papers := sampledata.Papers(t)[:10]
	if _, err := b.st.UpsertPapers(ctx, papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	sp, err := b.st.EnsureSpace(ctx, client.Space())
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.Activate(ctx, sp.ID); err != nil {
		t.Fatal(err)
	}
	embs, _, err := client.Embed(ctx, papers)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SaveEmbeddings(ctx, sp.ID, embs); err != nil {
		t.Fatal(err)
	}
	return b, client, ai
}

// ledgerRequests is the requests the usage ledger holds today for model's embeddings.
func ledgerRequests(t *testing.T, b *bundle, model string) int {
	t.Helper()
	rows, err := b.st.Usage(t.Context(), time.Now().UTC().AddDate(0, 0, -1))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, r := range rows {
		if r.Model == model && r.Kind == paper.KindEmbedding {
			n += r.Requests
		}
	}
	return n
}

// TestQueryEmbeddingsAreRecordedInTheUsageLedger: the API calls of searches are paid for like
// the workers' and show in status: each query embedding the API made is recorded; a cached
// one, which made no call, is not, nor one of a local model.
func TestQueryEmbeddingsAreRecordedInTheUsageLedger(t *testing.T) {
	t.Parallel()
	b, client, ai := apiArchive(t)
	cfg := b.config()
	cfg.Embedder = client
	cfg.Usage = b.st
	b.serve(cfg)
	before := ai.Stats().EmbedRequests
	for _, q := range []string{"mixture of experts", "mixture of experts", "sparse upcycling"} {
		if r := b.get("/api/search?mode=semantic&q=" + url.QueryEscape(q)); r.code != http.StatusOK {
			t.Fatalf("search %q: %d %s", q, r.code, r.body)
		}
	}
	if r := b.get("/search?q=" + url.QueryEscape("load balancing")); r.code != http.StatusOK {
		t.Fatalf("search page: %d", r.code)
	}
	calls := int(ai.Stats().EmbedRequests - before)
	if calls != 3 {
		t.Fatalf("the searches made %d API calls, want 3 (one cached)", calls)
	}
	deadline := time.Now().Add(10 * time.Second)
	for ledgerRequests(t, b, "text-embedding-3-small") != calls {
		if time.Now().After(deadline) {
			t.Fatalf("the usage ledger holds %d embedding requests, want the searches' %d", ledgerRequests(t, b, "text-embedding-3-small"), calls)
		}
		time.Sleep(50 * time.Millisecond)
	}

	// A local model makes no API request: the pipeline records nothing for it, and neither
	// do searches.
	embs, _, err := b.emb.Embed(t.Context(), sampledata.Papers(t)[:10])
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SaveEmbeddings(t.Context(), b.space.ID, embs); err != nil {
		t.Fatal(err)
	}
	if err := b.st.Activate(t.Context(), b.space.ID); err != nil {
		t.Fatal(err)
	}
	ledger := &countingLedger{}
	cfg = b.config()
	cfg.Usage = ledger
	b.serve(cfg)
	if r := b.get("/api/search?mode=semantic&q=experts"); r.code != http.StatusOK {
		t.Fatalf("offline search: %d %s", r.code, r.body)
	}
	time.Sleep(1500 * time.Millisecond)
	if n := ledger.calls.Load(); n != 0 {
		t.Errorf("an offline query embedding wrote the ledger %d times", n)
	}
}

// countingLedger counts its writes.
type countingLedger struct{ calls atomic.Int32 }

func (l *countingLedger) RecordUsage(context.Context, []paper.Usage) error {
	l.calls.Add(1)
	return nil
}

// slowLedger is a usage ledger whose writes wait for release, whatever their context, then
// fail: a search that waited for one would not be answered.
type slowLedger struct {
	release chan struct{}
	calls   atomic.Int32
}

func (l *slowLedger) RecordUsage(context.Context, []paper.Usage) error {
	l.calls.Add(1)
	<-l.release
	return errors.New("ERROR: could not extend file: No space left on device (SQLSTATE 53100)")
}

// TestUsageLedgerNeitherSlowsNorFailsASearch: the ledger is written off the request path: a
// search does not wait for a slow write, nor fail when it fails, which is logged. The searches
// after the first are made while the ledger holds the write of the first one's usage, which
// ends only once they are answered. (Each search was bounded at 2 s instead, a time a search
// on a loaded machine under -race can outlast.)
func TestUsageLedgerNeitherSlowsNorFailsASearch(t *testing.T) {
	t.Parallel()
	b, client, _ := apiArchive(t)
	ledger := &slowLedger{release: make(chan struct{})}
	var once sync.Once
	release := func() { once.Do(func() { close(ledger.release) }) }
	logs := &lockedBuffer{}
	cfg := b.config()
	cfg.Embedder = client
	cfg.Usage = ledger
	cfg.Logger = slog.New(slog.NewTextHandler(logs, nil))
	srv := b.serve(cfg)
	t.Cleanup(release) // before the server's close, which would wait for a search held by the ledger
	search := func(i int) {
		t.Helper()
		q := url.QueryEscape(fmt.Sprint("experts ", i))
		answered := make(chan string, 1)
		go func() {
			resp, err := http.Get(srv.URL + "/api/search?mode=semantic&q=" + q)
			if err != nil {
				answered <- err.Error()
				return
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				answered <- fmt.Sprintf("%d %s", resp.StatusCode, body)
				return
			}
			answered <- ""
		}()
		select {
		case failed := <-answered:
			if failed != "" {
				t.Fatalf("search %d: %s", i, failed)
			}
		case <-time.After(30 * time.Second): // only a search waiting for the ledger gets here
			t.Fatalf("search %d is not answered while the usage ledger holds a write", i)
		}
	}
	search(0)
	for deadline := time.Now().Add(10 * time.Second); ledger.calls.Load() == 0; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the ledger was never written")
		}
	}
	for i := 1; i <= 2; i++ {
		search(i)
	}
	release()
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(logs.String(), "No space left on device") {
		if time.Now().After(deadline) {
			t.Fatalf("the failed ledger write is not logged:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// switchingEmbedder says it makes the vectors of its QueryEmbedder's space, but embeds its
// first query with another model of the same size, as cmd/paperpipe's offline embedder does
// when a fit is activated between the space's check and the embedding.
type switchingEmbedder struct {
	web.QueryEmbedder
	calls *atomic.Int32
}

func (e switchingEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	vec, u, err := e.QueryEmbedder.EmbedQuery(ctx, text)
	if e.calls.Add(1) == 1 {
		u.Model = "paperpipe-offline-tfidf-abc123"
	}
	return vec, u, err
}

// TestQueryEmbeddedByAnotherModelIsNeitherUsedNorCached: a vector the embedder made with
// another model than the active space's (the space moved during the search) searches nothing
// and is not cached under the space's name, where later searches would use it.
func TestQueryEmbeddedByAnotherModelIsNeitherUsedNorCached(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	cfg := b.config()
	cfg.Embedder = switchingEmbedder{QueryEmbedder: b.emb, calls: &atomic.Int32{}}
	b.serve(cfg)
	msg := wantError(t, "a search embedded by another model", b.get("/api/search?mode=semantic&q=experts"), http.StatusConflict)
	if !strings.Contains(msg, "try again") {
		t.Errorf("409 message %q does not say to try again", msg)
	}
	var body hitsBody
	r := b.get("/api/search?mode=semantic&q=experts")
	r.json(t, &body)
	if r.code != http.StatusOK || body.CachedEmbedding {
		t.Errorf("the search again: %d, cached %v; want 200 with a new embedding", r.code, body.CachedEmbedding)
	}
}

const summarizeModel = "paperpipe-offline-extractive"

// servedWithAnotherSpacesEmbedder serves 10 processed papers with an embedder of another
// space than the archive's.
func servedWithAnotherSpacesEmbedder(t *testing.T) *bundle {
	t.Helper()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:10])
	b.process()
	cfg := b.config()
	cfg.Embedder = otherSpace{embed.NewOffline()}
	b.serve(cfg)
	return b
}

// otherSpace is an embedder of another space than the archive's.
type otherSpace struct{ *embed.Offline }

func (otherSpace) Space() paper.Space {
	return paper.Space{Model: "text-embedding-3-small", Dimensions: 1536, Template: embed.TemplateTitleAbstract}
}

func TestSearchWithoutMatchingEmbedder(t *testing.T) {
	t.Parallel()
	b := servedWithAnotherSpacesEmbedder(t)
	msg := wantError(t, "semantic with another space's embedder", b.get("/api/search?mode=semantic&q=experts"), http.StatusConflict)
	if !strings.Contains(msg, b.space.Name()) || !strings.Contains(msg, "text-embedding-3-small/1536") {
		t.Errorf("409 message %q does not name both spaces", msg)
	}
	wantError(t, "hybrid", b.get("/api/search?mode=hybrid&q=experts"), http.StatusConflict)
	if r := b.get("/api/search?mode=keyword&q=language"); r.code != http.StatusOK {
		t.Errorf("keyword search needs no embedder: %d %s", r.code, r.body)
	}
	// The UI falls back to keyword search when no mode was chosen, and says why.
	r := b.get("/search?q=language")
	if r.code != http.StatusOK || !strings.Contains(string(r.body), "showing keyword results") {
		t.Errorf("UI fallback: %d", r.code)
	}

	cfg := b.config()
	cfg.Embedder = nil
	b.serve(cfg)
	wantError(t, "semantic without an embedder", b.get("/api/search?mode=semantic&q=experts"), http.StatusConflict)
	if r := b.get("/api/search?mode=keyword&q=language"); r.code != http.StatusOK {
		t.Errorf("keyword search without any embedder: %d %s", r.code, r.body)
	}
}

func TestRepeatedSearchMakesNoAPICall(t *testing.T) {
	t.Parallel()
	b, client, ai := apiArchive(t)
	cfg := b.config()
	cfg.Embedder = client
	b.serve(cfg)

	before := ai.Stats().EmbedRequests
	search := func(q string) hitsBody {
		t.Helper()
		var body hitsBody
		r := b.get("/api/search?mode=semantic&q=" + url.QueryEscape(q))
		r.json(t, &body)
		if r.code != http.StatusOK || len(body.Results) == 0 {
			t.Fatalf("search %q: %d %s", q, r.code, r.body)
		}
		return body
	}
	first := search("mixture of experts")
	if got := ai.Stats().EmbedRequests - before; got != 1 || first.CachedEmbedding {
		t.Fatalf("first search made %d API calls (cached %v), want 1", got, first.CachedEmbedding)
	}
	again := search("mixture of experts")
	if got := ai.Stats().EmbedRequests - before; got != 1 || !again.CachedEmbedding {
		t.Errorf("repeated search: %d API calls in all (cached %v), want still 1", got, again.CachedEmbedding)
	}
	if !slices.EqualFunc(first.Results, again.Results, func(a, b paper.Hit) bool { return a.ID == b.ID }) {
		t.Error("the cached search answers differently")
	}
	// The hybrid mode shares the cache: same text, same model.
	if r := b.get("/api/search?mode=hybrid&q=" + url.QueryEscape("mixture of experts")); r.code != http.StatusOK {
		t.Fatalf("hybrid: %d %s", r.code, r.body)
	}
	if got := ai.Stats().EmbedRequests - before; got != 1 {
		t.Errorf("hybrid search of a cached text made an API call (%d in all)", got)
	}
	search("sparse upcycling")
	if got := ai.Stats().EmbedRequests - before; got != 2 {
		t.Errorf("a new text made %d API calls in all, want 2", got)
	}
}

// gatedEmbedder counts its query embeddings and holds each until release is closed (or its
// context ends), then asks its QueryEmbedder.
type gatedEmbedder struct {
	web.QueryEmbedder
	calls   *atomic.Int32
	release chan struct{}
}

func (e gatedEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	e.calls.Add(1)
	select {
	case <-e.release:
	case <-ctx.Done():
		return nil, paper.Usage{}, ctx.Err()
	}
	return e.QueryEmbedder.EmbedQuery(ctx, text)
}

// waitForCacheMisses waits until the server has counted n look-ups that missed the query cache.
func waitForCacheMisses(t *testing.T, b *bundle, n int) {
	t.Helper()
	want := fmt.Sprintf(`paperpipe_query_embedding_cache_total{result="miss"} %d`+"\n", n)
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(string(b.get("/metrics").body), want); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the server did not count %d query cache misses", n)
		}
	}
}

// TestSimultaneousSearchesOfOneTextMakeOneAPICall: searches of the same text that arrive
// together (a results page shared in a lab's chat and opened by several people at once) all
// missed the cache, and each bought the same embedding. They share one call; a search whose
// call is given up (its client left) leaves the others to ask again rather than fail with it.
func TestSimultaneousSearchesOfOneTextMakeOneAPICall(t *testing.T) {
	t.Parallel()
	b, client, ai := apiArchive(t)
	calls := &atomic.Int32{}
	release := make(chan struct{})
	cfg := b.config()
	cfg.Embedder = gatedEmbedder{QueryEmbedder: client, calls: calls, release: release}
	b.serve(cfg)

	const n = 5
	before := ai.Stats().EmbedRequests
	answers := make(chan response, n)
	for range n {
		go func() { answers <- doTo(t, b.http.URL, "GET", "/api/search?mode=semantic&q=mixture+of+experts", nil) }()
	}
	// Every search has looked in the cache, and each would now make its own call.
	waitForCacheMisses(t, b, n)
	close(release)
	uncached := 0
	for range n {
		r := <-answers
		var body hitsBody
		r.json(t, &body)
		if r.code != http.StatusOK || len(body.Results) == 0 {
			t.Fatalf("search: %d %s", r.code, r.body)
		}
		if !body.CachedEmbedding {
			uncached++
		}
	}
	if got := ai.Stats().EmbedRequests - before; got != 1 || calls.Load() != 1 || uncached != 1 {
		t.Errorf("%d simultaneous searches of one text made %d API calls (%d query embeddings, %d answers not cached_embedding), want 1",
			n, got, calls.Load(), uncached)
	}

}

// TestSearchWhoseClientLeftGoesOnForTheOthersWaiting: the call a search makes for its query
// embedding is shared by the searches of the same text that wait for it, so the client that
// made it going away (a tab closed, a crawler's timeout) does not end it while others wait:
// ending it threw away an embedding being paid for, bought it again for the next in line, and
// made that one wait the API's whole latency over again; with a slow API and impatient
// clients, no search of the text was ever answered. The call is given up only when every
// search waiting for it has gone.
func TestSearchWhoseClientLeftGoesOnForTheOthersWaiting(t *testing.T) {
	t.Parallel()
	b, client, ai := apiArchive(t)
	calls := &atomic.Int32{}
	release := make(chan struct{})
	cfg := b.config()
	cfg.Embedder = gatedEmbedder{QueryEmbedder: client, calls: calls, release: release}
	b.serve(cfg)

	const path = "/api/search?mode=semantic&q=sparse+upcycling"
	leave := func(ctx context.Context) <-chan error {
		gone := make(chan error, 1)
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", b.http.URL+path, nil)
			resp, err := http.DefaultClient.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			gone <- err
		}()
		return gone
	}
	before := ai.Stats().EmbedRequests
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	gone := leave(ctx)
	waitForCacheMisses(t, b, 1)
	answer := make(chan response, 1)
	go func() { answer <- doTo(t, b.http.URL, "GET", path, nil) }()
	waitForCacheMisses(t, b, 2)
	cancel() // the client of the search that made the call leaves
	<-gone
	// The server sees the client leave once its connection closes; a later search of the
	// text still finds the call in progress and waits for it too.
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		if strings.Contains(string(b.get("/metrics").body), `paperpipe_http_request_duration_seconds_count{code="499"`) {
			break
		}
		if time.Now().After(deadline) {
			close(release)
			t.Fatal("the server did not see the first search's client leave within 10 s: the test would not show what it is named for")
		}
	}
	close(release)
	var body hitsBody
	r := <-answer
	r.json(t, &body)
	if r.code != http.StatusOK || len(body.Results) == 0 {
		t.Fatalf("the search left waiting: %d %s, want 200", r.code, r.body)
	}
	if got := ai.Stats().EmbedRequests - before; got != 1 || calls.Load() != 1 {
		t.Errorf("two searches of one text, the first one's client gone: %d API calls (%d query embeddings), want 1", got, calls.Load())
	}
	if !body.CachedEmbedding {
		t.Error("the search that waited for another's call says it made its own (cached_embedding false)")
	}

	// When every search waiting for a call has gone, the call is given up.
	calls.Store(0)
	ended := make(chan struct{})
	cfg.Embedder = endedEmbedder{QueryEmbedder: client, calls: calls, ended: ended}
	b.serve(cfg)
	ctx, cancel = context.WithCancel(t.Context())
	gone = leave(ctx)
	for deadline := time.Now().Add(10 * time.Second); calls.Load() < 1; time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("the search made no call")
		}
	}
	cancel()
	<-gone
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Error("the call went on after the only search waiting for it had gone")
	}
}

// TestSearchPageThatStopsWaitingKeepsTheEmbeddingForTheNext: the search page without a mode
// waits a third of its time at most for the query's embedding, then shows keyword results; its
// wait ended the API call, so an embedding API slower than the wait (a model server on a CPU, a
// queue at the provider) was paid for each search and never gave one: every search of the
// text waited, fell back and bought the call again. The call goes on for the page's time, and
// its vector is cached for the next search.
func TestSearchPageThatStopsWaitingKeepsTheEmbeddingForTheNext(t *testing.T) {
	t.Parallel()
	b, client, ai := apiArchive(t)
	calls := &atomic.Int32{}
	release := make(chan struct{})
	cfg := b.config()
	cfg.Embedder = gatedEmbedder{QueryEmbedder: client, calls: calls, release: release}
	cfg.PageTimeout = 9 * time.Second // the page waits 3 s for the embedding
	b.serve(cfg)

	before := ai.Stats().EmbedRequests
	const path = "/search?q=mixture+of+experts"
	if r := b.get(path); r.code != http.StatusOK || !strings.Contains(string(r.body), "did not answer") {
		t.Fatalf("search page, the embedding API slower than its wait: %d %.2000s, want 200 with keyword results saying why", r.code, r.body)
	}
	close(release) // the API answers, after the page stopped waiting
	r := b.get(path)
	if r.code != http.StatusOK || strings.Contains(string(r.body), "showing keyword results") {
		t.Errorf("the same search again: %d %.2000s, want 200 with hybrid results", r.code, r.body)
	}
	if got := ai.Stats().EmbedRequests - before; got != 1 || calls.Load() != 1 {
		t.Errorf("two searches of one text on the search page: %d API calls (%d query embeddings), want 1", got, calls.Load())
	}
}

// endedEmbedder counts its query embeddings, and closes ended when the context of one ends.
type endedEmbedder struct {
	web.QueryEmbedder
	calls *atomic.Int32
	ended chan struct{}
}

func (e endedEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	e.calls.Add(1)
	<-ctx.Done()
	close(e.ended)
	return nil, paper.Usage{}, ctx.Err()
}

// panickyEmbedder's first query embedding waits for release, then panics.
type panickyEmbedder struct {
	web.QueryEmbedder
	calls   *atomic.Int32
	release chan struct{}
}

func (e panickyEmbedder) EmbedQuery(ctx context.Context, text string) ([]float32, paper.Usage, error) {
	if e.calls.Add(1) == 1 {
		<-e.release
		panic("embedder bug")
	}
	return e.QueryEmbedder.EmbedQuery(ctx, text)
}

// TestSearchWaitingForAnEmbeddingThatPanickedAsksAgain: a search waiting for another's query
// embedding is not left waiting when that one's embedder panics (the panic is a 500 for its
// own request): it makes its own call, and so do later searches of the text.
func TestSearchWaitingForAnEmbeddingThatPanickedAsksAgain(t *testing.T) {
	t.Parallel()
	b, client, _ := apiArchive(t)
	calls := &atomic.Int32{}
	release := make(chan struct{})
	cfg := b.config()
	cfg.Embedder = panickyEmbedder{QueryEmbedder: client, calls: calls, release: release}
	cfg.WriteTimeout = 5 * time.Second // a search left waiting answers 503, not never
	b.serve(cfg)
	const path = "/api/search?mode=semantic&q=mixture+of+experts"
	first := make(chan response, 1)
	go func() { first <- doTo(t, b.http.URL, "GET", path, nil) }()
	waitForCacheMisses(t, b, 1)
	second := make(chan response, 1)
	go func() { second <- doTo(t, b.http.URL, "GET", path, nil) }()
	waitForCacheMisses(t, b, 2)
	close(release)
	if r := <-first; r.code != http.StatusInternalServerError {
		t.Errorf("the search whose embedder panicked: %d %s, want 500", r.code, r.body)
	}
	if r := <-second; r.code != http.StatusOK {
		t.Errorf("the search that waited for it: %d %s, want 200", r.code, r.body)
	}
	if r := b.get(path); r.code != http.StatusOK {
		t.Errorf("a later search of the text: %d %s, want 200", r.code, r.body)
	}
}

type postBody struct {
	Error    string `json:"error"`
	Status   int    `json:"status"`
	Accepted []struct {
		Index int    `json:"index"`
		ID    string `json:"id"`
	} `json:"accepted"`
	Rejected []struct {
		Index int    `json:"index"`
		Line  int    `json:"line"`
		ID    string `json:"id"`
		Error string `json:"error"`
	} `json:"rejected"`
}

func TestPostPapers(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.APIToken = "s3cret-token"
	cfg.MaxBodyBytes = 64 << 10
	b.serve(cfg)
	auth := []string{"Authorization", "Bearer s3cret-token"}

	body := []byte(`[
		{"id": "2501.00001v2", "title": "Posted paper on quokkas", "abstract": "We show that quokkas smile. We measure it.", "categories": ["q-bio.PE"]},
		{"id": "2501.00002", "title": "No abstract", "abstract": "  "},
		{"title": "A paper without an id", "abstract": "Its id is derived from the title."},
		{"id": "arxiv:garbage", "title": "Bad id", "abstract": "x"},
		"not an object"
	]`)
	wantError(t, "no token", b.do(http.MethodPost, "/api/papers", body), http.StatusUnauthorized)
	r := b.do(http.MethodPost, "/api/papers", body, "Authorization", "Bearer wrong")
	wantError(t, "wrong token", r, http.StatusUnauthorized)
	if !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Bearer") {
		t.Errorf("WWW-Authenticate = %q", r.header.Get("WWW-Authenticate"))
	}

	r = b.do(http.MethodPost, "/api/papers", body, auth...)
	var ans postBody
	r.json(t, &ans)
	if r.code != http.StatusAccepted || len(ans.Accepted) != 2 || len(ans.Rejected) != 3 {
		t.Fatalf("POST: %d %s", r.code, r.body)
	}
	if ans.Accepted[0].ID != "arxiv:2501.00001" || !strings.HasPrefix(ans.Accepted[1].ID, "title:") {
		t.Errorf("accepted %+v: want canonical ids", ans.Accepted)
	}
	reasons := map[int]string{}
	for _, rj := range ans.Rejected {
		reasons[rj.Index] = rj.Error
	}
	for i, want := range map[int]string{1: "abstract is empty", 3: "arxiv", 4: "object"} {
		if !strings.Contains(reasons[i], want) {
			t.Errorf("record %d rejected with %q, want a reason mentioning %q", i, reasons[i], want)
		}
	}
	// The queued papers are processed like ingested ones.
	b.process()
	var rec paper.Record
	r = b.get("/api/papers/arxiv:2501.00001")
	r.json(t, &rec)
	if r.code != http.StatusOK || rec.TLDR == nil || !slices.Equal(rec.Categories, []string{"q-bio.PE"}) {
		t.Errorf("posted paper after processing: %d %+v", r.code, rec)
	}

	// One object, the {"papers": [...]} wrapper, and JSON lines.
	for _, tc := range []struct {
		name, ct, body string
		accepted       int
	}{
		{"one object", "application/json", `{"id": "2501.00003", "title": "T3", "abstract": "A3."}`, 1},
		{"wrapper", "application/json", `{"papers": [{"id": "2501.00004", "title": "T4", "abstract": "A4."}]}`, 1},
		{"JSON lines", "application/x-ndjson", "{\"id\": \"2501.00005\", \"title\": \"T5\", \"abstract\": \"A5.\"}\n\n{broken\n{\"id\": \"2501.00006\", \"title\": \"T6\", \"abstract\": \"A6.\"}\n", 2},
		// A byte order mark, as Windows tools write before a file's text, is skipped as
		// ingest skips it (it was answered "the body is not a JSON object or array").
		{"JSON after a byte order mark", "application/json", "\ufeff" + `[{"id": "2501.00007", "title": "T7", "abstract": "A7."}]`, 1},
		{"JSON lines after a byte order mark", "application/x-ndjson", "\ufeff" + `{"id": "2501.00008", "title": "T8", "abstract": "A8."}` + "\n", 1},
	} {
		r := b.do(http.MethodPost, "/api/papers", []byte(tc.body), append(auth, "Content-Type", tc.ct)...)
		var ans postBody
		r.json(t, &ans)
		if r.code != http.StatusAccepted || len(ans.Accepted) != tc.accepted {
			t.Errorf("%s: %d %s", tc.name, r.code, r.body)
		}
		if tc.name == "JSON lines" && (len(ans.Rejected) != 1 || ans.Rejected[0].Line != 3) {
			t.Errorf("JSON lines: rejected %+v, want line 3", ans.Rejected)
		}
	}

	// Nothing acceptable: 422 with the reasons.
	r = b.do(http.MethodPost, "/api/papers", []byte(`[{"title": ""}]`), auth...)
	r.json(t, &ans)
	if r.code != http.StatusUnprocessableEntity || ans.Status != 422 || ans.Error == "" || len(ans.Rejected) != 1 {
		t.Errorf("all rejected: %d %s", r.code, r.body)
	}
	wantError(t, "not JSON", b.do(http.MethodPost, "/api/papers", []byte(`{"title": `), auth...), http.StatusBadRequest)
	wantError(t, "empty", b.do(http.MethodPost, "/api/papers", []byte(` `), auth...), http.StatusBadRequest)
	// A wrapper whose papers are not a list says so: it was taken for one record and
	// rejected as "title is empty".
	for _, body := range []string{`{"papers": 5}`, `{"papers": {"title": "T", "abstract": "A."}}`, `{"papers": null}`, `{"papers": "x"}`} {
		if msg := wantError(t, body, b.do(http.MethodPost, "/api/papers", []byte(body), auth...), http.StatusBadRequest); !strings.Contains(msg, `"papers" is`) || !strings.Contains(msg, "want an array of records") {
			t.Errorf("POST %s: error %q, want it to say papers must be an array of records", body, msg)
		}
	}
	wantError(t, "XML", b.do(http.MethodPost, "/api/papers", []byte(`<paper/>`), append(auth, "Content-Type", "application/xml")...), http.StatusUnsupportedMediaType)
	// A compressed body is refused as such, not read as bytes that are "not a JSON object".
	var zipped bytes.Buffer
	zw := gzip.NewWriter(&zipped)
	zw.Write([]byte(`{"id": "2501.00009", "title": "T9", "abstract": "A9."}`))
	zw.Close()
	gz := b.do(http.MethodPost, "/api/papers", zipped.Bytes(),
		append(auth, "Content-Type", "application/json", "Content-Encoding", "gzip")...)
	if msg := wantError(t, "gzip", gz, http.StatusUnsupportedMediaType); !strings.Contains(msg, `Content-Encoding "gzip"`) {
		t.Errorf("gzip body: error %q, want it to name the Content-Encoding", msg)
	}
	big := fmt.Sprintf(`{"title": "Big", "abstract": %q}`, strings.Repeat("word ", 20<<10))
	wantError(t, "too large", b.do(http.MethodPost, "/api/papers", []byte(big), auth...), http.StatusRequestEntityTooLarge)

	// Reads stay open without the token.
	if r := b.get("/api/papers"); r.code != http.StatusOK {
		t.Errorf("read without a token: %d", r.code)
	}
}

// TestPageWithoutTheTokenSaysHowABrowserGivesIt: where reads are protected, a page asked for
// without the token (the browser's prompt cancelled, or a wrong password given) said "send
// Authorization: Bearer TOKEN", which no reader of the page can do from a browser: it says
// to give the token as the password the browser asks for.
func TestPageWithoutTheTokenSaysHowABrowserGivesIt(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.APIToken, cfg.ProtectReads = "tok", true
	b.serve(cfg)
	for _, tc := range []struct {
		what   string
		header []string
	}{
		{"without a token", nil},
		{"with a wrong password", []string{"Authorization", "Basic " + basic("anyone", "wrong")}},
	} {
		r := b.get("/search?q=experts", tc.header...)
		if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
			t.Fatalf("page %s: %d %s, want a 401 page", tc.what, r.code, r.header.Get("Content-Type"))
		}
		msg := pageMessage(t, r.body)
		if strings.Contains(msg, "Bearer") || !strings.Contains(msg, "password") {
			t.Errorf("page %s says %q, want how a browser gives the token (as the password it asks for)", tc.what, msg)
		}
	}
	// The API's answer still names the header.
	if msg := wantError(t, "API read without token", b.get("/api/papers"), http.StatusUnauthorized); !strings.Contains(msg, "Authorization: Bearer") {
		t.Errorf("API read without token says %q, want the header to send", msg)
	}
}

// pageMessage is the message of an error page.
func pageMessage(t *testing.T, body []byte) string {
	t.Helper()
	m := regexp.MustCompile(`(?s)<p class="error" role="alert">(.*?)</p>`).FindSubmatch(body)
	if m == nil {
		t.Fatalf("no error message in the page %.500s", body)
	}
	return html.UnescapeString(string(m[1]))
}

func TestProtectedReads(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.APIToken, cfg.ProtectReads = "tok", true
	b.serve(cfg)
	wantError(t, "API read without token", b.get("/api/papers"), http.StatusUnauthorized)
	if r := b.get("/api/papers", "Authorization", "Bearer tok"); r.code != http.StatusOK {
		t.Errorf("API read with token: %d", r.code)
	}
	// The scheme's name is case-insensitive (RFC 9110, 11.1): some clients send it lower-case.
	if r := b.get("/api/papers", "Authorization", "bearer tok"); r.code != http.StatusOK {
		t.Errorf("API read with the token after a lower-case scheme: %d", r.code)
	}
	r := b.get("/")
	if r.code != http.StatusUnauthorized || !strings.HasPrefix(r.header.Get("WWW-Authenticate"), "Basic") {
		t.Errorf("page without token: %d, WWW-Authenticate %q", r.code, r.header.Get("WWW-Authenticate"))
	}
	req, _ := http.NewRequest(http.MethodGet, b.http.URL+"/", nil)
	req.SetBasicAuth("anyone", "tok")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("page with the token as Basic password: %d", resp.StatusCode)
	}
	for _, open := range []string{"/healthz", "/readyz", "/api/openapi.json", "/static/style.css"} {
		if r := b.get(open); r.code != http.StatusOK {
			t.Errorf("%s needs no token, got %d", open, r.code)
		}
	}
	if _, err := web.New(web.Config{Store: testStore{Store: b.st}, ProtectReads: true}); err == nil {
		t.Error("ProtectReads without a token is accepted")
	}
}

// TestCachingHeaders: every answer says how it may be cached. The pages of a server whose
// reads need the token must be kept in no cache at all ("private, no-store": not in a shared
// cache, nor on the browser's disk, where the next user of the machine finds them); open ones
// are revalidated each time (no-cache); JSON and the metrics, live snapshots, are never
// stored; the static assets, open and versioned, are kept a day.
func TestCachingHeaders(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:3])
	b.process()
	id := url.PathEscape(sampledata.Papers(t)[0].ID)
	for _, protect := range []bool{false, true} {
		cfg := b.config()
		page := "no-cache"
		var auth []string
		if protect {
			cfg.APIToken, cfg.ProtectReads = "tok", true
			page = "private, no-store"
			auth = []string{"Authorization", "Bearer tok"}
		}
		b.serve(cfg)
		for _, tc := range []struct {
			path string
			auth bool
			code int
			want string
		}{
			{"/", true, http.StatusOK, page},
			{"/search?q=attention&mode=keyword", true, http.StatusOK, page},
			{"/papers/" + id, true, http.StatusOK, page},
			{"/papers/arxiv:0000.00000", true, http.StatusNotFound, page},
			{"/status", true, http.StatusOK, page},
			{"/map", true, http.StatusOK, page},
			{"/no/such/page", true, http.StatusNotFound, page},
			{"/api/papers", true, http.StatusOK, "no-store"},
			{"/api/papers/" + id, true, http.StatusOK, "no-store"},
			{"/api/search?q=attention&mode=keyword", true, http.StatusOK, "no-store"},
			{"/api/status", true, http.StatusOK, "no-store"},
			{"/api/nothing", true, http.StatusNotFound, "no-store"},
			{"/metrics", true, http.StatusOK, "no-store"},
			{"/healthz", false, http.StatusOK, "no-store"},
			{"/readyz", false, http.StatusOK, "no-store"},
			{"/static/style.css", false, http.StatusOK, "no-cache"}, // versioned: TestStaticFilesOfAnotherVersionAreNotKept
		} {
			var h []string
			if tc.auth {
				h = auth
			}
			r := b.get(tc.path, h...)
			if r.code != tc.code || r.header.Get("Cache-Control") != tc.want {
				t.Errorf("reads protected %v: GET %s: %d, Cache-Control %q; want %d, %q", protect, tc.path, r.code, r.header.Get("Cache-Control"), tc.code, tc.want)
			}
		}
		if protect {
			for _, p := range []string{"/", "/api/papers", "/metrics"} {
				if r := b.get(p); r.code != http.StatusUnauthorized || !strings.Contains(r.header.Get("Cache-Control"), "no-store") {
					t.Errorf("GET %s without the token: %d, Cache-Control %q; want 401, not stored", p, r.code, r.header.Get("Cache-Control"))
				}
			}
		}
	}
}

func TestReadyzReportsFailingChecks(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Checks[1] = web.Check{Name: "nats", Check: func(context.Context) error { return fmt.Errorf("not connected") }}
	b.serve(cfg)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	r := b.get("/readyz")
	if err := json.Unmarshal(r.body, &ready); err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusServiceUnavailable || ready.Status != "unavailable" || ready.Checks["nats"] != "not connected" || ready.Checks["database"] != "ok" {
		t.Errorf("readyz: %d %s", r.code, r.body)
	}

	// Where reads are protected, the probe stays open but keeps its reasons (a database
	// error names host, user and database) for those with the token.
	cfg.APIToken, cfg.ProtectReads = "tok", true
	b.serve(cfg)
	for _, tc := range []struct {
		name    string
		headers []string
		want    string
	}{{"without the token", nil, "failed"}, {"with the token", []string{"Authorization", "Bearer tok"}, "not connected"}} {
		r := b.get("/readyz", tc.headers...)
		ready.Checks = nil
		if err := json.Unmarshal(r.body, &ready); err != nil {
			t.Fatal(err)
		}
		if r.code != http.StatusServiceUnavailable || ready.Checks["nats"] != tc.want {
			t.Errorf("readyz %s, reads protected: %d %s; want the nats check %q", tc.name, r.code, r.body, tc.want)
		}
	}
}

// A check that only reports (serve's NATS) and does not answer — a NATS gone silent whose
// client still says "connected" — must not hold up /readyz for the 3 s a check that counts may
// take: a probe's timeout would then make the replica unready, the outage ReportOnly rides out.
func TestReadyzDoesNotWaitForAReportOnlyCheck(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.Checks[1] = web.Check{Name: "nats", ReportOnly: true, Check: func(ctx context.Context) error { <-ctx.Done(); return ctx.Err() }}
	b.serve(cfg)
	start := time.Now()
	r := b.get("/readyz")
	took := time.Since(start)
	var ready struct {
		Status string            `json:"status"`
		Checks map[string]string `json:"checks"`
	}
	if err := json.Unmarshal(r.body, &ready); err != nil {
		t.Fatal(err)
	}
	if r.code != http.StatusOK || ready.Checks["nats"] == "ok" || ready.Checks["database"] != "ok" {
		t.Errorf("readyz with a silent report-only check: %d %s; want 200, the check reported failed", r.code, r.body)
	}
	if took >= 2500*time.Millisecond { // a check that counts may take 3 s
		t.Errorf("readyz waited %v for a report-only check that does not answer", took.Round(time.Millisecond))
	}
}

func TestHTTPServerHasTimeouts(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.ReadTimeout = 7 * time.Second
	w, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	srv := w.HTTPServer("127.0.0.1:0")
	if srv.ReadHeaderTimeout != 5*time.Second || srv.ReadTimeout != 7*time.Second || srv.WriteTimeout != 60*time.Second || srv.IdleTimeout != 120*time.Second {
		t.Errorf("timeouts: header %v, read %v, write %v, idle %v", srv.ReadHeaderTimeout, srv.ReadTimeout, srv.WriteTimeout, srv.IdleTimeout)
	}
	// ListenAndServe serves until its context ends, then returns nil.
	ctx, cancel := context.WithCancel(t.Context())
	addrc := make(chan string, 1)
	done := make(chan error, 1)
	go func() {
		done <- w.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a.String() })
	}()
	addr := <-addrc
	if r := doTo(t, "http://"+addr, http.MethodGet, "/healthz", nil); r.code != http.StatusOK {
		t.Errorf("healthz on %s: %d", addr, r.code)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("ListenAndServe after cancel: %v", err)
	}
}

// A hybrid search leaves out the papers with an excluded word, and what it embeds is the text
// without the excluded words and the syntax: embedding "-routing" would pull the results toward
// routing. (The cache is keyed by the embedded text: a semantic search of the words alone
// finds the hybrid search's vector.)
func TestHybridSearchOfExcludedWords(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	routing, err := b.st.KeywordSearch(t.Context(), "routing", 100)
	if err != nil || len(routing) == 0 {
		t.Fatalf("papers about routing: %d, %v; the test's premise is wrong", len(routing), err)
	}
	var hy hitsBody
	r := b.get("/api/search?k=50&q=" + url.QueryEscape(`"mixture of experts" or experts -routing`))
	r.json(t, &hy)
	if r.code != http.StatusOK || hy.Mode != web.ModeHybrid || len(hy.Results) == 0 {
		t.Fatalf("hybrid search: %d %s", r.code, r.body)
	}
	for _, h := range hy.Results {
		if slices.ContainsFunc(routing, func(x paper.Hit) bool { return x.ID == h.ID }) {
			t.Errorf("the hybrid search for experts -routing answers %s (%s), which mentions routing", h.ID, h.Title)
		}
	}
	var sem hitsBody
	b.get("/api/search?mode=semantic&q="+url.QueryEscape("mixture of experts experts")).json(t, &sem)
	if !sem.CachedEmbedding {
		t.Errorf("the hybrid search did not embed its text without the excluded word and the syntax")
	}
	// Only excluded words: nothing to embed.
	msg := wantError(t, "semantic search of -routing", b.get("/api/search?mode=semantic&q=-routing"), http.StatusBadRequest)
	if !strings.Contains(msg, "excluded words do not count") {
		t.Errorf("semantic search of -routing: %q", msg)
	}
	var kw struct {
		hitsBody
		Notice string `json:"notice"`
	}
	b.get("/api/search?q=-routing").json(t, &kw)
	if kw.Mode != web.ModeKeyword || !strings.Contains(kw.Notice, "only excluded words") {
		t.Errorf("hybrid search of -routing: mode %s, notice %q; want keyword results with a notice saying the query has only excluded words", kw.Mode, kw.Notice)
	}
}

// A semantic search reads web-search syntax as the hybrid search does: no paper with an
// excluded word is a result, however near its vector is to the query's, and the k results
// are made up from the papers without it.
func TestSemanticSearchOfExcludedWords(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	routing, err := b.st.KeywordSearch(t.Context(), "routing", 100)
	if err != nil || len(routing) == 0 {
		t.Fatalf("papers about routing: %d, %v; the test's premise is wrong", len(routing), err)
	}
	mentionsRouting := func(h paper.Hit) bool {
		return slices.ContainsFunc(routing, func(x paper.Hit) bool { return x.ID == h.ID })
	}
	// Without the exclusion, the nearest papers to "experts" include some about routing.
	var all hitsBody
	b.get("/api/search?mode=semantic&k=10&q=experts").json(t, &all)
	if !slices.ContainsFunc(all.Results, mentionsRouting) {
		t.Fatalf("no paper about routing among the 10 nearest to experts; the test's premise is wrong: %v", all.Results)
	}
	for _, q := range []string{"experts -routing", `experts -"expert routing" -routing`} {
		var sem hitsBody
		r := b.get("/api/search?mode=semantic&k=10&q=" + url.QueryEscape(q))
		r.json(t, &sem)
		if r.code != http.StatusOK || sem.Mode != web.ModeSemantic {
			t.Fatalf("semantic search of %s: %d %s", q, r.code, r.body)
		}
		if len(sem.Results) != 10 {
			t.Errorf("semantic search of %s: %d results, want 10 (the archive has %d papers without routing)", q, len(sem.Results), 108-len(routing))
		}
		for _, h := range sem.Results {
			if mentionsRouting(h) {
				t.Errorf("the semantic search of %s answers %s (%s), which mentions routing", q, h.ID, h.Title)
			}
		}
	}
}

// A query typed or pasted with its accents decomposed ("nai\u0308ve") finds the papers with
// the word, stored composed, by meaning too: the offline model split it at the combining mark
// into two words no paper has.
func TestSemanticSearchOfDecomposedAccents(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	ctx := t.Context()
	papers := []paper.Abstract{
		{ID: "arxiv:2401.00001", Title: "Na\u00efve Bayes revisited", Abstract: "The na\u00efve classifier on r\u00e9sum\u00e9 screening."},
		{ID: "arxiv:2401.00002", Title: "Kangaroo locomotion", Abstract: "Hopping is efficient at speed."},
	}
	if _, err := b.st.UpsertPapers(ctx, papers, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	for _, a := range papers {
		vec, _, err := b.emb.EmbedQuery(ctx, a.Title+"\n\n"+a.Abstract)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := b.st.SaveEmbeddings(ctx, b.space.ID, []paper.Embedding{{PaperID: a.ID, ContentHash: a.ContentHash(), Vector: vec}}); err != nil {
			t.Fatal(err)
		}
	}
	b.serve(b.config())
	for _, q := range []string{"na\u00efve", "nai\u0308ve", "re\u0301sume\u0301"} {
		var res hitsBody
		r := b.get("/api/search?mode=semantic&k=2&q=" + url.QueryEscape(q))
		r.json(t, &res)
		if r.code != http.StatusOK || len(res.Results) == 0 || res.Results[0].ID != papers[0].ID || res.Results[0].Score < 0.1 {
			t.Errorf("semantic search of %+q: %d %+v; want %s first, similar", q, r.code, res.Results, papers[0].ID)
		}
	}
}

// A paper whose vector is in another space than the active one (an operator activated a space
// of a new model that no vector of it is in yet): the 409 and the paper page say what the CLI's
// `related` says, the space that holds it and how to fill the active one; neither a worker nor
// the dead letters would.
func TestRelatedOfPaperEmbeddedInAnotherSpace(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	ctx := t.Context()
	a := paper.Abstract{ID: "arxiv:2401.00001", Title: "Sparse expert routing", Abstract: "We route tokens to experts and study load balance."}
	if _, err := b.st.UpsertPapers(ctx, []paper.Abstract{a}, paper.Work{}); err != nil {
		t.Fatal(err)
	}
	vec, _, err := b.emb.EmbedQuery(ctx, a.Title+"\n\n"+a.Abstract)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.st.SaveEmbeddings(ctx, b.space.ID, []paper.Embedding{{PaperID: a.ID, ContentHash: a.ContentHash(), Vector: vec}}); err != nil {
		t.Fatal(err)
	}
	other, err := b.st.EnsureSpace(ctx, paper.Space{Model: "text-embedding-3-small", Dimensions: 1536, Template: b.space.Template})
	if err != nil {
		t.Fatal(err)
	}
	if err := b.st.Activate(ctx, other.ID); err != nil {
		t.Fatal(err)
	}
	b.serve(b.config())
	want := embed.NoVectorHint(a.ID, other, []paper.Space{b.space})
	msg := wantError(t, "related", b.get("/api/papers/"+url.PathEscape(a.ID)+"/related"), http.StatusConflict)
	if msg != want || strings.Contains(msg, "dlq") || !strings.Contains(msg, b.space.Name()) ||
		!strings.Contains(msg, "--embed-model text-embedding-3-small --embed-dimensions 1536") {
		t.Errorf("the 409 of a paper embedded only in space %s (not active) is %q, want %q", b.space.Name(), msg, want)
	}
	page := b.get("/papers/" + url.PathEscape(a.ID))
	if page.code != 200 || strings.Contains(string(page.body), "dlq list") || !strings.Contains(string(page.body), "which queries do not use") {
		t.Errorf("the paper page (%d) does not say where the vector is:\n%s", page.code, page.body)
	}
}

// A keyword search of stop words only can match nothing: it says so instead of an empty answer
// that looks like an archive without such papers. A hybrid search of such text (which the model
// cannot embed either) says both.
func TestKeywordSearchOfStopWordsSaysSo(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	var body struct {
		hitsBody
		Notice string `json:"notice"`
	}
	r := b.get("/api/search?mode=keyword&q=" + url.QueryEscape("the of and"))
	r.json(t, &body)
	if r.code != http.StatusOK || body.Results == nil || len(body.Results) != 0 || !strings.Contains(body.Notice, "full-text search ignores every word") {
		t.Errorf("keyword search of stop words: %d %s, want 200, no results and a notice", r.code, r.body)
	}
	body.Notice = ""
	b.get("/api/search?q=the").json(t, &body)
	if body.Mode != web.ModeKeyword || !strings.Contains(body.Notice, "no words the embedding model") || !strings.Contains(body.Notice, "full-text search ignores") {
		t.Errorf("hybrid search of stop words: mode %s, notice %q", body.Mode, body.Notice)
	}
	page := b.get("/search?mode=keyword&q=the")
	if page.code != http.StatusOK || !strings.Contains(string(page.body), `<p class="notice">Full-text search ignores every word`) {
		t.Errorf("GET /search?mode=keyword&q=the: %d, no notice:\n%s", page.code, page.body)
	}
	var found hitsBody
	if b.get("/api/search?mode=keyword&q=wombat").json(t, &found); found.Mode != web.ModeKeyword {
		t.Errorf("keyword search of wombat: %+v", found)
	}
}

// A search whose keyword ranking ranked only the newest of the query's matches (more than
// store.Config.KeywordRankLimit matched) says so: bounded_ranking in the JSON of keyword and
// hybrid search, a line on the results page; a query matching fewer has neither.
func TestSearchSaysWhenTheKeywordRankingWasBounded(t *testing.T) {
	t.Parallel()
	b := withSample(t)
	cfg := b.config()
	cfg.Store = openTestStore(t, store.Config{URL: b.url, KeywordRankLimit: 5})
	b.serve(cfg)
	all, err := b.st.KeywordSearch(t.Context(), "model", 100)
	if err != nil || len(all) <= 5 {
		t.Fatalf("the sample has %d papers matching model (%v): the test needs more than 5", len(all), err)
	}
	type body struct {
		hitsBody
		Bounded *struct {
			RankedNewest   int `json:"ranked_newest"`
			MatchesAtLeast int `json:"matches_at_least"`
		} `json:"bounded_ranking"`
	}
	for _, mode := range []string{web.ModeKeyword, web.ModeHybrid} {
		var got body
		r := b.get("/api/search?mode=" + mode + "&q=model")
		r.json(t, &got)
		if r.code != http.StatusOK || got.Mode != mode || got.Bounded == nil || got.Bounded.RankedNewest != 5 || got.Bounded.MatchesAtLeast != 6 {
			t.Errorf("%s search of model with a rank limit of 5: %d %s; want bounded_ranking {ranked_newest: 5, matches_at_least: 6}", mode, r.code, r.body)
		}
		page := b.get("/search?mode=" + mode + "&q=model")
		if !strings.Contains(string(page.body), "More than 5 papers match: the keyword ranking covers only the 5 most recently added of them.") {
			t.Errorf("GET /search?mode=%s&q=model: %d, no line saying the ranking was bounded:\n%s", mode, page.code, page.body)
		}
	}
	few, err := b.st.KeywordSearch(t.Context(), "refactor", 100)
	if err != nil || len(few) == 0 || len(few) > 5 {
		t.Fatalf("the sample has %d papers matching refactor (%v): the test needs 1 to 5", len(few), err)
	}
	r := b.get("/api/search?mode=keyword&q=refactor")
	if r.code != http.StatusOK || strings.Contains(string(r.body), "bounded_ranking") {
		t.Errorf("keyword search of refactor (%d matches) with a rank limit of 5: %d %s; want no bounded_ranking", len(few), r.code, r.body)
	}
	if page := b.get("/search?mode=keyword&q=refactor"); strings.Contains(string(page.body), "most recently added") {
		t.Errorf("GET /search?mode=keyword&q=refactor says the ranking was bounded:\n%s", page.body)
	}
}

// TestHeadOfASearchBuysNoEmbedding: link checkers and previewers send HEAD; a HEAD of a search
// (the page or the API, any mode) answers the GET's status and headers without embedding the
// query, and a bad one is refused as the GET is.
func TestHeadOfASearchBuysNoEmbedding(t *testing.T) {
	t.Parallel()
	b, client, ai := apiArchive(t)
	cfg := b.config()
	cfg.Embedder = client
	b.serve(cfg)
	paths := []string{"/search?q=mixture+of+experts", "/search?q=sparse+upcycling&mode=semantic",
		"/api/search?q=load+balancing", "/api/search?q=routing+collapse&mode=semantic"}
	before := ai.Stats().EmbedRequests
	heads := make([]response, len(paths))
	for i, p := range paths {
		heads[i] = b.do(http.MethodHead, p, nil)
	}
	if n := ai.Stats().EmbedRequests - before; n != 0 {
		t.Errorf("4 HEAD requests of searches made %d embedding requests, want 0", n)
	}
	for i, p := range paths {
		r, get := heads[i], b.get(p)
		if r.code != get.code || len(r.body) != 0 || r.header.Get("Content-Type") != get.header.Get("Content-Type") {
			t.Errorf("HEAD %s: %d %q with %d bytes, GET answers %d %q", p, r.code, r.header.Get("Content-Type"), len(r.body),
				get.code, get.header.Get("Content-Type"))
		}
	}
	if r := b.do(http.MethodHead, "/api/search?q=x&k=0", nil); r.code != http.StatusBadRequest {
		t.Errorf("HEAD of a search with k=0: %d, want 400 as the GET", r.code)
	}
}

// TestSearchPageFallbackNoticeDoesNotAdviseKeywordMode: the search page that fell back to
// keyword results said "…; use mode=keyword — showing keyword results": advice to do what it
// was already doing, in the API's parameter syntax. Its notice says why, and that these are
// keyword results, without it; the API's errors keep the advice.
func TestSearchPageFallbackNoticeDoesNotAdviseKeywordMode(t *testing.T) {
	t.Parallel()
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(http.StatusInternalServerError)
		fmt.Fprint(w, `{"error": {"message": "The server had an error while processing your request.", "type": "server_error"}}`)
	}))
	t.Cleanup(failing.Close)
	client, err := embed.New(embed.Config{BaseURL: failing.URL, APIKey: "sk-test", Model: "text-embedding-3-small", Dimensions: 64, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	notice := regexp.MustCompile(`<p class="notice">([^<]*)</p>`)
	check := func(what string, b *bundle) {
		t.Helper()
		r := b.get("/search?q="+url.QueryEscape("mixture of experts"), "Accept", "text/html")
		m := notice.FindStringSubmatch(string(r.body))
		if r.code != http.StatusOK || m == nil || !strings.Contains(m[1], "showing keyword results") {
			t.Fatalf("%s: %d, notice %q, want 200 showing keyword results", what, r.code, m)
		}
		if strings.Contains(m[1], "mode=keyword") {
			t.Errorf("%s: the notice of the keyword results says %q", what, m[1])
		}
		if r := b.get("/api/search?q=experts"); !strings.Contains(string(r.body), "mode=keyword") {
			t.Errorf("%s: the API's error %s no longer says to use mode=keyword", what, r.body)
		}
	}

	noSpace := &bundle{t: t} // a database no worker has written to: no active space
	st := openTestStore(t, store.Config{URL: pgtest.URL(t)})
	if err := st.Migrate(t.Context()); err != nil {
		t.Fatal(err)
	}
	noSpace.serve(web.Config{Store: st, Embedder: embed.NewOffline()})
	check("no active space", noSpace)

	check("another space's embedder", servedWithAnotherSpacesEmbedder(t))

	b := newBundle(t)
	b.publish(sampledata.Papers(t)[:3])
	b.process()
	cfg := b.config()
	cfg.Embedder = inSpace{client, b.space}
	b.serve(cfg)
	check("the embedding API failing", b)
}
