package main

import (
	"encoding/json"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
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
				`paperpipe_queue_messages{consumer="workers",state="pending"} 0`} {
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
