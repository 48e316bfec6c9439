package wire

// Pack fills one packet with msgs, taken in priority order (most important
// first), up to the codec's budget, and appends it to dst. A message is
// packed if its part still fits alongside those packed before it, otherwise
// it is appended to left, so a large message does not hold back smaller ones
// behind it; packed messages keep their relative order. Every message ends up
// either in the packet or in left, in order: nothing is dropped. A message
// larger than MaxMessageBytes can never be packed; callers check that when
// they queue it.
//
// The fill is measured without compression, and the packet is compressed
// only when that shrinks it, so the final size, with the encryption or
// checksum overhead, never exceeds the budget. If nothing fits, pkt is dst
// unchanged (no packet).
func (c *Codec) Pack(dst []byte, msgs []Message, left []Message) (pkt []byte, rest []Message, err error) {
	// One look at the keyring, so that the overhead the fill assumes is the
	// one the seal applies even if the keyring changes meanwhile.
	s := c.keyring.sealer()
	avail := c.budget - c.overheadOf(s)
	base := len(left)
	body := c.pack[:0]
	for _, m := range msgs {
		l := len(body)
		body, err = AppendPart(body, m)
		if err != nil || len(body) > avail {
			body = body[:l]
			left = append(left, m)
		}
	}
	c.pack = body
	if len(body) == 0 {
		return dst, left, nil
	}
	pkt, err = c.seal(dst, body, s)
	if err != nil {
		// Unreachable unless the invariant above is broken; keep every
		// message for the caller rather than lose any.
		return dst, append(left[:base], msgs...), err
	}
	return pkt, left, nil
}
