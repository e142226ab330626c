-- +goose Up
-- The vector type normally exists already: the operator or `make services` creates it, or
-- store.Open does when its role may (a connection needs the type before migrations run).
-- IF NOT EXISTS returns before any privilege check when it exists.
CREATE EXTENSION IF NOT EXISTS vector;

-- papers: one row per canonical id. content_hash identifies the text models see; every derived
-- output records the hash it was made from, so a changed abstract makes old outputs stale
-- without deleting them.
CREATE TABLE papers (
    id           text PRIMARY KEY,
    title        text NOT NULL,
    abstract     text NOT NULL,
    authors      text[] NOT NULL DEFAULT '{}',
    categories   text[] NOT NULL DEFAULT '{}',
    published    timestamptz,
    url          text,
    source       text,
    content_hash text NOT NULL,
    created_at   timestamptz NOT NULL DEFAULT now(),
    updated_at   timestamptz NOT NULL DEFAULT now(),
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
        setweight(to_tsvector('english', coalesce(abstract, '')), 'B')
    ) STORED,
    CONSTRAINT papers_text_not_empty CHECK (title <> '' AND abstract <> '')
);
CREATE INDEX papers_tsv_gin ON papers USING gin (tsv);
CREATE INDEX papers_created_at_id ON papers (created_at DESC, id DESC);

-- tldrs: versioned outputs, one per (paper, model, prompt version).
CREATE TABLE tldrs (
    paper_id       text NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    model          text NOT NULL,
    prompt_version text NOT NULL,
    content_hash   text NOT NULL,
    tldr           text NOT NULL CHECK (tldr <> ''),
    validation     text NOT NULL,
    input_tokens   int NOT NULL DEFAULT 0,
    output_tokens  int NOT NULL DEFAULT 0,
    created_at     timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (paper_id, model, prompt_version)
);

-- embedding_spaces: model + dimensions + input template. Several live side by side (blue/green
-- re-embedding); at most one is active for queries.
CREATE TABLE embedding_spaces (
    id         bigserial PRIMARY KEY,
    model      text NOT NULL,
    dimensions int NOT NULL CHECK (dimensions BETWEEN 1 AND 16000),
    template   text NOT NULL,
    active     boolean NOT NULL DEFAULT false,
    created_at timestamptz NOT NULL DEFAULT now(),
    UNIQUE (model, dimensions, template)
);
CREATE UNIQUE INDEX embedding_spaces_one_active ON embedding_spaces (active) WHERE active;

-- embeddings: the column is an untyped vector so spaces of different dimensions share the
-- table. Each space gets its own partial expression HNSW index, created by the application
-- (store.EnsureSpace) as
--   CREATE INDEX embeddings_hnsw_s<ID> ON embeddings
--     USING hnsw ((embedding::vector(<DIM>)) vector_cosine_ops) WHERE space_id = <ID>
-- (halfvec for DIM > 2000), and queries repeat that expression and predicate.
CREATE TABLE embeddings (
    space_id     bigint NOT NULL REFERENCES embedding_spaces (id) ON DELETE CASCADE,
    paper_id     text NOT NULL REFERENCES papers (id) ON DELETE CASCADE,
    content_hash text NOT NULL,
    embedding    vector NOT NULL,
    truncated    boolean NOT NULL DEFAULT false,
    created_at   timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (space_id, paper_id)
);
-- Cascading deletes from papers look embeddings up by paper.
CREATE INDEX embeddings_paper_id ON embeddings (paper_id);

-- api_usage: requests and tokens per UTC day, model and kind (chat, embedding).
CREATE TABLE api_usage (
    day           date NOT NULL,
    model         text NOT NULL,
    kind          text NOT NULL,
    requests      bigint NOT NULL DEFAULT 0,
    input_tokens  bigint NOT NULL DEFAULT 0,
    output_tokens bigint NOT NULL DEFAULT 0,
    PRIMARY KEY (day, model, kind)
);

-- +goose Down
DROP TABLE api_usage;
DROP TABLE embeddings;
DROP TABLE embedding_spaces;
DROP TABLE tldrs;
DROP TABLE papers;
