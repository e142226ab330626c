package ingest

import (
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/paper"
)

func TestSamePaperFromEverySourceHasOneIDAndHash(t *testing.T) {
	t.Parallel()
	// One paper, as four sources give it: versioned ids, URLs, re-wrapped text.
	sources := map[string]string{
		"oai": `{"id":"2401.01234","submitter":"A","authors":"Ada Lovelace","title":"Sparse Routing\n  for Experts","abstract":"  We study routing.\nIt works.\n","categories":"cs.LG","versions":[{"version":"v1","created":"Tue, 2 Jan 2024 18:59:59 GMT"},{"version":"v2","created":"Thu, 4 Jan 2024 10:00:00 GMT"}],"update_date":"2024-01-04","authors_parsed":[["Lovelace","Ada",""]]}` + "\n",
		"atom": `<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>http://arxiv.org/abs/2401.01234v2</id>
<title>Sparse Routing
 for Experts</title><summary>We study   routing. It
 works.</summary><published>2024-01-02T18:59:59Z</published></entry></feed>`,
		"hf":    `[{"paper":{"id":"2401.01234","title":"Sparse Routing for Experts","summary":"We study routing.\nIt works.","publishedAt":"2024-01-02T18:59:59.000Z"}}]`,
		"jsonl": `{"id":"arXiv:2401.01234v1","title":"Sparse Routing for Experts","abstract":"We study routing. It works."}` + "\n",
	}
	want := paper.Abstract{Title: "Sparse Routing for Experts", Abstract: "We study routing. It works."}
	for name, in := range sources {
		papers, errs, _ := readString(t, in, name, Options{})
		if len(papers) != 1 || len(errs) != 0 {
			t.Errorf("%s: %d papers, errors %v", name, len(papers), errs)
			continue
		}
		p := papers[0]
		if p.ID != "arxiv:2401.01234" || p.ContentHash() != want.ContentHash() || p.Title != want.Title || p.Abstract != want.Abstract {
			t.Errorf("%s: id %q title %q abstract %q: want arxiv:2401.01234 and the same text", name, p.ID, p.Title, p.Abstract)
		}
	}
}

// The same paper with its accents decomposed (macOS, some PDF extractors: "nai\u0308ve") is
// the same text as composed: one content hash, so it is not summarised and embedded again, and
// stored as typed (NFC), so full-text search finds its words.
func TestSamePaperDecomposedIsTheSameText(t *testing.T) {
	t.Parallel()
	composed := `{"id":"2401.01234","title":"Na\u00efve Bayes \u00e0 la Schr\u00f6dinger","abstract":"A na\u00efve r\u00e9sum\u00e9 of caf\u00e9 data.","authors":["Bj\u00f6rk Gu\u00f0mundsd\u00f3ttir"]}` + "\n"
	decomposed := `{"id":"2401.01234","title":"Nai\u0308ve Bayes a\u0300 la Schro\u0308dinger","abstract":"A nai\u0308ve re\u0301sume\u0301 of cafe\u0301 data.","authors":["Bjo\u0308rk Gu\u00f0mundsdo\u0301ttir"]}` + "\n"
	c, errs, _ := readString(t, composed, "c", Options{Format: JSONL})
	d, errs2, _ := readString(t, decomposed, "d", Options{Format: JSONL})
	if len(c) != 1 || len(d) != 1 || len(errs)+len(errs2) > 0 {
		t.Fatalf("papers %d and %d, errors %v %v", len(c), len(d), errs, errs2)
	}
	if d[0].Title != c[0].Title || d[0].Abstract != c[0].Abstract || !slices.Equal(d[0].Authors, c[0].Authors) || d[0].ContentHash() != c[0].ContentHash() {
		t.Errorf("decomposed %q / %q / %q (hash %s)\nwant       %q / %q / %q (hash %s)",
			d[0].Title, d[0].Abstract, d[0].Authors, d[0].ContentHash(), c[0].Title, c[0].Abstract, c[0].Authors, c[0].ContentHash())
	}
	if c[0].Title != "Na\u00efve Bayes \u00e0 la Schr\u00f6dinger" {
		t.Errorf("composed title %q changed", c[0].Title)
	}
}

