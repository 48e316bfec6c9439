package wire

import (
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/pierrec/lz4/v4"
)

// Compression limits.
const (
	// MaxExpansionRatio bounds uncompressed/compressed size: an lz4 block
	// cannot expand by more than about 255x, so a larger declared size is a
	// lie and is refused before anything is allocated.
	MaxExpansionRatio = 255
	// CompressMinBytes is the smallest body the encoder tries to compress;
	// smaller bodies rarely shrink enough to pay for the 4-byte length.
	CompressMinBytes = 128
)

// compressedHeaderBytes is the uncompressed-length prefix of a compressed block.
const compressedHeaderBytes = 4

// appendCompressed appends src as a compressed block, [uncompressed length
// u32 big-endian][lz4 block], if that is strictly smaller than src, and
// reports whether it did; otherwise dst is returned unchanged.
func appendCompressed(c *lz4.Compressor, dst, src []byte) ([]byte, bool) {
	limit := len(src) - compressedHeaderBytes - 1 // largest block that still saves a byte
	if len(src) < CompressMinBytes || limit <= 0 || uint64(len(src)) > 1<<32-1 {
		return dst, false
	}
	l := len(dst)
	dst = slices.Grow(dst, compressedHeaderBytes+limit)
	out := dst[l : l+compressedHeaderBytes+limit]
	n, err := c.CompressBlock(src, out[compressedHeaderBytes:])
	if err != nil || n == 0 || n > limit {
		return dst[:l], false
	}
	binary.BigEndian.PutUint32(out, uint32(len(src)))
	return dst[:l+compressedHeaderBytes+n], true
}

// inflatedBytes returns the bytes appendDecompressed would allocate for
// src within maxBytes: the size in its header if it passes the caps, else 0.
func inflatedBytes(src []byte, maxBytes int) int {
	if len(src) < compressedHeaderBytes+1 {
		return 0
	}
	n := uint64(binary.BigEndian.Uint32(src))
	if n > uint64(maxBytes) || n > MaxExpansionRatio*uint64(len(src)-compressedHeaderBytes) {
		return 0
	}
	return int(n)
}

// appendDecompressed appends the decompression of the compressed block src
// to dst. The declared size is checked against maxBytes and against
// MaxExpansionRatio times the block size before dst grows.
func appendDecompressed(dst, src []byte, maxBytes int) ([]byte, error) {
	if len(src) < compressedHeaderBytes+1 {
		return dst, errf(ErrTruncated, fmt.Sprintf("compressed block of %d bytes", len(src)))
	}
	n := uint64(binary.BigEndian.Uint32(src))
	block := src[compressedHeaderBytes:]
	if n == 0 {
		// Never written (compression is used only when it saves space), and
		// lz4's decoder must not be handed an empty destination: it reads
		// through its pointer.
		return dst, errf(ErrMalformed, "compressed block of declared size 0")
	}
	if n > uint64(maxBytes) {
		return dst, errf(ErrTooLarge, fmt.Sprintf("decompressed size %d over cap %d", n, maxBytes))
	}
	if n > MaxExpansionRatio*uint64(len(block)) {
		return dst, errf(ErrTooLarge, fmt.Sprintf("decompressed size %d over %dx the %d-byte block", n, MaxExpansionRatio, len(block)))
	}
	l := len(dst)
	dst = slices.Grow(dst, int(n))
	got, err := lz4.UncompressBlock(block, dst[l:l+int(n)])
	if err != nil {
		return dst[:l], errf(ErrMalformed, fmt.Sprintf("lz4 block: %v", err))
	}
	if uint64(got) != n {
		return dst[:l], errf(ErrMalformed, fmt.Sprintf("lz4 block: %d bytes, header says %d", got, n))
	}
	return dst[:l+got], nil
}
