package kvevents

import (
	"encoding/binary"
	"fmt"
	"math"

	"github.com/meshnode/meshnode/wire"
)

// AppendBatch appends b in the array form vLLM's msgspec encoder writes
// (array_like structs, omit_defaults, tagged events): the batch as
// [ts, [events...], data_parallel_rank] (the rank left out when b has
// none), each event as an array with its tag first:
//
//	["BlockStored", [hash...], parent|nil, [token...], block_size, lora_id|nil, medium|nil, lora_name|nil(, nil, group_idx)]
//	["BlockRemoved", [hash...], medium|nil(, group_idx)]
//	["AllBlocksCleared"]
//
// Fields at their default (group_idx 0 and the extra_keys before it) are
// left out, as msgspec leaves them out. Hashes are written as unsigned
// integers, "" as nil. b.Skipped is not encoded. It fails only for an
// event of an unknown Kind, returning dst unchanged.
func AppendBatch(dst []byte, b *Batch) ([]byte, error) {
	return appendBatch(dst, b, false)
}

// AppendBatchMap appends b in the map form (msgspec without array_like):
// {"ts": .., "events": [..], "data_parallel_rank": ..} with each event a
// map whose first key is "type" (the tag), then its fields by their vLLM
// names, defaults left out as AppendBatch leaves them out.
func AppendBatchMap(dst []byte, b *Batch) ([]byte, error) {
	return appendBatch(dst, b, true)
}

func appendBatch(dst []byte, b *Batch, asMap bool) ([]byte, error) {
	start := len(dst)
	n := 2
	if b.HasDPRank {
		n = 3
	}
	if asMap {
		dst = appendMapHeader(dst, n)
		dst = wire.AppendStr(dst, "ts")
	} else {
		dst = wire.AppendArrayHeader(dst, n)
	}
	dst = appendFloat64(dst, b.TS)
	if asMap {
		dst = wire.AppendStr(dst, "events")
	}
	dst = wire.AppendArrayHeader(dst, len(b.Events))
	for i := range b.Events {
		var err error
		if dst, err = appendEvent(dst, &b.Events[i], asMap); err != nil {
			return dst[:start], fmt.Errorf("kvevents: event %d: %w", i, err)
		}
	}
	if b.HasDPRank {
		if asMap {
			dst = wire.AppendStr(dst, "data_parallel_rank")
		}
		dst = appendInt(dst, int64(b.DPRank))
	}
	return dst, nil
}

// appendEvent appends one event in the array or the map form.
func appendEvent(dst []byte, e *Event, asMap bool) ([]byte, error) {
	var fields []field
	switch e.Kind {
	case KindBlockStored:
		fields = arrayFields[KindBlockStored][:7] // up to lora_name: no defaults
		if e.GroupIdx != 0 {
			fields = arrayFields[KindBlockStored] // extra_keys (nil), group_idx
		}
	case KindBlockRemoved:
		fields = arrayFields[KindBlockRemoved][:2]
		if e.GroupIdx != 0 {
			fields = arrayFields[KindBlockRemoved]
		}
	case KindAllBlocksCleared:
	default:
		return dst, fmt.Errorf("unknown kind %d: %w", e.Kind, ErrEncode)
	}
	if asMap {
		n := len(fields) + 1
		if len(fields) > 0 && fields[len(fields)-1] == fGroupIdx && e.Kind == KindBlockStored {
			n-- // the map form leaves extra_keys out rather than writing nil
		}
		dst = appendMapHeader(dst, n)
		dst = wire.AppendStr(dst, "type")
	} else {
		dst = wire.AppendArrayHeader(dst, len(fields)+1)
	}
	dst = wire.AppendStr(dst, e.Kind.String())
	for _, f := range fields {
		if asMap {
			if f == fSkip {
				continue
			}
			dst = wire.AppendStr(dst, fieldNames[f])
		}
		dst = appendField(dst, e, f)
	}
	return dst, nil
}

// fieldNames are the map-form keys of the fields.
var fieldNames = [...]string{
	fHashes:    "block_hashes",
	fParent:    "parent_block_hash",
	fTokens:    "token_ids",
	fBlockSize: "block_size",
	fLoRAID:    "lora_id",
	fMedium:    "medium",
	fLoRAName:  "lora_name",
	fGroupIdx:  "group_idx",
	fType:      "type",
}

func appendField(dst []byte, e *Event, f field) []byte {
	switch f {
	case fHashes:
		dst = wire.AppendArrayHeader(dst, len(e.BlockHashes))
		for _, h := range e.BlockHashes {
			dst = wire.AppendUint(dst, h)
		}
	case fParent:
		if !e.HasParent {
			return wire.AppendNil(dst)
		}
		dst = wire.AppendUint(dst, e.ParentHash)
	case fTokens:
		dst = wire.AppendArrayHeader(dst, len(e.TokenIDs))
		for _, t := range e.TokenIDs {
			dst = wire.AppendUint(dst, uint64(t))
		}
	case fBlockSize:
		dst = appendInt(dst, int64(e.BlockSize))
	case fLoRAID:
		if !e.HasLoRA {
			return wire.AppendNil(dst)
		}
		dst = appendInt(dst, e.LoRAID)
	case fMedium:
		return appendOptStr(dst, e.Medium)
	case fLoRAName:
		return appendOptStr(dst, e.LoRAName)
	case fGroupIdx:
		dst = appendInt(dst, int64(e.GroupIdx))
	default: // extra_keys: nil
		dst = wire.AppendNil(dst)
	}
	return dst
}

func appendOptStr(dst []byte, s string) []byte {
	if s == "" {
		return wire.AppendNil(dst)
	}
	return wire.AppendStr(dst, s)
}

// appendMapHeader appends the header of a map of n pairs: fixmap, map16 or
// map32.
func appendMapHeader(dst []byte, n int) []byte {
	switch {
	case n < 16:
		return append(dst, 0x80|byte(n))
	case n <= math.MaxUint16:
		return append(dst, 0xde, byte(n>>8), byte(n))
	default:
		return append(dst, 0xdf, byte(n>>24), byte(n>>16), byte(n>>8), byte(n))
	}
}

// appendInt appends v in the shortest form, as msgspec does: non-negative
// values as unsigned, negative ones as negative fixint, int8, int16, int32
// or int64.
func appendInt(dst []byte, v int64) []byte {
	switch {
	case v >= 0:
		return wire.AppendUint(dst, uint64(v))
	case v >= -32:
		return append(dst, byte(v))
	case v >= math.MinInt8:
		return append(dst, 0xd0, byte(v))
	case v >= math.MinInt16:
		return append(dst, 0xd1, byte(v>>8), byte(v))
	case v >= math.MinInt32:
		return append(dst, 0xd2, byte(v>>24), byte(v>>16), byte(v>>8), byte(v))
	default:
		return binary.BigEndian.AppendUint64(append(dst, 0xd3), uint64(v))
	}
}

// appendFloat64 appends v as a float64 (0xcb), as msgspec writes a float.
func appendFloat64(dst []byte, v float64) []byte {
	return binary.BigEndian.AppendUint64(append(dst, 0xcb), math.Float64bits(v))
}
