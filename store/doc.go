// Package store keeps paperpipe's state in PostgreSQL with pgvector: papers, their TL;DRs per
// (model, prompt version), their embeddings per embedding space, and the API usage ledger.
//
// The store is the ledger of done work: every TL;DR and embedding records the content hash of
// the text it was made from, so UpsertPapers can tell the worker exactly what still needs an
// API call, and a result made from an older version of a paper is never saved over a newer one.
//
// Schema changes are versioned SQL migrations embedded in the binary (migrations/*.sql, applied
// with goose by Migrate). Each embedding space has its own partial HNSW index on the shared
// embeddings table, created by EnsureSpace (or BuildSpaceIndex after a bulk load) and of the
// kind the space was created with (IndexKind): on the vectors, cosine distance (halfvec above
// 2,000 dimensions), on their half-precision copies, or on their binary codes, Hamming distance,
// with the candidates re-ranked by exact cosine distance. Related and Search repeat the index's
// expression and predicate so the planner uses it.
//
// Errors: a missing paper or space is paper.ErrNotFound, bad input paper.ErrInvalid, a vector of
// the wrong dimension paper.ErrSpaceMismatch, and a title fragment matching several papers
// paper.ErrAmbiguous; match them with errors.Is. The calls a worker makes (UpsertPapers or
// PendingFor, SaveSummaries, SaveEmbeddings, RecordUsage), and the batch ledger's calls a Batch
// API run makes (StalePapers, ClaimBatchJob, BatchJobs, BatchJobItems, BatchItemsOf,
// LockBatchJob, UpdateBatchJob, RecordBatchUpload, FinishBatchJob), and the reads the web
// surfaces make (Paper, Summaries, Resolve, List, ListFiltered, Related, EmbeddedIn, Search,
// KeywordSearchRanked, SemanticSearch, HybridSearchRanked, MapPoints, ActiveSpace), mark a
// database that could not be reached or could not write, whatever the records, with
// paper.ErrUnavailable; UpsertPapers, SaveSummaries and
// SaveEmbeddings (and LoadEmbeddings) wait for a row another session holds locked for
// Config.RowLockTimeout at most, then fail with paper.ErrLocked (a save with a
// *paper.LockedError naming the papers).
package store
