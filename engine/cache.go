package engine

import (
	"errors"
	"fmt"
	"time"
)

// EventKind is the kind of a KV event, as vLLM names them.
type EventKind uint8

const (
	// KindBlockStored: blocks entered the cache.
	KindBlockStored EventKind = iota + 1
	// KindBlockRemoved: blocks were evicted.
	KindBlockRemoved
	// KindAllBlocksCleared: the whole cache was emptied.
	KindAllBlocksCleared
)

func (k EventKind) String() string {
	switch k {
	case KindBlockStored:
		return "BlockStored"
	case KindBlockRemoved:
		return "BlockRemoved"
	case KindAllBlocksCleared:
		return "AllBlocksCleared"
	}
	return fmt.Sprintf("EventKind(%d)", uint8(k))
}

// Event is one KV-cache event in the shape of vLLM's (BlockStored,
// BlockRemoved, AllBlocksCleared); the emulator server converts it to the
// wire format. Its slices alias memory the cache or the caller owns: they
// are never overwritten, but the caller must not modify them.
type Event struct {
	// At is when the event happened (set by Model; 0 from a bare Cache).
	At time.Duration
	// Kind says which fields are set.
	Kind EventKind
	// BlockHashes are the stored blocks in prompt order (BlockStored), or
	// the evicted blocks, each leaf before its parent (BlockRemoved).
	BlockHashes []uint64
	// ParentHash is the hash of the block before the first stored one,
	// when HasParent (BlockStored).
	ParentHash uint64
	HasParent  bool
	// TokenIDs are the tokens of the stored blocks, BlockSize per block
	// (BlockStored; nil when the request gave block hashes without tokens).
	TokenIDs []uint32
	// BlockSize is the number of tokens per block (BlockStored).
	BlockSize int
}

// Cache is a prefix cache of a fixed number of blocks, LRU by block, like
// vLLM's prefix cache: only full blocks are cached, a block's hash chains
// its parent's (BlockHash), and a prompt's hit is its longest run of
// leading blocks present.
//
// The cache stays prefix-closed: a block is present only if its parent is.
// Every touch of a prompt's blocks goes from its last block to its first
// (as vLLM frees a request's blocks tail first), so a parent is always more
// recent than any of its children and the least recent block, which
// eviction takes, is always a leaf.
//
// A Cache is not safe for concurrent use.
type Cache struct {
	blockTokens int
	capacity    int
	seed        uint64
	index       map[uint64]int32 // hash -> slot
	slots       []cacheSlot      // slots[capacity] is the LRU list's sentinel
	free        []int32
	arena       arena
}

// cacheSlot is one cached block and its place in the LRU list (the
// sentinel's next is the least recent block, its prev the most recent).
type cacheSlot struct {
	hash, parent uint64
	hasParent    bool
	prev, next   int32
}

