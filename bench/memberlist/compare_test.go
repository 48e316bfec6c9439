package memberlist

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
)

var (
	compare = flag.Bool("compare", false, "run the full comparison (N = 5, 20, 50) and print its markdown table")
	trials  = flag.Int("trials", 3, "trials per implementation and size with -compare")
	sizes   = flag.String("sizes", "5,20,50", "cluster sizes with -compare, comma-separated")
	idleN   = flag.Int("idle-trials", 1, "with -compare, the first trials that also measure idle traffic over a push-pull interval")
	out     = flag.String("out", "", "with -compare, also write the table to this file")
)

// fullPlan bounds a trial of the full comparison.
func fullPlan() Plan {
	return Plan{
		Settle:         5 * time.Second,
		BootstrapLimit: 60 * time.Second,
		Broadcasts:     2,
		GossipLimit:    10 * time.Second,
		Quiet:          2 * time.Second,
		DetectLimit:    60 * time.Second,
		Poll:           20 * time.Millisecond,
	}
}

// quickPlan is the plan of the default run: one small trial, well under a
// minute for both implementations even under the race detector.
func quickPlan() Plan {
	p := fullPlan()
	p.Settle = 2 * time.Second
	p.Quiet = time.Second
	// Too short for a push-pull: the quick idle figure is probes only.
	p.Idle = 3 * time.Second
	return p
}

// TestCompare measures both implementations side by side. Without
// -compare it runs one N = 5 trial of each and requires of meshnode what
// the comparison claims for it: a bootstrap that completes with no hole,
// every broadcast at every node, the crash detected and no false death.
// memberlist's figures are logged, not judged.
func TestCompare(t *testing.T) {
	// Every trial stops its nodes: nothing of either implementation, nor
	// of the harness's transport wrappers, may outlive the test.
	// memberlist's probe goroutine can outlive its Shutdown while it waits
	// for an ack that will not come: that is memberlist's, not meshnode's,
	// and the check is for meshnode.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/hashicorp/memberlist.(*Memberlist).probeNode"))
	ns, nTrials, idleTrials, plan := []int{5}, 1, 1, quickPlan()
	if *compare {
		var err error
		ns, err = parseSizes(*sizes)
		if err != nil {
			t.Fatal(err)
		}
		nTrials, idleTrials, plan = *trials, *idleN, fullPlan()
	}
	s := DefaultSettings()
	var table strings.Builder
	writeHeader(&table, s, plan, nTrials, idleTrials)
	for _, n := range ns {
		results := make([][]Result, len(impls))
		for trial := range nTrials {
			// Alternate which implementation goes first, so that neither
			// always runs right after the other's shutdown.
			for k := range impls {
				idx := (k + trial) % len(impls)
				im := impls[idx]
				p := plan
				switch {
				case trial >= idleTrials:
					p.Idle = 0
				case *compare:
					p.Idle = pushPullScaled(s.PushPullInterval, n)
					p.IdleAfter = 3 * s.PushPullInterval / 2
				}
				// Every node's first push-pull comes within 1.5 intervals of
				// its start, and one interval later its next.
				p.RepairLimit = 3*s.PushPullInterval/2 + pushPullScaled(s.PushPullInterval, n)
				r, err := runTrial(im, n, s, p)
				if err != nil {
					t.Fatalf("%s n=%d trial %d: %v", im.Name, n, trial, err)
				}
				t.Logf("%s n=%d trial %d: %s", im.Name, n, trial, describe(r))
				results[idx] = append(results[idx], r)
			}
		}
		mn, ml := summarize(impls[0].Name, results[0]), summarize(impls[1].Name, results[1])
		writeTable(&table, mn, ml)
		if !*compare {
			checkMeshnode(t, mn)
		}
	}
	t.Logf("\n%s", table.String())
	if *out != "" {
		if err := os.WriteFile(*out, []byte(table.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// checkMeshnode fails t unless meshnode did what the comparison claims.
func checkMeshnode(t *testing.T, s Summary) {
	t.Helper()
	if s.Unfinished > 0 || s.HoleTrials > 0 {
		t.Errorf("meshnode n=%d: %d trials did not finish bootstrap, %d left %d hole pairs", s.N, s.Unfinished, s.HoleTrials, s.HolePairs)
	}
	if s.Reached != s.Sent || s.SendErrors > 0 {
		// Gossip alone may miss a node now and then (see the results
		// file); the push-pull repair must not.
		t.Errorf("meshnode n=%d: %d of %d broadcasts reached every node (%d refused)", s.N, s.Reached, s.Sent, s.SendErrors)
	}
	if s.Undetected > 0 {
		t.Errorf("meshnode n=%d: %d crashes not detected", s.N, s.Undetected)
	}
	if s.FalseDead > 0 {
		t.Errorf("meshnode n=%d: %d false deaths", s.N, s.FalseDead)
	}
}

// describe is one trial's figures on one line.
func describe(r Result) string {
	return fmt.Sprintf("bootstrap %v holes %d (lasted %v) joinErr %d broadcasts by gossip %d, in all %d/%d idle %.0f B/node/s (udp %d tcp %d in %v) detect %v falseDead %d",
		r.Bootstrap.Round(time.Millisecond), r.Holes, r.HoleLasted.Round(time.Millisecond), r.JoinErrors,
		r.ByGossip, r.Reached, r.Sent, r.IdlePerNode(), r.Idle.UDP, r.Idle.TCP, r.IdleWindow.Round(time.Millisecond),
		r.Detect.Round(time.Millisecond), r.FalseDead)
}

// writeHeader states the settings and the plan the table was made with.
func writeHeader(w *strings.Builder, s Settings, p Plan, trials, idleTrials int) {
	fmt.Fprintf(w, "Settings (both): probe %v, probe timeout %v, indirect checks %d, suspicion mult %d (max x%d), health cap %d, gossip %v to %d, retransmit mult %d, push-pull %v, TCP timeout %v.\n",
		s.ProbeInterval, s.ProbeTimeout, s.IndirectChecks, s.SuspicionMult, s.SuspicionMaxMult, s.HealthMax,
		s.GossipInterval, s.GossipNodes, s.RetransmitMult, s.PushPullInterval, s.StreamTimeout)
	idle := fmt.Sprintf("idle traffic in the first %d trials over %v after %v quiet", idleTrials, p.Idle, p.Quiet)
	if *compare {
		idle = fmt.Sprintf("idle traffic in the first %d trials over one scaled push-pull interval, starting %v after the nodes started (after every first push-pull) and at least %v after the broadcasts",
			idleTrials, 3*s.PushPullInterval/2, p.Quiet)
	}
	fmt.Fprintf(w, "Plan: %d trials; holes counted %v after the first node knew all (bootstrap limit %v); %d broadcasts per node, all at once, each relayed once by every node on first receipt, and the ones a node holds carried in its push-pull state (gossip alone judged after %v, repair included after 1.5 push-pull intervals plus one scaled interval); %s; detection limit %v; views sampled every %v.\n\n",
		trials, p.Settle, p.BootstrapLimit, p.Broadcasts, p.GossipLimit, idle, p.DetectLimit, p.Poll)
}

// parseSizes reads a comma-separated list of cluster sizes of at least 3.
func parseSizes(s string) ([]int, error) {
	var ns []int
	for f := range strings.SplitSeq(s, ",") {
		var n int
		if _, err := fmt.Sscan(strings.TrimSpace(f), &n); err != nil || n < 3 {
			return nil, fmt.Errorf("bad size %q: want an integer of at least 3", f)
		}
		ns = append(ns, n)
	}
	return ns, nil
}
