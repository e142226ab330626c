-- +goose Up
-- withheld_tldrs: the TL;DRs the API will not give for a paper's text — its content filter
-- withheld the answer (finish_reason content_filter) or the model refused (message.refusal) —
-- recorded by `reprocess --batch-api`, with why and when. A paper whose row matches the target
-- (model, prompt version) and its stored text (content_hash) is not stale for that target: each
-- run bought the same refusal again. A new text or prompt version is asked for as before;
-- `paperpipe batches withheld` lists the rows and `--clear` deletes them. A new table: no lock
-- on the others.
CREATE TABLE withheld_tldrs (
    paper_id       text NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    model          text NOT NULL,
    prompt_version text NOT NULL,
    content_hash   text NOT NULL,
    reason         text NOT NULL,
    withheld_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (paper_id, model, prompt_version)
);

-- +goose Down
DROP TABLE withheld_tldrs;
