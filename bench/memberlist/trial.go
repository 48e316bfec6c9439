package memberlist

import (
	"fmt"
	"math"
	"strings"
	"sync"
	"time"
)

// Plan bounds one trial: how long each phase may take and how much it
// does.
type Plan struct {
	// Settle is how long after the first node knows all N the holes are
	// counted (when bootstrap has not finished by then).
	Settle time.Duration
	// BootstrapLimit bounds the wait for every node to know all N; holes
	// still open then are reported as lasting at least this long.
	BootstrapLimit time.Duration
	// Broadcasts is the number of user broadcasts each node sends, all at
	// once. GossipLimit is the time given to gossip alone; RepairLimit
	// bounds the wait for the push-pull exchanges to repair what gossip
	// missed (make it longer than a scaled push-pull interval).
	Broadcasts               int
	GossipLimit, RepairLimit time.Duration
	// Quiet is the pause between the broadcasts and the idle measurement,
	// so that their retransmissions are over; Idle is the measured window,
	// which starts no earlier than IdleAfter from the nodes' start. A window
	// of one (scaled) push-pull interval that starts after every node's
	// first push-pull holds one push-pull per node, as the steady state
	// does. Zero Idle skips the measurement.
	Quiet, Idle, IdleAfter time.Duration
	// DetectLimit bounds the wait for every other node to mark the crashed
	// node dead.
	DetectLimit time.Duration
	// Poll is the pace at which membership views are sampled; it is the
	// resolution of the bootstrap, hole and detection times.
	Poll time.Duration
}

// Result is what one trial of one implementation measured. Durations are
// negative when the event did not happen within its limit.
type Result struct {
	N int
	// Bootstrap is the time from the joins' start until every node knew
	// all N.
	Bootstrap time.Duration
	// Holes is the number of pairs (a, b), a != b, where a did not know b
	// Settle after the first node knew all N; HoleLasted is how long after
	// that count the last hole closed (0 when there was none).
	Holes      int
	HoleLasted time.Duration
	// JoinErrors counts join calls that failed.
	JoinErrors int
	// Sent counts the broadcasts sent, SendErrors the ones refused;
	// ByGossip those that reached all N-1 other nodes within GossipLimit,
	// Reached those that did within RepairLimit.
	Sent, ByGossip, Reached, SendErrors int
	// Spread holds, for every broadcast that reached all, the time from
	// its send to its last delivery.
	Spread []time.Duration
	// Idle is the bytes the cluster sent during the idle window.
	Idle       bytes
	IdleWindow time.Duration
	// Detect is the time from the crash until every other node considered
	// the crashed node dead.
	Detect time.Duration
	// FalseDead counts pairs (a, b) of running nodes where a considered b
	// dead at the end of the trial.
	FalseDead int
}

// IdlePerNode returns the idle bytes sent per node per second.
func (r Result) IdlePerNode() float64 {
	if r.IdleWindow <= 0 || r.N == 0 {
		return 0
	}
	return float64(r.Idle.UDP+r.Idle.TCP) / float64(r.N) / r.IdleWindow.Seconds()
}

// impl names an implementation and how to start a cluster of it.
type impl struct {
	Name  string
	Start func(n int, s Settings, got *receipts) (cluster, error)
}

// impls are the two implementations compared, meshnode first.
var impls = []impl{
	{Name: "meshnode", Start: func(n int, s Settings, got *receipts) (cluster, error) {
		return newMeshnodeCluster(n, s, got)
	}},
	{Name: "memberlist", Start: func(n int, s Settings, got *receipts) (cluster, error) {
		return newMemberlistCluster(n, s, got)
	}},
}

// runTrial starts n nodes of im, measures every phase in order and stops
// them. An error means the harness could not run the trial; what the
// protocol did, good or bad, is in the Result.
func runTrial(im impl, n int, s Settings, p Plan) (Result, error) {
	got := &receipts{}
	c, err := im.Start(n, s, got)
	if err != nil {
		return Result{}, err
	}
	defer c.Close()
	started := time.Now()
	res := Result{N: n}
	bootstrap(c, p, &res)
	broadcast(c, got, p, &res)
	if p.Idle > 0 {
		idle(c, p, started, &res)
	}
	if err := crash(c, p, &res); err != nil {
		return res, err
	}
	return res, nil
}

// views returns every running node's view; nil for nodes in skip.
func views(c cluster, skip int) [][]bool {
	vs := make([][]bool, c.Size())
	for i := range vs {
		if i != skip {
			vs[i] = c.Alive(i)
		}
	}
	return vs
}

// holes counts the pairs (a, b) of nodes outside skip where a does not see
// b as a member, and reports whether some node sees all of them.
func holes(vs [][]bool, skip int) (count int, someFull bool) {
	for a, v := range vs {
		if a == skip {
			continue
		}
		missing := 0
		for b, ok := range v {
			if b != a && b != skip && !ok {
				missing++
			}
		}
		count += missing
		if missing == 0 {
			someFull = true
		}
	}
	return count, someFull
}

