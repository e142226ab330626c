package pipeline

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// EmbeddedConfig configures an in-process NATS server with JetStream.
type EmbeddedConfig struct {
	// Dir is where JetStream keeps its file storage. Required.
	Dir string
	// Host to listen on. Defaults to 127.0.0.1.
	Host string
	// Port to listen on. Defaults to a random free port (-1).
	Port int
	// Token every client must present (as in nats://TOKEN@host:port). Empty: a new random one
	// (crypto/rand.Text). The server accepts no client without it.
	Token string
	// Logger receives the server's notices and errors. Defaults to discarding them.
	Logger *slog.Logger
	// SyncAlways has JetStream flush every write to disk (fsync) before it answers: a message
	// acknowledged to its publisher survives a power loss or a kernel crash. Otherwise the
	// server's files are synced every SyncInterval, and such a stop loses what was written
	// since (a process killed, its files written, loses nothing).
	SyncAlways bool
	// SyncInterval is how often JetStream syncs its files to disk when SyncAlways is not set.
	// 0: nats-server's default, 2 minutes.
	SyncInterval time.Duration
}

// Embedded is a running in-process NATS server with JetStream enabled.
type Embedded struct {
	token string
	log   *slog.Logger
	stop  chan struct{} // closed by Shutdown: ends watchWrites
	done  chan struct{} // closed when watchWrites has returned
	srv   *server.Server
	opts  *server.Options // the server's: restart starts its JetStream as the server did
}

// writeCheckInterval is how often the server is checked for a stream that cannot write (see
// watchWrites); a variable for the tests.
var writeCheckInterval = 5 * time.Second

// roomNeeded is how much a server stopped by a write error (see watchWrites) must be able to
// write in its store directory before it restarts.
const roomNeeded = 1 << 20

// StartEmbedded starts an in-process NATS server with JetStream file storage in cfg.Dir and
// waits until it accepts connections: those that present cfg.Token (see ClientURL).
func StartEmbedded(cfg EmbeddedConfig) (*Embedded, error) {
	if cfg.Dir == "" {
		return nil, errors.New("embedded NATS: Dir is required")
	}
	if cfg.Host == "" {
		cfg.Host = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = -1
	}
	if cfg.Token == "" {
		cfg.Token = rand.Text() // 128 random bits, letters and digits only
	}
	opts := &server.Options{
		ServerName: "paperpipe-embedded",
		Host:       cfg.Host,
		Port:       cfg.Port,
		JetStream:  true,
		StoreDir:   cfg.Dir,
		// Any local user or process can reach a loopback port: without the token it could
		// publish papers the workers pay the API for, read the queue or delete the streams.
		Authorization: cfg.Token,
		NoSigs:        true,
		// Abstracts are small, but a whole JSON batch from the HTTP API may not be.
		MaxPayload:   8 << 20,
		SyncAlways:   cfg.SyncAlways,
		SyncInterval: cfg.SyncInterval,
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	srv, err := startServer(opts, log)
	if err != nil {
		return nil, err
	}
	e := &Embedded{srv: srv, opts: opts, token: cfg.Token, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go e.watchWrites()
	return e, nil
}

// startServer starts a server with opts and waits until it accepts connections with JetStream.
func startServer(opts *server.Options, log *slog.Logger) (*server.Server, error) {
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{log}, false, false, false)
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS: not ready after 30s (store dir %s)", opts.StoreDir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS: JetStream failed to start (store dir %s)", opts.StoreDir)
	}
	return srv, nil
}

// watchWrites restarts the server's JetStream (see restart) once a stream of it that could not
// write (its disk was full, or the process had too many open files) can write again. nats-server stops storing
// into a stream whose file store failed a write — it answers no publish to it (the
// publisher's ack times out) and deletes nothing from it — until the server restarts, also
// once the cause is gone: without a restart the queue would refuse every paper for good. A
// restart on a disk still full would fail the same way, so it waits until roomNeeded bytes can
// be written in the store directory. The server's clients stay connected, on its address and
// token; what it had stored is kept (a message whose write failed was never confirmed to its
// publisher).
func (e *Embedded) watchWrites() {
	defer close(e.done)
	t := time.NewTicker(writeCheckInterval)
	defer t.Stop()
	told, down := false, false // down: the last restart failed, JetStream is not running
	for {
		select {
		case <-e.stop:
			return
		case <-t.C:
		}
		opts := e.opts
		if !down {
			werr := writeError(e.srv)
			if werr == "" {
				told = false
				continue
			}
			if !told {
				e.log.Error("the queue's store could not write (a full disk, too many open files): the embedded NATS server takes no paper "+
					"and removes none until it restarts, which paperpipe does once it can write there again", "dir", opts.StoreDir, "err", werr)
				told = true
			}
		}
		if !canWrite(opts.StoreDir) {
			continue
		}
		if err := e.restart(); err != nil {
			if !down {
				e.log.Error("could not restart the embedded NATS server's JetStream; trying again", "dir", opts.StoreDir, "err", err)
			}
			down = true
			continue
		}
		e.log.Warn("the queue's store can write again: the embedded NATS server's JetStream restarted", "dir", opts.StoreDir)
		told, down = false, false
	}
}

