package radix

import (
	"cmp"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestScenarios runs the scripts in testdata/scenarios: small stories of
// chains, eviction, routing and replication with their expected output.
// Page hashes are small integers there (the index treats hashes as opaque).
// Rewrite the expectations with go test ./radix -run TestScenarios -rewrite.
func TestScenarios(t *testing.T) {
	datadriven.Walk(t, "testdata/scenarios", func(t *testing.T, path string) {
		sc := &scenario{reps: map[string]*Index{}, outbox: map[string][]Delta{}}
		datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
			return sc.run(t, d)
		})
	})
}

type scenario struct {
	reps   map[string]*Index
	outbox map[string][]Delta // deltas each replica produced, not yet delivered
}

func (sc *scenario) rep(t *testing.T, d *datadriven.TestData, key string) (string, *Index) {
	var name string
	d.ScanArgs(t, key, &name)
	r := sc.reps[name]
	if r == nil {
		t.Fatalf("%s: no replica %q", d.Pos, name)
	}
	return name, r
}

func scanPages(t *testing.T, d *datadriven.TestData, key string) []uint64 {
	var ss []string
	d.ScanArgs(t, key, &ss)
	var out []uint64
	for _, s := range ss {
		v, err := strconv.ParseUint(s, 10, 64)
		if err != nil {
			t.Fatalf("%s: page %q: %v", d.Pos, s, err)
		}
		out = append(out, v)
	}
	return out
}

func fmtDelta(d Delta) string {
	switch d.Op {
	case OpInsert:
		return fmt.Sprintf("insert %s@%d stamp=%d anchor=%d pages=%v", d.Worker, d.Epoch, d.Stamp, d.Anchor, d.Pages)
	case OpTouch:
		return fmt.Sprintf("touch %s@%d stamp=%d page=%d", d.Worker, d.Epoch, d.Stamp, d.Anchor)
	}
	return fmt.Sprintf("remove %s@%d", d.Worker, d.Epoch)
}

