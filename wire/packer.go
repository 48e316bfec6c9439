package wire

// Pack fills one packet with msgs, taken in priority order (most important
// first), up to the codec's budget, and appends it to dst. A message is
// packed if its part still fits alongside those packed before it, otherwise
// it is appended to left, so a large message does not hold back smaller ones
// behind it; packed messages keep their relative order. Every message ends up
// either in the packet or in left, in order: nothing is dropped. A message
// larger than MaxMessageBytes can never be packed; callers check that when
// they queue it. If nothing fits, pkt is dst unchanged (no packet).
//
// The budget holds for the final bytes. A fill that measures parts
// uncompressed against the budget less the encryption or checksum overhead
// always fits, since compression is used only when it shrinks the body. When
// compression pays, Pack fills further: to the uncompressed size that the
// compression ratio seen by the codec's previous packets predicts (aiming
// 10% under), compressed and checked against the budget, falling back to the
// safe fill when the prediction misses. The packet's contents thus depend on
// what the codec packed before, never its size bound.
func (c *Codec) Pack(dst []byte, msgs []Message, left []Message) (pkt []byte, rest []Message, err error) {
	// One look at the keyring, so that the overhead the fill assumes is the
	// one the seal applies even if the keyring changes meanwhile.
	s := c.keyring.sealer()
	avail := c.budget - c.overheadOf(s)
	base := len(left)
	if c.compress && c.ratio > 0 {
		if limit := c.predictLimit(avail); limit > avail {
			c.pack, left = fill(c.pack[:0], msgs, left[:base], limit)
			if z, ok := appendCompressed(c.compressor(), reuse(c.zbuf, len(c.pack)), c.pack); ok && len(z) <= avail {
				c.zbuf = z
				c.ratio = float64(len(c.pack)) / float64(len(z))
				return c.sealPack(dst, FlagCompressed, z, s, msgs, left, base)
			}
		}
	}
	c.pack, left = fill(c.pack[:0], msgs, left[:base], avail)
	if len(c.pack) == 0 {
		return dst, left, nil
	}
	if !c.compress {
		return c.sealPack(dst, 0, c.pack, s, msgs, left, base)
	}
	z, ok := appendCompressed(c.compressor(), reuse(c.zbuf, len(c.pack)), c.pack)
	if !ok {
		c.ratio = 1
		return c.sealPack(dst, 0, c.pack, s, msgs, left, base)
	}
	c.zbuf = z
	c.ratio = float64(len(c.pack)) / float64(len(z))
	if len(left) > base && len(z) < avail {
		if limit := c.predictLimit(avail); limit > len(c.pack) {
			var left2 []Message
			c.pack2, left2 = fill(c.pack2[:0], msgs, left[:base], limit)
			if z2, ok := appendCompressed(c.compressor(), c.zbuf2[:0], c.pack2); ok && len(z2) <= avail {
				c.zbuf2 = z2
				c.ratio = float64(len(c.pack2)) / float64(len(z2))
				return c.sealPack(dst, FlagCompressed, z2, s, msgs, left2, base)
			}
		}
	}
	return c.sealPack(dst, FlagCompressed, z, s, msgs, left, base)
}

// predictLimit returns the uncompressed body size that should compress to
// 90% of avail at the last observed ratio, within the receiver's body cap.
func (c *Codec) predictLimit(avail int) int {
	return min(int(float64(avail)*c.ratio*0.9), c.maxBody, 8*avail)
}

func (c *Codec) sealPack(dst []byte, flags uint8, payload []byte, s sealer, msgs, left []Message, base int) ([]byte, []Message, error) {
	pkt, err := c.sealPayload(dst, flags, payload, s)
	if err != nil {
		// Unreachable unless the fill is broken; keep every message for
		// the caller rather than lose any.
		return dst, append(left[:base], msgs...), err
	}
	return pkt, left, nil
}

// fill appends to body the part of each message that fits within limit
// bytes, in order, and the others to left. Sizes are computed first, so
// only the messages packed are encoded.
func fill(body []byte, msgs, left []Message, limit int) ([]byte, []Message) {
	for i, m := range msgs {
		if limit-len(body) <= partHeaderBytes { // no part is that small
			return body, append(left, msgs[i:]...)
		}
		n := m.bodySize()
		if n > maxPartBodyBytes || len(body)+partHeaderBytes+n > limit {
			left = append(left, m)
			continue
		}
		body, _ = AppendPart(body, m) // cannot fail: n fits a part
	}
	return body, left
}
