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
// The budget holds for the final bytes. The first fill measures parts
// uncompressed against the budget less the encryption or checksum overhead,
// and compression is applied only when it shrinks the body, so that packet
// always fits. When it compressed and messages were left, Pack refills once
// to the uncompressed size the observed ratio predicts would still fit,
// compresses that, and keeps it only if it is within the budget; otherwise
// it keeps the first packet.
func (c *Codec) Pack(dst []byte, msgs []Message, left []Message) (pkt []byte, rest []Message, err error) {
	// One look at the keyring, so that the overhead the fill assumes is the
	// one the seal applies even if the keyring changes meanwhile.
	s := c.keyring.sealer()
	avail := c.budget - c.overheadOf(s)
	base := len(left)
	c.pack, left = fill(c.pack[:0], msgs, left, avail)
	if len(c.pack) == 0 {
		return dst, left, nil
	}
	payload, flags := c.pack, uint8(0)
	if c.compress {
		if z, ok := appendCompressed(c.compressor(), c.zbuf[:0], c.pack); ok {
			c.zbuf = z
			payload, flags = z, FlagCompressed
			if len(left) > base && len(z) < avail {
				// Aim 10% under the predicted size: the ratio varies with content.
				limit := int(int64(avail) * int64(len(c.pack)) / int64(len(z)) * 9 / 10)
				limit = min(limit, c.maxBody, 8*avail)
				if limit > len(c.pack) {
					var left2 []Message
					c.pack2, left2 = fill(c.pack2[:0], msgs, left[:base], limit)
					if z2, ok := appendCompressed(c.compressor(), c.zbuf2[:0], c.pack2); ok && len(z2) <= avail {
						c.zbuf2 = z2
						payload = z2
						left = left2
					}
				}
			}
		}
	}
	pkt, err = c.sealPayload(dst, flags, payload, s)
	if err != nil {
		// Unreachable unless the invariant above is broken; keep every
		// message for the caller rather than lose any.
		return dst, append(left[:base], msgs...), err
	}
	return pkt, left, nil
}

// fill appends to body the part of each message that fits within limit
// bytes, in order, and the others to left.
func fill(body []byte, msgs, left []Message, limit int) ([]byte, []Message) {
	for i, m := range msgs {
		if limit-len(body) <= partHeaderBytes { // no part is that small
			return body, append(left, msgs[i:]...)
		}
		l := len(body)
		var err error
		body, err = AppendPart(body, m)
		if err != nil || len(body) > limit {
			body = body[:l]
			left = append(left, m)
		}
	}
	return body, left
}
