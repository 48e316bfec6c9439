package wire

import (
	"bytes"
	"errors"
	"math"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

var errTest = errors.New("test: malformed")

// A value of the subset, as the tests below encode and decode it.
type mpValue struct {
	kind  mpKind
	u     uint64
	b     bool
	s     string // str or bin payload
	n     int    // array count
	limit int    // ArrayLen max, or the length limit of a str or bin
}

type mpKind int

const (
	kUint mpKind = iota
	kBool
	kNil
	kStr
	kBin
	kBinString
	kArray
)

func (v mpValue) append(dst []byte) []byte {
	switch v.kind {
	case kUint:
		return AppendUint(dst, v.u)
	case kBool:
		return AppendBool(dst, v.b)
	case kNil:
		return AppendNil(dst)
	case kStr:
		return AppendStr(dst, v.s)
	case kBin:
		return AppendBin(dst, []byte(v.s))
	case kBinString:
		return AppendBinString(dst, v.s)
	case kArray:
		return AppendArrayHeader(dst, v.n)
	}
	panic("unknown kind")
}

// read reads v's kind back and reports whether it got v.
func (v mpValue) read(r *Reader) bool {
	switch v.kind {
	case kUint:
		return r.Uint() == v.u
	case kBool:
		return r.Bool() == v.b
	case kNil:
		p, isNil := r.BytesOrNil(0)
		return isNil && p == nil
	case kStr:
		p := r.Str(v.limit)
		return p != nil && string(p) == v.s
	case kBin, kBinString:
		p := r.Bin(v.limit)
		return p != nil && string(p) == v.s
	case kArray:
		return r.ArrayLen(v.limit, 1) == v.n
	}
	panic("unknown kind")
}

// boundaryValues has a value on each side of every boundary between two
// forms, with the header each must be written with.
func boundaryValues() []struct {
	v      mpValue
	header []byte
} {
	str := func(k mpKind, n int) mpValue { return mpValue{kind: k, s: strings.Repeat("x", n), limit: n} }
	return []struct {
		v      mpValue
		header []byte
	}{
		{mpValue{kind: kUint, u: 0}, []byte{0x00}},
		{mpValue{kind: kUint, u: 127}, []byte{0x7f}},
		{mpValue{kind: kUint, u: 128}, []byte{0xcc, 0x80}},
		{mpValue{kind: kUint, u: 255}, []byte{0xcc, 0xff}},
		{mpValue{kind: kUint, u: 256}, []byte{0xcd, 0x01, 0x00}},
		{mpValue{kind: kUint, u: 65535}, []byte{0xcd, 0xff, 0xff}},
		{mpValue{kind: kUint, u: 65536}, []byte{0xce, 0, 1, 0, 0}},
		{mpValue{kind: kUint, u: math.MaxUint32}, []byte{0xce, 0xff, 0xff, 0xff, 0xff}},
		{mpValue{kind: kUint, u: math.MaxUint32 + 1}, []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}},
		{mpValue{kind: kUint, u: math.MaxUint64}, []byte{0xcf, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}},
		{mpValue{kind: kBool, b: false}, []byte{0xc2}},
		{mpValue{kind: kBool, b: true}, []byte{0xc3}},
		{mpValue{kind: kNil}, []byte{0xc0}},
		{str(kStr, 0), []byte{0xa0}},
		{str(kStr, 31), []byte{0xbf}},
		{str(kStr, 32), []byte{0xd9, 32}},
		{str(kStr, 255), []byte{0xd9, 0xff}},
		{str(kStr, 256), []byte{0xda, 0x01, 0x00}},
		{str(kStr, 65535), []byte{0xda, 0xff, 0xff}},
		{str(kStr, 65536), []byte{0xdb, 0, 1, 0, 0}},
		{str(kBin, 0), []byte{0xc4, 0}},
		{str(kBin, 255), []byte{0xc4, 0xff}},
		{str(kBin, 256), []byte{0xc5, 0x01, 0x00}},
		{str(kBin, 65535), []byte{0xc5, 0xff, 0xff}},
		{str(kBin, 65536), []byte{0xc6, 0, 1, 0, 0}},
		{str(kBinString, 0), []byte{0xc4, 0}},
		{str(kBinString, 255), []byte{0xc4, 0xff}},
		{str(kBinString, 256), []byte{0xc5, 0x01, 0x00}},
		{str(kBinString, 65536), []byte{0xc6, 0, 1, 0, 0}},
		{mpValue{kind: kArray, n: 0, limit: 0}, []byte{0x90}},
		{mpValue{kind: kArray, n: 15, limit: 15}, []byte{0x9f}},
		{mpValue{kind: kArray, n: 16, limit: 16}, []byte{0xdc, 0, 16}},
		{mpValue{kind: kArray, n: 65535, limit: 65535}, []byte{0xdc, 0xff, 0xff}},
		{mpValue{kind: kArray, n: 65536, limit: 65536}, []byte{0xdd, 0, 1, 0, 0}},
	}
}

