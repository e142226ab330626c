// Package nettest has network helpers for tests.
package nettest

import (
	"fmt"
	"syscall"
	"testing"
)

// BlackholeAddr returns the address of a loopback TCP port that answers no SYN: a listening
// socket of backlog 0 whose one queue place is taken. A dial to it hangs until its deadline, as
// to a host behind a firewall that drops the packets, a host that went away, or a network
// partition — where a closed port refuses at once.
func BlackholeAddr(tb testing.TB) string {
	tb.Helper()
	socket := func() int {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_STREAM, 0)
		if err != nil {
			tb.Fatal(err)
		}
		tb.Cleanup(func() { syscall.Close(fd) })
		return fd
	}
	ln := socket()
	if err := syscall.Bind(ln, &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}}); err != nil {
		tb.Fatal(err)
	}
	if err := syscall.Listen(ln, 0); err != nil {
		tb.Fatal(err)
	}
	sa, err := syscall.Getsockname(ln)
	if err != nil {
		tb.Fatal(err)
	}
	port := sa.(*syscall.SockaddrInet4).Port
	// Take the queue's one place.
	if err := syscall.Connect(socket(), &syscall.SockaddrInet4{Addr: [4]byte{127, 0, 0, 1}, Port: port}); err != nil {
		tb.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", port)
}
