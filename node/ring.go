package node

import (
	"cmp"
	"slices"
)

// Owners returns the n members that own key under rendezvous (highest random
// weight) hashing, best first. Every node that sees the same members computes
// the same answer, and a key's owners change only when one of its owners
// leaves or a newcomer outranks one of them: members that come and go
// elsewhere never move it. members need not be sorted; n is capped at
// len(members).
func Owners(key string, members []string, n int) []string {
	if n > len(members) {
		n = len(members)
	}
	if n <= 0 {
		return nil
	}
	type scored struct {
		name  string
		score uint64
	}
	kh := fnv64(key)
	all := make([]scored, len(members))
	for i, m := range members {
		all[i] = scored{m, mix64(fnv64(m) ^ mix64(kh))}
	}
	slices.SortFunc(all, func(a, b scored) int {
		if c := cmp.Compare(b.score, a.score); c != 0 {
			return c
		}
		return cmp.Compare(a.name, b.name)
	})
	out := make([]string, n)
	for i := range out {
		out[i] = all[i].name
	}
	return out
}

// fnv64 is FNV-1a over s: stable across processes, machines and versions.
func fnv64(s string) uint64 {
	const (
		offset = 14695981039346656037
		prime  = 1099511628211
	)
	h := uint64(offset)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= prime
	}
	return h
}

// mix64 is the splitmix64 finaliser; it spreads FNV's weak low bits so that
// scores of similar names are independent.
func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
