package batch

import "time"

// SetStallTimeout sets how long a download attempt may receive nothing before it is
// abandoned and retried.
func SetStallTimeout(r *Runner, d time.Duration) { r.stall = d }

// SetRequestTimeout sets how long one request may take (an upload: this plus the file's time
// at Config.UploadRate).
func SetRequestTimeout(r *Runner, d time.Duration) { r.retry.Timeout = d }

// SetRetries sets how many times a failed request is retried (-1: none) and the first delay
// between two attempts.
func SetRetries(r *Runner, n int, delay time.Duration) {
	r.retry.MaxRetries, r.retry.BaseDelay = n, delay
}

// MaxFailedLooks is maxFailedLooks.
const MaxFailedLooks = maxFailedLooks

// MaxListPages is maxListPages.
const MaxListPages = maxListPages

// SetLockedWait sets how often, and how many times, a collection tries again a save that
// failed for rows another session holds locked; it returns the undo.
func SetLockedWait(tries int, pause time.Duration) func() {
	old := lockedWait
	lockedWait.tries, lockedWait.pause = tries, pause
	return func() { lockedWait = old }
}
