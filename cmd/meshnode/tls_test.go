package main

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// writeCerts writes a CA and a certificate it signs for 127.0.0.1, good
// for servers and clients, and returns the paths of ca, cert and key.
func writeCerts(t *testing.T, dir string) (ca, cert, key string) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test ca"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caCert, _ := x509.ParseCertificate(caDER)
	leafKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leafTmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "member"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.Add(time.Hour), IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth}}
	leafDER, err := x509.CreateCertificate(rand.Reader, leafTmpl, caCert, &leafKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(leafKey)
	if err != nil {
		t.Fatal(err)
	}
	write := func(name, typ string, der []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	return write("ca.pem", "CERTIFICATE", caDER), write("member.pem", "CERTIFICATE", leafDER), write("member.key", "EC PRIVATE KEY", keyDER)
}

// TestAgentBinaryTLS runs an agent whose API serves HTTPS and verifies
// clients: the client needs the CA and a client certificate. A SIGHUP
// after the certificate files change makes the API present the new pair.
func TestAgentBinaryTLS(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	ca, cert, key := writeCerts(t, dir)
	// The agent's own files, replaced later; the client keeps the first pair.
	agentCert, agentKey := filepath.Join(dir, "agent.pem"), filepath.Join(dir, "agent.key")
	copyFile(t, cert, agentCert)
	copyFile(t, key, agentKey)
	a := startAgent(t, bin, nil, "--node", "tls-1", "--bind", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--profile", "local",
		"--log-format", "json", "--tls-cert-file", agentCert, "--tls-key-file", agentKey, "--tls-ca-file", ca, "--tls-verify-clients")
	c := cli{t, bin, a.api}
	clientCert := []string{"--tls-cert-file", cert, "--tls-key-file", key}

	contains(t, "members over TLS", c.ok(append([]string{"members", "--tls-ca-file", ca}, clientCert...)...), "tls-1", "alive")
	contains(t, "https:// address", cli{t, bin, "https://" + a.api}.ok(append([]string{"status", "--tls-ca-file", ca}, clientCert...)...), "tls-1")
	c.fails(1, "HTTPS server", "members")
	if _, errOut, code := c.run("", "members", "--tls-ca-file", ca); code != 1 || strings.Count(errOut, "\n") != 1 {
		t.Errorf("without a client certificate: exit %d, stderr %q; want 1 and one line", code, errOut)
	}

	// A pair from another CA replaces the agent's files; SIGHUP loads it.
	ca2, cert2, key2 := writeCerts(t, t.TempDir())
	copyFile(t, cert2, agentCert)
	copyFile(t, key2, agentKey)
	if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	eventually(t, "the reload is logged", func() error {
		if !strings.Contains(a.stderr.String(), "reloaded the TLS certificate and key") {
			return errors.New("not yet")
		}
		return nil
	})
	// The API now presents the new certificate (the CA that verifies
	// clients is not reloaded, so the client keeps its first certificate).
	contains(t, "members after the reload", c.ok(append([]string{"members", "--tls-ca-file", ca2}, clientCert...)...), "tls-1")
	if _, errOut, code := c.run("", append([]string{"members", "--tls-ca-file", ca}, clientCert...)...); code != 1 || !strings.Contains(errOut, "certificate") {
		t.Errorf("verifying the reloaded API with the old CA: exit %d, stderr %q; want a certificate error", code, errOut)
	}

	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := a.wait(t); code != 0 {
		t.Errorf("exit %d after SIGTERM, want 0; stderr:\n%s", code, a.stderr.String())
	}
}

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o600); err != nil {
		t.Fatal(err)
	}
}
