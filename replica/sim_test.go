package replica_test

import (
	"flag"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/history"
	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/internal/simnet/swimsim"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// The simulation runs real stores driven by the real replication core
// (Engine) on simnet, in virtual time: eager deltas over lossy UDP,
// anti-entropy exchanges over streams, collection rounds every
// CollectInterval. Membership comes either from real swim cores (local
// profile) sharing the simulated network, through swimsim, or from a
// script of the partition schedule (each node declares the members across a
// cut dead after a random detection delay of 2 to 8 s, and alive again 0.2
// to 3.2 s after the heal). The script is cheaper, so it runs the many
// seeds; swim runs fewer, with the timings and the isolation guard of the
// real protocol.

var (
	simSeeds     = flag.Int("replica.seeds", 300, "seeds of the partition simulation")
	simSeed      = flag.Int64("replica.seed", -1, "run only this seed of the partition simulation (verbose)")
	simSwimSeeds = flag.Int("replica.swim-seeds", 40, "seeds of the partition simulation with swim membership")
)

const (
	simNS          = "kv"
	simSyncPeriod  = 2 * time.Second
	simStepTimeout = 5 * time.Second
	simPageBytes   = 4 << 10 // small, so that exchanges take several pages
)

// Messages on the simulated network.
type (
	deltaMsg struct{ b []byte }
	pullReq  struct{ digest []byte } // opener pulls: answer with a page
	pageResp struct {
		page []byte
		more bool
	}
	digestReq  struct{} // opener serves: send me your digest
	digestResp struct{ digest []byte }
	pushPage   struct{ page []byte } // the page answering the peer's digest
	pushAck    struct{}
)

type view struct {
	live  bool
	since time.Time
}

type simNode struct {
	id    int
	name  string
	c     *cluster
	host  *simnet.Host
	eng   *replica.Engine
	rng   *rand.Rand
	views []view        // by node id, when membership is scripted
	sw    *swimsim.Node // the member's swim core, or nil

	nextTick  time.Time
	exch      store.Actor // the peer of the exchange in progress
	stream    uint64
	peer      netip.AddrPort
	phase     int // 0 idle, 1 pulling, 2 serving, 3 sending the last page
	pages     int
	collected int
}

type cluster struct {
	t     testing.TB
	net   *simnet.Net
	nodes []*simNode
	hist  history.History
	byAdr map[netip.AddrPort]int
	byNam map[string]int
	wseq  int
}

// simLink is every link: 1 to 3 ms one way, 1% loss.
var simLink = simnet.Link{Delay: time.Millisecond, Jitter: 2 * time.Millisecond, Loss: 0.01}

// myStream marks the stream IDs of the replication exchanges, apart from
// swim's.
const myStream = 1 << 62

func newCluster(t testing.TB, seed uint64, n int, horizon time.Duration, withSwim bool) *cluster {
	c := &cluster{t: t, byAdr: map[netip.AddrPort]int{}, byNam: map[string]int{}}
	var sc *swimsim.Cluster
	if withSwim {
		var err error
		if sc, err = swimsim.New(seed, n, swim.LocalConfig(), simLink); err != nil {
			t.Fatal(err)
		}
		c.net = sc.Net
	} else {
		c.net = simnet.New(seed, simLink)
	}
	for i := range n {
		name := fmt.Sprintf("n%d", i)
		if sc != nil {
			name = sc.Nodes[i].Name
		}
		st, err := store.New(store.Config{Actor: store.Actor{Name: name, Gen: 1}})
		if err != nil {
			t.Fatal(err)
		}
		nd := &simNode{
			id: i, name: st.Self().Name, c: c,
			eng: replica.New(st, nil, replica.Config{PageBytes: simPageBytes, Horizon: horizon, ExchangeInterval: simSyncPeriod, Rand: rand.New(rand.NewPCG(seed, uint64(i)|1<<32))}),
			rng: rand.New(rand.NewPCG(seed, uint64(i))),
		}
		for range n {
			nd.views = append(nd.views, view{live: true, since: simnet.Start})
		}
		// Bootstrap: the first exchange soon after joining, as node does.
		nd.eng.Bootstrap()
		nd.nextTick = simnet.Start.Add(time.Duration(nd.rng.IntN(1000)) * time.Millisecond)
		nd.stream = myStream
		if sc != nil {
			nd.sw = sc.Nodes[i]
			c.net.Restart(i, nd)
			nd.host = c.net.Host(i)
		} else {
			addr := netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, byte(i + 1)}), 7946)
			nd.host = c.net.Host(c.net.Add(addr, nd))
		}
		c.byAdr[c.net.Addr(i)] = i
		c.byNam[name] = i
		c.nodes = append(c.nodes, nd)
	}
	if sc != nil {
		// Form the cluster: everyone joins through node 0 within 0.5 s;
		// the scenario starts once every node sees every other alive.
		sc.JoinAll(500*time.Millisecond, 0)
		all := make([]int, n)
		for i := range all {
			all[i] = i
		}
		for range 300 {
			if sc.Converged(all) {
				return c
			}
			c.net.RunFor(100 * time.Millisecond)
		}
		t.Fatalf("seed %d: swim did not form the cluster in 30 s", seed)
	}
	return c
}

