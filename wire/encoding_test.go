package wire

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/go-cmp/cmp"
	"github.com/vmihailenco/msgpack/v5"
	"pgregory.net/rapid"
)

var (
	addr4 = netip.MustParseAddrPort("10.0.0.7:7946")
	addr6 = netip.MustParseAddrPort("[fd00::1:2]:7946")
)

// sampleMessages has one message of every type, with values that use more
// than the smallest msgpack forms.
func sampleMessages() []Message {
	return []Message{
		&Ping{Seq: 70000, Target: "gw-b", SourceName: "gw-a", SourceAddr: addr4},
		&IndirectPing{Seq: 1, Target: "gw-c", TargetAddr: addr6, WantNack: true, SourceName: "gw-a", SourceAddr: addr4},
		&Ack{Seq: 1 << 31, Payload: []byte("health=ok")},
		&Nack{Seq: 300},
		&Alive{Name: strings.Repeat("n", 40), Gen: 1 << 40, Incarnation: 3, Addr: addr6, Meta: bytes.Repeat([]byte{7}, 300)},
		&Suspect{Name: "gw-c", Gen: 2, Incarnation: 9, From: "gw-a"},
		&Dead{Name: "gw-c", Gen: 2, Incarnation: 9, From: "gw-c", Left: true},
		&PushPull{Join: true, Members: 3, StateBytes: 1 << 20},
		&Digest{Entries: []DigestEntry{{Name: "gw-a", Gen: 1, Incarnation: 0, State: StateAlive}, {Name: "gw-b", Gen: 5, Incarnation: 200, State: StateLeft}}},
		&Members{Records: []MemberRecord{{Name: "gw-a", Gen: 1, State: StateSuspect, Addr: addr4, Meta: []byte("zone=a")}}},
		&Data{Kind: 2, Payload: []byte{0, 1, 2, 3}},
	}
}

func TestMessageRoundTrip(t *testing.T) {
	for _, m := range sampleMessages() {
		t.Run(m.Type().String(), func(t *testing.T) {
			body := m.AppendBody(nil)
			if n := m.bodySize(); n != len(body) {
				t.Fatalf("bodySize %d, AppendBody wrote %d bytes", n, len(body))
			}
			got, err := DecodeMessage(m.Type(), body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(m, got, cmpOpts); diff != "" {
				t.Errorf("round trip (-want +got):\n%s", diff)
			}
			// The reference msgpack library reads the body as an array with
			// as many elements as the struct has fields.
			var generic []any
			if err := msgpack.Unmarshal(body, &generic); err != nil {
				t.Fatalf("not standard msgpack: %v", err)
			}
			// Every strict prefix is truncated or malformed, never a panic or success.
			for i := range len(body) {
				if err := got.DecodeBody(body[:i]); !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrMalformed) {
					t.Fatalf("prefix %d/%d: err %v, want truncated or malformed", i, len(body), err)
				}
			}
		})
	}
}

func TestMessageRoundTripRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		m := genMessage().Draw(t, "msg")
		body := m.AppendBody(nil)
		if n := m.bodySize(); n != len(body) {
			t.Fatalf("bodySize %d, AppendBody wrote %d bytes", n, len(body))
		}
		if part, err := AppendPart(nil, m); err == nil && PartSize(m) != len(part) {
			t.Fatalf("PartSize %d, AppendPart wrote %d bytes", PartSize(m), len(part))
		}
		got, err := DecodeMessage(m.Type(), body)
		if err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(m, got, cmpOpts); diff != "" {
			t.Fatalf("round trip (-want +got):\n%s", diff)
		}
		// Decoding a second message into the used one replaces every field.
		m2 := genMessage().Draw(t, "msg2")
		if m2.Type() == m.Type() {
			if err := got.DecodeBody(m2.AppendBody(nil)); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(m2, got, cmpOpts); diff != "" {
				t.Fatalf("reused decode (-want +got):\n%s", diff)
			}
		}
	})
}

// TestDecodeReferenceMsgpack checks that bodies written by the reference
// library, with wider integer and string forms than wire writes, decode.
func TestDecodeReferenceMsgpack(t *testing.T) {
	var buf bytes.Buffer
	enc := msgpack.NewEncoder(&buf)
	enc.UseCompactInts(false) // 64-bit forms throughout
	if err := enc.Encode([]any{uint64(5), "gw-b", "gw-a", []byte{10, 0, 0, 7, 0x1f, 0x0a}, "a later field", map[string]int{"x": 1}}); err != nil {
		t.Fatal(err)
	}
	var got Ping
	if err := got.DecodeBody(buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	want := Ping{Seq: 5, Target: "gw-b", SourceName: "gw-a", SourceAddr: addr4}
	if diff := cmp.Diff(want, got, cmpOpts); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestDecodeErrors(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		body []byte
		want error
	}{
		{"empty", &Ping{}, nil, ErrTruncated},
		{"not an array", &Nack{}, []byte{0x05}, ErrMalformed},
		{"too few fields", &Ack{}, []byte{0x91, 0x01}, ErrMalformed},
		{"seq over uint32", &Nack{}, []byte{0x91, 0xcf, 0, 0, 0, 1, 0, 0, 0, 0}, ErrMalformed},
		{"negative seq", &Nack{}, []byte{0x91, 0xff}, ErrMalformed},
		{"negative int8 seq", &Nack{}, []byte{0x91, 0xd0, 0x80}, ErrMalformed},
		{"string length past end", &Suspect{}, []byte{0x94, 0xd9, 0xff, 'a'}, ErrTruncated},
		{"bad address length", &Ping{}, []byte{0x94, 0x01, 0xa0, 0xa0, 0xc4, 0x03, 1, 2, 3}, ErrMalformed},
		{"bool expected", &Dead{}, []byte{0x95, 0xa0, 0, 0, 0xa0, 0x01}, ErrMalformed},
		{"trailing bytes", &Nack{}, []byte{0x91, 0x01, 0x00}, ErrMalformed},
		{"array count past end", &Digest{}, []byte{0x91, 0xdd, 0xff, 0xff, 0xff, 0xff}, ErrTruncated},
		{"skipped field truncated", &Nack{}, []byte{0x92, 0x01, 0xdb, 0, 0, 1, 0}, ErrTruncated},
		{"skipped nested count past end", &Nack{}, []byte{0x92, 0x01, 0xdf, 0x7f, 0xff, 0xff, 0xff}, ErrTruncated},
		{"never-used code", &Nack{}, []byte{0x92, 0x01, 0xc1}, ErrMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.DecodeBody(tt.body)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			if !strings.HasPrefix(err.Error(), "wire: ") {
				t.Errorf("error %q lacks the wire: prefix", err)
			}
		})
	}
}

