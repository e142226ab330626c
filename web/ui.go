package web

import (
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"hash/fnv"
	"html/template"
	"io/fs"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"
	"unicode"

	"github.com/paperpipe/paperpipe/paper"
	"github.com/paperpipe/paperpipe/summarize"
)

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// pages holds one parsed template set per page, each the layout plus the page.
type pages struct {
	byName       map[string]*template.Template
	assetVersion string // a hash of the static files, to bust caches
}

var pageNames = []string{"front", "search", "paper", "status", "map", "error"}

func loadPages() (*pages, error) {
	h := fnv.New32a()
	err := fs.WalkDir(staticFS, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := staticFS.ReadFile(p)
		h.Write(b)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("static assets: %w", err)
	}
	ps := &pages{byName: map[string]*template.Template{}, assetVersion: strconv.FormatUint(uint64(h.Sum32()), 36)}
	funcs := template.FuncMap{
		"paperURL":   paperPath,
		"date":       func(t time.Time) string { return t.UTC().Format(time.DateOnly) },
		"score":      formatScore,
		"num":        formatInt,
		"usd":        formatUSD,
		"lang":       langOf,
		"backquoted": backquoted,
		// offline: a TL;DR the offline summarizer wrote, which the lists of papers name (the
		// paper page names every TL;DR's model), so that an extractive sentence of the abstract
		// is not taken for an LLM's TL;DR where both are listed.
		"offline": func(model string) bool { return model == summarize.OfflineModel },
	}
	for _, name := range pageNames {
		t, err := template.New("layout.html").Funcs(funcs).ParseFS(templateFS, "templates/layout.html", "templates/"+name+".html")
		if err != nil {
			return nil, fmt.Errorf("template %s: %w", name, err)
		}
		ps.byName[name] = t
	}
	return ps, nil
}

// scriptLangs are the languages a text of a script other than Latin is taken to be in: its
// most written one, which a screen reader's voice for it reads far better than an English
// voice would (Ukrainian read as Russian, Persian as Arabic).
var scriptLangs = map[string]string{
	"arabic": "ar", "cyrillic": "ru", "devanagari": "hi", "greek": "el", "han": "zh",
	"hangul": "ko", "hebrew": "he", "kana": "ja", "thai": "th",
}

// langOf is the BCP 47 language of text (a title, a TL;DR, an abstract) for its element's lang
// attribute, as summarize.DetectLanguage tells it; "" for English and when unsure, which leave
// the page's own "en". Screen readers pick their voice and pronunciation by it, and browsers
// the glyphs of Han characters (Chinese and Japanese draw some differently).
func langOf(text string) string {
	l := summarize.DetectLanguage(text)
	if sl, ok := scriptLangs[l]; ok {
		return sl
	}
	if l == "en" {
		return ""
	}
	return l
}

// backquoted is s, a note written for a terminal, as HTML: each text in backquotes (a command
// or a setting to type) in <code>, the rest escaped.
func backquoted(s string) template.HTML {
	var b strings.Builder
	for i, part := range strings.Split(s, "`") {
		if i%2 == 1 {
			b.WriteString("<code>" + template.HTMLEscapeString(part) + "</code>")
		} else {
			b.WriteString(template.HTMLEscapeString(part))
		}
	}
	return template.HTML(b.String())
}

// formatUSD writes a cost in US dollars (paper.FormatUSD), "unknown" for nil (a model without
// a price).
func formatUSD(f *float64) string {
	if f == nil {
		return "unknown"
	}
	return paper.FormatUSD(*f)
}

// formatScore writes a score to 3 decimals; one that rounds to zero is "0.000", not "-0.000"
// (a related paper at a cosine similarity of -0.0004).
func formatScore(f float64) string {
	s := strconv.FormatFloat(f, 'f', 3, 64)
	if s == "-0.000" {
		return "0.000"
	}
	return s
}