// writeError returns the first write error of a stream of srv, or "".
func writeError(srv *server.Server) string {
	for _, he := range srv.Healthz(&server.HealthzOptions{Details: true}).Errors {
		if he.Type == server.HealthzErrorStream && strings.Contains(he.Error, "write error") {
			return he.Error
		}
	}
	return ""
}

// canWrite reports whether a file of roomNeeded bytes can be written in dir.
func canWrite(dir string) bool {
	f, err := os.CreateTemp(dir, ".room-*")
	if err != nil {
		return false
	}
	defer os.Remove(f.Name())
	_, err = f.Write(make([]byte, roomNeeded))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err == nil
}

// restart stops the server's JetStream and starts it again as the server started it, from
// its store. The server itself keeps running: its port is never free for another program of
// the machine to listen on (which would keep the server from coming back, and be sent the
// token of every client that reconnects), and its clients stay connected. Only watchWrites
// calls it, and Shutdown waits for watchWrites to return.
func (e *Embedded) restart() error {
	if err := e.srv.ShutdownJetStream(); err != nil {
		return fmt.Errorf("stop JetStream: %w", err)
	}
	o := e.opts
	if err := e.srv.EnableJetStream(&server.JetStreamConfig{
		StoreDir: o.StoreDir, SyncInterval: o.SyncInterval, SyncAlways: o.SyncAlways, Strict: !o.NoJetStreamStrict,
		MaxMemory: o.JetStreamMaxMemory, MaxStore: o.JetStreamMaxStore, Domain: o.JetStreamDomain, CompressOK: true,
		UniqueTag: o.JetStreamUniqueTag,
	}); err != nil {
		return fmt.Errorf("start JetStream: %w", err)
	}
	return nil
}

// Sync returns how the server's JetStream syncs its files to disk: at every write (always), or
// every interval (nats-server's default, 2 minutes, when none was set).
func (e *Embedded) Sync() (always bool, interval time.Duration) {
	jc := e.srv.JetStreamConfig()
	if jc == nil {
		return e.opts.SyncAlways, e.opts.SyncInterval
	}
	interval = jc.SyncInterval
	if interval == 0 {
		interval = 2 * time.Minute // nats-server's defaultSyncInterval
	}
	return jc.SyncAlways, interval
}

// ClientURL returns the URL clients connect to, with the token: nats://TOKEN@host:port. It is a
// secret: print it through redact.URL.
func (e *Embedded) ClientURL() string {
	return "nats://" + e.token + "@" + strings.TrimPrefix(e.srv.ClientURL(), "nats://")
}

// Shutdown stops the server and waits until it has stopped; JetStream state is flushed to disk.
//
// JetStream stops first, while the clients are still connected. The server's own Shutdown
// answers every open pull request "409 Server Shutdown" and then, for 50 ms, leaves those
// requests to the consumers, which go on delivering to them: a message that came due then (a
// NakWithDelay of the stopping worker's drain, during a takeover) went to a request whose
// client had ended its Fetch at the 409 and dropped it, and the server taking the directory
// over counted that delivery from the files. On a message's last delivery it was given up and
// dead-lettered with no worker ever having held it (internal/natstest's
// TestAStoppingServerDeliversToAPullRequestItHasDeclaredOver). Stopped this way the requests
// get no 409: their clients' Fetch ends when the connection closes, as at a kill.
func (e *Embedded) Shutdown() {
	select {
	case <-e.stop:
	default:
		close(e.stop)
	}
	<-e.done
	if err := e.srv.ShutdownJetStream(); err != nil {
		e.log.Warn("stopping the embedded server's JetStream failed; stopping the server", "err", err)
	}
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// natsLogger adapts slog to the nats-server logger interface. Notices and debug output are
// dropped below warning level to keep the CLI quiet.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any) {
	msg := fmt.Sprintf(format, v...)
	if rebuildAfterUncleanStop(msg) {
		n.l.Info("the queue's files were not closed cleanly (a process that ran the embedded NATS server was killed, or its "+
			"machine stopped): the server rebuilds the stream's state from the messages", "nats", msg)
		return
	}
	n.l.Warn(msg)
}

// rebuildAfterUncleanStop reports whether msg, a warning of the NATS server, is one of those its
// file store logs when it starts on files a server did not close — its state index older than
// the messages written after it (nats-server's filestore.go, recoverFullState and the
// errPriorState it returns) — and then rebuilds the state from the messages: what every start
// after a SIGKILL of a command that ran the embedded server (the OOM killer, a Job evicted) does,
// which loses nothing. As warnings, "Stream state outdated, last block has additional entries,
// will rebuild" and "Recovering stream state from index errored: prior state file", they read as
// a damaged queue on the next command. Its other warnings (a checksum that does not match, a
// block that cannot be found) are left as they are.
func rebuildAfterUncleanStop(msg string) bool {
	return strings.Contains(msg, "Stream state outdated, last block has additional entries, will rebuild") ||
		strings.Contains(msg, "Stream state outdated, found extra blocks, will rebuild") ||
		strings.Contains(msg, "Recovering stream state from index errored: prior state file")
}
func (n *natsLogger) Fatalf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any) { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any) {}
