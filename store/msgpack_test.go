package store

import (
	"errors"
	"testing"
)

// TestReaderForms: the store's reader takes every standard form another
// encoder may choose, and its errors wrap ErrMalformed. wire's tests cover
// the Reader and the Append functions in depth.
func TestReaderForms(t *testing.T) {
	uints := []struct {
		name string
		b    []byte
		want uint64
		err  bool
	}{
		{"fixint", []byte{0x7f}, 127, false},
		{"uint8", []byte{0xcc, 0xff}, 255, false},
		{"uint16", []byte{0xcd, 0x01, 0x00}, 256, false},
		{"uint32", []byte{0xce, 0, 1, 0, 0}, 65536, false},
		{"uint64", []byte{0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, 1 << 32, false},
		{"int8", []byte{0xd0, 0x05}, 5, false},
		{"int16", []byte{0xd1, 0x01, 0x00}, 256, false},
		{"int32", []byte{0xd2, 0, 1, 0, 0}, 65536, false},
		{"int64", []byte{0xd3, 0, 0, 0, 1, 0, 0, 0, 0}, 1 << 32, false},
		{"negative int8", []byte{0xd0, 0xff}, 0, true},
		{"negative fixint", []byte{0xff}, 0, true},
		{"truncated", []byte{0xcd, 0x01}, 0, true},
		{"string", []byte{0xa1, 'x'}, 0, true},
	}
	for _, tt := range uints {
		t.Run("uint/"+tt.name, func(t *testing.T) {
			r := newReader(tt.b)
			got := r.Uint()
			if (r.Err() != nil) != tt.err || got != tt.want {
				t.Fatalf("Uint() = %d, %v; want %d, error %v", got, r.Err(), tt.want, tt.err)
			}
			if r.Err() != nil && !errors.Is(r.Err(), ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", r.Err())
			}
		})
	}
	strs := []struct {
		name string
		b    []byte
		want string
		nil  bool
		err  bool
	}{
		{"fixstr", []byte{0xa2, 'h', 'i'}, "hi", false, false},
		{"str8", []byte{0xd9, 2, 'h', 'i'}, "hi", false, false},
		{"str16", []byte{0xda, 0, 2, 'h', 'i'}, "hi", false, false},
		{"str32", []byte{0xdb, 0, 0, 0, 2, 'h', 'i'}, "hi", false, false},
		{"bin8", []byte{0xc4, 2, 'h', 'i'}, "hi", false, false},
		{"bin16", []byte{0xc5, 0, 2, 'h', 'i'}, "hi", false, false},
		{"bin32", []byte{0xc6, 0, 0, 0, 2, 'h', 'i'}, "hi", false, false},
		{"nil", []byte{0xc0}, "", true, false},
		{"over limit", []byte{0xa5, 'a', 'b', 'c', 'd', 'e'}, "", false, true},
		{"short", []byte{0xa3, 'a'}, "", false, true},
		{"huge length", []byte{0xdb, 0xff, 0xff, 0xff, 0xff}, "", false, true},
	}
	for _, tt := range strs {
		t.Run("str/"+tt.name, func(t *testing.T) {
			r := newReader(tt.b)
			got, isNil := r.BytesOrNil(4)
			if (r.Err() != nil) != tt.err || string(got) != tt.want || isNil != tt.nil {
				t.Fatalf("BytesOrNil = %q, nil %v, %v", got, isNil, r.Err())
			}
		})
	}
	arrays := []struct {
		name string
		b    []byte
		want int
		err  bool
	}{
		{"fixarray", []byte{0x92, 1, 2}, 2, false},
		{"array16", []byte{0xdc, 0, 2, 1, 2}, 2, false},
		{"array32", []byte{0xdd, 0, 0, 0, 2, 1, 2}, 2, false},
		{"count beyond bytes", []byte{0xdc, 0, 3, 1, 2}, 0, true},
		{"count beyond limit", []byte{0xdc, 0x10, 0, 1, 2}, 0, true},
		{"map", []byte{0x80}, 0, true},
	}
	for _, tt := range arrays {
		t.Run("array/"+tt.name, func(t *testing.T) {
			r := newReader(tt.b)
			got := r.ArrayLen(100, 1)
			if (r.Err() != nil) != tt.err || got != tt.want {
				t.Fatalf("ArrayLen = %d, %v", got, r.Err())
			}
		})
	}
}

func TestStamp(t *testing.T) {
	var c hlc
	s1 := Stamp(c.tick(t0))
	s2 := Stamp(c.tick(t0))
	if s1.Millis() != t0.UnixMilli() || s1.Logical() != 0 || s2.Logical() != 1 || s2.Millis() != s1.Millis() {
		t.Fatalf("stamps %d/%d, %d/%d", s1.Millis(), s1.Logical(), s2.Millis(), s2.Logical())
	}
}
