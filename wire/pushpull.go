package wire

import "math"

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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *PushPull) decode(r *Reader) {
	n := r.message(TypePushPull, 3)
	m.Join = r.Bool()
	m.Members = uint32(r.UintMax(math.MaxUint32))
	m.StateBytes = uint32(r.UintMax(math.MaxUint32))
	r.end(n, 3)
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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Digest) decode(r *Reader) {
	n := r.message(TypeDigest, 1)
	m.Entries = resize(m.Entries, r.records("entries"))
	for i := range m.Entries {
		if r.Err() != nil {
			return
		}
		e := &m.Entries[i]
		k := r.array(4)
		r.string(&e.Name)
		e.Gen = r.Uint()
		e.Incarnation = r.Uint()
		e.State = MemberState(r.UintMax(math.MaxUint8))
		r.skip(k - 4)
	}
	r.end(n, 1)
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
	r := newBodyReader(body, nil)
	m.decode(&r)
	return r.Err()
}

func (m *Members) decode(r *Reader) {
	n := r.message(TypeMembers, 1)
	m.Records = resize(m.Records, r.records("records"))
	for i := range m.Records {
		if r.Err() != nil {
			return
		}
		rec := &m.Records[i]
		k := r.array(6)
		r.string(&rec.Name)
		rec.Gen = r.Uint()
		rec.Incarnation = r.Uint()
		rec.State = MemberState(r.UintMax(math.MaxUint8))
		rec.Addr = r.addrPort()
		r.copyBin(&rec.Meta)
		r.skip(k - 6)
	}
	r.end(n, 1)
}

// records reads the array header of a body's list of records, which holds at
// most MaxRecords (ErrTooLarge), and returns its count.
func (r *Reader) records(what string) int {
	count := r.array(0)
	if count > MaxRecords {
		r.fail(ErrTooLarge, "%d %s, max %d", count, what, MaxRecords)
		return 0
	}
	return count
}

// resize returns s with length n, reusing its capacity (and the strings and
// slices of its old elements) when it suffices. The caller has bounded n.
func resize[T any](s []T, n int) []T {
	if n <= cap(s) {
		return s[:n]
	}
	return append(s[:cap(s)], make([]T, n-cap(s))...)
}
