package wire

import (
	"crypto/rand"
	"errors"
	"fmt"
	"io"

	"github.com/pierrec/lz4/v4"
)

// Protocol versions this package speaks. A packet whose version byte is
// outside [MinVersion, MaxVersion] is refused with ErrUnsupportedVersion.
const (
	Version    = 1 // the version this package writes
	MinVersion = 1 // the oldest version it reads
	MaxVersion = 1 // the newest version it reads
)

// Defaults for Config fields left zero.
const (
	// DefaultBudgetBytes keeps a packet under the IPv6 minimum MTU (1280)
	// minus IP and UDP headers, so it is never fragmented.
	DefaultBudgetBytes = 1200
	// DefaultMaxBodyBytes caps a decompressed packet body: the largest UDP
	// payload, rounded up.
	DefaultMaxBodyBytes = 64 << 10
	// DefaultMaxFrameBytes caps a stream frame and a decompressed frame body.
	// Larger transfers are chunked.
	DefaultMaxFrameBytes = 16 << 20
	// DefaultChunkBytes is the chunk size WriteFrames uses.
	DefaultChunkBytes = 1 << 20
)

// Fixed sizes.
const (
	NonceSize     = 12  // AES-GCM nonce, carried after the key ID
	TagSize       = 16  // AES-GCM tag, at the end of the ciphertext
	MaxLabelBytes = 255 // cluster label
)

// Config configures a Codec. The zero value is usable: plaintext, checksums
// on, compression on, default limits.
type Config struct {
	// Label names the cluster. It is authenticated additional data of every
	// encrypted packet and frame, so clusters with different labels cannot
	// read each other's traffic even with the same key. It is not sent.
	Label string
	// Keyring holds the keys and the plaintext switches; nil means
	// plaintext only (encrypted input is refused with ErrEncryptedRefused).
	Keyring *Keyring
	// BudgetBytes is the largest packet AppendPacket, SealPacket and Pack
	// produce, after compression and encryption [DefaultBudgetBytes].
	BudgetBytes int
	// MaxBodyBytes caps a decompressed packet body [DefaultMaxBodyBytes].
	MaxBodyBytes int
	// MaxFrameBytes caps a frame's length field and a decompressed frame
	// body [DefaultMaxFrameBytes].
	MaxFrameBytes int
	// ChunkBytes is the chunk size of WriteFrames [DefaultChunkBytes, or
	// less if MaxFrameBytes requires]. A chunk frame must fit MaxFrameBytes.
	ChunkBytes int
	// NoCompression turns lz4 off for what this codec sends. Compressed
	// input is still read.
	NoCompression bool
	// NoChecksum turns CRC32C off for the plaintext packets this codec
	// sends. Checksummed input is still verified.
	NoChecksum bool
	// Rand supplies AES-GCM nonces [crypto/rand.Reader]. Tests pass a fixed
	// reader to get reproducible bytes; production must not.
	Rand io.Reader
}

// Validate reports every problem of c at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) {
		errs = append(errs, errf(ErrConfig, fmt.Sprintf(format, args...)))
	}
	if len(c.Label) > MaxLabelBytes {
		bad("label of %d bytes, max %d", len(c.Label), MaxLabelBytes)
	}
	// The smallest useful packet holds an encrypted header and one empty part.
	if c.BudgetBytes != 0 && c.BudgetBytes < 64 || c.BudgetBytes > 65507 {
		bad("BudgetBytes %d outside [64, 65507]", c.BudgetBytes)
	}
	if c.MaxBodyBytes < 0 || c.MaxFrameBytes < 0 || c.ChunkBytes < 0 {
		bad("negative limit")
	}
	if c.MaxFrameBytes > 1<<31-1 {
		bad("MaxFrameBytes %d over 2^31-1", c.MaxFrameBytes)
	}
	if c.ChunkBytes != 0 && c.ChunkBytes < 1024 {
		bad("ChunkBytes %d under 1024", c.ChunkBytes)
	}
	if c.MaxFrameBytes != 0 && c.MaxFrameBytes < 64 {
		bad("MaxFrameBytes %d under 64", c.MaxFrameBytes)
	}
	// A chunk frame holds the chunk, its header and the encryption overhead.
	if frame := cmpOr(c.MaxFrameBytes, DefaultMaxFrameBytes); c.ChunkBytes != 0 && c.ChunkBytes+chunkFrameOverhead > frame {
		bad("ChunkBytes %d does not fit MaxFrameBytes %d with %d bytes of overhead", c.ChunkBytes, frame, chunkFrameOverhead)
	}
	return errors.Join(errs...)
}

