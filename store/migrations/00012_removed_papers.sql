-- +goose Up
-- removed_papers: the papers `paperpipe remove` took out of the archive, with when. A worker
-- does not store a message of such a paper whose text is dated (by the queue) no later than
-- its removal: a message queued, in flight, dead-lettered and replayed, or in an open Batch
-- API job before the removal does not bring it back, while the paper ingested again afterwards
-- does, and its row here goes. A new table: no lock on the others.
CREATE TABLE removed_papers (
    id         text PRIMARY KEY,
    removed_at timestamptz NOT NULL
);

-- +goose Down
DROP TABLE removed_papers;
