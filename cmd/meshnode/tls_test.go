package main

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/meshnode/meshnode/internal/testcert"
)

// TestAgentBinaryTLS runs an agent whose API serves HTTPS and verifies
// clients: the client needs the CA and a client certificate. A SIGHUP
// after the certificate files change makes the API present the new pair.
func TestAgentBinaryTLS(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	ca, cert, key := testcert.Write(t, dir)
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
	ca2, cert2, key2 := testcert.Write(t, t.TempDir())
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