// encodeWhole encodes v and, for an array, its n elements (fixint zeros), so
// that the encoding is one whole value.
func encodeWhole(v mpValue) []byte {
	b := v.append(nil)
	if v.kind == kArray {
		b = append(b, make([]byte, v.n)...)
	}
	return b
}

// readWhole reads one whole value as encodeWhole wrote it, then End.
func readWhole(r *Reader, v mpValue) bool {
	ok := v.read(r)
	if v.kind == kArray {
		for range v.n {
			ok = r.Uint() == 0 && ok
		}
	}
	r.End()
	return ok && r.Err() == nil
}

// TestAppendForms: each form boundary is written with the shortest form,
// byte for byte, and reads back.
func TestAppendForms(t *testing.T) {
	for _, tc := range boundaryValues() {
		enc := encodeWhole(tc.v)
		if !bytes.HasPrefix(enc, tc.header) {
			t.Errorf("%+v: header % x, want % x", tc.v.kind, enc[:min(len(enc), len(tc.header))], tc.header)
		}
		if got, want := len(enc)-len(tc.header), len(tc.v.s)+tc.v.n; got != want {
			t.Errorf("%v with header % x: %d bytes after the header, want %d", tc.v.kind, tc.header, got, want)
		}
		r := NewReader(enc, errTest)
		if !readWhole(&r, tc.v) {
			t.Errorf("header % x: does not read back: %v", tc.header, r.Err())
		}
	}
}

