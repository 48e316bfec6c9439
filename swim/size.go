package swim

import "github.com/meshnode/meshnode/wire"

// The size estimator below bounds the encoded size of a message from above,
// assuming msgpack array encodings with the widest header of each field:
// 9 bytes for an integer, 5 plus the length for a string or byte string, 23
// for an address (16-byte IP and a port in a byte string), 1 for a bool, plus
// a type byte, an array header and a per-message compound framing.
//
// TODO(wire): switch to wire's encoded-size functions once they land, so that
// packets are filled to the exact budget rather than to this bound.
const (
	sizeUint     = 9
	sizeStrHdr   = 5
	sizeAddr     = 23
	sizeBool     = 1
	sizeMsgHdr   = 1 + 5 + 3 // type byte, array header, compound framing
	sizeCompound = 5         // compound header
	// minPacketBody is the smallest body budget a Config may leave: a ping
	// with two names of 64 bytes and room for a few broadcasts.
	minPacketBody = 256
)

// MessageSize returns an upper bound of the encoded size of one message in a
// compound packet (its type byte, body and framing). m is one of the wire
// message structs, by value; for anything else it returns 0.
func MessageSize(m any) int {
	switch m := m.(type) {
	case wire.Ping:
		return sizeMsgHdr + sizeUint + 2*sizeStrHdr + len(m.Target) + len(m.SourceName) + sizeAddr
	case wire.IndirectPing:
		return sizeMsgHdr + sizeUint + 2*sizeStrHdr + len(m.Target) + len(m.SourceName) + 2*sizeAddr + sizeBool
	case wire.Ack:
		return sizeMsgHdr + sizeUint + sizeStrHdr + len(m.Payload)
	case wire.Nack:
		return sizeMsgHdr + sizeUint
	case wire.Alive:
		return sizeMsgHdr + 2*sizeStrHdr + len(m.Name) + len(m.Meta) + 2*sizeUint + sizeAddr
	case wire.Suspect:
		return sizeMsgHdr + 2*sizeStrHdr + len(m.Name) + len(m.From) + 2*sizeUint
	case wire.Dead:
		return sizeMsgHdr + 2*sizeStrHdr + len(m.Name) + len(m.From) + 2*sizeUint + sizeBool
	case wire.Data:
		return sizeMsgHdr + sizeUint + sizeStrHdr + len(m.Payload)
	case wire.PushPull:
		return sizeMsgHdr + sizeBool + 2*sizeUint
	case wire.Digest:
		n := sizeMsgHdr + 5
		for _, e := range m.Entries {
			n += 1 + sizeStrHdr + len(e.Name) + 3*sizeUint
		}
		return n
	case wire.Members:
		n := sizeMsgHdr + 5
		for _, r := range m.Records {
			n += 1 + 2*sizeStrHdr + len(r.Name) + len(r.Meta) + 3*sizeUint + sizeAddr
		}
		return n
	}
	return 0
}

// EncodedSize returns an upper bound of the encoded size of a compound
// packet body holding msgs, before compression and encryption.
func EncodedSize(msgs []any) int {
	n := sizeCompound
	for _, m := range msgs {
		n += MessageSize(m)
	}
	return n
}
