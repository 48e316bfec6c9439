package wire

import (
	"encoding/binary"
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
// their own (store, radix), together with Reader (reader.go), which decodes
// everything. The unexported reads at the end of this file are those of
// wire's message bodies: message arrays that may carry later fields,
// interned strings, copied bins and addresses.

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

// message reads the array header of a body of message type t, which must
// have at least want elements, and names t in later errors. The decoder
// finishes with end(n, want). A fixarray takes a short path.
func (r *Reader) message(t Type, want int) (n int) {
	r.what = t
	return r.array(want)
}

// array reads an array header of at least want elements, each taking at
// least one of the bytes that remain. A fixarray takes a short path.
func (r *Reader) array(want int) int {
	if r.off < len(r.b) {
		if c := r.b[r.off]; c&0xf0 == 0x90 && int(c&0x0f) >= want && int(c&0x0f) < len(r.b)-r.off {
			r.off++
			return int(c & 0x0f)
		}
	}
	n := r.arrayHeader()
	switch {
	case r.err != nil:
		return 0
	case n < uint64(want):
		r.Fail("array of %d elements, want at least %d", n, want)
		return 0
	case n > uint64(r.Remaining()):
		r.failShort("array of %d cannot fit in %d bytes", n, r.Remaining())
		return 0
	}
	return int(n)
}

// binOrNil reads a bin, or a nil as an empty one, and returns its bytes,
// aliasing the input. A bin8 takes a short path.
func (r *Reader) binOrNil() []byte {
	if off := r.off; off+1 < len(r.b) && r.b[off] == 0xc4 {
		if end := off + 2 + int(r.b[off+1]); end <= len(r.b) {
			r.off = end
			return r.b[off+2 : end : end]
		}
	}
	p, _ := r.bytes(math.MaxInt, acceptBin|acceptNil)
	return p
}

// string reads a str into *dst, keeping the existing string when the bytes
// are equal so that decoding into a reused message does not allocate, and
// taking it from the interner otherwise, if there is one.
func (r *Reader) string(dst *string) {
	b := r.Str(math.MaxInt)
	switch {
	case *dst == string(b):
	case r.in != nil:
		*dst = r.in.get(b)
	default:
		*dst = string(b)
	}
}

// copyBin reads a bin (or nil) into *dst, reusing its capacity. The result
// never aliases the input.
func (r *Reader) copyBin(dst *[]byte) {
	*dst = append((*dst)[:0], r.binOrNil()...)
}

// addrPort reads an address written by appendAddrPort.
func (r *Reader) addrPort() netip.AddrPort {
	b := r.binOrNil()
	switch len(b) {
	case 0:
		return netip.AddrPort{}
	case 6:
		a := netip.AddrFrom4([4]byte(b[:4]))
		return netip.AddrPortFrom(a, uint16(b[4])<<8|uint16(b[5]))
	case 18:
		a := netip.AddrFrom16([16]byte(b[:16]))
		return netip.AddrPortFrom(a, uint16(b[16])<<8|uint16(b[17]))
	}
	r.Fail("address of %d bytes, want 0, 6 or 18", len(b))
	return netip.AddrPort{}
}

// skip skips n msgpack values of any type: the extra trailing fields a later
// revision may append to a message array.
func (r *Reader) skip(n int) {
	pending := uint64(max(n, 0))
	for pending > 0 && r.err == nil {
		pending--
		c := r.byte1()
		var size, count uint64 // payload bytes to skip, nested values to add
		switch {
		case r.err != nil:
			return
		case c < 0x80 || c >= 0xe0 || c == 0xc0 || c == 0xc2 || c == 0xc3:
		case c&0xf0 == 0x80:
			count = 2 * uint64(c&0x0f)
		case c&0xf0 == 0x90:
			count = uint64(c & 0x0f)
		case c&0xe0 == 0xa0:
			size = uint64(c & 0x1f)
		case c >= 0xc4 && c <= 0xc6: // bin
			size = r.bigEndian(1 << (c - 0xc4))
		case c >= 0xc7 && c <= 0xc9: // ext: length, then a type byte
			size = r.bigEndian(1<<(c-0xc7)) + 1
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
			size = r.bigEndian(1 << (c - 0xd9))
		case c == 0xdc || c == 0xdd:
			count = r.bigEndian(2 << (c - 0xdc))
		case c == 0xde || c == 0xdf:
			count = 2 * r.bigEndian(2<<(c-0xde))
		default: // 0xc1 is never used
			r.Fail("want a msgpack value, got 0x%02x", c)
			return
		}
		if size > uint64(r.Remaining()) {
			r.failShort("need %d bytes, have %d", min(size, math.MaxInt32), r.Remaining())
			return
		}
		r.off += int(size)
		pending += count
		// Every pending value takes at least one byte.
		if pending > uint64(r.Remaining()) {
			r.failShort("%d values cannot fit in %d bytes", min(pending, math.MaxInt32), r.Remaining())
		}
	}
}

// end finishes a message array of n elements of which the decoder read
// known: it skips the extra elements and rejects trailing bytes. It is
// small enough to inline into the decoders; the usual end, nothing extra and
// nothing left, costs no call.
func (r *Reader) end(n, known int) {
	if n > known || r.off != len(r.b) {
		r.endSlow(n - known)
	}
}

func (r *Reader) endSlow(extra int) {
	r.skip(extra)
	r.End()
}
