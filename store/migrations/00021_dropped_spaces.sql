-- +goose Up
-- The embedding spaces `paperpipe spaces drop` removed, by model, dimensions and template: a
-- worker started with the settings of one (a machine left on the old model) is refused instead
-- of making it again, empty, and buying the vectors of every new paper for a space no query
-- uses. Making the space on purpose (`reprocess`, `import-embeddings`, `move`) takes its row out.
CREATE TABLE dropped_spaces (
    model      text NOT NULL,
    dimensions int NOT NULL,
    template   text NOT NULL,
    dropped_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (model, dimensions, template)
);

-- +goose Down
DROP TABLE dropped_spaces;
