package llm

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/redact"
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
	// Unusable is the Retrier's Unusable: called with the reason of each answer with a success
	// status that could not be used.
	Unusable func(reason string)
}

// Validate checks the connection fields; errors start with what ("summarize config").
func (c Conn) Validate(what string) error {
	if err := CheckBaseURL(c.BaseURL); err != nil {
		return fmt.Errorf("%s: BaseURL %w", what, err)
	}
	if c.Timeout < 0 {
		return fmt.Errorf("%s: Timeout is %v, want > 0", what, c.Timeout)
	}
	return nil
}

// CheckBaseURL checks an OpenAI-compatible API's base URL: an http(s) URL with a host, and
// neither a query nor a fragment, which go-openai would put in the middle of every request's
// URL (it appends the endpoint's path to the base URL as a string: …/v1?api_key=K/chat/completions
// asks /v1 with the query "api_key=K/chat/completions"). The shapes of URL users paste that
// are not a base URL are refused with the one to write instead: one without a scheme
// (localhost:11434, which url.Parse takes for the scheme "localhost"), an endpoint's own URL
// (…/v1/chat/completions from a curl line, to which every request's path was appended: 404),
// and an Azure OpenAI deployment's URL (…/openai/deployments/NAME, whose API wants an
// api-version query and an api-key header: 404 or 401 on every request), for which Azure's
// v1 API, https://RESOURCE.openai.azure.com/openai/v1, takes OpenAI's requests. Its error,
// which follows "BaseURL" or a variable's name, shows the URL with its secrets masked
// (redact.URL): a password of its userinfo or a credential in its query is never printed, nor
// a value without a dot, a colon or a slash (but localhost), which is no base URL but may be
// an API key.
func CheckBaseURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		if !strings.Contains(raw, "://") && !strings.ContainsAny(raw, ".:/") && !strings.EqualFold(raw, "localhost") {
			// No host name of a network, no port, no path: a base URL has one of them, an API
			// key (the other variable's value, or pasted here by mistake) none, and the
			// message goes to logs.
			return errors.New("is not an http(s) URL, and is not shown: it has no scheme, no dot, no port and no path " +
				"(an API key in the wrong variable?); write the API's base URL, such as https://api.openai.com/v1 or http://localhost:11434/v1")
		}
		if w, err := url.Parse("http://" + raw); !strings.Contains(raw, "://") && err == nil && w.Host != "" && !strings.ContainsAny(raw, " \t") {
			note := ""
			if w.Path == "" || w.Path == "/" {
				w.Path = "/v1"
				note = " (most servers' API is under /v1; Ollama's, vLLM's and OpenAI's are)"
			}
			return fmt.Errorf("%q has no scheme: write %q%s", shownBaseURL(raw), shownBaseURL(w.String()), note)
		}
		return fmt.Errorf("%q is not an http(s) URL", shownBaseURL(raw))
	}
	path := strings.TrimRight(u.Path, "/")
	if i := strings.Index(strings.ToLower(path), "/openai/deployments/"); i >= 0 {
		w := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: path[:i] + "/openai/v1"}
		return fmt.Errorf("%q is an Azure OpenAI deployment's URL, whose API takes other requests: write %q (Azure's v1 API) "+
			"and the deployment's name as the model", shownBaseURL(raw), shownBaseURL(w.String()))
	}
	if u.RawQuery != "" || u.ForceQuery || strings.Contains(raw, "#") {
		return fmt.Errorf("%q has a query or a fragment, which would end up inside every request's URL: "+
			"give the API's address only (an API key is the API key's setting, not part of the URL)", shownBaseURL(raw))
	}
	for _, endpoint := range []string{"/completions", "/embeddings"} {
		if strings.HasSuffix(path, endpoint) {
			base := strings.TrimSuffix(path, endpoint)
			base = strings.TrimSuffix(base, "/chat")
			w := url.URL{Scheme: u.Scheme, User: u.User, Host: u.Host, Path: base}
			return fmt.Errorf("%q is the URL of an endpoint, whose path is added to the base URL of every request: write %q",
				shownBaseURL(raw), shownBaseURL(w.String()))
		}
	}
	return nil
}

// shownBaseURL is a refused base URL as its error shows it: redact.URL, and a fragment,
// which redact.URL keeps, masked as well.
func shownBaseURL(raw string) string {
	s := redact.URL(raw)
	if before, _, ok := strings.Cut(s, "#"); ok {
		s = before + "#" + redact.Mask
	}
	return s
}

// BaseURLForLog is a base URL as log lines show it: without a trailing slash, its secrets
// masked (redact.URL).
func BaseURLForLog(raw string) string { return redact.URL(strings.TrimRight(raw, "/")) }

// APIClient returns the HTTP client for a go-openai client of the API: HTTPClient(c, l), whose
// errors show the request's URL with its secrets masked. net/http's errors carry the URL
// (Post "https://TOKEN@host/v1/chat/completions": dial tcp …), and only a password would be
// hidden: a token given as the user name of the base URL would reach every log line and error
// message of a failed call. A success with an HTML body is returned as its error, naming the
// page (see pageAnswerError).
func APIClient(c *http.Client, l *Limiter) openai.HTTPDoer { return redactingClient{HTTPClient(c, l)} }

type redactingClient struct{ c *http.Client }

func (r redactingClient) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.c.Do(req)
	var ue *url.Error
	if errors.As(err, &ue) {
		ue.URL = redact.URL(ue.URL)
	}
	if err == nil {
		if perr := pageAnswer(resp); perr != nil {
			return nil, perr
		}
	}
	return resp, err
}

// Open returns a go-openai client for the API, whose HTTP client feeds the Limiter from every
// response and masks the secrets of the URLs in its errors (APIClient), and the Retrier its
// calls go through. baseURL is BaseURL for log lines (BaseURLForLog).
func (c Conn) Open() (api *openai.Client, retry Retrier, baseURL string) {
	oc := openai.DefaultConfig(c.APIKey)
	oc.BaseURL = strings.TrimRight(c.BaseURL, "/")
	oc.HTTPClient = APIClient(c.HTTPClient, c.Limiter)
	retry = Retrier{MaxRetries: c.MaxRetries, Timeout: c.Timeout, Limiter: c.Limiter, Logger: c.Logger, APIKey: c.APIKey,
		BaseURL: c.BaseURL, Unusable: c.Unusable}
	return openai.NewClientWithConfig(oc), retry, BaseURLForLog(c.BaseURL)
}

// UnusableAt returns f for answers of endpoint, as Conn.Unusable takes it; nil when f is nil.
func UnusableAt(f func(endpoint, reason string), endpoint string) func(reason string) {
	if f == nil {
		return nil
	}
	return func(reason string) { f(endpoint, reason) }
}
