package swim

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// Sentinel errors of the core's inputs.
var (
	// ErrTooLarge reports metadata or a payload above its bound.
	ErrTooLarge = errors.New("swim: too large")
	// ErrQueueFull reports a broadcast dropped because the queue is full of
	// more urgent news.
	ErrQueueFull = errors.New("swim: broadcast queue full")
	// ErrLeft reports an input that is not allowed after Leave.
	ErrLeft = errors.New("swim: left the cluster")
)

// Core is the SWIM + Lifeguard state machine of one member. It does no I/O,
// starts no goroutines and never reads the clock: every method takes the
// current time, and everything the core wants done accumulates until Ready
// drains it. The runner must call Tick at or soon after Ready().Next.
//
// A Core is not safe for concurrent use; the runner serialises calls.
type Core struct {
	cfg Config
	rng *rand.Rand

	self     *member
	members  map[string]*member
	order    []*member // probe order, self excluded; dead members stay until reaped
	probeAt  int       // next index in order
	live     int       // members alive or suspect, self excluded
	dead     int       // members dead (not left), self excluded
	suspects []*member // members with a running suspicion timer

	queue      queue
	forwarded  map[string]news // accusations about unknown members already forwarded
	health     int
	consecFail int
	rtt        rttEstimator // over all peers: how slow are we?

	seq     uint32
	pending []pend
	probe   probe
	check   linkCheck
	// probeFirst names a suspect to probe next, before a verdict.
	probeFirst string
	// blamed counts, per relay, the missing nacks that raised our health
	// and may be given back (see absolve).
	blamed map[string]int
	// silentHealth is the health before the current run of probes that
	// got no answer at all (see answered).
	silentHealth int
	// silentTrusted records whether this node trusted itself (defended
	// its membership) when that run began.
	silentTrusted bool
	// silenceHeard is when the first packet or stream from another member
	// arrived during that run (zero if none yet).
	silenceHeard time.Time
	// silenceTotal records whether nothing at all arrived during that run
	// until it had made this node distrust itself.
	silenceTotal bool
	// silenceOpen is set while that run lasts: from a probe that got no
	// answer at all to the next answer. A pause, which resets the count of
	// failed probes, does not end it.
	silenceOpen bool
	// sweepLeft is the number of members the discovery sweep in progress
	// has still to visit (0: no sweep), nextSweep when it pings its next
	// batch (see startSweep).
	sweepLeft int
	nextSweep time.Time
	// vindicator is the member that last confirmed one of our suspicions
	// (see vindicate).
	vindicator string
	// vindicated is when another member last confirmed a suspicion this
	// node raised: evidence that this node judges its peers correctly.
	vindicated time.Time
	// corrected limits the direct corrections sent to members that accuse
	// this node with stale news: accuser -> when.
	corrected map[string]time.Time
	// told limits the verdicts told to members that accuse a member this
	// node holds dead: member and sender -> when (see tellVerdict).
	told map[string]time.Time

	streamID uint64
	streams  []streamState

	seeds      []netip.AddrPort
	joining    bool
	joinFlight int

	leaving   bool
	refutes   [maxRefutes]time.Time // times of the last refutations, a ring
	unhealthy bool                  // not defending itself; see defending
	withheld  bool                  // a refutation was withheld while unhealthy
	// distrustSince is when this node last stopped defending itself.
	distrustSince time.Time

	lastInput     time.Time
	nextProbe     time.Time
	nextGossip    time.Time
	nextPushPull  time.Time
	nextReconnect time.Time
	nextRedial    time.Time
	nextReap      time.Time

	out   Ready
	stats Stats
}

