package kvevents

import (
	"encoding/binary"
	"fmt"
)

// Message is one message of an engine's stream: on the PUB socket the
// frames [topic, seq, payload]; from a replay, [seq, payload] with the
// subscription's topic. Seq is the publisher's counter (0, 1, 2, ...); a
// replay ends with a message of Seq -1 and an empty payload.
type Message struct {
	Topic   string
	Seq     int64
	Payload []byte
}

// SeqEnd is the sequence number that ends a replay.
const SeqEnd int64 = -1

// DecodeSeq decodes a sequence-number frame: 8 bytes, big-endian, signed
// (the end of a replay is -1, all bits set). Any other length is an error
// wrapping ErrDecode.
func DecodeSeq(b []byte) (int64, error) {
	if len(b) != 8 {
		return 0, fmt.Errorf("kvevents: %w", malformed("sequence frame of %d bytes, want 8", len(b)))
	}
	return int64(binary.BigEndian.Uint64(b)), nil
}

// AppendSeq appends the 8-byte big-endian frame of seq.
func AppendSeq(dst []byte, seq int64) []byte {
	return binary.BigEndian.AppendUint64(dst, uint64(seq))
}
