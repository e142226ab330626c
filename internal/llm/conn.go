package llm

import (
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"
)

// Conn is the connection part of an OpenAI-compatible client's configuration, the same for the
// summarize and embed clients: where the API is, its key, and how calls are retried and
// rate-limited. Fields mean what the clients' Config fields of the same names document; Open
// expects their defaults filled in.
type Conn struct {
	BaseURL    string
	APIKey     string
	MaxRetries int
	Timeout    time.Duration
	Limiter    *Limiter
	HTTPClient *http.Client
	Logger     *slog.Logger
}

// Validate checks the connection fields; errors start with what ("summarize config").
func (c Conn) Validate(what string) error {
	u, err := url.Parse(c.BaseURL)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "":
		return fmt.Errorf("%s: BaseURL %q is not an http(s) URL", what, c.BaseURL)
	case c.Timeout < 0:
		return fmt.Errorf("%s: Timeout is %v, want > 0", what, c.Timeout)
	}
	return nil
}

// Open returns a go-openai client for the API, whose HTTP client feeds the Limiter from every
// response, and the Retrier its calls go through. baseURL is BaseURL without a trailing slash,
// for log lines.
func (c Conn) Open() (api *openai.Client, retry Retrier, baseURL string) {
	oc := openai.DefaultConfig(c.APIKey)
	oc.BaseURL = strings.TrimRight(c.BaseURL, "/")
	oc.HTTPClient = HTTPClient(c.HTTPClient, c.Limiter)
	retry = Retrier{MaxRetries: c.MaxRetries, Timeout: c.Timeout, Limiter: c.Limiter, Logger: c.Logger, APIKey: c.APIKey}
	return openai.NewClientWithConfig(oc), retry, oc.BaseURL
}
