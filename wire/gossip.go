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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Alive) decode(r *Reader) {
	n := r.message(TypeAlive, 5)
	r.string(&m.Name)
	m.Gen = r.Uint()
	m.Incarnation = r.Uint()
	m.Addr = r.addrPort()
	r.copyBin(&m.Meta)
	r.end(n, 5)
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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Suspect) decode(r *Reader) {
	n := r.message(TypeSuspect, 4)
	r.string(&m.Name)
	m.Gen = r.Uint()
	m.Incarnation = r.Uint()
	r.string(&m.From)
	r.end(n, 4)
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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Dead) decode(r *Reader) {
	n := r.message(TypeDead, 5)
	r.string(&m.Name)
	m.Gen = r.Uint()
	m.Incarnation = r.Uint()
	r.string(&m.From)
	m.Left = r.Bool()
	r.end(n, 5)
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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Data) decode(r *Reader) {
	n := r.message(TypeData, 2)
	m.Kind = uint8(r.UintMax(math.MaxUint8))
	r.copyBin(&m.Payload)
	r.end(n, 2)
}
