package node

import (
	"bytes"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/meshnode/meshnode/wire"
)

// keyID is the ID a gossip key takes unless one is given: the first byte of
// its SHA-256. Every node derives the same ID from the same key, whether the
// key came from the configuration or was installed through the API, so a
// node restarted with a key the cluster rotated to at run time speaks the
// cluster's key ID.
func keyID(key []byte) uint8 {
	sum := sha256.Sum256(key)
	return sum[0]
}

// loadSecurity loads the API token, the gossip key and the TLS material.
func (n *Node) loadSecurity() error {
	c := n.cfg
	// Trimmed like a token file: Validate refused a token of white space.
	n.token = strings.TrimSpace(c.APIToken)
	if n.token == "" && c.APITokenFile != "" {
		b, err := os.ReadFile(c.APITokenFile)
		if err != nil {
			return fmt.Errorf("node: api token: %w", err)
		}
		n.token = strings.TrimSpace(string(b))
		if n.token == "" {
			return fmt.Errorf("%w: api token file %s is empty", ErrConfig, c.APITokenFile)
		}
	}
	key := []byte(c.EncryptKey)
	if len(key) == 0 && c.EncryptKeyFile != "" {
		b, err := os.ReadFile(c.EncryptKeyFile)
		if err != nil {
			return fmt.Errorf("node: gossip key: %w", err)
		}
		key = b
	}
	// Always a keyring, empty without a key: an empty keyring sends and
	// accepts plaintext, and keys can be installed at run time (API). A
	// keyring saved in the data directory wins over the configured key.
	var configured []byte
	if len(key) > 0 {
		k, err := parseKey(key)
		if err != nil {
			return err
		}
		configured = k
	}
	n.keyring = wire.NewKeyring()
	switch {
	case n.restoreKeyring():
		if configured != nil && !hasKey(n.keyring, configured) {
			n.log.Warn("the configured gossip key is not in the keyring saved in the data directory, which was changed at run time; using the saved keyring (delete the file to start from the configured key)",
				"file", filepath.Join(c.DataDir, fileKeyring))
		}
	case configured != nil:
		if err := n.keyring.Install(keyID(configured), configured); err != nil {
			return fmt.Errorf("node: gossip key: %w", err)
		}
	}
	if c.TLSCertFile != "" {
		cert, err := tls.LoadX509KeyPair(c.TLSCertFile, c.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("node: tls: %w", err)
		}
		pem, err := os.ReadFile(c.TLSCAFile)
		if err != nil {
			return fmt.Errorf("node: tls ca: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return fmt.Errorf("%w: tls_ca_file %s holds no certificate", ErrConfig, c.TLSCAFile)
		}
		// Members authenticate each other both ways: a stream carries
		// the whole state, so an unauthenticated client must not get it.
		n.cert.Store(&cert)
		getCert := func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return n.cert.Load(), nil }
		getClientCert := func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return n.cert.Load(), nil }
		n.tlsSrv = &tls.Config{GetCertificate: getCert, ClientCAs: pool, ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS13}
		n.tlsCli = &tls.Config{GetClientCertificate: getClientCert, RootCAs: pool, MinVersion: tls.VersionTLS13,
			// Members are addressed by IP, and certificates name nodes, not
			// addresses: verify the chain against the cluster CA only.
			InsecureSkipVerify: true, VerifyPeerCertificate: verifyChain(pool)}
		n.apiTLS = !c.APIPlaintext
	}
	return nil
}

// ReloadTLS reads the certificate and key files again (SIGHUP), the
// proxy's too: new connections, streams, API and proxy calls alike, use
// the new pair; established ones keep theirs. The CA is not reloaded.
// When a pair does not load, neither is replaced. Without TLS it does
// nothing.
func (n *Node) ReloadTLS() error {
	var cert, proxyCert *tls.Certificate
	if n.cfg.TLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(n.cfg.TLSCertFile, n.cfg.TLSKeyFile)
		if err != nil {
			return fmt.Errorf("node: tls reload: %w", err)
		}
		cert = &c
	}
	if n.proxy != nil && n.cfg.ProxyTLSCertFile != "" {
		c, err := tls.LoadX509KeyPair(n.cfg.ProxyTLSCertFile, n.cfg.ProxyTLSKeyFile)
		if err != nil {
			return fmt.Errorf("node: proxy tls reload: %w", err)
		}
		proxyCert = &c
	}
	// Both pairs read, or neither replaced.
	if cert != nil {
		n.cert.Store(cert)
	}
	if proxyCert != nil {
		n.proxy.cert.Store(proxyCert)
	}
	return nil
}

// apiTLSConfig returns the API listener's TLS configuration.
func (n *Node) apiTLSConfig() *tls.Config {
	cfg := n.tlsSrv.Clone()
	cfg.ClientAuth = tls.NoClientCert
	if n.cfg.TLSVerifyClients {
		// Not RequireAndVerifyClientCert: the probes need no certificate,
		// so the middleware asks for one on every other path.
		cfg.ClientAuth = tls.VerifyClientCertIfGiven
	}
	return cfg
}

// verifyChain verifies a peer's chain against pool, ignoring host names.
func verifyChain(pool *x509.CertPool) func([][]byte, [][]*x509.Certificate) error {
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("node: tls: peer sent no certificate")
		}
		certs := make([]*x509.Certificate, len(raw))
		for i, r := range raw {
			c, err := x509.ParseCertificate(r)
			if err != nil {
				return fmt.Errorf("node: tls: %w", err)
			}
			certs[i] = c
		}
		inter := x509.NewCertPool()
		for _, c := range certs[1:] {
			inter.AddCert(c)
		}
		_, err := certs[0].Verify(x509.VerifyOptions{Roots: pool, Intermediates: inter, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageAny}})
		if err != nil {
			return fmt.Errorf("node: tls: %w", err)
		}
		return nil
	}
}

// parseKey reads a 32-byte key given in hex, in base64 or raw. Raw keys must
// contain a byte that is not printable ASCII, so that text of 32 characters
// (a short hex or base64 key, a password) is refused rather than taken as a
// weak raw key.
func parseKey(b []byte) ([]byte, error) {
	s := string(bytes.TrimSpace(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == wire.KeySize {
		return k, nil
	}
	if k, err := base64.StdEncoding.DecodeString(s); err == nil && len(k) == wire.KeySize {
		return k, nil
	}
	if len(b) == wire.KeySize && bytes.ContainsFunc(b, func(r rune) bool { return r < 0x20 || r > 0x7e }) {
		return b, nil
	}
	return nil, fmt.Errorf("%w: gossip key: want %d bytes, hex, base64 or raw", ErrConfig, wire.KeySize)
}

// readSecret returns a secret given directly (from the environment) or in
// a file, trimmed; "" when neither is set.
func readSecret(direct, file, what string) (string, error) {
	if s := strings.TrimSpace(direct); s != "" {
		return s, nil
	}
	if file == "" {
		return "", nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("node: %s: %w", what, err)
	}
	s := strings.TrimSpace(string(b))
	if s == "" {
		return "", fmt.Errorf("%w: %s file %s is empty", ErrConfig, what, file)
	}
	return s, nil
}
