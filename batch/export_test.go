package batch

import "time"

// SetStallTimeout sets how long a download attempt may receive nothing before it is
// abandoned and retried.
func SetStallTimeout(r *Runner, d time.Duration) { r.stall = d }

// SetRequestTimeout sets how long one request may take (an upload: this plus the file's time
// at Config.UploadRate).
func SetRequestTimeout(r *Runner, d time.Duration) { r.retry.Timeout = d }
