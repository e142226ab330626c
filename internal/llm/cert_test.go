package llm

import (
	"context"
	"crypto/x509"
	"errors"
	"io"
	"log"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/paper"
)

// TestUntrustedCertificateIsAnAccountError: an API whose TLS certificate this machine does not
// trust (a private CA not in the system's bundle, a proxy that intercepts TLS, a certificate
// for another host) gets the same answer at every attempt and for every paper. It was retried
// as a transient failure, 6 attempts per call, and the worker used up every message's
// deliveries: the backlog was dead-lettered. Do returns it at once with ErrAccount, which a
// worker pauses on, saying what is wrong and what to do.
func TestUntrustedCertificateIsAnAccountError(t *testing.T) {
	t.Parallel()
	// The system's CAs load on a client's first verification: under -race on a busy machine
	// that took longer than fastRetrier's 1 s attempt, whose timeout was then retried (2 calls).
	if _, err := x509.SystemCertPool(); err != nil {
		t.Logf("system CAs: %v", err)
	}
	ts := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	defer ts.Close()
	addr := strings.TrimPrefix(ts.URL, "https://")
	port := addr[strings.LastIndex(addr, ":"):]
	for _, tc := range []struct {
		name   string
		client *http.Client
		url    string
		want   []string
	}{
		// The system's CAs only: the test server's CA is unknown, as a private one is.
		{"unknown authority", &http.Client{}, ts.URL, []string{"unknown authority", "SSL_CERT_FILE", "SSL_CERT_DIR"}},
		// Its CA trusted, but the certificate is for 127.0.0.1 and example.com only.
		{"another host's certificate", ts.Client(), "https://localhost" + port, []string{"localhost", "host name"}},
		// https:// to a server that speaks plain HTTP.
		{"no TLS", &http.Client{}, "https://" + plainAddr(t), []string{"http://"}},
	} {
		calls := 0
		_, err := fastRetrier(5).Do(context.Background(), 1, func(ctx context.Context) error {
			calls++
			req, _ := http.NewRequestWithContext(ctx, http.MethodGet, tc.url+"/v1/models", nil)
			resp, err := tc.client.Do(req)
			if err == nil {
				resp.Body.Close()
			}
			return err
		})
		if calls != 1 || !errors.Is(err, ErrAccount) || !errors.Is(err, ErrTLS) || errors.Is(err, paper.ErrPermanent) || Classify(err) != Account {
			t.Errorf("%s: calls %d, err %v; want one call and ErrTLS with ErrAccount", tc.name, calls, err)
			continue
		}
		msg := err.Error()
		for _, w := range tc.want {
			if !strings.Contains(msg, w) {
				t.Errorf("%s: message %q does not say %q", tc.name, msg, w)
			}
		}
		if strings.Contains(msg, ErrAccount.Error()) {
			t.Errorf("%s: message %q says the API refuses the account: it never answered", tc.name, msg)
		}
	}
}

// plainAddr is the address of a server that speaks plain HTTP.
func plainAddr(t *testing.T) string {
	t.Helper()
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	t.Cleanup(ts.Close)
	return strings.TrimPrefix(ts.URL, "http://")
}

// TestExpiredCertificateHint: a certificate that has expired (or is not valid yet: a clock that
// is wrong) is said to be so, not as an unknown CA.
func TestExpiredCertificateHint(t *testing.T) {
	t.Parallel()
	err := x509.CertificateInvalidError{Reason: x509.Expired, Detail: "current time 2030-01-01T00:00:00Z is after 2029-01-01T00:00:00Z"}
	if Classify(err) != Account {
		t.Errorf("Classify(expired) = %v, want Account", Classify(err))
	}
	_, got := Retrier{MaxRetries: 3, BaseDelay: time.Millisecond}.Do(context.Background(), 1, func(context.Context) error { return err })
	if got == nil || !strings.Contains(got.Error(), "expired") || !strings.Contains(got.Error(), "clock") {
		t.Errorf("err %v: want it to say the certificate expired and to check the clock", got)
	}
}

// TestPlainHTTPToATLSServerIsAnAccountError: a base URL of http:// to a server that speaks only
// TLS gets a 400 for every request ("Client sent an HTTP request to an HTTPS server.", nginx's
// "The plain HTTP request was sent to HTTPS port"), which was taken for a rejection of the
// paper (Permanent): every paper of the backlog was dead-lettered at its first delivery. It is
// the configuration's problem (ErrTLS with ErrAccount), and the message says to write https://.
func TestPlainHTTPToATLSServerIsAnAccountError(t *testing.T) {
	t.Parallel()
	ts := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {}))
	ts.Config.ErrorLog = log.New(io.Discard, "", 0)
	ts.StartTLS()
	defer ts.Close()
	oc := openai.DefaultConfig("sk-test")
	oc.BaseURL = "http://" + strings.TrimPrefix(ts.URL, "https://") + "/v1"
	c := openai.NewClientWithConfig(oc)
	calls := 0
	_, err := fastRetrier(5).Do(context.Background(), 1, func(ctx context.Context) error {
		calls++
		_, err := c.CreateChatCompletion(ctx, openai.ChatCompletionRequest{Model: "m",
			Messages: []openai.ChatCompletionMessage{{Role: openai.ChatMessageRoleUser, Content: "x"}}})
		return err
	})
	if calls != 1 || !errors.Is(err, ErrTLS) || !errors.Is(err, ErrAccount) || errors.Is(err, paper.ErrPermanent) {
		t.Fatalf("calls %d, err %v; want one call and ErrTLS with ErrAccount, not a permanent failure", calls, err)
	}
	if !strings.Contains(err.Error(), "write https://") {
		t.Errorf("message %q does not say to write https://", err)
	}
	nginx := &openai.APIError{HTTPStatusCode: 400, Message: "an HTML page: 400 The plain HTTP request was sent to HTTPS port"}
	if Classify(nginx) != Account {
		t.Errorf("nginx's answer to plain HTTP on its TLS port: Classify = %v, want Account", Classify(nginx))
	}
}
