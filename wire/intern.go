package wire

import "encoding/binary"

// interner returns one string per distinct short byte sequence, so that
// decoding the same member names over and over does not allocate. It is a
// 4-way set-associative cache of internSets*internWays strings of at most
// maxInternBytes bytes: a miss replaces a string of the set in turn, so its
// memory is bounded whatever peers send, and a lookup is a cheap hash and at
// most four comparisons.
type interner struct {
	sets *[internSets][internWays]string
	next uint8 // the way a miss replaces next
}

const (
	internSets     = 1024 // a power of two
	internWays     = 4
	maxInternBytes = 128
)

func (in *interner) get(b []byte) string {
	if len(b) == 0 || len(b) > maxInternBytes {
		return string(b)
	}
	if in.sets == nil {
		in.sets = new([internSets][internWays]string)
	}
	set := &in.sets[internHash(b)]
	for i := range set {
		if set[i] == string(b) {
			return set[i]
		}
	}
	s := string(b)
	set[in.next%internWays] = s
	in.next++
	return s
}

// internHash mixes the length and the first and last 8 bytes (member names
// tend to share a prefix and differ at the end, or the other way round).
func internHash(b []byte) uint {
	var head, tail uint64
	if len(b) >= 8 {
		head = binary.LittleEndian.Uint64(b)
		tail = binary.LittleEndian.Uint64(b[len(b)-8:])
	} else {
		for _, c := range b {
			head = head<<8 | uint64(c)
		}
	}
	x := (head*0x9E3779B97F4A7C15 ^ tail) * 0xC2B2AE3D27D4EB4F
	x ^= uint64(len(b))
	x *= 0x165667B19E3779F9
	return uint(x >> (64 - 10)) // log2(internSets)
}
