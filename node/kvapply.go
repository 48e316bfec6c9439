package node

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// EventIndex is what a KVApplier needs of the prefix index: the worker's
// event-sourced holdings, ordered per worker by (gen, ver) where ver is
// seq<<16 | the event's index in its batch. *radix.Index implements it.
type EventIndex interface {
	PageTokens(model string) int
	StoreEvents(worker string, epoch uint64, stamp uint32, gen uint32, ver uint64, b radix.EngineBlocks) (radix.Delta, error)
	RemoveEvents(worker string, epoch uint64, stamp uint32, gen uint32, ver uint64, engineHashes []uint64) (radix.Delta, error)
	ClearEvents(worker string, epoch uint64, stamp uint32, gen uint32) (radix.Delta, error)
	EngineLineage(worker string, engineHash uint64) (uint64, bool)
	EventState(worker string) (gen uint32, ver uint64, ok bool)
}

// KVStatus says what a KVApplier did with one batch.
type KVStatus uint8

// Outcomes of KVApplier.Apply and ApplyReplayed.
const (
	// KVApplied: the batch was next in sequence (or the first) and applied.
	KVApplied KVStatus = iota
	// KVDuplicate: the batch was applied before (a replay overlapping the
	// live stream): skipped.
	KVDuplicate
	// KVGap: the sequence jumped and the caller may replay: nothing was
	// applied; replay (see KVResult.Replay).
	KVGap
	// KVResync: the sequence jumped and no replay can fill it (none
	// offered, or the replay did not reach back far enough): the worker's
	// event-sourced pages were cleared (a new generation) and the batch
	// applied; live events rebuild the rest.
	KVResync
	// KVRestart: the sequence went back: the engine restarted, its cache
	// is empty. Cleared (a new generation), then the batch applied, or,
	// when the caller can replay, the engine's kept batches replayed from
	// the start first (KVResult.Replay).
	KVRestart
	// KVDecodeError: the payload did not decode (KVResult.Err): nothing
	// applied. The next batch shows the hole as a gap.
	KVDecodeError
	// KVCleared: Begin (without replay) or Clear dropped the worker's
	// event-sourced pages; no batch was involved.
	KVCleared
)

var kvStatusNames = [...]string{"applied", "duplicate", "gap", "resync", "restart", "decode_error", "cleared"}

// String returns the status as logs and status pages show it.
func (s KVStatus) String() string {
	if int(s) < len(kvStatusNames) {
		return kvStatusNames[s]
	}
	return "KVStatus(" + strconv.Itoa(int(s)) + ")"
}

// KVCounts counts what one call did, event by event, for metrics and stats.
type KVCounts struct {
	Stored, Removed, Cleared int // events applied, by type
	StoredBlocks             int // blocks of the applied stored events
	// OtherMedium: events of a medium other than GPU (CPU, disk offload):
	// counted, never routed on.
	OtherMedium int
	// OtherGroup: events of a KV-cache group other than the first (vLLM's
	// hybrid models: sliding-window groups keep and drop blocks on their
	// own schedule): counted, never routed on; group 0 stands for the
	// prefix.
	OtherGroup int
	// BlockSize: stored events whose block size is not a multiple of the
	// model's page size: ignored (a configuration error, see
	// ErrKVBlockSize).
	BlockSize int
	// Orphans: stored events whose parent block the index does not know
	// (an event missed before this stream was followed): ignored.
	Orphans int
	// Malformed: events that contradict themselves (token count not
	// blocks * block size, no hashes) or that the decoder skipped
	// (unknown types): ignored.
	Malformed int
}

func (c *KVCounts) add(o KVCounts) {
	c.Stored += o.Stored
	c.Removed += o.Removed
	c.Cleared += o.Cleared
	c.StoredBlocks += o.StoredBlocks
	c.OtherMedium += o.OtherMedium
	c.OtherGroup += o.OtherGroup
	c.BlockSize += o.BlockSize
	c.Orphans += o.Orphans
	c.Malformed += o.Malformed
}