func TestDetect(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		in   string
		want Format
	}{
		{"", Text},
		{"   \n\n", Text},
		{"new\n\nSubscribe\n", Text},
		{`{"id":"1","title":"t","abstract":"a"}`, JSONL},
		{"\xef\xbb\xbf" + `{"title":"t"}`, JSONL},
		{"\n\n  " + `{"id":"0704.0001","submitter":"P","title":"t"}`, OAI},
		{`{"id":"0704.0001","title":"t","versions":[]}`, OAI},
		{`{"id":"0704.0001","title":"t","update_date":"2008-11-13"}`, OAI},
		// An OAI key on the second line does not make the first line OAI.
		{`{"id":"1","title":"t"}` + "\n" + `{"id":"2","versions":[]}`, JSONL},
		// A key name inside a string value does not count.
		{`{"title":"about \"versions\": a study"}`, JSONL},
		{`<?xml version="1.0"?><feed/>`, Atom},
		{"\xef\xbb\xbf\r\n<feed xmlns=\"http://www.w3.org/2005/Atom\"/>", Atom},
		{`[{"paper":{}}]`, HFDaily},
		{"\t[\n]", HFDaily},
		{"[\n  {", HFDaily},
		{`{ "id":"1"}`, JSONL},
		{"{}", JSONL},
		{"<!-- a feed -->", Atom},
		// Text that merely starts with one of the formats' first bytes.
		{"[Re] Reproducing Sparse Routing\n\n" + words(30), Text},
		{"[1] A Numbered Title\n", Text},
		{"{Curly} Braces in a Title\n", Text},
		{"<3 Heartfelt Results\n", Text},
		{"< 5 ms Latency\n", Text},
		{"[", Text},
		{"{", Text},
	} {
		if got := Detect([]byte(tc.in)); got != tc.want {
			t.Errorf("Detect(%q) = %q, want %q", tc.in, got, tc.want)
		}
		// NewReader detects the same way, past the byte order mark.
		r, err := NewReader(strings.NewReader(tc.in), "f", Options{})
		if err != nil {
			t.Fatal(err)
		}
		if r.Format() != tc.want {
			t.Errorf("NewReader(%q).Format() = %q, want %q", tc.in, r.Format(), tc.want)
		}
	}
}

// A text archive whose first title starts with "[" (ReScience's "[Re] …" replications) is read
// as text; it was taken for Hugging Face JSON and stopped at line 1.
func TestTextStartingWithABracketIsRead(t *testing.T) {
	t.Parallel()
	in := "[Re] Reproducing Sparse Routing for Experts\n\n" + words(30) + "\n\nSecond Paper\n\n" + words(30) + "\n"
	papers, errs, events := readString(t, in, "archive.txt", Options{})
	if len(papers) != 2 || len(errs) != 0 || papers[0].Title != "[Re] Reproducing Sparse Routing for Experts" {
		t.Errorf("events %q, want the two papers", events)
	}
}

// When Hugging Face JSON stops before its first element and the format was detected, the
// error says how to name another one; a forced format gets no such advice.
func TestHFStoppingAtTheStartSuggestsFormat(t *testing.T) {
	t.Parallel()
	in := "[{title: \"not JSON\"}]\n"
	for _, f := range []Format{Auto, HFDaily} {
		r, err := NewReader(strings.NewReader(in), "f", Options{Format: f})
		if err != nil {
			t.Fatal(err)
		}
		_, err = r.Next()
		if err == nil || !strings.HasPrefix(err.Error(), "f:1: malformed JSON after record 0") {
			t.Fatalf("format %s: Next = %v, want malformed JSON at f:1", f, err)
		}
		if hint := strings.Contains(err.Error(), "--format"); hint != (f == Auto) {
			t.Errorf("format %s: error %q: mentions --format %v, want %v", f, err, hint, f == Auto)
		}
	}
}

func TestByteOrderMarkIsSkipped(t *testing.T) {
	t.Parallel()
	in := "\xef\xbb\xbf" + `{"title":"T","abstract":"A"}` + "\n"
	for _, f := range []Format{Auto, JSONL} {
		r, err := NewReader(strings.NewReader(in), "f", Options{Format: f})
		if err != nil {
			t.Fatal(err)
		}
		papers, errs, _ := readAll(t, r)
		if len(papers) != 1 || len(errs) != 0 || r.Offset() != int64(len(in)) {
			t.Errorf("format %s: %d papers, errors %v, offset %d; want 1 paper, offset %d", f, len(papers), errs, r.Offset(), len(in))
		}
	}
}

