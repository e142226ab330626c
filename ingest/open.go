package ingest

import (
	"context"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/paperpipe/paperpipe/internal/redact"
	"github.com/paperpipe/paperpipe/paper"
)

// Open opens path for reading: a file, "-" for standard input, or an http:// or https:// URL
// (fetched with GET). Close the returned Closer when done; for standard input it does nothing.
// Errors and each record's Source name the source as Name(path) does. It is OpenContext with
// context.Background().
func Open(path string, opts Options) (*Reader, io.Closer, error) {
	return OpenContext(context.Background(), path, opts)
}

// OpenContext is Open with a context that ends the reading of standard input (a read
// waiting for more input fails with ctx's error when ctx ends) and bounds an HTTP download. The server must answer
// within Options.HTTPTimeout, and then a read of the body fails when no data comes for that
// long (however long the caller takes between two reads); an answer other than 200 OK is an
// error naming the status.
func OpenContext(ctx context.Context, path string, opts Options) (*Reader, io.Closer, error) {
	opts, err := opts.withDefaults()
	if err != nil {
		return nil, nil, err
	}
	var (
		src    io.Reader
		closer io.Closer
		name   = Name(path)
	)
	if IsURL(path) {
		body, err := fetch(ctx, path, name, opts.HTTPTimeout, opts.PaceDir)
		if err != nil {
			return nil, nil, err
		}
		src, closer = body, body
	} else if src, closer, err = OpenInput(ctx, path); err != nil { // a file, or "-": standard input
		return nil, nil, fmt.Errorf("opening source: %w", err)
	}
	r, err := NewReader(src, name, opts)
	if err != nil {
		_ = closer.Close()
		return nil, nil, err
	}
	return r, closer, nil
}

// OpenInput opens a local input for reading: the file path, or standard input for "-". Reading
// standard input or a file that is not a regular one (a named pipe, /dev/stdin, a process
// substitution's /dev/fd/N), and opening a named pipe, which waits for its writer, end with
// ctx's error when ctx ends: Ctrl-C or SIGTERM stops a command whose producer is slow, stalled
// or not started (they waited for it, blocked in the kernel). Close the Closer when done; for
// standard input it does nothing.
func OpenInput(ctx context.Context, path string) (io.Reader, io.Closer, error) {
	if path == "-" {
		return &ctxReader{ctx: ctx, r: os.Stdin}, nopCloser{}, nil
	}
	f, err := openFile(ctx, path)
	if err != nil {
		return nil, nil, err
	}
	if fi, err := f.Stat(); err == nil && !fi.Mode().IsRegular() {
		return &ctxReader{ctx: ctx, r: f}, f, nil
	}
	return f, f, nil
}

// openFile is os.Open, except that a named pipe's open, which waits for a writer, ends with
// ctx's error when ctx does; the open left behind then closes the file if it ever gets one.
func openFile(ctx context.Context, path string) (*os.File, error) {
	if fi, err := os.Stat(path); err != nil || fi.Mode().IsRegular() || fi.IsDir() {
		return os.Open(path) // nothing to wait for, or an error it says
	}
	type opened struct {
		f   *os.File
		err error
	}
	done := make(chan opened, 1)
	go func() {
		f, err := os.Open(path)
		done <- opened{f, err}
	}()
	select {
	case o := <-done:
		return o.f, o.err
	case <-ctx.Done():
		go func() {
			if o := <-done; o.f != nil {
				_ = o.f.Close()
			}
		}()
		return nil, ctx.Err()
	}
}

// Name returns how a source given to Open is shown in messages and in each record's Source:
// "stdin" for "-", a URL without its secrets (the password or token of its userinfo and the
// values of the query parameters named for a credential, which a feed's address often
// carries: token=xxxxx; other parameters stay, see redact.URL), and a file's path as it is.
func Name(path string) string {
	switch {
	case path == "-":
		return "stdin"
	case IsURL(path):
		return redact.URL(path)
	default:
		return path
	}
}

// IsURL reports whether Open fetches path over HTTP (http:// or https://, any case) rather
// than reading a file.
func IsURL(path string) bool {
	scheme, _, ok := strings.Cut(path, "://")
	return ok && (strings.EqualFold(scheme, "http") || strings.EqualFold(scheme, "https"))
}

