package swim

import (
	"errors"
	"net/netip"
	"slices"
	"time"

	"github.com/meshnode/meshnode/wire"
)

// ErrUnknownStream reports a StreamDone for an ID the core is not waiting
// for (already done, or never started).
var ErrUnknownStream = errors.New("swim: unknown stream")

// streamKind says what a stream exchange is for.
type streamKind uint8

const (
	streamPushPull streamKind = iota + 1 // digest out, differing records back
	streamPush                           // records the peer asked for; one way
	streamTCPPing                        // fallback ping
)

type streamState struct {
	id     uint64
	to     netip.AddrPort
	kind   streamKind
	join   bool
	redial bool   // push-pull with a dead member (see Core.redial)
	target string // TCP ping: the member probed
	gen    uint64
	seq    uint32
}

// stateKind is the Data.Kind of the layer above's state in a push-pull
// stream. Inside a stream it has no other meaning.
const stateKind = 0

func (c *Core) openStream(now time.Time, to netip.AddrPort, st streamState, msgs []wire.Message, deadline time.Time, oneWay bool) bool {
	if len(c.streams) >= c.cfg.MaxStreams {
		c.stats.StreamsDropped++
		return false
	}
	c.streamID++
	st.id = c.streamID
	st.to = to
	c.streams = append(c.streams, st)
	c.out.Streams = append(c.out.Streams, Stream{ID: st.id, To: to, Msgs: msgs, Deadline: deadline, OneWay: oneWay})
	return true
}

func (c *Core) startTCPPing(now time.Time, m *member, seq uint32, deadline time.Time) {
	ping := &wire.Ping{Seq: seq, Target: m.Name, SourceName: c.self.Name, SourceAddr: c.self.Addr}
	c.openStream(now, m.Addr, streamState{kind: streamTCPPing, target: m.Name, gen: m.Gen, seq: seq}, []wire.Message{ping}, deadline, false)
}

// selfRecord returns this member's full record.
func (c *Core) selfRecord() wire.MemberRecord { return record(c.self) }

func record(m *member) wire.MemberRecord {
	return wire.MemberRecord{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, State: wire.MemberState(m.State), Addr: m.Addr, Meta: m.Meta}
}

// localState returns the layer above's state as a Data message, or nil.
func (c *Core) localState(join bool) *wire.Data {
	if c.cfg.State == nil {
		return nil
	}
	if b := c.cfg.State.LocalState(join); len(b) > 0 {
		return &wire.Data{Kind: stateKind, Payload: b}
	}
	return nil
}

// startPushPull opens a push-pull with to: our own record, a digest of
// everything we know, and the layer above's state. An isolated node leaves
// itself out: it does not defend its membership until it is healthy again.
func (c *Core) startPushPull(now time.Time, to netip.AddrPort, join bool) bool {
	return c.startPushPullKind(now, to, join, false)
}

func (c *Core) startPushPullKind(now time.Time, to netip.AddrPort, join, redial bool) bool {
	defend := join || c.defending()
	d := &wire.Digest{Entries: make([]wire.DigestEntry, 0, len(c.order)+1)}
	recs := &wire.Members{}
	if defend {
		d.Entries = append(d.Entries, digestEntry(c.self))
		recs.Records = append(recs.Records, c.selfRecord())
	}
	for _, m := range c.order {
		d.Entries = append(d.Entries, digestEntry(m))
	}
	pp := &wire.PushPull{Join: join, Members: uint32(len(d.Entries))}
	msgs := []wire.Message{pp, recs, d}
	if s := c.localState(join); s != nil {
		pp.StateBytes = uint32(len(s.Payload))
		msgs = append(msgs, s)
	}
	deadline := c.cfg.StreamTimeout
	if redial {
		deadline = min(deadline, 2*c.cfg.redialInterval(c.live+1))
	}
	return c.openStream(now, to, streamState{kind: streamPushPull, join: join, redial: redial}, msgs, now.Add(deadline), false)
}

func digestEntry(m *member) wire.DigestEntry {
	return wire.DigestEntry{Name: m.Name, Gen: m.Gen, Incarnation: m.Incarnation, State: wire.MemberState(m.State)}
}

