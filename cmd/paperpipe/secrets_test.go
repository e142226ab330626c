package main

import (
	"bufio"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/paperpipe/paperpipe/internal/nettest"
)

// noSecret fails the test when s holds any of the secrets.
func noSecret(t *testing.T, what, s string, secrets ...string) {
	t.Helper()
	for _, sec := range secrets {
		if strings.Contains(s, sec) {
			t.Errorf("%s shows the secret %q:\n%s", what, sec, s)
		}
	}
}

// freePort returns a loopback port nothing listens on, outside the kernel's ephemeral range
// (see nettest.PickPort): a server the test starts on it later does not find it taken.
func freePort(t *testing.T) int {
	t.Helper()
	return nettest.FreePort(t)
}

// An OPENAI_BASE_URL that does not parse, or that has a query (go-openai would put it inside
// every request's URL: …/v1?api_key=K/chat/completions), is refused when the environment is
// read, exit 2, naming the variable, without showing its password or its query's key.
func TestBadOpenAIBaseURLIsRefusedWithoutItsSecrets(t *testing.T) {
	t.Parallel()
	for _, base := range []string{
		"https://user:PassW0rd@api.example.com:badport/v1?api_key=K3yValue",
		"https://user:PassW0rd@api.example.com/v1?api_key=K3yValue",
		"user:PassW0rd@api.example.com/v1", // no scheme
	} {
		c := newCLI(t, "OPENAI_BASE_URL="+base)
		r := c.run("summarize", "--chat-model", "gpt-4o-mini", sampleFile)
		if r.code != 2 || !strings.Contains(r.stderr, "OPENAI_BASE_URL") {
			t.Errorf("summarize with OPENAI_BASE_URL=%s: exit %d, stderr %s; want 2 and a message naming OPENAI_BASE_URL", base, r.code, r.stderr)
		}
		noSecret(t, "the error of OPENAI_BASE_URL="+base, r.stderr, "PassW0rd", "K3yValue")
	}
}

// A NATS_URL may carry a password (nats://user:pass@host) or a token (nats://token@host); the
// messages that name the server show neither.
func TestNATSURLSecretsAreNotPrinted(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(freePort(t))
	for _, tc := range []struct{ natsURL, shown string }{
		{"nats://user:NatsSecret@127.0.0.1:" + port, "nats://user:xxxxx@127.0.0.1:" + port},
		{"nats://NatsSecret@127.0.0.1:" + port, "nats://xxxxx@127.0.0.1:" + port},
		// Without a scheme: the NATS client takes it for nats:// and uses the credentials.
		{"user:NatsSecret@127.0.0.1:" + port, "xxxxx@127.0.0.1:" + port},
	} {
		c := newCLI(t, "NATS_URL="+tc.natsURL)
		r := c.run("ingest", sampleFile)
		if r.code != 1 || !strings.Contains(r.stderr, "connect to NATS at "+tc.shown+":") {
			t.Errorf("ingest with nothing at NATS_URL: exit %d, stderr %s; want 1 and the server named as %s", r.code, r.stderr, tc.shown)
		}
		noSecret(t, "ingest's error", r.stderr, "NatsSecret")
	}

	// up names the server it connected to.
	srv, err := server.NewServer(&server.Options{Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: t.TempDir(),
		NoSigs: true, NoLog: true, Authorization: "NatsToken"})
	if err != nil {
		t.Fatal(err)
	}
	srv.Start()
	t.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		t.Fatal("nats-server not ready")
	}
	hostPort := strings.TrimPrefix(srv.ClientURL(), "nats://")
	c := newCLI(t, "NATS_URL=nats://NatsToken@"+hostPort)
	up := exec.Command(binary, "up", "--http", "")
	up.Env = c.env
	stderr, err := up.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := up.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = up.Process.Signal(syscall.SIGTERM)
		_ = up.Wait()
	}()
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "paperpipe up: NATS ") {
				lines <- sc.Text()
			}
		}
	}()
	select {
	case line := <-lines:
		if !strings.Contains(line, "nats://xxxxx@"+hostPort) {
			t.Errorf("up said %q, want it to name nats://xxxxx@%s", line, hostPort)
		}
		noSecret(t, "up's NATS line", line, "NatsToken")
	case <-time.After(60 * time.Second):
		t.Fatal("up did not say which NATS server it uses")
	}
}

