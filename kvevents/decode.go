package kvevents

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// maxSkipDepth bounds the nesting of the values DecodeBatch skips (unknown
// fields, vLLM's extra_keys): deeper input is malformed, so that a payload
// of nested one-byte arrays cannot grow the stack with its size.
const maxSkipDepth = 32

// maxHashBytes bounds a byte-string block hash (SHA-512 is 64 bytes).
const maxHashBytes = 64

// field names what an element of an event carries.
type field uint8

const (
	fSkip field = iota
	fHashes
	fParent
	fTokens
	fBlockSize
	fLoRAID
	fMedium
	fLoRAName
	fGroupIdx
	fType // the tag, in the map form
)

// arrayFields lists, per kind, the fields of the array form after the tag,
// in vLLM's order (SGLang's is a prefix of it). Elements past the list are
// skipped: they are fields of newer engines.
var arrayFields = [...][]field{
	KindBlockStored: {fHashes, fParent, fTokens, fBlockSize, fLoRAID, fMedium, fLoRAName,
		fSkip /* extra_keys */, fGroupIdx},
	KindBlockRemoved:     {fHashes, fMedium, fGroupIdx},
	KindAllBlocksCleared: {},
}

// required is, per kind, the set of fields (bit 1<<field) an event must
// carry: the ones its schema gives no default.
var required = [...]uint16{
	KindBlockStored:      1<<fHashes | 1<<fTokens | 1<<fBlockSize,
	KindBlockRemoved:     1 << fHashes,
	KindAllBlocksCleared: 0,
}

// carried is, per kind, the set of fields an event of that kind keeps; the
// map form may name others, which are dropped after decoding so that an
// event holds only what its kind can encode.
var carried = [...]uint16{
	KindBlockStored: 1<<fHashes | 1<<fParent | 1<<fTokens | 1<<fBlockSize | 1<<fLoRAID |
		1<<fMedium | 1<<fLoRAName | 1<<fGroupIdx,
	KindBlockRemoved:     1<<fHashes | 1<<fMedium | 1<<fGroupIdx,
	KindAllBlocksCleared: 0,
}

// fieldOfKey maps a map-form key of an event to its field.
func fieldOfKey(k []byte) field {
	switch string(k) {
	case "type":
		return fType
	case "block_hashes":
		return fHashes
	case "parent_block_hash":
		return fParent
	case "token_ids":
		return fTokens
	case "block_size":
		return fBlockSize
	case "lora_id":
		return fLoRAID
	case "medium":
		return fMedium
	case "lora_name":
		return fLoRAName
	case "group_idx":
		return fGroupIdx
	}
	return fSkip
}

// kindOfTag returns the kind a tag names, or 0 for an unknown tag.
func kindOfTag(t []byte) Kind {
	switch string(t) {
	case tagBlockStored:
		return KindBlockStored
	case tagBlockRemoved:
		return KindBlockRemoved
	case tagAllBlocksCleared:
		return KindAllBlocksCleared
	}
	return 0
}

// DecodeBatch decodes payload, the msgpack of an engine's event batch, into
// b. It accepts both forms msgspec writes (array_like structs with the tag
// first, and maps with a "type" key), in any mix, skips events of unknown
// tags (counted in b.Skipped) and unknown trailing fields or keys, and takes
// nil or absent optional fields as absent. Every length is checked against
// lim (zero fields take DefaultLimits) and against the bytes that remain
// before anything is allocated, so that memory grows with len(payload), not
// with what the payload claims. It never panics.
//
// b's slices (Events and the BlockHashes and TokenIDs of its events) are
// reused: their contents are overwritten, so a caller that keeps them past
// the next DecodeBatch into the same b must copy them. b keeps no reference
// to payload. On error, b holds no events (and Skipped is 0); every error
// wraps ErrDecode (and ErrLimit when a limit was exceeded).
func DecodeBatch(b *Batch, payload []byte, lim Limits) error {
	lim = lim.withDefaults()
	b.TS, b.DPRank, b.HasDPRank, b.Skipped = 0, 0, false, 0
	b.Events = b.Events[:0]
	if len(payload) > lim.MaxPayloadBytes {
		return fmt.Errorf("kvevents: decode batch: %w",
			limitErr("payload of %d bytes, limit %d", len(payload), lim.MaxPayloadBytes))
	}
	r := bytes.NewReader(payload)
	d := msgpack.GetDecoder()
	d.Reset(r)
	x := decoder{p: payload, r: r, d: d, lim: lim}
	err := x.batch(b)
	msgpack.PutDecoder(d)
	if err == nil && r.Len() > 0 {
		err = malformed("%d bytes after the batch", r.Len())
	}
	if err != nil {
		b.Events, b.Skipped = b.Events[:0], 0
		return fmt.Errorf("kvevents: decode batch: %w", err)
	}
	return nil
}

