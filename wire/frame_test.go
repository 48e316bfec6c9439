package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestFrameRoundTrip(t *testing.T) {
	rec := MemberRecord{Name: "gateway-replica-eu-west-1a-017", Gen: 4, Incarnation: 12, Addr: addr4, Meta: []byte("model=llama-3-70b")}
	members := &Members{}
	for range 200 {
		members.Records = append(members.Records, rec)
	}
	tests := []struct {
		name      string
		cfg       Config
		m         Message
		wantFlags uint8
	}{
		{"plain", Config{}, &PushPull{Join: true, Members: 3}, 0},
		{"compressed", Config{}, members, FrameCompressed},
		{"encrypted", Config{Keyring: mustKeyring(t, 4), Label: "prod"}, &PushPull{Members: 3}, FrameEncrypted},
		{"compressed encrypted", Config{Keyring: mustKeyring(t, 4)}, members, FrameEncrypted | FrameCompressed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCodec(t, tt.cfg)
			frame, err := c.AppendFrame(nil, tt.m.Type(), tt.m.AppendBody(nil))
			if err != nil {
				t.Fatal(err)
			}
			if frame[5] != tt.wantFlags {
				t.Errorf("flags %02x, want %02x", frame[5], tt.wantFlags)
			}
			// Two frames back to back, read from a stream and from bytes.
			stream := append(bytes.Clone(frame), frame...)
			d := mustCodec(t, tt.cfg)
			r := bytes.NewReader(stream)
			for range 2 {
				f, err := d.ReadFrame(r)
				if err != nil {
					t.Fatal(err)
				}
				got, err := DecodeMessage(f.Type, f.Body)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(tt.m, got, cmpOpts); diff != "" {
					t.Fatalf("(-want +got):\n%s", diff)
				}
			}
			if _, err := d.ReadFrame(r); err != io.EOF {
				t.Errorf("at end of stream: err %v, want io.EOF", err)
			}
			f, n, err := d.DecodeFrame(stream)
			if err != nil || n != len(frame) || f.Type != tt.m.Type() {
				t.Fatalf("DecodeFrame = type %v, %d bytes, %v; want %v, %d bytes", f.Type, n, err, tt.m.Type(), len(frame))
			}
		})
	}
}

func TestFrameErrors(t *testing.T) {
	plain := mustCodec(t, Config{})
	enc := mustCodec(t, Config{Keyring: mustKeyring(t, 1)})
	good, _ := plain.AppendFrame(nil, TypeNack, (&Nack{Seq: 1}).AppendBody(nil))
	goodEnc, _ := enc.AppendFrame(nil, TypeNack, (&Nack{Seq: 1}).AppendBody(nil))
	capped := mustCodec(t, Config{MaxFrameBytes: 100})
	tests := []struct {
		name  string
		codec *Codec
		frame []byte
		want  error
	}{
		{"short header", plain, good[:5], ErrTruncated},
		{"short body", plain, good[:len(good)-1], ErrTruncated},
		{"over cap", capped, []byte{0, 0, 0, 101, 1, 0}, ErrTooLarge},
		{"length 4 GiB", plain, []byte{0xff, 0xff, 0xff, 0xff, 1, 0}, ErrTooLarge},
		{"reserved flag", plain, []byte{0, 0, 0, 0, 1, 0x40}, ErrMalformed},
		{"plaintext refused", enc, good, ErrPlaintextRefused},
		{"encrypted without keyring", plain, goodEnc, ErrEncryptedRefused},
		{"unknown key", mustCodec(t, Config{Keyring: mustKeyring(t, 2)}), goodEnc, ErrUnknownKey},
		{"tampered type", enc, append([]byte{goodEnc[0], goodEnc[1], goodEnc[2], goodEnc[3], byte(TypeAck)}, goodEnc[5:]...), ErrAuth},
		{"wrong label", mustCodec(t, Config{Keyring: mustKeyring(t, 1), Label: "staging"}), goodEnc, ErrAuth},
		{"encrypted too short", enc, []byte{0, 0, 0, 5, 1, FrameEncrypted, 1, 2, 3, 4, 5}, ErrTruncated},
		{"chunk header short", plain, []byte{0, 0, 0, 3, 1, FrameChunk, 1, 2, 3}, ErrTruncated},
		{"decompression ratio", plain, []byte{0, 0, 0, 6, 1, FrameCompressed, 0, 0x10, 0, 0, 0x1f, 0}, ErrTooLarge},
		{"decompression cap", capped, []byte{0, 0, 0, 6, 1, FrameCompressed, 0, 0, 0, 101, 0x1f, 0}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := tt.codec.DecodeFrame(tt.frame)
			if !errors.Is(err, tt.want) {
				t.Errorf("DecodeFrame: err %v, want %v", err, tt.want)
			}
			checkDecryptReason(t, err)
			if _, err := tt.codec.ReadFrame(bytes.NewReader(tt.frame)); !errors.Is(err, tt.want) {
				t.Errorf("ReadFrame: err %v, want %v", err, tt.want)
			}
		})
	}
}

