package store

import (
	"encoding/binary"
	"fmt"
	"math"
)

// This file holds the small msgpack subset store speaks: arrays, unsigned
// integers, strings, binary and nil. Encoders append to a caller's buffer and
// always pick the shortest standard form, so any msgpack library can read
// what they write. The reader accepts every standard form of those types
// (including non-negative signed integers and str for bin), checks every
// length against the bytes that remain before it slices, and never
// allocates: strings and binaries alias the input.

func appendArrayLen(b []byte, n int) []byte {
	switch {
	case n < 16:
		return append(b, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(b, 0xdc, byte(n>>8), byte(n))
	default:
		return append(b, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

func appendUint(b []byte, v uint64) []byte {
	switch {
	case v < 128:
		return append(b, byte(v))
	case v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(b, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(b, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		b = append(b, 0xcf)
		return binary.BigEndian.AppendUint64(b, v)
	}
}

func appendStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda, byte(n>>8), byte(n))
	default:
		b = append(b, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

// appendBinStr writes s as msgpack bin (values are bytes, not text).
func appendBinStr(b []byte, s string) []byte {
	n := len(s)
	switch {
	case n <= math.MaxUint8:
		b = append(b, 0xc4, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xc5, byte(n>>8), byte(n))
	default:
		b = append(b, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(b, s...)
}

func appendNil(b []byte) []byte { return append(b, 0xc0) }

// reader decodes msgpack from a byte slice. The first error sticks: later
// calls return zero values, so decoders check r.err once per record.
type reader struct {
	b   []byte
	off int
	err error
}

func (r *reader) fail(format string, args ...any) {
	if r.err == nil {
		r.err = fmt.Errorf("%w: "+format+" at byte %d", append([]any{ErrMalformed}, append(args, r.off)...)...)
	}
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) next(n int) []byte {
	if r.err != nil {
		return nil
	}
	if n < 0 || n > r.remaining() {
		r.fail("need %d bytes, have %d", n, r.remaining())
		return nil
	}
	p := r.b[r.off : r.off+n]
	r.off += n
	return p
}

func (r *reader) byte1() byte {
	p := r.next(1)
	if p == nil {
		return 0
	}
	return p[0]
}

func (r *reader) be(n int) uint64 {
	p := r.next(n)
	var v uint64
	for _, c := range p {
		v = v<<8 | uint64(c)
	}
	return v
}

// arrayLen reads an array header whose length must not exceed max, nor the
// remaining bytes divided by minElem (each element takes at least minElem
// bytes), so a hostile count cannot make the caller allocate.
func (r *reader) arrayLen(max, minElem int) int {
	c := r.byte1()
	if r.err != nil {
		return 0
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n = r.be(2)
	case c == 0xdd:
		n = r.be(4)
	default:
		r.fail("want array, got 0x%02x", c)
		return 0
	}
	if r.err != nil {
		return 0
	}
	if n > uint64(max) {
		r.fail("array of %d exceeds limit %d", n, max)
		return 0
	}
	if minElem > 0 && n > uint64(r.remaining()/minElem) {
		r.fail("array of %d cannot fit in %d bytes", n, r.remaining())
		return 0
	}
	return int(n)
}

// wantArray reads an array header that must hold exactly n elements.
func (r *reader) wantArray(n int) {
	got := r.arrayLen(n, 1)
	if r.err == nil && got != n {
		r.fail("want array of %d, got %d", n, got)
	}
}

func (r *reader) uint() uint64 {
	c := r.byte1()
	if r.err != nil {
		return 0
	}
	switch {
	case c < 0x80:
		return uint64(c)
	case c == 0xcc:
		return r.be(1)
	case c == 0xcd:
		return r.be(2)
	case c == 0xce:
		return r.be(4)
	case c == 0xcf:
		return r.be(8)
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v := r.be(n)
		if r.err == nil && v>>(8*n-1) != 0 {
			r.fail("negative integer")
			return 0
		}
		return v
	}
	r.fail("want unsigned integer, got 0x%02x", c)
	return 0
}

// uintMax reads an unsigned integer no greater than max.
func (r *reader) uintMax(max uint64) uint64 {
	v := r.uint()
	if r.err == nil && v > max {
		r.fail("integer %d exceeds %d", v, max)
		return 0
	}
	return v
}

// strOrBin reads a str or bin of at most max bytes; the result aliases the
// input. isNil reports a msgpack nil instead.
func (r *reader) strOrBin(max int) (p []byte, isNil bool) {
	c := r.byte1()
	if r.err != nil {
		return nil, false
	}
	var n uint64
	switch {
	case c == 0xc0:
		return nil, true
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n = r.be(1)
	case c == 0xda || c == 0xc5:
		n = r.be(2)
	case c == 0xdb || c == 0xc6:
		n = r.be(4)
	default:
		r.fail("want str or bin, got 0x%02x", c)
		return nil, false
	}
	if r.err != nil {
		return nil, false
	}
	if n > uint64(max) {
		r.fail("string of %d bytes exceeds limit %d", n, max)
		return nil, false
	}
	p = r.next(int(n))
	if p == nil {
		p = []byte{}
	}
	return p, false
}

// bytes reads a str or bin that must not be nil.
func (r *reader) bytes(max int) []byte {
	p, isNil := r.strOrBin(max)
	if isNil {
		r.fail("unexpected nil")
	}
	return p
}

func (r *reader) end() {
	if r.err == nil && r.off != len(r.b) {
		r.fail("%d trailing bytes", len(r.b)-r.off)
	}
}
