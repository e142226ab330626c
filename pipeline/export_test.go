package pipeline

import "time"

// SetResendFor sets how long p sends again the messages the stream leaves unanswered
// (resendFor); 0: never.
func (p *Publisher) SetResendFor(d time.Duration) { p.resendFor = d }
