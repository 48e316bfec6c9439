package replsim_test

import (
	"math/rand/v2"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/replsim"
	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/swim"
)

// cluster forms n members with an index each (eager up to 8 members).
func cluster(t *testing.T, seed uint64, n int) (*replsim.Cluster, []*radix.Index) {
	t.Helper()
	ixs := make([]*radix.Index, n)
	for i := range ixs {
		ixs[i] = radix.New(radix.Config{})
	}
	c, err := replsim.New(seed, n, replsim.Config{
		Swim: swim.LANConfig(),
		Replica: func(i int) replica.Config {
			return replica.Config{EagerMembers: 8, Rand: rand.New(rand.NewPCG(seed, uint64(i)))}
		},
		Index:         func(i int) *radix.Index { return ixs[i] },
		DataBytes:     1000,
		StreamTimeout: 10 * time.Second,
		Link:          simnet.Link{Delay: time.Millisecond, Jitter: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Form(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	return c, ixs
}

// TestReplicates: a store write and an index batch too large for one
// packet reach every member, directly in a small cluster and by gossip in
// a larger one; with loss, anti-entropy completes what gossip loses.
func TestReplicates(t *testing.T) {
	for _, tc := range []struct {
		n    int
		loss float64
	}{{5, 0}, {24, 0}, {24, 0.2}} {
		c, ixs := cluster(t, 1, tc.n)
		c.Net.SetDefault(simnet.Link{Delay: time.Millisecond, Jitter: time.Millisecond, Loss: tc.loss})
		m := c.Members[3]
		if err := m.Eng.Store().Put("ns", "k", []byte("v"), c.Net.Now()); err != nil {
			t.Fatal(err)
		}
		m.Disseminate()
		pages := make([]uint64, 300) // 2.4 KB: cut to packets above 8 members
		for i := range pages {
			pages[i] = uint64(i+1)*0x9E3779B97F4A7C15 | 1
		}
		d, err := ixs[3].Insert("w", 1, 1, pages)
		if err != nil {
			t.Fatal(err)
		}
		var b radix.Batch
		b.Add(d)
		if err := m.BroadcastIndex(&b); err != nil {
			t.Fatal(err)
		}
		c.Net.RunFor(30 * time.Second)
		if err := c.Err(); err != nil {
			t.Fatal(err)
		}
		want := []radix.Hit{{Worker: "w", Pages: len(pages)}}
		for i, mb := range c.Members {
			if _, ok := mb.Eng.Store().Get("ns", "k"); !ok {
				t.Errorf("n=%d loss=%v: member %d lacks the key", tc.n, tc.loss, i)
			}
			if diff := cmp.Diff(want, ixs[i].MatchPages(nil, pages)); diff != "" {
				t.Errorf("n=%d loss=%v: member %d's index (-want +got):\n%s", tc.n, tc.loss, i, diff)
			}
		}
		if tc.n > 8 && c.Gossiped == 0 {
			t.Errorf("n=%d: nothing gossiped", tc.n)
		}
		if tc.loss > 0 && c.Exchanges == 0 {
			t.Errorf("n=%d: no anti-entropy exchange", tc.n)
		}
	}
}

// TestDeterministic: the same seed gives the same run, byte for byte.
func TestDeterministic(t *testing.T) {
	run := func() [3]uint64 {
		c, ixs := cluster(t, 7, 12)
		d, _ := ixs[0].Insert("w", 1, 1, []uint64{11, 12, 13})
		var b radix.Batch
		b.Add(d)
		if err := c.Members[0].BroadcastIndex(&b); err != nil {
			t.Fatal(err)
		}
		c.Net.RunFor(10 * time.Second)
		return [3]uint64{c.SentBytes(), c.DeltaBytes, c.AEBytes}
	}
	if a, b := run(), run(); a != b {
		t.Errorf("two runs of one seed: %v and %v", a, b)
	}
}

// TestSwimStreamsComplete: swim's own streams (numbered from 1) reach
// their end in the core: with room for one stream at a time, a member
// whose join push-pull never ended would drop every later stream.
func TestSwimStreamsComplete(t *testing.T) {
	cfg := swim.LANConfig()
	cfg.MaxStreams = 1
	c, err := replsim.New(3, 6, replsim.Config{
		Swim:          cfg,
		Replica:       func(i int) replica.Config { return replica.Config{Rand: rand.New(rand.NewPCG(3, uint64(i)))} },
		DataBytes:     1000,
		StreamTimeout: 10 * time.Second,
		Link:          simnet.Link{Delay: time.Millisecond},
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Form(2 * time.Minute); err != nil {
		t.Fatal(err)
	}
	c.Net.RunFor(3 * time.Minute)
	for i, sw := range c.Swim.Nodes {
		if n := sw.Core.Stats().StreamsDropped; n != 0 {
			t.Errorf("member %d dropped %d streams", i, n)
		}
	}
}
