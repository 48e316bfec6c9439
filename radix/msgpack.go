package radix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// A tiny subset of msgpack, enough for the radix encodings: unsigned ints,
// booleans, strings, binaries and arrays. Encoders always pick the shortest
// form; decoders accept every standard form of those types and check every
// length against the bytes left before slicing.

// ErrDecode is wrapped by every decoding error.
var ErrDecode = errors.New("radix: malformed encoding")

func appendArray(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xdd), uint32(n))
}

func appendUint(dst []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(dst, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(dst, 0xce), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
}

func appendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

func appendStr(dst []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = binary.BigEndian.AppendUint32(append(dst, 0xdb), uint32(n))
	}
	return append(dst, s...)
}

func appendBinHeader(dst []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xc5, byte(n>>8), byte(n))
	}
	return binary.BigEndian.AppendUint32(append(dst, 0xc6), uint32(n))
}

// reader decodes msgpack from b; the first error sticks.
type reader struct {
	b   []byte
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format, append([]any{ErrDecode}, args...)...)
	}
	r.b = nil
}

func (r *reader) take(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > len(r.b) {
		r.fail("need %d bytes, have %d", n, len(r.b))
		return nil
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v
}

func (r *reader) byte1() byte {
	v := r.take(1)
	if v == nil {
		return 0
	}
	return v[0]
}

func (r *reader) be(n int) uint64 {
	v := r.take(n)
	var x uint64
	for _, c := range v {
		x = x<<8 | uint64(c)
	}
	return x
}

// array reads an array header whose length must not exceed limit, nor the
// bytes left (every element takes at least minElem bytes).
func (r *reader) array(limit, minElem int) int {
	c := r.byte1()
	var n uint64
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n = r.be(2)
	case c == 0xdd:
		n = r.be(4)
	default:
		r.fail("want array, got %#x", c)
		return 0
	}
	if r.err != nil {
		return 0
	}
	if n > uint64(limit) {
		r.fail("array of %d exceeds limit %d", n, limit)
		return 0
	}
	if n*uint64(max(minElem, 1)) > uint64(len(r.b)) {
		r.fail("array of %d longer than the %d bytes left", n, len(r.b))
		return 0
	}
	return int(n)
}

func (r *reader) uint(limit uint64) uint64 {
	c := r.byte1()
	var v uint64
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		v = uint64(c)
	case c == 0xcc:
		v = r.be(1)
	case c == 0xcd:
		v = r.be(2)
	case c == 0xce:
		v = r.be(4)
	case c == 0xcf:
		v = r.be(8)
	default:
		r.fail("want uint, got %#x", c)
		return 0
	}
	if v > limit {
		r.fail("value %d exceeds limit %d", v, limit)
		return 0
	}
	return v
}

func (r *reader) bool() bool {
	switch c := r.byte1(); {
	case r.err != nil:
	case c == 0xc3:
		return true
	case c == 0xc2:
	default:
		r.fail("want bool, got %#x", c)
	}
	return false
}

func (r *reader) str(limit int) string {
	c := r.byte1()
	var n uint64
	switch {
	case r.err != nil:
		return ""
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9:
		n = r.be(1)
	case c == 0xda:
		n = r.be(2)
	case c == 0xdb:
		n = r.be(4)
	default:
		r.fail("want str, got %#x", c)
		return ""
	}
	if n > uint64(limit) {
		r.fail("string of %d exceeds limit %d", n, limit)
		return ""
	}
	return string(r.take(int(n)))
}

func (r *reader) bin(limit int) []byte {
	c := r.byte1()
	var n uint64
	switch {
	case r.err != nil:
		return nil
	case c == 0xc4:
		n = r.be(1)
	case c == 0xc5:
		n = r.be(2)
	case c == 0xc6:
		n = r.be(4)
	default:
		r.fail("want bin, got %#x", c)
		return nil
	}
	if n > uint64(limit) {
		r.fail("bin of %d exceeds limit %d", n, limit)
		return nil
	}
	return r.take(int(n))
}
