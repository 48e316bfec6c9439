package wire

import (
	"encoding/binary"
	"fmt"
	"math"
	"net/netip"
)

// This file holds the msgpack subset wire speaks, written by hand so that the
// hot messages encode and decode without reflection or allocation. Encoders
// always write the shortest standard form; decoders accept every standard
// form of the expected family (so another implementation may choose wider
// forms) and check every length against the bytes that remain before use.
//
// The Append functions are exported for the packages that encode records of
// their own (store, radix), together with Reader (reader.go). wire's own
// message decoders use the unexported reader below, whose explicit errors
// tell ErrTruncated from ErrMalformed.

// AppendArrayHeader appends the header of an array of n elements: fixarray,
// array16 or array32.
func AppendArrayHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x90|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xdc, byte(n>>8), byte(n))
	default:
		return append(dst, 0xdd, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// AppendUint appends v as positive fixint, uint8, uint16, uint32 or uint64,
// whichever is shortest.
func AppendUint(dst []byte, v uint64) []byte {
	switch {
	case v < 0x80:
		return append(dst, byte(v))
	case v <= math.MaxUint8:
		return append(dst, 0xcc, byte(v))
	case v <= math.MaxUint16:
		return append(dst, 0xcd, byte(v>>8), byte(v))
	case v <= math.MaxUint32:
		return append(dst, 0xce, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0xcf), v)
	}
}

// AppendBool appends true (0xc3) or false (0xc2).
func AppendBool(dst []byte, v bool) []byte {
	if v {
		return append(dst, 0xc3)
	}
	return append(dst, 0xc2)
}

// AppendNil appends nil (0xc0).
func AppendNil(dst []byte) []byte { return append(dst, 0xc0) }