// ctxReader reads r (standard input, a named pipe) until ctx ends: a Read waiting for data
// then returns ctx.Err() at once. The read of r it was waiting for stays blocked in its
// goroutine (standard input cannot be interrupted), and what it reads later is lost: after ctx
// ends every Read fails.
type ctxReader struct {
	ctx  context.Context
	r    io.Reader
	buf  []byte
	done chan ctxRead
}

type ctxRead struct {
	n   int
	err error
}

func (c *ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	if len(p) == 0 {
		return 0, nil
	}
	if c.done == nil {
		c.done = make(chan ctxRead, 1)
	}
	if cap(c.buf) < len(p) {
		c.buf = make([]byte, len(p))
	}
	buf := c.buf[:len(p)]
	go func() {
		n, err := c.r.Read(buf)
		c.done <- ctxRead{n, err}
	}()
	select {
	case res := <-c.done:
		return copy(p, buf[:res.n]), res.err
	case <-c.ctx.Done():
		c.buf = nil // the goroutine may still write to it
		return 0, c.ctx.Err()
	}
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// fetch GETs rawURL and returns its body, a read of which fails when no data comes for
// timeout. A 429 or 503 with a short Retry-After is asked again after it (see fetchAttempts). Errors name the URL as shown, never as given: it may carry secrets (see Name).
func fetch(ctx context.Context, rawURL, shown string, timeout time.Duration, paceDir string) (*idleBody, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	b := &idleBody{cancel: cancel, ctx: ctx, timeout: timeout}
	b.timer = time.AfterFunc(timeout, func() {
		cancel(fmt.Errorf("GET %s: nothing received for %s", shown, timeout))
	})
	fail := func(err error) (*idleBody, error) {
		b.timer.Stop()
		cancel(err)
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, rawURL, nil)
	if err != nil {
		// A *url.Error quotes the URL in full: keep only its cause, which may quote the
		// password's start (see redact.ParseError).
		var ue *url.Error
		if errors.As(err, &ue) {
			err = redact.ParseError(rawURL, ue.Err)
		}
		return fail(fmt.Errorf("making request for %s: %w", shown, err))
	}
	req.Header.Set("User-Agent", "paperpipe-ingest/1") // arXiv asks for one that names the client
	pace := newPacer(req.URL)
	pace.dir = paceDir
	for attempt := 1; ; attempt++ {
		b.timer.Stop() // the server's time starts with the request
		if err := pace.wait(ctx); err != nil {
			return fail(fmt.Errorf("fetching source: GET %s: waiting %s after the previous request to %s (its terms ask for that pace): %w",
				shown, pace.gap, req.URL.Hostname(), err))
		}
		b.timer.Reset(timeout)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			pace.done()
			if cause := context.Cause(ctx); cause != nil && !errors.Is(cause, context.Canceled) {
				err = cause
			}
			// The client's *url.Error names the URL (or a redirect's) with only its password hidden.
			var ue *url.Error
			if errors.As(err, &ue) {
				ue.URL = redact.URL(ue.URL)
			}
			return fail(fmt.Errorf("fetching source: %w", err))
		}
		if resp.StatusCode == http.StatusOK {
			b.body = resp.Body
			b.done = pace.done
			break
		}
		snippet, _ := io.ReadAll(io.LimitReader(resp.Body, errorPageRead))
		_ = resp.Body.Close()
		pace.done()
		msg := fmt.Sprintf("GET %s: server answered %s", shown, resp.Status)
		if s := errorText(resp.Header.Get("Content-Type"), snippet); s != "" {
			msg += ": " + s
		}
		if wait, ok := retryAfter(resp); ok {
			switch {
			case wait > maxRetryAfter:
				msg += fmt.Sprintf(" (it asks to be asked again in %s: Retry-After; fetch it again then)", wait)
			case attempt >= fetchAttempts:
				msg += fmt.Sprintf(" (asked %d times, waiting the Retry-After it gave between them)", attempt)
			default:
				b.timer.Stop()
				// The wait is the host's, not this request's alone: another request to it,
				// of this process or of another sharing the pace, waits it too.
				pace.hold(wait)
				if err := sleep(ctx, wait); err != nil {
					return fail(fmt.Errorf("fetching source: GET %s: waiting the %s its server asked for (Retry-After): %w", shown, wait, err))
				}
				continue
			}
		}
		return fail(errors.New(msg))
	}
	b.timer.Stop() // Read runs it while it waits
	return b, nil
}