// decoder reads one payload. The msgpack Decoder reads through r, which it
// does not buffer (a *bytes.Reader is read byte by byte), so the decoder may
// also take byte strings straight out of p by moving r.
type decoder struct {
	p      []byte
	r      *bytes.Reader
	d      *msgpack.Decoder
	lim    Limits
	tokens int // token ids decoded so far in this batch
}

// malformed returns an error wrapping ErrDecode. Its text has no package
// prefix: the exported functions add it, with where the error was found.
func malformed(format string, args ...any) error {
	return fmt.Errorf(format+": %w", append(args, ErrDecode)...)
}

// limitErr returns an error wrapping ErrLimit and ErrDecode.
func limitErr(format string, args ...any) error {
	return fmt.Errorf(format+": %w (%w)", append(args, ErrLimit, ErrDecode)...)
}

// short reports an error of the msgpack decoder: the input ended early or
// held a code the expected value cannot have.
func short(what string, err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return malformed("%s: truncated", what)
	}
	return malformed("%s: %v", what, err)
}

func (x *decoder) left() int { return x.r.Len() }

func (x *decoder) peek(what string) (byte, error) {
	c, err := x.d.PeekCode()
	if err != nil {
		return 0, short(what, err)
	}
	return c, nil
}

func isArray(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

func isMap(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

func isInt(c byte) bool {
	return msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64)
}

// arrayLen reads an array header (nil reads as 0 elements) and checks its
// length against the bytes that remain: every element takes at least one.
func (x *decoder) arrayLen(what string) (int, error) {
	c, err := x.peek(what)
	if err != nil {
		return 0, err
	}
	if c == msgpcode.Nil {
		_ = x.d.DecodeNil()
		return 0, nil
	}
	if !isArray(c) {
		return 0, malformed("%s: code %#x, want an array", what, c)
	}
	n, err := x.d.DecodeArrayLen()
	if err != nil {
		return 0, short(what, err)
	}
	if n > x.left() {
		return 0, malformed("%s: array of %d elements in %d bytes", what, n, x.left())
	}
	return n, nil
}

// mapLen reads a map header and checks its length against the bytes that
// remain: every pair takes at least two.
func (x *decoder) mapLen(what string) (int, error) {
	n, err := x.d.DecodeMapLen()
	if err != nil {
		return 0, short(what, err)
	}
	if n < 0 || n > x.left()/2 {
		return 0, malformed("%s: map of %d pairs in %d bytes", what, n, x.left())
	}
	return n, nil
}

// take returns the next n bytes of the payload (aliasing it) and moves past
// them; the caller has checked n against left().
func (x *decoder) take(n int) []byte {
	off := len(x.p) - x.r.Len()
	_, _ = x.r.Seek(int64(n), io.SeekCurrent)
	return x.p[off : off+n : off+n]
}

// rawStr reads a string (str family; bin is accepted too) and returns its
// bytes, aliasing the payload.
func (x *decoder) rawStr(what string) ([]byte, error) {
	c, err := x.peek(what)
	if err != nil {
		return nil, err
	}
	if !msgpcode.IsString(c) && !msgpcode.IsBin(c) {
		return nil, malformed("%s: code %#x, want a string", what, c)
	}
	n, err := x.d.DecodeBytesLen()
	if err != nil {
		return nil, short(what, err)
	}
	if n > x.left() {
		return nil, malformed("%s: string of %d bytes in %d", what, n, x.left())
	}
	return x.take(n), nil
}

// optStr reads a string or nil; ok is false for nil.
func (x *decoder) optStr(what string) (s []byte, ok bool, err error) {
	c, err := x.peek(what)
	if err != nil {
		return nil, false, err
	}
	if c == msgpcode.Nil {
		_ = x.d.DecodeNil()
		return nil, false, nil
	}
	s, err = x.rawStr(what)
	return s, err == nil, err
}

// int64 reads an integer of any width (a uint64 above MaxInt64 is
// refused).
func (x *decoder) int64(what string) (int64, error) {
	c, err := x.peek(what)
	if err != nil {
		return 0, err
	}
	if !isInt(c) {
		return 0, malformed("%s: code %#x, want an integer", what, c)
	}
	if c == msgpcode.Uint64 {
		v, err := x.d.DecodeUint64()
		if err != nil {
			return 0, short(what, err)
		}
		if v > math.MaxInt64 {
			return 0, malformed("%s: %d out of range", what, v)
		}
		return int64(v), nil
	}
	v, err := x.d.DecodeInt64()
	if err != nil {
		return 0, short(what, err)
	}
	return v, nil
}

// optInt reads an integer or nil; ok is false for nil.
func (x *decoder) optInt(what string) (v int64, ok bool, err error) {
	c, err := x.peek(what)
	if err != nil {
		return 0, false, err
	}
	if c == msgpcode.Nil {
		_ = x.d.DecodeNil()
		return 0, false, nil
	}
	v, err = x.int64(what)
	return v, err == nil, err
}

// smallInt reads an integer in [0, MaxInt32] or nil.
func (x *decoder) smallInt(what string) (v int, ok bool, err error) {
	n, ok, err := x.optInt(what)
	if err != nil || !ok {
		return 0, ok, err
	}
	if n < 0 || n > math.MaxInt32 {
		return 0, false, malformed("%s: %d out of range", what, n)
	}
	return int(n), true, nil
}

// float reads a float (32 or 64 bits) or an integer.
func (x *decoder) float(what string) (float64, error) {
	c, err := x.peek(what)
	if err != nil {
		return 0, err
	}
	if c != msgpcode.Float && c != msgpcode.Double && !isInt(c) {
		return 0, malformed("%s: code %#x, want a number", what, c)
	}
	v, err := x.d.DecodeFloat64()
	if err != nil {
		return 0, short(what, err)
	}
	return v, nil
}

// FoldHash returns the uint64 a byte-string block hash stands for: the low
// 64 bits of its big-endian value, that is its last 8 bytes read big-endian
// (zero-extended when it is shorter). vLLM converts its byte hashes to
// integers the same way, so a stream of byte hashes and one of integer
// hashes of the same blocks decode to the same values.
func FoldHash(h []byte) uint64 {
	if len(h) > 8 {
		h = h[len(h)-8:]
	}
	var v uint64
	for _, c := range h {
		v = v<<8 | uint64(c)
	}
	return v
}

// hash reads a block hash: an integer (kept as its two's complement) or a
// byte string (folded by FoldHash). ok is false for nil.
func (x *decoder) hash(what string) (h uint64, ok bool, err error) {
	c, err := x.peek(what)
	if err != nil {
		return 0, false, err
	}
	switch {
	case c == msgpcode.Nil:
		_ = x.d.DecodeNil()
		return 0, false, nil
	case isInt(c):
		v, err := x.d.DecodeUint64()
		if err != nil {
			return 0, false, short(what, err)
		}
		return v, true, nil
	case msgpcode.IsBin(c) || msgpcode.IsString(c):
		n, err := x.d.DecodeBytesLen()
		if err != nil {
			return 0, false, short(what, err)
		}
		if n > maxHashBytes || n > x.left() {
			return 0, false, malformed("%s: byte hash of %d bytes (%d left, at most %d)", what, n, x.left(), maxHashBytes)
		}
		return FoldHash(x.take(n)), true, nil
	}
	return 0, false, malformed("%s: code %#x, want an integer or bytes", what, c)
}

// skip skips one value of any type, nested at most maxSkipDepth deep.
func (x *decoder) skip(depth int) error {
	if depth > maxSkipDepth {
		return malformed("value nested deeper than %d", maxSkipDepth)
	}
	c, err := x.peek("skipped value")
	if err != nil {
		return err
	}
	switch {
	case isArray(c):
		n, err := x.arrayLen("skipped array")
		if err != nil {
			return err
		}
		for range n {
			if err := x.skip(depth + 1); err != nil {
				return err
			}
		}
	case isMap(c):
		n, err := x.mapLen("skipped map")
		if err != nil {
			return err
		}
		for range 2 * n {
			if err := x.skip(depth + 1); err != nil {
				return err
			}
		}
	case msgpcode.IsString(c) || msgpcode.IsBin(c):
		if _, err := x.rawStr("skipped string"); err != nil {
			return err
		}
	case msgpcode.IsExt(c):
		_, n, err := x.d.DecodeExtHeader()
		if err != nil {
			return short("skipped ext", err)
		}
		if n > x.left() {
			return malformed("skipped ext of %d bytes in %d", n, x.left())
		}
		x.take(n)
	default:
		// A scalar of fixed size (nil, bool, number) or the unused code
		// 0xc1, which Skip refuses.
		if err := x.d.Skip(); err != nil {
			return short("skipped value", err)
		}
	}
	return nil
}

// batch decodes the batch, in either form.
func (x *decoder) batch(b *Batch) error {
	c, err := x.peek("batch")
	if err != nil {
		return err
	}
	switch {
	case isArray(c):
		n, err := x.arrayLen("batch")
		if err != nil {
			return err
		}
		if n < 2 {
			return malformed("batch array of %d elements, want at least 2 (ts, events)", n)
		}
		if b.TS, err = x.float("batch ts"); err != nil {
			return err
		}
		if err := x.events(b); err != nil {
			return err
		}
		if n > 2 {
			if b.DPRank, b.HasDPRank, err = x.smallInt("batch data_parallel_rank"); err != nil {
				return err
			}
		}
		for i := 3; i < n; i++ {
			if err := x.skip(1); err != nil {
				return err
			}
		}
		return nil
	case isMap(c):
		n, err := x.mapLen("batch")
		if err != nil {
			return err
		}
		var seenTS, seenEvents, seenRank bool
		for range n {
			k, err := x.rawStr("batch key")
			if err != nil {
				return err
			}
			switch string(k) {
			case "ts":
				if seenTS {
					return malformed("batch: ts twice")
				}
				seenTS = true
				if b.TS, err = x.float("batch ts"); err != nil {
					return err
				}
			case "events":
				if seenEvents {
					return malformed("batch: events twice")
				}
				seenEvents = true
				if err := x.events(b); err != nil {
					return err
				}
			case "data_parallel_rank", "attn_dp_rank":
				if seenRank {
					return malformed("batch: rank twice")
				}
				seenRank = true
				if b.DPRank, b.HasDPRank, err = x.smallInt("batch " + string(k)); err != nil {
					return err
				}
			default:
				if err := x.skip(1); err != nil {
					return err
				}
			}
		}
		if !seenTS || !seenEvents {
			return malformed("batch map without ts or events")
		}
		return nil
	}
	return malformed("batch: code %#x, want an array or a map", c)
}

// events decodes the list of events into b.Events, reusing its slots.
func (x *decoder) events(b *Batch) error {
	n, err := x.arrayLen("events")
	if err != nil {
		return err
	}
	if n > x.lim.MaxEvents {
		return limitErr("batch of %d events, limit %d", n, x.lim.MaxEvents)
	}
	for i := range n {
		if len(b.Events) < cap(b.Events) {
			b.Events = b.Events[:len(b.Events)+1]
		} else {
			b.Events = append(b.Events, Event{})
		}
		e := &b.Events[len(b.Events)-1]
		e.reset()
		known, err := x.event(e)
		if err != nil {
			return fmt.Errorf("event %d: %w", i, err)
		}
		if !known {
			b.Events = b.Events[:len(b.Events)-1]
			b.Skipped++
		}
	}
	return nil
}

// event decodes one event into e (reset); known is false for an event of
// an unknown tag, which has been skipped.
func (x *decoder) event(e *Event) (known bool, err error) {
	c, err := x.peek("event")
	if err != nil {
		return false, err
	}
	switch {
	case isArray(c):
		n, err := x.arrayLen("event")
		if err != nil {
			return false, err
		}
		if n < 1 {
			return false, malformed("event array without a tag")
		}
		tag, err := x.rawStr("event tag")
		if err != nil {
			return false, err
		}
		e.Kind = kindOfTag(tag)
		if e.Kind == 0 {
			for i := 1; i < n; i++ {
				if err := x.skip(1); err != nil {
					return false, err
				}
			}
			return false, nil
		}
		fields := arrayFields[e.Kind]
		var seen uint16
		for i := 1; i < n; i++ {
			f := fSkip
			if i-1 < len(fields) {
				f = fields[i-1]
			}
			if err := x.field(e, f); err != nil {
				return false, err
			}
			seen |= 1 << f
		}
		if miss := required[e.Kind] &^ seen; miss != 0 {
			return false, malformed("%v array of %d elements lacks required fields", e.Kind, n)
		}
		return true, nil
	case isMap(c):
		n, err := x.mapLen("event")
		if err != nil {
			return false, err
		}
		var seen uint16
		for i := range n {
			k, err := x.rawStr("event key")
			if err != nil {
				return false, err
			}
			f := fieldOfKey(k)
			if f != fSkip && seen&(1<<f) != 0 {
				return false, malformed("event: key %q twice", k)
			}
			seen |= 1 << f
			if f == fType {
				tag, err := x.rawStr("event type")
				if err != nil {
					return false, err
				}
				if e.Kind = kindOfTag(tag); e.Kind == 0 {
					// An unknown event: skip the rest of it.
					for range 2*(n-i) - 2 {
						if err := x.skip(1); err != nil {
							return false, err
						}
					}
					return false, nil
				}
				continue
			}
			if err := x.field(e, f); err != nil {
				return false, err
			}
		}
		if seen&(1<<fType) == 0 {
			return false, malformed("event map without a type")
		}
		if miss := required[e.Kind] &^ seen; miss != 0 {
			return false, malformed("%v map lacks required fields", e.Kind)
		}
		e.keepOnly(carried[e.Kind])
		return true, nil
	}
	return false, malformed("event: code %#x, want an array or a map", c)
}

// keepOnly clears the fields of e outside the set keep.
func (e *Event) keepOnly(keep uint16) {
	if keep&(1<<fHashes) == 0 {
		e.BlockHashes = e.BlockHashes[:0]
	}
	if keep&(1<<fParent) == 0 {
		e.ParentHash, e.HasParent = 0, false
	}
	if keep&(1<<fTokens) == 0 {
		e.TokenIDs = e.TokenIDs[:0]
	}
	if keep&(1<<fBlockSize) == 0 {
		e.BlockSize = 0
	}
	if keep&(1<<fLoRAID) == 0 {
		e.LoRAID, e.HasLoRA = 0, false
	}
	if keep&(1<<fMedium) == 0 {
		e.Medium = ""
	}
	if keep&(1<<fLoRAName) == 0 {
		e.LoRAName = ""
	}
	if keep&(1<<fGroupIdx) == 0 {
		e.GroupIdx = 0
	}
}

// field decodes one field of an event into e.
func (x *decoder) field(e *Event, f field) error {
	var err error
	switch f {
	case fHashes:
		return x.hashes(e)
	case fParent:
		e.ParentHash, e.HasParent, err = x.hash("parent_block_hash")
	case fTokens:
		return x.tokenIDs(e)
	case fBlockSize:
		var ok bool
		if e.BlockSize, ok, err = x.smallInt("block_size"); err == nil && !ok {
			err = malformed("block_size is nil")
		}
	case fLoRAID:
		e.LoRAID, e.HasLoRA, err = x.optInt("lora_id")
	case fMedium:
		var s []byte
		if s, _, err = x.optStr("medium"); err == nil {
			e.Medium = internMedium(s)
		}
	case fLoRAName:
		var s []byte
		if s, _, err = x.optStr("lora_name"); err == nil && len(s) > 0 {
			e.LoRAName = string(s)
		}
	case fGroupIdx:
		e.GroupIdx, _, err = x.smallInt("group_idx")
	default:
		err = x.skip(1)
	}
	return err
}

// internMedium returns s as a string without allocating for the common
// media.
func internMedium(s []byte) string {
	switch string(s) {
	case "":
		return ""
	case MediumGPU:
		return MediumGPU
	case "CPU":
		return "CPU"
	}
	return string(s)
}

// hashes decodes block_hashes into e.BlockHashes.
func (x *decoder) hashes(e *Event) error {
	n, err := x.arrayLen("block_hashes")
	if err != nil {
		return err
	}
	if n > x.lim.MaxHashesPerEvent {
		return limitErr("event of %d block hashes, limit %d", n, x.lim.MaxHashesPerEvent)
	}
	e.BlockHashes = slices.Grow(e.BlockHashes[:0], n)
	p, i := x.p[len(x.p)-x.r.Len():], 0
	for range n {
		v, _, w := intAt(p, i)
		if w <= 0 {
			// Not an integer: a byte string, or an error. The slow path
			// reads it (and reports what is wrong).
			x.skipTo(i)
			h, ok, err := x.hash("block hash")
			if err != nil {
				return err
			}
			if !ok {
				return malformed("block hash is nil")
			}
			v, p, i = h, x.p[len(x.p)-x.r.Len():], 0
		} else {
			i += w
		}
		e.BlockHashes = append(e.BlockHashes, v)
	}
	x.skipTo(i)
	return nil
}

// tokenIDs decodes token_ids into e.TokenIDs.
func (x *decoder) tokenIDs(e *Event) error {
	n, err := x.arrayLen("token_ids")
	if err != nil {
		return err
	}
	if x.tokens+n > x.lim.MaxTokensPerBatch {
		return limitErr("batch of more than %d token ids, limit %d", x.tokens+n, x.lim.MaxTokensPerBatch)
	}
	x.tokens += n
	e.TokenIDs = slices.Grow(e.TokenIDs[:0], n)
	p, i := x.p[len(x.p)-x.r.Len():], 0
	for range n {
		// Token ids of a large vocabulary are mostly uint16 and uint32:
		// read those inline, the rest through intAt.
		if i+4 < len(p) {
			switch p[i] {
			case msgpcode.Uint32:
				e.TokenIDs = append(e.TokenIDs, binary.BigEndian.Uint32(p[i+1:i+5]))
				i += 5
				continue
			case msgpcode.Uint16:
				e.TokenIDs = append(e.TokenIDs, uint32(binary.BigEndian.Uint16(p[i+1:i+3])))
				i += 3
				continue
			}
		}
		v, neg, w := intAt(p, i)
		switch {
		case w == 0:
			return malformed("token id: code %#x, want an integer", p[i])
		case w < 0:
			return malformed("token id: truncated")
		case neg || v > math.MaxUint32:
			return malformed("token id %d out of range", int64(v))
		}
		i += w
		e.TokenIDs = append(e.TokenIDs, uint32(v))
	}
	x.skipTo(i)
	return nil
}

// skipTo moves the reader i bytes on, past what was read in place from the
// payload at the reader's position.
func (x *decoder) skipTo(i int) {
	_, _ = x.r.Seek(int64(i), io.SeekCurrent)
}

// intAt reads the integer (any msgpack width) at p[i]: its value as a
// two's-complement uint64, whether it is negative, and its width in bytes.
// The width is 0 when p[i] holds no integer and -1 when p ends before the
// integer does (or at i). The integer arrays (hashes, token ids) are most
// of a batch, so they are read here, in place, rather than through the
// msgpack Decoder's io.ByteScanner, which costs several times more per
// integer; the tests hold this reader to the library's encodings.
func intAt(p []byte, i int) (v uint64, neg bool, width int) {
	if i >= len(p) {
		return 0, false, -1
	}
	c := p[i]
	switch {
	case c <= msgpcode.PosFixedNumHigh:
		return uint64(c), false, 1
	case c >= msgpcode.NegFixedNumLow:
		return uint64(int64(int8(c))), true, 1
	}
	var size int
	switch c {
	case msgpcode.Uint8, msgpcode.Int8:
		size = 1
	case msgpcode.Uint16, msgpcode.Int16:
		size = 2
	case msgpcode.Uint32, msgpcode.Int32:
		size = 4
	case msgpcode.Uint64, msgpcode.Int64:
		size = 8
	default:
		return 0, false, 0
	}
	if len(p)-i-1 < size {
		return 0, false, -1
	}
	b := p[i+1 : i+1+size]
	switch c {
	case msgpcode.Uint8:
		v = uint64(b[0])
	case msgpcode.Uint16:
		v = uint64(binary.BigEndian.Uint16(b))
	case msgpcode.Uint32:
		v = uint64(binary.BigEndian.Uint32(b))
	case msgpcode.Uint64:
		v = binary.BigEndian.Uint64(b)
	case msgpcode.Int8:
		v = uint64(int64(int8(b[0])))
	case msgpcode.Int16:
		v = uint64(int64(int16(binary.BigEndian.Uint16(b))))
	case msgpcode.Int32:
		v = uint64(int64(int32(binary.BigEndian.Uint32(b))))
	case msgpcode.Int64:
		v = binary.BigEndian.Uint64(b)
	}
	neg = c >= msgpcode.Int8 && int64(v) < 0
	return v, neg, 1 + size
}
