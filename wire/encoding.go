package wire

import "fmt"

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
	decode(r *Reader) // the set of messages is closed: it is the wire format
	bodySize() int    // len(AppendBody(nil)), computed without encoding
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
