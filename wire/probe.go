package wire

import "math"

// This file holds the body encodings of the probe messages: ping,
// indirect ping, ack and nack.

// AppendBody appends [seq, target, source_name, source_addr].
func (m *Ping) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x94)
	dst = AppendUint(dst, uint64(m.Seq))
	dst = AppendStr(dst, m.Target)
	dst = AppendStr(dst, m.SourceName)
	return appendAddrPort(dst, m.SourceAddr)
}

// DecodeBody decodes the body AppendBody writes.
func (m *Ping) DecodeBody(body []byte) error {
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Ping) decode(r *Reader) {
	n := r.message(TypePing, 4)
	m.Seq = uint32(r.UintMax(math.MaxUint32))
	r.string(&m.Target)
	r.string(&m.SourceName)
	m.SourceAddr = r.addrPort()
	r.end(n, 4)
}

// AppendBody appends [seq, target, target_addr, want_nack, source_name, source_addr].
func (m *IndirectPing) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x96)
	dst = AppendUint(dst, uint64(m.Seq))
	dst = AppendStr(dst, m.Target)
	dst = appendAddrPort(dst, m.TargetAddr)
	dst = AppendBool(dst, m.WantNack)
	dst = AppendStr(dst, m.SourceName)
	return appendAddrPort(dst, m.SourceAddr)
}

// DecodeBody decodes the body AppendBody writes.
func (m *IndirectPing) DecodeBody(body []byte) error {
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *IndirectPing) decode(r *Reader) {
	n := r.message(TypeIndirectPing, 6)
	m.Seq = uint32(r.UintMax(math.MaxUint32))
	r.string(&m.Target)
	m.TargetAddr = r.addrPort()
	m.WantNack = r.Bool()
	r.string(&m.SourceName)
	m.SourceAddr = r.addrPort()
	r.end(n, 6)
}

// AppendBody appends [seq, payload].
func (m *Ack) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x92)
	dst = AppendUint(dst, uint64(m.Seq))
	return AppendBin(dst, m.Payload)
}

// DecodeBody decodes the body AppendBody writes. Payload is copied into the
// message's existing capacity.
func (m *Ack) DecodeBody(body []byte) error {
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Ack) decode(r *Reader) {
	n := r.message(TypeAck, 2)
	m.Seq = uint32(r.UintMax(math.MaxUint32))
	r.copyBin(&m.Payload)
	r.end(n, 2)
}

// AppendBody appends [seq].
func (m *Nack) AppendBody(dst []byte) []byte {
	return AppendUint(append(dst, 0x91), uint64(m.Seq))
}

// DecodeBody decodes the body AppendBody writes.
func (m *Nack) DecodeBody(body []byte) error {
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Nack) decode(r *Reader) {
	n := r.message(TypeNack, 1)
	m.Seq = uint32(r.UintMax(math.MaxUint32))
	r.end(n, 1)
}
