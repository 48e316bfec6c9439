package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

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

// TestAgentProxyTLS: with --proxy-tls-cert and --proxy-tls-key the agent's
// proxy serves HTTPS; a client trusting the certificate gets a completion,
// and one that does not trust it is refused in the handshake.
func TestAgentProxyTLS(t *testing.T) {
	bin := buildBinary(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"text_completion","choices":[{"text":"hi"}]}`)
	}))
	defer up.Close()
	ca, cert, key := testcert.Write(t, t.TempDir())
	a := startAgent(t, bin, nil, "--node", "pxs", "--bind", "127.0.0.1:0", "--api-addr", "127.0.0.1:0",
		"--proxy-addr", "127.0.0.1:0", "--proxy-tls-cert", cert, "--proxy-tls-key", key, "--profile", "local", "--log-format", "json")
	cli{t, bin, a.api}.ok("workers", "put", "w1", "--url", up.URL, "--model", "m")
	pem, err := os.ReadFile(ca)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	post := func(c *http.Client) (int, error) {
		resp, err := c.Post("https://"+a.proxy+"/v1/completions", "application/json", strings.NewReader(`{"model":"m","prompt":"hello"}`))
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if !strings.Contains(string(b), `"hi"`) {
			return resp.StatusCode, fmt.Errorf("answer %q", b)
		}
		return resp.StatusCode, nil
	}
	trusting := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	defer trusting.CloseIdleConnections()
	if code, err := post(trusting); err != nil || code != 200 {
		t.Fatalf("trusting client: %d, %v", code, err)
	}
	var uerr x509.UnknownAuthorityError
	if _, err := post(&http.Client{Timeout: 30 * time.Second}); !errors.As(err, &uerr) {
		t.Fatalf("client without the CA: %v, want an unknown authority", err)
	}
}
