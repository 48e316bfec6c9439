package wire

import "fmt"

// Reader decodes the msgpack subset of the Append functions from a byte
// slice. It is the one msgpack reader of meshnode: wire's message decoders
// use it, and so do the packages that encode records of their own (store,
// radix).
//
// The first error sticks: from then on every read returns a zero value (nil,
// 0, false) and moves nothing, so a decoder may read a whole record and check
// Err once. Zero values are chosen so that a caller using a failed read as an
// index, a length or a limit stays in bounds. Every error wraps the sentinel
// given to NewReader, so that callers keep their own (errors.Is(err,
// store.ErrMalformed)), and says at which byte decoding stopped. (wire's own
// message decoders tell input that ends too soon, ErrTruncated, from input
// that is wrong, ErrMalformed.)
//
// Reads accept every standard form of the family asked for: an unsigned
// integer as positive fixint, uint8/16/32/64 or a non-negative int8/16/32/64;
// a str as fixstr or str8/16/32; a bin as bin8/16/32; an array header as
// fixarray, array16 or array32. Every length and count is checked against the
// caller's limit and against the bytes that remain before it is used, so a
// hostile length can neither slice past the input nor make the caller
// allocate. Byte results alias the input. A Reader allocates only to build
// its error (and, in wire's message decoders, the strings of a message that
// neither the message nor the codec's interner holds yet).
//
// The zero Reader reads nothing and fails on the first read.
type Reader struct {
	b        []byte
	off      int
	err      error
	sentinel error
	// The fields below serve wire's message decoders (newBodyReader).
	short error     // wrapped when the input ends too soon; nil: sentinel
	in    *interner // where strings come from; nil: no interning
	what  Type      // the message being decoded, named in errors; 0: none
}

// NewReader returns a Reader over b whose errors wrap sentinel (wire's
// ErrMalformed if sentinel is nil). It returns a value, not a pointer, so
// that a decoder keeps its Reader on the stack.
func NewReader(b []byte, sentinel error) Reader {
	if sentinel == nil {
		sentinel = ErrMalformed
	}
	return Reader{b: b, sentinel: sentinel}
}

// newBodyReader returns a Reader over a message body: input that ends too
// soon is ErrTruncated, any other error ErrMalformed (or ErrTooLarge where a
// decoder says so), and strings come from in when it is not nil.
func newBodyReader(b []byte, in *interner) Reader {
	return Reader{b: b, sentinel: ErrMalformed, short: ErrTruncated, in: in}
}

// Err returns the first error, or nil.
func (r *Reader) Err() error { return r.err }

// Remaining returns the number of bytes not yet read (0 after an error).
func (r *Reader) Remaining() int { return len(r.b) - r.off }

// Fail records an error, unless one is already recorded, and stops the
// Reader: its text is the sentinel's, then format applied to args, then the
// byte offset. Decoders call it for their own checks (an empty name, a
// reference out of range) so that those fail like a bad encoding.
func (r *Reader) Fail(format string, args ...any) {
	r.fail(r.sentinel, format, args...)
}

// failShort is Fail for input that ends before what it declares.
func (r *Reader) failShort(format string, args ...any) {
	kind := r.short
	if kind == nil {
		kind = r.sentinel
	}
	r.fail(kind, format, args...)
}

// fail records an *Error of the given kind, unless one is already recorded,
// naming the message being decoded if there is one, and stops the Reader.
func (r *Reader) fail(kind error, format string, args ...any) {
	if r.err == nil {
		if kind == nil {
			kind = ErrMalformed
		}
		detail := fmt.Sprintf(format, args...)
		if r.what != 0 {
			detail = r.what.String() + ": " + detail
		}
		r.err = &Error{Kind: kind, Detail: fmt.Sprintf("%s at byte %d", detail, r.off)}
	}
	// With nothing left to read, every later read fails its bounds check
	// and returns a zero value.
	r.b = r.b[:r.off]
}

// next returns the next n bytes, aliasing the input.
func (r *Reader) next(n int) []byte {
	if n < 0 || n > len(r.b)-r.off {
		if r.err == nil {
			r.failShort("need %d bytes, have %d", n, len(r.b)-r.off)
		}
		return nil
	}
	p := r.b[r.off : r.off+n : r.off+n]
	r.off += n
	return p
}

// byte1 returns the next byte, or 0 with an error recorded.
func (r *Reader) byte1() byte {
	if r.off >= len(r.b) {
		r.next(1)
		return 0
	}
	c := r.b[r.off]
	r.off++
	return c
}

// bigEndian reads an n-byte big-endian unsigned number (n is 1, 2, 4 or 8).
func (r *Reader) bigEndian(n int) uint64 {
	var v uint64
	for _, c := range r.next(n) {
		v = v<<8 | uint64(c)
	}
	return v
}

// ArrayLen reads an array header and returns its count, which must not
// exceed max nor the bytes that remain divided by minElem (the fewest bytes
// an element of this array takes; at least 1 is assumed), so that a hostile
// count cannot make the caller allocate. A fixarray takes a short path.
func (r *Reader) ArrayLen(max, minElem int) int {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xf0 == 0x90 {
			if n := int(c & 0x0f); n <= max && n*minElem < len(r.b)-r.off && minElem > 0 {
				r.off++
				return n
			}
		}
	}
	return r.arrayLenSlow(max, minElem)
}

func (r *Reader) arrayLenSlow(max, minElem int) int {
	n := r.arrayHeader()
	switch {
	case r.err != nil:
		return 0
	case max < 0 || n > uint64(max):
		r.Fail("array of %d exceeds limit %d", n, max)
		return 0
	case n > uint64(r.Remaining()/minElemOf(minElem)):
		r.failShort("array of %d cannot fit in %d bytes", n, r.Remaining())
		return 0
	}
	return int(n)
}

