package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"time"

	"github.com/paperpipe/paperpipe/internal/openaitest"
)

// FakeAPI is cmd/openai-fake running as its own process, so that its CPU time is not counted
// as paperpipe's.
type FakeAPI struct {
	cmd  *exec.Cmd
	URL  string // base URL, ending in /v1
	root string
}

// StartFake starts the openai-fake binary bin on a free loopback port with the given latencies,
// embedding size and kind of vectors (openaitest.VectorsText or VectorsRandom; "" for the
// fake's default, text), and waits for it to print its URL.
func StartFake(ctx context.Context, bin string, chat, embed time.Duration, dims int, vectors string) (*FakeAPI, error) {
	if vectors == "" {
		vectors = openaitest.VectorsText
	}
	// The fake advertises a large account (x-ratelimit-* headers) so that the worker's rate
	// limiter, which honours them, does not make the API's budget the bound; cases with a
	// budget set PAPERPIPE_RPM-style limits in the client instead. It checks the first 100
	// requests and answers of each endpoint against OpenAI's published description and then
	// one in 50 (-validate-every): checking every body cost it about as much CPU as answering,
	// on the cores paperpipe is measured on; a case fails on any violation (specViolations).
	cmd := exec.Command(bin, "-listen", "127.0.0.1:0", "-validate-every", "50", "-chat-latency", chat.String(),
		"-embed-latency", embed.String(), "-dimensions", fmt.Sprint(dims), "-vectors", vectors,
		"-chat-rpm", "1000000000", "-chat-tpm", "1000000000000", "-embed-rpm", "1000000000", "-embed-tpm", "1000000000000")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start fake API: %w", err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start fake API %s: %w", bin, err)
	}
	line := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		if sc.Scan() {
			line <- strings.TrimSpace(sc.Text())
		}
		close(line)
		for sc.Scan() {
		}
	}()
	select {
	case u, ok := <-line:
		if !ok || !strings.HasSuffix(u, "/v1") {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
			return nil, fmt.Errorf("fake API printed %q, want its base URL", u)
		}
		return &FakeAPI{cmd: cmd, URL: u, root: strings.TrimSuffix(u, "/v1")}, nil
	case <-time.After(30 * time.Second):
	case <-ctx.Done():
	}
	_ = cmd.Process.Kill()
	_ = cmd.Wait()
	return nil, fmt.Errorf("fake API did not start")
}

// PID is the fake's process id.
func (f *FakeAPI) PID() int { return f.cmd.Process.Pid }

// Stats reads the fake's request counters.
func (f *FakeAPI) Stats(ctx context.Context) (openaitest.Stats, error) {
	var st openaitest.Stats
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, f.root+"/_stats", nil)
	if err != nil {
		return st, fmt.Errorf("fake stats: %w", err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return st, fmt.Errorf("fake stats: %w", err)
	}
	defer resp.Body.Close()
	if err := json.NewDecoder(resp.Body).Decode(&st); err != nil {
		return st, fmt.Errorf("fake stats: %w", err)
	}
	return st, nil
}

// Stop ends the fake with SIGTERM and waits for it.
func (f *FakeAPI) Stop() {
	_ = f.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { _ = f.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
		_ = f.cmd.Process.Kill()
		<-done
	}
}
