-- +goose Up
-- A batch job's papers (batch_items) keep them out of other work while the job is open; once it
-- is closed (done or failed) nothing reads them, and since this release FinishBatchJob removes
-- them with the close. Those of the jobs closed before stayed: a row per paper per output of
-- every `reprocess --batch-api` run, ~200 bytes with its two index entries (about 1 GB per run of
-- both outputs over a 2.5M-paper archive). A DELETE takes no lock that stops reads or other
-- writes of the table; the space is reused by later rows once autovacuum has been through.
DELETE FROM batch_items bi USING batch_jobs j
WHERE j.id = bi.job_id AND j.status IN ('done', 'failed');

-- +goose Down
-- The removed rows are not needed by any release: nothing to restore.
SELECT 1;
