-- +goose Up
-- Room on each page of papers for one more version of a row. A paper read again unchanged (a
-- re-ingest, a follow's overlap, a feed that lists a paper on several days) has its text_at
-- moved (00008), and a metadata correction rewrites its row; a row of a typical abstract with
-- its tsvector is ~1.7 KB, four of them fill an 8 KB page, and the new version then went to
-- another page: every index of the table (the two GIN indexes too) got entries for it and the
-- table and its indexes doubled. At 65% a page keeps ~2.8 KB free, and such an update is a HOT
-- one that touches no index. Pages written before this migration keep their rows as they are
-- until they are rewritten (VACUUM FULL papers, or pg_repack).
ALTER TABLE papers SET (fillfactor = 65);

-- +goose Down
ALTER TABLE papers RESET (fillfactor);
