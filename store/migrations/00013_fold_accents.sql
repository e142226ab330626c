-- +goose Up
-- Keyword search folds accents: a paper that writes Nyström, naïve, Erdős or Poincaré is found by
-- Nystrom, naive, Erdos or Poincare, and the other way round. paperpipe_english is PostgreSQL's
-- english configuration with the words that have a letter outside ASCII (PostgreSQL's token types
-- word, hword, hword_part, numword, numhword) passed through the unaccent dictionary before the
-- English stemmer; words of ASCII letters are read as english reads them, so only the papers with
-- such letters index anything else. The store's queries read a query with it too.
--
-- unaccent is a contrib extension, trusted since PostgreSQL 13: a role with CREATE on the
-- database (its owner) may create it; IF NOT EXISTS passes over one an administrator created
-- before, whatever schema it is in, and the dictionary is named in that schema.
CREATE EXTENSION IF NOT EXISTS unaccent;
CREATE TEXT SEARCH CONFIGURATION paperpipe_english (COPY = pg_catalog.english);
-- +goose StatementBegin
DO $$
DECLARE
    dict text;
BEGIN
    SELECT format('%I.unaccent', n.nspname) INTO STRICT dict
    FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace WHERE e.extname = 'unaccent';
    EXECUTE format('ALTER TEXT SEARCH CONFIGURATION paperpipe_english
        ALTER MAPPING FOR word, hword, hword_part WITH %s, english_stem', dict);
    EXECUTE format('ALTER TEXT SEARCH CONFIGURATION paperpipe_english
        ALTER MAPPING FOR numword, numhword WITH %s, simple', dict);
END
$$;
-- +goose StatementEnd

-- papers_tsv_of is the tsvector of a paper's title (weight A) and abstract (B). The search_path
-- is the migration's, where paperpipe_english is, whatever the session's that writes a paper.
-- +goose StatementBegin
CREATE FUNCTION papers_tsv_of(title text, abstract text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT
RETURN setweight(to_tsvector('paperpipe_english', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('paperpipe_english', coalesce(abstract, '')), 'B');
-- +goose StatementEnd

-- papers_tsv is the trigger that sets a paper's tsv when it is written, in the migration's
-- search_path too: pg_restore --data-only writes the rows with an empty one.
-- +goose StatementBegin
CREATE FUNCTION papers_tsv() RETURNS trigger LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
BEGIN
    IF TG_OP = 'INSERT' OR NEW.title IS DISTINCT FROM OLD.title OR NEW.abstract IS DISTINCT FROM OLD.abstract THEN
        NEW.tsv := papers_tsv_of(NEW.title, NEW.abstract);
    END IF;
    RETURN NEW;
END
$$;
-- +goose StatementEnd

-- tsv was a generated column of the english configuration. Changing its expression (ALTER COLUMN
-- … SET EXPRESSION) rewrites the table under an ACCESS EXCLUSIVE lock: every query of papers
-- waits for as long as that takes on the largest archive. Dropping the expression is a change
-- of the catalog alone (the stored values stay, and papers_tsv_gin with them), and the trigger
-- computes tsv from here on, in this transaction, so no row is written without it. The papers
-- already stored with a letter outside ASCII are indexed again by the next migration, in
-- batches. The previous release's pods, still running during the upgrade, read a query with
-- english: an accented word of a query they serve misses the papers indexed again.
ALTER TABLE papers ALTER COLUMN tsv DROP EXPRESSION;
CREATE TRIGGER papers_tsv BEFORE INSERT OR UPDATE OF title, abstract ON papers
    FOR EACH ROW EXECUTE FUNCTION papers_tsv();

-- +goose Down
-- The stored values stay folded; a paper written from here on is indexed by english.
-- +goose StatementBegin
CREATE OR REPLACE FUNCTION papers_tsv_of(title text, abstract text) RETURNS tsvector
LANGUAGE sql IMMUTABLE PARALLEL SAFE SET search_path FROM CURRENT
RETURN setweight(to_tsvector('english', coalesce(title, '')), 'A') ||
    setweight(to_tsvector('english', coalesce(abstract, '')), 'B');
-- +goose StatementEnd