// TestDecodeErrorText: a body's error names the message and the byte where
// decoding stopped, and its kind tells truncated input from wrong input.
func TestDecodeErrorText(t *testing.T) {
	tests := []struct {
		name string
		m    Message
		body []byte
		want string
	}{
		{"empty", &Ping{}, nil, "wire: truncated: ping: need 1 bytes, have 0 at byte 0"},
		{"negative seq", &Nack{}, []byte{0x91, 0xff}, "wire: malformed: nack: want unsigned integer, got 0xff at byte 2"},
		{"string length past end", &Suspect{}, []byte{0x94, 0xd9, 0xff, 'a', 'b', 'c', 'd'}, "wire: truncated: suspect: need 255 bytes, have 4 at byte 3"},
		{"too few fields", &Ack{}, []byte{0x91, 0x01}, "wire: malformed: ack: array of 1 elements, want at least 2 at byte 1"},
		{"bad address length", &Ping{}, []byte{0x94, 0x01, 0xa0, 0xa0, 0xc4, 0x03, 1, 2, 3},
			"wire: malformed: ping: address of 3 bytes, want 0, 6 or 18 at byte 9"},
		{"trailing bytes", &Nack{}, []byte{0x91, 0x01, 0x00}, "wire: malformed: nack: 1 trailing bytes at byte 2"},
		{"digest over the record limit", &Digest{}, append([]byte{0x91, 0xdd, 0, 1, 0, 1}, make([]byte, 5*(MaxRecords+1))...),
			"wire: too large: digest: 65537 entries, max 65536 at byte 6"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.m.DecodeBody(tt.body)
			if err == nil || err.Error() != tt.want {
				t.Fatalf("err %v, want %q", err, tt.want)
			}
			var e *Error
			if !errors.As(err, &e) {
				t.Fatalf("err %T is not an *Error", err)
			}
		})
	}
}

// TestDecodeNilBin: a nil where a body has a bin (meta, payload, address)
// decodes as empty, as another encoder may write it.
func TestDecodeNilBin(t *testing.T) {
	var ack Ack
	if err := ack.DecodeBody([]byte{0x92, 0x01, 0xc0}); err != nil || ack.Seq != 1 || len(ack.Payload) != 0 {
		t.Errorf("ack with nil payload: %+v, %v", ack, err)
	}
	var alive Alive
	if err := alive.DecodeBody([]byte{0x95, 0xa1, 'a', 0x02, 0x03, 0xc0, 0xc0}); err != nil {
		t.Fatal(err)
	}
	want := Alive{Name: "a", Gen: 2, Incarnation: 3}
	if diff := cmp.Diff(want, alive, cmpOpts); diff != "" {
		t.Errorf("alive with nil address and meta (-want +got):\n%s", diff)
	}
}

func TestDigestRecordLimit(t *testing.T) {
	body := []byte{0x91, 0xdd, 0, 1, 0, 1} // 65537 entries
	body = append(body, bytes.Repeat([]byte{0x94, 0xa0, 0, 0, 0}, MaxRecords+1)...)
	if err := new(Digest).DecodeBody(body); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

func TestNewMessageUnknown(t *testing.T) {
	for _, typ := range []Type{0, TypeData + 1, 255} {
		if _, err := NewMessage(typ); !errors.Is(err, ErrUnknownType) {
			t.Errorf("type %d: err %v, want ErrUnknownType", typ, err)
		}
	}
}

func TestCodecDecodeInterns(t *testing.T) {
	c := mustCodec(t, Config{})
	a := &Suspect{Name: "gw-a", From: "gw-b"}
	b := &Suspect{Name: "gw-c", From: "gw-a"}
	var m1, m2 Suspect
	if err := c.Decode(&m1, a.AppendBody(nil)); err != nil {
		t.Fatal(err)
	}
	if err := c.Decode(&m2, b.AppendBody(nil)); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]Suspect{*a, *b}, []Suspect{m1, m2}); diff != "" {
		t.Fatalf("(-want +got):\n%s", diff)
	}
	if unsafe.StringData(m1.Name) != unsafe.StringData(m2.From) {
		t.Error("the same name decoded twice is two strings")
	}
	// A long string is not kept.
	long := make([]byte, maxInternBytes+1)
	c.in.get(long)
	for _, set := range c.in.sets {
		for _, v := range set {
			if len(v) > maxInternBytes {
				t.Error("a long string was interned")
			}
		}
	}
	// Names differing only at the end land in different slots, mostly.
	used := map[uint]bool{}
	for i := range 100 {
		used[internHash(fmt.Appendf(nil, "gateway-replica-eu-west-1a-%03d", i))] = true
	}
	if len(used) < 90 {
		t.Errorf("100 names use %d slots", len(used))
	}
}