// bootstrap joins every node through node 0 at once and measures the time
// until all know all, and the holes left Settle after the first did.
func bootstrap(c cluster, p Plan, res *Result) {
	n := c.Size()
	start := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	for i := 1; i < n; i++ {
		wg.Go(func() {
			if err := c.Join(i); err != nil {
				mu.Lock()
				res.JoinErrors++
				mu.Unlock()
			}
		})
	}
	defer wg.Wait()

	res.Bootstrap = -1
	var firstFull, counted time.Time
	tick := time.NewTicker(p.Poll)
	defer tick.Stop()
	for {
		now := time.Now()
		h, someFull := holes(views(c, -1), -1)
		if h == 0 {
			res.Bootstrap = now.Sub(start)
			if !counted.IsZero() {
				res.HoleLasted = now.Sub(counted)
			}
			return
		}
		if someFull && firstFull.IsZero() {
			firstFull = now
		}
		if counted.IsZero() && (!firstFull.IsZero() && now.Sub(firstFull) >= p.Settle || now.Sub(start) >= p.BootstrapLimit) {
			counted, res.Holes = now, h
		}
		if now.Sub(start) >= p.BootstrapLimit+p.Settle && !counted.IsZero() {
			// Holes outlived the limit: report them as lasting at least
			// this long.
			res.HoleLasted = now.Sub(counted)
			return
		}
		<-tick.C
	}
}

// broadcastID names broadcast k of node i; the payload is padded to a fixed
// 32 bytes so both implementations carry the same user bytes.
func broadcastID(i, k int) string {
	id := fmt.Sprintf("b/%04d/%04d/", i, k)
	return id + strings.Repeat(".", max(0, 32-len(id)))
}

// broadcast makes every node send p.Broadcasts user broadcasts at once and
// waits until each reached all other nodes or RepairLimit passed, noting
// how many had by GossipLimit. The push-pull states carry the broadcasts
// only during this phase.
func broadcast(c cluster, got *receipts, p Plan, res *Result) {
	got.repair.Store(true)
	defer got.repair.Store(false)
	n := c.Size()
	type sent struct {
		from int
		id   string
		at   time.Time
	}
	var msgs []sent
	for k := range p.Broadcasts {
		for i := range n {
			id := broadcastID(i, k)
			at := time.Now()
			if err := c.Broadcast(i, []byte(id)); err != nil {
				res.SendErrors++
				continue
			}
			got.add(i, []byte(id), at)
			msgs = append(msgs, sent{from: i, id: id, at: at})
		}
	}
	res.Sent = n * p.Broadcasts
	start := time.Now()
	res.ByGossip = -1
	tick := time.NewTicker(p.Poll)
	defer tick.Stop()
	for {
		reached := 0
		var spread []time.Duration
		for _, m := range msgs {
			var last time.Time
			all := true
			for j := range n {
				if j == m.from {
					continue
				}
				t, ok := got.get(j, m.id)
				if !ok {
					all = false
					break
				}
				if t.After(last) {
					last = t
				}
			}
			if all {
				reached++
				spread = append(spread, last.Sub(m.at))
			}
		}
		elapsed := time.Since(start)
		if res.ByGossip < 0 && (reached == len(msgs) || elapsed >= p.GossipLimit) {
			res.ByGossip = reached
		}
		if reached == len(msgs) || elapsed >= p.RepairLimit {
			res.Reached, res.Spread = reached, spread
			return
		}
		<-tick.C
	}
}

// idle waits Quiet (and until IdleAfter from started), then counts the
// bytes sent during Idle. The waits are the measurement itself: real
// sockets, real time.
func idle(c cluster, p Plan, started time.Time, res *Result) {
	time.Sleep(max(p.Quiet, time.Until(started.Add(p.IdleAfter))))
	before, start := c.Bytes(), time.Now()
	time.Sleep(p.Idle)
	res.Idle, res.IdleWindow = c.Bytes().sub(before), time.Since(start)
}

// pushPullScaled is the push-pull interval at n members, scaled the same
// way by both implementations: one more interval for every doubling above
// 32 members.
func pushPullScaled(interval time.Duration, n int) time.Duration {
	if n <= 32 {
		return interval
	}
	return interval * time.Duration(1+math.Ceil(math.Log2(float64(n))-5))
}

// crash stops the last node without a leave and measures the time until
// every other node considers it dead.
func crash(c cluster, p Plan, res *Result) error {
	victim := c.Size() - 1
	start := time.Now()
	if err := c.Crash(victim); err != nil {
		return fmt.Errorf("crash node %d: %w", victim, err)
	}
	res.Detect = -1
	tick := time.NewTicker(p.Poll)
	defer tick.Stop()
	for {
		now := time.Now()
		seen := false
		for i := range victim {
			if c.Alive(i)[victim] {
				seen = true
				break
			}
		}
		if !seen {
			res.Detect = now.Sub(start)
			break
		}
		if now.Sub(start) >= p.DetectLimit {
			break
		}
		<-tick.C
	}
	res.FalseDead, _ = holes(views(c, victim), victim)
	return nil
}
