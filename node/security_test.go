package node

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testcert"
)

// TestSecureCluster runs two nodes with an encrypted gossip key and mutual
// TLS on streams and the API, and checks that a node without the key cannot
// read the cluster. It stays on real sockets on purpose: TLS handshakes on
// the gossip port and the API's TLS listener are what it checks.
func TestSecureCluster(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testcert.Write(t, dir)
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(make([]byte, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	secure := func(name string) Config {
		c := localConfig(name, "")
		c.EncryptKeyFile, c.TLSCertFile, c.TLSKeyFile, c.TLSCAFile, c.TLSVerifyClients = keyFile, cert, key, ca, true
		return c
	}
	c := &testCluster{t: t, client: &http.Client{}}
	t.Cleanup(func() {
		for _, nd := range c.nodes {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			_ = nd.Shutdown(ctx)
			cancel()
		}
	})
	c.cfgs = []Config{secure("s0"), secure("s1"), localConfig("plain", "")}
	c.nodes = make([]*Node, 3)
	for i := range c.cfgs {
		c.start(i)
	}
	c.join(1)
	c.join(2) // plaintext node trying to join the encrypted cluster
	// API over TLS with a client certificate.
	pem, _ := os.ReadFile(ca)
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	cc, err := tls.LoadX509KeyPair(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{cc}}}
	defer tr.CloseIdleConnections()
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	get := func(i int, path string) (*http.Response, error) {
		return client.Get(fmt.Sprintf("https://%s%s", c.nodes[i].APIAddr(), path))
	}
	eventually(t, "secure nodes converge", func() error {
		if len(c.nodes[0].liveMembers()) != 2 || len(c.nodes[1].liveMembers()) != 2 {
			return fmt.Errorf("members: %d, %d", len(c.nodes[0].liveMembers()), len(c.nodes[1].liveMembers()))
		}
		if ok, why := c.nodes[1].Ready(); !ok {
			return fmt.Errorf("s1: %s", why)
		}
		return nil
	})
	if err := c.nodes[0].st.put("ns", "k", []byte("v"), time.Now()); err != nil {
		t.Fatal(err)
	}
	eventually(t, "write replicates over the encrypted transport", func() error {
		resp, err := get(1, "/v1/kv/ns/k")
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			return fmt.Errorf("status %d", resp.StatusCode)
		}
		return nil
	})
	// A client without a certificate reaches the probes (documented as
	// needing no secret) and nothing else.
	bare := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	for path, want := range map[string]int{"/livez": 200, "/readyz": 200, "/healthz": 200, "/v1/status": 403, "/v1/kv/ns/k": 403, "/metrics": 403} {
		resp, err := bare.Get("https://" + c.nodes[0].APIAddr() + path)
		if err != nil {
			t.Fatalf("GET %s without a client certificate: %v", path, err)
		}
		resp.Body.Close()
		if resp.StatusCode != want {
			t.Errorf("GET %s without a client certificate: %d, want %d", path, resp.StatusCode, want)
		}
	}
	bare.CloseIdleConnections()
	// A certificate from another CA is refused in the handshake.
	_, strangerCert, strangerKey := testcert.Write(t, t.TempDir())
	sc, err := tls.LoadX509KeyPair(strangerCert, strangerKey)
	if err != nil {
		t.Fatal(err)
	}
	stranger := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool, Certificates: []tls.Certificate{sc}}}, Timeout: 10 * time.Second}
	if resp, err := stranger.Get("https://" + c.nodes[0].APIAddr() + "/livez"); err == nil {
		resp.Body.Close()
		t.Error("API accepted a client certificate from another CA")
	}
	stranger.CloseIdleConnections()
	// ReloadTLS: a pair from another CA makes new API connections fail for
	// clients trusting the cluster CA; the original pair makes them work
	// again; a broken file is refused and the current pair kept.
	orig := map[string][]byte{}
	for _, p := range []string{cert, key} {
		orig[p], _ = os.ReadFile(p)
	}
	_, otherCert, otherKey := testcert.Write(t, t.TempDir())
	for from, to := range map[string]string{otherCert: cert, otherKey: key} {
		b, _ := os.ReadFile(from)
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.nodes[0].ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	tr.CloseIdleConnections()
	if resp, err := get(0, "/livez"); err == nil {
		resp.Body.Close()
		t.Fatal("API still presents the old certificate after ReloadTLS")
	}
	if err := os.WriteFile(key, []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := c.nodes[0].ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS accepted a broken key file")
	}
	for p, b := range orig {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.nodes[0].ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	resp, err := get(0, "/livez")
	if err != nil {
		t.Fatalf("API after reloading the original pair: %v", err)
	}
	resp.Body.Close()
	// The plaintext node never gets in.
	for _, m := range c.nodes[0].members() {
		if m.Name == "plain" {
			t.Fatalf("plaintext node joined the encrypted cluster: %+v", m)
		}
	}
	if _, ok := c.nodes[2].st.get("ns", "k"); ok {
		t.Fatal("plaintext node read the encrypted cluster's state")
	}
}

func TestParseKey(t *testing.T) {
	raw := make([]byte, 32)
	for i := range raw {
		raw[i] = byte(i)
	}
	tests := []struct {
		name string
		in   []byte
		ok   bool
	}{
		{"raw", raw, true},
		{"hex", []byte(hex.EncodeToString(raw) + "\n"), true},
		{"base64", []byte("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="), true},
		{"short", []byte("abc"), false},
		{"hex of 16 bytes", []byte(hex.EncodeToString(raw[:16])), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			k, err := parseKey(tc.in)
			if tc.ok != (err == nil) {
				t.Fatalf("err %v, want ok=%v", err, tc.ok)
			}
			if tc.ok && string(k) != string(raw) {
				t.Fatalf("key %x, want %x", k, raw)
			}
		})
	}
}
