package node

import (
	"unicode/utf16"
	"unicode/utf8"
)

// scanCompletion is parseCompletion's fast path for the requests a proxy
// sees nearly always: a JSON object whose model is a string, whose stream
// is a boolean and whose messages (for a chat) are objects with a string
// role and a string content. It reads only those fields, in one pass over
// the body, without reflection, and builds the routing text and,
// with bytesTokens, the routing tokens in sc's buffers, which the input
// shares until sc goes back to its pool; the request's Prompt is a slice
// of body, its Messages are not kept.
//
// It answers only when it is sure of parseCompletion's answer: ok is false
// for anything else (invalid JSON, another shape or type, a duplicate or
// case-folded key, an escape it does not decode, an error of any kind),
// and the caller then asks parseCompletion. FuzzScanCompletion holds it to
// that: whatever it accepts, parseCompletion accepts with the same model,
// stream flag and routing input.
func scanCompletion(body []byte, chat, bytesTokens bool, sc *promptScratch) (req completionRequest, in routingInput, ok bool) {
	if !validJSON(body) { // from here on, every index is in a well-formed document
		return req, in, false
	}
	s := jsonScan{b: body}
	s.ws()
	if s.peek() != '{' {
		return req, in, false
	}
	var model []byte
	var seen [4]bool // model, stream, prompt, messages
	nmsg := 0
	text := sc.text[:0]
	defer func() { sc.text = text[:0] }() // the buffer, grown, for the next request
	for key := range s.keys() {
		f := -1
		switch string(key) {
		case "model":
			f = 0
		case "stream":
			f = 1
		case "prompt":
			f = 2
		case "messages":
			f = 3
		default:
			if foldsToField(key, "model", "stream", "prompt", "messages") {
				return req, in, false
			}
			s.skip()
			continue
		}
		if seen[f] {
			return req, in, false
		}
		seen[f] = true
		switch f {
		case 0:
			if s.peek() != '"' {
				return req, in, false
			}
			model = s.str()
		case 1:
			switch {
			case s.lit("true"):
				req.Stream = true
			case s.lit("false"):
			default:
				return req, in, false
			}
		case 2:
			start := s.i
			s.skip()
			req.Prompt = body[start:s.i]
		case 3:
			if !chat || s.peek() != '[' {
				return req, in, false
			}
			for range s.elems() {
				var ok bool
				if text, ok = s.message(text, bytesTokens); !ok {
					return req, in, false
				}
				nmsg++
			}
		}
	}
	if chat && nmsg == 0 {
		return req, in, false
	}
	if plainASCII(model) {
		req.Model = string(model)
	} else {
		m, ok := appendUnquoted(nil, model)
		if !ok {
			return req, in, false
		}
		req.Model = string(m)
	}
	if ValidName("model", req.Model, 255) != nil {
		return req, in, false
	}
	if !chat {
		var err error
		if in, err = promptInput(req.Prompt); err != nil {
			return req, in, false
		}
	} else {
		in.text = text
	}
	if bytesTokens && in.tokens == nil {
		t := in.text[:min(len(in.text), maxPromptTokens)]
		tokens := sc.tokens[:0]
		if tokens == nil {
			tokens = tokenList{} // an empty prompt is no tokens, not text (as parseCompletion has it)
		}
		for _, c := range t {
			tokens = append(tokens, uint32(c))
		}
		sc.tokens = tokens[:0]
		in.tokens, in.text = tokens, nil
	}
	return req, in, true
}

// message appends the routing text of the chat message at s.i (as
// chatText renders it) to text; ok is false for a message chatText would
// read otherwise or refuse: not an object, a role not a string, a content
// neither a string nor null, duplicate or case-folded keys.
func (s *jsonScan) message(text []byte, engineTemplate bool) (_ []byte, ok bool) {
	if s.peek() != '{' {
		return text, false
	}
	var role, content []byte
	var hasRole, hasContent bool
	for key := range s.keys() {
		switch string(key) {
		case "role":
			if hasRole || s.peek() != '"' {
				return text, false
			}
			hasRole, role = true, s.str()
		case "content":
			if hasContent {
				return text, false
			}
			hasContent = true
			switch {
			case s.peek() == '"':
				content = s.str()
			case s.lit("null"):
				content = nil
			default:
				return text, false // parts and anything else: chatText reads them
			}
		default:
			if foldsToField(key, "role", "content") {
				return text, false
			}
			s.skip()
		}
	}
	sep, end := "\n", byte(0x1e)
	if engineTemplate {
		sep, end = ": ", '\n'
	}
	if text, ok = appendUnquoted(text, role); !ok {
		return text, false
	}
	text = append(text, sep...)
	if text, ok = appendUnquoted(text, content); !ok {
		return text, false
	}
	return append(text, end), true
}

