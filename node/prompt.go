package node

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
)

// The route and index endpoints carry prompts of thousands of tokens, and
// encoding/json scans such a body three times (validation, skipping the
// array for its unmarshaler, decoding). parsePrompt reads the one shape these
// endpoints accept in a single pass, as strictly as decode: unknown fields,
// duplicate fields, wrong types and trailing data are errors.

// decodePrompt reads a bounded prompt request body, decoding tokens into
// tokBuf's storage when it is large enough; it writes the error response
// itself and reports false.
func (n *Node) decodePrompt(w http.ResponseWriter, r *http.Request, req *promptRequest, tokBuf tokenList) bool {
	if n.refuseDeclaredTooLarge(w, r) {
		return false
	}
	bp := bodyPool.Get().(*[]byte)
	body, err := readAll((*bp)[:0], http.MaxBytesReader(w, r.Body, n.cfg.MaxRequestBytes))
	if cap(body) <= maxPooledBody {
		// A pool of bodies grown to the limit would keep megabytes per
		// processor for a rare large request.
		*bp = body[:0]
		defer bodyPool.Put(bp)
	}
	var mbe *http.MaxBytesError
	switch {
	case errors.As(err, &mbe):
		writeError(w, http.StatusRequestEntityTooLarge, fmt.Sprintf("request body over %d bytes", mbe.Limit))
		return false
	case err != nil:
		writeError(w, http.StatusBadRequest, "reading request: "+err.Error())
		return false
	}
	if err := parsePrompt(body, req, tokBuf); err != nil {
		writeError(w, http.StatusBadRequest, "malformed request: "+err.Error())
		return false
	}
	return true
}

// bodyPool recycles request buffers: a prompt request is a few kilobytes,
// read at thousands of requests per second. Nothing parsed aliases it.
var bodyPool = sync.Pool{New: func() any { b := make([]byte, 0, 16<<10); return &b }}

// maxPooledBody is the largest buffer bodyPool keeps.
const maxPooledBody = 256 << 10

// readAll appends everything r yields to dst.
func readAll(dst []byte, r io.Reader) ([]byte, error) {
	for {
		if len(dst) == cap(dst) {
			dst = append(dst, 0)[:len(dst)]
		}
		n, err := r.Read(dst[len(dst):cap(dst)])
		dst = dst[:len(dst)+n]
		if err == io.EOF {
			return dst, nil
		}
		if err != nil {
			return dst, err
		}
	}
}

// parsePrompt parses {"model": s, "worker": s, "tokens": [u32...], "text": s,
// "record": b} (every field optional, nulls allowed) into req. Tokens go into
// tokBuf's storage when it is large enough.
func parsePrompt(b []byte, req *promptRequest, tokBuf tokenList) error {
	p := promptParser{b: b, tokBuf: tokBuf[:0]}
	if err := p.parse(req); err != nil {
		return err
	}
	return nil
}

type promptParser struct {
	b      []byte
	i      int
	tokBuf tokenList
}

func (p *promptParser) ws() {
	for p.i < len(p.b) && (p.b[p.i] == ' ' || p.b[p.i] == '\t' || p.b[p.i] == '\n' || p.b[p.i] == '\r') {
		p.i++
	}
}

func (p *promptParser) errf(format string, a ...any) error {
	return fmt.Errorf("at byte %d: "+format, append([]any{p.i}, a...)...)
}

