package nettest

import (
	"net"
	"strconv"
	"testing"
)

// A picked port is below the ephemeral range, where no listen on port 0 (another test's
// server) takes it before the test's own server binds it, and it can be bound.
func TestPickPortIsOutsideTheEphemeralRange(t *testing.T) {
	t.Parallel()
	seen := map[int]bool{}
	for range 50 {
		port := FreePort(t)
		if port < lowestPort || port >= ephemeralLow() {
			t.Fatalf("port %d, want one in [%d, %d)", port, lowestPort, ephemeralLow())
		}
		if seen[port] {
			t.Fatalf("port %d picked twice", port)
		}
		seen[port] = true
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatalf("listen on the picked port: %v", err)
		}
		ln.Close()
	}
}
