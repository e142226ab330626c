package nettest

import (
	"io"
	"net"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// Proxy is a loopback TCP proxy to a server (PostgreSQL, NATS) that a test can make fail the
// ways a network or a server fails: go silent without closing anything (Freeze — a failover
// to another host, a NAT or firewall dropping a flow, a VM that died), cut the connections
// open now for good without either end hearing of it (Blackhole — a client host that died, a
// partition that outlasted TCP's retransmissions), or drop every connection and refuse new
// ones (Refuse until Accept, or Restart for the next n connections — a server stopped or
// restarting).
type Proxy struct {
	ln       net.Listener
	target   string
	frozen   atomic.Bool
	refusing atomic.Bool
	refusals atomic.Int32 // connections still to refuse (Restart)
	mu       sync.Mutex
	conns    []net.Conn
	dark     []*atomic.Bool // per connection pair: blackholed (see Blackhole)
}

// StartProxy starts a Proxy to target (host:port), closed with every connection at the test's
// end.
func StartProxy(tb testing.TB, target string) *Proxy {
	tb.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	p := &Proxy{ln: ln, target: target}
	go p.serve()
	tb.Cleanup(func() {
		ln.Close()
		p.frozen.Store(false)
		p.CloseAll()
	})
	return p
}

// ProxyURL starts a Proxy to the server of rawURL (postgres://user@host:port/db?…,
// nats://host:port) and returns it with rawURL leading to it instead.
func ProxyURL(tb testing.TB, rawURL string) (*Proxy, string) {
	tb.Helper()
	u, err := url.Parse(rawURL)
	if err != nil {
		tb.Fatal(err)
	}
	p := StartProxy(tb, u.Host)
	u.Host = p.Addr()
	return p, u.String()
}

// Addr is the proxy's address, host:port.
func (p *Proxy) Addr() string { return p.ln.Addr().String() }

// Freeze stops forwarding (on) without closing anything, or forwards again what was held (off).
func (p *Proxy) Freeze(on bool) { p.frozen.Store(on) }

// Refuse drops every connection and refuses new ones until Accept.
func (p *Proxy) Refuse() {
	p.refusing.Store(true)
	p.CloseAll()
}

// Accept takes connections again after Refuse.
func (p *Proxy) Accept() { p.refusing.Store(false) }

// Restart drops every connection and refuses the next n.
func (p *Proxy) Restart(n int32) {
	p.refusals.Store(n)
	p.CloseAll()
}

// Blackhole cuts every connection open now for good, silently: nothing more is forwarded
// either way, and a close on either side is not passed on, so the other end waits for the
// peer for as long as its own timeouts let it (the server's TCP keepalive: two hours by
// default). New connections are forwarded as usual. The test's end closes them all.
func (p *Proxy) Blackhole() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, d := range p.dark {
		d.Store(true)
	}
}

// CloseAll closes every connection the proxy holds, both sides.
func (p *Proxy) CloseAll() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for _, c := range p.conns {
		c.Close()
	}
	p.conns, p.dark = nil, nil
}

func (p *Proxy) serve() {
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		if p.refusing.Load() || p.refusals.Add(-1) >= 0 {
			c.Close()
			continue
		}
		u, err := net.Dial("tcp", p.target)
		if err != nil {
			c.Close()
			continue
		}
		dark := new(atomic.Bool)
		p.mu.Lock()
		p.conns = append(p.conns, c, u)
		p.dark = append(p.dark, dark)
		p.mu.Unlock()
		go p.pipe(c, u, dark)
		go p.pipe(u, c, dark)
	}
}

func (p *Proxy) pipe(from, to net.Conn, dark *atomic.Bool) {
	buf := make([]byte, 32<<10)
	for {
		n, err := from.Read(buf)
		for p.frozen.Load() {
			time.Sleep(10 * time.Millisecond) // dropped on the floor, as far as both ends know
		}
		if dark.Load() {
			if err != nil {
				return // the close is lost too
			}
			continue
		}
		if n > 0 {
			if _, werr := to.Write(buf[:n]); werr != nil {
				return
			}
		}
		if err != nil {
			if err != io.EOF {
				return
			}
			to.Close()
			return
		}
	}
}
