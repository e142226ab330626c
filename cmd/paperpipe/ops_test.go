package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"

	"github.com/paperpipe/paperpipe/internal/natstest"
)

// get returns the status and body of GET url.
func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}

// `worker --metrics ADDR` serves /metrics, /healthz and /readyz: with the Kubernetes manifests
// (a worker Deployment and a serve one) the pipeline's counters exist only in the worker's
// process, which exposed nothing, so no paperpipe_worker_* or paperpipe_stage_* series existed
// anywhere and a paused worker was invisible. The queue's gauges (dead letters included) are
// read at each scrape; the API and UI are not served there.
func TestWorkerServesMetricsAndProbes(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("ingest", sampleFile)
	w := exec.Command(binary, "worker", "--metrics", "127.0.0.1:0")
	w.Env = c.env
	stderr, err := w.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Start(); err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	t.Cleanup(func() {
		_ = w.Process.Signal(syscall.SIGTERM)
		_ = w.Wait()
	})
	base := servedURL(t, stderr, logs)
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		_, m := get(t, base+"/metrics")
		if strings.Contains(m, `paperpipe_worker_messages_total{consumer="workers",outcome="acked"} 108`) {
			for _, want := range []string{"paperpipe_stage_duration_seconds", "paperpipe_dead_letters 0", "paperpipe_queue_up 1",
				`paperpipe_queue_messages{consumer="workers",state="pending"} 0`, `paperpipe_worker_api_paused{consumer="workers"} 0`,
				`paperpipe_worker_database_paused{consumer="workers"} 0`} {
				if !strings.Contains(m, want) {
					t.Errorf("the worker's /metrics has no %s:\n%s", want, m)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the worker's /metrics never counted the sample acked:\n%s\nworker log:\n%s", m, logs.String())
		}
	}
	if code, body := get(t, base+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d %s", code, body)
	}
	code, body := get(t, base+"/readyz")
	var ready struct {
		Status string
		Checks map[string]string
	}
	if err := json.Unmarshal([]byte(body), &ready); err != nil || code != http.StatusOK || ready.Checks["database"] != "ok" || ready.Checks["nats"] != "ok" {
		t.Errorf("/readyz: %d %s; want 200 with the database and NATS checked", code, body)
	}
	if code, _ := get(t, base+"/api/papers"); code != http.StatusNotFound {
		t.Errorf("the worker's metrics address serves /api/papers: %d, want 404", code)
	}
}

// A NATS outage leaves serve ready: search, listing and the pages need only PostgreSQL, and a
// readiness gate on NATS took every replica out of the Service at once. /readyz reports NATS in
// its checks (and /metrics paperpipe_queue_up 0); POST /api/papers answers 503 itself; the status
// page and /api/status answer at once with the database's parts and a "queue unavailable" note
// (they waited for the request's timeout, 59 s, and failed).
func TestServeWithoutNATSServesReads(t *testing.T) {
	t.Parallel()
	nats := natstest.Start(t)
	c := newCLI(t, "NATS_URL="+nats.ClientURL())
	c.ok("ingest", sampleFile)
	c.ok("worker", "--exit-when-idle")
	base := startServe(t, c)
	nats.Shutdown()
	nats.WaitForShutdown()

	var ready struct {
		Status string
		Checks map[string]string
	}
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		code, body := get(t, base+"/readyz")
		if err := json.Unmarshal([]byte(body), &ready); err != nil {
			t.Fatalf("/readyz: %d %s", code, body)
		}
		if ready.Checks["nats"] != "ok" {
			if code != http.StatusOK || ready.Checks["database"] != "ok" {
				t.Errorf("/readyz without NATS: %d %s; want 200, NATS reported in the checks", code, body)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("/readyz still reports NATS ok after its shutdown: %s", body)
		}
	}
	for _, path := range []string{"/api/papers", "/api/search?mode=keyword&q=experts", "/search?q=experts&mode=keyword", "/"} {
		if code, body := get(t, base+path); code != http.StatusOK {
			t.Errorf("GET %s without NATS: %d %.300s", path, code, body)
		}
	}
	start := time.Now()
	code, body := get(t, base+"/api/status")
	var st struct {
		Papers     int64  `json:"papers"`
		QueueError string `json:"queue_error"`
	}
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != http.StatusOK || st.Papers != 108 || st.QueueError == "" {
		t.Errorf("/api/status without NATS: %d %.300s; want 200 with the 108 papers and queue_error", code, body)
	}
	if code, body := get(t, base+"/status"); code != http.StatusOK || !strings.Contains(body, "queue is unavailable") {
		t.Errorf("/status without NATS: %d, want 200 saying the queue is unavailable:\n%.2000s", code, body)
	}
	if took := time.Since(start); took > 20*time.Second {
		t.Errorf("the status answers took %s without NATS; want them bounded (3 s each)", took)
	}
	// A paper posted without NATS is refused at once: published while the client reconnects,
	// it waited in the client's buffer for the acknowledgement's 30 s before its 503.
	start = time.Now()
	resp, err := http.Post(base+"/api/papers", "application/json",
		strings.NewReader(`{"id":"outage-1","title":"Queued in an outage","abstract":"A paper posted while NATS is down."}`))
	if err != nil {
		t.Fatal(err)
	}
	post, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if took := time.Since(start); resp.StatusCode != http.StatusServiceUnavailable || took > 10*time.Second {
		t.Errorf("POST /api/papers without NATS: %d %s after %s; want 503 at once (the acknowledgement's wait is 30 s)", resp.StatusCode, post, took)
	}
	if _, m := get(t, base+"/metrics"); !strings.Contains(m, "paperpipe_queue_up 0") {
		t.Error("/metrics without NATS does not say paperpipe_queue_up 0")
	}
}

// postPaper posts one paper to serve's API and returns the status and body of the answer.
func postPaper(t *testing.T, base, id string) (int, string) {
	t.Helper()
	resp, err := http.Post(base+"/api/papers", "application/json",
		strings.NewReader(`{"id":"`+id+`","title":"Posted around an outage","abstract":"A paper posted while NATS was down, or just after."}`))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// A serve pod restarted during a NATS outage crash-looped: serve stopped at start when NATS_URL
// could not be reached, though search, listing and the pages need only PostgreSQL. It starts and
// serves reads, POST /api/papers answering 503 until it has connected in the background; then
// it sets up the queue (the server here is a new one, without paperpipe's streams) and takes
// papers.
func TestServeStartsWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	port := freePort(t) // for the NATS server started later
	c := newCLI(t, fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", port))
	base := startServe(t, c)
	if code, body := get(t, base+"/api/papers"); code != http.StatusOK {
		t.Errorf("GET /api/papers before NATS is up: %d %.300s", code, body)
	}
	if code, body := postPaper(t, base, "outage-1"); code != http.StatusServiceUnavailable {
		t.Errorf("POST /api/papers before NATS is up: %d %.300s; want 503", code, body)
	}
	srv := natstest.StartWith(t, func(o *server.Options) { o.Port = port })
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		code, body := postPaper(t, base, "after-outage-1")
		if code == http.StatusAccepted {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("POST /api/papers after NATS came up: still %d %.300s", code, body)
		}
	}
	s, err := srv.Connect(t).Stream(t.Context(), "PAPERS")
	if err != nil {
		t.Fatalf("serve did not set up the queue once connected: %v", err)
	}
	if n := s.CachedInfo().State.Msgs; n != 1 {
		t.Errorf("PAPERS holds %d messages, want the one paper accepted", n)
	}
}

// serve started during a NATS outage, with NATS coming back refusing its credentials: it
// stops, naming the setting, where it stayed up answering every POST "send it again" for ever
// with nothing in its log (nats.go gives up after the same refusal twice, silently).
func TestServeStartedDuringAnOutageStopsWhenNATSRefusesItsCredentials(t *testing.T) {
	t.Parallel()
	port := freePort(t) // for the NATS server started later
	s := startServeProc(t, newCLI(t, fmt.Sprintf("NATS_URL=nats://wrong-token@127.0.0.1:%d", port)))
	natstest.StartWith(t, func(o *server.Options) { o.Port = port; o.Authorization = "right-token" })
	s.wantStop(t, "refused paperpipe's credentials")
}

// serve started during a NATS outage, with NATS coming back on TLS with a certificate of a CA
// serve was not told about: it stops naming PAPERPIPE_NATS_CA, where it retried for ever in
// silence (nats.go gives up only on the same authentication refusal twice).
func TestServeStartedDuringAnOutageStopsWhenNATSCertificateIsUnknown(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	s := startServeProc(t, newCLI(t, fmt.Sprintf("NATS_URL=tls://127.0.0.1:%d", port)))
	tlsConfig, _ := testCA(t)
	natstest.StartWith(t, func(o *server.Options) { o.Port = port; o.TLS, o.TLSConfig, o.TLSTimeout = true, tlsConfig, 2 })
	s.wantStop(t, "PAPERPIPE_NATS_CA")
}

// serve and a worker connected at start; NATS restarts refusing their credentials (a rotated
// token): nats.go closes the connection after the same refusal twice, and both stop, naming
// the setting, where they stayed up doing nothing with nothing in their logs.
func TestConnectedProcessesStopWhenNATSComesBackRefusingTheirCredentials(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	wantConnectedProcessesStop(t, port,
		func(o *server.Options) { o.Authorization = "old-token" },
		func(o *server.Options) { o.Authorization = "new-token" },
		"refused paperpipe's credentials", fmt.Sprintf("NATS_URL=nats://old-token@127.0.0.1:%d", port))
}

// serve and a worker connected at start over TLS; NATS restarts with a certificate of another
// CA (a rotated CA): nats.go retries that for ever and reports it through no callback, so both
// sat idle, logging only "reconnecting"; they stop, naming PAPERPIPE_NATS_CA.
func TestConnectedProcessesStopWhenNATSComesBackWithAnotherCAsCertificate(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	tls1, ca1 := testCA(t)
	tls2, _ := testCA(t)
	wantConnectedProcessesStop(t, port,
		func(o *server.Options) { o.TLS, o.TLSConfig, o.TLSTimeout = true, tls1, 2 },
		func(o *server.Options) { o.TLS, o.TLSConfig, o.TLSTimeout = true, tls2, 2 },
		"PAPERPIPE_NATS_CA", fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", port), "PAPERPIPE_NATS_CA="+ca1)
}

// wantConnectedProcessesStop starts a NATS server on port set up by first, serve and a worker
// connected to it with env, then restarts NATS set up by next instead: both processes must
// stop naming want.
func wantConnectedProcessesStop(t *testing.T, port int, first, next func(*server.Options), want string, env ...string) {
	t.Helper()
	old := natstest.StartWith(t, func(o *server.Options) { o.Port = port; first(o) })
	c := newCLI(t, env...)
	s := startServeProc(t, c)
	w := startPaperpipe(t, c, "worker")
	// The worker is counted among the server's clients before its start is done: restarted then,
	// it failed its start ("connect to NATS …: EOF") instead of meeting the new server. Restart
	// once it pulls from its consumer.
	waitForPull(t, old, w.logs)
	restartNATS(t, old, 2, w.logs)
	natstest.StartWith(t, func(o *server.Options) { o.Port = port; next(o) })
	s.wantStop(t, want)
	w.wantStop(t, want)
}

// An ingest of a live stream stopped because NATS came back refusing its credentials says so
// in its last line (it said "interrupted", as if the user had pressed Ctrl-C).
func TestIngestStoppedByARefusalSaysWhy(t *testing.T) {
	t.Parallel()
	port := freePort(t)
	first := natstest.StartWith(t, func(o *server.Options) { o.Port = port; o.Authorization = "old-token" })
	c := newCLI(t, fmt.Sprintf("NATS_URL=nats://old-token@127.0.0.1:%d", port))
	cmd := exec.Command(binary, "ingest", "-")
	cmd.Env = c.env
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	logs := &lockedBuffer{}
	cmd.Stderr = logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	fmt.Fprintln(stdin, `{"id":"2401.00001","title":"A paper","abstract":"An abstract of a paper."}`)
	// Ingest has set the queue up and published the paper: it runs, reading its stream.
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if info, err := first.Jsz(nil); err == nil && info.Messages >= 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ingest published nothing in 30 s:\n%s", logs.String())
		}
	}
	restartNATS(t, first, 1, logs)
	natstest.StartWith(t, func(o *server.Options) { o.Port = port; o.Authorization = "new-token" })
	select {
	case err := <-done:
		lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
		if last := lines[len(lines)-1]; err == nil || !strings.Contains(last, "refused paperpipe's credentials") {
			t.Errorf("ingest ended with %v, its last line %q; want an error naming the refusal\n%s", err, last, logs.String())
		}
		done <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("ingest still runs a minute after NATS came back refusing it:\n%s", logs.String())
	}
}