// Codec encodes and decodes packets and frames under one Config. It owns
// the scratch buffers that make the hot path allocation-free, so it is not
// safe for concurrent use: give each goroutine its own Codec (they may share
// a Keyring).
type Codec struct {
	label      []byte
	keyring    *Keyring
	budget     int
	maxBody    int
	maxFrame   int
	chunk      int
	compress   bool
	checksum   bool
	rand       io.Reader
	lz         *lz4.Compressor
	parts      []byte  // AppendPacket: the body being built
	pack       []byte  // Pack: the body being built
	pack2      []byte  // Pack: the refill
	zbuf2      []byte  // Pack: the refill, compressed
	ratio      float64 // Pack: the last compression ratio, 0 before any
	zbuf       []byte  // compressed payload on the way out
	aad        []byte  // additional data, both directions
	plain      []byte  // decrypted payload
	dbuf       []byte  // decompressed body
	fin        []byte  // ReadFrame: the raw frame
	fout       []byte  // WriteFrames: the frame being written
	chunkPlain []byte  // WriteFrames: chunk header and data, before sealing
	hdr        [frameHeaderBytes]byte
	// acct, when a StreamReader sets it, is charged for dbuf before a
	// frame body is decompressed; inflated is what was charged.
	acct     *account
	inflated int
	rd       Reader   // Decode: kept here so that it does not escape per call
	in       interner // Decode: member names seen recently
}

// NewCodec returns a Codec for cfg, or the errors of cfg.Validate.
func NewCodec(cfg Config) (*Codec, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	c := &Codec{
		label:    []byte(cfg.Label),
		keyring:  cfg.Keyring,
		budget:   cmpOr(cfg.BudgetBytes, DefaultBudgetBytes),
		maxBody:  cmpOr(cfg.MaxBodyBytes, DefaultMaxBodyBytes),
		maxFrame: cmpOr(cfg.MaxFrameBytes, DefaultMaxFrameBytes),
		chunk:    cfg.ChunkBytes,
		compress: !cfg.NoCompression,
		checksum: !cfg.NoChecksum,
		rand:     cfg.Rand,
	}
	if c.rand == nil {
		c.rand = rand.Reader
	}
	if c.chunk == 0 {
		c.chunk = min(DefaultChunkBytes, c.maxFrame-chunkFrameOverhead)
	}
	return c, nil
}

func cmpOr(v, def int) int {
	if v == 0 {
		return def
	}
	return v
}

// BudgetBytes returns the packet budget.
func (c *Codec) BudgetBytes() int { return c.budget }

// compressor returns the codec's lz4 compressor, allocated on first use
// (its hash table is large, and a codec that only decodes never needs it).
func (c *Codec) compressor() *lz4.Compressor {
	if c.lz == nil {
		c.lz = new(lz4.Compressor)
	}
	return c.lz
}

// setAAD sets c.aad to header followed by the label.
func (c *Codec) setAAD(header []byte) []byte {
	c.aad = append(append(c.aad[:0], header...), c.label...)
	return c.aad
}

// Decode decodes body, a message body of m's type, into m, like
// m.DecodeBody, but takes strings from the codec's bounded table of recently
// seen strings, so that decoding messages about known members does not
// allocate. The strings are immutable and may be kept.
func (c *Codec) Decode(m Message, body []byte) error {
	c.rd = newBodyReader(body, &c.in)
	m.decode(&c.rd)
	err := c.rd.Err()
	c.rd = Reader{}
	return err
}

// maxKeptBytes is the largest scratch buffer a codec keeps for small work:
// one 16 MiB frame must not pin 16 MiB in every pooled codec forever.
const maxKeptBytes = 1 << 20

// reuse returns buf emptied for work of about need bytes, or nil (so that
// append allocates afresh) when buf is over maxKeptBytes and much larger
// than the work.
func reuse(buf []byte, need int) []byte {
	if cap(buf) > maxKeptBytes && need < cap(buf)/4 {
		return nil
	}
	return buf[:0]
}