// AppendStr appends s as fixstr, str8, str16 or str32, whichever is
// shortest.
func AppendStr(dst []byte, s string) []byte {
	n := len(s)
	switch {
	case n < 32:
		dst = append(dst, 0xa0|byte(n))
	case n <= math.MaxUint8:
		dst = append(dst, 0xd9, byte(n))
	case n <= math.MaxUint16:
		dst = append(dst, 0xda, byte(n>>8), byte(n))
	default:
		dst = append(dst, 0xdb, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
	return append(dst, s...)
}

// AppendBinHeader appends the header of a bin of n bytes: bin8, bin16 or
// bin32, whichever is shortest. The caller appends the n bytes.
func AppendBinHeader(dst []byte, n int) []byte {
	switch {
	case n <= math.MaxUint8:
		return append(dst, 0xc4, byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xc5, byte(n>>8), byte(n))
	default:
		return append(dst, 0xc6, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// AppendBin appends b as a bin (bin8, bin16 or bin32). A nil b is written
// as an empty bin, not as nil.
func AppendBin(dst []byte, b []byte) []byte {
	return append(AppendBinHeader(dst, len(b)), b...)
}

// AppendBinString appends the bytes of s as a bin, like AppendBin: for
// values that are bytes, not text, but held in a string.
func AppendBinString(dst []byte, s string) []byte {
	return append(AppendBinHeader(dst, len(s)), s...)
}

// appendAddrPort writes an address as msgpack bin: empty for the zero
// (invalid) address, 4 address bytes + 2 port bytes for IPv4, 16 + 2 for
// IPv6. Zones are not carried.
func appendAddrPort(dst []byte, ap netip.AddrPort) []byte {
	a := ap.Addr()
	p := ap.Port()
	switch {
	case !a.IsValid():
		return append(dst, 0xc4, 0)
	case a.Is4():
		b := a.As4()
		return append(dst, 0xc4, 6, b[0], b[1], b[2], b[3], byte(p>>8), byte(p))
	default:
		b := a.As16()
		dst = append(dst, 0xc4, 18)
		dst = append(dst, b[:]...)
		return append(dst, byte(p>>8), byte(p))
	}
}

// reader decodes msgpack values from b. It never allocates on success.
type reader struct {
	b   []byte
	off int
	in  *interner // nil: no interning
}

func (r *reader) truncated(what string, need int) error {
	return errf(ErrTruncated, fmt.Sprintf("%s: need %d bytes, have %d", what, need, len(r.b)-r.off))
}

func (r *reader) malformed(what string, code byte) error {
	return errf(ErrMalformed, fmt.Sprintf("%s: unexpected msgpack code 0x%02x", what, code))
}

func (r *reader) remaining() int { return len(r.b) - r.off }

func (r *reader) byte1(what string) (byte, error) {
	if r.off >= len(r.b) {
		return 0, r.truncated(what, 1)
	}
	c := r.b[r.off]
	r.off++
	return c, nil
}

// bigEndian reads an n-byte (1, 2, 4 or 8) big-endian unsigned number.
func (r *reader) bigEndian(what string, n int) (uint64, error) {
	if r.remaining() < n {
		return 0, r.truncated(what, n)
	}
	var v uint64
	for _, c := range r.b[r.off : r.off+n] {
		v = v<<8 | uint64(c)
	}
	r.off += n
	return v, nil
}

// take returns the next n bytes, aliasing the input.
func (r *reader) take(what string, n uint64) ([]byte, error) {
	if uint64(r.remaining()) < n {
		return nil, r.truncated(what, int(min(n, math.MaxInt32)))
	}
	b := r.b[r.off : r.off+int(n)]
	r.off += int(n)
	return b, nil
}

// array reads an array header and checks it has at least want elements.
// The fast path (fixarray) avoids the call to arraySlow.
func (r *reader) array(what string, want int) (int, error) {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xf0 == 0x90 && int(c&0x0f) >= want && int(c&0x0f) < len(r.b)-r.off {
			r.off++
			return int(c & 0x0f), nil
		}
	}
	return r.arraySlow(what, want)
}

func (r *reader) arraySlow(what string, want int) (int, error) {
	c, err := r.byte1(what)
	if err != nil {
		return 0, err
	}
	var n uint64
	switch {
	case c&0xf0 == 0x90:
		n = uint64(c & 0x0f)
	case c == 0xdc:
		n, err = r.bigEndian(what, 2)
	case c == 0xdd:
		n, err = r.bigEndian(what, 4)
	default:
		return 0, r.malformed(what, c)
	}
	if err != nil {
		return 0, err
	}
	if n < uint64(want) {
		return 0, errf(ErrMalformed, fmt.Sprintf("%s: array of %d elements, want at least %d", what, n, want))
	}
	// Each element takes at least one byte.
	if n > uint64(r.remaining()) {
		return 0, r.truncated(what, int(min(n, math.MaxInt32)))
	}
	return int(n), nil
}

// uint reads a non-negative integer no greater than max (at least 255 for
// every field). The fast path (positive fixint) avoids the call to uintSlow.
func (r *reader) uint(what string, max uint64) (uint64, error) {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c < 0x80 {
			r.off++
			return uint64(c), nil
		}
	}
	return r.uintSlow(what, max)
}

func (r *reader) uintSlow(what string, max uint64) (uint64, error) {
	c, err := r.byte1(what)
	if err != nil {
		return 0, err
	}
	var v uint64
	switch {
	case c < 0x80:
		v = uint64(c)
	case c >= 0xcc && c <= 0xcf:
		v, err = r.bigEndian(what, 1<<(c-0xcc))
	case c >= 0xd0 && c <= 0xd3:
		v, err = r.bigEndian(what, 1<<(c-0xd0))
		if err == nil {
			bits := 8 << (c - 0xd0)
			if bits < 64 && v>>(bits-1) != 0 || bits == 64 && v>>63 != 0 {
				return 0, errf(ErrMalformed, what+": negative integer")
			}
		}
	default:
		return 0, r.malformed(what, c)
	}
	if err != nil {
		return 0, err
	}
	if v > max {
		return 0, errf(ErrMalformed, fmt.Sprintf("%s: %d out of range (max %d)", what, v, max))
	}
	return v, nil
}

func (r *reader) bool(what string) (bool, error) {
	c, err := r.byte1(what)
	if err != nil {
		return false, err
	}
	switch c {
	case 0xc2:
		return false, nil
	case 0xc3:
		return true, nil
	}
	return false, r.malformed(what, c)
}

// str reads a msgpack str and returns its bytes, aliasing the input. The
// fast path (fixstr) avoids the call to strSlow.
func (r *reader) str(what string) ([]byte, error) {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xe0 == 0xa0 {
			if end := r.off + 1 + int(c&0x1f); end <= len(r.b) {
				b := r.b[r.off+1 : end]
				r.off = end
				return b, nil
			}
		}
	}
	return r.strSlow(what)
}

func (r *reader) strSlow(what string) ([]byte, error) {
	c, err := r.byte1(what)
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c&0xe0 == 0xa0:
		n = uint64(c & 0x1f)
	case c >= 0xd9 && c <= 0xdb:
		n, err = r.bigEndian(what, 1<<(c-0xd9))
	default:
		return nil, r.malformed(what, c)
	}
	if err != nil {
		return nil, err
	}
	return r.take(what, n)
}

// bin reads a msgpack bin (or nil, as empty) and returns its bytes, aliasing
// the input. The fast path (bin8) avoids the call to binSlow.
func (r *reader) bin(what string) ([]byte, error) {
	if r.off+1 < len(r.b) && r.b[r.off] == 0xc4 {
		if end := r.off + 2 + int(r.b[r.off+1]); end <= len(r.b) {
			b := r.b[r.off+2 : end]
			r.off = end
			return b, nil
		}
	}
	return r.binSlow(what)
}

func (r *reader) binSlow(what string) ([]byte, error) {
	c, err := r.byte1(what)
	if err != nil {
		return nil, err
	}
	var n uint64
	switch {
	case c == 0xc0:
		return nil, nil
	case c >= 0xc4 && c <= 0xc6:
		n, err = r.bigEndian(what, 1<<(c-0xc4))
	default:
		return nil, r.malformed(what, c)
	}
	if err != nil {
		return nil, err
	}
	return r.take(what, n)
}

// string reads a str into *dst, keeping the existing string when the bytes
// are equal so that decoding into a reused message does not allocate.
func (r *reader) string(what string, dst *string) error {
	b, err := r.str(what)
	if err != nil {
		return err
	}
	switch {
	case *dst == string(b):
	case r.in != nil:
		*dst = r.in.get(b)
	default:
		*dst = string(b)
	}
	return nil
}

// bytes reads a bin into *dst, reusing its capacity. The result never aliases
// the input.
func (r *reader) bytes(what string, dst *[]byte) error {
	b, err := r.bin(what)
	if err != nil {
		return err
	}
	*dst = append((*dst)[:0], b...)
	return nil
}

func (r *reader) addrPort(what string) (netip.AddrPort, error) {
	b, err := r.bin(what)
	if err != nil {
		return netip.AddrPort{}, err
	}
	switch len(b) {
	case 0:
		return netip.AddrPort{}, nil
	case 6:
		a := netip.AddrFrom4([4]byte(b[:4]))
		return netip.AddrPortFrom(a, uint16(b[4])<<8|uint16(b[5])), nil
	case 18:
		a := netip.AddrFrom16([16]byte(b[:16]))
		return netip.AddrPortFrom(a, uint16(b[16])<<8|uint16(b[17])), nil
	}
	return netip.AddrPort{}, errf(ErrMalformed, fmt.Sprintf("%s: address of %d bytes, want 0, 6 or 18", what, len(b)))
}

// skip skips n msgpack values of any type: the extra trailing fields a later
// revision may append to a message array.
func (r *reader) skip(what string, n int) error {
	pending := uint64(n)
	for pending > 0 {
		pending--
		c, err := r.byte1(what)
		if err != nil {
			return err
		}
		var size, count uint64 // payload bytes to skip, nested values to add
		switch {
		case c < 0x80 || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c&0xf0 == 0x80:
			count = 2 * uint64(c&0x0f)
		case c&0xf0 == 0x90:
			count = uint64(c & 0x0f)
		case c&0xe0 == 0xa0:
			size = uint64(c & 0x1f)
		case c >= 0xc4 && c <= 0xc6: // bin
			size, err = r.bigEndian(what, 1<<(c-0xc4))
		case c >= 0xc7 && c <= 0xc9: // ext: length, then a type byte
			size, err = r.bigEndian(what, 1<<(c-0xc7))
			size++
		case c == 0xca:
			size = 4
		case c == 0xcb:
			size = 8
		case c >= 0xcc && c <= 0xcf:
			size = 1 << (c - 0xcc)
		case c >= 0xd0 && c <= 0xd3:
			size = 1 << (c - 0xd0)
		case c >= 0xd4 && c <= 0xd8: // fixext: type byte + 1..16
			size = 1 + 1<<(c-0xd4)
		case c >= 0xd9 && c <= 0xdb:
			size, err = r.bigEndian(what, 1<<(c-0xd9))
		case c == 0xdc || c == 0xdd:
			count, err = r.bigEndian(what, 2<<(c-0xdc))
		case c == 0xde || c == 0xdf:
			count, err = r.bigEndian(what, 2<<(c-0xde))
			count *= 2
		default: // 0xc1 is never used
			return r.malformed(what, c)
		}
		if err != nil {
			return err
		}
		if _, err := r.take(what, size); err != nil {
			return err
		}
		pending += count
		// Every pending value takes at least one byte.
		if pending > uint64(r.remaining()) {
			return r.truncated(what, int(min(pending, math.MaxInt32)))
		}
	}
	return nil
}

// end finishes a message array of n elements of which the decoder read
// known: it skips the extra elements and rejects trailing bytes.
func (r *reader) end(what string, n, known int) error {
	if err := r.skip(what, n-known); err != nil {
		return err
	}
	if r.off != len(r.b) {
		return errf(ErrMalformed, fmt.Sprintf("%s: %d trailing bytes", what, len(r.b)-r.off))
	}
	return nil
}
