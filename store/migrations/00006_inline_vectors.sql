-- +goose Up
-- Keep vectors in the row instead of TOAST. pgvector's types have storage EXTERNAL, so a row
-- above ~2 kB (a vector of more than ~500 dimensions) has its vector moved to the TOAST table,
-- and every read of it — the exact cosine re-ranking of an hnsw-binary query's candidates, an
-- exact scan, a related-papers lookup of the paper's own vector — is a TOAST index lookup plus
-- two chunk fetches. With the target at its maximum a row is toasted only when it does not fit
-- a page at all (above ~2,000 dimensions as vector). Measured on 100k rows of 768 dimensions:
-- re-ranking 200 candidates, p50 12.4 → 7.9 ms and p99 16.3 → 11.7 ms; an exact top-10 scan
-- 520–580 → 105–115 ms; inserts ~25% cheaper; the same bytes on disk (the heap grows by what
-- the TOAST table no longer holds). Rows written before this migration keep their TOAST
-- pointers until they are written again.
ALTER TABLE embeddings SET (toast_tuple_target = 8160);

-- +goose Down
ALTER TABLE embeddings RESET (toast_tuple_target);
