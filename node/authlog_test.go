package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/internal/testcert"
	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
)

func TestRateLog(t *testing.T) {
	now := time.Unix(1000, 0)
	l := newRateLog(10*time.Second, func() time.Time { return now })
	type step struct {
		advance    time.Duration
		key        string
		ok         bool
		suppressed int
	}
	steps := []step{
		{0, "udp/auth_failed", true, 0},
		{time.Second, "udp/auth_failed", false, 0},
		{time.Second, "udp/auth_failed", false, 0},
		{0, "tcp/auth_failed", true, 0}, // another key has its own window
		{7 * time.Second, "udp/auth_failed", false, 0},
		{time.Second, "udp/auth_failed", true, 3}, // 10 s after the first line, with the 3 held back
		{time.Second, "udp/auth_failed", false, 0},
		{time.Minute, "udp/auth_failed", true, 1},
		{0, "udp/unknown_key", true, 0},
	}
	for i, s := range steps {
		now = now.Add(s.advance)
		ok, suppressed := l.allow(s.key)
		if ok != s.ok || suppressed != s.suppressed {
			t.Errorf("step %d (%s): allow = %v, %d; want %v, %d", i, s.key, ok, suppressed, s.ok, s.suppressed)
		}
	}
}

// logCapture is a slog.Handler that keeps the records, for tests.
type logCapture struct {
	mu    *sync.Mutex
	recs  *[]map[string]string
	attrs []slog.Attr
}

func newLogCapture() *logCapture {
	return &logCapture{mu: new(sync.Mutex), recs: new([]map[string]string)}
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(_ context.Context, r slog.Record) error {
	m := map[string]string{"msg": r.Message, "level": r.Level.String()}
	for _, a := range h.attrs {
		m[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		m[a.Key] = a.Value.String()
		return true
	})
	h.mu.Lock()
	defer h.mu.Unlock()
	*h.recs = append(*h.recs, m)
	return nil
}

func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	c := *h
	c.attrs = append(append([]slog.Attr(nil), h.attrs...), as...)
	return &c
}

func (h *logCapture) WithGroup(string) slog.Handler { return h }

// find returns the records with message msg whose attributes include want.
func (h *logCapture) find(msg string, want map[string]string) []map[string]string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []map[string]string
next:
	for _, r := range *h.recs {
		if r["msg"] != msg {
			continue
		}
		for k, v := range want {
			if r[k] != v {
				continue next
			}
		}
		out = append(out, r)
	}
	return out
}

// startOneWindow starts node i of c with one log window for the whole test:
// every line past the first of a reason is held back.
func startOneWindow(c *testCluster, i int) {
	c.t.Helper()
	nd, err := New(c.cfgs[i])
	if err != nil {
		c.t.Fatal(err)
	}
	nd.rejects = newRateLog(time.Hour, time.Now)
	if err := nd.Start(); err != nil {
		c.t.Fatal(err)
	}
	c.nodes[i] = nd
}

// gossipKey writes a gossip key file of 32 bytes of b and returns its path
// and the keyring a node loads from it.
func gossipKey(t *testing.T, b byte) (string, *wire.Keyring) {
	t.Helper()
	key := make([]byte, wire.KeySize)
	for i := range key {
		key[i] = b
	}
	p := filepath.Join(t.TempDir(), "gossip.key")
	if err := os.WriteFile(p, []byte(hex.EncodeToString(key)), 0o600); err != nil {
		t.Fatal(err)
	}
	ring := wire.NewKeyring()
	if err := ring.Install(keyID(key), key); err != nil {
		t.Fatal(err)
	}
	return p, ring
}

