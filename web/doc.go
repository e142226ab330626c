// Package web serves paperpipe's reading and search surfaces over HTTP: a JSON API described
// by an OpenAPI document (served at /api/openapi.json), a server-rendered HTML UI that works
// without JavaScript (front page, paper pages with related papers, search, status, and a map
// of the archive), health and readiness probes, and Prometheus metrics.
//
// The package imports only paper, internal/metrics, embed (for the message of a paper the
// active space has no vector of) and summarize (the language of a TL;DR, and the offline
// summarizer's model name, which lists of papers show). It declares what it needs from the rest of paperpipe as small
// interfaces (Store, QueryEmbedder, Publisher, StatusProvider) that cmd/paperpipe implements
// with the store, the embedder and the JetStream publisher.
//
// Search has three modes: keyword (PostgreSQL full-text search, no embedding API involved),
// semantic (nearest neighbours of the query's embedding in the active space) and hybrid (both,
// fused by reciprocal rank fusion in the database). Query embeddings are cached in a bounded
// LRU keyed by embedding space and text, so a repeated search makes no API call.
//
// All HTML goes through html/template, and pages carry a Content-Security-Policy that allows
// no script at all.
//
// Other sites' pages are kept out: a request under a host name the server does not answer to
// (DNS rebinding; see Config.AllowedHosts) gets 421, a browser's cross-site or same-site request
// other than a top-level navigation (for a search, one the user made) gets 403, and a cross-origin write 403.
package web