// NewCore returns the core of member self, which starts alone, alive at
// incarnation 0 of generation self.Gen. rng is owned by the core from now on.
func NewCore(cfg Config, self Identity, rng *rand.Rand, now time.Time) (*Core, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	var errs []error
	if self.Name == "" || len(self.Name) > 255 || strings.ContainsRune(self.Name, 0) {
		errs = append(errs, fmt.Errorf("%w: member name %q must have 1 to 255 bytes and no NUL", ErrConfig, self.Name))
	}
	if !self.Addr.IsValid() {
		errs = append(errs, fmt.Errorf("%w: member address %v is not valid", ErrConfig, self.Addr))
	}
	if rng == nil {
		errs = append(errs, fmt.Errorf("%w: nil random source", ErrConfig))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	c := &Core{
		cfg:       cfg,
		rng:       rng,
		members:   make(map[string]*member),
		queue:     newQueue(),
		forwarded: make(map[string]news),
		corrected: make(map[string]time.Time),
		told:      make(map[string]time.Time),
		blamed:    make(map[string]int),
		lastInput: now,
	}
	c.self = &member{Member: Member{Name: self.Name, Gen: self.Gen, Addr: self.Addr, State: StateAlive, Since: now}, probeIdx: -1}
	c.members[self.Name] = c.self
	c.nextProbe = now.Add(time.Duration(rng.Int64N(int64(cfg.ProbeInterval))))
	c.nextGossip = now.Add(cfg.GossipInterval)
	c.nextPushPull = now.Add(cfg.PushPullInterval/2 + time.Duration(rng.Int64N(int64(cfg.PushPullInterval))))
	c.nextReconnect = now.Add(cfg.ReconnectInterval/2 + time.Duration(rng.Int64N(int64(cfg.ReconnectInterval))))
	c.nextRedial = now.Add(time.Duration(rng.Int64N(int64(cfg.redialInterval(1)))))
	c.nextReap = now.Add(c.reapEvery())
	c.broadcastSelf()
	return c, nil
}

// Self returns this member's current record.
func (c *Core) Self() Member { return c.self.Member }

// Members returns a snapshot of every member known, self included, dead and
// left tombstones included, sorted by name.
func (c *Core) Members() []Member {
	ms := make([]Member, 0, len(c.order)+1)
	ms = append(ms, c.self.Member)
	for _, m := range c.order {
		ms = append(ms, m.Member)
	}
	slices.SortFunc(ms, func(a, b Member) int { return strings.Compare(a.Name, b.Name) })
	return ms
}

// Member returns the record of the named member.
func (c *Core) Member(name string) (Member, bool) {
	m, ok := c.members[name]
	if !ok {
		return Member{}, false
	}
	return m.Member, true
}

// NumAlive returns the number of members alive or suspect, self included.
func (c *Core) NumAlive() int { return c.live + 1 }

// Health returns the local health multiplier (0 is healthy).
func (c *Core) Health() int { return c.health }

// Stats returns the core's counters.
func (c *Core) Stats() Stats { return c.stats }

// Pending returns the number of broadcasts still queued; after Leave, the
// runner waits for it to reach zero (or its timeout) before stopping.
func (c *Core) Pending() int { return c.queue.len() }

// Joined reports whether a join has succeeded, or no join is in progress.
func (c *Core) Joined() bool { return !c.joining }

// Ready drains everything the core wants done. The returned slices belong
// to the caller.
func (c *Core) Ready() Ready {
	r := c.out
	r.Next = c.next()
	c.out = Ready{}
	return r
}

// SetMeta replaces the local metadata and broadcasts it. b is copied.
func (c *Core) SetMeta(now time.Time, b []byte) error {
	c.observe(now)
	if len(b) > c.cfg.MaxMetaBytes {
		return fmt.Errorf("%w: metadata of %d bytes, limit %d", ErrTooLarge, len(b), c.cfg.MaxMetaBytes)
	}
	if c.leaving {
		return ErrLeft
	}
	c.self.Meta = slices.Clone(b)
	c.self.Incarnation++
	c.broadcastSelf()
	return nil
}

// Broadcast queues a payload of the layer above for gossip, after member
// news. d.Payload is kept until sent; the caller must not modify it.
func (c *Core) Broadcast(d wire.Data) error {
	n := MessageSize(&d)
	if n > c.cfg.packetBudget() {
		return fmt.Errorf("%w: payload needs %d bytes, packet budget %d", ErrTooLarge, n, c.cfg.packetBudget())
	}
	if !c.queue.push("", &d, n, prioData, c.cfg.MaxBroadcasts) {
		c.stats.BroadcastsDropped++
		return ErrQueueFull
	}
	return nil
}

// Join makes one join attempt through seeds (resolved addresses; the
// runner resolves names): it push-pulls with every seed at once, unless the
// exchanges of an attempt are still in flight. The core keeps no retry
// schedule of its own: the runner retries (swimnet's Runner.Join backs off
// and resolves the names again), and until a join succeeds the reconnect
// loop's push-pulls with a seed (every ReconnectInterval while this member
// is alone) count as join attempts.
func (c *Core) Join(now time.Time, seeds []netip.AddrPort) {
	c.observe(now)
	c.seeds = slices.DeleteFunc(slices.Clone(seeds), func(s netip.AddrPort) bool { return s == c.self.Addr })
	if len(c.seeds) == 0 {
		return // the first member: nothing to join
	}
	c.joining = true
	if c.joinFlight == 0 {
		for _, s := range c.seeds {
			if c.startPushPull(now, s, true) {
				c.joinFlight++
			}
		}
	}
}

// SetSeeds replaces the seed addresses used by the reconnect loop, without
// starting an attempt; the runner calls it after re-resolving seed names.
func (c *Core) SetSeeds(seeds []netip.AddrPort) { c.seeds = slices.Clone(seeds) }

// Leave announces a graceful departure: this member is marked left, a
// broadcast says so, and probing stops. The runner keeps calling Tick and
// sending until Pending is zero or its leave timeout passes, then stops.
func (c *Core) Leave(now time.Time) {
	c.observe(now)
	if c.leaving {
		return
	}
	c.leaving = true
	c.joining = false
	c.self.Incarnation++
	c.self.State = StateLeft
	c.self.Since = now
	c.probe = probe{}
	d := &wire.Dead{Name: c.self.Name, Gen: c.self.Gen, Incarnation: c.self.Incarnation, From: c.self.Name, Left: true}
	c.enqueue(c.self.Name, d, prioAlive)
}

// Tick runs the timers that are due at now: probes, gossip, push-pull,
// reconnect, suspicion timeouts and reaping.
func (c *Core) Tick(now time.Time) {
	c.observe(now)
	c.expirePending(now)
	if !c.leaving {
		c.tickProbe(now)
		c.tickSweep(now)
		c.tickSuspicions(now)
		c.defending() // report changes of trust as they happen
	}
	if !now.Before(c.nextGossip) {
		c.nextGossip = now.Add(c.cfg.GossipInterval)
		c.gossip()
	}
	if c.leaving {
		return
	}
	if !now.Before(c.nextPushPull) {
		c.nextPushPull = now.Add(c.cfg.pushPullInterval(c.live + 1))
		if m := c.randomMember(func(m *member) bool { return m.State == StateAlive }); m != nil {
			c.startPushPull(now, m.Addr, false)
		}
	}
	if !now.Before(c.nextReconnect) {
		c.nextReconnect = now.Add(c.cfg.ReconnectInterval)
		c.reconnect(now)
	}
	if !now.Before(c.nextRedial) {
		c.nextRedial = now.Add(c.cfg.redialInterval(c.live + 1))
		c.redial(now)
	}
	if !now.Before(c.nextReap) {
		c.nextReap = now.Add(c.reapEvery())
		c.reap(now)
	}
}

func (c *Core) reapEvery() time.Duration { return max(c.cfg.ReapTimeout/8, time.Second) }

// maxRedials bounds the re-dials of dead members in flight at once;
// redialQuiet is the time, in probe intervals, a member must have been dead
// before it is re-dialled.
const (
	maxRedials  = 2
	redialQuiet = 3
)

// reconnect re-dials the seeds while isolated or alone.
func (c *Core) reconnect(now time.Time) {
	if len(c.seeds) > 0 && (c.live == 0 || c.isolated()) {
		if c.startPushPull(now, c.seeds[c.rng.IntN(len(c.seeds))], c.joining) && c.joining {
			c.joinFlight++
		}
	}
}

// redial push-pulls with a random dead member, so that the halves of a
// healed partition merge again. At most maxRedials are in flight, each with
// a deadline of two re-dial intervals: a dial across a partition (or to a
// vanished host) hangs until its deadline, and re-dials must neither fill
// the stream slots that TCP pings and push-pulls need nor, still hanging
// when the partition heals, hold back the re-dial that would find the
// other side.
func (c *Core) redial(now time.Time) {
	inFlight := 0
	for _, s := range c.streams {
		if s.redial {
			inFlight++
		}
	}
	if c.dead == 0 || inFlight >= maxRedials {
		return
	}
	// A member declared dead moments ago is left alone for a while: if it
	// is alive but on a bad link, it has not yet noticed that it is the
	// problem, and a re-dial would hand it the channel to refute its death,
	// revive it and have it removed a second time.
	quiet := redialQuiet * c.cfg.ProbeInterval
	if m := c.randomMember(func(m *member) bool { return m.State == StateDead && now.Sub(m.Since) >= quiet }); m != nil {
		c.startPushPullKind(now, m.Addr, false, true)
	}
}

// reap removes tombstones older than ReapTimeout.
func (c *Core) reap(now time.Time) {
	for i := 0; i < len(c.order); {
		m := c.order[i]
		if (m.State == StateDead || m.State == StateLeft) && now.Sub(m.Since) >= c.cfg.ReapTimeout {
			c.removeMember(m)
			c.stats.Reaped++
			continue
		}
		i++
	}
}

// next returns when the core next needs Tick.
func (c *Core) next() time.Time {
	t := c.nextGossip
	earliest := func(u time.Time) {
		if !u.IsZero() && u.Before(t) {
			t = u
		}
	}
	for _, p := range c.pending {
		earliest(p.expires)
		earliest(p.nackAt)
	}
	if !c.leaving {
		if c.probe.active {
			if !c.probe.indirect {
				earliest(c.probe.timeoutAt)
			} else if c.probe.repingAt.Before(c.probe.endAt) {
				earliest(c.probe.repingAt)
			}
			earliest(c.probe.endAt)
		} else {
			earliest(c.nextProbe)
		}
		if c.sweepLeft > 0 {
			earliest(c.nextSweep)
		}
		for _, m := range c.suspects {
			earliest(m.susp.deadline)
			earliest(m.susp.askAt)
		}
		earliest(c.nextPushPull)
		earliest(c.nextReconnect)
		earliest(c.nextRedial)
		earliest(c.nextReap)
	}
	return t
}

// addHealth changes the local health multiplier by d within [0, HealthMax].
func (c *Core) addHealth(d int) {
	if c.cfg.DisableHealth {
		return
	}
	c.health = min(max(c.health+d, 0), c.cfg.HealthMax)
}

// scale multiplies d by the local health multiplier.
func (c *Core) scale(d time.Duration) time.Duration { return d * time.Duration(1+c.health) }

// randomMember returns a random member other than self that satisfies ok,
// or nil after a bounded number of tries.
func (c *Core) randomMember(ok func(*member) bool) *member {
	n := len(c.order)
	if n == 0 {
		return nil
	}
	for range 3 * 8 {
		if m := c.order[c.rng.IntN(n)]; ok(m) {
			return m
		}
	}
	// Rare members among many: fall back to a scan from a random start.
	start := c.rng.IntN(n)
	for i := range n {
		if m := c.order[(start+i)%n]; ok(m) {
			return m
		}
	}
	return nil
}

// randomMembers appends to dst up to k distinct random members other than
// self and except that satisfy ok.
func (c *Core) randomMembers(dst []*member, k int, except string, ok func(*member) bool) []*member {
	n := len(c.order)
	if n == 0 || k <= 0 {
		return dst
	}
	base := len(dst)
	pick := func(m *member) {
		if m.Name == except || !ok(m) || slices.Contains(dst[base:], m) {
			return
		}
		dst = append(dst, m)
	}
	for try := 0; try < 4*k && len(dst)-base < k; try++ {
		pick(c.order[c.rng.IntN(n)])
	}
	if len(dst)-base < k && c.live <= 4*k {
		start := c.rng.IntN(n)
		for i := 0; i < n && len(dst)-base < k; i++ {
			pick(c.order[(start+i)%n])
		}
	}
	return dst
}

// send queues a packet to to with primary message msg (and extra, if not
// nil), filled with broadcasts up to the packet budget.
func (c *Core) send(to netip.AddrPort, msg, extra wire.Message) {
	c.sendFill(to, msg, extra, true)
}

// sendFill is send, with the broadcasts left out unless fill is set.
func (c *Core) sendFill(to netip.AddrPort, msg, extra wire.Message, fill bool) {
	msgs := make([]wire.Message, 1, 4)
	msgs[0] = msg
	budget := c.cfg.packetBudget() - MessageSize(msg)
	if extra != nil {
		if s := MessageSize(extra); s <= budget {
			msgs = append(msgs, extra)
			budget -= s
		}
	}
	if fill {
		msgs, _ = c.queue.fill(msgs, budget, c.cfg.retransmitLimit(c.live+1))
	}
	c.out.Packets = append(c.out.Packets, Packet{To: to, Msgs: msgs})
}

// gossip sends queued broadcasts to a few random live members.
func (c *Core) gossip() {
	if c.live == 0 {
		return
	}
	// GossipNodes alive members, and one suspect on top: when many members
	// have just failed, copies sent to suspects are mostly lost (and each
	// counts against the news's retransmit limit), so the suspects must not
	// crowd out the survivors; but a suspect on a lossy link needs every
	// chance to hear its accusation before the verdict, to refute it in time.
	// The suspect is told of its own accusation in every round, whether or
	// not the news is still queued: the copies gossiped when it was raised
	// may all have gone to members that could not pass them on (the other
	// side of a partition, or members that failed together).
	if len(c.suspects) > 0 && !c.leaving {
		m := c.suspects[c.rng.IntN(len(c.suspects))]
		c.sendFill(m.Addr, &wire.Suspect{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, From: c.self.Name}, nil, true)
	}
	if c.queue.len() == 0 {
		return
	}
	var buf [8]*member
	k := min(c.cfg.GossipNodes, len(buf))
	ts := c.randomMembers(buf[:0], k, "", func(m *member) bool { return m.State == StateAlive })
	limit := c.cfg.retransmitLimit(c.live + 1)
	for _, m := range ts {
		if c.queue.len() == 0 {
			break
		}
		msgs, _ := c.queue.fill(make([]wire.Message, 0, 8), c.cfg.packetBudget(), limit)
		if len(msgs) > 0 {
			c.out.Packets = append(c.out.Packets, Packet{To: m.Addr, Msgs: msgs})
		}
	}
}

// enqueue queues a broadcast, counting a drop.
func (c *Core) enqueue(key string, msg wire.Message, prio int) {
	if !c.queue.push(key, msg, MessageSize(msg), prio, c.cfg.MaxBroadcasts) {
		c.stats.BroadcastsDropped++
	}
}

// broadcastSelf queues an alive message for this member.
func (c *Core) broadcastSelf() {
	s := c.self
	c.enqueue(s.Name, &wire.Alive{Name: s.Name, Gen: s.Gen, Incarnation: s.Incarnation, Addr: s.Addr, Meta: s.Meta}, prioAlive)
}

// broadcastRefutation queues this member's alive message as a refutation:
// sent refuteRetransmitMult times as often as other news. A node that is
// accused is often one whose packets get lost; a refutation that runs out
// of tries before a copy escapes reaches the cluster only after the death
// verdict, revives the node and gets it removed a second time.
func (c *Core) broadcastRefutation() {
	c.broadcastSelf()
	c.queue.boost(c.self.Name, refuteRetransmitMult)
}

// refuteRetransmitMult multiplies the retransmit limit of refutations.
const refuteRetransmitMult = 3

func (c *Core) emit(kind EventKind, now time.Time, m *member, verdict bool) {
	c.out.Events = append(c.out.Events, Event{Kind: kind, At: now, Member: m.Member, Verdict: verdict})
}
