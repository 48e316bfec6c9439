package wire

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// Frame flags: the sixth byte of a frame. Bits not listed are reserved and
// must be zero.
const (
	FrameCompressed uint8 = 0x01 // the payload (of the whole transfer, if chunked) is a compressed block
	FrameEncrypted  uint8 = 0x02 // AES-256-GCM, as for packets
	FrameChunk      uint8 = 0x08 // a chunk of a larger transfer: a chunk header starts the plaintext
)

const (
	frameFlagsKnown  = FrameCompressed | FrameEncrypted | FrameChunk
	frameHeaderBytes = 6  // length u32, type u8, flags u8
	chunkHeaderBytes = 16 // transfer, index, count, total: u32 each
	// chunkFrameOverhead is what a chunk frame adds to its data, beyond
	// the 6-byte header: the chunk header and the encryption overhead.
	chunkFrameOverhead = chunkHeaderBytes + encOverheadBytes
)

// ChunkHeader places a chunk frame in its transfer. Total is the size of
// the reassembled payload (compressed, if the frames are), so a receiver
// can check its bounds at the first chunk.
type ChunkHeader struct {
	Transfer uint32 // sender-chosen ID, unique among the sender's open transfers on the stream
	Index    uint32 // 0-based; chunks arrive in order
	Count    uint32 // number of chunks of the transfer, at least 1
	Total    uint32 // bytes of the reassembled payload
}

// Frame is a decoded stream frame.
type Frame struct {
	Type  Type
	Flags uint8       // as on the wire
	Chunk ChunkHeader // set if Flags has FrameChunk
	// Body is the decrypted msgpack body of the message for an unchunked
	// frame (decompressed too), or this chunk's slice of the transfer
	// payload (still compressed if FrameCompressed is set) for a chunk.
	// It aliases the codec's buffers or the input.
	Body []byte
}

// AppendFrame appends one unchunked frame carrying msgpack body of type t to
// dst: compressed if that saves space, encrypted if the keyring says so. A
// frame over MaxFrameBytes is ErrTooLarge and leaves dst unchanged; use
// WriteFrames for large bodies.
func (c *Codec) AppendFrame(dst []byte, t Type, body []byte) ([]byte, error) {
	flags := uint8(0)
	payload := body
	if c.compress {
		var ok bool
		if c.zbuf, ok = appendCompressed(c.compressor(), reuse(c.zbuf, len(body)), body); ok {
			payload = c.zbuf
			flags |= FrameCompressed
		}
	}
	return c.appendFrame(dst, t, flags, nil, payload)
}

// appendFrame writes [length][type][flags] then, encrypted or not, the chunk
// header (if ch is set) and the payload.
func (c *Codec) appendFrame(dst []byte, t Type, flags uint8, ch *ChunkHeader, payload []byte) ([]byte, error) {
	l := len(dst)
	inner := len(payload)
	if ch != nil {
		flags |= FrameChunk
		inner += chunkHeaderBytes
	}
	s := c.keyring.sealer()
	size := inner
	if s.aead != nil {
		flags |= FrameEncrypted
		size += encOverheadBytes
	}
	if size > c.maxFrame {
		return dst, errf(ErrTooLarge, fmt.Sprintf("frame of %d bytes over cap %d", size, c.maxFrame))
	}
	dst = append(dst, byte(size>>24), byte(size>>16), byte(size>>8), byte(size), byte(t), flags)
	if s.aead == nil {
		if ch != nil {
			dst = appendChunkHeader(dst, ch)
		}
		return append(dst, payload...), nil
	}
	dst = append(dst, s.id)
	aad := c.setAAD(dst[l+4:])
	n := len(dst)
	dst = append(dst, make([]byte, NonceSize)...)
	nonce := dst[n:]
	if _, err := io.ReadFull(c.rand, nonce); err != nil {
		return dst[:l], errf(ErrConfig, fmt.Sprintf("reading nonce: %v", err))
	}
	plain := payload
	if ch != nil {
		c.chunkPlain = append(appendChunkHeader(reuse(c.chunkPlain, chunkHeaderBytes+len(payload)), ch), payload...)
		plain = c.chunkPlain
	}
	return s.aead.Seal(dst, nonce, plain, aad), nil
}

func appendChunkHeader(dst []byte, ch *ChunkHeader) []byte {
	dst = binary.BigEndian.AppendUint32(dst, ch.Transfer)
	dst = binary.BigEndian.AppendUint32(dst, ch.Index)
	dst = binary.BigEndian.AppendUint32(dst, ch.Count)
	return binary.BigEndian.AppendUint32(dst, ch.Total)
}