// foldsToField reports whether key is not one of fields but names one
// for encoding/json, which decodes escapes in keys and matches them
// without regard to case (with Unicode's folds: a non-ASCII or escaped key
// counts as a possible match).
func foldsToField(key []byte, fields ...string) bool {
	for _, c := range key {
		if c >= utf8.RuneSelf || c == '\\' { // an escaped key may spell a field
			return true
		}
	}
	for _, f := range fields {
		if len(f) != len(key) {
			continue
		}
		same := true
		for i := range len(f) {
			c := key[i]
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			if c != f[i] {
				same = false
				break
			}
		}
		if same {
			return true
		}
	}
	return false
}

// jsonScan walks a document json.Valid accepted.
type jsonScan struct {
	b []byte
	i int
}

func (s *jsonScan) ws() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

func (s *jsonScan) peek() byte {
	if s.i < len(s.b) {
		return s.b[s.i]
	}
	return 0
}

// lit moves past the literal l (true, false, null) if it is next.
func (s *jsonScan) lit(l string) bool {
	if len(s.b)-s.i >= len(l) && string(s.b[s.i:s.i+len(l)]) == l {
		s.i += len(l)
		s.ws()
		return true
	}
	return false
}

// str returns the string at s.i as it is written, between its quotes, and
// moves past it.
func (s *jsonScan) str() []byte {
	start := s.i + 1
	i := start
	for s.b[i] != '"' {
		if s.b[i] == '\\' {
			i++
		}
		i++
	}
	s.i = i + 1
	s.ws()
	return s.b[start:i]
}

// skip moves past the value at s.i.
func (s *jsonScan) skip() {
	depth := 0
	for {
		switch s.b[s.i] {
		case '"':
			s.str()
		case '{', '[':
			depth++
			s.i++
			s.ws()
		case '}', ']':
			depth--
			s.i++
			s.ws()
		case ',', ':':
			s.i++
			s.ws()
		default: // a number or a literal
			for s.i < len(s.b) {
				c := s.b[s.i]
				if c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' {
					break
				}
				s.i++
			}
			s.ws()
		}
		if depth == 0 {
			return
		}
	}
}

// keys iterates over the object at s.i, yielding each key as written
// with s.i at its value, which the loop body must consume; it ends past
// the object.
func (s *jsonScan) keys() func(yield func([]byte) bool) {
	return func(yield func([]byte) bool) {
		s.i++ // {
		s.ws()
		for s.b[s.i] != '}' {
			key := s.str()
			s.i++ // :
			s.ws()
			if !yield(key) {
				return
			}
			if s.b[s.i] == ',' {
				s.i++
				s.ws()
			}
		}
		s.i++
		s.ws()
	}
}

// elems iterates over the array at s.i, with s.i at each element, which
// the loop body must consume; it ends past the array.
func (s *jsonScan) elems() func(yield func(struct{}) bool) {
	return func(yield func(struct{}) bool) {
		s.i++ // [
		s.ws()
		for s.b[s.i] != ']' {
			if !yield(struct{}{}) {
				return
			}
			if s.b[s.i] == ',' {
				s.i++
				s.ws()
			}
		}
		s.i++
		s.ws()
	}
}

// plainASCII reports whether the JSON string written as raw is its own
// value: ASCII without escapes.
func plainASCII(raw []byte) bool {
	for _, c := range raw {
		if c == '\\' || c >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// appendUnquoted appends the JSON string written as raw (between its
// quotes, valid) to dst, decoded; ok is false for what it leaves to
// encoding/json: invalid UTF-8 and surrogate escapes.
func appendUnquoted(dst, raw []byte) (_ []byte, ok bool) {
	for i := 0; i < len(raw); {
		c := raw[i]
		switch {
		case c == '\\':
			e := raw[i+1]
			i += 2
			switch e {
			case 'b':
				dst = append(dst, '\b')
			case 'f':
				dst = append(dst, '\f')
			case 'n':
				dst = append(dst, '\n')
			case 'r':
				dst = append(dst, '\r')
			case 't':
				dst = append(dst, '\t')
			case 'u':
				r := rune(0)
				for _, h := range raw[i : i+4] {
					r <<= 4
					switch {
					case '0' <= h && h <= '9':
						r |= rune(h - '0')
					case 'a' <= h && h <= 'f':
						r |= rune(h - 'a' + 10)
					default:
						r |= rune(h - 'A' + 10)
					}
				}
				i += 4
				if utf16.IsSurrogate(r) {
					return dst, false
				}
				dst = utf8.AppendRune(dst, r)
			default: // " \ /
				dst = append(dst, e)
			}
		case c < utf8.RuneSelf:
			j := i + 1
			for j < len(raw) && raw[j] != '\\' && raw[j] < utf8.RuneSelf {
				j++
			}
			dst = append(dst, raw[i:j]...)
			i = j
		default:
			r, n := utf8.DecodeRune(raw[i:])
			if r == utf8.RuneError && n == 1 {
				return dst, false
			}
			dst = append(dst, raw[i:i+n]...)
			i += n
		}
	}
	return dst, true
}