// members is what node gives the engine: every member, in any state, with
// when it entered that state (node.replicaMembers does the same).
func (nd *simNode) members() []replica.Member {
	if nd.sw != nil {
		var out []replica.Member
		for _, m := range nd.sw.Core.Members() {
			out = append(out, replica.Member{
				Actor: store.Actor{Name: m.Name, Gen: m.Gen},
				Live:  m.State == swim.StateAlive || m.State == swim.StateSuspect,
				Since: m.Since,
			})
		}
		return out
	}
	out := make([]replica.Member, 0, len(nd.views))
	for i, v := range nd.views {
		out = append(out, replica.Member{Actor: nd.c.nodes[i].eng.Store().Self(), Live: v.live, Since: v.since})
	}
	return out
}

func (nd *simNode) livePeers() []int {
	var out []int
	if nd.sw != nil {
		for _, m := range nd.sw.Core.Members() {
			if m.Name != nd.name && (m.State == swim.StateAlive || m.State == swim.StateSuspect) {
				out = append(out, nd.c.byAdr[m.Addr])
			}
		}
		return out
	}
	for i, v := range nd.views {
		if i != nd.id && v.live {
			out = append(out, i)
		}
	}
	return out
}

// write makes one acknowledged write on nd, disseminates it at once as node
// does, and records it with the stamp it got.
func (nd *simNode) write(key string, del bool) {
	c := nd.c
	if !c.net.Up(nd.id) {
		return // down: nothing acknowledged
	}
	c.wseq++
	val := fmt.Sprintf("%s@%s#%d", key, nd.name, c.wseq)
	now := c.net.Now()
	st := nd.eng.Store()
	var err error
	if del {
		err = st.Delete(simNS, key, now)
		val = ""
	} else {
		err = st.Put(simNS, key, []byte(val), now)
	}
	if err != nil {
		c.t.Fatalf("%s: write %s: %v", nd.name, key, err)
	}
	var stamp uint64
	nd.eng.SetMembers(nd.members())
	// As node does: flush, then let the core address each delta.
	for _, b := range nd.eng.Flush(1200) {
		nd.send(nd.eng.Broadcast(replica.KindStoreDelta, b, 1200))
		var d store.Delta
		if err := store.DecodeDelta(b, &d); err != nil {
			c.t.Fatal(err)
		}
		for _, e := range d.Entries {
			if string(e.Key) == key && d.Actors[e.Actor] == st.Self() {
				stamp = e.Stamp
			}
		}
	}
	if stamp == 0 {
		c.t.Fatalf("%s: write %s not in its delta", nd.name, key)
	}
	c.hist.Add(history.Write{Node: nd.name, Key: key, Value: val, Deleted: del, Stamp: stamp, Actor: nd.name, Gen: st.Self().Gen})
}

func (nd *simNode) Receive(now time.Time, from netip.AddrPort, payload any) {
	if _, ok := payload.([]wire.Message); ok && nd.sw != nil {
		nd.sw.Receive(now, from, payload)
		return
	}
	if m, ok := payload.(deltaMsg); ok {
		rd, _ := nd.eng.Receive(replica.KindStoreDelta, m.b, replica.ViaPacket, now)
		nd.send(rd)
	}
}