// A source URL's password and query values reach neither ingest's messages nor the papers'
// stored source, which `show --json` and the HTTP API show.
func TestIngestFromURLShowsAndStoresNoSecret(t *testing.T) {
	t.Parallel()
	sample, err := os.ReadFile(sampleFile)
	if err != nil {
		t.Fatal(err)
	}
	feed := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Query().Get("token") != "QuerySecret" {
			http.Error(w, "bad token", http.StatusUnauthorized)
			return
		}
		w.Write(sample)
	}))
	defer feed.Close()
	withSecrets := strings.Replace(feed.URL, "http://", "http://u:UrlSecret@", 1) + "/papers.txt?token="
	c := newCLI(t)

	r := c.run("ingest", withSecrets+"WrongSecret")
	if r.code != 1 || !strings.Contains(r.stderr, "/papers.txt?token=xxxxx: server answered 401") {
		t.Errorf("ingest of a URL answering 401: exit %d, stderr %s", r.code, r.stderr)
	}
	noSecret(t, "ingest's error", r.stderr, "UrlSecret", "WrongSecret")

	r = c.ok("ingest", withSecrets+"QuerySecret")
	noSecret(t, "ingest's messages", r.stderr, "UrlSecret", "QuerySecret")
	c.ok("worker", "--exit-when-idle")
	var rec struct{ Source string }
	c.json(&rec, "show", "Load Balancing Loss")
	want := strings.Replace(feed.URL, "http://", "http://u:xxxxx@", 1) + "/papers.txt?token=xxxxx:"
	if !strings.HasPrefix(rec.Source, want) {
		t.Errorf("stored source = %q, want it to start with %q", rec.Source, want)
	}
	noSecret(t, "the stored source", rec.Source, "UrlSecret", "QuerySecret")
}

// Credentials in shapes that url.Parse or pgx cannot take apart are not printed either: a
// password with an unescaped "/", "?" or "%" in OPENAI_BASE_URL or NATS_URL (url.Parse's own
// error quotes the URL whole, and what it took for a port or a host: the password's start), an "@" in DATABASE_URL's password (pgx takes its rest for the
// host, and the resolver's error names it), and a source URL with an upper-case scheme
// (once taken for a file name).
func TestCredentialsInOddShapesAreNotPrinted(t *testing.T) {
	t.Parallel()
	port := strconv.Itoa(freePort(t))
	for _, tc := range []struct {
		env  string
		args []string
	}{
		{"NATS_URL=nats://user:Nats%Secret@127.0.0.1:" + port, []string{"ingest", sampleFile}},
		{"NATS_URL=nats://user:Nats/Secret@127.0.0.1:" + port, []string{"ingest", sampleFile}},
		// url.Parse takes the password's start for a port (user:Secret1/…), and its error
		// quoted it.
		{"NATS_URL=nats://user:Secret1/x@127.0.0.1:" + port, []string{"ingest", sampleFile}},
		{"NATS_URL=nats://user:Secret2?x@127.0.0.1:" + port, []string{"ingest", sampleFile}},
		{"NATS_URL=nats://127.0.0.1:" + port + ",nats://user:Secret3#x@127.0.0.1:" + port, []string{"ingest", sampleFile}},
		{"NATS_URL=nats://user:Sec ret4/x@127.0.0.1:" + port, []string{"ingest", sampleFile}},
		{"OPENAI_BASE_URL=https://user:Pass/Secret@api.example.com/v1", []string{"summarize", "--chat-model", "gpt-4o-mini", sampleFile}},
		{"OPENAI_BASE_URL=https://user:PassSecret?x@api.example.com/v1", []string{"summarize", "--chat-model", "gpt-4o-mini", sampleFile}},
		{"DATABASE_URL=postgres://paperpipe:p@ssSecret@127.0.0.1:" + port + "/paperpipe?sslmode=disable", []string{"status"}},
		{"PAPERPIPE_CHAT_MODEL=offline", []string{"summarize", "HTTPS://user:UpperSecret@127.0.0.1:" + port + "/feed.jsonl"}},
		{"PAPERPIPE_CHAT_MODEL=offline", []string{"summarize", "https://user:Secret5/x@127.0.0.1:" + port + "/feed.jsonl"}},
	} {
		r := newCLI(t, tc.env).run(tc.args...)
		if r.code == 0 {
			t.Errorf("%s paperpipe %s succeeded", tc.env, strings.Join(tc.args, " "))
		}
		noSecret(t, tc.env+" paperpipe "+strings.Join(tc.args, " "), r.stdout+r.stderr, "Secret")
	}
}

// A server other machines reach, without PAPERPIPE_API_TOKEN, takes writes from any of them
// (POST /api/papers queues papers the workers pay for) and said nothing: it warns at start;
// on a loopback address, or with a token, it does not.
func TestOpenWritesOffLoopbackAreWarnedOf(t *testing.T) {
	for _, tc := range []struct {
		addr  net.Addr
		token string
		warn  bool
	}{
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "", true},
		{&net.TCPAddr{IP: net.ParseIP("10.1.2.3"), Port: 8080}, "", true},
		{&net.TCPAddr{IP: net.IPv6unspecified, Port: 8080}, "", true},
		{&net.TCPAddr{IP: net.IPv4zero, Port: 8080}, "s3cret", false},
		{&net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 8080}, "", false},
		{&net.TCPAddr{IP: net.IPv6loopback, Port: 8080}, "", false},
	} {
		w := openWritesWarning(tc.addr, tc.token)
		if got := w != ""; got != tc.warn || (tc.warn && !strings.Contains(w, "PAPERPIPE_API_TOKEN")) {
			t.Errorf("serving on %s with token %q: warning %q, want one naming PAPERPIPE_API_TOKEN: %v", tc.addr, tc.token, w, tc.warn)
		}
	}
}