// restartNATS waits until first has clients (the processes under test are connected; logs
// says otherwise), then shuts it down for the test to start the next one on its port.
func restartNATS(t *testing.T, first *natstest.Server, clients int, logs *lockedBuffer) {
	t.Helper()
	// A client is counted from its TCP connection on, before its CONNECT: a process whose
	// connect the shutdown cut failed its start ("connect to NATS …: broken pipe") instead of
	// meeting the next server. Wait for the CONNECTs (the client's language is known then).
	connected := func() int {
		cz, err := first.Connz(&server.ConnzOptions{})
		if err != nil {
			return 0
		}
		n := 0
		for _, c := range cz.Conns {
			if c.Lang != "" {
				n++
			}
		}
		return n
	}
	for deadline := time.Now().Add(30 * time.Second); connected() < clients; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d processes connected to NATS:\n%s", connected(), clients, logs.String())
		}
	}
	first.Shutdown()
	first.WaitForShutdown()
}

// waitForPull waits until a consumer of srv's JetStream has a pull request waiting: a worker
// started and took its place.
func waitForPull(t *testing.T, srv *natstest.Server, logs *lockedBuffer) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		info, err := srv.Jsz(&server.JSzOptions{Accounts: true, Streams: true, Consumer: true})
		if err == nil {
			for _, a := range info.AccountDetails {
				for _, st := range a.Streams {
					for _, ci := range st.Consumer {
						if ci.NumWaiting > 0 {
							return
						}
					}
				}
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no worker pulls from NATS 30 s after its start (%v):\n%s", err, logs.String())
		}
	}
}