func TestSlowStreamIsReadAsItComes(t *testing.T) {
	t.Parallel()
	// Like a producer piping into standard input: each record must come out as soon as its
	// line is complete, without waiting for 64 KiB or the end of the stream.
	pr, pw := io.Pipe()
	defer pw.Close()
	lines := make(chan string)
	go func() {
		for l := range lines {
			pw.Write([]byte(l))
		}
	}()
	defer close(lines)
	lines <- `{"id":"2401.00001","title":"One","abstract":"A."}` + "\n"
	r, err := NewReader(pr, "-", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != JSONL {
		t.Fatalf("Format() = %q, want jsonl", r.Format())
	}
	for i, title := range []string{"One", "Two"} {
		if i > 0 {
			lines <- `{"id":"2401.00002","title":"Two","abstract":"B."}` + "\n"
		}
		a, err := r.Next()
		if err != nil || a.Title != title || a.Source != "stdin:"+fmt.Sprint(i+1) {
			t.Fatalf("Next = %+v, %v; want %s from stdin:%d", a, err, title, i+1)
		}
	}
}

func TestForcedFormatWins(t *testing.T) {
	t.Parallel()
	// JSON lines read as text: a paragraph that is neither title nor abstract, not a JSON paper.
	r, err := NewReader(strings.NewReader(`{"id":"1","title":"t","abstract":"a"}`), "f", Options{Format: Text})
	if err != nil {
		t.Fatal(err)
	}
	if r.Format() != Text {
		t.Fatalf("Format() = %q, want text", r.Format())
	}
	if _, err := r.Next(); err == nil {
		t.Error("a JSON line read as text made a paper")
	}
}

func TestParseFormat(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]Format{"": Auto, "auto": Auto, "TEXT": Text, " jsonl ": JSONL, "oai": OAI, "atom": Atom, "RSS": RSS, "hf": HFDaily} {
		if got, err := ParseFormat(in); err != nil || got != want {
			t.Errorf("ParseFormat(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	_, err := ParseFormat("csv")
	if !errors.Is(err, paper.ErrInvalid) || !strings.Contains(err.Error(), "auto, text, jsonl, oai, atom, rss, hf") {
		t.Errorf("ParseFormat(csv) error = %v; want ErrInvalid listing the valid names", err)
	}
}

func TestOptionsAreValidated(t *testing.T) {
	t.Parallel()
	for _, o := range []Options{{Format: "csv"}, {MaxAbstractBytes: -1}, {MaxTitleBytes: -1}, {MaxRecordBytes: -1}, {HTTPTimeout: -time.Second}} {
		if _, err := NewReader(strings.NewReader(""), "f", o); !errors.Is(err, paper.ErrInvalid) {
			t.Errorf("NewReader with %+v: error %v, want ErrInvalid", o, err)
		}
	}
}

func TestLimitsAreConfigurable(t *testing.T) {
	t.Parallel()
	in := `{"title":"Twelve bytes","abstract":"twenty bytes of text"}` + "\n"
	_, _, events := readString(t, in, "f", Options{MaxTitleBytes: 10})
	equalEvents(t, events, []string{"error f:1: " + paper.TitleID("Twelve bytes") + ": title is 12 bytes, limit 10"})
	_, _, events = readString(t, in, "f", Options{MaxAbstractBytes: 19})
	equalEvents(t, events, []string{"error f:1: " + paper.TitleID("Twelve bytes") + ": abstract is 20 bytes, limit 19"})
	_, _, events = readString(t, in, "f", Options{MaxAbstractBytes: 20})
	equalEvents(t, events, []string{"paper f:1 Twelve bytes"})
	// Each limit takes a text of its size: the title's was checked only beyond it.
	_, _, events = readString(t, in, "f", Options{MaxTitleBytes: 12})
	equalEvents(t, events, []string{"paper f:1 Twelve bytes"})
}

func TestRecordErrorFormat(t *testing.T) {
	t.Parallel()
	cause := invalidf("abstract is empty")
	for _, tc := range []struct {
		e    RecordError
		want string
	}{
		{RecordError{File: "a.jsonl", Line: 3, ID: "arxiv:2401.00001", Err: cause}, "a.jsonl:3: arxiv:2401.00001: abstract is empty"},
		{RecordError{File: "a.jsonl", Line: 3, Err: cause}, "a.jsonl:3: abstract is empty"},
		{RecordError{File: "hf.json", Line: 1, Record: 7, ID: "arxiv:2503.1", Err: cause}, "hf.json:1: record 7: arxiv:2503.1: abstract is empty"},
	} {
		if got := tc.e.Error(); got != tc.want {
			t.Errorf("Error() = %q, want %q", got, tc.want)
		}
		if !errors.Is(&tc.e, paper.ErrInvalid) || !errors.Is(&tc.e, cause) {
			t.Errorf("%v does not unwrap to its cause and paper.ErrInvalid", &tc.e)
		}
	}
}

func TestStdinIsNamedStdin(t *testing.T) {
	t.Parallel()
	_, errs, _ := readString(t, `{"title":"","abstract":"a"}`, "-", Options{})
	if len(errs) != 1 || errs[0].File != "stdin" || !strings.HasPrefix(errs[0].Error(), "stdin:1: ") {
		t.Errorf("errors %v, want one naming stdin:1", errs)
	}
}

func TestOpenFile(t *testing.T) {
	t.Parallel()
	r, c, err := Open("testdata/good.jsonl", Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	papers, _, _ := readAll(t, r)
	if len(papers) != 4 || papers[0].Source != "testdata/good.jsonl:1" {
		t.Errorf("got %d papers, first from %q", len(papers), papers[0].Source)
	}
	if _, _, err := Open(filepath.Join(t.TempDir(), "missing.jsonl"), Options{}); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Open(missing) error = %v, want ErrNotExist", err)
	}
}

// A named pipe (`mkfifo papers; producer > papers & paperpipe ingest papers`) is read as
// standard input is: its open, which waits for a writer, and a read waiting for a stalled
// writer both end when the context does (Ctrl-C, SIGTERM). They blocked in the kernel, and
// ingest, summarize, embed and import-embeddings went on waiting for the producer.
func TestOpenContextOfANamedPipeEndsWithItsContext(t *testing.T) {
	t.Parallel()
	fifo := filepath.Join(t.TempDir(), "papers")
	if err := syscall.Mkfifo(fifo, 0o600); err != nil {
		t.Skipf("no named pipes here: %v", err)
	}
	within := func(what string, f func() error) error {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		select {
		case err := <-done:
			return err
		case <-time.After(10 * time.Second):
			t.Fatalf("%s went on after its context ended", what)
			return nil
		}
	}
	// No writer: the open waits for one, until the context ends.
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := within("the open of a named pipe without a writer", func() error {
		_, _, err := OpenContext(ctx, fifo, Options{})
		return err
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("OpenContext of a named pipe without a writer, its context ended: %v, want context.Canceled", err)
	}

	// A writer that wrote one record and stalls (its open ends the open left behind above).
	w, err := os.OpenFile(fifo, os.O_RDWR, 0) // a writer, without waiting for a reader (Linux)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := w.WriteString(`{"id":"1","title":"Piped","abstract":"` + words(30) + `"}` + "\n"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel = context.WithCancel(context.Background())
	defer cancel()
	r, c, err := OpenContext(ctx, fifo, Options{Format: JSONL})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := r.Next(); err != nil {
		t.Fatalf("the record written: %v", err)
	}
	cancel()
	if err := within("a read of a stalled named pipe", func() error {
		_, err := r.Next()
		return err
	}); !errors.Is(err, context.Canceled) {
		t.Errorf("Next on a stalled named pipe, its context ended: %v, want context.Canceled", err)
	}
}

func TestOpenURL(t *testing.T) {
	t.Parallel()
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	stall := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		switch req.URL.Path {
		case "/feed":
			w.Write(feed)
		case "/stall":
			w.Write([]byte("[\n{")) // enough to detect the format: Open returns
			w.(http.Flusher).Flush()
			select {
			case <-stall:
			case <-req.Context().Done():
			}
		default:
			http.Error(w, "no such feed", http.StatusNotFound)
		}
	}))
	defer srv.Close()
	defer close(stall)

	r, c, err := Open(srv.URL+"/feed", Options{})
	if err != nil {
		t.Fatal(err)
	}
	papers, errs, _ := readAll(t, r)
	c.Close()
	if r.Format() != Atom || len(papers) != 2 || len(errs) != 1 || papers[0].Source != srv.URL+"/feed:9" {
		t.Errorf("format %s, %d papers, %d errors, first from %q", r.Format(), len(papers), len(errs), papers[0].Source)
	}

	_, _, err = Open(srv.URL+"/missing", Options{})
	if want := fmt.Sprintf("GET %s/missing: server answered 404 Not Found: no such feed", srv.URL); err == nil || err.Error() != want {
		t.Errorf("Open(404) error = %v, want %q", err, want)
	}

	// The stall must outlast the look at the start (probeIdle without data ends it, and Open
	// returns): with an HTTPTimeout of probeIdle itself, whichever of the two timers fired
	// first won, and Open failed in about one run of twenty-five.
	timeout := 5 * probeIdle
	r, c, err = Open(srv.URL+"/stall", Options{HTTPTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_, err = r.Next()
	var re *RecordError
	if err == nil || err == io.EOF || errors.As(err, &re) || !strings.Contains(err.Error(), fmt.Sprintf("nothing received for %s", timeout)) {
		t.Errorf("Next on a stalled download = %v, want a fatal error saying nothing was received", err)
	}
}

// A feed's address may carry a password and a token; neither may reach an error message or the
// Source stored with each paper (shown by `paperpipe show --json` and the HTTP API).
func TestOpenURLKeepsItsSecretsOutOfErrorsAndSources(t *testing.T) {
	t.Parallel()
	feed, err := os.ReadFile("testdata/atom.xml")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/feed" && req.URL.Query().Get("token") == "QuerySecret" {
			w.Write(feed)
			return
		}
		http.Error(w, "bad token", http.StatusUnauthorized)
	}))
	defer srv.Close()
	secretURL := func(base, path string) string {
		return strings.Replace(base, "http://", "http://u:UrlSecret@", 1) + path + "?token=QuerySecret&max=10"
	}
	noSecret := func(what, s string) {
		t.Helper()
		if strings.Contains(s, "UrlSecret") || strings.Contains(s, "QuerySecret") {
			t.Errorf("%s carries a secret: %s", what, s)
		}
	}
	shown := func(base, path string) string {
		return strings.Replace(base, "http://", "http://u:xxxxx@", 1) + path + "?token=xxxxx&max=10"
	}

	r, c, err := Open(secretURL(srv.URL, "/feed"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	papers, errs, _ := readAll(t, r)
	c.Close()
	if len(papers) != 2 || len(errs) != 1 {
		t.Fatalf("%d papers and %d errors, want 2 and 1", len(papers), len(errs))
	}
	if want := shown(srv.URL, "/feed") + ":9"; papers[0].Source != want {
		t.Errorf("Source = %q, want %q", papers[0].Source, want)
	}
	noSecret("a paper's Source", papers[0].Source)
	noSecret("a record error", errs[0].Error())

	_, _, err = Open(secretURL(srv.URL, "/denied"), Options{})
	if want := "GET " + shown(srv.URL, "/denied") + ": server answered 401 Unauthorized: bad token"; err == nil || err.Error() != want {
		t.Errorf("Open(401) error = %v, want %q", err, want)
	}

	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	_, _, err = Open(secretURL(closed.URL, "/feed"), Options{})
	if err == nil || !strings.Contains(err.Error(), shown(closed.URL, "/feed")) {
		t.Errorf("Open(nothing listening) error = %v, want it to name %s", err, shown(closed.URL, "/feed"))
	} else {
		noSecret("a connection error", err.Error())
	}
}

// HTTPTimeout bounds the server's silence, not the reader's: a consumer busy for longer than
// it between two records (a publisher waiting for JetStream's acknowledgements) reads the
// rest of a feed the server sent at once. The timeout is one a loaded machine's test server
// keeps within (with 200 ms, its answer came too late in 1 run of 60 under -race at a load of
// 30: "nothing received for 200ms"), the reader's pause longer.
func TestOpenURLWaitsForASlowReader(t *testing.T) {
	t.Parallel()
	const timeout, pause = 2 * time.Second, 3 * time.Second
	var feed strings.Builder
	for i := range 2000 {
		fmt.Fprintf(&feed, `{"id":"2401.%05d","title":"Paper %d","abstract":"%s"}`+"\n", i, i, words(30))
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Write([]byte(feed.String()))
	}))
	defer srv.Close()
	r, c, err := Open(srv.URL+"/feed.jsonl", Options{HTTPTimeout: timeout})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	n := 0
	for {
		_, err := r.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("after %d records and a %s pause of the reader: %v", n, pause, err)
		}
		if n++; n == 1 {
			time.Sleep(pause)
		}
	}
	if n != 2000 {
		t.Errorf("read %d records, want 2000", n)
	}
}

