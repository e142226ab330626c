// Package paper holds paperpipe's domain types: the abstract that flows through the pipeline,
// the TL;DR and embedding made from it, the embedding space a vector lives in, search hits,
// canonical identifiers, content hashes and the sentinel errors every other package shares.
//
// It imports only the standard library and golang.org/x/text (the NFKC normalisation of
// TitleID), so every package may depend on it.
package paper