// NewCache returns an empty cache of blocks blocks of blockTokens tokens,
// whose first blocks chain to seed (see BlockHash).
func NewCache(blocks, blockTokens int, seed uint64) (*Cache, error) {
	var errs []error
	if blocks < 1 || blocks > maxBlocks {
		errs = append(errs, fmt.Errorf("engine: blocks %d outside [1, %d]", blocks, maxBlocks))
	}
	if blockTokens < 1 || blockTokens > maxBlockTokens {
		errs = append(errs, fmt.Errorf("engine: block tokens %d outside [1, %d]", blockTokens, maxBlockTokens))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Cache{
		blockTokens: blockTokens,
		capacity:    blocks,
		seed:        seed,
		index:       make(map[uint64]int32, min(blocks, 1<<16)),
		slots:       make([]cacheSlot, blocks+1),
	}
	c.reset()
	return c, nil
}

// maxBlocks and maxBlockTokens bound a cache's size (slots are 32-bit).
const (
	maxBlocks      = 1 << 28
	maxBlockTokens = 1 << 16
)

func (c *Cache) reset() {
	clear(c.index)
	s := int32(c.capacity)
	c.slots[s].prev, c.slots[s].next = s, s
	c.free = c.free[:0]
	for i := int32(c.capacity) - 1; i >= 0; i-- {
		c.free = append(c.free, i)
	}
}

// BlockTokens is the number of tokens per block.
func (c *Cache) BlockTokens() int { return c.blockTokens }

// Capacity is the number of blocks the cache holds when full.
func (c *Cache) Capacity() int { return c.capacity }

// Len is the number of cached blocks.
func (c *Cache) Len() int { return len(c.index) }

// Seed is the parent value of every prompt's first block.
func (c *Cache) Seed() uint64 { return c.seed }

// AppendHashes appends the block hashes of tokens' full blocks to dst.
func (c *Cache) AppendHashes(dst []uint64, tokens []uint32) []uint64 {
	return AppendBlockHashes(dst, c.seed, c.blockTokens, tokens)
}

// Contains reports whether the block with hash h is cached.
func (c *Cache) Contains(h uint64) bool {
	_, ok := c.index[h]
	return ok
}

// Match returns how many leading blocks of hashes are cached, without
// touching them.
func (c *Cache) Match(hashes []uint64) int {
	for i, h := range hashes {
		if _, ok := c.index[h]; !ok {
			return i
		}
	}
	return len(hashes)
}

// Touch makes the leading cached blocks of hashes the most recent (the
// first one most recent of all) and returns how many there are.
func (c *Cache) Touch(hashes []uint64) int {
	n := c.Match(hashes)
	for i := n - 1; i >= 0; i-- {
		s := c.index[hashes[i]]
		c.unlink(s)
		c.pushMRU(s)
	}
	return n
}

// Store caches the blocks of hashes (a prompt's chain, tokens its token
// ids or nil) and makes them the most recent, evicting least recent blocks
// as needed. A prompt longer than the cache keeps only its first Capacity
// blocks. It appends to dst a BlockRemoved event for the evicted blocks
// (if any) and then a BlockStored event for the blocks that were not
// cached (if any), and returns dst; the BlockStored event's slices alias
// hashes and tokens.
func (c *Cache) Store(dst []Event, hashes []uint64, tokens []uint32) []Event {
	n := min(len(hashes), c.capacity)
	hit := c.Touch(hashes[:n])
	if hit == n {
		return dst
	}
	if need := n - hit - len(c.free); need > 0 {
		// The prompt's cached blocks are the most recent, and n <= capacity
		// leaves at least need others to evict.
		removed := c.arena.alloc(need)
		for i := range removed {
			removed[i] = c.evictLRU()
		}
		dst = append(dst, Event{Kind: KindBlockRemoved, BlockHashes: removed})
	}
	for i := n - 1; i >= 0; i-- {
		h := hashes[i]
		if i < hit {
			s := c.index[h]
			c.unlink(s)
			c.pushMRU(s)
			continue
		}
		s := c.free[len(c.free)-1]
		c.free = c.free[:len(c.free)-1]
		sl := &c.slots[s]
		sl.hash, sl.parent, sl.hasParent = h, c.seed, i > 0
		if i > 0 {
			sl.parent = hashes[i-1]
		}
		c.index[h] = s
		c.pushMRU(s)
	}
	ev := Event{Kind: KindBlockStored, BlockHashes: hashes[hit:n], BlockSize: c.blockTokens}
	if hit > 0 {
		ev.ParentHash, ev.HasParent = hashes[hit-1], true
	}
	if len(tokens) >= n*c.blockTokens {
		ev.TokenIDs = tokens[hit*c.blockTokens : n*c.blockTokens]
	}
	return append(dst, ev)
}

// Clear empties the cache and appends an AllBlocksCleared event to dst.
func (c *Cache) Clear(dst []Event) []Event {
	c.reset()
	return append(dst, Event{Kind: KindAllBlocksCleared})
}

// AppendBlocks appends the cached block hashes to dst, least recent first.
func (c *Cache) AppendBlocks(dst []uint64) []uint64 {
	sent := int32(c.capacity)
	for s := c.slots[sent].next; s != sent; s = c.slots[s].next {
		dst = append(dst, c.slots[s].hash)
	}
	return dst
}

// Parent returns the parent hash of the cached block h (ok is false when h
// is not cached or is a first block).
func (c *Cache) Parent(h uint64) (parent uint64, ok bool) {
	s, in := c.index[h]
	if !in || !c.slots[s].hasParent {
		return 0, false
	}
	return c.slots[s].parent, true
}

func (c *Cache) evictLRU() uint64 {
	sent := int32(c.capacity)
	s := c.slots[sent].next
	if s == sent {
		panic("engine: evicting from an empty cache")
	}
	h := c.slots[s].hash
	c.unlink(s)
	delete(c.index, h)
	c.free = append(c.free, s)
	return h
}

func (c *Cache) unlink(s int32) {
	sl := &c.slots[s]
	c.slots[sl.prev].next = sl.next
	c.slots[sl.next].prev = sl.prev
}

func (c *Cache) pushMRU(s int32) {
	sent := int32(c.capacity)
	last := c.slots[sent].prev
	c.slots[s].prev, c.slots[s].next = last, sent
	c.slots[last].next = s
	c.slots[sent].prev = s
}

// arena hands out slices of uint64 that are never overwritten, from chunks
// allocated a few thousand entries at a time, so that events may keep
// slices without copying and without an allocation each.
type arena struct{ chunk []uint64 }

const arenaChunk = 4096

func (a *arena) alloc(n int) []uint64 {
	if n > arenaChunk/4 {
		return make([]uint64, n)
	}
	if len(a.chunk)+n > cap(a.chunk) {
		a.chunk = make([]uint64, 0, arenaChunk)
	}
	a.chunk = a.chunk[:len(a.chunk)+n]
	return a.chunk[len(a.chunk)-n : len(a.chunk) : len(a.chunk)]
}
