-- +goose NO TRANSACTION
-- +goose Up
-- The papers stored before 00016 whose title or abstract holds a character paperpipe_visible
-- drops get the tsv of papers_tsv_of as 00016 made it: those are the only ones it indexes
-- otherwise. As 00014 does it: in batches of 2,000 papers by id, each its own transaction, a
-- batch locking only its papers with such a character, in id order, for the time of its own
-- update; only a tsv that differs is written; a batch that meets a paper locked for longer than
-- the migrations' lock_timeout lets go and is tried again; run again after a failure, it starts
-- over from the first id and writes only the papers still to do.
-- +goose StatementBegin
DO $$
DECLARE
    last text := '';
    upto text;
    waits int := 0;
BEGIN
    LOOP
        SELECT max(id) INTO upto FROM (SELECT id FROM papers WHERE id > last ORDER BY id LIMIT 2000) b;
        EXIT WHEN upto IS NULL;
        BEGIN
            UPDATE papers p SET tsv = b.tsv
            FROM (SELECT id, papers_tsv_of(title, abstract) AS tsv FROM papers
                WHERE id > last AND id <= upto
                    AND (title ~ U&'[\00AD\200B\200C\200D\2060\FEFF]' OR abstract ~ U&'[\00AD\200B\200C\200D\2060\FEFF]')
                ORDER BY id FOR UPDATE) b
            WHERE p.id = b.id AND p.tsv IS DISTINCT FROM b.tsv;
            last := upto;
            waits := 0;
        EXCEPTION WHEN lock_not_available THEN
            waits := waits + 1;
            IF waits >= 30 THEN
                RAISE;
            END IF;
        END;
        COMMIT;
        IF waits > 0 THEN
            PERFORM pg_sleep(1);
        END IF;
    END LOOP;
END
$$;
-- +goose StatementEnd

-- +goose Down
SELECT 1;
