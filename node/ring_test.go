package node

import (
	"fmt"
	"slices"
	"testing"
)

func names(n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("node-%02d", i)
	}
	return out
}

func TestOwnersDeterministicAndOrderFree(t *testing.T) {
	ms := names(10)
	rev := slices.Clone(ms)
	slices.Reverse(rev)
	for k := range 200 {
		key := fmt.Sprintf("key-%d", k)
		a, b := Owners(key, ms, 3), Owners(key, rev, 3)
		if !slices.Equal(a, b) {
			t.Fatalf("%s: owners depend on member order: %v vs %v", key, a, b)
		}
		if len(a) != 3 || a[0] == a[1] || a[1] == a[2] || a[0] == a[2] {
			t.Fatalf("%s: want 3 distinct owners, got %v", key, a)
		}
	}
}

func TestOwnersStableWhenUnrelatedMembersChange(t *testing.T) {
	ms := names(20)
	moved := 0
	for k := range 1000 {
		key := fmt.Sprintf("key-%d", k)
		before := Owners(key, ms, 2)
		// Remove a member that owns nothing of this key: owners must not change.
		var others []string
		for _, m := range ms {
			if m != before[0] && m != before[1] {
				others = append(others, m)
			}
		}
		without := slices.DeleteFunc(slices.Clone(ms), func(m string) bool { return m == others[k%len(others)] })
		if after := Owners(key, without, 2); !slices.Equal(before, after) {
			t.Fatalf("%s: removing unrelated %s moved owners %v -> %v", key, others[k%len(others)], before, after)
		}
		// Adding a member moves the primary owner only when it outranks it.
		if Owners(key, append(slices.Clone(ms), "newcomer"), 1)[0] != before[0] {
			moved++
		}
	}
	// A newcomer should win about 1/21 of keys; far more means poor spreading.
	if moved < 10 || moved > 120 {
		t.Fatalf("newcomer took %d of 1000 keys, want about 48", moved)
	}
}

func TestOwnersBalance(t *testing.T) {
	ms := names(8)
	counts := map[string]int{}
	for k := range 8000 {
		counts[Owners(fmt.Sprintf("k%d", k), ms, 1)[0]]++
	}
	for m, c := range counts {
		if c < 700 || c > 1300 {
			t.Errorf("%s owns %d of 8000 keys, want about 1000", m, c)
		}
	}
}

func TestOwnersEdgeCases(t *testing.T) {
	if got := Owners("k", nil, 3); got != nil {
		t.Fatalf("no members: got %v", got)
	}
	if got := Owners("k", []string{"a", "b"}, 5); len(got) != 2 {
		t.Fatalf("n capped at members: got %v", got)
	}
	if got := Owners("k", []string{"a"}, 0); got != nil {
		t.Fatalf("n=0: got %v", got)
	}
}
