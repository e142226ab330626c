package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/jwt/v2"
	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nkeys"

	"github.com/paperpipe/paperpipe/internal/natstest"
)

// testCA makes a CA and a certificate it signs for 127.0.0.1; it returns the server's TLS
// configuration and the path of the CA's PEM file.
func testCA(t *testing.T) (*tls.Config, string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "paperpipe test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, err := x509.ParseCertificate(caDER)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		KeyUsage: x509.KeyUsageDigitalSignature}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, caCert, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile := filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{leafDER}, PrivateKey: key}}, MinVersion: tls.VersionTLS12}, caFile
}

// A NATS server of its own (NATS_URL) that takes only an NKey user and serves TLS with a
// certificate of a private CA: paperpipe reaches it with PAPERPIPE_NATS_NKEY (the seed's file)
// and PAPERPIPE_NATS_CA (the CA's PEM file), and is refused without either.
func TestNATSNkeyAndCAReachASecuredServer(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	pub, err := user.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	seedFile := filepath.Join(t.TempDir(), "paperpipe.nk")
	if err := os.WriteFile(seedFile, seed, 0o600); err != nil {
		t.Fatal(err)
	}
	tlsConfig, caFile := testCA(t)
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.Nkeys = []*server.NkeyUser{{Nkey: pub}}
		o.TLS, o.TLSConfig, o.TLSTimeout = true, tlsConfig, 2
	})
	log := slog.New(slog.DiscardHandler)
	for _, tc := range []struct {
		name       string
		nkey, ca   string
		wantToWork bool
		hint       string // what the error names
	}{
		{"the seed and the CA", seedFile, caFile, true, ""},
		{"without the seed", "", caFile, false, "PAPERPIPE_NATS_NKEY"},
		{"without the CA", seedFile, "", false, "PAPERPIPE_NATS_CA"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := &config{DataDir: t.TempDir(), Replicas: 1, AckWait: time.Minute, MaxDeliver: 8,
				NATSURL: srv.ClientURL(), NATSNkey: tc.nkey, NATSCA: tc.ca}
			b, err := connectBroker(t.Context(), c, log, brokerClient)
			if err == nil {
				b.close()
			}
			if (err == nil) != tc.wantToWork || err != nil && !strings.Contains(err.Error(), tc.hint) {
				t.Errorf("connectBroker %s: %v; want it to work: %v (else an error naming %s)", tc.name, err, tc.wantToWork, tc.hint)
			}
		})
	}
}

// PAPERPIPE_NATS_NKEY and PAPERPIPE_NATS_CA are checked before anything is reached: a file that
// cannot be read, or either without NATS_URL (the embedded server needs neither), is refused
// with the variable's name, exit 2.
func TestNATSSecuritySettingsAreChecked(t *testing.T) {
	t.Parallel()
	missing := filepath.Join(t.TempDir(), "missing.nk")
	for _, tc := range []struct {
		env  []string
		want string
	}{
		{[]string{"NATS_URL=nats://127.0.0.1:4222", "PAPERPIPE_NATS_NKEY=" + missing}, "PAPERPIPE_NATS_NKEY=" + `"` + missing + `"`},
		{[]string{"NATS_URL=nats://127.0.0.1:4222", "PAPERPIPE_NATS_CA=" + missing}, "PAPERPIPE_NATS_CA=" + `"` + missing + `"`},
		{[]string{"NATS_URL=", "PAPERPIPE_NATS_CA=" + missing}, "PAPERPIPE_NATS_CA is set but NATS_URL is not"},
	} {
		if r := newCLI(t, tc.env...).run("version"); r.code != 2 || !strings.Contains(r.stderr, tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 and %q", tc.env, r.code, r.stderr, tc.want)
		}
	}
}

// PAPERPIPE_NATS_NKEY names a file; the seed itself given there (as other tools take it, in
// NATS_NKEY), or a credentials file's content, is refused without being shown: the error quoted
// the value, twice, on stderr and into the logs of whatever ran paperpipe.
func TestASeedGivenForItsFileIsRefusedWithoutBeingShown(t *testing.T) {
	t.Parallel()
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds := "-----BEGIN NATS USER JWT-----\neyJhbGciOi.x.y\n------END NATS USER JWT------\n\n-----BEGIN USER NKEY SEED-----\n" +
		string(seed) + "\n------END USER NKEY SEED------\n"
	for _, value := range []string{string(seed), string(seed) + "\n", creds} {
		r := newCLI(t, "NATS_URL=nats://127.0.0.1:4222", "PAPERPIPE_NATS_NKEY="+value).run("version")
		if r.code != 2 || strings.Contains(r.stderr, string(seed[2:])) || !strings.Contains(r.stderr, "PAPERPIPE_NATS_NKEY") || !strings.Contains(r.stderr, "not shown") {
			t.Errorf("PAPERPIPE_NATS_NKEY set to a seed (%d bytes): exit %d, stderr %q; want 2, naming the setting and not showing the seed", len(value), r.code, r.stderr)
		}
	}
}

