-- +goose Up
-- batch_jobs: one OpenAI Batch API job (TL;DRs or embeddings for one target). The row and its
-- items are written before anything is uploaded, so a restarted `paperpipe reprocess --batch-api`
-- finds every job it started and resumes it (upload, create, poll, collect) instead of paying
-- for the same papers again. status: preparing (items recorded; file not uploaded or batch not
-- created yet), submitted (the OpenAI batch exists), done (its results are stored), failed (the
-- batch failed, expired or was cancelled; whatever results came back are stored).
CREATE TABLE batch_jobs (
    id              bigserial PRIMARY KEY,
    openai_batch_id text UNIQUE,
    kind            text NOT NULL CHECK (kind IN ('chat', 'embedding')),
    target          text NOT NULL,
    model           text NOT NULL,
    prompt_version  text NOT NULL DEFAULT '',
    space_id        bigint REFERENCES embedding_spaces (id) ON DELETE CASCADE,
    input_file_id   text,
    output_file_id  text,
    error_file_id   text,
    status          text NOT NULL DEFAULT 'preparing'
        CHECK (status IN ('preparing', 'submitted', 'done', 'failed')),
    openai_status   text NOT NULL DEFAULT '',
    total           int NOT NULL DEFAULT 0,
    completed       int NOT NULL DEFAULT 0,
    failed          int NOT NULL DEFAULT 0,
    stored          int NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    updated_at      timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX batch_jobs_open ON batch_jobs (target) WHERE status IN ('preparing', 'submitted');

-- batch_items: the papers of a job, with the text version (content hash) the request was made
-- from. A paper in an open job of a target is excluded from new work for that target.
CREATE TABLE batch_items (
    job_id       bigint NOT NULL REFERENCES batch_jobs (id) ON DELETE CASCADE,
    paper_id     text NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    content_hash text NOT NULL,
    truncated    boolean NOT NULL DEFAULT false,
    PRIMARY KEY (job_id, paper_id)
);
CREATE INDEX batch_items_paper_id ON batch_items (paper_id);

-- --since selects papers stored or changed since a date.
CREATE INDEX papers_updated_at ON papers (updated_at);

-- +goose Down
DROP INDEX papers_updated_at;
DROP TABLE batch_items;
DROP TABLE batch_jobs;
