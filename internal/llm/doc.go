// Package llm holds the plumbing that paperpipe's OpenAI-compatible clients (summarize and
// embed) share: a client-side rate limiter fed by the API's rate-limit headers, an
// http.RoundTripper that feeds it, a retry loop with exponential backoff and full jitter, the
// classification of errors into rate-limited, transient and permanent, and a conservative
// token estimate used for batching and truncation.
package llm
