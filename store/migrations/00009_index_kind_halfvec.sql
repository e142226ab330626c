-- +goose Up
-- 'hnsw-halfvec': an HNSW index on half-precision copies of a space's vectors (halfvec; up to
-- 4,000 dimensions), ordered by the half-precision distance, results ranked by the exact one.
ALTER TABLE embedding_spaces DROP CONSTRAINT embedding_spaces_index_kind_check,
    ADD CONSTRAINT embedding_spaces_index_kind_check CHECK (index_kind IN ('hnsw', 'hnsw-binary', 'hnsw-halfvec'));

-- +goose Down
-- A space indexed as 'hnsw-halfvec' becomes 'hnsw': above 2,000 dimensions its index is the one
-- 'hnsw' builds; at or below, 'hnsw' indexes vector, and its queries scan every vector until
-- `paperpipe spaces reindex SPACE --index hnsw` rebuilds the index.
UPDATE embedding_spaces SET index_kind = 'hnsw' WHERE index_kind = 'hnsw-halfvec';
ALTER TABLE embedding_spaces DROP CONSTRAINT embedding_spaces_index_kind_check,
    ADD CONSTRAINT embedding_spaces_index_kind_check CHECK (index_kind IN ('hnsw', 'hnsw-binary'));