// TestAppendMatchesReference: the Append functions write what the msgpack
// library does, so any implementation can read them.
func TestAppendMatchesReference(t *testing.T) {
	mustMarshal := func(v any) []byte {
		t.Helper()
		b, err := msgpack.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	for _, v := range []uint64{0, 127, 128, 255, 256, math.MaxUint16, math.MaxUint16 + 1, math.MaxUint32, math.MaxUint32 + 1, math.MaxUint64} {
		var buf bytes.Buffer
		if err := msgpack.NewEncoder(&buf).EncodeUint(v); err != nil {
			t.Fatal(err)
		}
		if got := AppendUint(nil, v); !bytes.Equal(got, buf.Bytes()) {
			t.Errorf("AppendUint(%d) = % x, msgpack gives % x", v, got, buf.Bytes())
		}
	}
	for _, n := range []int{0, 31, 32, 255, 256, 65535, 65536} {
		s := strings.Repeat("x", n)
		if got, want := AppendStr(nil, s), mustMarshal(s); !bytes.Equal(got, want) {
			t.Errorf("AppendStr(len %d) differs from msgpack", n)
		}
		want := mustMarshal([]byte(s))
		if got := AppendBin(nil, []byte(s)); !bytes.Equal(got, want) {
			t.Errorf("AppendBin(len %d) differs from msgpack", n)
		}
		if got := AppendBinString(nil, s); !bytes.Equal(got, want) {
			t.Errorf("AppendBinString(len %d) differs from msgpack", n)
		}
	}
	for _, n := range []int{0, 15, 16, 65535, 65536} {
		want := mustMarshal(make([]any, n))
		if got := AppendArrayHeader(nil, n); !bytes.Equal(got, want[:len(got)]) {
			t.Errorf("AppendArrayHeader(%d) = % x, msgpack header % x", n, got, want[:len(got)])
		}
	}
	for _, v := range []bool{false, true} {
		if got, want := AppendBool(nil, v), mustMarshal(v); !bytes.Equal(got, want) {
			t.Errorf("AppendBool(%v) = % x, msgpack gives % x", v, got, want)
		}
	}
	if got, want := AppendNil(nil), mustMarshal(nil); !bytes.Equal(got, want) {
		t.Errorf("AppendNil = % x, msgpack gives % x", got, want)
	}
}

// TestReaderTruncated: every strict prefix of every boundary value fails
// with the caller's sentinel, and the read returns its zero value.
func TestReaderTruncated(t *testing.T) {
	for _, tc := range boundaryValues() {
		enc := encodeWhole(tc.v)
		// Past the header the prefixes only differ in length; a few suffice.
		cuts := []int{}
		for i := range min(len(enc), len(tc.header)+3) {
			cuts = append(cuts, i)
		}
		cuts = append(cuts, len(enc)/2, len(enc)-1)
		for _, i := range cuts {
			if i < 0 || i >= len(enc) {
				continue
			}
			r := NewReader(enc[:i], errTest)
			readWhole(&r, tc.v)
			if !errors.Is(r.Err(), errTest) {
				t.Fatalf("header % x cut at %d of %d: error %v, want errTest", tc.header, i, len(enc), r.Err())
			}
		}
	}
	// Every byte of a record of mixed values.
	rec := []mpValue{
		{kind: kArray, n: 6, limit: 6},
		{kind: kUint, u: 1 << 40},
		{kind: kStr, s: strings.Repeat("k", 40), limit: 64},
		{kind: kBin, s: "value", limit: 64},
		{kind: kBool, b: true},
		{kind: kNil},
		{kind: kUint, u: 300},
	}
	var enc []byte
	for _, v := range rec {
		enc = v.append(enc)
	}
	for i := range len(enc) + 1 {
		r := NewReader(enc[:i], errTest)
		ok := true
		for _, v := range rec {
			ok = v.read(&r) && ok
		}
		r.End()
		if i == len(enc) {
			if !ok || r.Err() != nil {
				t.Fatalf("whole record: %v", r.Err())
			}
		} else if !errors.Is(r.Err(), errTest) {
			t.Fatalf("record cut at %d of %d: error %v, want errTest", i, len(enc), r.Err())
		}
	}
}

// TestReaderForms: the Reader accepts every standard form of a family, not
// only the shortest, and refuses other families.
func TestReaderForms(t *testing.T) {
	type read func(r *Reader) (any, bool) // value, isNil
	uintR := func(r *Reader) (any, bool) { return r.Uint(), false }
	strR := func(r *Reader) (any, bool) { return string(r.Str(8)), false }
	binR := func(r *Reader) (any, bool) { return string(r.Bin(8)), false }
	bytesR := func(r *Reader) (any, bool) { return string(r.Bytes(8)), false }
	orNilR := func(r *Reader) (any, bool) { p, isNil := r.BytesOrNil(8); return string(p), isNil }
	boolR := func(r *Reader) (any, bool) { return r.Bool(), false }
	arrayR := func(r *Reader) (any, bool) {
		n := r.ArrayLen(8, 1)
		for range n {
			r.Uint()
		}
		return n, false
	}
	tests := []struct {
		name  string
		read  read
		b     []byte
		want  any
		isNil bool
		err   bool
	}{
		{"uint/fixint", uintR, []byte{0x05}, uint64(5), false, false},
		{"uint/uint8", uintR, []byte{0xcc, 0x05}, uint64(5), false, false},
		{"uint/uint16", uintR, []byte{0xcd, 0, 5}, uint64(5), false, false},
		{"uint/uint32", uintR, []byte{0xce, 0, 0, 0, 5}, uint64(5), false, false},
		{"uint/uint64", uintR, []byte{0xcf, 0, 0, 0, 0, 0, 0, 0, 5}, uint64(5), false, false},
		{"uint/int8", uintR, []byte{0xd0, 0x7f}, uint64(127), false, false},
		{"uint/int16", uintR, []byte{0xd1, 0x7f, 0xff}, uint64(32767), false, false},
		{"uint/int32", uintR, []byte{0xd2, 0, 1, 0, 0}, uint64(65536), false, false},
		{"uint/int64", uintR, []byte{0xd3, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff}, uint64(math.MaxInt64), false, false},
		{"uint/negative int8", uintR, []byte{0xd0, 0xff}, uint64(0), false, true},
		{"uint/negative int16", uintR, []byte{0xd1, 0x80, 0x00}, uint64(0), false, true},
		{"uint/negative int64", uintR, []byte{0xd3, 0x80, 0, 0, 0, 0, 0, 0, 0}, uint64(0), false, true},
		{"uint/negative fixint", uintR, []byte{0xe0}, uint64(0), false, true},
		{"uint/float", uintR, []byte{0xca, 0, 0, 0, 0}, uint64(0), false, true},
		{"uint/str", uintR, []byte{0xa1, '1'}, uint64(0), false, true},
		{"str/fixstr", strR, []byte{0xa2, 'h', 'i'}, "hi", false, false},
		{"str/str8", strR, []byte{0xd9, 2, 'h', 'i'}, "hi", false, false},
		{"str/str16", strR, []byte{0xda, 0, 2, 'h', 'i'}, "hi", false, false},
		{"str/str32", strR, []byte{0xdb, 0, 0, 0, 2, 'h', 'i'}, "hi", false, false},
		{"str/bin", strR, []byte{0xc4, 2, 'h', 'i'}, "", false, true},
		{"str/nil", strR, []byte{0xc0}, "", false, true},
		{"bin/bin8", binR, []byte{0xc4, 2, 'h', 'i'}, "hi", false, false},
		{"bin/bin16", binR, []byte{0xc5, 0, 2, 'h', 'i'}, "hi", false, false},
		{"bin/bin32", binR, []byte{0xc6, 0, 0, 0, 2, 'h', 'i'}, "hi", false, false},
		{"bin/str", binR, []byte{0xa2, 'h', 'i'}, "", false, true},
		{"bin/nil", binR, []byte{0xc0}, "", false, true},
		{"bytes/fixstr", bytesR, []byte{0xa2, 'h', 'i'}, "hi", false, false},
		{"bytes/str32", bytesR, []byte{0xdb, 0, 0, 0, 2, 'h', 'i'}, "hi", false, false},
		{"bytes/bin8", bytesR, []byte{0xc4, 2, 'h', 'i'}, "hi", false, false},
		{"bytes/bin32", bytesR, []byte{0xc6, 0, 0, 0, 2, 'h', 'i'}, "hi", false, false},
		{"bytes/nil", bytesR, []byte{0xc0}, "", false, true},
		{"bytes/uint", bytesR, []byte{0x01}, "", false, true},
		{"orNil/nil", orNilR, []byte{0xc0}, "", true, false},
		{"orNil/str8", orNilR, []byte{0xd9, 2, 'h', 'i'}, "hi", false, false},
		{"orNil/bin16", orNilR, []byte{0xc5, 0, 2, 'h', 'i'}, "hi", false, false},
		{"orNil/bool", orNilR, []byte{0xc2}, "", false, true},
		{"bool/false", boolR, []byte{0xc2}, false, false, false},
		{"bool/true", boolR, []byte{0xc3}, true, false, false},
		{"bool/uint", boolR, []byte{0x01}, false, false, true},
		{"array/fixarray", arrayR, []byte{0x92, 1, 2}, 2, false, false},
		{"array/array16", arrayR, []byte{0xdc, 0, 2, 1, 2}, 2, false, false},
		{"array/array32", arrayR, []byte{0xdd, 0, 0, 0, 2, 1, 2}, 2, false, false},
		{"array/map", arrayR, []byte{0x81, 1, 2}, 0, false, true},
		{"array/nil", arrayR, []byte{0xc0}, 0, false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.b, errTest)
			got, isNil := tt.read(&r)
			if got != tt.want || isNil != tt.isNil || (r.Err() != nil) != tt.err {
				t.Fatalf("got %v, nil %v, error %v; want %v, nil %v, error %v", got, isNil, r.Err(), tt.want, tt.isNil, tt.err)
			}
			if tt.err {
				if !errors.Is(r.Err(), errTest) {
					t.Fatalf("error %v does not wrap the sentinel", r.Err())
				}
				return
			}
			r.End()
			if r.Err() != nil {
				t.Fatalf("End: %v", r.Err())
			}
		})
	}
}