// A download the server cut short (the connection closed before the Content-Length it
// announced) said only "unexpected EOF", and when the cut fell within the first 64 KiB — a
// day's feed — NewReader failed with it: the whole records before the cut were not read,
// though a source that fails keeps the records read before the error. They are read, and the
// error, at the line the cut is in, says the download was cut short; a gzip file cut as early
// keeps its whole records too.
func TestADownloadCutShortKeepsItsRecordsAndSaysSo(t *testing.T) {
	t.Parallel()
	const n = 40
	abstract := words(30)
	feeds := map[string]*bytes.Buffer{"text": {}, "jsonl": {}, "atom": {}, "hf": {}}
	feeds["atom"].WriteString(`<feed xmlns="http://www.w3.org/2005/Atom">` + "\n")
	feeds["hf"].WriteString("[\n")
	for i := range n {
		fmt.Fprintf(feeds["text"], "Paper %d\n\n%s\n\n", i, abstract)
		fmt.Fprintf(feeds["jsonl"], `{"id":"2401.%05d","title":"Paper %d","abstract":"%s"}`+"\n", i, i, abstract)
		fmt.Fprintf(feeds["atom"], "<entry><id>http://arxiv.org/abs/2401.%05dv1</id><title>Paper %d</title><summary>%s</summary></entry>\n", i, i, abstract)
		fmt.Fprintf(feeds["hf"], `{"paper":{"id":"2401.%05d","title":"Paper %d","summary":"%s"}},`+"\n", i, i, abstract)
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		feed := feeds[strings.TrimPrefix(req.URL.Path, "/")]
		w.Header().Set("Content-Length", strconv.Itoa(2*feed.Len()))
		w.Write(feed.Bytes()) // and the handler returns: the connection closes
	}))
	defer srv.Close()
	for format, feed := range feeds {
		if feed.Len() >= peekSize {
			t.Fatalf("%s: the feed is %d bytes; want it within the first look at the input (%d)", format, feed.Len(), peekSize)
		}
		r, c, err := Open(srv.URL+"/"+format, Options{})
		if err != nil {
			t.Errorf("%s: Open of a download cut short: %v; want its records read, then the error", format, err)
			continue
		}
		read := 0
		for err == nil {
			if _, err = r.Next(); err == nil {
				read++
			}
		}
		c.Close()
		at := regexp.MustCompile(`^` + regexp.QuoteMeta(srv.URL+"/"+format) + `:[1-9][0-9]*: `)
		if read != n || !errors.Is(err, io.ErrUnexpectedEOF) || !at.MatchString(err.Error()) || !strings.Contains(err.Error(), "download was cut short") {
			t.Errorf("%s: %d records, then %v; want %d, then an error at URL:LINE saying the download was cut short", format, read, err, n)
		}
	}

	// A gzip file cut within the first look: the whole records it holds are read too.
	whole := gzipped(t, feeds["jsonl"].Bytes())
	cut := whole[:len(whole)*2/3]
	zr, err := gzip.NewReader(bytes.NewReader(cut))
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	lines := bytes.Count(plain, []byte("\n"))
	if lines == 0 || len(plain) >= peekSize {
		t.Fatalf("the cut gzip file holds %d bytes, %d lines; want some lines within the first %d bytes", len(plain), lines, peekSize)
	}
	gr, err := NewReader(bytes.NewReader(cut), "papers.jsonl.gz", Options{})
	if err != nil {
		t.Fatalf("NewReader of a gzip file cut within its first %d bytes: %v; want its records read, then the error", peekSize, err)
	}
	read := 0
	for err == nil {
		if _, err = gr.Next(); err == nil {
			read++
		}
	}
	if read != lines || !errors.Is(err, errGzipCut) {
		t.Errorf("%d records, then %v; want %d, then that the gzip input was cut short", read, err, lines)
	}
}