// TestWrongKeyOrLabelIsNotSilent starts a seed and a joiner that cannot
// talk (another key, another label, one side without a key) on loopback,
// and checks that the seed counts and logs the joiner's refused streams by
// reason, that the joiner's join error says what probably went wrong, and
// that a burst of refused packets is counted in full but logged once per
// window, with the sender's address. It stays on real sockets on purpose:
// the burst comes from a raw UDP socket, and the logged address is the
// kernel's.
func TestWrongKeyOrLabelIsNotSilent(t *testing.T) {
	keyA, ringA := gossipKey(t, 0xa)
	keyB, ringB := gossipKey(t, 0xb)
	tests := []struct {
		name         string
		seed, joiner func(*Config)
		sender       wire.Config // how the joiner seals its packets
		reason       string
	}{
		{"another key",
			func(c *Config) { c.EncryptKeyFile = keyA },
			func(c *Config) { c.EncryptKeyFile = keyB },
			wire.Config{Keyring: ringB}, reasonUnknownKey},
		{"another label",
			func(c *Config) { c.EncryptKeyFile, c.Label = keyA, "prod" },
			func(c *Config) { c.EncryptKeyFile, c.Label = keyA, "staging" },
			wire.Config{Keyring: ringA, Label: "staging"}, reasonAuth},
		{"plaintext joiner",
			func(c *Config) { c.EncryptKeyFile = keyA },
			func(c *Config) {},
			wire.Config{}, reasonPlaintext},
		{"encrypted joiner",
			func(c *Config) {},
			func(c *Config) { c.EncryptKeyFile = keyA },
			wire.Config{Keyring: ringA}, reasonEncrypted},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seedLog, joinLog := newLogCapture(), newLogCapture()
			c := emptyCluster(t)
			for i, mod := range []func(*Config){tt.seed, tt.joiner} {
				cfg := localConfig(fmt.Sprintf("n%d", i), "")
				cfg.APIAddr = "off"
				cfg.Logger = slog.New([]*logCapture{seedLog, joinLog}[i])
				mod(&cfg)
				c.cfgs = append(c.cfgs, cfg)
				c.nodes = append(c.nodes, nil)
				startOneWindow(c, i)
			}
			seed, joiner := c.nodes[0], c.nodes[1]
			c.join(1)
			eventually(t, "the seed refuses the joiner's streams", func() error {
				if got := testutilCounter(seed.met.streamRejected.WithLabelValues(tt.reason)); got < 1 {
					return fmt.Errorf("stream_rejected_total{reason=%q} = %v", tt.reason, got)
				}
				return nil
			})
			lines := seedLog.find("stream rejected", map[string]string{"reason": tt.reason, "side": "server"})
			if len(lines) != 1 {
				t.Fatalf("seed logged %d lines for reason %s, want 1: %v", len(lines), tt.reason, lines)
			}
			if !strings.HasPrefix(lines[0]["remote"], "127.0.0.1:") || lines[0]["hint"] != reasonHint(tt.reason) {
				t.Errorf("seed's line: %v; want the remote address and the reason's hint", lines[0])
			}
			eventually(t, "the joiner says why it is not joined", func() error {
				err := joiner.JoinError()
				if err == nil {
					return errors.New("no join error")
				}
				if !strings.Contains(err.Error(), seed.Addr().String()) || !strings.Contains(err.Error(), "another gossip key, cluster label or plaintext setting") {
					return fmt.Errorf("join error %q: want the seed's address and a hint", err)
				}
				return nil
			})
			if got := joinLog.find("join attempt failed", nil); len(got) == 0 {
				t.Errorf("the joiner logged no failed join attempt")
			}
			if ok, why := joiner.Ready(); ok || why != "joining" {
				t.Errorf("joiner Ready = %v, %q; want false, joining", ok, why)
			}

			// The refused join's frames count as bad gossip input too: a
			// joiner only ever sends frames, and operators alert on this.
			if got := testutilCounter(seed.met.packetsBad.WithLabelValues(tt.reason)); got == 0 {
				t.Errorf("swim_packets_bad_total{reason=%q} = 0 after a refused join, want the join's frames counted", tt.reason)
			}
			// Stop the joiner's retries, so that only the burst below counts.
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_ = joiner.Shutdown(ctx)
			cancel()
			before := make(map[string]float64)
			for _, r := range packetReasons() {
				before[r] = testutilCounter(seed.met.packetsBad.WithLabelValues(r))
			}
			// A burst of packets sealed the joiner's way, from one socket.
			codec, err := wire.NewCodec(tt.sender)
			if err != nil {
				t.Fatal(err)
			}
			pkt, err := codec.AppendPacket(nil, &wire.Ping{Seq: 1, Target: "n0", SourceName: "n1"})
			if err != nil {
				t.Fatal(err)
			}
			conn, err := net.Dial("udp", seed.Addr().String())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			const burst = 20
			for range burst {
				if _, err := conn.Write(pkt); err != nil {
					t.Fatal(err)
				}
			}
			// Loopback does not drop 20 small datagrams into an idle
			// socket's buffer.
			eventually(t, "the seed counts every refused packet", func() error {
				if got := testutilCounter(seed.met.packetsBad.WithLabelValues(tt.reason)) - before[tt.reason]; got != burst {
					return fmt.Errorf("swim_packets_bad_total{reason=%q} grew by %v, want %d", tt.reason, got, burst)
				}
				return nil
			})
			lines = seedLog.find("gossip packet rejected", map[string]string{"reason": tt.reason})
			want := []map[string]string{{"msg": "gossip packet rejected", "level": "WARN", "reason": tt.reason,
				"remote": conn.LocalAddr().String(), "hint": reasonHint(tt.reason), "suppressed": "0"}}
			for _, l := range lines {
				delete(l, "err")
			}
			if diff := cmp.Diff(want, lines); diff != "" {
				t.Errorf("seed's packet log lines (-want +got):\n%s", diff)
			}
			for _, r := range packetReasons() {
				if r == tt.reason {
					continue
				}
				if got := testutilCounter(seed.met.packetsBad.WithLabelValues(r)) - before[r]; got != 0 {
					t.Errorf("swim_packets_bad_total{reason=%q} grew by %v, want 0", r, got)
				}
			}
		})
	}
}

