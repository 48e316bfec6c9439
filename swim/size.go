package swim

import "github.com/meshnode/meshnode/wire"

// partHeaderBytes is the compound-part header wire puts before each message
// body: a type byte and a 16-bit length.
const partHeaderBytes = 3

// minPacketBody is the smallest body budget a Config may leave: a ping with
// two names of 64 bytes and room for a few broadcasts.
const minPacketBody = 256

// MessageSize returns the exact number of bytes m takes as one part of a
// compound packet body: wire's part header plus its msgpack body.
func MessageSize(m wire.Message) int {
	var buf [256]byte
	return partHeaderBytes + len(m.AppendBody(buf[:0]))
}

// BodySize returns the size of a compound packet body holding msgs, before
// compression, encryption and the packet header.
func BodySize(msgs []wire.Message) int {
	n := 0
	for _, m := range msgs {
		n += MessageSize(m)
	}
	return n
}