// A 429 or 503 answer with a Retry-After (arXiv's servers give them to a client that asks too
// often: its API wants three seconds between requests) is asked again after the wait, up to
// fetchAttempts requests in all, when the wait is at most maxRetryAfter; otherwise the error
// says what the server asked for.
const (
	fetchAttempts = 4
	maxRetryAfter = time.Minute
)

// newWaitTimer makes the timer of a wait (sleep: a Retry-After, a paced host's gap): a variable
// for the tests.
var newWaitTimer = time.NewTimer

// pacedHosts are the hosts whose terms ask for a pause between requests, and how long:
// arXiv's API and OAI-PMH host asks for "no more than one request every three seconds, and
// … a single connection at a time" (https://info.arxiv.org/help/api/tou.html). A request to
// one starts that long after the previous request to it ended (its answer read and closed, or
// failed): the pages of a query given to one command (`ingest URL1 URL2 …`) are fetched at that
// pace, not back to back. rss.arxiv.org, the daily announcements' host, names no such rule.
// Keys are a host's name in lower case, or its host:port (for the tests).
var pacedHosts = map[string]time.Duration{"export.arxiv.org": 3 * time.Second}

// paceNow is the clock of the pace: a variable for the tests (the wait is newWaitTimer's).
var paceNow = time.Now

var (
	paceMu   sync.Mutex
	paceNext = map[string]time.Time{} // a paced host's key → the earliest its next request may start
)

// pacer keeps one request's host at its pace; the zero pacer (a host not paced) does nothing.
type pacer struct {
	key string
	gap time.Duration
	// dir is Options.PaceDir: where the pace is shared with other processes (see shared).
	dir string
	// reserved is what wait wrote in the host's file while the request is under way (see
	// paceUnderWay), which done replaces with its end; zero when it wrote none.
	reserved time.Time
}

// newPacer is the pacer of a request to u: its host's pause from pacedHosts, if any.
func newPacer(u *url.URL) pacer {
	for _, k := range []string{strings.ToLower(u.Host), strings.ToLower(u.Hostname())} {
		if gap, ok := pacedHosts[k]; ok && gap > 0 {
			return pacer{key: k, gap: gap}
		}
	}
	return pacer{}
}

// paceUnderWay is how long a request of a shared pace holds the host at most: wait writes its
// start plus this in the host's file, and done its end plus the gap, so that another process
// waits for the request to end — one connection at a time, as arXiv asks — and for no longer
// than this when the process making it was stopped before its end. A request that lasts longer
// (a download of minutes) lets another start after it.
const paceUnderWay = 2 * time.Minute