// KVResult is the outcome of applying one message.
type KVResult struct {
	Status KVStatus
	// Replay asks the caller to replay from ReplayFrom (with KVGap, and
	// with KVRestart when it can replay), feeding each message to
	// ApplyReplayed, and then to hand the message that asked for it to
	// ApplyReplayed too.
	Replay     bool
	ReplayFrom int64
	// Deltas are the index changes made, in order: the caller
	// disseminates each (they alias nothing the applier reuses).
	Deltas []radix.Delta
	KVCounts
	// TS is the batch's timestamp (engine clock, seconds since the Unix
	// epoch), zero when nothing was decoded.
	TS float64
	// Err is the decode error (KVDecodeError) or the first index error.
	Err error
}

// ErrKVBlockSize reports an engine whose block size is not a multiple of
// the index's page size for the worker's model: its stored events cannot
// become pages. Set the model's page size to divide the engine's block
// size (or run the engine with a block size that is a multiple of it).
var ErrKVBlockSize = errors.New("node: engine block size is not a multiple of the model's page size")

// maxLoRASeeds bounds the LoRA seeds an applier caches; past it seeds are
// computed per event (adapter names come from the network).
const maxLoRASeeds = 256

// LoRASeed returns the lineage seed of token prompts for model served
// with LoRA adapter name: adapters' blocks are not the base model's, so
// they hash apart. A route request names the adapter with "lora".
func LoRASeed(model, name string) uint64 {
	return radix.TokenSeed(model + "\x00lora:" + name)
}

// KVApplier turns one worker's engine KV event stream into index changes.
// It is deterministic and does no I/O: messages and the time come in,
// index deltas and a status go out, so that a simulation can drive it
// directly. It is not safe for concurrent use; one subscription owns it.
//
// Sequence rules: a live batch next in sequence is applied; one already
// applied (a replay overlapped) is skipped; one that jumps ahead is a gap,
// which the caller fills by replay (KVGap) or, when it cannot, which
// clears the worker's event-sourced pages and rebuilds from live events
// (KVResync); a live sequence that goes back is an engine restart, which
// clears too (KVRestart). A clear starts a new generation, so replicas drop
// every page of the older one whatever order deltas reach them in.
//
// Use (the node's runner, kvsub.go, does this; a simulation may too):
//
//	a := NewKVApplier(ix, worker, model, epoch)
//	from, replay, res := a.Begin(now, canReplay) // disseminate res.Deltas
//	// if replay: feed the engine's kept batches from `from` to a.ApplyReplayed
//	for each live message m {
//		res := a.Apply(m, now, canReplay) // disseminate res.Deltas, in order
//		if res.Replay {
//			// feed the kept batches from res.ReplayFrom to a.ApplyReplayed,
//			// then m itself: a.ApplyReplayed(m, now)
//		}
//	}
//
// A simulation whose batches are decoded and in order calls ApplyBatch.
type KVApplier struct {
	ix     EventIndex
	decode func(*kvevents.Batch, []byte) error
	worker string
	model  string
	epoch  uint64
	seed   uint64 // the base model's lineage seed
	pageT  int    // the model's page size in tokens

	gen     uint32
	synced  bool  // applied is meaningful
	applied int64 // last sequence number applied
	// floor is the last sequence number applied when the subscription
	// began: a live batch at or below it cannot be a replayed duplicate
	// (it was published after the subscription started), so it is a
	// restart.
	floor    int64
	haveLive bool
	live     int64 // last sequence number seen on the live stream

	batch     kvevents.Batch
	pages     []uint64
	loraSeeds map[string]uint64
}

// NewKVApplier returns an applier of worker's events (worker serves model,
// at index epoch epoch) into ix. It starts with nothing applied: call
// Begin before the first message.
func NewKVApplier(ix EventIndex, worker, model string, epoch uint64) *KVApplier {
	// Generations start at 1: the first event-sourced op drops what
	// gateways recorded for the worker.
	return &KVApplier{ix: ix, decode: decodeKVBatch, worker: worker, model: model, epoch: epoch, gen: 1,
		seed: radix.TokenSeed(model), pageT: ix.PageTokens(model), floor: -1, loraSeeds: map[string]uint64{}}
}

// Applied returns the last sequence number applied and whether there is one.
func (a *KVApplier) Applied() (int64, bool) { return a.applied, a.synced }

// Gen returns the worker's current event generation.
func (a *KVApplier) Gen() uint32 { return a.gen }