func (p *promptParser) parse(req *promptRequest) error {
	p.ws()
	if p.i == len(p.b) {
		return errors.New("empty request body, want a JSON object")
	}
	if p.b[p.i] != '{' {
		return p.errf("want a JSON object")
	}
	p.i++
	var seen [6]bool
	first := true
	for {
		p.ws()
		if p.i < len(p.b) && p.b[p.i] == '}' && first {
			p.i++
			break
		}
		key, err := p.str()
		if err != nil {
			return err
		}
		p.ws()
		if p.i == len(p.b) || p.b[p.i] != ':' {
			return p.errf("want ':' after %q", key)
		}
		p.i++
		p.ws()
		k := -1
		switch key {
		case "model":
			k = 0
			err = p.optStr(&req.Model)
		case "worker":
			k = 1
			err = p.optStr(&req.Worker)
		case "text":
			k = 2
			if p.null() {
				req.Text = nil
			} else {
				var s string
				err = p.optStr(&s)
				req.Text = &s
			}
		case "tokens":
			k = 3
			err = p.tokens(&req.Tokens)
		case "record":
			k = 4
			err = p.boolean(&req.Record)
		case "lora":
			k = 5
			err = p.optStr(&req.LoRA)
		default:
			return fmt.Errorf("json: unknown field %q", key)
		}
		if err != nil {
			return fmt.Errorf("field %q: %w", key, err)
		}
		if seen[k] {
			return fmt.Errorf("duplicate field %q", key)
		}
		seen[k] = true
		first = false
		p.ws()
		if p.i == len(p.b) {
			return p.errf("unterminated object")
		}
		if p.b[p.i] == '}' {
			p.i++
			break
		}
		if p.b[p.i] != ',' {
			return p.errf("want ',' or '}'")
		}
		p.i++
	}
	p.ws()
	if p.i != len(p.b) {
		return errors.New("trailing data after the JSON value")
	}
	return nil
}

// null consumes a null literal if there is one.
func (p *promptParser) null() bool {
	if len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "null" {
		p.i += 4
		return true
	}
	return false
}

// optStr reads a string or null (which leaves *s as it is).
func (p *promptParser) optStr(s *string) error {
	if p.null() {
		return nil
	}
	v, err := p.str()
	if err != nil {
		return err
	}
	*s = v
	return nil
}

// str reads a JSON string. Strings with escapes or non-ASCII bytes are
// decoded by encoding/json, so their meaning (escapes, invalid UTF-8
// replaced) is exactly its.
func (p *promptParser) str() (string, error) {
	if p.i == len(p.b) || p.b[p.i] != '"' {
		return "", p.errf("want a string")
	}
	start := p.i
	p.i++
	plain := true
	for p.i < len(p.b) {
		c := p.b[p.i]
		switch {
		case c == '"':
			p.i++
			if plain {
				return string(p.b[start+1 : p.i-1]), nil
			}
			var s string
			if err := json.Unmarshal(p.b[start:p.i], &s); err != nil {
				return "", err
			}
			return s, nil
		case c == '\\':
			plain = false
			p.i += 2
			continue
		case c < 0x20:
			return "", p.errf("control character in string")
		case c >= 0x80:
			plain = false
		}
		p.i++
	}
	return "", p.errf("unterminated string")
}

func (p *promptParser) boolean(v *bool) error {
	switch {
	case len(p.b)-p.i >= 4 && string(p.b[p.i:p.i+4]) == "true":
		*v, p.i = true, p.i+4
	case len(p.b)-p.i >= 5 && string(p.b[p.i:p.i+5]) == "false":
		*v, p.i = false, p.i+5
	case p.null():
	default:
		return p.errf("want true or false")
	}
	return nil
}

// tokens reads an array of integers in [0, 2^32), or null.
func (p *promptParser) tokens(t *tokenList) error {
	if p.null() {
		*t = nil
		return nil
	}
	// Find the array's end for tokenList, which checks every element.
	start := p.i
	if p.i == len(p.b) || p.b[p.i] != '[' {
		return p.errf("want an array of integers")
	}
	for p.i < len(p.b) && p.b[p.i] != ']' {
		c := p.b[p.i]
		if c == '"' || c == '{' || c == '[' && p.i != start {
			return p.errf("want an array of integers")
		}
		p.i++
	}
	if p.i == len(p.b) {
		return p.errf("unterminated array")
	}
	p.i++
	*t = p.tokBuf
	return t.UnmarshalJSON(p.b[start:p.i])
}