// HandleStream serves a stream exchange opened by a peer at from: req are
// the messages it sent (borrowed: the core copies what it keeps), the result
// the messages to answer with (nil for none). A TCP ping is answered with an
// ack; a push-pull with the records the peer lacks or holds older, a digest
// of the records we want from it (the peer sends them in a one-way stream),
// and our state.
func (c *Core) HandleStream(now time.Time, from netip.AddrPort, req []wire.Message) []wire.Message {
	c.observe(now)
	if c.leaving || len(req) == 0 {
		return nil
	}
	c.heard(now)
	switch m := req[0].(type) {
	case *wire.Ping:
		if m.Target != "" && m.Target != c.self.Name {
			c.stats.WrongTarget++
			return nil
		}
		return []wire.Message{&wire.Ack{Seq: m.Seq}}
	case *wire.PushPull:
		return c.servePushPull(now, from, m, req[1:])
	}
	return nil
}

func (c *Core) servePushPull(now time.Time, from netip.AddrPort, pp *wire.PushPull, req []wire.Message) []wire.Message {
	var digest *wire.Digest
	for _, m := range req {
		switch m := m.(type) {
		case *wire.Members:
			c.mergeRecords(now, m.Records)
		case *wire.Digest:
			digest = m
		case *wire.Data:
			if m.Kind == stateKind {
				c.out.States = append(c.out.States, RemoteState{From: from, Join: pp.Join, State: slices.Clone(m.Payload)})
			}
		}
	}
	if digest == nil {
		return nil // a one-way push
	}
	entries := digest.Entries
	if len(entries) > c.cfg.MaxMembers {
		entries = entries[:c.cfg.MaxMembers]
	}
	seen := make(map[string]struct{}, len(entries))
	want := &wire.Digest{}
	for _, e := range entries {
		seen[e.Name] = struct{}{}
		if c.mergeDigestEntry(now, e) {
			want.Entries = append(want.Entries, e)
		}
	}
	// After merging, send what the peer lacks or holds older.
	recs := &wire.Members{}
	add := func(m *member) {
		recs.Records = append(recs.Records, record(m))
	}
	idx := make(map[string]int, len(entries))
	for i, e := range entries {
		idx[e.Name] = i
	}
	members := c.order
	if c.defending() {
		members = append([]*member{c.self}, c.order...)
	}
	for _, m := range members {
		i, ok := idx[m.Name]
		if !ok {
			if m.State == StateAlive || m.State == StateSuspect {
				add(m)
			}
			continue
		}
		e := entries[i]
		if newer(m.Gen, m.Incarnation, m.State, e.Gen, e.Incarnation, State(e.State)) {
			add(m)
		}
	}
	rpp := &wire.PushPull{Join: pp.Join, Members: uint32(c.live + 1)}
	resp := []wire.Message{rpp, recs, want}
	if s := c.localState(pp.Join); s != nil {
		rpp.StateBytes = uint32(len(s.Payload))
		resp = append(resp, s)
	}
	return resp
}

// mergeDigestEntry applies what a digest entry alone says and reports
// whether the full record is wanted.
func (c *Core) mergeDigestEntry(now time.Time, e wire.DigestEntry) bool {
	s := State(e.State)
	if e.Name == c.self.Name {
		if e.Gen == c.self.Gen && s != StateAlive && e.Incarnation >= c.self.Incarnation && !c.leaving {
			c.refute(e.Incarnation)
		}
		return false
	}
	m := c.members[e.Name]
	if m == nil {
		return s == StateAlive || s == StateSuspect
	}
	if !newer(e.Gen, e.Incarnation, s, m.Gen, m.Incarnation, m.State) {
		return false
	}
	switch {
	case s == StateAlive || e.Gen > m.Gen && s == StateSuspect:
		return true
	case s == StateSuspect:
		c.applySuspect(now, wire.Suspect{Name: e.Name, Gen: e.Gen, Incarnation: e.Incarnation})
	default:
		c.applyDead(now, wire.Dead{Name: e.Name, Gen: e.Gen, Incarnation: e.Incarnation, Left: s == StateLeft}, true)
	}
	return false
}

