package node

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/swim/swimnet"
	"github.com/meshnode/meshnode/wire"
)

// A wrong gossip key, cluster label, keyring switch or CA must never be
// silent: every packet and stream refused for such a cause is counted by
// reason (meshnode_swim_packets_bad_total, meshnode_stream_rejected_total)
// and logged, at most once per reason (and side, for streams) per
// rejectLogWindow, with the remote address and the number of lines held
// back; a joiner's failed attempts are logged with what probably went
// wrong.

// Reasons a packet or a stream is refused: the values of the reason label.
const (
	reasonUnknownKey = "unknown_key"       // encrypted under a key ID this node does not hold
	reasonAuth       = "auth_failed"       // the key ID is held but authentication fails: another label (or key), forged, damaged
	reasonPlaintext  = "plaintext_refused" // plaintext while this node only accepts encrypted input
	reasonEncrypted  = "encrypted_refused" // encrypted while this node has no key
	reasonVersion    = "version"           // a wire version this node does not speak
	reasonMalformed  = "malformed"         // not meshnode's encoding: truncated, bad checksum, over a limit, undecodable
	reasonBadCert    = "bad_certificate"   // the peer's TLS certificate is missing or not signed by this node's CA
	reasonTLS        = "tls_handshake"     // another TLS failure: the peer does not speak TLS, or refused this node's certificate
)

// packetReasons and streamReasons return the label values each counter
// starts with at zero, so that alerts on rate() see every series.
func packetReasons() []string {
	return []string{reasonUnknownKey, reasonAuth, reasonPlaintext, reasonEncrypted, reasonVersion, reasonMalformed}
}

func streamReasons() []string { return append(packetReasons(), reasonBadCert, reasonTLS) }

// reasonHint says what a reason probably means, for the log line.
func reasonHint(reason string) string {
	switch reason {
	case reasonUnknownKey:
		return "the sender encrypts with a gossip key this node does not hold (another key, or a key rotation not done on every member)"
	case reasonAuth:
		return "the sender has another cluster label (--label), or another key under the same key ID, or the bytes were forged or damaged"
	case reasonPlaintext:
		return "the sender has no gossip key or sends plaintext, and this node accepts only encrypted input"
	case reasonEncrypted:
		return "the sender encrypts with a gossip key and this node has none"
	case reasonVersion:
		return "the sender speaks a wire version this node does not"
	case reasonMalformed:
		return "the bytes are not meshnode's protocol (another program, a scanner, or damage)"
	case reasonBadCert:
		return "the peer's TLS certificate is missing or not signed by this node's CA (--tls-ca-file)"
	case reasonTLS:
		return "the TLS handshake failed: the peer does not use TLS, or it refused this node's certificate (its CA differs)"
	}
	return ""
}

// errTLSHandshake marks the error of a failed TLS handshake on the gossip
// port, as server or client.
var errTLSHandshake = errors.New("node: tls handshake")

// rejectReason classifies why a packet or stream was refused. It returns ""
// for errors that say nothing about the peer's key, label, certificate or
// encoding (a timeout, a connection closed or reset): those are counted as
// stream errors only.
func rejectReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, wire.ErrUnknownKey):
		return reasonUnknownKey
	case errors.Is(err, wire.ErrAuth):
		return reasonAuth
	case errors.Is(err, wire.ErrPlaintextRefused):
		return reasonPlaintext
	case errors.Is(err, wire.ErrEncryptedRefused):
		return reasonEncrypted
	case errors.Is(err, wire.ErrUnsupportedVersion):
		return reasonVersion
	case errors.Is(err, errTLSHandshake):
		return tlsReason(err)
	case remoteAlert(err):
		// With TLS 1.3 a server refuses a client's certificate after
		// the client's handshake has returned: the client reads the
		// alert on the stream.
		return reasonTLS
	case transient(err), errors.Is(err, wire.ErrTruncated):
		// A stream cut inside a frame is most often a peer that stopped
		// or a connection that broke; a packet that does not parse is
		// always malformed (badInput).
		return ""
	case errors.Is(err, wire.ErrTooLarge), errors.Is(err, wire.ErrBadChecksum),
		errors.Is(err, wire.ErrMalformed), errors.Is(err, wire.ErrUnknownType), errors.Is(err, wire.ErrDecrypt),
		errors.Is(err, ErrStream):
		// swimnet.ErrStream is not here: it wraps I/O errors too.
		return reasonMalformed
	}
	return ""
}

// tlsReason classifies a failed handshake.
func tlsReason(err error) string {
	var (
		verr *tls.CertificateVerificationError
		uerr x509.UnknownAuthorityError
		ierr x509.CertificateInvalidError
	)
	switch {
	case errors.As(err, &verr), errors.As(err, &uerr), errors.As(err, &ierr),
		strings.Contains(err.Error(), "didn't provide a certificate"), strings.Contains(err.Error(), "peer sent no certificate"):
		return reasonBadCert
	case errors.Is(err, io.EOF) || errors.Is(err, os.ErrDeadlineExceeded) || isTimeout(err):
		// Nothing or nothing in time: a closed probe or an idle
		// connection, not a certificate problem.
		return ""
	}
	return reasonTLS
}

// remoteAlert reports a TLS alert the peer sent.
func remoteAlert(err error) bool {
	var op *net.OpError
	return errors.As(err, &op) && op.Op == "remote error"
}