// TestOpenHTTPErrorPageIsToldAsText: a server's error page in HTML (a web server's or a
// hosting site's 404) is told by its text — its title, or its words — not quoted as markup
// cut at 200 bytes.
func TestOpenHTTPErrorPageIsToldAsText(t *testing.T) {
	t.Parallel()
	pages := map[string]string{
		// nginx's own 404.
		"/nginx": "<html>\r\n<head><title>404 Not Found</title></head>\r\n<body>\r\n<center><h1>404 Not Found</h1></center>\r\n" +
			"<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n",
		// A site's page: a long head before its title.
		"/site": "<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">" + strings.Repeat("<link rel=\"preload\" href=\"/assets/app.css\">", 30) +
			"<title>Page not found &middot; GitHub</title></head><body><p>Not found</p></body></html>",
		// No title: the words of the body.
		"/bare": "<html><body><h1>Gone</h1><p>This dataset was   moved.</p></body></html>",
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		io.WriteString(w, pages[r.URL.Path])
	}))
	defer srv.Close()
	for path, want := range map[string]string{
		"/nginx": ": server answered 404 Not Found: 404 Not Found",
		"/site":  ": server answered 404 Not Found: Page not found · GitHub",
		"/bare":  ": server answered 404 Not Found: Gone This dataset was moved.",
	} {
		_, _, err := Open(srv.URL+path, Options{})
		if want = "GET " + srv.URL + path + want; err == nil || err.Error() != want {
			t.Errorf("Open(%s) error = %v, want %q", path, err, want)
		}
	}
}

