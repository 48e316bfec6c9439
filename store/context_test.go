package store

import (
	"testing"

	"pgregory.net/rapid"
)

// TestContextModel checks the version vector + cloud against a plain set.
func TestContextModel(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		var c actorCtx
		seen := map[uint64]bool{}
		for range rapid.IntRange(1, 60).Draw(t, "ops") {
			from := rapid.Uint64Range(0, 60).Draw(t, "from")
			if rapid.Bool().Draw(t, "single") {
				c.add(from + 1)
				seen[from+1] = true
			} else {
				to := rapid.Uint64Range(from, from+10).Draw(t, "to")
				c.addRange(from, to)
				for s := from + 1; s <= to; s++ {
					seen[s] = true
				}
			}
			for s := uint64(1); s <= 75; s++ {
				if c.has(s) != seen[s] {
					t.Fatalf("has(%d) = %v, model %v; ctx %+v", s, c.has(s), seen[s], c)
				}
			}
			prev := c.max + 1
			for _, r := range c.cloud {
				if r.First <= prev || r.Last < r.First {
					t.Fatalf("cloud not canonical: %+v", c)
				}
				prev = r.Last + 1
				if !c.hasRun(r) || c.hasRun(Run{r.First - 1, r.Last}) {
					t.Fatalf("hasRun wrong for %+v in %+v", r, c)
				}
			}
			if !seen[c.max+1] && c.max > 0 && !seen[c.max] {
				t.Fatalf("max %d not seen", c.max)
			}
		}
	})
}
