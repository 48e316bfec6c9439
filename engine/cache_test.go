package engine

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// blockTokens of the cache tests: two tokens per block.
const testBT = 2

// prompt returns the tokens of a prompt whose blocks are named by letters:
// "abc" is blocks a, b, c, each of testBT tokens.
func prompt(names string) []uint32 {
	var t []uint32
	for _, c := range names {
		for range testBT {
			t = append(t, uint32(c))
		}
	}
	return t
}

// namer names block hashes by the prompt path that made them ("ab" is
// block b after a), for readable events.
type namer map[uint64]string

func (n namer) add(c *Cache, names string) []uint64 {
	hs := c.AppendHashes(nil, prompt(names))
	for i, h := range hs {
		n[h] = names[:i+1]
	}
	return hs
}

func (n namer) events(evs []Event) []string {
	var out []string
	for _, e := range evs {
		var names []string
		for _, h := range e.BlockHashes {
			names = append(names, n[h])
		}
		s := e.Kind.String() + " " + strings.Join(names, ",")
		if e.HasParent {
			s += " parent=" + n[e.ParentHash]
		}
		out = append(out, strings.TrimSpace(s))
	}
	return out
}

func (n namer) blocks(c *Cache) []string {
	var out []string
	for _, h := range c.AppendBlocks(nil) {
		out = append(out, n[h])
	}
	return out
}

func TestCache(t *testing.T) {
	type op struct {
		store, touch string // a prompt to store or touch
		clear        bool
		events       []string // of the op
		hit          int      // of touch
	}
	for _, tc := range []struct {
		name   string
		blocks int
		ops    []op
		lru    []string // blocks, least recent first, at the end
		match  map[string]int
	}{
		{
			name: "store then hit the leading blocks", blocks: 10,
			ops: []op{
				{store: "abc", events: []string{"BlockStored a,ab,abc"}},
				{store: "abd", events: []string{"BlockStored abd parent=ab"}},
				{store: "ab"}, // all cached: no event
			},
			lru:   []string{"abc", "abd", "ab", "a"},
			match: map[string]int{"abc": 3, "abx": 2, "xbc": 0, "a": 1, "": 0, "abcd": 3},
		},
		{
			name: "evict least recent leaves before parents", blocks: 3,
			ops: []op{
				{store: "abc", events: []string{"BlockStored a,ab,abc"}},
				{store: "d", events: []string{"BlockRemoved abc", "BlockStored d"}},
				{store: "ef", events: []string{"BlockRemoved ab,a", "BlockStored e,ef"}},
			},
			lru:   []string{"d", "ef", "e"},
			match: map[string]int{"abc": 0, "d": 1, "ef": 2},
		},
		{
			name: "a touch protects the prefix", blocks: 4,
			ops: []op{
				{store: "ab", events: []string{"BlockStored a,ab"}},
				{store: "c", events: []string{"BlockStored c"}},
				{touch: "ab", hit: 2},
				{store: "de", events: []string{"BlockRemoved c", "BlockStored d,de"}},
			},
			lru: []string{"ab", "a", "de", "d"},
		},
		{
			name: "store re-uses the hit and evicts others", blocks: 4,
			ops: []op{
				{store: "ab", events: []string{"BlockStored a,ab"}},
				{store: "c", events: []string{"BlockStored c"}},
				{touch: "a", hit: 1},
				{store: "axy", events: []string{"BlockRemoved ab", "BlockStored ax,axy parent=a"}},
			},
			lru:   []string{"c", "axy", "ax", "a"},
			match: map[string]int{"ab": 1, "c": 1, "axy": 3},
		},
		{
			name: "a prompt longer than the cache keeps its head", blocks: 2,
			ops: []op{
				{store: "z", events: []string{"BlockStored z"}},
				{store: "abcd", events: []string{"BlockRemoved z", "BlockStored a,ab"}},
			},
			lru:   []string{"ab", "a"},
			match: map[string]int{"abcd": 2},
		},
		{
			name: "clear", blocks: 4,
			ops: []op{
				{store: "ab", events: []string{"BlockStored a,ab"}},
				{clear: true, events: []string{"AllBlocksCleared"}},
				{touch: "ab", hit: 0},
				{store: "ab", events: []string{"BlockStored a,ab"}},
			},
			lru: []string{"ab", "a"},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, err := NewCache(tc.blocks, testBT, 0)
			if err != nil {
				t.Fatal(err)
			}
			n := namer{}
			for i, o := range tc.ops {
				var evs []Event
				switch {
				case o.clear:
					evs = c.Clear(nil)
				case o.touch != "":
					if hit := c.Touch(n.add(c, o.touch)); hit != o.hit {
						t.Errorf("op %d: touch %s hit %d, want %d", i, o.touch, hit, o.hit)
					}
				default:
					evs = c.Store(nil, n.add(c, o.store), prompt(o.store))
				}
				if diff := cmp.Diff(o.events, n.events(evs)); diff != "" {
					t.Errorf("op %d events (-want +got):\n%s", i, diff)
				}
			}
			if tc.lru != nil {
				if diff := cmp.Diff(tc.lru, n.blocks(c)); diff != "" {
					t.Errorf("blocks, least recent first (-want +got):\n%s", diff)
				}
			}
			for p, want := range tc.match {
				if got := c.Match(n.add(c, p)); got != want {
					t.Errorf("Match(%q) = %d, want %d", p, got, want)
				}
			}
		})
	}
}