// wantStop waits up to a minute for the process to exit 1 with want in its log.
func (s *serveProc) wantStop(t *testing.T, want string) {
	t.Helper()
	select {
	case err := <-s.exited:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 || !strings.Contains(s.logs.String(), want) {
			t.Errorf("%s ended with %v; want exit 1 naming %q:\n%s", s.cmd.Args[1], err, want, s.logs.String())
		}
		s.exited <- err
	case <-time.After(60 * time.Second):
		t.Fatalf("%s still runs a minute after NATS came back refusing it:\n%s", s.cmd.Args[1], s.logs.String())
	}
}

// serve started during a NATS outage stops cleanly at SIGTERM, whether NATS came back or not:
// its handler of the connection's close read the refusal of a nil error and panicked (exit 2)
// when serve had connected.
func TestServeStartedDuringAnOutageStopsCleanly(t *testing.T) {
	t.Parallel()
	for _, comeBack := range []bool{false, true} {
		t.Run(fmt.Sprint("NATS back: ", comeBack), func(t *testing.T) {
			t.Parallel()
			port := freePort(t)
			s := startServeProc(t, newCLI(t, fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", port)))
			if comeBack {
				natstest.StartWith(t, func(o *server.Options) { o.Port = port })
				for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(200 * time.Millisecond) {
					if code, _ := postPaper(t, s.base, "after-outage-2"); code == http.StatusAccepted {
						break
					}
					if time.Now().After(deadline) {
						t.Fatalf("serve did not connect to NATS once it was back:\n%s", s.logs.String())
					}
				}
			}
			_ = s.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case err := <-s.exited:
				if err != nil || strings.Contains(s.logs.String(), "panic") {
					t.Errorf("serve stopped by SIGTERM: %v\n%s", err, s.logs.String())
				}
				s.exited <- err
			case <-time.After(30 * time.Second):
				t.Fatalf("serve did not stop:\n%s", s.logs.String())
			}
		})
	}
}

// serveProc is a paperpipe process a test started (startPaperpipe).
type serveProc struct {
	cmd    *exec.Cmd
	base   string
	logs   *lockedBuffer
	exited chan error // its end, once
}

// startServeProc runs `paperpipe serve` on a free loopback port with c's environment (see
// startPaperpipe).
func startServeProc(t *testing.T, c *cli) *serveProc {
	t.Helper()
	return startPaperpipe(t, c, "serve", "--http", "127.0.0.1:0")
}

// startPaperpipe runs paperpipe with args and c's environment, its stderr copied to logs,
// until the test ends (SIGTERM, then a kill after 30 s); a serve's base URL is read from it.
func startPaperpipe(t *testing.T, c *cli, args ...string) *serveProc {
	t.Helper()
	s := startProc(t, c, exec.Command(binary, args...))
	if args[0] == "serve" {
		s.base = s.servedURL(t)
	}
	return s
}

// startProc starts cmd (paperpipe, or a shell that execs it) with c's environment, its stderr
// copied to logs, until the test ends (SIGTERM, then a kill after 30 s).
func startProc(t *testing.T, c *cli, cmd *exec.Cmd) *serveProc {
	t.Helper()
	s := &serveProc{cmd: cmd, logs: &lockedBuffer{}, exited: make(chan error, 1)}
	s.cmd.Env = c.env
	// A writer, not StderrPipe: Wait closes a StderrPipe once the process has exited, and the
	// last lines still unread in it were lost — the error line a test then looked for in vain
	// (wantStop). With a writer, Wait returns once the copy of all of stderr is done.
	s.cmd.Stderr = s.logs
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { s.exited <- s.cmd.Wait() }()
	t.Cleanup(func() {
		_ = s.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-s.exited:
		case <-time.After(30 * time.Second):
			_ = s.cmd.Process.Kill()
		}
	})
	return s
}