// TestReaderLimits: lengths and counts over the caller's limit or beyond
// the bytes left are refused from the header alone, before the caller
// could allocate for them.
func TestReaderLimits(t *testing.T) {
	huge := []byte{0xff, 0xff, 0xff, 0xff}
	tests := []struct {
		name string
		b    []byte
		read func(r *Reader) int
		want int // -1: an error
	}{
		{"array32 of 2^32-1, no limit", append([]byte{0xdd}, huge...), func(r *Reader) int { return r.ArrayLen(math.MaxInt, 1) }, -1},
		{"array16 over the limit", []byte{0xdc, 0, 3, 1, 2, 3}, func(r *Reader) int { return r.ArrayLen(2, 1) }, -1},
		{"array16 at the limit", []byte{0xdc, 0, 3, 1, 2, 3}, func(r *Reader) int { return r.ArrayLen(3, 1) }, 3},
		{"fixarray over the limit", []byte{0x93, 1, 2, 3}, func(r *Reader) int { return r.ArrayLen(2, 1) }, -1},
		{"negative limit", []byte{0x90}, func(r *Reader) int { return r.ArrayLen(-1, 1) }, -1},
		{"fixarray beyond the bytes", []byte{0x93, 1, 2}, func(r *Reader) int { return r.ArrayLen(8, 1) }, -1},
		{"fixarray of 3 2-byte elements in 5 bytes", []byte{0x93, 1, 2, 3, 4, 5}, func(r *Reader) int { return r.ArrayLen(8, 2) }, -1},
		{"fixarray of 3 2-byte elements in 6 bytes", []byte{0x93, 1, 2, 3, 4, 5, 6}, func(r *Reader) int { return r.ArrayLen(8, 2) }, 3},
		{"array16 of 3 2-byte elements in 5 bytes", []byte{0xdc, 0, 3, 1, 2, 3, 4, 5}, func(r *Reader) int { return r.ArrayLen(8, 2) }, -1},
		{"array16 of 3 2-byte elements in 6 bytes", []byte{0xdc, 0, 3, 1, 2, 3, 4, 5, 6}, func(r *Reader) int { return r.ArrayLen(8, 2) }, 3},
		{"minElem 0 counts as 1", []byte{0x93, 1, 2}, func(r *Reader) int { return r.ArrayLen(8, 0) }, -1},
		{"expect array of other count", []byte{0x92, 1, 2}, func(r *Reader) int { r.ExpectArray(3); return len(r.Str(8)) }, -1},
		{"expect array", []byte{0x92, 1, 2}, func(r *Reader) int { r.ExpectArray(2); return int(r.Uint() + r.Uint()) }, 3},
		{"str32 of 2^32-1", append([]byte{0xdb}, huge...), func(r *Reader) int { return len(r.Str(math.MaxInt)) }, -1},
		{"bin32 of 2^32-1", append([]byte{0xc6}, huge...), func(r *Reader) int { return len(r.Bin(math.MaxInt)) }, -1},
		{"bytes of 2^32-1", append([]byte{0xdb}, huge...), func(r *Reader) int { return len(r.Bytes(math.MaxInt)) }, -1},
		{"fixstr over the limit", []byte{0xa3, 'a', 'b', 'c'}, func(r *Reader) int { return len(r.Str(2)) }, -1},
		{"fixstr at the limit", []byte{0xa3, 'a', 'b', 'c'}, func(r *Reader) int { return len(r.Str(3)) }, 3},
		{"str8 over the limit, bytes present", []byte{0xd9, 3, 'a', 'b', 'c'}, func(r *Reader) int { return len(r.Str(2)) }, -1},
		{"bin8 over the limit", []byte{0xc4, 3, 'a', 'b', 'c'}, func(r *Reader) int { return len(r.Bin(2)) }, -1},
		{"bin beyond the bytes", []byte{0xc4, 4, 'a', 'b', 'c'}, func(r *Reader) int { return len(r.Bin(8)) }, -1},
		{"uint over max", []byte{0xcd, 1, 0}, func(r *Reader) int { return int(r.UintMax(255)) }, -1},
		{"uint at max", []byte{0xcc, 0xff}, func(r *Reader) int { return int(r.UintMax(255)) }, 255},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewReader(tt.b, errTest)
			got := tt.read(&r)
			if tt.want < 0 {
				if r.Err() == nil || got != 0 {
					t.Fatalf("got %d, error %v; want 0 and an error", got, r.Err())
				}
				if !errors.Is(r.Err(), errTest) {
					t.Fatalf("error %v does not wrap the sentinel", r.Err())
				}
				return
			}
			if r.Err() != nil || got != tt.want {
				t.Fatalf("got %d, error %v; want %d", got, r.Err(), tt.want)
			}
		})
	}
}