func (sc *scenario) run(t *testing.T, d *datadriven.TestData) string {
	var out strings.Builder
	switch d.Cmd {
	case "replica":
		var name string
		var cfg Config
		d.ScanArgs(t, "name", &name)
		d.MaybeScanArgs(t, "budget", &cfg.WorkerPages)
		d.MaybeScanArgs(t, "cap", &cfg.MaxHolderPages)
		sc.reps[name] = New(cfg)
		return ""
	case "insert", "touch", "remove":
		name, r := sc.rep(t, d, "r")
		var w string
		var epoch uint64
		var stamp uint32
		d.ScanArgs(t, "worker", &w)
		d.MaybeScanArgs(t, "epoch", &epoch)
		d.MaybeScanArgs(t, "stamp", &stamp)
		var delta Delta
		var err error
		switch d.Cmd {
		case "insert":
			delta, err = r.Insert(w, epoch, stamp, scanPages(t, d, "pages"))
		case "touch":
			var page uint64
			d.ScanArgs(t, "page", &page)
			delta, err = r.Touch(w, epoch, stamp, page)
		default:
			delta, err = r.RemoveWorker(w, epoch)
		}
		if err != nil {
			return "error: " + err.Error()
		}
		sc.outbox[name] = append(sc.outbox[name], delta)
		return fmtDelta(delta)
	case "deliver":
		// Encodes the sender's outbox as one batch (coalescing it unless
		// nocoalesce) and applies it at the receiver, in reverse order with
		// reverse; keep leaves the outbox for another receiver.
		from, _ := sc.rep(t, d, "from")
		_, to := sc.rep(t, d, "to")
		var b Batch
		for _, delta := range sc.outbox[from] {
			if d.HasArg("nocoalesce") {
				b.Deltas = append(b.Deltas, delta)
			} else {
				b.Add(delta)
			}
		}
		buf, err := AppendBatch(nil, &b)
		if err != nil {
			t.Fatal(err)
		}
		var got Batch
		if err := DecodeBatch(&got, buf, DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		if d.HasArg("reverse") {
			slices.Reverse(got.Deltas)
		}
		fmt.Fprintf(&out, "batch of %d bytes:\n", len(buf))
		for _, delta := range got.Deltas {
			fmt.Fprintf(&out, "  %s\n", fmtDelta(delta))
		}
		if err := to.ApplyBatch(&got); err != nil {
			fmt.Fprintf(&out, "error: %v\n", err)
		}
		if !d.HasArg("keep") {
			sc.outbox[from] = nil
		}
	case "match":
		_, r := sc.rep(t, d, "r")
		hits := r.MatchPages(nil, scanPages(t, d, "pages"))
		if len(hits) == 0 {
			return "no match"
		}
		for _, h := range hits {
			fmt.Fprintf(&out, "%s:%d ", h.Worker, h.Pages)
		}
		return strings.TrimSpace(out.String())
	case "route":
		_, r := sc.rep(t, d, "r")
		var cs []string
		d.ScanArgs(t, "cands", &cs)
		var cands []Candidate
		for _, c := range cs {
			name, load, _ := strings.Cut(c, ":")
			l, err := strconv.Atoi(load)
			if err != nil {
				t.Fatalf("%s: candidate %q", d.Pos, c)
			}
			cands = append(cands, Candidate{Worker: name, Load: l})
		}
		dec, err := r.RoutePages(scanPages(t, d, "pages"), cands, DefaultPolicy())
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprintf("%s by %s (matched %d, ratio %.2f)", dec.Worker, dec.Rule, dec.MatchedPages, dec.MatchRatio)
	case "chains":
		_, r := sc.rep(t, d, "r")
		sc.dumpChains(&out, r.x)
	case "digest":
		_, r := sc.rep(t, d, "r")
		for _, s := range r.Digest() {
			fmt.Fprintf(&out, "%s epoch=%d removed=%v pages=%d max-stamp=%d\n", s.Worker, s.Epoch, s.Removed, s.Pages, s.MaxStamp)
		}
	case "same":
		// Reports whether the replicas' digests agree.
		_, a := sc.rep(t, d, "a")
		_, b := sc.rep(t, d, "b")
		diff := Difference(a.Digest(), b.Digest())
		if len(diff) == 0 {
			return "same"
		}
		return "differ: " + strings.Join(diff, " ")
	case "sync":
		// Anti-entropy between two replicas until their digests agree.
		_, a := sc.rep(t, d, "a")
		_, b := sc.rep(t, d, "b")
		for round := 1; round <= 10; round++ {
			diff := Difference(a.Digest(), b.Digest())
			if len(diff) == 0 {
				return fmt.Sprintf("same after %d rounds", round-1)
			}
			for _, w := range diff {
				for _, pair := range [][2]*Index{{a, b}, {b, a}} {
					var hb Batch
					for from := 0; from >= 0; {
						from = pair[0].Holdings(&hb, w, from, 1<<20)
					}
					if err := pair[1].ApplyBatch(&hb); err != nil {
						t.Fatal(err)
					}
				}
			}
		}
		return "still differ after 10 rounds"
	case "stats":
		_, r := sc.rep(t, d, "r")
		st := r.Stats()
		return fmt.Sprintf("pages=%d holder-pages=%d chains=%d workers=%d pending=%d evicted=%d",
			st.Pages, st.HolderPages, st.Chains, st.Workers, st.Pending, st.Evicted)
	default:
		t.Fatalf("%s: unknown command %q", d.Pos, d.Cmd)
	}
	if err := checkInvariants(sc.anyIndex(d)); err != nil {
		t.Fatalf("%s: %v", d.Pos, err)
	}
	return out.String()
}

func (sc *scenario) anyIndex(d *datadriven.TestData) *core {
	for _, key := range []string{"r", "to", "a"} {
		for _, a := range d.CmdArgs {
			if a.Key == key && len(a.Vals) > 0 {
				if r := sc.reps[a.Vals[0]]; r != nil {
					return r.x
				}
			}
		}
	}
	return newCore(Config{})
}

// dumpChains prints the chains as a tree, children sorted by first page.
func (sc *scenario) dumpChains(out *strings.Builder, x *core) {
	var roots []uint32
	for ci := range x.chains {
		if c := &x.chains[ci]; c.hashes != nil && c.parent == noChain {
			roots = append(roots, uint32(ci))
		}
	}
	byFirst := func(a, b uint32) int { return cmp.Compare(x.chains[a].hashes[0], x.chains[b].hashes[0]) }
	slices.SortFunc(roots, byFirst)
	var walk func(ci uint32, indent string)
	walk = func(ci uint32, indent string) {
		c := &x.chains[ci]
		var hs []string
		for _, h := range c.holders {
			hs = append(hs, fmt.Sprintf("%s@%d", x.workers[h.w].name, h.stamp))
		}
		slices.Sort(hs)
		fmt.Fprintf(out, "%s%v held by %s\n", indent, c.hashes, strings.Join(hs, " "))
		kids := slices.Clone(c.children)
		slices.SortFunc(kids, byFirst)
		for _, k := range kids {
			walk(k, indent+"  ")
		}
	}
	for _, r := range roots {
		walk(r, "")
	}
	if len(roots) == 0 {
		out.WriteString("empty\n")
	}
}