// TestWrongCAIsNotSilent: members whose certificates another CA signed
// refuse each other's streams; the side that refuses a certificate counts
// and logs bad_certificate, as server and as client, and the joiner's join
// error points at TLS. It stays on real sockets on purpose: real TLS
// handshakes fail here.
func TestWrongCAIsNotSilent(t *testing.T) {
	caA, certA, keyA := testcert.Write(t, t.TempDir())
	caB, certB, keyB := testcert.Write(t, t.TempDir())
	tests := []struct {
		name string
		// The joiner's TLS files; the seed's are A's.
		ca, cert, key string
		// Who refuses a certificate, and what the joiner's error says.
		refuser  int
		joinHint string
	}{
		{"joiner trusts another CA", caB, certB, keyB, 1, "not signed by this node's CA"},
		{"joiner's certificate from another CA", caA, certB, keyB, 0, "refused this node's TLS certificate"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			logs := []*logCapture{newLogCapture(), newLogCapture()}
			c := emptyCluster(t)
			files := [][3]string{{caA, certA, keyA}, {tt.ca, tt.cert, tt.key}}
			for i := range 2 {
				cfg := localConfig(fmt.Sprintf("n%d", i), "")
				cfg.APIAddr = "off"
				cfg.Logger = slog.New(logs[i])
				cfg.TLSCAFile, cfg.TLSCertFile, cfg.TLSKeyFile = files[i][0], files[i][1], files[i][2]
				c.cfgs = append(c.cfgs, cfg)
				c.nodes = append(c.nodes, nil)
				startOneWindow(c, i)
			}
			c.join(1)
			refuser, refused := c.nodes[tt.refuser], c.nodes[1-tt.refuser]
			eventually(t, "the certificate is refused", func() error {
				if got := testutilCounter(refuser.met.streamRejected.WithLabelValues(reasonBadCert)); got < 1 {
					return fmt.Errorf("n%d stream_rejected_total{reason=bad_certificate} = %v", tt.refuser, got)
				}
				// The other side reads the refusal as a TLS alert.
				if got := testutilCounter(refused.met.streamRejected.WithLabelValues(reasonTLS)); got < 1 {
					return fmt.Errorf("n%d stream_rejected_total{reason=tls_handshake} = %v", 1-tt.refuser, got)
				}
				return nil
			})
			side := map[int]string{0: "server", 1: "client"}[tt.refuser]
			lines := logs[tt.refuser].find("stream rejected", map[string]string{"reason": reasonBadCert, "side": side})
			if len(lines) != 1 || !strings.HasPrefix(lines[0]["remote"], "127.0.0.1:") {
				t.Fatalf("n%d logged %v, want one bad_certificate line as %s with the remote address", tt.refuser, lines, side)
			}
			eventually(t, "the joiner says why it is not joined", func() error {
				err := c.nodes[1].JoinError()
				if err == nil || !strings.Contains(err.Error(), tt.joinHint) {
					return fmt.Errorf("join error %v: want %q", err, tt.joinHint)
				}
				return nil
			})
		})
	}
}

