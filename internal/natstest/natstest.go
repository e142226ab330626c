// Package natstest runs a real NATS server with JetStream inside the test process.
package natstest

import (
	"context"
	"fmt"
	"net"
	"net/url"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/paperpipe/paperpipe/internal/nettest"
)

// Server is an in-process nats-server with JetStream file storage in a temporary directory.
type Server struct {
	*server.Server
	Dir  string
	opts server.Options // as started: Restart starts the next server with them
}

// Start starts a server on a random loopback port; it is shut down when the test ends.
func Start(tb testing.TB) *Server {
	tb.Helper()
	return StartWith(tb, nil)
}

// StartWith is Start with the server's options changed by configure first (users, TLS).
func StartWith(tb testing.TB, configure func(*server.Options)) *Server {
	tb.Helper()
	dir := tb.TempDir()
	opts := &server.Options{
		Host: "127.0.0.1", Port: -1, JetStream: true, StoreDir: dir, NoSigs: true, NoLog: true,
	}
	if configure != nil {
		configure(opts)
	}
	s := &Server{Dir: dir, opts: *opts}
	s.start(tb)
	return s
}

// start starts a server with s.opts as s.Server.
func (s *Server) start(tb testing.TB) {
	tb.Helper()
	opts := s.opts
	srv, err := server.NewServer(&opts)
	if err != nil {
		tb.Fatalf("nats-server: %v", err)
	}
	srv.Start()
	// Registered before the wait: a server that never becomes ready is shut down too, not left
	// running (its JetStream writing in dir) after tb.Fatal.
	tb.Cleanup(func() { srv.Shutdown(); srv.WaitForShutdown() })
	if !srv.ReadyForConnections(10 * time.Second) {
		tb.Fatal("nats-server not ready")
	}
	s.Server = srv
	s.opts.Port = srv.Addr().(*net.TCPAddr).Port // for Restart, also after a Shutdown of the caller's
}

// Restart shuts the server down and starts another on the same address and store directory,
// as when the process that ran paperpipe's embedded server stops and another takes its data
// directory over: JetStream recovers the streams and the consumers' state from the files, and
// the clients reconnect (those of Connect after nats.go's ReconnectWait, 2 s). A shutdown the
// caller began is waited for.
func (s *Server) Restart(tb testing.TB) {
	tb.Helper()
	s.Shutdown()
	s.WaitForShutdown()
	s.start(tb)
}

// Connect returns a JetStream client of s, made with opts, closed when the test ends.
func (s *Server) Connect(tb testing.TB, opts ...jetstream.JetStreamOpt) jetstream.JetStream {
	tb.Helper()
	nc, err := nats.Connect(s.ClientURL())
	if err != nil {
		tb.Fatalf("connect: %v", err)
	}
	tb.Cleanup(nc.Close)
	js, err := jetstream.New(nc, opts...)
	if err != nil {
		tb.Fatalf("jetstream: %v", err)
	}
	return js
}

// StartCluster starts a JetStream cluster of three in-process servers on loopback ports, each
// with its own store directory, and waits until it has a JetStream meta leader: a stream of
// three replicas can then be created. They are shut down when the test ends.
func StartCluster(tb testing.TB) []*Server {
	tb.Helper()
	ports := []int{nettest.FreePort(tb), nettest.FreePort(tb), nettest.FreePort(tb)}
	routes := make([]*url.URL, len(ports))
	for i, p := range ports {
		routes[i] = &url.URL{Scheme: "nats", Host: fmt.Sprintf("127.0.0.1:%d", p)}
	}
	servers := make([]*Server, len(ports))
	for i, p := range ports {
		servers[i] = StartWith(tb, func(o *server.Options) {
			o.ServerName = fmt.Sprintf("n%d", i+1)
			o.Cluster = server.ClusterOpts{Name: "paperpipe-test", Host: "127.0.0.1", Port: p}
			o.Routes = routes
		})
	}
	js := servers[0].Connect(tb)
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := js.AccountInfo(ctx)
		cancel()
		if err == nil {
			return servers
		}
		if time.Now().After(deadline) {
			tb.Fatalf("the JetStream cluster has no meta leader after 30 s: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// PendingPull makes the work queue Q (subject q) with a durable consumer c (explicit acks,
// AckWait a minute, MaxDeliver 1), sends consumer c one raw pull request of a message on nc, as
// nats.go's Fetch does, and returns the subscription of its inbox once the consumer has queued
// the request: what a worker's open pull request is to the server (a shutdown's 409 goes to
// it, and a message published meanwhile may be delivered to it).
func PendingPull(tb testing.TB, ctx context.Context, nc *nats.Conn, js jetstream.JetStream) *nats.Subscription {
	tb.Helper()
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: "Q", Subjects: []string{"q"}, Retention: jetstream.WorkQueuePolicy}); err != nil {
		tb.Fatal(err)
	}
	cons, err := js.CreateOrUpdateConsumer(ctx, "Q", jetstream.ConsumerConfig{Durable: "c", AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: time.Minute, MaxDeliver: 1})
	if err != nil {
		tb.Fatal(err)
	}
	inbox := nats.NewInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		tb.Fatal(err)
	}
	if err := nc.PublishRequest("$JS.API.CONSUMER.MSG.NEXT.Q.c", inbox, []byte(`{"batch":1,"expires":60000000000}`)); err != nil {
		tb.Fatal(err)
	}
	for { // the consumer queues the request apart from its publish: wait until it has
		info, err := cons.Info(ctx)
		if err != nil {
			tb.Fatal(err)
		}
		if info.NumWaiting == 1 {
			return sub
		}
		time.Sleep(5 * time.Millisecond)
	}
}