// TestReaderSticky: the first error stays, later reads return zero values
// and move nothing, and the error says where decoding stopped.
func TestReaderSticky(t *testing.T) {
	b := []byte{0x01, 0xc0, 0x05, 0xa1, 'x', 0x92, 0xc3}
	r := NewReader(b, errTest)
	if r.Uint() != 1 {
		t.Fatal("first read")
	}
	if got := r.Uint(); got != 0 || r.Err() == nil {
		t.Fatalf("Uint of nil = %d, %v", got, r.Err())
	}
	first := r.Err()
	if want := "test: malformed: want unsigned integer, got 0xc0 at byte 2"; first.Error() != want {
		t.Errorf("error %q, want %q", first, want)
	}
	r.Fail("later")
	r.End()
	if r.Err() != first {
		t.Fatalf("error replaced: %v", r.Err())
	}
	if r.Uint() != 0 || r.Str(8) != nil || r.Bin(8) != nil || r.Bytes(8) != nil || r.ArrayLen(8, 1) != 0 || r.Bool() {
		t.Fatal("a read after the error returned a value")
	}
	if p, isNil := r.BytesOrNil(8); p != nil || isNil {
		t.Fatal("BytesOrNil after the error returned a value")
	}
	if r.Remaining() != 0 {
		t.Fatalf("Remaining after the error = %d", r.Remaining())
	}

	// Fail on a caller's check stops the Reader too.
	r = NewReader([]byte{0x01, 0x02}, errTest)
	r.Uint()
	r.Fail("bad %s", "thing")
	if r.Uint() != 0 || !strings.Contains(r.Err().Error(), "bad thing at byte 1") {
		t.Fatalf("after Fail: %v", r.Err())
	}

	// A nil sentinel and the zero Reader fall back to ErrMalformed.
	r = NewReader(nil, nil)
	r.Uint()
	var z Reader
	z.Bool()
	for _, err := range []error{r.Err(), z.Err()} {
		if !errors.Is(err, ErrMalformed) {
			t.Errorf("error %v, want ErrMalformed", err)
		}
	}

	// Trailing bytes.
	r = NewReader([]byte{0x01, 0x02}, errTest)
	r.Uint()
	r.End()
	if !errors.Is(r.Err(), errTest) || !strings.Contains(r.Err().Error(), "1 trailing bytes") {
		t.Fatalf("End with a byte left: %v", r.Err())
	}
}

