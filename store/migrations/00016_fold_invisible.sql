-- +goose Up
-- Keyword search reads a word across the characters that show nothing inside it: the soft
-- hyphen (U+00AD, a PDF's or a web page's break in "Co<U+00AD>operation"), the zero-width space
-- (U+200B), non-joiner (U+200C) and joiner (U+200D), the word joiner (U+2060) and the
-- zero-width no-break space (U+FEFF, a byte order mark inside a text). Ingest keeps them as they
-- came (a paper's content hash is of its text as stored); the index read the soft hyphen as a
-- hyphen (unaccent's rule: co-oper, not cooper) and the others as letters of the word, so a
-- search for cooperation missed the paper, and a query pasted with one missed the papers that
-- write the word without it.
--
-- paperpipe_visible is a text without them. An SQL function of one expression, inlined where it
-- is called: a query's text is folded once, at planning. papers_tsv_of and paperpipe_unaccent
-- (the title fragment of show and related) read a text through it, and the store's queries read
-- a query through it; the papers stored before are indexed again by the next migration. Each
-- is a function replaced: no lock on a table.
CREATE FUNCTION paperpipe_visible(t text) RETURNS text
LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
RETURN translate(t, U&'\00AD\200B\200C\200D\2060\FEFF', '');

-- +goose StatementBegin
CREATE OR REPLACE FUNCTION papers_tsv_of(title text, abstract text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT
RETURN setweight(to_tsvector('paperpipe_english', paperpipe_visible(coalesce(title, ''))), 'A') ||
    setweight(to_tsvector('paperpipe_english', paperpipe_visible(coalesce(abstract, ''))), 'B');
-- +goose StatementEnd

-- +goose StatementBegin
DO $$
DECLARE
    schema text;
BEGIN
    SELECT n.nspname INTO STRICT schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent';
    EXECUTE format('CREATE OR REPLACE FUNCTION paperpipe_unaccent(t text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        RETURN %I.unaccent(%L::regdictionary, %I.paperpipe_visible(t))',
        schema, format('%I.unaccent', schema), current_schema());
END
$$;
-- +goose StatementEnd

-- +goose Down
-- +goose StatementBegin
DO $$
DECLARE
    schema text;
BEGIN
    SELECT n.nspname INTO STRICT schema
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent';
    EXECUTE format('CREATE OR REPLACE FUNCTION paperpipe_unaccent(t text) RETURNS text
        LANGUAGE sql IMMUTABLE PARALLEL SAFE STRICT
        RETURN %I.unaccent(%L::regdictionary, t)', schema, format('%I.unaccent', schema));
END
$$;
-- +goose StatementEnd
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION papers_tsv_of(title text, abstract text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT
RETURN setweight(to_tsvector('paperpipe_english', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('paperpipe_english', coalesce(abstract, '')), 'B');
-- +goose StatementEnd
DROP FUNCTION paperpipe_visible(text);