// servedURL returns the URL a serve process says it listens on; the test fails if none comes
// within a minute.
func (s *serveProc) servedURL(t *testing.T) string {
	t.Helper()
	for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, rest, ok := strings.Cut(s.logs.String(), "on http://"); ok {
			if f := strings.Fields(rest); len(f) > 0 && strings.Contains(rest, "\n") {
				return "http://" + f[0]
			}
		}
		select {
		case err := <-s.exited:
			s.exited <- err
			t.Fatalf("serve ended (%v) before it said where it listens:\n%s", err, s.logs.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("serve did not say where it listens:\n%s", s.logs.String())
		}
	}
}

// While NATS is down, /metrics answers at once (its queue gauges left out), not after the
// timeout of JetStream requests that pile up in the reconnect buffer.
func TestMetricsAnswerAtOnceWhileNATSIsDown(t *testing.T) {
	t.Parallel()
	port := freePort(t) // for the NATS server started later
	base := startServe(t, newCLI(t, fmt.Sprintf("NATS_URL=nats://127.0.0.1:%d", port)))
	start := time.Now()
	if code, body := get(t, base+"/metrics"); code != http.StatusOK || time.Since(start) > 2*time.Second {
		t.Errorf("GET /metrics while NATS is down: %d after %v; want 200 at once\n%.300s", code, time.Since(start), body)
	}
}

