package nettest

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// FreePort returns a loopback TCP port nothing listens on, for a server the test starts later
// on it (after a process under test was given its address, or to restart a server on the
// same address). See PickPort.
func FreePort(tb testing.TB) int {
	tb.Helper()
	port, err := PickPort()
	if err != nil {
		tb.Fatal(err)
	}
	return port
}

// lowestPort is the bottom of the range PickPort picks from (below: the well-known and
// registered ports services of the machine are more likely to use).
const lowestPort = 10000

var picked struct {
	sync.Mutex
	ports map[int]bool
}

// PickPort returns a loopback TCP port nothing listens on now, picked at random below the
// kernel's ephemeral range (net.ipv4.ip_local_port_range) and never the same twice in a
// process. A port found by listening on port 0 and closing the listener is in that range, in
// which every listen on port 0 and every outgoing connection of the machine takes its ports:
// another test's server (or a connection) could take it before the test's own server binds
// it, which then failed with "address already in use" or, worse, the process under test
// talked to the wrong server. Below the range only an explicit bind takes a port.
func PickPort() (int, error) {
	top := ephemeralLow() // exclusive
	if top-lowestPort < 1000 {
		return listenedPort() // no room below the range: the old way
	}
	picked.Lock()
	defer picked.Unlock()
	if picked.ports == nil {
		picked.ports = make(map[int]bool)
	}
	for range 100 {
		port := lowestPort + rand.IntN(top-lowestPort)
		if picked.ports[port] {
			continue
		}
		ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			continue // in use
		}
		if err := ln.Close(); err != nil {
			return 0, fmt.Errorf("pick a free port: %w", err)
		}
		picked.ports[port] = true
		return port, nil
	}
	return 0, errors.New("pick a free port: 100 random ports below the ephemeral range are all in use")
}

// ephemeralLow returns the lowest port of the kernel's ephemeral range, 32768 (Linux's
// default) when it cannot be read.
func ephemeralLow() int {
	raw, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return 32768
	}
	fields := strings.Fields(string(raw))
	if len(fields) != 2 {
		return 32768
	}
	low, err := strconv.Atoi(fields[0])
	if err != nil {
		return 32768
	}
	return low
}

// listenedPort returns a port the kernel gave a listener on port 0, closed again.
func listenedPort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}
