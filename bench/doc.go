// Package bench measures paperpipe on its real code paths: the worker (pipeline.NewWorker) with
// the OpenAI-compatible clients (summarize.New, embed.New) pointed at the in-repo fake API run
// as its own process (cmd/openai-fake), or with the offline models; the publisher
// (pipeline.NewPublisher) on an embedded NATS JetStream server (pipeline.StartEmbedded); and the
// store (store.Open) on a dedicated PostgreSQL database.
//
// It has three scenarios — pipeline throughput against its Little's-law bound, related-papers
// and search latency and recall on HNSW, re-processing and bulk loading — and writes each run
// as JSON plus a markdown summary with an SVG chart of throughput against concurrency
// (see Report). The command bench/cmd/paperbench runs them; `make bench` calls it.
package bench