// NATS_URL asking for TLS (tls://) from a server without it said "is a NATS server running
// there?": the error says what to change.
func TestTLSURLOfAServerWithoutTLSSaysSo(t *testing.T) {
	t.Parallel()
	srv := natstest.StartWith(t, func(o *server.Options) {})
	r := newCLI(t, "NATS_URL=tls://"+strings.TrimPrefix(srv.ClientURL(), "nats://")).run("status")
	if r.code != 1 || !strings.Contains(r.stderr, "write nats:// instead of tls://") {
		t.Errorf("status with a tls:// NATS_URL of a server without TLS: exit %d, %s; want 1 and what to change", r.code, r.stderr)
	}
}

// A NATS_URL that cannot be reached: the hint to unset it, for the embedded server, fits a
// server on this host only; elsewhere (a Kubernetes service) it would be wrong advice.
func TestUnreachableNATSHintFitsTheAddress(t *testing.T) {
	t.Parallel()
	local := fmt.Sprintf("nats://127.0.0.1:%d", freePort(t))
	for _, tc := range []struct {
		url   string
		unset bool
	}{
		{local, true},
		{"nats://192.0.2.1:4222", false}, // TEST-NET-1: never reachable
	} {
		r := newCLI(t, "NATS_URL="+tc.url).run("status")
		if r.code != 1 || !strings.Contains(r.stderr, "connect to NATS") {
			t.Errorf("status with NATS_URL=%s: exit %d, %s; want 1 and the connection's failure", tc.url, r.code, r.stderr)
			continue
		}
		if got := strings.Contains(r.stderr, "unset NATS_URL"); got != tc.unset {
			t.Errorf("status with NATS_URL=%s: %s; want the advice to unset NATS_URL: %v", tc.url, r.stderr, tc.unset)
		}
	}
}

