-- +goose NO TRANSACTION
-- +goose Up
-- The papers stored before 00013 whose title or abstract has a letter outside ASCII get the tsv
-- of paperpipe_english: those are the only ones it indexes otherwise than english did. In
-- batches of 2,000 papers by id, each its own transaction (COMMIT in the DO block, which goose
-- runs outside a transaction here): a batch locks only its papers with such a letter, in id
-- order as an upsert does, for the time of its own update, and a worker or search goes on
-- meanwhile. A paper written since 00013 already has its folded tsv and is left as it is (only
-- a tsv that differs is written). A batch that meets a paper locked for longer than the
-- migrations' lock_timeout is tried again; run again after a failure, the migration starts over
-- from the first id and writes only the papers still to do.
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
                WHERE id > last AND id <= upto AND (title ~ '[^[:ascii:]]' OR abstract ~ '[^[:ascii:]]')
                ORDER BY id FOR UPDATE) b
            WHERE p.id = b.id AND p.tsv IS DISTINCT FROM b.tsv;
            last := upto;
            waits := 0;
        EXCEPTION WHEN lock_not_available THEN
            -- A paper of the batch was locked longer than the migrations' lock_timeout (a
            -- worker's write waiting on another): the batch lets go of the papers it had
            -- locked, and is tried again in a second, 30 times at most.
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