// transient reports I/O errors that say nothing about the peer's
// configuration.
func transient(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) ||
		isTimeout(err)
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// rejectLogWindow is the shortest time between two log lines of one kind
// and reason.
const rejectLogWindow = 10 * time.Second

// rateLog lets one log line per key through per window and counts the
// lines it holds back. Its keys come from a fixed set (kinds times
// reasons), so its map stays small.
type rateLog struct {
	window time.Duration
	now    func() time.Time
	mu     sync.Mutex
	keys   map[string]*rateLogKey
}

type rateLogKey struct {
	last       time.Time
	suppressed int
}

func newRateLog(window time.Duration, now func() time.Time) *rateLog {
	return &rateLog{window: window, now: now, keys: make(map[string]*rateLogKey)}
}

// allow reports whether a line for key may be logged now and, if so, how
// many lines for key it held back since the last one.
func (l *rateLog) allow(key string) (ok bool, suppressed int) {
	now := l.now()
	l.mu.Lock()
	defer l.mu.Unlock()
	k := l.keys[key]
	if k == nil {
		k = &rateLogKey{}
		l.keys[key] = k
	} else if now.Sub(k.last) < l.window {
		k.suppressed++
		return false, 0
	}
	k.last = now
	suppressed, k.suppressed = k.suppressed, 0
	return true, suppressed
}

// badInput is the swim Runner's OnBadInput: it counts and logs a packet, a
// swim stream or a swim reply that could not be read.
func (n *Node) badInput(in swimnet.BadInput) {
	from, err := in.From, in.Err
	if in.Stream {
		side := "server"
		if in.Reply {
			side = "client"
		}
		n.streamRejected(from, side, err)
		return
	}
	reason := rejectReason(err)
	if reason == "" {
		reason = reasonMalformed // a packet that does not open or parse is always bad
	}
	n.met.packetsBad.WithLabelValues(reason).Inc()
	if ok, held := n.rejects.allow("udp/" + reason); ok {
		n.log.Warn("gossip packet rejected", "reason", reason, "remote", from.String(), "hint", reasonHint(reason), "err", err.Error(), "suppressed", held)
	}
}

// streamRejected counts and logs a TCP stream refused for a reason that
// rejectReason recognises; side is "server" for a stream the peer opened
// and "client" for one this node opened.
func (n *Node) streamRejected(from netip.AddrPort, side string, err error) {
	reason := rejectReason(err)
	if reason == "" {
		return
	}
	n.met.streamRejected.WithLabelValues(reason).Inc()
	if reason != reasonBadCert && reason != reasonTLS {
		// A frame that does not open is gossip input that does not open,
		// whether it came by UDP or over a stream: a joiner with another
		// key or label only ever sends frames (its join is a stream), and
		// this is the counter operators alert on for exactly that.
		n.met.packetsBad.WithLabelValues(reason).Inc()
	}
	if ok, held := n.rejects.allow("tcp/" + side + "/" + reason); ok {
		n.log.Warn("stream rejected", "reason", reason, "side", side, "remote", from.String(), "hint", reasonHint(reason), "err", err.Error(), "suppressed", held)
	}
}

// joinFailed is the swim Runner's OnJoinFailed: it keeps the error, with a
// hint, for JoinError and logs it (once per cause per window).
func (n *Node) joinFailed(attempt int, err error) {
	cause, hint := joinHint(err)
	if hint != "" {
		err = fmt.Errorf("%w; %s", err, hint)
	}
	n.joinErr.Store(&err)
	if ok, held := n.rejects.allow("join/" + cause); ok {
		n.log.Warn("join attempt failed", "attempt", attempt, "err", err.Error(), "suppressed", held)
	}
}

// joinHint says what probably made a join attempt fail, from the joiner's
// side: a seed that cannot open this node's frames closes the stream and
// logs why, so the joiner can only point there.
func joinHint(err error) (cause, hint string) {
	switch {
	case remoteAlert(err):
		return "tls", "the seed refused this node's TLS certificate (it trusts another CA, or this node's certificate expired); the seed logs the reason"
	case errors.Is(err, errTLSHandshake):
		if tlsReason(err) == reasonBadCert {
			return "tls", "the seed's TLS certificate is not signed by this node's CA (--tls-ca-file)"
		}
		return "tls", "the TLS handshake with the seed failed: it may not use TLS, or it refused this node's certificate"
	case errors.Is(err, swimnet.ErrNoReply):
		return "noreply", "the seed closed the connection without answering: it may use another gossip key, cluster label or plaintext setting, or TLS (it logs the reason), or it is overloaded or leaving"
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused", "nothing listens at the seed's address"
	case errors.Is(err, swimnet.ErrStream):
		return "stream", "the seed's answer could not be read: it may use another gossip key, cluster label or plaintext setting"
	case isTimeout(err) || errors.Is(err, os.ErrDeadlineExceeded):
		return "timeout", "the seed did not answer in time: it is down or unreachable, or a firewall drops the traffic"
	}
	return "other", ""
}

// JoinError returns why the last join attempt failed, with a hint of what
// probably went wrong, while the node is still joining; nil once joined or
// before any attempt failed.
func (n *Node) JoinError() error {
	if n.mem == nil || n.mem.Joined() {
		return nil
	}
	if p := n.joinErr.Load(); p != nil {
		return *p
	}
	return nil
}
