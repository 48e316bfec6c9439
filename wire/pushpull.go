package wire

import (
	"fmt"
	"math"
)

// This file holds the body encodings of the push-pull exchange: its
// header, the digest and the member records.

// AppendBody appends [join, members, state_bytes].
func (m *PushPull) AppendBody(dst []byte) []byte {
	dst = append(dst, 0x93)
	dst = AppendBool(dst, m.Join)
	dst = AppendUint(dst, uint64(m.Members))
	return AppendUint(dst, uint64(m.StateBytes))
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
	dst = AppendArrayHeader(append(dst, 0x91), len(m.Entries))
	for i := range m.Entries {
		e := &m.Entries[i]
		dst = append(dst, 0x94)
		dst = AppendStr(dst, e.Name)
		dst = AppendUint(dst, e.Gen)
		dst = AppendUint(dst, e.Incarnation)
		dst = AppendUint(dst, uint64(e.State))
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
	dst = AppendArrayHeader(append(dst, 0x91), len(m.Records))
	for i := range m.Records {
		rec := &m.Records[i]
		dst = append(dst, 0x96)
		dst = AppendStr(dst, rec.Name)
		dst = AppendUint(dst, rec.Gen)
		dst = AppendUint(dst, rec.Incarnation)
		dst = AppendUint(dst, uint64(rec.State))
		dst = appendAddrPort(dst, rec.Addr)
		dst = AppendBin(dst, rec.Meta)
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

// resize returns s with length n, reusing its capacity (and the strings and
// slices of its old elements) when it suffices. The caller has bounded n.
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}
