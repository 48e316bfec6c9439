package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// payload returns n bytes that compress moderately, like real state.
func payload(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, 1))
	words := []string{"gateway", "replica", "llama-3-70b", "eu-west-1a", "healthy", "10.0.3.", "load=0."}
	var b bytes.Buffer
	for b.Len() < n {
		b.WriteString(words[r.IntN(len(words))])
		b.WriteByte(byte('0' + r.IntN(10)))
	}
	return b.Bytes()[:n]
}

func TestWriteFramesReassemble(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		n    int
	}{
		{"small, one frame", Config{ChunkBytes: 1024}, 500},
		{"chunked compressed", Config{ChunkBytes: 1024}, 50_000},
		{"chunked plain", Config{ChunkBytes: 1024, NoCompression: true}, 5000},
		{"chunked encrypted", Config{ChunkBytes: 1024, Keyring: mustKeyring(t, 9), Label: "l"}, 50_000},
		{"exact multiple", Config{ChunkBytes: 1024, NoCompression: true}, 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := payload(tt.n, 1)
			var stream bytes.Buffer
			if err := mustCodec(t, tt.cfg).WriteFrames(&stream, TypeData, body, 77); err != nil {
				t.Fatal(err)
			}
			d := mustCodec(t, tt.cfg)
			ra := NewReassembler(1<<20, 4)
			frames := 0
			for {
				f, err := d.ReadFrame(&stream)
				if err != nil {
					t.Fatal(err)
				}
				frames++
				typ, got, done, err := ra.Add(f)
				if err != nil {
					t.Fatal(err)
				}
				if !done {
					continue
				}
				if typ != TypeData || !bytes.Equal(got, body) {
					t.Fatalf("reassembled type %v, %d bytes; want data, %d bytes equal", typ, len(got), len(body))
				}
				break
			}
			if stream.Len() != 0 {
				t.Errorf("%d bytes left in the stream", stream.Len())
			}
			if n, b := ra.Pending(); n != 0 || b != 0 {
				t.Errorf("pending %d transfers, %d bytes after completion", n, b)
			}
			t.Logf("%d frames", frames)
		})
	}
}

func chunk(id, index, count, total uint32, data []byte) Frame {
	return Frame{Type: TypeData, Flags: FrameChunk, Chunk: ChunkHeader{id, index, count, total}, Body: data}
}

func TestReassemblerBounds(t *testing.T) {
	tests := []struct {
		name   string
		frames []Frame
		want   error // of the last frame; the others succeed
	}{
		{"total over bound", []Frame{chunk(1, 0, 2, 1001, []byte("a"))}, ErrTooLarge},
		{"too many transfers", []Frame{chunk(1, 0, 2, 10, []byte("a")), chunk(2, 0, 2, 10, []byte("a")), chunk(3, 0, 2, 10, []byte("a"))}, ErrTooLarge},
		{"bytes across transfers", []Frame{chunk(1, 0, 2, 600, []byte("a")), chunk(2, 0, 2, 600, []byte("a"))}, ErrTooLarge},
		{"overrun", []Frame{chunk(1, 0, 3, 4, []byte("abc")), chunk(1, 1, 3, 4, []byte("de"))}, ErrTooLarge},
		{"short at last chunk", []Frame{chunk(1, 0, 2, 4, []byte("ab")), chunk(1, 1, 2, 4, []byte("c"))}, ErrTruncated},
		{"out of order", []Frame{chunk(1, 0, 3, 6, []byte("ab")), chunk(1, 2, 3, 6, []byte("cd"))}, ErrMalformed},
		{"no chunk 0", []Frame{chunk(1, 1, 3, 6, []byte("ab"))}, ErrMalformed},
		{"index past count", []Frame{chunk(1, 3, 3, 6, []byte("ab"))}, ErrMalformed},
		{"zero count", []Frame{chunk(1, 0, 0, 6, []byte("ab"))}, ErrMalformed},
		{"empty chunk", []Frame{chunk(1, 0, 2, 6, nil)}, ErrMalformed},
		{"more chunks than bytes", []Frame{chunk(1, 0, 7, 6, []byte("a"))}, ErrMalformed},
		{"total changes", []Frame{chunk(1, 0, 3, 6, []byte("ab")), chunk(1, 1, 3, 7, []byte("cd"))}, ErrMalformed},
		{"compressed bomb", []Frame{{Type: TypeData, Flags: FrameChunk | FrameCompressed, Chunk: ChunkHeader{1, 0, 1, 6}, Body: []byte{0, 0x10, 0, 0, 0x1f, 0}}}, ErrTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ra := NewReassembler(1000, 2)
			for i, f := range tt.frames {
				_, _, _, err := ra.Add(f)
				if i < len(tt.frames)-1 {
					if err != nil {
						t.Fatalf("frame %d: %v", i, err)
					}
					continue
				}
				if !errors.Is(err, tt.want) {
					t.Fatalf("err %v, want %v", err, tt.want)
				}
			}
			// The failed transfer released its bytes: only earlier, other
			// transfers remain, and a new transfer of the freed size fits.
			_, used := ra.Pending()
			if used > 600 {
				t.Errorf("%d bytes still reserved", used)
			}
		})
	}
}