func (nd *simNode) Serve(now time.Time, from netip.AddrPort, req any) (any, int) {
	switch m := req.(type) {
	case []wire.Message:
		if nd.sw != nil {
			return nd.sw.Serve(now, from, req)
		}
	case pullReq:
		page, more, err := nd.eng.Answer(nil, m.digest, now)
		if err != nil {
			nd.c.t.Fatalf("%s: answer: %v", nd.name, err)
		}
		return pageResp{page: page, more: more}, len(page)
	case digestReq:
		d := nd.eng.AppendDigest(nil)
		return digestResp{digest: d}, len(d)
	case pushPage:
		if err := nd.eng.Apply(m.page, now); err != nil {
			nd.c.t.Fatalf("%s: apply page: %v", nd.name, err)
		}
		return pushAck{}, 1
	}
	return nil, 0
}

func (nd *simNode) open(now time.Time, req any, size int) {
	nd.stream++
	nd.host.Open(nd.stream, nd.peer, req, size, now.Add(simStepTimeout))
}

func (nd *simNode) StreamDone(now time.Time, id uint64, resp any, err error) {
	if id&myStream == 0 {
		if nd.sw != nil {
			nd.sw.StreamDone(now, id, resp, err)
		}
		return
	}
	if id != nd.stream || nd.phase == 0 {
		return
	}
	if err != nil {
		nd.exchangeDone(now, err)
		return
	}
	switch m := resp.(type) {
	case pageResp:
		if err := nd.eng.Apply(m.page, now); err != nil {
			nd.c.t.Fatalf("%s: apply page: %v", nd.name, err)
		}
		nd.pages++
		if m.more && nd.pages < nd.eng.Config().MaxPages {
			d := nd.eng.AppendDigest(nil)
			nd.open(now, pullReq{digest: d}, len(d))
			return
		}
		nd.phase, nd.pages = 2, 0
		nd.open(now, digestReq{}, 1)
	case digestResp:
		page, more, err := nd.eng.Answer(nil, m.digest, now)
		if err != nil {
			nd.c.t.Fatalf("%s: answer: %v", nd.name, err)
		}
		nd.pages++
		if !more || nd.pages >= nd.eng.Config().MaxPages {
			nd.phase = 3 // the last push
		}
		nd.open(now, pushPage{page: page}, len(page))
	case pushAck:
		if nd.phase == 3 {
			nd.exchangeDone(now, nil)
			return
		}
		nd.open(now, digestReq{}, 1)
	}
}

func (nd *simNode) Tick(now time.Time) {
	if nd.sw != nil {
		if next := nd.sw.Next(); !next.IsZero() && !now.Before(next) {
			nd.sw.Tick(now)
		}
	}
	if now.Before(nd.nextTick) {
		return
	}
	nd.eng.SetMembers(nd.members())
	rd := nd.eng.Tick(now)
	nd.nextTick = rd.Next
	nd.collected += rd.Collected
	if rd.Exchange.Name != "" {
		// The core chose the peer and the time; the simulation runs the
		// exchange's steps as node does over a stream.
		nd.peer = nd.c.net.Addr(nd.c.byNam[rd.Exchange.Name])
		nd.exch = rd.Exchange
		nd.phase, nd.pages = 1, 0
		d := nd.eng.AppendDigest(nil)
		nd.open(now, pullReq{digest: d}, len(d))
	}
}

// exchangeDone ends the exchange in progress and reports it to the core.
func (nd *simNode) exchangeDone(now time.Time, err error) {
	nd.phase = 0
	nd.eng.ExchangeDone(nd.exch, err, now)
	if !now.Before(nd.nextTick) {
		return
	}
	nd.nextTick = now // the core may want the next exchange already
}

// send does what the core asked: packets to the members named, gossip
// through the member's swim core. The scenarios' clusters are small, so
// dissemination is eager and deltas fit in packets.
func (nd *simNode) send(rd replica.Ready) {
	for _, m := range rd.Messages {
		switch m.Via {
		case replica.ViaGossip:
			if nd.sw == nil {
				nd.c.t.Fatalf("%s: gossip without swim", nd.name)
			}
			_ = nd.sw.Core.Broadcast(wire.Data{Kind: m.Kind, Payload: m.Payload})
			nd.sw.Flush()
		default:
			nd.host.Send(nd.c.net.Addr(nd.c.byNam[m.To.Name]), deltaMsg{b: m.Payload}, len(m.Payload))
		}
	}
}

func (nd *simNode) Next() time.Time {
	next := nd.nextTick
	if nd.sw != nil {
		if sn := nd.sw.Next(); !sn.IsZero() && sn.Before(next) {
			next = sn
		}
	}
	return next
}

