package batch

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	openai "github.com/sashabaranov/go-openai"

	"github.com/paperpipe/paperpipe/internal/llm"
	"github.com/paperpipe/paperpipe/store"
)

// State is what a look at a job's batch now (Look) found.
type State int

const (
	// Running: the batch is validating, in_progress, finalizing or cancelling at OpenAI; it is
	// billed as it runs, and its results are still to come.
	Running State = iota + 1
	// Collectable: the batch has ended (completed, or failed, expired or cancelled part way)
	// with an output file OpenAI still serves: a Runner of the job's target collects its
	// results.
	Collectable
	// Ended: the batch has ended with nothing to collect: without an output file, or with one
	// OpenAI no longer has (404; it keeps them 30 days).
	Ended
	// Gone: OpenAI has no such batch (404): it was deleted, or another API key created it.
	Gone
)

// StatusGone is the OpenAIStatus Look gives a job whose batch OpenAI answers 404 for.
const StatusGone = "not found"

// Look looks at job j's batch (j.OpenAIID) at OpenAI now and, for a batch that has ended with
// an output file, at whether that file can still be downloaded (the request a collection
// makes; the body is not read). It returns j with what it found (OpenAIStatus, request counts,
// output and error files; StatusGone for a batch OpenAI has not) and the batch's State. Only
// cfg's BaseURL, APIKey, HTTPClient, Limiter and Logger are used. Transient errors are retried
// as a Runner's are; any other error than a 404 for the batch or its output file is returned,
// and then nothing was found.
func Look(ctx context.Context, cfg Config, j store.BatchJob) (store.BatchJob, State, error) {
	if j.OpenAIID == "" {
		return j, 0, fmt.Errorf("batch job %d has no OpenAI batch to look at", j.ID)
	}
	cfg.setDefaults()
	if err := llm.CheckBaseURL(cfg.BaseURL); err != nil {
		return j, 0, fmt.Errorf("batch config: BaseURL %w", err)
	}
	api, retry := cfg.client()
	var b openai.BatchResponse
	_, err := retry.Do(ctx, 0, func(ctx context.Context) (err error) {
		b, err = api.RetrieveBatch(ctx, j.OpenAIID)
		return err
	})
	switch {
	case noSuchObject(err):
		j.OpenAIStatus = StatusGone
		return j, Gone, nil
	case err != nil:
		return j, 0, fmt.Errorf("retrieve batch %s: %w", j.OpenAIID, err)
	}
	seen(&j, b)
	switch b.Status {
	case "completed", "failed", "expired", "cancelled":
	default: // validating, in_progress, finalizing, cancelling
		return j, Running, nil
	}
	if j.OutputFileID == "" {
		return j, Ended, nil
	}
	_, err = retry.Do(ctx, 0, func(ctx context.Context) error {
		body, err := api.GetFileContent(ctx, j.OutputFileID)
		if err == nil {
			body.Close()
		}
		return err
	})
	switch {
	case noSuchObject(err):
		return j, Ended, nil
	case err != nil:
		return j, 0, fmt.Errorf("batch %s: output file %s: %w", j.OpenAIID, j.OutputFileID, err)
	}
	return j, Collectable, nil
}

// Find looks for the batch of job j, recorded with its input file (InputFileID) but no batch
// (OpenAIID ""): the answer to its batch's creation may have been lost. It looks as a Runner
// resuming the job does, for a batch tagged with the job's id and made of its input file among
// the batches OpenAI lists. When one is there, it returns j with the batch recorded on it
// (OpenAIID, Status store.BatchSubmitted, OpenAIStatus) and found true, for the caller to
// save. found is false only when the list answered and holds no such batch (none was created,
// or the API key sees another organization's or project's batches); a list that cannot be read
// (after the retries of transient errors), or does not page back, is an error. Only cfg's
// BaseURL, APIKey, HTTPClient, Limiter and Logger are used.
func Find(ctx context.Context, cfg Config, j store.BatchJob) (_ store.BatchJob, found bool, err error) {
	if j.OpenAIID != "" || j.InputFileID == "" {
		return j, false, fmt.Errorf("batch job %d is not one whose batch's creation may have been lost (batch %q, input file %q)", j.ID, j.OpenAIID, j.InputFileID)
	}
	cfg.setDefaults()
	if err := llm.CheckBaseURL(cfg.BaseURL); err != nil {
		return j, false, fmt.Errorf("batch config: BaseURL %w", err)
	}
	api, retry := cfg.client()
	b, found, err := findBatch(ctx, api, retry, j)
	if err != nil || !found {
		return j, false, err
	}
	j.OpenAIID, j.Status, j.OpenAIStatus = b.ID, store.BatchSubmitted, b.Status
	return j, true, nil
}

// noSuchObject reports whether err is the API's answer that it has no such batch or file: a
// 404 in OpenAI's error shape (type invalid_request_error), other than its "Invalid URL (…)"
// for a path it has not. A 404 of another shape, or that one, is a route the server does not have (an OpenAI-compatible server without the Batch API, a wrong base
// URL): no answer about the batch, which may still run, and be billed, at OpenAI.
func noSuchObject(err error) bool {
	var apiErr *openai.APIError
	return errors.As(err, &apiErr) && apiErr.HTTPStatusCode == http.StatusNotFound && apiErr.Type == "invalid_request_error" &&
		!strings.HasPrefix(apiErr.Message, "Invalid URL") // OpenAI's answer for a path it has not (a wrong base URL)
}

// DeleteInput deletes closed job j's input file at OpenAI, which keeps an upload until it is
// deleted, for a job closed outside a run (`paperpipe batches abandon`; a run deletes those it
// closes). A file OpenAI has no more is no error. Only cfg's BaseURL, APIKey, HTTPClient,
// Limiter and Logger are used.
func DeleteInput(ctx context.Context, cfg Config, j store.BatchJob) error {
	if j.InputFileID == "" {
		return nil
	}
	cfg.setDefaults()
	if err := llm.CheckBaseURL(cfg.BaseURL); err != nil {
		return fmt.Errorf("batch config: BaseURL %w", err)
	}
	api, retry := cfg.client()
	_, err := retry.Do(ctx, 0, func(ctx context.Context) error {
		return api.DeleteFile(ctx, j.InputFileID)
	})
	if err != nil && !noSuchObject(err) {
		return fmt.Errorf("delete input file %s of batch job %d: %w", j.InputFileID, j.ID, err)
	}
	return nil
}
