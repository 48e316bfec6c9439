package wire

import (
	"fmt"
	"math"
)

// Message is implemented by a pointer to each message struct of this
// package. AppendBody appends the message's msgpack body (an array of its
// fields in the order docs/wire.md gives) to dst; DecodeBody replaces the
// message's fields with those decoded from body. DecodeBody reuses the
// message's existing strings when the bytes are equal and the capacity of
// its byte slices and record slices, so decoding into a reused message does
// not allocate once it has warmed up; the decoded message never aliases body.
type Message interface {
	Type() Type
	AppendBody(dst []byte) []byte
	DecodeBody(body []byte) error
	decode(r *reader) error // the set of messages is closed: it is the wire format
	bodySize() int          // len(AppendBody(nil)), computed without encoding
}

// MaxRecords bounds the entries of one Digest and the records of one
// Members message, so that a decoded message's memory stays proportional to
// a sane cluster size whatever a peer declares.
const MaxRecords = 1 << 16

// NewMessage returns a new zero message of type t, or an error matching
// ErrUnknownType.
func NewMessage(t Type) (Message, error) {
	switch t {
	case TypePing:
		return new(Ping), nil
	case TypeIndirectPing:
		return new(IndirectPing), nil
	case TypeAck:
		return new(Ack), nil
	case TypeNack:
		return new(Nack), nil
	case TypeAlive:
		return new(Alive), nil
	case TypeSuspect:
		return new(Suspect), nil
	case TypeDead:
		return new(Dead), nil
	case TypePushPull:
		return new(PushPull), nil
	case TypeDigest:
		return new(Digest), nil
	case TypeMembers:
		return new(Members), nil
	case TypeData:
		return new(Data), nil
	}
	return nil, errf(ErrUnknownType, fmt.Sprintf("type %d", t))
}

// DecodeMessage decodes a body of type t into a new message. It allocates;
// hot paths decode into reused messages with DecodeBody instead.
func DecodeMessage(t Type, body []byte) (Message, error) {
	m, err := NewMessage(t)
	if err != nil {
		return nil, err
	}
	if err := m.DecodeBody(body); err != nil {
		return nil, err
	}
	return m, nil
}

// String returns the type's name, e.g. "ping", or "type(42)".
func (t Type) String() string {
	names := [...]string{"", "ping", "indirect-ping", "ack", "nack", "alive", "suspect", "dead",
		"push-pull", "digest", "members", "data"}
	if int(t) < len(names) && names[t] != "" {
		return names[t]
	}
	return fmt.Sprintf("type(%d)", uint8(t))
}

// Known reports whether this version of wire knows type t.
func (t Type) Known() bool { return t >= TypePing && t <= TypeData }

// Type returns TypePing.
func (*Ping) Type() Type { return TypePing }

// Type returns TypeIndirectPing.
func (*IndirectPing) Type() Type { return TypeIndirectPing }

// Type returns TypeAck.
func (*Ack) Type() Type { return TypeAck }

// Type returns TypeNack.
func (*Nack) Type() Type { return TypeNack }

// Type returns TypeAlive.
func (*Alive) Type() Type { return TypeAlive }

// Type returns TypeSuspect.
func (*Suspect) Type() Type { return TypeSuspect }

// Type returns TypeDead.
func (*Dead) Type() Type { return TypeDead }

// Type returns TypePushPull.
func (*PushPull) Type() Type { return TypePushPull }

// Type returns TypeDigest.
func (*Digest) Type() Type { return TypeDigest }

// Type returns TypeMembers.
func (*Members) Type() Type { return TypeMembers }

// Type returns TypeData.
func (*Data) Type() Type { return TypeData }

// AppendBody appends [seq, target, source_name, source_addr].
func (m *Ping) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x94)
	dst = appendUint(dst, uint64(m.Seq))
	dst = appendStr(dst, m.Target)
	dst = appendStr(dst, m.SourceName)
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
	dst = appendUint(dst, uint64(m.Seq))
	dst = appendStr(dst, m.Target)
	dst = appendAddrPort(dst, m.TargetAddr)
	dst = appendBool(dst, m.WantNack)
	dst = appendStr(dst, m.SourceName)
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
	dst = appendUint(dst, uint64(m.Seq))
	return appendBin(dst, m.Payload)
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
	return appendUint(append(dst, 0x91), uint64(m.Seq))
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

// AppendBody appends [name, gen, incarnation, addr, meta].
func (m *Alive) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x95)
	dst = appendStr(dst, m.Name)
	dst = appendUint(dst, m.Gen)
	dst = appendUint(dst, m.Incarnation)
	dst = appendAddrPort(dst, m.Addr)
	return appendBin(dst, m.Meta)
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
	dst = appendStr(dst, m.Name)
	dst = appendUint(dst, m.Gen)
	dst = appendUint(dst, m.Incarnation)
	return appendStr(dst, m.From)
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
	dst = appendStr(dst, m.Name)
	dst = appendUint(dst, m.Gen)
	dst = appendUint(dst, m.Incarnation)
	dst = appendStr(dst, m.From)
	return appendBool(dst, m.Left)
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

