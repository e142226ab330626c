-- +goose Up
-- text_at: when the stored text was read from its source — the time the queue stored the message
-- that brought it. A worker writes a message's text only when it is not older than the stored
-- one, so a redelivered message of a paper's previous version, processed after the newer one,
-- cannot put the old text back. Rows from before this migration have no known time: any text
-- may replace theirs, as before.
ALTER TABLE papers ADD COLUMN text_at timestamptz NOT NULL DEFAULT '-infinity';

-- +goose Down
ALTER TABLE papers DROP COLUMN text_at;