func TestCacheStoredEventCarriesTokens(t *testing.T) {
	c, _ := NewCache(8, testBT, 5)
	c.Store(nil, c.AppendHashes(nil, prompt("ab")), prompt("ab"))
	toks := append(prompt("abcd"), 99) // a partial last block
	evs := c.Store(nil, c.AppendHashes(nil, toks), toks)
	hs := c.AppendHashes(nil, toks)
	want := []Event{{Kind: KindBlockStored, BlockHashes: hs[2:4], ParentHash: hs[1], HasParent: true, TokenIDs: prompt("cd"), BlockSize: testBT}}
	if diff := cmp.Diff(want, evs); diff != "" {
		t.Errorf("events (-want +got):\n%s", diff)
	}
}

// TestCacheProperties stores and touches random prompts over a small tree
// of blocks and checks after each step that the cache is prefix-closed,
// within capacity, and exactly what its events say it holds.
func TestCacheProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		capacity := rapid.IntRange(1, 12).Draw(t, "capacity")
		c, err := NewCache(capacity, testBT, 0)
		if err != nil {
			t.Fatal(err)
		}
		mirror := map[uint64]bool{}
		promptGen := rapid.StringOfN(rapid.RuneFrom([]rune("abc")), 1, 6, -1)
		for i := range rapid.IntRange(1, 60).Draw(t, "ops") {
			p := promptGen.Draw(t, fmt.Sprint("prompt", i))
			hs := c.AppendHashes(nil, prompt(p))
			var evs []Event
			switch rapid.IntRange(0, 9).Draw(t, fmt.Sprint("op", i)) {
			case 0:
				evs = c.Clear(nil)
			case 1, 2:
				before := c.Match(hs)
				if hit := c.Touch(hs); hit != before {
					t.Fatalf("touch hit %d, match said %d", hit, before)
				}
			default:
				evs = c.Store(nil, hs, prompt(p))
				if got, want := c.Match(hs), min(len(hs), capacity); got != want {
					t.Fatalf("after storing %q: match %d, want %d", p, got, want)
				}
			}
			for _, e := range evs {
				switch e.Kind {
				case KindAllBlocksCleared:
					clear(mirror)
				case KindBlockRemoved:
					for _, h := range e.BlockHashes {
						if !mirror[h] {
							t.Fatalf("removed %#x, which was not stored", h)
						}
						delete(mirror, h)
						for m := range mirror {
							if par, ok := c.Parent(m); ok && par == h {
								t.Fatalf("removed %#x before its child %#x", h, m)
							}
						}
					}
				case KindBlockStored:
					if e.HasParent && !mirror[e.ParentHash] {
						t.Fatalf("stored under parent %#x, which is not cached", e.ParentHash)
					}
					if len(e.TokenIDs) != len(e.BlockHashes)*testBT {
						t.Fatalf("%d tokens for %d blocks", len(e.TokenIDs), len(e.BlockHashes))
					}
					for _, h := range e.BlockHashes {
						if mirror[h] {
							t.Fatalf("stored %#x twice", h)
						}
						mirror[h] = true
					}
				}
			}
			blocks := c.AppendBlocks(nil)
			if len(blocks) > capacity || len(blocks) != c.Len() {
				t.Fatalf("%d blocks listed, Len %d, capacity %d", len(blocks), c.Len(), capacity)
			}
			for _, h := range blocks {
				if !mirror[h] {
					t.Fatalf("cached %#x that no event stored", h)
				}
				if par, ok := c.Parent(h); ok && !c.Contains(par) {
					t.Fatalf("cached %#x without its parent %#x", h, par)
				}
			}
			if len(mirror) != len(blocks) {
				t.Fatalf("events say %d blocks, cache holds %d", len(mirror), len(blocks))
			}
			// A parent is more recent than its children.
			for i, h := range blocks {
				if par, ok := c.Parent(h); ok && slices.Index(blocks, par) < i {
					t.Fatalf("parent %#x less recent than its child %#x", par, h)
				}
			}
		}
	})
}

func TestNewCacheRejects(t *testing.T) {
	for _, tc := range []struct{ blocks, bt int }{{0, 16}, {10, 0}, {-1, -1}} {
		if _, err := NewCache(tc.blocks, tc.bt, 0); err == nil {
			t.Errorf("NewCache(%d, %d) accepted", tc.blocks, tc.bt)
		}
	}
}
