package node

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/testcert"
	"github.com/prometheus/client_golang/prometheus"
)

// TestProxyServesHTTPS: with a certificate and key, the proxy listens for
// HTTPS on its address; a client trusting the certificate streams a
// completion through it, a plain HTTP client gets nothing, and ReloadTLS
// makes new connections present a new pair.
func TestProxyServesHTTPS(t *testing.T) {
	dir := t.TempDir()
	ca, cert, key := testcert.Write(t, dir)
	n, err := New(Config{Name: "p1", BindAddr: "127.0.0.1:0", APIAddr: "off", ProxyAddr: "127.0.0.1:0", Profile: "local",
		ProxyTLSCertFile: cert, ProxyTLSKeyFile: key, Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	if err := n.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = n.Shutdown(context.Background()) })
	if !n.ProxyTLS() {
		t.Fatal("ProxyTLS() = false")
	}
	e := newFakeEngine(t, "e")
	register(t, n, "e", e.srv.URL, "m")

	client := func(caFile string) *http.Client {
		pem, err := os.ReadFile(caFile)
		if err != nil {
			t.Fatal(err)
		}
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
		tr := &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}
		t.Cleanup(tr.CloseIdleConnections)
		return &http.Client{Transport: tr, Timeout: 30 * time.Second}
	}
	url := "https://" + n.ProxyAddr() + "/v1/chat/completions"
	resp, err := client(ca).Post(url, "application/json", strings.NewReader(chatBody("m", "hello", true)))
	if err != nil {
		t.Fatal(err)
	}
	first, _ := bufio.NewReader(resp.Body).ReadString('\n')
	resp.Body.Close()
	if resp.StatusCode != 200 || resp.TLS == nil || workerOf(t, first) != "e" {
		t.Fatalf("over HTTPS: %d, TLS %v, %q", resp.StatusCode, resp.TLS != nil, first)
	}

	plain := &http.Client{Transport: &http.Transport{}, Timeout: 30 * time.Second}
	if resp, err := plain.Post("http://"+n.ProxyAddr()+"/v1/chat/completions", "application/json", strings.NewReader(chatBody("m", "hello", false))); err == nil {
		resp.Body.Close()
		if resp.StatusCode == 200 {
			t.Fatal("plain HTTP got a completion from the HTTPS proxy")
		}
	}

	// A pair from another CA replaces the files: after ReloadTLS, only a
	// client trusting the new CA connects.
	ca2, cert2, key2 := testcert.Write(t, t.TempDir())
	for from, to := range map[string]string{cert2: cert, key2: key} {
		b, err := os.ReadFile(from)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(to, b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if err := n.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if resp, err := client(ca2).Get("https://" + n.ProxyAddr() + "/v1/models"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("with the new CA after the reload: %v", err)
	} else {
		resp.Body.Close()
	}
	var uerr x509.UnknownAuthorityError
	if _, err := client(ca).Get("https://" + n.ProxyAddr() + "/v1/models"); !errors.As(err, &uerr) {
		t.Fatalf("with the old CA after the reload: %v, want an unknown authority", err)
	}
	// A pair that does not load leaves the current one in place.
	if err := os.WriteFile(filepath.Join(dir, "member.key"), []byte("junk"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := n.ReloadTLS(); err == nil {
		t.Fatal("ReloadTLS with a broken key succeeded")
	}
	if resp, err := client(ca2).Get("https://" + n.ProxyAddr() + "/v1/models"); err != nil {
		t.Fatalf("after a failed reload: %v", err)
	} else {
		resp.Body.Close()
	}
}

// TestProxyTLSConfig: the certificate and key go together, need a proxy,
// and must load.
func TestProxyTLSConfig(t *testing.T) {
	_, cert, key := testcert.Write(t, t.TempDir())
	for _, tc := range []struct {
		name            string
		addr, cert, key string
		want            string
	}{
		{"cert without key", "127.0.0.1:0", cert, "", "proxy_tls_cert set without proxy_tls_key"},
		{"key without cert", "127.0.0.1:0", "", key, "proxy_tls_key set without proxy_tls_cert"},
		{"without a proxy", "", cert, key, "proxy_tls_cert set without proxy_addr"},
		{"missing file", "127.0.0.1:0", cert + ".none", key, "node: proxy tls"},
		{"key of nothing", "127.0.0.1:0", cert, cert, "node: proxy tls"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := New(Config{Name: "p1", BindAddr: "127.0.0.1:0", APIAddr: "off", ProxyAddr: tc.addr,
				ProxyTLSCertFile: tc.cert, ProxyTLSKeyFile: tc.key, Registerer: prometheus.NewRegistry()})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("New: %v, want an error with %q", err, tc.want)
			}
		})
	}
}
