package batch

import "time"

// SetStallTimeout sets how long a download attempt may receive nothing before it is
// abandoned and retried.
func SetStallTimeout(r *Runner, d time.Duration) { r.stall = d }