// A NATS server in operator mode (decentralized JWT auth: a lab's shared server set up with
// nsc, Synadia Cloud) hands each user a credentials file (.creds) holding the user's JWT and
// NKey seed. Given in PAPERPIPE_NATS_NKEY, paperpipe sent the seed alone, without the JWT, and
// the server refused it ("Authorization Violation"), with no setting that took the file: it
// reaches the server with it now.
func TestNATSCredsFileReachesAnOperatorModeServer(t *testing.T) {
	t.Parallel()
	must := func(s string, err error) string {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	op, err := nkeys.CreateOperator()
	if err != nil {
		t.Fatal(err)
	}
	acc, err := nkeys.CreateAccount()
	if err != nil {
		t.Fatal(err)
	}
	user, err := nkeys.CreateUser()
	if err != nil {
		t.Fatal(err)
	}
	accPub := must(acc.PublicKey())
	ac := jwt.NewAccountClaims(accPub)
	ac.Limits.JetStreamLimits = jwt.JetStreamLimits{MemoryStorage: -1, DiskStorage: -1, Streams: -1, Consumer: -1}
	accJWT := must(ac.Encode(op))
	userJWT := must(jwt.NewUserClaims(must(user.PublicKey())).Encode(acc))
	seed, err := user.Seed()
	if err != nil {
		t.Fatal(err)
	}
	creds, err := jwt.FormatUserConfig(userJWT, seed)
	if err != nil {
		t.Fatal(err)
	}
	credsFile := filepath.Join(t.TempDir(), "paperpipe.creds")
	if err := os.WriteFile(credsFile, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	sys, err := nkeys.CreateAccount() // the server's own, which operator mode needs
	if err != nil {
		t.Fatal(err)
	}
	sysPub := must(sys.PublicKey())
	resolver := &server.MemAccResolver{}
	for pub, claims := range map[string]string{accPub: accJWT, sysPub: must(jwt.NewAccountClaims(sysPub).Encode(op))} {
		if err := resolver.Store(pub, claims); err != nil {
			t.Fatal(err)
		}
	}
	srv := natstest.StartWith(t, func(o *server.Options) {
		o.TrustedKeys = []string{must(op.PublicKey())}
		o.AccountResolver = resolver
		o.SystemAccount = sysPub
	})
	c := &config{DataDir: t.TempDir(), Replicas: 1, AckWait: time.Minute, MaxDeliver: 8,
		NATSURL: srv.ClientURL(), NATSNkey: credsFile}
	b, err := connectBroker(t.Context(), c, slog.New(slog.DiscardHandler), brokerClient)
	if err != nil {
		t.Fatalf("connectBroker with a .creds file in PAPERPIPE_NATS_NKEY: %v", err)
	}
	b.close()
}

// A .creds file without its seed (its JWT alone, a copy cut short) is read at each connection
// attempt, not at start as a seed file is: every command stopped with "connect to NATS at …:
// error signing nonce: unable to extract key pair from file …: nkeys: no nkey seed found (is
// nats-server running? or unset NATS_URL to use the embedded server)", as for a server that
// is down. It is refused at start, naming PAPERPIPE_NATS_NKEY and what the file lacks.
func TestNATSCredsFileWithoutItsSeedIsRefusedNamingTheSetting(t *testing.T) {
	t.Parallel()
	creds := "-----BEGIN NATS USER JWT-----\neyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.e30.x\n------END NATS USER JWT------\n"
	f := filepath.Join(t.TempDir(), "u.creds")
	if err := os.WriteFile(f, []byte(creds), 0o600); err != nil {
		t.Fatal(err)
	}
	srv := natstest.Start(t)
	c := &config{DataDir: t.TempDir(), Replicas: 1, AckWait: time.Minute, MaxDeliver: 8, NATSURL: srv.ClientURL(), NATSNkey: f}
	b, err := connectBroker(t.Context(), c, slog.New(slog.DiscardHandler), brokerClient)
	if err == nil {
		b.close()
		t.Fatal("connectBroker with a .creds file without its seed: no error")
	}
	var unreachable *unreachableError
	if msg := err.Error(); !strings.Contains(msg, "PAPERPIPE_NATS_NKEY") || !strings.Contains(msg, "seed") ||
		strings.Contains(msg, "nats-server running") || errors.As(err, &unreachable) {
		t.Errorf("connectBroker with a .creds file without its seed: %v; want it to name PAPERPIPE_NATS_NKEY and the seed missing, not a server down", err)
	}
}