// TestReaderAliases: byte results alias the input but cannot be appended
// into it.
func TestReaderAliases(t *testing.T) {
	b := []byte{0xa2, 'h', 'i', 0xc4, 1, 'x'}
	r := NewReader(b, errTest)
	s := r.Str(8)
	s = append(s, '!')
	if p := r.Bin(8); string(p) != "x" {
		t.Fatalf("appending to a str result overwrote the input: %q", p)
	}
	b[1] = 'H'
	if r2 := NewReader(b, errTest); string(r2.Str(8)) != "Hi" {
		t.Fatal("results do not alias the input")
	}
	_ = s
	// An empty str or bin is empty, not nil.
	r = NewReader([]byte{0xa0, 0xc4, 0x00}, errTest)
	if p, isNil := r.BytesOrNil(0); p == nil || isNil {
		t.Fatal("empty str read as nil")
	}
	if p := r.Bin(0); p == nil {
		t.Fatal("empty bin read as nil")
	}
}

// TestReaderAllocs: decoding allocates nothing on success.
func TestReaderAllocs(t *testing.T) {
	var enc []byte
	enc = AppendArrayHeader(enc, 7)
	enc = AppendUint(enc, 1<<40)
	enc = AppendStr(enc, strings.Repeat("k", 40))
	enc = AppendBinString(enc, "value")
	enc = AppendBool(enc, true)
	enc = AppendNil(enc)
	enc = AppendArrayHeader(enc, 20)
	for i := range 20 {
		enc = AppendUint(enc, uint64(i)*1000)
	}
	enc = AppendUint(enc, 7)
	allocs := testing.AllocsPerRun(100, func() {
		r := NewReader(enc, errTest)
		r.ExpectArray(7)
		r.Uint()
		r.Str(64)
		r.Bytes(64)
		r.Bool()
		r.BytesOrNil(0)
		for range r.ArrayLen(32, 1) {
			r.UintMax(1 << 20)
		}
		r.Uint()
		r.End()
		if r.Err() != nil {
			t.Fatal(r.Err())
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per decode, want 0", allocs)
	}
	buf := make([]byte, 0, 256)
	allocs = testing.AllocsPerRun(100, func() {
		buf = AppendArrayHeader(buf[:0], 20)
		buf = AppendUint(buf, math.MaxUint64)
		buf = AppendStr(buf, "key")
		buf = AppendBin(buf, enc[:40])
		buf = AppendBinString(buf, "value")
		buf = AppendBool(AppendNil(buf), true)
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per encode into a buffer with room, want 0", allocs)
	}
}

func mpValueGen() *rapid.Generator[mpValue] {
	return rapid.Custom(func(t *rapid.T) mpValue {
		v := mpValue{kind: mpKind(rapid.IntRange(int(kUint), int(kArray)).Draw(t, "kind"))}
		switch v.kind {
		case kUint:
			v.u = rapid.Uint64().Draw(t, "u")
		case kBool:
			v.b = rapid.Bool().Draw(t, "b")
		case kStr, kBin, kBinString:
			v.s = rapid.StringN(0, 300, -1).Draw(t, "s")
			v.limit = len(v.s) + rapid.IntRange(0, 2).Draw(t, "slack")
		case kArray:
			v.n = rapid.IntRange(0, 70000).Draw(t, "n")
			v.limit = v.n + rapid.IntRange(0, 2).Draw(t, "slack")
		}
		return v
	})
}

// TestReaderRoundTripProperty: any sequence of values reads back as it was
// written, to the last byte, and every strict prefix of its encoding fails.
func TestReaderRoundTripProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		vs := rapid.SliceOfN(mpValueGen(), 1, 12).Draw(t, "values")
		var enc []byte
		for _, v := range vs {
			enc = v.append(enc)
			if v.kind == kArray {
				enc = append(enc, make([]byte, v.n)...) // room for the count check
			}
		}
		read := func(b []byte) error {
			r := NewReader(b, errTest)
			for i, v := range vs {
				if !v.read(&r) && r.Err() == nil {
					t.Fatalf("value %d (%+v) read back differently", i, v.kind)
				}
				if v.kind == kArray {
					for range v.n {
						r.Uint()
					}
				}
			}
			r.End()
			return r.Err()
		}
		if err := read(enc); err != nil {
			t.Fatalf("whole encoding: %v", err)
		}
		cut := rapid.IntRange(0, len(enc)-1).Draw(t, "cut")
		if err := read(enc[:cut]); !errors.Is(err, errTest) {
			t.Fatalf("prefix of %d of %d bytes: error %v, want errTest", cut, len(enc), err)
		}
	})
}

