package wire

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"io"
)

// Packet flags: the second byte of a packet. Bits not listed are reserved
// and must be zero.
const (
	FlagCompressed uint8 = 0x01 // the payload is a compressed block
	FlagEncrypted  uint8 = 0x02 // AES-256-GCM; a key ID and a nonce follow the flags
	FlagChecksum   uint8 = 0x04 // a CRC32C trailer; never together with FlagEncrypted
)

const (
	packetFlagsKnown = FlagCompressed | FlagEncrypted | FlagChecksum
	plainHeaderBytes = 2                       // version, flags
	encOverheadBytes = 1 + NonceSize + TagSize // key ID, nonce, tag
	checksumBytes    = 4                       // CRC32C trailer
	partHeaderBytes  = 3                       // type u8, length u16
	maxPartBodyBytes = 1<<16 - 1               // the u16 length
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PartSize returns the exact number of bytes AppendPart writes for m,
// computed without encoding it.
func PartSize(m Message) int { return partHeaderBytes + m.bodySize() }

// AppendPart appends one compound part, [type u8][length u16 big-endian]
// [msgpack body], to dst. A body over 65535 bytes is ErrTooLarge (send it in
// a stream frame instead) and leaves dst unchanged.
func AppendPart(dst []byte, m Message) ([]byte, error) {
	l := len(dst)
	dst = append(dst, byte(m.Type()), 0, 0)
	dst = m.AppendBody(dst)
	n := len(dst) - l - partHeaderBytes
	if n > maxPartBodyBytes {
		return dst[:l], errf(ErrTooLarge, fmt.Sprintf("%v body of %d bytes, max %d in a packet", m.Type(), n, maxPartBodyBytes))
	}
	binary.BigEndian.PutUint16(dst[l+1:], uint16(n))
	return dst, nil
}

// AppendPacket appends a packet carrying msgs, in order, to dst. It fails
// with ErrTooLarge, leaving dst unchanged, if the packet would exceed the
// budget; Pack instead fills a packet with what fits.
func (c *Codec) AppendPacket(dst []byte, msgs ...Message) ([]byte, error) {
	body := c.parts[:0]
	for _, m := range msgs {
		var err error
		if body, err = AppendPart(body, m); err != nil {
			c.parts = body
			return dst, err
		}
	}
	c.parts = body
	return c.SealPacket(dst, body)
}

// overheadOf returns the packet bytes around the payload when sealing with s.
func (c *Codec) overheadOf(s sealer) int {
	switch {
	case s.aead != nil:
		return plainHeaderBytes + encOverheadBytes
	case c.checksum:
		return plainHeaderBytes + checksumBytes
	}
	return plainHeaderBytes
}

// MaxMessageBytes returns the largest message body that fits alone in a
// packet under the current keyring state. A message larger than this never
// fits a packet and must travel in a stream frame.
func (c *Codec) MaxMessageBytes() int {
	return min(c.budget-c.overheadOf(c.keyring.sealer())-partHeaderBytes, maxPartBodyBytes)
}

// SealPacket appends a packet whose body is body (a sequence of parts, as
// AppendPart writes) to dst: it compresses the body if that saves space,
// then encrypts it with the keyring's primary key or, when sending
// plaintext, adds a CRC32C trailer. A packet over the budget is ErrTooLarge
// and leaves dst unchanged.
func (c *Codec) SealPacket(dst, body []byte) ([]byte, error) {
	return c.seal(dst, body, c.keyring.sealer())
}

func (c *Codec) seal(dst, body []byte, s sealer) ([]byte, error) {
	flags := uint8(0)
	payload := body
	if c.compress {
		var ok bool
		if c.zbuf, ok = appendCompressed(c.compressor(), reuse(c.zbuf, len(body)), body); ok {
			payload = c.zbuf
			flags |= FlagCompressed
		}
	}
	return c.sealPayload(dst, flags, payload, s)
}

// sealPayload appends a packet with the given flags (0 or FlagCompressed)
// around payload, encrypted with s or checksummed.
func (c *Codec) sealPayload(dst []byte, flags uint8, payload []byte, s sealer) ([]byte, error) {
	l := len(dst)
	switch {
	case s.aead != nil:
		flags |= FlagEncrypted
		size := plainHeaderBytes + encOverheadBytes + len(payload)
		if size > c.budget {
			return dst, c.overBudget(size)
		}
		dst = append(dst, Version, flags, s.id)
		hdr := dst[l:]
		aad := c.setAAD(hdr)
		n := len(dst)
		dst = append(dst, make([]byte, NonceSize)...)
		nonce := dst[n:]
		if _, err := io.ReadFull(c.rand, nonce); err != nil {
			return dst[:l], errf(ErrConfig, fmt.Sprintf("reading nonce: %v", err))
		}
		return s.aead.Seal(dst, nonce, payload, aad), nil
	case c.checksum:
		flags |= FlagChecksum
		size := plainHeaderBytes + len(payload) + checksumBytes
		if size > c.budget {
			return dst, c.overBudget(size)
		}
		dst = append(dst, Version, flags)
		dst = append(dst, payload...)
		return binary.BigEndian.AppendUint32(dst, crc32.Checksum(dst[l:], castagnoli)), nil
	default:
		size := plainHeaderBytes + len(payload)
		if size > c.budget {
			return dst, c.overBudget(size)
		}
		dst = append(dst, Version, flags)
		return append(dst, payload...), nil
	}
}

func (c *Codec) overBudget(size int) error {
	return errf(ErrTooLarge, fmt.Sprintf("packet of %d bytes over budget %d", size, c.budget))
}

// OpenPacket checks, decrypts and decompresses pkt and returns its body, a
// sequence of parts to read with a PartReader. The body may alias pkt or the
// codec's buffers: it is valid until the next OpenPacket on c and until pkt
// changes.
func (c *Codec) OpenPacket(pkt []byte) ([]byte, error) {
	if len(pkt) < plainHeaderBytes {
		return nil, errf(ErrTruncated, fmt.Sprintf("packet of %d bytes", len(pkt)))
	}
	version, flags := pkt[0], pkt[1]
	if version < MinVersion || version > MaxVersion {
		return nil, errf(ErrUnsupportedVersion, fmt.Sprintf("version %d, supported %d..%d", version, MinVersion, MaxVersion))
	}
	if flags&^packetFlagsKnown != 0 {
		return nil, errf(ErrMalformed, fmt.Sprintf("reserved packet flags 0x%02x", flags&^packetFlagsKnown))
	}
	var payload []byte
	switch {
	case flags&FlagEncrypted != 0:
		if flags&FlagChecksum != 0 {
			return nil, errf(ErrMalformed, "packet both encrypted and checksummed")
		}
		if len(pkt) < plainHeaderBytes+encOverheadBytes {
			return nil, errf(ErrTruncated, fmt.Sprintf("encrypted packet of %d bytes", len(pkt)))
		}
		var err error
		if payload, err = c.open(pkt[:3], pkt[3:]); err != nil {
			return nil, err
		}
	default:
		if !c.keyring.acceptsPlaintext() {
			return nil, errf(ErrPlaintextRefused, "packet")
		}
		payload = pkt[plainHeaderBytes:]
		if flags&FlagChecksum != 0 {
			if len(payload) < checksumBytes {
				return nil, errf(ErrTruncated, fmt.Sprintf("checksummed packet of %d bytes", len(pkt)))
			}
			end := len(pkt) - checksumBytes
			want := binary.BigEndian.Uint32(pkt[end:])
			if got := crc32.Checksum(pkt[:end], castagnoli); got != want {
				return nil, errf(ErrBadChecksum, fmt.Sprintf("crc32c %08x, packet says %08x", got, want))
			}
			payload = pkt[plainHeaderBytes:end]
		}
	}
	if flags&FlagCompressed == 0 {
		return payload, nil
	}
	var err error
	c.dbuf, err = appendDecompressed(reuse(c.dbuf, 0), payload, c.maxBody)
	return c.dbuf, err
}

// open decrypts sealed = [nonce][ciphertext+tag] under the key named by the
// last byte of hdr, with hdr+label as additional data, into c.plain.
func (c *Codec) open(hdr, sealed []byte) ([]byte, error) {
	id := hdr[len(hdr)-1]
	aead := c.keyring.opener(id)
	if aead == nil {
		if !c.keyring.hasKeys() {
			return nil, errf(ErrEncryptedRefused, fmt.Sprintf("key %d", id))
		}
		return nil, errf(ErrUnknownKey, fmt.Sprintf("key %d not installed", id))
	}
	if len(sealed) < NonceSize+TagSize {
		return nil, errf(ErrTruncated, fmt.Sprintf("sealed payload of %d bytes", len(sealed)))
	}
	out, err := aead.Open(reuse(c.plain, len(sealed)), sealed[:NonceSize], sealed[NonceSize:], c.setAAD(hdr))
	if err != nil {
		return nil, errf(ErrAuth, fmt.Sprintf("key %d (another cluster label, or forged or damaged bytes)", id))
	}
	c.plain = out
	return out, nil
}

// PartReader reads the parts of a packet body in order.
type PartReader struct {
	rest []byte
}

// NewPartReader returns a reader over body, as OpenPacket returns it.
func NewPartReader(body []byte) PartReader { return PartReader{rest: body} }

// Next returns the next part's type and msgpack body (aliasing the packet
// body), or io.EOF after the last part. A part of a type this version does
// not know is returned with an error matching ErrUnknownType and the reader
// moves past it: count it and call Next again. A truncated part ends the
// reading with ErrTruncated; every later call returns io.EOF.
func (r *PartReader) Next() (Type, []byte, error) {
	if len(r.rest) == 0 {
		return 0, nil, io.EOF
	}
	if len(r.rest) < partHeaderBytes {
		n := len(r.rest)
		r.rest = nil
		return 0, nil, errf(ErrTruncated, fmt.Sprintf("part header of %d bytes", n))
	}
	t := Type(r.rest[0])
	n := int(binary.BigEndian.Uint16(r.rest[1:]))
	if len(r.rest)-partHeaderBytes < n {
		have := len(r.rest) - partHeaderBytes
		r.rest = nil
		return t, nil, errf(ErrTruncated, fmt.Sprintf("%v part of %d bytes, have %d", t, n, have))
	}
	body := r.rest[partHeaderBytes : partHeaderBytes+n]
	r.rest = r.rest[partHeaderBytes+n:]
	if !t.Known() {
		return t, body, errf(ErrUnknownType, fmt.Sprintf("type %d, %d bytes skipped", t, n))
	}
	return t, body, nil
}
