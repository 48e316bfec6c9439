package wire

import "math"

// This file holds the body encodings of the disseminated messages: alive,
// suspect, dead and data.

// AppendBody appends [name, gen, incarnation, addr, meta].
func (m *Alive) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x95)
	dst = AppendStr(dst, m.Name)
	dst = AppendUint(dst, m.Gen)
	dst = AppendUint(dst, m.Incarnation)
	dst = appendAddrPort(dst, m.Addr)
	return AppendBin(dst, m.Meta)
}

// DecodeBody decodes the body AppendBody writes.
func (m *Alive) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Alive) decode(r *reader) error {
	n, err := r.array("alive", 5)
	if err != nil {
		return err
	}
	if err := r.string("alive.name", &m.Name); err != nil {
		return err
	}
	if m.Gen, err = r.uint("alive.gen", math.MaxUint64); err != nil {
		return err
	}
	if m.Incarnation, err = r.uint("alive.incarnation", math.MaxUint64); err != nil {
		return err
	}
	if m.Addr, err = r.addrPort("alive.addr"); err != nil {
		return err
	}
	if err := r.bytes("alive.meta", &m.Meta); err != nil {
		return err
	}
	return r.end("alive", n, 5)
}

// AppendBody appends [name, gen, incarnation, from].
func (m *Suspect) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x94)
	dst = AppendStr(dst, m.Name)
	dst = AppendUint(dst, m.Gen)
	dst = AppendUint(dst, m.Incarnation)
	return AppendStr(dst, m.From)
}

// DecodeBody decodes the body AppendBody writes.
func (m *Suspect) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Suspect) decode(r *reader) error {
	n, err := r.array("suspect", 4)
	if err != nil {
		return err
	}
	if err := r.string("suspect.name", &m.Name); err != nil {
		return err
	}
	if m.Gen, err = r.uint("suspect.gen", math.MaxUint64); err != nil {
		return err
	}
	if m.Incarnation, err = r.uint("suspect.incarnation", math.MaxUint64); err != nil {
		return err
	}
	if err := r.string("suspect.from", &m.From); err != nil {
		return err
	}
	return r.end("suspect", n, 4)
}

// AppendBody appends [name, gen, incarnation, from, left].
func (m *Dead) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x95)
	dst = AppendStr(dst, m.Name)
	dst = AppendUint(dst, m.Gen)
	dst = AppendUint(dst, m.Incarnation)
	dst = AppendStr(dst, m.From)
	return AppendBool(dst, m.Left)
}

// DecodeBody decodes the body AppendBody writes.
func (m *Dead) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Dead) decode(r *reader) error {
	n, err := r.array("dead", 5)
	if err != nil {
		return err
	}
	if err := r.string("dead.name", &m.Name); err != nil {
		return err
	}
	if m.Gen, err = r.uint("dead.gen", math.MaxUint64); err != nil {
		return err
	}
	if m.Incarnation, err = r.uint("dead.incarnation", math.MaxUint64); err != nil {
		return err
	}
	if err := r.string("dead.from", &m.From); err != nil {
		return err
	}
	if m.Left, err = r.bool("dead.left"); err != nil {
		return err
	}
	return r.end("dead", n, 5)
}

// AppendBody appends [kind, payload].
func (m *Data) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x92)
	dst = AppendUint(dst, uint64(m.Kind))
	return AppendBin(dst, m.Payload)
}

// DecodeBody decodes the body AppendBody writes. Payload is copied into the
// message's existing capacity.
func (m *Data) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Data) decode(r *reader) error {
	n, err := r.array("data", 2)
	if err != nil {
		return err
	}
	k, err := r.uint("data.kind", math.MaxUint8)
	if err != nil {
		return err
	}
	m.Kind = uint8(k)
	if err := r.bytes("data.payload", &m.Payload); err != nil {
		return err
	}
	return r.end("data", n, 2)
}
