// Package pipeline carries abstracts from sources to the store over NATS JetStream.
//
// A Publisher puts abstracts on the PAPERS stream (subject papers.new, or papers.reprocess for
// archive re-processing) with a Nats-Msg-Id derived from the paper's id, its content hash and
// a hash of its metadata (MsgID), so the server drops a repeated ingest. A Worker pulls from a durable consumer in micro-batches,
// records each paper, asks the Summarizer and Embedder only for what is not already stored for
// the same content, model and prompt version, stores each result as soon as it arrives, and
// acknowledges a message only after everything it needed is committed. Transient failures are
// retried with NakWithDelay; permanent ones are terminated and copied to the dead-letter
// stream with their reason. Every message a worker holds is marked InProgress until it is
// settled, and the API work for one message is bounded below the consumer's AckWait, so no
// two workers ever pay for one message at once. A message the server gives up on because the
// worker holding its last delivery died is found (advisory, sweep), dead-lettered and removed
// from the work queue.
//
// The package declares the interfaces it needs (Summarizer, Embedder, Store); cmd/paperpipe
// wires the concrete implementations in.
package pipeline
