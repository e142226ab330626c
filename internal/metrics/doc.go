// Package metrics holds paperpipe's Prometheus collectors and the small decorators that feed
// them: work processed and failed per pipeline stage, tokens by model, the latency of every
// call to the model API (through an http.RoundTripper) and of every HTTP request paperpipe
// serves, search latency by mode, the query-embedding cache, and the queue backlog, read from
// JetStream when Prometheus scrapes.
//
// One Metrics value owns one registry; cmd/paperpipe creates it and hands it to the worker's
// decorators, the API clients' transport and the web server, which serves it at /metrics.
package metrics