// The arXiv API answers a bad query (`start=foo`, a malformed id in id_list) with 400 Bad
// Request and an Atom feed holding one error entry (github.com/arXiv/arxiv-search issue 257
// quotes one). The error named the feed's <title>, which repeats the query, and not the
// entry's <summary>, which says what is wrong with it.
func TestOpenURLArxivAPIErrorAnswerIsNamed(t *testing.T) {
	t.Parallel()
	const body = `<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <link href="http://arxiv.org/api/query?search_query%3Dall%3Aelectron%26id_list%3D%26start%3Dfoo" rel="self" type="application/atom+xml"/>
  <title type="html">ArXiv Query: search_query=all:electron&amp;id_list=&amp;start=foo</title>
  <id>http://arxiv.org/api/UWzh+Yg7RhgQkCAe0CazZj6gCc4</id>
  <updated>2020-01-17T00:00:00-05:00</updated>
  <opensearch:totalResults xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:totalResults>
  <opensearch:startIndex xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">0</opensearch:startIndex>
  <opensearch:itemsPerPage xmlns:opensearch="http://a9.com/-/spec/opensearch/1.1/">1</opensearch:itemsPerPage>
  <entry>
    <id>http://arxiv.org/api/errors#start_must_be_an_integer</id>
    <title>Error</title>
    <summary>start must be an integer</summary>
    <updated>2020-01-17T00:00:00-05:00</updated>
    <link href="http://arxiv.org/api/errors#start_must_be_an_integer" rel="alternate" type="text/html"/>
    <author>
      <name>arXiv api core</name>
    </author>
  </entry>
</feed>
`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		w.Header().Set("Content-Type", "application/atom+xml; charset=utf-8")
		w.WriteHeader(http.StatusBadRequest)
		io.WriteString(w, body)
	}))
	defer srv.Close()
	_, _, err := Open(srv.URL+"/api/query?search_query=all:electron&start=foo", Options{})
	want := "server answered 400 Bad Request: the arXiv API reports an error: start must be an integer"
	if err == nil || !strings.HasSuffix(err.Error(), want) {
		t.Errorf("error %v, want it to end with %q", err, want)
	}
}
