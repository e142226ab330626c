-- +goose Up
-- offline_models: the archive-fitted offline embedders (`paperpipe fit`). A model is named by
-- the hash of its content, and its embeddings live in the space of that name, so a refit is a
-- new model in a new space (blue/green, like any model change). data is the model as
-- embed.Load reads it (gzip'd gob: vocabulary, IDF, the fitted documents' TF-IDF and
-- projection); it is loaded by every worker and query that uses the model.
CREATE TABLE offline_models (
    name        text PRIMARY KEY,
    documents   int NOT NULL CHECK (documents > 0),
    terms       int NOT NULL CHECK (terms > 0),
    components  int NOT NULL CHECK (components > 0),
    dimensions  int NOT NULL CHECK (dimensions > 0),
    data        bytea NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now()
);

-- +goose Down
DROP TABLE offline_models;