// WriteFrames writes msgpack body of type t to w: as one frame if it fits
// in ChunkBytes after compression, else as chunk frames of transfer ID
// transfer, each carrying at most ChunkBytes of the (compressed) payload.
func (c *Codec) WriteFrames(w io.Writer, t Type, body []byte, transfer uint32) error {
	flags := uint8(0)
	payload := body
	if c.compress {
		var ok bool
		if c.zbuf, ok = appendCompressed(c.compressor(), reuse(c.zbuf, len(body)), body); ok {
			payload = c.zbuf
			flags |= FrameCompressed
		}
	}
	if len(payload) <= c.chunk {
		var err error
		if c.fout, err = c.appendFrame(reuse(c.fout, frameHeaderBytes+encOverheadBytes+len(payload)), t, flags, nil, payload); err != nil {
			return err
		}
		_, err = w.Write(c.fout)
		return err
	}
	if uint64(len(payload)) > 1<<32-1 {
		return errf(ErrTooLarge, fmt.Sprintf("transfer of %d bytes", len(payload)))
	}
	count := (len(payload) + c.chunk - 1) / c.chunk
	ch := ChunkHeader{Transfer: transfer, Count: uint32(count), Total: uint32(len(payload))}
	for i := range count {
		ch.Index = uint32(i)
		part := payload[i*c.chunk : min((i+1)*c.chunk, len(payload))]
		var err error
		if c.fout, err = c.appendFrame(reuse(c.fout, frameHeaderBytes+chunkFrameOverhead+len(part)), t, flags, &ch, part); err != nil {
			return err
		}
		if _, err := w.Write(c.fout); err != nil {
			return err
		}
	}
	return nil
}

// DecodeFrame decodes the frame at the start of b and returns it and the
// number of bytes it took. If b holds less than a whole frame, the error
// matches ErrTruncated. The frame's Body is valid until the next call on c
// that decodes.
func (c *Codec) DecodeFrame(b []byte) (Frame, int, error) {
	if len(b) < frameHeaderBytes {
		return Frame{}, 0, errf(ErrTruncated, fmt.Sprintf("frame header of %d bytes", len(b)))
	}
	size, err := c.frameSize(b)
	if err != nil {
		return Frame{}, 0, err
	}
	if len(b)-frameHeaderBytes < size {
		return Frame{}, 0, errf(ErrTruncated, fmt.Sprintf("frame of %d bytes, have %d", size, len(b)-frameHeaderBytes))
	}
	f, err := c.openFrame(b[4:frameHeaderBytes], b[frameHeaderBytes:frameHeaderBytes+size])
	return f, frameHeaderBytes + size, err
}

// ReadFrame reads one frame from r. The length is checked against
// MaxFrameBytes, and the codec's buffer grows with the bytes received, not
// with the length (see StreamReader, which also charges a Budget and
// reassembles chunks). The frame's Body is valid
// until the next call on c that decodes. A stream that ends cleanly before
// a frame returns io.EOF; one that ends inside a frame, ErrTruncated.
func (c *Codec) ReadFrame(r io.Reader) (Frame, error) {
	if _, err := io.ReadFull(r, c.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, errf(ErrTruncated, "frame header")
		}
		return Frame{}, err
	}
	size, err := c.frameSize(c.hdr[:])
	if err != nil {
		return Frame{}, err
	}
	if c.fin, err = readGrowing(r, reuse(c.fin, size), size, nil); err != nil {
		return Frame{}, err
	}
	return c.openFrame(c.hdr[4:], c.fin)
}

func (c *Codec) frameSize(hdr []byte) (int, error) {
	size := binary.BigEndian.Uint32(hdr)
	if uint64(size) > uint64(c.maxFrame) {
		return 0, errf(ErrTooLarge, fmt.Sprintf("frame of %d bytes over cap %d", size, c.maxFrame))
	}
	return int(size), nil
}

// openFrame decodes a frame given its type and flags bytes and its
// length-delimited rest.
func (c *Codec) openFrame(tf, rest []byte) (Frame, error) {
	f := Frame{Type: Type(tf[0]), Flags: tf[1]}
	if f.Flags&^frameFlagsKnown != 0 {
		return f, errf(ErrMalformed, fmt.Sprintf("reserved frame flags 0x%02x", f.Flags&^frameFlagsKnown))
	}
	payload := rest
	if f.Flags&FrameEncrypted != 0 {
		if len(rest) < encOverheadBytes {
			return f, errf(ErrTruncated, fmt.Sprintf("encrypted frame of %d bytes", len(rest)))
		}
		// Additional data: type, flags, key ID, label.
		hdr := [3]byte{tf[0], tf[1], rest[0]}
		var err error
		if payload, err = c.open(hdr[:], rest[1:]); err != nil {
			return f, err
		}
	} else if !c.keyring.acceptsPlaintext() {
		return f, errf(ErrPlaintextRefused, "frame")
	}
	if f.Flags&FrameChunk != 0 {
		if len(payload) < chunkHeaderBytes {
			return f, errf(ErrTruncated, fmt.Sprintf("chunk frame of %d bytes", len(payload)))
		}
		f.Chunk = ChunkHeader{
			Transfer: binary.BigEndian.Uint32(payload),
			Index:    binary.BigEndian.Uint32(payload[4:]),
			Count:    binary.BigEndian.Uint32(payload[8:]),
			Total:    binary.BigEndian.Uint32(payload[12:]),
		}
		f.Body = payload[chunkHeaderBytes:]
		return f, nil
	}
	if f.Flags&FrameCompressed == 0 {
		f.Body = payload
		return f, nil
	}
	if c.acct != nil {
		n := inflatedBytes(payload, c.maxFrame)
		if err := c.acct.charge(n); err != nil {
			return f, err
		}
		c.inflated = n
	}
	var err error
	c.dbuf, err = appendDecompressed(reuse(c.dbuf, 0), payload, c.maxFrame)
	f.Body = c.dbuf
	return f, err
}