// AppendBody appends [join, members, state_bytes].
func (m *PushPull) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x93)
	dst = appendBool(dst, m.Join)
	dst = appendUint(dst, uint64(m.Members))
	return appendUint(dst, uint64(m.StateBytes))
}

// DecodeBody decodes the body AppendBody writes.
func (m *PushPull) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *PushPull) decode(r *reader) error {
	n, err := r.array("push-pull", 3)
	if err != nil {
		return err
	}
	if m.Join, err = r.bool("push-pull.join"); err != nil {
		return err
	}
	v, err := r.uint("push-pull.members", math.MaxUint32)
	if err != nil {
		return err
	}
	m.Members = uint32(v)
	if v, err = r.uint("push-pull.state_bytes", math.MaxUint32); err != nil {
		return err
	}
	m.StateBytes = uint32(v)
	return r.end("push-pull", n, 3)
}

// AppendBody appends [entries], each entry [name, gen, incarnation, state].
func (m *Digest) AppendBody(dst []byte) []byte {
	dst = appendArrayHeader(append(dst, 0x91), len(m.Entries))
	for i := range m.Entries {
		e := &m.Entries[i]
		dst = append(dst, 0x94)
		dst = appendStr(dst, e.Name)
		dst = appendUint(dst, e.Gen)
		dst = appendUint(dst, e.Incarnation)
		dst = appendUint(dst, uint64(e.State))
	}
	return dst
}

// DecodeBody decodes the body AppendBody writes. It rejects more than
// MaxRecords entries with ErrTooLarge.
func (m *Digest) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Digest) decode(r *reader) error {
	n, err := r.array("digest", 1)
	if err != nil {
		return err
	}
	count, err := r.array("digest.entries", 0)
	if err != nil {
		return err
	}
	if count > MaxRecords {
		return errf(ErrTooLarge, fmt.Sprintf("digest: %d entries, max %d", count, MaxRecords))
	}
	m.Entries = resize(m.Entries, count)
	for i := range m.Entries {
		e := &m.Entries[i]
		k, err := r.array("digest.entry", 4)
		if err != nil {
			return err
		}
		if err := r.string("digest.entry.name", &e.Name); err != nil {
			return err
		}
		if e.Gen, err = r.uint("digest.entry.gen", math.MaxUint64); err != nil {
			return err
		}
		if e.Incarnation, err = r.uint("digest.entry.incarnation", math.MaxUint64); err != nil {
			return err
		}
		s, err := r.uint("digest.entry.state", math.MaxUint8)
		if err != nil {
			return err
		}
		e.State = MemberState(s)
		if err := r.skip("digest.entry", k-4); err != nil {
			return err
		}
	}
	return r.end("digest", n, 1)
}

// AppendBody appends [records], each record [name, gen, incarnation, state,
// addr, meta].
func (m *Members) AppendBody(dst []byte) []byte {
	dst = appendArrayHeader(append(dst, 0x91), len(m.Records))
	for i := range m.Records {
		rec := &m.Records[i]
		dst = append(dst, 0x96)
		dst = appendStr(dst, rec.Name)
		dst = appendUint(dst, rec.Gen)
		dst = appendUint(dst, rec.Incarnation)
		dst = appendUint(dst, uint64(rec.State))
		dst = appendAddrPort(dst, rec.Addr)
		dst = appendBin(dst, rec.Meta)
	}
	return dst
}

// DecodeBody decodes the body AppendBody writes. It rejects more than
// MaxRecords records with ErrTooLarge.
func (m *Members) DecodeBody(body []byte) error {
	return m.decode(&reader{b: body})
}

func (m *Members) decode(r *reader) error {
	n, err := r.array("members", 1)
	if err != nil {
		return err
	}
	count, err := r.array("members.records", 0)
	if err != nil {
		return err
	}
	if count > MaxRecords {
		return errf(ErrTooLarge, fmt.Sprintf("members: %d records, max %d", count, MaxRecords))
	}
	m.Records = resize(m.Records, count)
	for i := range m.Records {
		rec := &m.Records[i]
		k, err := r.array("members.record", 6)
		if err != nil {
			return err
		}
		if err := r.string("members.record.name", &rec.Name); err != nil {
			return err
		}
		if rec.Gen, err = r.uint("members.record.gen", math.MaxUint64); err != nil {
			return err
		}
		if rec.Incarnation, err = r.uint("members.record.incarnation", math.MaxUint64); err != nil {
			return err
		}
		s, err := r.uint("members.record.state", math.MaxUint8)
		if err != nil {
			return err
		}
		rec.State = MemberState(s)
		if rec.Addr, err = r.addrPort("members.record.addr"); err != nil {
			return err
		}
		if err := r.bytes("members.record.meta", &rec.Meta); err != nil {
			return err
		}
		if err := r.skip("members.record", k-6); err != nil {
			return err
		}
	}
	return r.end("members", n, 1)
}

// AppendBody appends [kind, payload].
func (m *Data) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x92)
	dst = appendUint(dst, uint64(m.Kind))
	return appendBin(dst, m.Payload)
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

// resize returns s with length n, reusing its capacity (and the strings and
// slices of its old elements) when it suffices. The caller has bounded n.
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}
