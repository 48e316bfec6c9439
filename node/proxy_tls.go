package node

import (
	"crypto/tls"
	"fmt"
	"net"
)

// The proxy serves HTTPS when Config.ProxyTLSCertFile and ProxyTLSKeyFile
// are set. The pair is its own, apart from the cluster's (TLSCertFile):
// the proxy's clients verify a name a public or company CA vouches for,
// and present no certificate (the proxy's bearer token is their
// credential). ReloadTLS replaces the pair for new connections.

// loadTLS reads the proxy's certificate and key, when configured.
func (p *proxy) loadTLS() error {
	c := p.n.cfg
	if c.ProxyTLSCertFile == "" {
		return nil
	}
	cert, err := tls.LoadX509KeyPair(c.ProxyTLSCertFile, c.ProxyTLSKeyFile)
	if err != nil {
		return fmt.Errorf("node: proxy tls: %w", err)
	}
	p.cert.Store(&cert)
	return nil
}

// wrapTLS returns ln serving TLS with the proxy's pair, or ln itself
// without one. TLS 1.2 is the floor: OpenAI clients of every language
// speak it. HTTP/1.1 only, as on plain HTTP: server-sent events need
// nothing more.
func (p *proxy) wrapTLS(ln net.Listener) net.Listener {
	if p.cert.Load() == nil {
		return ln
	}
	return tls.NewListener(ln, &tls.Config{
		MinVersion:     tls.VersionTLS12,
		NextProtos:     []string{"http/1.1"},
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) { return p.cert.Load(), nil },
	})
}

// ProxyTLS reports whether the proxy serves HTTPS.
func (n *Node) ProxyTLS() bool { return n.proxy != nil && n.proxy.cert.Load() != nil }