// wait waits until the request may start, and reserves the host until then plus the gap (so
// that another request made meanwhile waits its turn); it fails with ctx's cause when ctx ends.
// With a shared pace, the host is then reserved in its file too, until done marks the
// request's end (see paceUnderWay): a request of another process that has not ended, or ended
// less than the gap ago, is waited for — the file read again every gap at most, as the other
// request may end at any time.
func (p *pacer) wait(ctx context.Context) error {
	if p.gap <= 0 {
		return nil
	}
	paceMu.Lock()
	now := paceNow()
	start := now
	if next := paceNext[p.key]; next.After(now) {
		start = next
	}
	paceNext[p.key] = start.Add(p.gap)
	paceMu.Unlock()
	if d := start.Sub(now); d > 0 {
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
	for {
		var d time.Duration
		if err := p.shared(ctx, func(next time.Time) time.Time {
			now := paceNow()
			// A time further ahead than a request under way and a Retry-After held (see hold)
			// is a clock set back since it was written: it does not make this one wait.
			if next.After(now) && !next.After(now.Add(paceUnderWay+max(p.gap, maxRetryAfter))) {
				d = min(next.Sub(now), p.gap)
				return next
			}
			d, p.reserved = 0, now.Add(paceUnderWay)
			return p.reserved
		}); err != nil {
			return err
		}
		if d <= 0 {
			return nil
		}
		if err := sleep(ctx, d); err != nil {
			return err
		}
	}
}

// shared updates the pace of p's host shared with the other processes given the same
// PaceDir: a file in it, pace-HOST, holding the earliest time the host's next request may
// start, locked while update reads it (the zero time when it holds none) and gives the time to
// write. Without a dir, or one that does not exist, or a file that cannot be made or locked (a
// read-only directory; a lock not released within lockPolls tries), it does nothing: the pace
// is this process's own. It fails with ctx's cause when ctx ends while it waits for the lock.
func (p *pacer) shared(ctx context.Context, update func(next time.Time) time.Time) error {
	if p.dir == "" {
		return nil
	}
	if fi, err := os.Stat(p.dir); err != nil || !fi.IsDir() {
		return nil
	}
	// O_NOFOLLOW: a link planted at the name does not make this write another file.
	f, err := os.OpenFile(filepath.Join(p.dir, "pace-"+strings.NewReplacer("/", "_", ":", "_").Replace(p.key)),
		os.O_CREATE|os.O_RDWR|syscall.O_NOFOLLOW, 0o600)
	if err != nil {
		return nil
	}
	defer f.Close()
	for try := 1; ; try++ {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || try >= lockPolls {
			return nil
		}
		if err := lockPoll(ctx); err != nil {
			return err
		}
	}
	defer syscall.Flock(int(f.Fd()), syscall.LOCK_UN) //nolint:errcheck // closing releases it too
	b := make([]byte, 64)
	n, _ := f.ReadAt(b, 0)
	next, _ := time.Parse(time.RFC3339Nano, strings.TrimSpace(string(b[:n])))
	if err := f.Truncate(0); err == nil {
		_, _ = f.WriteAt([]byte(update(next).UTC().Format(time.RFC3339Nano)), 0)
	}
	return nil
}

// lockPolls is how many times shared tries a host's lock file, lockPoll apart, before it
// keeps the pace alone: another process holds it only while it reads and writes the time.
const lockPolls = 100

// lockPoll waits before a host's lock file is tried again; it fails with ctx's cause when ctx
// ends. A variable for the tests.
var lockPoll = func(ctx context.Context) error {
	t := time.NewTimer(50 * time.Millisecond)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return context.Cause(ctx)
	}
}

// sleep waits d on a newWaitTimer; it fails with ctx's cause when ctx ends first.
func sleep(ctx context.Context, d time.Duration) error {
	t := newWaitTimer(d)
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		t.Stop()
		return context.Cause(ctx)
	}
}

// done marks the end of a request (its answer read, or its failure): the next one to the host,
// of this process or of another sharing the pace, starts the gap after it.
func (p *pacer) done() { p.hold(p.gap) }

// hold keeps the next request to p's host, of this process or of another sharing the pace,
// from starting before d from now (at least the gap): a request's end, or the Retry-After of a
// refusal (at most maxRetryAfter: one waited, see fetch), which the host asks of every client
// that asks too often, not only of the request refused. The reservation wait wrote in the
// host's file for the request under way is replaced.
func (p *pacer) hold(d time.Duration) {
	if p.gap <= 0 {
		return
	}
	d = max(d, p.gap)
	_ = p.shared(context.Background(), func(next time.Time) time.Time {
		end := paceNow().Add(d)
		if !p.reserved.IsZero() && next.Equal(p.reserved) {
			p.reserved = time.Time{}
			return end // this request's reservation: it is over
		}
		if end.After(next) {
			return end
		}
		return next
	})
	paceMu.Lock()
	defer paceMu.Unlock()
	if next := paceNow().Add(d); next.After(paceNext[p.key]) {
		paceNext[p.key] = next
	}
}

// retryAfter is the wait a 429 or 503 answer asks for in its Retry-After (seconds, or an HTTP
// date; a date past is no wait); ok is false for another status or without a valid one.
func retryAfter(resp *http.Response) (wait time.Duration, ok bool) {
	if resp.StatusCode != http.StatusTooManyRequests && resp.StatusCode != http.StatusServiceUnavailable {
		return 0, false
	}
	v := strings.TrimSpace(resp.Header.Get("Retry-After"))
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, true
	}
	if t, err := http.ParseTime(v); err == nil {
		return max(time.Until(t), 0).Round(time.Second), true
	}
	return 0, false
}

