package kvevents

import (
	"errors"
	"fmt"
)

// Kind is the type of an engine KV-cache event.
type Kind uint8

// The event kinds. Their order follows vLLM's union; the numbers are local
// to this package and never travel on the wire (the engines name events by
// their tag strings).
const (
	// KindBlockStored: the engine stored blocks (their hashes and tokens).
	KindBlockStored Kind = iota + 1
	// KindBlockRemoved: the engine evicted blocks.
	KindBlockRemoved
	// KindAllBlocksCleared: the engine dropped its whole prefix cache.
	KindAllBlocksCleared
)

// The engines' tag strings: the class names msgspec writes as the tag of a
// tagged struct (first element of the array form, value of "type" in the
// map form).
const (
	tagBlockStored      = "BlockStored"
	tagBlockRemoved     = "BlockRemoved"
	tagAllBlocksCleared = "AllBlocksCleared"
)

// String returns the engines' tag of k ("BlockStored", ...).
func (k Kind) String() string {
	switch k {
	case KindBlockStored:
		return tagBlockStored
	case KindBlockRemoved:
		return tagBlockRemoved
	case KindAllBlocksCleared:
		return tagAllBlocksCleared
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// MediumGPU is the medium vLLM names for blocks in GPU memory, the only ones
// that count for routing; other media ("CPU", a disk tier) are offloaded
// copies.
const MediumGPU = "GPU"

// Event is one decoded KV-cache event. Which fields are meaningful depends
// on Kind: BlockStored uses all of them; BlockRemoved uses BlockHashes,
// Medium and GroupIdx; AllBlocksCleared none.
type Event struct {
	Kind Kind
	// BlockHashes are the engine's block hashes, in prefix order for
	// BlockStored. Integer hashes are kept as their two's-complement
	// uint64 (vLLM's older Python hash() values are negative); byte-string
	// hashes are folded to the low 64 bits of their big-endian value (the
	// last 8 bytes, zero-extended when shorter), which is exactly the
	// integer vLLM publishes for the same block when it is told to send
	// integers (VLLM_KV_EVENTS_USE_INT_BLOCK_HASHES).
	BlockHashes []uint64
	// ParentHash is the hash of the block before BlockHashes[0] (folded by
	// the same rule); HasParent is false when the event starts at the root.
	ParentHash uint64
	HasParent  bool
	// TokenIDs are the tokens of the stored blocks, BlockSize per block, in
	// order (the engines store full blocks only; SGLang's blocks are its
	// pages and the last one may be shorter).
	TokenIDs  []uint32
	BlockSize int
	// LoRAID is the engine's LoRA adapter number (vLLM deprecates it for
	// LoRAName); HasLoRA is false for the base model. LoRAName is "" when
	// absent.
	LoRAID   int64
	HasLoRA  bool
	LoRAName string
	// Medium is where the blocks live ("GPU", "CPU", ...), "" when the
	// engine does not say (SGLang, older vLLM): treat "" as GPU.
	Medium string
	// GroupIdx is vLLM's KV-cache group (hybrid models have several); 0
	// when absent.
	GroupIdx int
}

// reset empties e for reuse, keeping the capacity of its slices.
func (e *Event) reset() {
	*e = Event{BlockHashes: e.BlockHashes[:0], TokenIDs: e.TokenIDs[:0]}
}

// Batch is one published message: the events of one engine step.
type Batch struct {
	// TS is the engine's wall-clock time of the batch, in seconds since the
	// Unix epoch.
	TS     float64
	Events []Event
	// DPRank is the data-parallel rank of the engine that published the
	// batch (vLLM's data_parallel_rank, SGLang's attn_dp_rank); HasDPRank is
	// false when the batch does not say.
	DPRank    int
	HasDPRank bool
	// Skipped counts the events DecodeBatch skipped because their tag is
	// unknown (a newer engine's event types); it is never encoded.
	Skipped int
}

// Limits bound what DecodeBatch accepts from one payload. A zero field
// takes its default.
type Limits struct {
	// MaxPayloadBytes caps the encoded batch [4 MiB]. (The sockets of this
	// package refuse frames over MaxFrameBytes before this check.)
	MaxPayloadBytes int
	// MaxEvents caps the events of one batch, skipped ones included [65536].
	MaxEvents int
	// MaxHashesPerEvent caps the block hashes of one event [65536].
	MaxHashesPerEvent int
	// MaxTokensPerBatch caps the token ids of all events of a batch
	// [1<<20, 4 MiB decoded].
	MaxTokensPerBatch int
}

// DefaultLimits returns the default limits: a vLLM step of 8192 scheduled
// tokens at block size 16 stores 512 blocks, about 30 KiB of payload, so the
// defaults leave two orders of magnitude of room. What a batch decodes into
// is bounded by its bytes: at most 8 bytes of hashes or 4 of token ids per
// payload byte, and 136 bytes per event (twice that while the slice grows),
// so a batch at the default limits decodes into at most about 50 MiB, which
// the next DecodeBatch into the same Batch reuses.
func DefaultLimits() Limits {
	return Limits{
		MaxPayloadBytes:   4 << 20,
		MaxEvents:         1 << 16,
		MaxHashesPerEvent: 1 << 16,
		MaxTokensPerBatch: 1 << 20,
	}
}

// withDefaults returns l with its zero fields set to the defaults.
func (l Limits) withDefaults() Limits {
	d := DefaultLimits()
	if l.MaxPayloadBytes <= 0 {
		l.MaxPayloadBytes = d.MaxPayloadBytes
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = d.MaxEvents
	}
	if l.MaxHashesPerEvent <= 0 {
		l.MaxHashesPerEvent = d.MaxHashesPerEvent
	}
	if l.MaxTokensPerBatch <= 0 {
		l.MaxTokensPerBatch = d.MaxTokensPerBatch
	}
	return l
}

var (
	// ErrDecode is wrapped by every error DecodeBatch and DecodeSeq return.
	ErrDecode = errors.New("kvevents: malformed batch")
	// ErrLimit is wrapped (together with ErrDecode) by the errors of a
	// payload that exceeds a Limits field.
	ErrLimit = errors.New("kvevents: limit exceeded")
	// ErrEncode is wrapped by the errors of AppendBatch and AppendBatchMap
	// (a value the format cannot carry, such as an unknown Kind).
	ErrEncode = errors.New("kvevents: cannot encode")
)