// Begin starts (or restarts, after a reconnection) following the stream.
// It reads where the index stands for the worker (EventState, which the
// previous owner's deltas replicated). With canReplay, it returns the
// sequence number to replay from (replay is true); without, it clears the
// worker's event-sourced pages (what happened since cannot be known) and
// returns the clear's delta in res.
func (a *KVApplier) Begin(now time.Time, canReplay bool) (from int64, replay bool, res KVResult) {
	gen, ver, ok := a.ix.EventState(a.worker)
	a.gen = max(a.gen, gen)
	if ok && (!a.synced || int64(ver>>16) > a.applied) {
		a.applied, a.synced = int64(ver>>16), true
	}
	a.haveLive = false
	if canReplay {
		a.floor = -1
		if a.synced {
			a.floor = a.applied
			return a.applied + 1, true, KVResult{}
		}
		return 0, true, KVResult{}
	}
	a.floor = -1
	if !ok {
		return 0, false, KVResult{}
	}
	res.Status = KVCleared
	a.clear(&res, now)
	return 0, false, res
}

// Clear drops the worker's event-sourced pages (a new generation): the
// engine stayed unreachable past the grace period. The next batch is
// accepted whatever its sequence number.
func (a *KVApplier) Clear(now time.Time) KVResult {
	res := KVResult{Status: KVCleared}
	a.clear(&res, now)
	return res
}

func (a *KVApplier) clear(res *KVResult, now time.Time) {
	a.gen++
	a.synced = false
	a.floor = -1
	d, err := a.ix.ClearEvents(a.worker, a.epoch, indexStamp(now), a.gen)
	a.keep(res, d, err)
}

func (a *KVApplier) keep(res *KVResult, d radix.Delta, err error) {
	if err != nil {
		if res.Err == nil {
			res.Err = fmt.Errorf("node: worker %q: %w", a.worker, err)
		}
		return
	}
	if d.Op == 0 {
		return // nothing changed
	}
	// The delta's slices alias the applier's buffers and the decoded
	// batch, both reused.
	d.Pages = append([]uint64(nil), d.Pages...)
	if d.Hashes != nil {
		d.Hashes = append([]uint64(nil), d.Hashes...)
	}
	res.Deltas = append(res.Deltas, d)
}

// Apply applies one message of the live stream at now. canReplay says
// whether the caller can replay a gap now (the engine offers replay and
// this is not the retry after one).
func (a *KVApplier) Apply(m kvevents.Message, now time.Time, canReplay bool) KVResult {
	s := m.Seq
	restart := a.haveLive && s <= a.live || a.synced && s <= a.floor
	a.haveLive, a.live = true, s
	if !restart && a.synced && s <= a.applied {
		return KVResult{Status: KVDuplicate}
	}
	if !restart && a.synced && s > a.applied+1 && canReplay {
		return KVResult{Status: KVGap, Replay: true, ReplayFrom: a.applied + 1}
	}
	var res KVResult
	if restart {
		res.Status = KVRestart
		a.clear(&res, now)
		if canReplay {
			// The restarted engine may keep its first batches: replay
			// them from the start.
			res.Replay = true
			return res
		}
	}
	if err := a.decode(&a.batch, m.Payload); err != nil {
		res.Status = KVDecodeError
		res.Err = fmt.Errorf("node: worker %q: seq %d: %w", a.worker, s, err)
		return res
	}
	switch {
	case restart:
	case a.synced && s > a.applied+1:
		res.Status = KVResync
		a.clear(&res, now)
	}
	a.applyBatch(&res, s, &a.batch, now)
	return res
}

// ApplyReplayed applies one message a replay returned (not its end
// marker), and after a replay the live message that asked for it. A replay that starts after the first sequence number missing
// cannot fill the gap: the applier clears and rebuilds (KVResync); a
// payload that does not decode is a hole no replay fills, handled alike.
func (a *KVApplier) ApplyReplayed(m kvevents.Message, now time.Time) KVResult {
	s := m.Seq
	if a.synced && s <= a.applied {
		return KVResult{Status: KVDuplicate}
	}
	var res KVResult
	if err := a.decode(&a.batch, m.Payload); err != nil {
		res = KVResult{Status: KVDecodeError, Err: fmt.Errorf("node: worker %q: replayed seq %d: %w", a.worker, s, err)}
		a.clear(&res, now)
		a.applied, a.synced = s, true
		return res
	}
	if a.synced && s > a.applied+1 {
		res.Status = KVResync
		a.clear(&res, now)
	}
	a.applyBatch(&res, s, &a.batch, now)
	return res
}