// TestRotationOutOfOrderIsNotSilent: a seed already encrypting with a new
// key that the joiner lacks (a rotation's "use" run before its "install"
// reached every member) reads the joiner's request but answers under the
// new key; the joiner, which cannot read the answer, counts and logs it as
// the client side of the stream, and its join error says the answer could
// not be read. It stays on real sockets, with the other wrong-key tests of
// this file, on purpose: one real check that refused bytes on loopback are
// counted and logged as on a network.
func TestRotationOutOfOrderIsNotSilent(t *testing.T) {
	keyA, _ := gossipKey(t, 0xa)
	logs := []*logCapture{newLogCapture(), newLogCapture()}
	c := emptyCluster(t)
	for i := range 2 {
		cfg := localConfig(fmt.Sprintf("n%d", i), "")
		cfg.APIAddr = "off"
		cfg.Logger = slog.New(logs[i])
		cfg.EncryptKeyFile = keyA
		c.cfgs = append(c.cfgs, cfg)
		c.nodes = append(c.nodes, nil)
		nd, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		nd.rejects = newRateLog(time.Hour, time.Now)
		if i == 0 {
			newKey := make([]byte, wire.KeySize)
			newKey[0] = 1
			if err := nd.keyring.Install(keyID(newKey), newKey); err != nil {
				t.Fatal(err)
			}
			if err := nd.keyring.Use(keyID(newKey)); err != nil {
				t.Fatal(err)
			}
		}
		if err := nd.Start(); err != nil {
			t.Fatal(err)
		}
		c.nodes[i] = nd
	}
	c.join(1)
	joiner := c.nodes[1]
	eventually(t, "the joiner refuses the seed's answer", func() error {
		if got := testutilCounter(joiner.met.streamRejected.WithLabelValues(reasonUnknownKey)); got < 1 {
			return fmt.Errorf("stream_rejected_total{reason=unknown_key} = %v", got)
		}
		err := joiner.JoinError()
		if err == nil || !strings.Contains(err.Error(), "answer could not be read") {
			return fmt.Errorf("join error %v: want the answer could not be read", err)
		}
		return nil
	})
	lines := logs[1].find("stream rejected", map[string]string{"reason": reasonUnknownKey, "side": "client"})
	if len(lines) != 1 || lines[0]["remote"] != c.nodes[0].Addr().String() {
		t.Fatalf("joiner logged %v, want one unknown_key line as client naming the seed %v", lines, c.nodes[0].Addr())
	}
}

func TestRejectReason(t *testing.T) {
	hs := func(err error) error { return fmt.Errorf("%w: %w", errTLSHandshake, err) }
	tests := []struct {
		name string
		err  error
		want string
	}{
		{"unknown key", fmt.Errorf("swim: bad stream: %w", wire.ErrUnknownKey), reasonUnknownKey},
		{"authentication", wire.ErrAuth, reasonAuth},
		{"plaintext", wire.ErrPlaintextRefused, reasonPlaintext},
		{"encrypted", wire.ErrEncryptedRefused, reasonEncrypted},
		{"version", wire.ErrUnsupportedVersion, reasonVersion},
		{"frame over the cap", fmt.Errorf("read frame: %w", wire.ErrTooLarge), reasonMalformed},
		{"unknown channel", fmt.Errorf("%w: unknown channel", ErrStream), reasonMalformed},
		{"stream cut inside a frame", wire.ErrTruncated, ""},
		{"end of stream", io.EOF, ""},
		{"deadline", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), ""},
		{"reset", &net.OpError{Op: "read", Err: syscall.ECONNRESET}, ""},
		{"untrusted certificate", hs(x509.UnknownAuthorityError{}), reasonBadCert},
		{"no client certificate", hs(errors.New("tls: client didn't provide a certificate")), reasonBadCert},
		{"not TLS", hs(tls.RecordHeaderError{Msg: "first record does not look like a TLS handshake"}), reasonTLS},
		{"peer refused our certificate", hs(&net.OpError{Op: "remote error", Err: errors.New("tls: bad certificate")}), reasonTLS},
		{"peer refused our certificate after the handshake", fmt.Errorf("%w: read frame: %w", swimnet.ErrStream, &net.OpError{Op: "remote error", Err: errors.New("tls: unknown certificate authority")}), reasonTLS},
		{"swim stream I/O error", fmt.Errorf("%w: read frame: %w", swimnet.ErrStream, net.ErrClosed), ""},
		{"too many swim messages", fmt.Errorf("%w: more than 16 messages", swimnet.ErrStream), ""},
		{"handshake never started", hs(io.EOF), ""},
		{"handshake timed out", hs(os.ErrDeadlineExceeded), ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := rejectReason(tt.err); got != tt.want {
				t.Errorf("rejectReason(%v) = %q, want %q", tt.err, got, tt.want)
			}
		})
	}
}