// formatInt writes n with thin separators: 12345 → "12,345".
func formatInt(n any) string {
	var s string
	switch v := n.(type) {
	case int:
		s = strconv.Itoa(v)
	case int64:
		s = strconv.FormatInt(v, 10)
	case uint64:
		s = strconv.FormatUint(v, 10)
	default:
		return fmt.Sprint(v)
	}
	neg := strings.HasPrefix(s, "-")
	s = strings.TrimPrefix(s, "-")
	var b strings.Builder
	for i, c := range s {
		if i > 0 && (len(s)-i)%3 == 0 {
			b.WriteByte(',')
		}
		b.WriteRune(c)
	}
	if neg {
		return "-" + b.String()
	}
	return b.String()
}

// paperPath is the UI path of paper id; slashes in the id are escaped so it stays one segment.
func paperPath(id string) string { return "/papers/" + url.PathEscape(id) }

// base is what every page's layout needs.
type base struct {
	Title        string
	Query        string // the search box's text
	Mode         string // the search mode to keep
	AssetVersion string
	Nav          string // the active navigation item
}

// render writes page name with data; a template failure becomes a plain 500.
func (s *Server) render(w http.ResponseWriter, r *http.Request, code int, name string, data any) {
	var buf bytes.Buffer
	if err := s.pages.byName[name].Execute(&buf, data); err != nil {
		s.log.Error("render page", "page", name, "path", r.URL.Path, "err", err)
		http.Error(w, "internal error", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	if s.cfg.ProtectReads {
		// What needs the token is kept in no cache: not a shared one, nor the browser's disk,
		// where the next user of the machine would find it.
		w.Header().Set("Cache-Control", "private, no-store")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.WriteHeader(code)
	w.Write(buf.Bytes())
}

func (s *Server) base(title string) base {
	return base{Title: title, AssetVersion: s.pages.assetVersion}
}

type errorPage struct {
	base
	Code    int
	Status  string
	Message string
	// Link, when set, is a page of the server the reader may go on to, with LinkText, and
	// LinkQuery the words of the search it runs ("" when none).
	Link, LinkText, LinkQuery string
}

// renderError writes an error page.
func (s *Server) renderError(w http.ResponseWriter, r *http.Request, code int, msg string) {
	s.render(w, r, code, "error", errorPage{base: s.base(http.StatusText(code)), Code: code, Status: http.StatusText(code), Message: msg})
}

// failPage answers a UI request with the error page of err.
func (s *Server) failPage(w http.ResponseWriter, r *http.Request, err error) {
	s.fail(w, r, err) // fail renders a page for UI paths
}

// paperView is a paper as the pages show it.
type paperView struct {
	ID, URL, Title   string
	TLDR, TLDRModel  string
	TLDRPrompt       string
	Abstract         string
	Authors          []string
	Categories       []string
	Published, Added string
	Source           string // a link to the paper at its source, "" when none is known
	Embedded         bool
}

func viewOf(rec paper.Record) paperView {
	v := paperView{
		ID: rec.ID, URL: paperPath(rec.ID), Title: rec.Title, Abstract: rec.Abstract.Abstract,
		Authors: rec.Authors, Categories: rec.Categories, Source: sourceLink(rec), Embedded: rec.Embedded,
		Added: rec.CreatedAt.UTC().Format(time.DateOnly),
	}
	if !rec.Published.IsZero() {
		v.Published = rec.Published.UTC().Format(time.DateOnly)
	}
	if rec.TLDR != nil {
		v.TLDR, v.TLDRModel, v.TLDRPrompt = rec.TLDR.Text, rec.TLDR.Model, rec.TLDR.PromptVersion
	}
	return v
}

// sourceLink is the paper's page at its source: its URL when it is http(s), else the arXiv or
// DOI resolver page of its id.
func sourceLink(rec paper.Record) string {
	if u, err := url.Parse(rec.URL); err == nil && (u.Scheme == "https" || u.Scheme == "http") && u.Host != "" {
		return u.String()
	}
	if id, ok := strings.CutPrefix(rec.ID, "arxiv:"); ok {
		return "https://arxiv.org/abs/" + id
	}
	if id, ok := strings.CutPrefix(rec.ID, "doi:"); ok {
		return "https://doi.org/" + doiPath.Replace(id)
	}
	return ""
}

// sentence is the notice n (a lower-case clause, as SearchResult.Notice) written as a
// sentence of its own: its first letter upper-case, and a full stop.
func sentence(n string) string { return strings.ToUpper(n[:1]) + n[1:] + "." }

// doiPath escapes the characters of a DOI that would end a URL's path or start an escape
// there: a DOI may hold them (Wiley's SICI DOIs end in "2-#"), and left raw they make the
// resolver look up another DOI. The rest stays readable, as the link shows it.
var doiPath = strings.NewReplacer("%", "%25", "#", "%23", "?", "%3F")

type hitView struct {
	URL, ID, Title, TLDR, TLDRModel string
	Score                           float64
}

func hitViews(hits []paper.Hit) []hitView {
	out := make([]hitView, len(hits))
	for i, h := range hits {
		out[i] = hitView{URL: paperPath(h.ID), ID: h.ID, Title: h.Title, TLDR: h.TLDR, TLDRModel: h.TLDRModel, Score: h.Score}
	}
	return out
}

type frontPage struct {
	base
	Papers   []paperView
	Next     string // URL of the next page, "" on the last
	Newest   string // URL of the first page, with the same filters; "" on it
	Category string
	Text     string
	Since    string // the since filter as given, "" when none
	First    bool
	Notice   string // why no paper matches: the text has no word full-text search uses
}

// frontPageLimit is the front page's page size without limit.
const frontPageLimit = 25

func (s *Server) uiFront(w http.ResponseWriter, r *http.Request) {
	q, err := parseList(r, frontPageLimit)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	q.Cursor = r.URL.Query().Get("after")
	since := ""
	if !q.Since.IsZero() {
		since = r.URL.Query().Get("since") // parseList accepted it
	}
	page, notice, err := s.listPapers(r.Context(), q)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	data := frontPage{base: s.base("paperpipe"), Category: q.Category, Text: q.Text, Since: since, First: q.Cursor == ""}
	if notice != "" {
		data.Notice = sentence(notice)
	}
	data.Nav = "papers"
	for _, rec := range page.Papers {
		data.Papers = append(data.Papers, viewOf(rec))
	}
	// The links to the next page and back to the newest keep every filter of this page, and
	// its page size.
	v := url.Values{}
	if q.Category != "" {
		v.Set("category", q.Category)
	}
	if q.Text != "" {
		v.Set("text", q.Text)
	}
	if since != "" {
		v.Set("since", since)
	}
	if q.Limit != frontPageLimit {
		v.Set("limit", strconv.Itoa(q.Limit))
	}
	if !data.First {
		data.Newest = "/"
		if len(v) > 0 {
			data.Newest = "/?" + v.Encode()
		}
	}
	if page.Next != "" {
		v.Set("after", page.Next)
		data.Next = "/?" + v.Encode()
	}
	s.render(w, r, http.StatusOK, "front", data)
}

type modeLink struct {
	Name, Label, URL string
	Active           bool
}

// searchPage is the search page. Its base.Mode is the mode the request named, "" when none
// (the form's Auto, which falls back to keyword search as the header box does); Shown is
// the mode of the results.
type searchPage struct {
	base
	Shown   string
	Modes   []modeLink
	Results []hitView
	Space   string
	Notice  string // e.g. why the mode fell back to keyword
	// Bounded is set when only the newest of the query's keyword matches were ranked.
	Bounded *BoundedRanking
	Error   string
	Cached  bool
	K       int
	FormK   int // k when it is not DefaultK, which the form sends again; 0 otherwise
	// ByID is the paper whose id the query is (in any form paper.CanonicalID reads), shown
	// before the results; nil when it is no paper's id.
	ByID *hitView
}

func (s *Server) uiSearch(w http.ResponseWriter, r *http.Request) {
	data := searchPage{base: s.base("Search")}
	data.Nav = "search"
	if strings.TrimSpace(r.URL.Query().Get("q")) == "" {
		data.Mode = r.URL.Query().Get("mode")
		s.render(w, r, http.StatusOK, "search", data)
		return
	}
	p, err := parseSearch(r)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	data.Query, data.Shown, data.K = p.q, p.mode, p.k
	if p.k != DefaultK {
		data.FormK = p.k
	}
	if p.explicitMode {
		data.Mode = p.mode
	}
	data.Title = p.q + " — search"
	if r.Method == http.MethodHead {
		// No search (it may buy an embedding) for a page with no body: the GET's status and
		// headers. Without a mode the page falls back to keyword results, so only an explicit
		// mode's vectors are checked.
		code := http.StatusOK
		if p.explicitMode {
			if err := s.searchHeadCheck(r.Context(), p); err != nil {
				c, msg := statusOf(err)
				if c >= 500 && c != http.StatusServiceUnavailable && c != http.StatusBadGateway {
					s.fail(w, r, err)
					return
				}
				code, data.Error = c, msg
			}
		}
		s.render(w, r, code, "search", data)
		return
	}
	data.ByID = s.paperOfID(r.Context(), p.q)
	if !p.explicitMode {
		// The page falls back to keyword results when the vectors cannot be used, an embedding
		// API that does not answer included: a reader does not wait the request's whole time
		// for an error.
		p.embedWait = maxEmbedWait
		if dl, ok := r.Context().Deadline(); ok {
			p.embedWait = min(p.embedWait, time.Until(dl)/3)
		}
	}
	res, err := s.search(r.Context(), p)
	err = duringShutdown(r, err)
	code := http.StatusOK
	if err != nil && !p.explicitMode && p.mode != ModeKeyword {
		// Without an explicit mode the page falls back to keyword search when the vectors
		// cannot be used, and says why.
		if c, msg := statusOf(err); c == http.StatusConflict || c == http.StatusBadGateway || errors.Is(err, errEmbedWait) || errors.Is(err, errNoWords) {
			if c == http.StatusBadGateway || c == http.StatusGatewayTimeout {
				s.log.Warn("embedding the query failed; the search page shows keyword results", "path", r.URL.Path, "err", err)
			}
			p.mode = ModeKeyword
			data.Shown = ModeKeyword
			data.Notice = sentence(withoutKeywordAdvice(msg) + " — showing keyword results")
			res, err = s.search(r.Context(), p)
			err = duringShutdown(r, err)
		}
	}
	if err != nil {
		c, msg := statusOf(err)
		if c >= 500 && c != http.StatusServiceUnavailable && c != http.StatusBadGateway {
			s.fail(w, r, err)
			return
		}
		s.logFailure(r, c, err)
		code, data.Error = c, msg
	} else {
		data.Results, data.Space, data.Cached = hitViews(res.Results), res.Space, res.CachedEmbedding
		data.Bounded = res.BoundedRanking
		switch {
		case res.Notice == "":
		case data.Notice != "":
			// The page fell back to keyword results, and they have a notice of their own (the
			// text has no word full-text search uses): both are said, or the user never learns
			// why the page fell back.
			data.Shown, data.Notice = res.Mode, data.Notice+" "+sentence(res.Notice)
		default: // the search ran in another mode, or found nothing, and says why
			data.Shown, data.Notice = res.Mode, sentence(res.Notice)
		}
	}
	for _, m := range []struct{ name, label string }{{ModeHybrid, "Hybrid"}, {ModeSemantic, "Semantic"}, {ModeKeyword, "Keyword"}} {
		v := url.Values{"q": {p.q}, "mode": {m.name}}
		if p.k != DefaultK {
			v.Set("k", strconv.Itoa(p.k))
		}
		data.Modes = append(data.Modes, modeLink{Name: m.name, Label: m.label, URL: "/search?" + v.Encode(), Active: m.name == data.Shown})
	}
	s.render(w, r, code, "search", data)
}

// paperOfID returns the paper whose id q is, as lookup finds it (2401.01234v2, an abstract
// page's URL), and nil when q is not one word or no paper has it: a reader pastes the id a
// card shows into the search box, where neither keyword search (ids are not in the text) nor
// the embedding model (no meaning) finds it. An error of the database is the search's to
// report.
func (s *Server) paperOfID(ctx context.Context, q string) *hitView {
	if strings.ContainsFunc(q, unicode.IsSpace) {
		return nil
	}
	rec, err := s.lookup(ctx, q)
	if err != nil {
		return nil
	}
	v := hitView{URL: paperPath(rec.ID), ID: rec.ID, Title: rec.Title}
	if rec.TLDR != nil {
		v.TLDR, v.TLDRModel = rec.TLDR.Text, rec.TLDR.Model
	}
	return &v
}

type paperPage struct {
	base
	Paper      paperView
	Related    []hitView
	RelatedErr string
	Space      string
}

func (s *Server) uiPaper(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	rec, err := s.lookup(r.Context(), id)
	if trimmed, ok := strings.CutSuffix(id, "/"); ok && errors.Is(err, paper.ErrNotFound) {
		// /papers/ID/: a typed or copied address with a final slash.
		rec, err = s.lookup(r.Context(), trimmed)
	}
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	data := paperPage{base: s.base(rec.Title), Paper: viewOf(rec)}
	hits, space, err := s.relatedOf(r.Context(), rec, DefaultK)
	data.Space = space
	if err != nil {
		c, msg := statusOf(duringShutdown(r, err))
		if c >= 500 {
			s.fail(w, r, err)
			return
		}
		data.RelatedErr = msg
	}
	data.Related = hitViews(hits)
	s.render(w, r, http.StatusOK, "paper", data)
}

type statusPage struct {
	base
	Status
	InputTokens, OutputTokens, Requests int
	CostUSD                             *float64
	CostPartial                         bool // some models' prices are unknown
	BacklogTotal                        uint64
	// Workers lists the backlogs' workers, each with its consumer.
	Workers []statusWorker
	// InArchive holds the ids of the recent dead letters' papers the archive has, which the
	// page links to: a record refused as invalid, dead-lettered before it was stored, has no
	// page (and a message that is not an abstract has no id).
	InArchive map[string]bool
}

// statusWorker is a worker as the status page lists it.
type statusWorker struct {
	Worker
	Consumer string
	SeenAgo  string // how long ago its entry was written
	Since    string // when it started, to the minute
}

func (s *Server) uiStatus(w http.ResponseWriter, r *http.Request) {
	st, err := s.status(r.Context())
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	data := statusPage{base: s.base("Status"), Status: st}
	data.Nav = "status"
	var cost float64
	known := false
	for _, u := range st.Usage {
		data.InputTokens += u.InputTokens
		data.OutputTokens += u.OutputTokens
		data.Requests += u.Requests
		if u.CostUSD != nil {
			cost += *u.CostUSD
			known = true
		} else {
			data.CostPartial = true
		}
	}
	if known || len(st.Usage) == 0 {
		data.CostUSD = &cost // no API call recorded costs $0, not an unknown sum
	}
	now := time.Now()
	for _, b := range st.Backlog {
		data.BacklogTotal += b.Pending
		for _, w := range b.Workers {
			data.Workers = append(data.Workers, statusWorker{Worker: w, Consumer: b.Consumer, SeenAgo: max(now.Sub(w.LastSeen), 0).Round(time.Second).String(),
				Since: w.Started.UTC().Format("2006-01-02 15:04 UTC")})
		}
	}
	data.InArchive = map[string]bool{}
	for _, d := range st.Recent {
		if _, seen := data.InArchive[d.PaperID]; seen || d.PaperID == "" {
			continue
		}
		_, err := s.cfg.Store.Paper(r.Context(), d.PaperID)
		// Linked unless it is known to be missing: a failed look-up may be of a paper there.
		data.InArchive[d.PaperID] = !errors.Is(err, paper.ErrNotFound)
	}
	s.render(w, r, http.StatusOK, "status", data)
}

type mapPage struct {
	base
	mapLayout
	Shown, Total int
	Sampled      bool
	Space        string
	Error        string
}

func (s *Server) uiMap(w http.ResponseWriter, r *http.Request) {
	data := mapPage{base: s.base("Map of the archive")}
	data.Nav = "map"
	sp, err := s.cfg.Store.ActiveSpace(r.Context())
	if errors.Is(err, paper.ErrNotFound) {
		data.Error = "No embedding space is active yet: the map appears once a worker has embedded papers."
		s.render(w, r, http.StatusOK, "map", data)
		return
	}
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	snap, err := s.mapSnapshot(r.Context(), sp.ID)
	if err != nil {
		s.failPage(w, r, err)
		return
	}
	data.Space, data.Shown, data.Total, data.Sampled = sp.Name(), snap.shown, snap.total, snap.total > snap.shown
	data.mapLayout = snap.layout
	s.render(w, r, http.StatusOK, "map", data)
}

// mapFresh is how long a drawn map is shown again without reading the archive.
const mapFresh = time.Minute

// mapSnapshot is a map drawn for a space: its layout and how many points it shows of how many.
type mapSnapshot struct {
	space        int64
	at           time.Time
	shown, total int
	layout       mapLayout
}

// mapSnapshot returns the map of space spaceID: the last one drawn, while it is fresh, or a new
// one. One request at a time reads the sample (up to MapMaxPoints vectors: ~30 MB at 1,536
// dimensions) and lays it out; the others wait for it, or for their context: concurrent
// requests each held a sample of their own (8 of them took 350 MB), and every request read one.
func (s *Server) mapSnapshot(ctx context.Context, spaceID int64) (mapSnapshot, error) {
	fresh := func() (mapSnapshot, bool) {
		s.mapMu.Lock()
		defer s.mapMu.Unlock()
		if c := s.mapSnap; c != nil && c.space == spaceID && time.Since(c.at) < mapFresh {
			return *c, true
		}
		return mapSnapshot{}, false
	}
	if c, ok := fresh(); ok {
		return c, nil
	}
	select {
	case s.mapDrawing <- struct{}{}:
	case <-ctx.Done():
		return mapSnapshot{}, ctx.Err()
	}
	defer func() { <-s.mapDrawing }()
	// A layout an earlier request started and stopped waiting for (its time ran out) is the
	// map drawn last once it is done: on an archive the workers are filling, a new sample would
	// differ from its by a paper or two, and be drawn all over again, as long.
	if err := s.maps.idle(ctx); err != nil {
		return mapSnapshot{}, err
	}
	if c, ok := fresh(); ok { // drawn while this request waited
		return c, nil
	}
	points, total, err := s.cfg.Store.ArchiveMap(ctx, spaceID, s.cfg.MapMaxPoints)
	if err != nil {
		return mapSnapshot{}, err
	}
	keep := func(lay mapLayout) mapSnapshot {
		c := &mapSnapshot{space: spaceID, at: time.Now(), shown: len(points), total: total, layout: lay}
		if len(points) > 0 {
			// An empty map, which costs nothing to read again, is not kept: the first papers a
			// worker embeds appear at the next request, not a minute later.
			s.mapMu.Lock()
			s.mapSnap = c
			s.mapMu.Unlock()
		}
		return *c
	}
	lay, err := s.maps.get(ctx, points, func(lay mapLayout) { keep(lay) })
	if err != nil {
		return mapSnapshot{}, err
	}
	return keep(lay), nil
}

// static serves the embedded assets. Those asked for with this server's asset version (the
// pages' links) may be kept for a day; another version, or none, is answered with the file
// but not kept: during a rolling update a page of one release asks for its version from a
// server of the other, which would have had its own file kept as that version's.
func (s *Server) static(w http.ResponseWriter, r *http.Request) {
	name := r.PathValue("file")
	b, err := staticFS.ReadFile("static/" + name)
	if err != nil || strings.Contains(name, "/") {
		s.writeError(w, r, http.StatusNotFound, fmt.Sprintf("no static file %.80q", name))
		return
	}
	switch {
	case strings.HasSuffix(name, ".css"):
		w.Header().Set("Content-Type", "text/css; charset=utf-8")
	case strings.HasSuffix(name, ".svg"):
		w.Header().Set("Content-Type", "image/svg+xml")
	}
	if r.URL.Query().Get("v") == s.pages.assetVersion {
		w.Header().Set("Cache-Control", "public, max-age=86400")
	} else {
		w.Header().Set("Cache-Control", "no-cache")
	}
	w.Write(b)
}
