package node

import (
	"fmt"
	"net"
	"net/http"
	"path"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/meshnode/meshnode/store"
)

// ValidName checks a name the API takes from a caller (a namespace, a worker
// ID, a limit name, a model, a member name): 1 to maxBytes bytes of valid
// UTF-8 without control characters (C0, DEL and C1, NUL included). what
// names the field in the error, which matches ErrBadRequest.
func ValidName(what, s string, maxBytes int) error {
	if s == "" || len(s) > maxBytes {
		return fmt.Errorf("%w: %s: want 1 to %d bytes", ErrBadRequest, what, maxBytes)
	}
	return validText(what, s)
}

// validText checks that s is valid UTF-8 without control characters.
func validText(what, s string) error {
	for i, r := range s {
		if r == utf8.RuneError {
			if _, size := utf8.DecodeRuneInString(s[i:]); size <= 1 {
				return fmt.Errorf("%w: %s: invalid UTF-8 at byte %d", ErrBadRequest, what, i)
			}
		}
		if unicode.IsControl(r) {
			return fmt.Errorf("%w: %s: control character %U at byte %d", ErrBadRequest, what, r, i)
		}
	}
	return nil
}

// ValidNamespace checks a namespace: a name of at most
// store.MaxNamespaceBytes bytes.
func ValidNamespace(ns string) error {
	return ValidName("namespace", ns, store.MaxNamespaceBytes)
}

// ValidKey checks a key: a name of at most store.MaxKeyBytes bytes whose
// '/'-separated segments are not "." or "..", and not empty except for a
// trailing one ("dir/" is a key, "/x" and "a//b" are not). Such keys could
// not be addressed by a URL path that every HTTP stack leaves alone.
func ValidKey(key string) error {
	if err := ValidName("key", key, store.MaxKeyBytes); err != nil {
		return err
	}
	segs := strings.Split(key, "/")
	for i, seg := range segs {
		switch {
		case seg == "." || seg == "..":
			return fmt.Errorf("%w: key %q: a segment is %q", ErrBadRequest, key, seg)
		case seg == "" && i < len(segs)-1:
			return fmt.Errorf("%w: key %q: empty segment", ErrBadRequest, key)
		}
	}
	return nil
}

// ValidSeed checks a seed address: host:port with a port in 1..65535 and a
// host that is an IP address or a DNS name.
func ValidSeed(s string) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return fmt.Errorf("%w: seed %q: want host:port", ErrBadRequest, s)
	}
	if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
		return fmt.Errorf("%w: seed %q: port %q: want 1 to 65535", ErrBadRequest, s, port)
	}
	if host == "" || len(host) > 253 {
		return fmt.Errorf("%w: seed %q: want a host of 1 to 253 bytes", ErrBadRequest, s)
	}
	if net.ParseIP(host) != nil {
		return nil
	}
	for _, label := range strings.Split(strings.TrimSuffix(host, "."), ".") {
		if label == "" || len(label) > 63 {
			return fmt.Errorf("%w: seed %q: host %q is not an IP address or a DNS name", ErrBadRequest, s, host)
		}
		for _, c := range []byte(label) {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return fmt.Errorf("%w: seed %q: host %q is not an IP address or a DNS name", ErrBadRequest, s, host)
			}
		}
	}
	return nil
}

// canonicalPath reports whether an escaped URL path has no empty, "." or ".."
// segments (a trailing slash aside): the paths net/http's ServeMux would
// otherwise redirect to a cleaned form, which a client following redirects
// would then write to.
func canonicalPath(p string) bool {
	if p == "" || p[0] != '/' {
		return false
	}
	c := path.Clean(p)
	if strings.HasSuffix(p, "/") && c != "/" {
		c += "/"
	}
	return c == p
}

// validNameHTTP writes a 400 and reports false when ValidName fails.
func validNameHTTP(w http.ResponseWriter, what, s string, maxBytes int) bool {
	if err := ValidName(what, s, maxBytes); err != nil {
		writeErr(w, err)
		return false
	}
	return true
}
