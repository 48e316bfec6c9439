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
	return m.decode(&reader{b: body})
}

func (m *Ping) decode(r *reader) error {
	n, err := r.array("ping", 4)
	if err != nil {
		return err
	}
	seq, err := r.uint("ping.seq", math.MaxUint32)
	if err != nil {
		return err
	}
	m.Seq = uint32(seq)
	if err := r.string("ping.target", &m.Target); err != nil {
		return err
	}
	if err := r.string("ping.source_name", &m.SourceName); err != nil {
		return err
	}
	if m.SourceAddr, err = r.addrPort("ping.source_addr"); err != nil {
		return err
	}
	return r.end("ping", n, 4)
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
	return m.decode(&reader{b: body})
}

func (m *IndirectPing) decode(r *reader) error {
	n, err := r.array("indirect-ping", 6)
	if err != nil {
		return err
	}
	seq, err := r.uint("indirect-ping.seq", math.MaxUint32)
	if err != nil {
		return err
	}
	m.Seq = uint32(seq)
	if err := r.string("indirect-ping.target", &m.Target); err != nil {
		return err
	}
	if m.TargetAddr, err = r.addrPort("indirect-ping.target_addr"); err != nil {
		return err
	}
	if m.WantNack, err = r.bool("indirect-ping.want_nack"); err != nil {
		return err
	}
	if err := r.string("indirect-ping.source_name", &m.SourceName); err != nil {
		return err
	}
	if m.SourceAddr, err = r.addrPort("indirect-ping.source_addr"); err != nil {
		return err
	}
	return r.end("indirect-ping", n, 6)
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
	return m.decode(&reader{b: body})
}

func (m *Ack) decode(r *reader) error {
	n, err := r.array("ack", 2)
	if err != nil {
		return err
	}
	seq, err := r.uint("ack.seq", math.MaxUint32)
	if err != nil {
		return err
	}
	m.Seq = uint32(seq)
	if err := r.bytes("ack.payload", &m.Payload); err != nil {
		return err
	}
	return r.end("ack", n, 2)
}

// AppendBody appends [seq].
func (m *Nack) AppendBody(dst []byte) []byte {
	return AppendUint(append(dst, 0x91), uint64(m.Seq))
}

// DecodeBody decodes the body AppendBody writes.
func (m *Nack) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Nack) decode(r *reader) error {
	n, err := r.array("nack", 1)
	if err != nil {
		return err
	}
	seq, err := r.uint("nack.seq", math.MaxUint32)
	if err != nil {
		return err
	}
	m.Seq = uint32(seq)
	return r.end("nack", n, 1)
}
