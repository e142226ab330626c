package pipeline

import (
	"crypto/rand"
	"errors"
	"fmt"
	"log/slog"
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
}

// Embedded is a running in-process NATS server with JetStream enabled.
type Embedded struct {
	srv   *server.Server
	token string
}

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
		MaxPayload: 8 << 20,
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("embedded NATS: %w", err)
	}
	if cfg.Logger != nil {
		srv.SetLoggerV2(&natsLogger{cfg.Logger}, false, false, false)
	}
	srv.Start()
	if !srv.ReadyForConnections(30 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS: not ready after 30s (store dir %s)", cfg.Dir)
	}
	if !srv.JetStreamEnabled() {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded NATS: JetStream failed to start (store dir %s)", cfg.Dir)
	}
	return &Embedded{srv: srv, token: cfg.Token}, nil
}

// ClientURL returns the URL clients connect to, with the token: nats://TOKEN@host:port. It is a
// secret: print it through redact.URL.
func (e *Embedded) ClientURL() string {
	return "nats://" + e.token + "@" + strings.TrimPrefix(e.srv.ClientURL(), "nats://")
}

// Shutdown stops the server and waits until it has stopped; JetStream state is flushed to disk.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// natsLogger adapts slog to the nats-server logger interface. Notices and debug output are
// dropped below warning level to keep the CLI quiet.
type natsLogger struct{ l *slog.Logger }

func (n *natsLogger) Noticef(format string, v ...any) { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Warnf(format string, v ...any)   { n.l.Warn(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Fatalf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Errorf(format string, v ...any)  { n.l.Error(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Debugf(format string, v ...any)  { n.l.Debug(fmt.Sprintf(format, v...)) }
func (n *natsLogger) Tracef(format string, v ...any)  {}