func TestReassemblerInterleaved(t *testing.T) {
	ra := NewReassembler(100, 2)
	steps := []struct {
		f    Frame
		done bool
		want string
	}{
		{chunk(1, 0, 2, 4, []byte("ab")), false, ""},
		{chunk(2, 0, 2, 4, []byte("wx")), false, ""},
		{chunk(2, 1, 2, 4, []byte("yz")), true, "wxyz"},
		{chunk(1, 1, 2, 4, []byte("cd")), true, "abcd"},
		{Frame{Type: TypeNack, Body: []byte{0x91, 0x01}}, true, "\x91\x01"},
	}
	for i, s := range steps {
		_, got, done, err := ra.Add(s.f)
		if err != nil || done != s.done || string(got) != s.want {
			t.Fatalf("step %d: %q %v %v, want %q %v", i, got, done, err, s.want, s.done)
		}
	}
	if diff := cmp.Diff([2]int{0, 0}, func() [2]int { a, b := ra.Pending(); return [2]int{a, b} }()); diff != "" {
		t.Errorf("pending (-want +got):\n%s", diff)
	}
}

// TestFramesRoundTripRapid streams random messages, some chunked, under
// random configurations, and checks each comes out of the reassembler equal.
func TestFramesRoundTripRapid(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			ChunkBytes:    rapid.SampledFrom([]int{1024, 1500, 4096}).Draw(t, "chunk"),
			NoCompression: rapid.Bool().Draw(t, "nocompress"),
			Label:         rapid.StringN(0, 10, -1).Draw(t, "label"),
		}
		if rapid.Bool().Draw(t, "encrypt") {
			cfg.Keyring = mustKeyring(t, 2)
		}
		msgs := rapid.SliceOfN(genMessage(), 1, 8).Draw(t, "msgs")
		var stream bytes.Buffer
		enc := mustCodec(t, cfg)
		for i, m := range msgs {
			if err := enc.WriteFrames(&stream, m.Type(), m.AppendBody(nil), uint32(i)); err != nil {
				t.Fatal(err)
			}
		}
		dec := mustCodec(t, cfg)
		ra := NewReassembler(1<<20, 1)
		for i := 0; i < len(msgs); {
			f, err := dec.ReadFrame(&stream)
			if err != nil {
				t.Fatal(err)
			}
			typ, body, done, err := ra.Add(f)
			if err != nil {
				t.Fatal(err)
			}
			if !done {
				continue
			}
			got, err := DecodeMessage(typ, body)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(msgs[i], got, cmpOpts); diff != "" {
				t.Fatalf("message %d (-want +got):\n%s", i, diff)
			}
			i++
		}
		if stream.Len() != 0 {
			t.Fatalf("%d bytes left over", stream.Len())
		}
	})
}
