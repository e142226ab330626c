-- +goose Up
-- paperpipe_unaccent is unaccent's folding of a text (00013's dictionary), named in the
-- extension's schema whatever the search_path: a title fragment that `show` and `related` take
-- finds its title with or without its accents, as keyword search does. A new function: no lock
-- on a table.
-- +goose StatementBegin
DO $$
DECLARE
    schema text;
BEGIN
    SELECT n.nspname INTO STRICT schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent';
    EXECUTE format('CREATE FUNCTION paperpipe_unaccent(t text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        RETURN %I.unaccent(%L::regdictionary, t)', schema, format('%I.unaccent', schema));
END
$$;
-- +goose StatementEnd

-- +goose Down
DROP FUNCTION paperpipe_unaccent(text);