// setView schedules node i's view of node j to become live (or not) at t.
func (c *cluster) setView(i, j int, live bool, t time.Time) {
	c.net.At(t, func() {
		v := &c.nodes[i].views[j] // node i may have restarted since
		if v.live != live {
			v.live, v.since = live, t
		}
	})
}

// restart takes node i down with a snapshot of its store, and brings it
// back after down as the next generation restored from it (node's
// --data-dir restart: snapshot on leave, restore at start, new generation).
// Membership is scripted only: members keep seeing it alive, and learn its
// new generation from its digests.
func (c *cluster) restart(i int, down time.Duration) {
	old := c.nodes[i]
	if !c.net.Up(i) {
		return
	}
	snap := old.eng.Store().AppendSnapshot(nil)
	c.net.Crash(i)
	c.net.At(c.net.Now().Add(down), func() {
		self := old.eng.Store().Self()
		st, err := store.New(store.Config{Actor: store.Actor{Name: self.Name, Gen: self.Gen + 1}})
		if err != nil {
			c.t.Fatal(err)
		}
		if err := st.Restore(snap); err != nil {
			c.t.Fatalf("%s: restore: %v", self.Name, err)
		}
		now := c.net.Now()
		nd := &simNode{
			id: i, name: old.name, c: c, host: old.host, rng: old.rng,
			eng:      replica.New(st, nil, old.eng.Config()),
			views:    slices.Clone(old.views),
			stream:   myStream,
			nextTick: now.Add(time.Duration(50+old.rng.IntN(450)) * time.Millisecond),
		}
		nd.eng.Bootstrap() // it joins again
		c.nodes[i] = nd
		c.net.Restart(i, nd)
	})
}

// scenario is one run: a partition into two sides at cutAt for cutFor,
// writes and deletes on both sides during it.
type scenario struct {
	nodes   int
	side    []int // the minority side
	cutAt   time.Duration
	cutFor  time.Duration
	writes  int // per node, during the cut
	shared  int // keys written on both sides
	quietly time.Duration
	// restarts are graceful restarts with a data directory: node i
	// snapshots its store and goes down at at, and comes back down later
	// as the next generation restored from that snapshot.
	restarts []restart
}

type restart struct {
	node     int
	at, down time.Duration
}

func randomScenario(r *rand.Rand) scenario {
	sc := scenario{nodes: 3 + r.IntN(3), writes: 3 + r.IntN(8), shared: 1 + r.IntN(3), quietly: 3 * time.Minute}
	perm := r.Perm(sc.nodes)
	sc.side = perm[:1+r.IntN((sc.nodes-1)/2)]
	if r.IntN(2) == 0 {
		sc.cutAt = 500*time.Millisecond + time.Duration(r.Int64N(int64(1500*time.Millisecond)))
	} else {
		sc.cutAt = 15*time.Second + time.Duration(r.Int64N(int64(30*time.Second)))
	}
	sc.cutFor = 15*time.Second + time.Duration(r.Int64N(int64(60*time.Second)))
	return sc
}

