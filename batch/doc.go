// Package batch sends re-processing work through OpenAI's Batch API: half the price of the
// synchronous endpoints, with results within 24 hours.
//
// A Runner selects the papers that are stale for its target (store.StalePapers), records each
// batch job with its papers in PostgreSQL before anything is uploaded (store.ClaimBatchJob),
// writes the JSONL request file (one line per paper, custom_id "<paper id>@<content
// hash>#<kind>"), uploads it (POST /v1/files, purpose "batch"), creates the batch (POST
// /v1/batches, completion window 24h, tagged with the job id in its metadata), polls it with
// backoff, downloads the output file and stores every valid answer (TL;DRs through the
// Accept function it is given, vectors checked against the space's dimension).
//
// The store is the ledger, so a Runner is resumable across restarts: a job whose file was
// not uploaded or whose batch was not created is finished; a submitted job is polled again,
// never created a second time; and papers in an open job are excluded from new jobs of the
// same target (never pay twice). Two Runners on one database share the ledger: a job is
// recorded only with the papers no open job of its target holds and whose output for it is
// not stored (another Runner's job of them may have been collected since they were selected),
// checked and inserted under a transaction lock of the target (store.ClaimBatchJob), and the Runner that records a job
// holds a session lock of the job until its batch is created, so another Runner resumes a job
// still preparing only when its creator is gone (store.LockBatchJob). The lock's session sits
// idle while the input is uploaded, and the database may end it (a restart): before it records
// the upload and before it creates the batch, the Runner confirms the lock (store.JobLock.Confirm,
// which takes it again when it is free) and that no other Runner has prepared the job meanwhile,
// and otherwise leaves the job to that Runner. A job's usage is recorded when it is closed, in the same
// transaction, so it is counted once however often its collection is retried. Usage is
// recorded under the model's name with the kinds KindChatBatch and KindEmbeddingBatch:
// the Batch API bills them at half the price of the synchronous kinds.
//
// The one window a crash can still cost money in is between OpenAI creating a batch and the
// job row recording its id (one round trip). Batches carry metadata paperpipe_job=<job id>;
// when it resumes such a job the Runner looks for a batch with that tag (GET /v1/batches,
// paging back to the job's creation, transient errors retried) before creating another, and
// creates none when the list cannot be read: the job stays open for a later run. Find looks
// for such a job's batch the same way, for cmd/paperpipe's `batches abandon`.
//
// One job's failure in a run (its upload, the look-up or a look at its batch, the collection of
// its results, after the retries of transient errors) does not stop the other jobs: Submit, Wait
// and Run return the failures at the end as *JobError values, and the job stays open for a later
// run. A job is never closed because its batch or file answers 404 (another API key's batch
// does too, and it may have run and been billed): cmd/paperpipe's `batches abandon` does that.
// An answer the store refuses or an unreadable output line is rejected and the others stored.
//
// The package imports neither summarize nor embed: the prompt, the validation of answers and
// the text embedded come in as functions of Config, wired by cmd/paperpipe.
package batch