// arrayHeader reads an array header and returns its count, unchecked.
func (r *Reader) arrayHeader() uint64 {
	c := r.byte1()
	switch {
	case r.err != nil:
		return 0
	case c&0xf0 == 0x90:
		return uint64(c & 0x0f)
	case c == 0xdc:
		return r.bigEndian(2)
	case c == 0xdd:
		return r.bigEndian(4)
	}
	r.Fail("want array, got 0x%02x", c)
	return 0
}

func minElemOf(minElem int) int { return max(minElem, 1) }

// ExpectArray reads an array header that must count exactly n elements.
func (r *Reader) ExpectArray(n int) {
	if got := r.ArrayLen(n, 1); r.err == nil && got != n {
		r.Fail("want array of %d, got %d", n, got)
	}
}

// Uint reads an unsigned integer. A positive fixint takes a short path.
func (r *Reader) Uint() uint64 {
	if off := r.off; off < len(r.b) && r.b[off] < 0x80 {
		r.off = off + 1
		return uint64(r.b[off])
	}
	return r.uintSlow()
}

func (r *Reader) uintSlow() uint64 {
	c := r.byte1()
	switch {
	case r.err != nil:
		return 0
	case c < 0x80:
		return uint64(c)
	case c >= 0xcc && c <= 0xcf:
		return r.bigEndian(1 << (c - 0xcc))
	case c >= 0xd0 && c <= 0xd3:
		n := 1 << (c - 0xd0)
		v := r.bigEndian(n)
		if v>>(8*n-1) != 0 {
			r.Fail("negative integer")
			return 0
		}
		return v
	}
	r.Fail("want unsigned integer, got 0x%02x", c)
	return 0
}

// UintMax reads an unsigned integer no greater than max. A positive fixint
// takes a short path, as in Uint.
func (r *Reader) UintMax(max uint64) uint64 {
	var v uint64
	if off := r.off; off < len(r.b) && r.b[off] < 0x80 {
		r.off = off + 1
		v = uint64(r.b[off])
	} else {
		v = r.uintSlow()
	}
	if v > max {
		r.Fail("integer %d exceeds %d", v, max)
		return 0
	}
	return v
}

// Bool reads a bool.
func (r *Reader) Bool() bool {
	switch c := r.byte1(); {
	case r.err != nil:
	case c == 0xc3:
		return true
	case c == 0xc2:
	default:
		r.Fail("want bool, got 0x%02x", c)
	}
	return false
}

// Families of byte strings that bytes accepts (wire's bodies read a nil bin
// as empty: binOrNil).
const (
	acceptStr = 1 << iota
	acceptBin
	acceptNil
)

// Str reads a str of at most max bytes and returns its bytes, aliasing the
// input. A fixstr takes a short path.
func (r *Reader) Str(max int) []byte {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xe0 == 0xa0 {
			if n := int(c & 0x1f); n <= max && n < len(r.b)-r.off {
				p := r.b[r.off+1 : r.off+1+n : r.off+1+n]
				r.off += 1 + n
				return p
			}
		}
	}
	p, _ := r.bytes(max, acceptStr)
	return p
}

// Bin reads a bin of at most max bytes and returns its bytes, aliasing the
// input.
func (r *Reader) Bin(max int) []byte {
	p, _ := r.bytes(max, acceptBin)
	return p
}

// Bytes reads a str or a bin of at most max bytes and returns its bytes,
// aliasing the input: for fields that are bytes whichever family another
// encoder chose.
func (r *Reader) Bytes(max int) []byte {
	p, _ := r.bytes(max, acceptStr|acceptBin)
	return p
}

// BytesOrNil reads a str or a bin of at most max bytes, like Bytes, or a
// nil, which it reports with isNil (and a nil p). A str or bin, even an
// empty one, gives a non-nil p.
func (r *Reader) BytesOrNil(max int) (p []byte, isNil bool) {
	return r.bytes(max, acceptStr|acceptBin|acceptNil)
}

func (r *Reader) bytes(max int, accept int) (p []byte, isNil bool) {
	c := r.byte1()
	var n uint64
	switch {
	case r.err != nil:
		return nil, false
	case c == 0xc0 && accept&acceptNil != 0:
		return nil, true
	case c&0xe0 == 0xa0 && accept&acceptStr != 0:
		n = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb && accept&acceptStr != 0:
		n = r.bigEndian(1 << (c - 0xd9))
	case c >= 0xc4 && c <= 0xc6 && accept&acceptBin != 0:
		n = r.bigEndian(1 << (c - 0xc4))
	default:
		r.Fail("want %s, got 0x%02x", familyName(accept), c)
		return nil, false
	}
	switch {
	case r.err != nil:
		return nil, false
	case max < 0 || n > uint64(max):
		r.Fail("%s of %d bytes exceeds limit %d", familyName(accept&^acceptNil), n, max)
		return nil, false
	}
	return r.next(int(n)), false
}

func familyName(accept int) string {
	switch accept {
	case acceptStr:
		return "str"
	case acceptBin:
		return "bin"
	case acceptStr | acceptBin:
		return "str or bin"
	case acceptBin | acceptNil:
		return "bin or nil"
	}
	return "str, bin or nil"
}

// End checks that the whole input was read: trailing bytes are an error.
func (r *Reader) End() {
	if r.err == nil && r.off != len(r.b) {
		r.Fail("%d trailing bytes", len(r.b)-r.off)
	}
}