// idleBody is an HTTP body whose reads fail when the server sends nothing for timeout. The
// timer runs only while a Read waits: the caller may take as long as it likes between reads.
type idleBody struct {
	body    io.ReadCloser
	ctx     context.Context
	cancel  context.CancelCauseFunc
	timeout time.Duration
	timer   *time.Timer
	once    sync.Once
	done    func() // the request's end, for its host's pace
}

func (b *idleBody) Read(p []byte) (int, error) {
	// Only the time spent waiting for the server counts: a consumer busy between two reads
	// (a publisher waiting for acknowledgements) is not a silent server.
	b.timer.Reset(b.timeout)
	n, err := b.body.Read(p)
	b.timer.Stop()
	if err != nil && err != io.EOF {
		if cause := context.Cause(b.ctx); cause != nil && !errors.Is(cause, context.Canceled) {
			err = cause
		} else if errors.Is(err, io.ErrUnexpectedEOF) {
			err = errDownloadCut
		}
	}
	return n, err
}

// errDownloadCut is the end of an HTTP answer before its end (the connection closed before
// the Content-Length announced, or inside a chunk): a download cut short. It wraps
// io.ErrUnexpectedEOF, which alone said nothing of what ended early.
var errDownloadCut = fmt.Errorf("the connection closed before the server's whole answer came: "+
	"the download was cut short; fetch it again (%w)", io.ErrUnexpectedEOF)

func (b *idleBody) Close() error {
	var err error
	b.once.Do(func() {
		b.timer.Stop()
		err = b.body.Close()
		b.cancel(context.Canceled)
		if b.done != nil {
			b.done()
		}
	})
	return err
}

// errorPageRead is how much of an error's body errorText is given: enough for an HTML page's
// head, before its title.
const errorPageRead = 16 << 10

// errorTextAt is how many bytes of an error's body its error quotes.
const errorTextAt = 200

var (
	htmlTitle  = regexp.MustCompile(`(?is)<title[^>]*>(.*?)</title>`)
	htmlHidden = regexp.MustCompile(`(?is)<(script|style|head)[^>]*>.*?</(script|style|head)>`)
	htmlTag    = regexp.MustCompile(`(?s)<[^>]*>?`)
	// arxivAPIError is the error entry of the Atom feed the arXiv API answers a bad query with
	// (400 Bad Request): its <summary> says what is wrong; the feed's <title> only repeats the
	// query.
	arxivAPIError = regexp.MustCompile(`(?s)<id>\s*https?://arxiv\.org/api/errors[^<]*</id>.*?<summary[^>]*>(.*?)</summary>`)
)

// errorText is what an error answer's body says, for its error: the arXiv API's error feed
// by its error entry's summary, an HTML page (a web server's
// or a site's 404) by its title, or else its words, not its markup; another body as it is;
// either folded to one line and cut at errorTextAt bytes.
func errorText(contentType string, body []byte) string {
	s := string(body)
	if m := arxivAPIError.FindStringSubmatch(s); m != nil && paper.Fold(html.UnescapeString(m[1])) != "" {
		return cutText(paper.Fold("the arXiv API reports an error: " + html.UnescapeString(m[1])))
	}
	if strings.Contains(strings.ToLower(contentType), "html") || strings.HasPrefix(strings.TrimSpace(s), "<") {
		if m := htmlTitle.FindStringSubmatch(s); m != nil && paper.Fold(html.UnescapeString(m[1])) != "" {
			s = m[1]
		} else {
			s = htmlTag.ReplaceAllString(htmlHidden.ReplaceAllString(s, " "), " ")
		}
		s = html.UnescapeString(s)
	}
	return cutText(paper.Fold(s))
}

// cutText is s cut at errorTextAt bytes, at a character's start.
func cutText(s string) string {
	if len(s) > errorTextAt {
		at := errorTextAt
		for at > 0 && !utf8.RuneStart(s[at]) {
			at--
		}
		s = s[:at]
	}
	return s
}
