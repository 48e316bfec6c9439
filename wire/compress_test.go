package wire

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"

	"github.com/pierrec/lz4/v4"
)

func TestCompressOnlyWhenSmaller(t *testing.T) {
	random := make([]byte, 1000)
	rand.NewChaCha8([32]byte{1}).Read(random)
	tests := []struct {
		name string
		src  []byte
		want bool
	}{
		{"below threshold", bytes.Repeat([]byte{'a'}, CompressMinBytes-1), false},
		{"repetitive", bytes.Repeat([]byte("gateway "), 100), true},
		{"random", random, false},
		{"realistic", payload(4000, 3), true},
	}
	var c lz4.Compressor
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok := appendCompressed(&c, []byte("x"), tt.src)
			if ok != tt.want {
				t.Fatalf("compressed %v, want %v", ok, tt.want)
			}
			if !ok {
				if string(out) != "x" {
					t.Fatalf("dst changed without compression: %q", out)
				}
				return
			}
			if len(out)-1 >= len(tt.src) {
				t.Fatalf("compressed %d bytes to %d", len(tt.src), len(out)-1)
			}
			back, err := appendDecompressed(nil, out[1:], len(tt.src))
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(back, tt.src) {
				t.Fatal("round trip differs")
			}
			if _, err := appendDecompressed(nil, out[1:], len(tt.src)-1); !errors.Is(err, ErrTooLarge) {
				t.Errorf("cap one below the size: err %v, want ErrTooLarge", err)
			}
		})
	}
}

func TestDecompressRatioCap(t *testing.T) {
	src := bytes.Repeat([]byte{0}, 20000)
	var c lz4.Compressor
	block := make([]byte, lz4.CompressBlockBound(len(src)))
	n, err := c.CompressBlock(src, block)
	if err != nil {
		t.Fatal(err)
	}
	block = block[:n]
	withSize := func(size uint32) []byte {
		return append([]byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size)}, block...)
	}
	got, err := appendDecompressed(nil, withSize(20000), 1<<20)
	if err != nil || !bytes.Equal(got, src) {
		t.Fatalf("true size: %d bytes, %v", len(got), err)
	}
	if _, err := appendDecompressed(nil, withSize(uint32(MaxExpansionRatio*n+1)), 1<<20); !errors.Is(err, ErrTooLarge) {
		t.Errorf("size over the ratio: err %v, want ErrTooLarge", err)
	}
	// Sizes that disagree with the block are malformed, never a write past the buffer.
	for _, size := range []uint32{10, 19999, 20001} {
		if _, err := appendDecompressed(nil, withSize(size), 1<<20); !errors.Is(err, ErrMalformed) {
			t.Errorf("size %d: err %v, want ErrMalformed", size, err)
		}
	}
}
