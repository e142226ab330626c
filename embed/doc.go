// Package embed turns papers into embedding vectors.
//
// Two embedders satisfy the pipeline's Embedder interface: Client, which asks an
// OpenAI-compatible embeddings API in batches sized by input count and estimated tokens, and
// Offline, the built-in lexical embedder (stemmed, IDF-weighted terms hashed into 768
// dimensions), which needs no API. Each names its embedding space (paper.Space): model,
// dimensions and the input template that turns a paper into text (template.go).
package embed