// mergeRecords applies full member records from a push-pull.
func (c *Core) mergeRecords(now time.Time, rs []wire.MemberRecord) {
	if len(rs) > c.cfg.MaxMembers {
		rs = rs[:c.cfg.MaxMembers]
	}
	for _, r := range rs {
		switch State(r.State) {
		case StateAlive:
			c.applyAlive(now, wire.Alive{Name: r.Name, Gen: r.Gen, Incarnation: r.Incarnation, Addr: r.Addr, Meta: r.Meta})
		case StateSuspect:
			if r.Name != c.self.Name {
				c.applyAlive(now, wire.Alive{Name: r.Name, Gen: r.Gen, Incarnation: r.Incarnation, Addr: r.Addr, Meta: r.Meta})
			}
			c.applySuspect(now, wire.Suspect{Name: r.Name, Gen: r.Gen, Incarnation: r.Incarnation})
		case StateDead, StateLeft:
			c.applyDead(now, wire.Dead{Name: r.Name, Gen: r.Gen, Incarnation: r.Incarnation, Left: State(r.State) == StateLeft}, true)
		}
	}
}

// StreamDone hands the core the outcome of a stream it asked for: the
// peer's reply messages, or the error that ended the exchange (dial
// failure, deadline, reset).
// resp is borrowed: the core copies what it keeps.
func (c *Core) StreamDone(now time.Time, id uint64, resp []wire.Message, err error) error {
	c.observe(now)
	i := slices.IndexFunc(c.streams, func(s streamState) bool { return s.id == id })
	if i < 0 {
		return ErrUnknownStream
	}
	st := c.streams[i]
	c.streams = slices.Delete(c.streams, i, i+1)
	if st.join {
		c.joinFlight--
	}
	if err != nil || c.leaving {
		if p := &c.probe; st.kind == streamTCPPing && p.active && p.seq2 == st.seq {
			p.tcpFailed = true
		}
		return nil
	}
	switch st.kind {
	case streamTCPPing:
		if len(resp) > 0 {
			if a, ok := resp[0].(*wire.Ack); ok && a.Seq == st.seq {
				if p := &c.probe; p.active && p.seq2 == st.seq {
					p.tcpAcked = true
				}
			}
		}
	case streamPushPull:
		c.pushPullDone(now, st, resp)
	}
	return nil
}

func (c *Core) pushPullDone(now time.Time, st streamState, resp []wire.Message) {
	if len(resp) == 0 {
		return
	}
	pp, ok := resp[0].(*wire.PushPull)
	if !ok {
		return
	}
	if st.join && c.joining {
		c.joining = false
		// Members that joined at the same time as us reached the seed after
		// our exchange and reach us by gossip only; one more push-pull soon,
		// with a random member, catches any that gossip missed.
		c.nextPushPull = now.Add(2*c.cfg.ProbeInterval + time.Duration(c.rng.Int64N(int64(3*c.cfg.ProbeInterval))))
	}
	var want []wire.DigestEntry
	for _, m := range resp[1:] {
		switch m := m.(type) {
		case *wire.Members:
			c.mergeRecords(now, m.Records)
		case *wire.Digest:
			want = m.Entries
		case *wire.Data:
			if m.Kind == stateKind {
				c.out.States = append(c.out.States, RemoteState{From: st.to, Join: pp.Join, State: slices.Clone(m.Payload)})
			}
		}
	}
	if len(want) == 0 {
		return
	}
	recs := &wire.Members{}
	for _, e := range want {
		if len(recs.Records) >= c.cfg.MaxMembers {
			break
		}
		if m := c.members[e.Name]; m != nil {
			recs.Records = append(recs.Records, record(m))
		}
	}
	if len(recs.Records) > 0 {
		c.openStream(now, st.to, streamState{kind: streamPush}, []wire.Message{&wire.PushPull{}, recs}, now.Add(c.cfg.StreamTimeout), true)
	}
}
