// Package chaos runs paperpipe's chaos cases: real processes — paperpipe workers, the
// OpenAI-compatible fake (cmd/openai-fake) with injected faults, a nats-server with file
// storage, PostgreSQL — with one of them killed, restarted or misbehaving mid-run, and checks
// from the outside that nothing was lost, nothing stored twice and nothing paid twice.
//
// Each run ends with one line:
//
//	in=… stored=… dead=… duplicates=… tldrs_paid=… embeddings_paid=… requests=… [lost_in_kill=…]
//
// where in is the number of distinct abstracts published; stored the papers with both a TL;DR
// (of the run's model and prompt version, for their current text) and an embedding; dead the
// papers in the dead-letter stream; tldrs_paid and embeddings_paid what the fake delivered —
// complete, valid 200 answers, what a provider bills — as chat completions and as embedding
// vectors; requests the HTTP requests the fake received (failed ones included). duplicates
// counts results paid more than once for the same input: a chat completion delivered again for
// a request (model and messages) already answered, or a vector delivered again for an input
// (model, dimensions and text) already embedded — minus, in a kill case, the one re-purchase
// of each result the killed worker had received but not yet stored (lost_in_kill): a process
// killed with -9 between receiving an answer and committing it takes the answer with it, and
// buying it again is the only way to finish the paper. A stricter TL;DR retry after an invalid
// answer is a different request, so it counts in tldrs_paid but is not a duplicate.
//
// The cases hold when stored + dead = in, with every paper in exactly one of the two;
// duplicates = 0; dead = 0 when every fault was transient; and tldrs_paid and embeddings_paid
// ≤ 1.05 × in.
package chaos