// ApplyBatch applies a batch already decoded, with sequence number seq,
// as the next one in sequence (a simulation's entry point; live streams
// go through Apply, which checks the sequence).
func (a *KVApplier) ApplyBatch(seq int64, b *kvevents.Batch, now time.Time) KVResult {
	var res KVResult
	a.applyBatch(&res, seq, b, now)
	return res
}

func (a *KVApplier) applyBatch(res *KVResult, seq int64, b *kvevents.Batch, now time.Time) {
	a.applied, a.synced = seq, true
	res.TS = b.TS
	res.Malformed += b.Skipped
	stamp := indexStamp(now)
	for i := range b.Events {
		if i >= 1<<16 {
			res.Malformed += len(b.Events) - i
			break
		}
		ver := uint64(seq)<<16 | uint64(i)
		ev := &b.Events[i]
		switch ev.Kind {
		case kvCleared:
			a.gen++
			d, err := a.ix.ClearEvents(a.worker, a.epoch, stamp, a.gen)
			a.keep(res, d, err)
			res.Cleared++
		case kvRemoved:
			if !gpuMedium(ev.Medium) {
				res.OtherMedium++
				continue
			}
			if ev.GroupIdx != 0 {
				res.OtherGroup++
				continue
			}
			if len(ev.BlockHashes) == 0 {
				res.Malformed++
				continue
			}
			d, err := a.ix.RemoveEvents(a.worker, a.epoch, stamp, a.gen, ver, ev.BlockHashes)
			a.keep(res, d, err)
			res.Removed++
		case kvStored:
			a.store(res, ev, stamp, ver)
		default:
			res.Malformed++
		}
	}
}

// gpuMedium reports whether blocks of medium count for routing: GPU, or
// no medium named (engines before media existed).
func gpuMedium(m string) bool { return m == "" || strings.EqualFold(m, "gpu") }

func (a *KVApplier) store(res *KVResult, ev *kvevents.Event, stamp uint32, ver uint64) {
	if !gpuMedium(ev.Medium) {
		res.OtherMedium++
		return
	}
	if ev.GroupIdx != 0 {
		res.OtherGroup++
		return
	}
	nb, bs := len(ev.BlockHashes), ev.BlockSize
	hashes, tokens := ev.BlockHashes, ev.TokenIDs
	if bs > 0 && nb > 0 && len(tokens) < nb*bs && len(tokens) > (nb-1)*bs {
		// SGLang's last page may be partial: only full blocks make pages.
		nb--
		hashes, tokens = hashes[:nb], tokens[:nb*bs]
		if nb == 0 {
			return
		}
	}
	if nb == 0 || bs <= 0 || len(tokens) != nb*bs {
		res.Malformed++
		return
	}
	if bs%a.pageT != 0 {
		res.BlockSize++
		if res.Err == nil {
			res.Err = fmt.Errorf("%w: worker %q: block size %d, page size %d of model %q", ErrKVBlockSize, a.worker, bs, a.pageT, a.model)
		}
		return
	}
	var anchor uint64
	seed := a.seed
	if ev.HasLoRA {
		seed = a.loraSeed(ev)
	}
	if ev.HasParent {
		l, ok := a.ix.EngineLineage(a.worker, ev.ParentHash)
		if !ok {
			res.Orphans++
			return
		}
		anchor, seed = l, l
	}
	a.pages = radix.AppendTokenPages(a.pages[:0], seed, a.pageT, tokens)
	d, err := a.ix.StoreEvents(a.worker, a.epoch, stamp, a.gen, ver,
		radix.EngineBlocks{Anchor: anchor, Pages: a.pages, Hashes: hashes, PagesPerBlock: bs / a.pageT})
	a.keep(res, d, err)
	if err == nil {
		res.Stored++
		res.StoredBlocks += nb
	}
}

// loraSeed returns the seed of ev's adapter: by name, or by ID when the
// engine names none.
func (a *KVApplier) loraSeed(ev *kvevents.Event) uint64 {
	name := ev.LoRAName
	if name == "" {
		name = "id:" + strconv.FormatInt(ev.LoRAID, 10)
	}
	if s, ok := a.loraSeeds[name]; ok {
		return s
	}
	s := LoRASeed(a.model, name)
	if len(a.loraSeeds) < maxLoRASeeds {
		a.loraSeeds[name] = s
	}
	return s
}
