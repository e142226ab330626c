package web_test

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/paperpipe/paperpipe/web"
)

// TestPostWhoseBodyOutlastsTheReadTimeoutIsA408: a post whose body has not arrived when the
// server's ReadTimeout ends (a large batch over a slow link) was answered 400 "could not read
// the body", which tells the client its request is malformed and not to send it again as it is.
// It is a 408 that says the body did not arrive in time.
func TestPostWhoseBodyOutlastsTheReadTimeoutIsA408(t *testing.T) {
	t.Parallel()
	b := newBundle(t)
	cfg := b.config()
	cfg.ReadTimeout = 300 * time.Millisecond
	w, err := web.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	addrc := make(chan string, 1)
	go w.ListenAndServe(ctx, "127.0.0.1:0", func(a net.Addr) { addrc <- a.String() })
	conn, err := net.Dial("tcp", <-addrc)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	// The headers and the start of the body; the rest never comes.
	io.WriteString(conn, "POST /api/papers HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n"+
		`[{"title": "Mixtral of Experts", "abstract": "We introduce`)
	conn.SetReadDeadline(time.Now().Add(30 * time.Second)) // the test fails, not hangs
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var e struct {
		Error  string `json:"error"`
		Status int    `json:"status"`
	}
	body, _ := io.ReadAll(resp.Body)
	if err := json.Unmarshal(body, &e); err != nil || resp.StatusCode != http.StatusRequestTimeout || e.Status != http.StatusRequestTimeout ||
		!strings.Contains(e.Error, "did not arrive") {
		t.Errorf("a body that outlasts the read timeout: %d %s; want 408 saying the body did not arrive in time", resp.StatusCode, body)
	}
}