// TestReadFrameCapBeforeAllocation checks that a length over the cap is
// refused from the header alone: the reader is never asked for the body.
func TestReadFrameCapBeforeAllocation(t *testing.T) {
	c := mustCodec(t, Config{})
	r := io.MultiReader(bytes.NewReader([]byte{0x01, 0x00, 0x00, 0x01, 1, 0}), panicReader{})
	if _, err := c.ReadFrame(r); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if cap(c.fin) != 0 {
		t.Errorf("buffer grew to %d bytes", cap(c.fin))
	}
}

type panicReader struct{}

func (panicReader) Read([]byte) (int, error) { panic("read past an oversized frame header") }

func TestAppendFrameTooLarge(t *testing.T) {
	c := mustCodec(t, Config{MaxFrameBytes: 1000, NoCompression: true})
	if _, err := c.AppendFrame(nil, TypeData, make([]byte, 1001)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
}

// TestWriteFramesSmallCap checks that the default chunk size shrinks to fit
// a small frame cap, so that every frame WriteFrames writes can be read.
func TestWriteFramesSmallCap(t *testing.T) {
	cfg := Config{MaxFrameBytes: 1000, Keyring: mustKeyring(t, 1), NoCompression: true}
	var stream bytes.Buffer
	if err := mustCodec(t, cfg).WriteFrames(&stream, TypeData, payload(5000, 2), 3); err != nil {
		t.Fatal(err)
	}
	d := mustCodec(t, cfg)
	ra := NewReassembler(10000, 1)
	for {
		f, err := d.ReadFrame(&stream)
		if err != nil {
			t.Fatal(err)
		}
		if _, body, done, err := ra.Add(f); err != nil || done {
			if err != nil || len(body) != 5000 {
				t.Fatalf("%d bytes, %v", len(body), err)
			}
			break
		}
	}
}

// TestFrameUnknownTypeSkipped checks that a frame of a type from the future
// decodes as a frame (its type is the caller's to skip) and that the stream
// stays in step.
func TestFrameUnknownTypeSkipped(t *testing.T) {
	c := mustCodec(t, Config{})
	stream, err := c.AppendFrame(nil, Type(99), []byte{0x91, 0x01})
	if err != nil {
		t.Fatal(err)
	}
	if stream, err = c.AppendFrame(stream, TypeNack, (&Nack{Seq: 5}).AppendBody(nil)); err != nil {
		t.Fatal(err)
	}
	r := bytes.NewReader(stream)
	f, err := c.ReadFrame(r)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := DecodeMessage(f.Type, f.Body); !errors.Is(err, ErrUnknownType) {
		t.Fatalf("type %d: err %v, want ErrUnknownType", f.Type, err)
	}
	if f, err = c.ReadFrame(r); err != nil {
		t.Fatal(err)
	}
	m, err := DecodeMessage(f.Type, f.Body)
	if err != nil || m.(*Nack).Seq != 5 {
		t.Fatalf("next frame: %v, %v", m, err)
	}
}

// TestLargeFrameBufferReleased checks that one large frame does not leave
// the codec holding a buffer of its size once frames are small again.
func TestLargeFrameBufferReleased(t *testing.T) {
	c := mustCodec(t, Config{NoCompression: true})
	big, err := c.AppendFrame(nil, TypeData, (&Data{Payload: make([]byte, 4<<20)}).AppendBody(nil))
	if err != nil {
		t.Fatal(err)
	}
	small, _ := c.AppendFrame(nil, TypeNack, (&Nack{Seq: 1}).AppendBody(nil))
	r := bytes.NewReader(append(big, small...))
	for range 2 {
		if _, err := c.ReadFrame(r); err != nil {
			t.Fatal(err)
		}
	}
	if cap(c.fin) > maxKeptBytes {
		t.Errorf("codec keeps a %d-byte frame buffer after a small frame", cap(c.fin))
	}
}
