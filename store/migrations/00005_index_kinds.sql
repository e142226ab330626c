-- +goose Up
-- index_kind: how a space's vectors are indexed, chosen when the space is created and changed
-- only by `paperpipe spaces reindex` (queries are written for it, and processes cache it). 'hnsw' is an HNSW index on the vectors themselves
-- (halfvec above 2,000 dimensions, none above 4,000); 'hnsw-binary' is an HNSW index on their
-- binary codes (binary_quantize: one bit per dimension, Hamming distance) whose candidates are
-- re-ranked by exact cosine distance. Spaces made before this migration keep 'hnsw'.
ALTER TABLE embedding_spaces
    ADD COLUMN index_kind text NOT NULL DEFAULT 'hnsw'
    CONSTRAINT embedding_spaces_index_kind_check CHECK (index_kind IN ('hnsw', 'hnsw-binary'));

-- +goose Down
ALTER TABLE embedding_spaces DROP COLUMN index_kind;