// run plays sc and returns the violations of the history rules.
func (c *cluster) run(sc scenario) []history.Violation {
	r := c.net.Rand()
	var a, b []int
	for i := range c.nodes {
		if slices.Contains(sc.side, i) {
			b = append(b, i)
		} else {
			a = append(a, i)
		}
	}
	start := c.net.Now()
	cut, heal := start.Add(sc.cutAt), start.Add(sc.cutAt+sc.cutFor)
	// A few writes before the cut, one of them deleted during it.
	for i := range c.nodes {
		at := start.Add(time.Duration(r.Int64N(int64(sc.cutAt))))
		c.net.At(at, func() { c.nodes[i].write(fmt.Sprintf("pre-%d", i), false) })
	}
	c.net.At(cut, func() { c.net.Partition(a, b) })
	for _, x := range a {
		if c.nodes[x].sw != nil {
			break // swim finds out for itself
		}
		for _, y := range b {
			for _, p := range [][2]int{{x, y}, {y, x}} {
				c.setView(p[0], p[1], false, cut.Add(2*time.Second+time.Duration(r.Int64N(int64(6*time.Second)))))
				c.setView(p[0], p[1], true, heal.Add(200*time.Millisecond+time.Duration(r.Int64N(int64(3*time.Second)))))
			}
		}
	}
	c.net.At(heal, func() { c.net.Heal() })
	for _, rs := range sc.restarts {
		c.net.At(start.Add(rs.at), func() { c.restart(rs.node, rs.down) })
	}
	during := func() time.Time { return cut.Add(time.Duration(r.Int64N(int64(sc.cutFor - time.Second)))) }
	for i := range c.nodes {
		for k := range sc.writes {
			key := fmt.Sprintf("k-%d-%d", i, k)
			c.net.At(during(), func() { c.nodes[i].write(key, false) })
		}
		// Delete a key of the node's own, and one written before the cut.
		c.net.At(during(), func() { c.nodes[i].write(fmt.Sprintf("k-%d-0", i), true) })
		c.net.At(during(), func() { c.nodes[i].write(fmt.Sprintf("pre-%d", r.IntN(len(c.nodes))), true) })
	}
	// Shared keys: written on one side, then 1 s later on the other
	// (either may be a delete), so the later write must win everywhere; some
	// were written before the cut, so a delete removes a key both sides held.
	for k := range sc.shared {
		key := fmt.Sprintf("same-%d", k)
		t1 := during()
		x, y := a[r.IntN(len(a))], b[r.IntN(len(b))]
		if r.IntN(2) == 0 {
			x, y = y, x
		}
		delX, delY := r.IntN(4) == 0, r.IntN(3) == 0
		if r.IntN(2) == 0 {
			c.net.At(start.Add(time.Duration(r.Int64N(int64(sc.cutAt)))), func() { c.nodes[x].write(key, false) })
		}
		c.net.At(t1, func() { c.nodes[x].write(key, delX) })
		c.net.At(t1.Add(time.Second), func() { c.nodes[y].write(key, delY) })
	}
	c.net.RunUntil(heal.Add(sc.quietly))
	final := map[string]map[string]string{}
	for _, nd := range c.nodes {
		kv := map[string]string{}
		for _, e := range nd.eng.Store().List(simNS, "") {
			kv[e.Key] = e.Value
		}
		final[nd.name] = kv
	}
	vs := c.hist.Check(final)
	// Healed and quiet for minutes: every tombstone has been collected.
	// Within the horizon no floor covers a dot some member lacks, so no
	// store ever had to resynchronise.
	for _, nd := range c.nodes {
		st := nd.eng.Store().Stats()
		if st.Tombstones != 0 {
			vs = append(vs, history.Violation{Node: nd.name, Rule: "uncollected", Want: "0 tombstones", Got: fmt.Sprint(st.Tombstones)})
		}
		if st.Resyncs != 0 && sc.cutFor < nd.eng.Config().Horizon {
			vs = append(vs, history.Violation{Node: nd.name, Rule: "resynced", Want: "0 resyncs", Got: fmt.Sprint(st.Resyncs)})
		}
	}
	return vs
}

func runSeed(t testing.TB, seed uint64, withSwim bool) (scenario, *cluster, []history.Violation) {
	r := rand.New(rand.NewPCG(seed, 1))
	sc := randomScenario(r)
	c := newCluster(t, seed, sc.nodes, 0, withSwim)
	return sc, c, c.run(sc)
}

// TestPartitionHealLosesNothing: after random partitions early and late in
// a cluster's life, with writes and deletes on both sides, and a heal, every
// acknowledged write survives on every node unless a greater write or delete
// of its key superseded it, no deleted key comes back, and every tombstone
// is collected. Membership is scripted.
func TestPartitionHealLosesNothing(t *testing.T) {
	seeds := *simSeeds
	if testing.Short() || raceEnabled && !flagSet("replica.seeds") {
		seeds = min(seeds, 60)
	}
	runSeeds(t, seeds, false)
}

// TestPartitionHealLosesNothingSwim is the same with membership from real
// swim cores.
func TestPartitionHealLosesNothingSwim(t *testing.T) {
	seeds := *simSwimSeeds
	if testing.Short() || raceEnabled && !flagSet("replica.swim-seeds") {
		seeds = min(seeds, 10)
	}
	runSeeds(t, seeds, true)
}

