-- +goose Up
-- The category filter of ListFiltered (categories @> ARRAY[$n]) uses this index.
CREATE INDEX papers_categories_gin ON papers USING gin (categories);

-- +goose Down
DROP INDEX papers_categories_gin;
