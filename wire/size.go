package wire

import (
	"math"
	"net/netip"
)

// This file computes the exact size of each message's body without
// encoding it, so that the packer can skip what does not fit for the cost
// of a few additions.

func uintSize(v uint64) int {
	switch {
	case v < 0x80:
		return 1
	case v <= math.MaxUint8:
		return 2
	case v <= math.MaxUint16:
		return 3
	case v <= math.MaxUint32:
		return 5
	}
	return 9
}

func strSize(n int) int {
	switch {
	case n < 32:
		return 1 + n
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

func binSize(n int) int {
	switch {
	case n <= math.MaxUint8:
		return 2 + n
	case n <= math.MaxUint16:
		return 3 + n
	}
	return 5 + n
}

func arraySize(n int) int {
	switch {
	case n < 16:
		return 1
	case n <= math.MaxUint16:
		return 3
	}
	return 5
}

func addrSize(a netip.Addr) int {
	switch {
	case !a.IsValid():
		return 2
	case a.Is4():
		return 8
	}
	return 20
}

func (m *Ping) bodySize() int {
	return 1 + uintSize(uint64(m.Seq)) + strSize(len(m.Target)) + strSize(len(m.SourceName)) + addrSize(m.SourceAddr.Addr())
}

func (m *IndirectPing) bodySize() int {
	return 1 + uintSize(uint64(m.Seq)) + strSize(len(m.Target)) + addrSize(m.TargetAddr.Addr()) + 1 +
		strSize(len(m.SourceName)) + addrSize(m.SourceAddr.Addr())
}

func (m *Ack) bodySize() int { return 1 + uintSize(uint64(m.Seq)) + binSize(len(m.Payload)) }

func (m *Nack) bodySize() int { return 1 + uintSize(uint64(m.Seq)) }

func (m *Alive) bodySize() int {
	return 1 + strSize(len(m.Name)) + uintSize(m.Gen) + uintSize(m.Incarnation) + addrSize(m.Addr.Addr()) + binSize(len(m.Meta))
}

func (m *Suspect) bodySize() int {
	return 1 + strSize(len(m.Name)) + uintSize(m.Gen) + uintSize(m.Incarnation) + strSize(len(m.From))
}

func (m *Dead) bodySize() int {
	return 1 + strSize(len(m.Name)) + uintSize(m.Gen) + uintSize(m.Incarnation) + strSize(len(m.From)) + 1
}

func (m *PushPull) bodySize() int {
	return 2 + uintSize(uint64(m.Members)) + uintSize(uint64(m.StateBytes))
}

func (m *Digest) bodySize() int {
	n := 1 + arraySize(len(m.Entries))
	for i := range m.Entries {
		e := &m.Entries[i]
		n += 1 + strSize(len(e.Name)) + uintSize(e.Gen) + uintSize(e.Incarnation) + uintSize(uint64(e.State))
	}
	return n
}

func (m *Members) bodySize() int {
	n := 1 + arraySize(len(m.Records))
	for i := range m.Records {
		r := &m.Records[i]
		n += 1 + strSize(len(r.Name)) + uintSize(r.Gen) + uintSize(r.Incarnation) + uintSize(uint64(r.State)) +
			addrSize(r.Addr.Addr()) + binSize(len(r.Meta))
	}
	return n
}

func (m *Data) bodySize() int { return 1 + uintSize(uint64(m.Kind)) + binSize(len(m.Payload)) }