// flagSet reports whether the named flag was given on the command line.
func flagSet(name string) bool {
	set := false
	flag.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

// TestPartitionHealWithRestarts adds one or two graceful restarts with a
// data directory (scripted membership) anywhere in the run, partition and
// heal included: a restored replica is a new generation whose context
// starts from its snapshot.
func TestPartitionHealWithRestarts(t *testing.T) {
	seeds := *simSeeds
	if testing.Short() || raceEnabled && !flagSet("replica.seeds") {
		seeds = min(seeds, 60)
	}
	first := uint64(1)
	if *simSeed >= 0 {
		first, seeds = uint64(*simSeed), 1
	}
	var failed []uint64
	writes := 0
	for seed := first; seed < first+uint64(seeds); seed++ {
		sc := randomScenario(rand.New(rand.NewPCG(seed, 1)))
		r := rand.New(rand.NewPCG(seed, 2))
		for range 1 + r.IntN(2) {
			sc.restarts = append(sc.restarts, restart{
				node: r.IntN(sc.nodes),
				at:   time.Duration(r.Int64N(int64(sc.cutAt + sc.cutFor + 30*time.Second))),
				down: time.Second + time.Duration(r.Int64N(int64(4*time.Second))),
			})
		}
		c := newCluster(t, seed, sc.nodes, 0, false)
		vs := c.run(sc)
		writes += c.hist.Len()
		if len(vs) == 0 {
			continue
		}
		failed = append(failed, seed)
		if len(failed) <= 5 || *simSeed >= 0 {
			t.Errorf("seed %d (%d nodes, minority %v, cut at %v for %v, restarts %+v): %d violations; first: %v",
				seed, sc.nodes, sc.side, sc.cutAt, sc.cutFor, sc.restarts, len(vs), vs[0])
		}
	}
	t.Logf("%d seeds from %d, %d acknowledged writes checked, %d seeds failed: %v", seeds, first, writes, len(failed), failed)
}

func runSeeds(t *testing.T, seeds int, withSwim bool) {
	first := uint64(1)
	if *simSeed >= 0 {
		first, seeds = uint64(*simSeed), 1
	}
	var failed []uint64
	writes := 0
	for seed := first; seed < first+uint64(seeds); seed++ {
		sc, c, vs := runSeed(t, seed, withSwim)
		writes += c.hist.Len()
		if len(vs) == 0 {
			continue
		}
		failed = append(failed, seed)
		if len(failed) <= 5 || *simSeed >= 0 {
			var resyncs, collected []uint64
			for _, nd := range c.nodes {
				resyncs = append(resyncs, nd.eng.Store().Stats().Resyncs)
				collected = append(collected, nd.eng.Store().Stats().Collected)
			}
			t.Errorf("seed %d (%d nodes, minority %v, cut at %v for %v): %d violations; resyncs %v, collected %v; first: %v",
				seed, sc.nodes, sc.side, sc.cutAt, sc.cutFor, len(vs), resyncs, collected, vs[0])
		}
	}
	t.Logf("%d seeds from %d, %d acknowledged writes checked, %d seeds failed: %v", seeds, first, writes, len(failed), failed)
}

var simPastHorizon = flag.Int("replica.past-horizon-seeds", 50, "seeds of the partitions that outlast the collection horizon")

// TestPartitionPastHorizon plays partitions that outlast a 20 s collection
// horizon. Each side then collects without the other and, on the heal,
// resynchronises against the other's floor. What it must still do: no key
// deleted on one side comes back unless the other side wrote it during the
// cut (a write concurrent with the delete: the "same-" keys); a key written
// before the cut and deleted during it, or written and deleted on one side,
// stays deleted. What it may not do yet, the documented limit (store/doc.go,
// "Limits"): writes acknowledged during the cut can be lost, and concurrent
// writes can come back; those are counted and logged for whoever lifts it.
func TestPartitionPastHorizon(t *testing.T) {
	seeds := *simPastHorizon
	if testing.Short() || raceEnabled && !flagSet("replica.past-horizon-seeds") {
		seeds = min(seeds, 10)
	}
	failed, rules := 0, map[string]int{}
	for seed := uint64(1); seed <= uint64(seeds); seed++ {
		r := rand.New(rand.NewPCG(seed, 1))
		sc := randomScenario(r)
		sc.cutFor = 60*time.Second + time.Duration(r.Int64N(int64(60*time.Second)))
		c := newCluster(t, seed, sc.nodes, 20*time.Second, false)
		vs := c.run(sc)
		if len(vs) > 0 {
			failed++
		}
		for _, v := range vs {
			rules[v.Rule]++
			if v.Rule == "resurrected" && !strings.HasPrefix(v.Key, "same-") {
				t.Errorf("seed %d: a delete not concurrent with any write was undone: %v", seed, v)
			}
		}
	}
	t.Logf("limit: %d of %d seeds broke a rule; violations by rule: %v", failed, seeds, rules)
}
