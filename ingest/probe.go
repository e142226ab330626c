package ingest

import (
	"errors"
	"io"
	"time"
)

// probeIdle is how long unpack waits for more of the input while it looks at its start: a
// live stream that pauses longer is looked at as far as it has come. probeMax bounds the whole
// look: a stream that trickles without such a pause (a record a tenth of a second) is not held
// up until 64 KiB came.
const (
	probeIdle = 200 * time.Millisecond
	probeMax  = time.Second
)

// errIdle is returned by an armed probeReader when no byte came for its idle time.
var errIdle = errors.New("no input for a while")

// probeReader reads r. While armed (idle > 0), a Read that gets nothing within idle returns
// errIdle and the read of r it started goes on in a goroutine: the next Read returns what it
// brings. Disarmed, reads wait as long as r does. Once r has returned io.EOF it is not read
// again (a terminal would wait for another Ctrl-D).
type probeReader struct {
	r       io.Reader
	idle    time.Duration
	until   time.Time      // while armed, no read waits past it (zero: no bound)
	pending chan probeRead // a read of r not yet returned
	left    []byte         // what a read brought beyond the buffer of the Read that got it
	leftErr error
	err     error // what r returned last, when it was an error: r is not read again
}

type probeRead struct {
	buf []byte
	n   int
	err error
}

func (p *probeReader) Read(b []byte) (int, error) {
	if len(p.left) > 0 {
		n := copy(b, p.left)
		p.left = p.left[n:]
		if len(p.left) > 0 {
			return n, nil
		}
		err := p.leftErr
		p.leftErr = nil
		return n, err
	}
	if p.err != nil {
		return 0, p.err
	}
	if p.pending == nil {
		if p.idle <= 0 {
			n, err := p.r.Read(b)
			p.err = err
			return n, err
		}
		ch := make(chan probeRead, 1)
		buf := make([]byte, len(b))
		go func() {
			n, err := p.r.Read(buf)
			ch <- probeRead{buf, n, err}
		}()
		p.pending = ch
	}
	var res probeRead
	if p.idle <= 0 {
		res = <-p.pending
	} else {
		wait := p.idle
		if !p.until.IsZero() {
			wait = min(wait, time.Until(p.until))
		}
		if wait <= 0 {
			return 0, errIdle
		}
		t := time.NewTimer(wait)
		select {
		case res = <-p.pending:
			t.Stop()
		case <-t.C:
			return 0, errIdle
		}
	}
	p.pending = nil
	p.err = res.err
	n := copy(b, res.buf[:res.n])
	if n < res.n {
		p.left, p.leftErr = res.buf[n:res.n], res.err
		return n, nil
	}
	return n, res.err
}