// TestReaderArbitraryBytes: any input and any sequence of reads neither
// panics nor returns more bytes than the input holds, and a failed read
// returns a zero value.
func TestReaderArbitraryBytes(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := rapid.SliceOfN(rapid.Byte(), 0, 64).Draw(t, "b")
		ops := rapid.SliceOfN(rapid.IntRange(0, 8), 1, 16).Draw(t, "ops")
		limit := rapid.IntRange(0, 40).Draw(t, "limit")
		r := NewReader(b, errTest)
		for _, op := range ops {
			before := r.Err()
			var n int // a length or a count a read returned
			var zero bool
			switch op {
			case 0:
				v := r.Uint()
				zero = v == 0
			case 1:
				v := r.UintMax(uint64(limit))
				zero = v == 0
				if v > uint64(limit) {
					t.Fatalf("UintMax(%d) = %d", limit, v)
				}
			case 2:
				n = r.ArrayLen(limit, 1+limit%3)
				zero = n == 0
			case 3:
				p := r.Str(limit)
				zero, n = p == nil, len(p)
			case 4:
				p := r.Bin(limit)
				zero, n = p == nil, len(p)
			case 5:
				p := r.Bytes(limit)
				zero, n = p == nil, len(p)
			case 6:
				p, isNil := r.BytesOrNil(limit)
				zero, n = p == nil && !isNil, len(p)
			case 7:
				zero = !r.Bool()
			case 8:
				r.End()
				zero = true
			}
			if n > limit || n > len(b) {
				t.Fatalf("op %d returned %d, over the limit %d or the %d input bytes", op, n, limit, len(b))
			}
			if r.Err() != nil && !zero {
				t.Fatalf("op %d failed (%v) but returned a value", op, r.Err())
			}
			if before != nil && r.Err() != before {
				t.Fatal("the first error was replaced")
			}
			if r.Err() != nil && !errors.Is(r.Err(), errTest) {
				t.Fatalf("error %v does not wrap the sentinel", r.Err())
			}
		}
	})
}