// An address another process listens on stopped serve (and up, and worker --metrics) with
// "bind: address already in use" alone: the error says another process listens there and
// which flag and variable give this one another address.
func TestAddressInUseNamesTheSetting(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	addr := ln.Addr().String()
	c := newCLI(t)
	for _, tc := range []struct {
		args      []string
		flag, env string
	}{
		{[]string{"serve", "--http", addr}, "--http", "PAPERPIPE_HTTP_ADDR"},
		{[]string{"worker", "--metrics", addr}, "--metrics", "PAPERPIPE_METRICS_ADDR"},
	} {
		r := c.run(tc.args...)
		if r.code != 1 {
			t.Errorf("%v on an address in use: exit %d, %s; want 1", tc.args, r.code, r.stderr)
		}
		for _, want := range []string{"another process listens on " + addr, tc.flag, tc.env} {
			if !strings.Contains(r.stderr, want) {
				t.Errorf("%v on an address in use: %s; want it to say %q", tc.args, r.stderr, want)
			}
		}
	}
}

// A hangup (the terminal of `paperpipe serve &` or `worker &` closed: an ssh session that ends)
// killed the process outright, with no drain: a worker's held messages were not handed back nor
// its paid results saved. It stops as SIGTERM does now — but not under nohup, which starts the
// process with SIGHUP ignored: asking Go for SIGHUP there would have it stop at the hangup it
// was started to outlive.
func TestHangupStopsGracefullyUnlessIgnored(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	s := startServeProc(t, c)
	_ = s.cmd.Process.Signal(syscall.SIGHUP)
	select {
	case err := <-s.exited:
		if err != nil {
			t.Errorf("serve after a hangup: %v, want a graceful stop, exit 0:\n%s", err, s.logs.String())
		}
		s.exited <- err
	case <-time.After(30 * time.Second):
		t.Fatalf("serve still runs 30 s after a hangup:\n%s", s.logs.String())
	}

	// As nohup starts it: SIGHUP ignored, inherited across exec.
	n := startProc(t, c, exec.Command("sh", "-c", `trap "" HUP; exec "$0" serve --http 127.0.0.1:0`, binary))
	base := n.servedURL(t)
	_ = n.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(time.Second) // what a stop would have begun by now
	select {
	case err := <-n.exited:
		t.Fatalf("serve started with SIGHUP ignored (nohup) stopped at a hangup: %v\n%s", err, n.logs.String())
	default:
	}
	resp, err := http.Get(base + "/healthz")
	if err != nil {
		t.Fatalf("serve started with SIGHUP ignored, after a hangup: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Errorf("serve started with SIGHUP ignored, after a hangup: /healthz %d", resp.StatusCode)
	}
}

// A process started with SIGINT ignored — a job a shell without job control runs in the
// background (`paperpipe worker &` in a script), which gets its stop from Ctrl-C all the same,
// since Go hands it the SIGINT it asks for — ended 1 s late after a stop: exit sent itself the
// SIGINT to end by it, which the restored disposition ignored, waited a second for it, and
// then exited 130. A signal ignored since the start is not sent: exit 130 at once.
func TestExitDoesNotResendASignalIgnoredSinceTheStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		trap, want string
	}{
		{"", "true 2"},              // SIGINT as usual: the process ends by it
		{`trap "" INT;`, "false 0"}, // ignored since the start: the status 130 only
	} {
		cmd := exec.Command("sh", "-c", tc.trap+` exec "$0" -test.run=^$`, os.Args[0])
		cmd.Env = append(os.Environ(), "PAPERPIPE_TEST_EXIT_SIGNAL=1")
		out, err := cmd.CombinedOutput()
		if got := strings.TrimSpace(string(out)); err != nil || got != tc.want {
			t.Errorf("with %q: exit signal (resent, number) %q, %v; want %q", tc.trap, got, err, tc.want)
		}
	}
}
