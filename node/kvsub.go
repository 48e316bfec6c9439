package node

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
)

// EventStream is one subscription to an engine's KV event stream.
type EventStream interface {
	// Recv blocks until the next message; it fails once the stream is
	// broken or closed.
	Recv() (kvevents.Message, error)
	// Close ends the subscription and makes a blocked Recv return.
	Close() error
}

// Bounds of the subscription runner.
const (
	// kvBackoffMin and kvBackoffMax bound the wait between attempts to
	// reach an engine.
	kvBackoffMin = 100 * time.Millisecond
	kvBackoffMax = 5 * time.Second
	// kvReplayTimeout bounds one replay: a replay endpoint that answers
	// slower is treated as absent (clear and rebuild).
	kvReplayTimeout = 10 * time.Second
	// kvReconcileInterval: the owners of every event-streaming worker are
	// recomputed this often, and at once on a membership or worker change.
	kvReconcileInterval = time.Second
)

// Subscription states, as /v1/status shows them.
const (
	kvStateConnecting = "connecting"
	kvStateReplaying  = "replaying"
	kvStateStreaming  = "streaming"
	kvStateBackoff    = "backoff"
	// kvStateDropped: unreachable past the grace period, the worker's
	// event-sourced pages were dropped; still trying.
	kvStateDropped = "dropped"
)

// KVSubscription is one event-streaming worker as /v1/status shows it:
// who subscribes and, on the subscribing node, how the stream goes.
type KVSubscription struct {
	Worker         string   `json:"worker"`
	Endpoint       string   `json:"endpoint"`
	ReplayEndpoint string   `json:"replay_endpoint,omitempty"`
	Owners         []string `json:"owners"`
	// Subscribed: this node follows the stream; the fields below are set
	// only then.
	Subscribed bool   `json:"subscribed"`
	State      string `json:"state,omitempty"`
	// LastSeq is the sequence number of the last batch applied (-1 none).
	LastSeq int64 `json:"last_seq"`
	// SeqBehind is how many batches the live stream is ahead of what was
	// applied (during a replay).
	SeqBehind int64 `json:"seq_behind"`
	// LagSeconds is the time between the last applied batch's engine
	// timestamp and its application here (clocks of two hosts: a skew
	// shows in it).
	LagSeconds float64 `json:"lag_seconds"`
	// LastBatch is when the last batch was applied.
	LastBatch *time.Time `json:"last_batch,omitempty"`
	Gen       uint32     `json:"gen"`
	Error     string     `json:"error,omitempty"`
}

// kvSub is a subscription this node runs.
type kvSub struct {
	w      Worker // the record it was started for
	cancel context.CancelFunc
	done   chan struct{}
	// status is guarded by kvSubs.mu.
	status KVSubscription
}

// kvSubs is the node's set of subscriptions and the owners it computed.
type kvSubs struct {
	mu   sync.Mutex
	subs map[string]*kvSub // by worker ID
	// owners holds every event-streaming worker's owners and endpoints,
	// by worker ID.
	owners map[string]KVSubscription
	// stopping holds, by worker ID, the end of a subscription stopped
	// and not yet started again: its successor waits for it, so that two
	// appliers of one worker never run at once on this node.
	stopping map[string]chan struct{}
	wake     chan struct{}
}

func newKVSubs() *kvSubs {
	return &kvSubs{subs: map[string]*kvSub{}, owners: map[string]KVSubscription{}, stopping: map[string]chan struct{}{},
		wake: make(chan struct{}, 1)}
}

// kick asks the loop to recompute owners now.
func (k *kvSubs) kick() {
	select {
	case k.wake <- struct{}{}:
	default:
	}
}

// kvLoop keeps this node's subscriptions in step with the owners of the
// event-streaming workers, and expires pending pages. It ends with the
// node's context; the subscriptions, in the node's group too, end with it.
func (n *Node) kvLoop() {
	t := time.NewTicker(kvReconcileInterval)
	defer t.Stop()
	for {
		n.reconcileKV()
		n.expirePending(time.Now())
		select {
		case <-n.ctx.Done():
			return
		case <-n.kv.wake:
		case <-t.C:
		}
	}
}

// kvWorkers returns the workers with an event stream.
func (s *state) kvWorkers() []Worker {
	s.mu.Lock()
	all := s.store.List(nsWorkers, "")
	s.mu.Unlock()
	var out []Worker
	for _, kv := range all {
		var w Worker
		if json.Unmarshal([]byte(kv.Value), &w) == nil && w.KVEvents != nil {
			out = append(out, w)
		}
	}
	return out
}

// sameStream reports whether a subscription started for a still follows b.
func sameStream(a, b Worker) bool {
	return a.Model == b.Model && a.Epoch == b.Epoch && *a.KVEvents == *b.KVEvents
}

// reconcileKV computes the owners of every event-streaming worker over the
// live members and starts or stops this node's subscriptions to match.
func (n *Node) reconcileKV() {
	live := n.liveMembers()
	names := make([]string, len(live))
	for i, m := range live {
		names[i] = m.Name
	}
	ws := n.st.kvWorkers()
	// A node joining (or not yet synced after its join) sees too few
	// members and would own too much; a leaving node hands its streams
	// over. Neither subscribes.
	active := !n.leaving.Load() && n.synced.Load() && (n.mem == nil || !n.joinWant.Load() || n.mem.Joined())
	k := n.kv
	k.mu.Lock()
	defer k.mu.Unlock()
	seen := make(map[string]bool, len(ws))
	for _, w := range ws {
		seen[w.ID] = true
		owners := Owners(w.ID, names, n.cfg.KVSubscribers)
		if old, ok := k.owners[w.ID]; ok && !slices.Equal(old.Owners, owners) {
			n.met.kvOwnerChanges.Inc()
		}
		k.owners[w.ID] = KVSubscription{Worker: w.ID, Endpoint: w.KVEvents.Endpoint, ReplayEndpoint: w.KVEvents.ReplayEndpoint,
			Owners: owners, LastSeq: -1}
		mine := active && slices.Contains(owners, n.name)
		sub := k.subs[w.ID]
		if sub != nil && (!mine || !sameStream(sub.w, w)) {
			n.stopKVSubLocked(w.ID, sub)
			sub = nil
		}
		if sub == nil && mine {
			n.startKVSubLocked(w)
		}
		if sub := k.subs[w.ID]; sub != nil {
			sub.status.Owners = owners
		}
	}
	for id, sub := range k.subs {
		if !seen[id] {
			n.stopKVSubLocked(id, sub)
		}
	}
	for id := range k.owners {
		if !seen[id] {
			delete(k.owners, id)
		}
	}
	for id, done := range k.stopping {
		select {
		case <-done:
			delete(k.stopping, id)
		default:
		}
	}
}

func (n *Node) startKVSubLocked(w Worker) {
	ctx, cancel := context.WithCancel(n.ctx)
	sub := &kvSub{w: w, cancel: cancel, done: make(chan struct{}),
		status: KVSubscription{Worker: w.ID, Endpoint: w.KVEvents.Endpoint, ReplayEndpoint: w.KVEvents.ReplayEndpoint,
			Subscribed: true, State: kvStateConnecting, LastSeq: -1}}
	n.kv.subs[w.ID] = sub
	prev := n.kv.stopping[w.ID]
	delete(n.kv.stopping, w.ID)
	n.log.Info("kv events: subscribing", "worker", w.ID, "endpoint", w.KVEvents.Endpoint)
	n.g.Go(func() error {
		defer close(sub.done)
		defer cancel()
		if prev != nil {
			select {
			case <-prev:
			case <-ctx.Done():
				return nil
			}
		}
		n.runKVSub(ctx, sub)
		return nil
	})
}

func (n *Node) stopKVSubLocked(id string, sub *kvSub) {
	sub.cancel()
	delete(n.kv.subs, id)
	n.kv.stopping[id] = sub.done
	n.log.Info("kv events: unsubscribing", "worker", id)
}

// setKVState records a subscription's state and error.
func (n *Node) setKVState(sub *kvSub, state string, err error) {
	n.kv.mu.Lock()
	sub.status.State = state
	sub.status.Error = ""
	if err != nil {
		sub.status.Error = err.Error()
	}
	n.kv.mu.Unlock()
}

// runKVSub follows one engine's stream until ctx ends: it subscribes,
// catches up (replay, or a clear when the engine offers none), applies the
// live stream, fills gaps, probes a silent engine, and reconnects with
// backoff when the stream breaks; past the grace period unreachable, it
// drops the worker's event-sourced pages.
//
// Unreachable means: no dial succeeded, no message arrived and no probe
// was answered for the grace period. A silent stream alone is not a sign
// of death (an idle engine publishes nothing), so while a stream is silent
// for kvProbeInterval the engine's replay endpoint is asked for what
// followed the last batch applied: a live engine answers at once (with
// the batches the stream lost, which are applied). Without a replay
// endpoint nothing can be asked, and only failed dials count.
func (n *Node) runKVSub(ctx context.Context, sub *kvSub) {
	w := sub.w
	a := NewKVApplier(n.evIx, w.ID, w.Model, w.Epoch)
	canReplay := w.KVEvents.ReplayEndpoint != ""
	grace := n.cfg.KVGrace.D()
	backoff := kvBackoffMin
	lastUp := time.Now() // the engine counts as reachable when the subscription starts
	dropped := false
	// drop clears the worker's event-sourced pages once it has been
	// unreachable past the grace period.
	drop := func(why string) {
		if dropped || time.Since(lastUp) <= grace {
			return
		}
		n.applyKV(sub, a, a.Clear(time.Now()))
		dropped = true
		n.log.Warn("kv events: engine unreachable past the grace period; its event-sourced pages are dropped",
			"worker", w.ID, "endpoint", w.KVEvents.Endpoint, "grace", grace, "why", why)
	}
	for ctx.Err() == nil {
		if !dropped {
			n.setKVState(sub, kvStateConnecting, nil)
		}
		s, err := n.cfg.KVEventsDial(ctx, w.KVEvents.Endpoint, w.KVEvents.Topic)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.met.kvConnectErrors.Inc()
			drop("dial failed")
			state := kvStateBackoff
			if dropped {
				state = kvStateDropped
			}
			n.setKVState(sub, state, err)
			if !sleepCtx(ctx, jitter(backoff)) {
				return
			}
			backoff = min(2*backoff, kvBackoffMax)
			continue
		}
		if dropped {
			// Back: the replay (or live events) rebuild the pages.
			lastUp, dropped = time.Now(), false
		}
		from, replay, res := a.Begin(time.Now(), canReplay)
		n.applyKV(sub, a, res)
		if replay {
			n.replayKV(ctx, sub, a, from)
		}
		n.setKVState(sub, kvStateStreaming, nil)
		got, err := n.streamKV(ctx, sub, a, s, &lastUp)
		if ctx.Err() != nil {
			return
		}
		switch {
		case errors.Is(err, errKVSilent):
			drop("silent, and the replay endpoint does not answer")
			n.setKVState(sub, kvStateDropped, err)
		case !got:
			// The stream ended before its first message (a handshake
			// and then a frame over the cap, say): a failed attempt,
			// retried with a growing backoff, not every 100 ms.
			n.met.kvConnectErrors.Inc()
			lastUp = time.Now()
			n.setKVState(sub, kvStateBackoff, err)
			if ok, held := n.rejects.allow("kv-stream/" + w.ID); ok {
				n.log.Warn("kv events: stream ended before its first message", "worker", w.ID,
					"endpoint", w.KVEvents.Endpoint, "err", err, "suppressed", held)
			}
		default:
			n.setKVState(sub, kvStateBackoff, err)
			n.log.Debug("kv events: stream broken", "worker", w.ID, "err", err)
			lastUp = time.Now()
		}
		if got {
			backoff = kvBackoffMin
		}
		if !sleepCtx(ctx, jitter(backoff)) {
			return
		}
		if !got {
			backoff = min(2*backoff, kvBackoffMax)
		}
	}
}

// errKVSilent ends a stream whose engine stayed silent and unanswering
// past the grace period.
var errKVSilent = errors.New("node: engine silent and its replay endpoint unreachable past the grace period")

// kvRecv is one result of an EventStream's Recv.
type kvRecv struct {
	m   kvevents.Message
	err error
}

// kvProbeInterval is how long a stream may stay silent before its engine
// is probed: a third of the grace period, at most 5 s, so that an engine
// that stops is seen unreachable soon after the grace period.
func kvProbeInterval(grace time.Duration) time.Duration { return min(grace/3, 5*time.Second) }

// kvProbeTimeout bounds the wait for a probe's first answer (a dial, the
// ZMTP handshake and the reply): half the grace period, at most
// kvevents.HandshakeTimeout. Once batches flow, the replay gets
// kvReplayTimeout.
func kvProbeTimeout(grace time.Duration) time.Duration {
	return min(grace/2, kvevents.HandshakeTimeout)
}

// streamKV applies s's messages until it breaks or ctx ends, probing the
// engine through its replay endpoint while the stream is silent. It
// reports whether a valid message arrived, and why it ended: errKVSilent
// when the engine stayed silent and unanswering past the grace period
// since *lastUp, which it advances on each sign of life.
func (n *Node) streamKV(ctx context.Context, sub *kvSub, a *KVApplier, s EventStream, lastUp *time.Time) (got bool, err error) {
	w := sub.w
	canReplay := w.KVEvents.ReplayEndpoint != ""
	grace := n.cfg.KVGrace.D()
	rctx, cancel := context.WithCancel(ctx)
	stop := context.AfterFunc(rctx, func() { s.Close() })
	msgs := make(chan kvRecv)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			m, err := s.Recv()
			select {
			case msgs <- kvRecv{m, err}:
			case <-rctx.Done():
				return
			}
			if err != nil && !errors.Is(err, kvevents.ErrDecode) {
				return
			}
		}
	}()
	defer func() {
		cancel()
		stop()
		s.Close()
		<-readerDone
	}()
	var probe <-chan time.Time
	var probeT *time.Timer
	if canReplay {
		probeT = time.NewTimer(kvProbeInterval(grace))
		defer probeT.Stop()
		probe = probeT.C
	}
	for {
		select {
		case <-ctx.Done():
			return got, ctx.Err()
		case <-probe:
			if n.probeKV(ctx, sub, a) {
				*lastUp = time.Now()
				n.setKVState(sub, kvStateStreaming, nil)
			} else if ctx.Err() == nil && time.Since(*lastUp) > grace {
				return got, errKVSilent
			}
			probeT.Reset(kvProbeInterval(grace))
		case r := <-msgs:
			if errors.Is(r.err, kvevents.ErrDecode) {
				// One message of another shape: the stream goes on, and
				// the hole shows as a gap.
				n.met.kvDecodeErrors.Inc()
				continue
			}
			if r.err != nil {
				return got, r.err
			}
			got = true
			*lastUp = time.Now()
			if probeT != nil {
				probeT.Reset(kvProbeInterval(grace))
			}
			n.noteLive(sub, r.m.Seq)
			res := a.Apply(r.m, *lastUp, canReplay)
			n.applyKV(sub, a, res)
			if res.Replay {
				n.replayKV(ctx, sub, a, res.ReplayFrom)
				n.applyKV(sub, a, a.ApplyReplayed(r.m, time.Now()))
				n.setKVState(sub, kvStateStreaming, nil)
			}
		}
	}
}

// probeKV asks a silent engine's replay endpoint for the batches after the
// last one applied, and applies what comes: a live engine answers at once
// (the end marker, or batches the live stream lost). It reports whether
// the engine answered within kvProbeTimeout.
func (n *Node) probeKV(ctx context.Context, sub *kvSub, a *KVApplier) bool {
	var from int64
	if seq, ok := a.Applied(); ok {
		from = seq + 1
	}
	pctx, cancel := context.WithTimeout(ctx, kvReplayTimeout)
	defer cancel()
	var answered atomic.Bool
	t := time.AfterFunc(kvProbeTimeout(n.cfg.KVGrace.D()), func() {
		if !answered.Load() {
			cancel()
		}
	})
	defer t.Stop()
	var replayed int
	err := n.cfg.KVEventsReplay(pctx, sub.w.KVEvents.ReplayEndpoint, from, func(m kvevents.Message) error {
		answered.Store(true)
		if m.Seq < 0 {
			return nil // the end marker
		}
		replayed++
		n.applyKV(sub, a, a.ApplyReplayed(m, time.Now()))
		return nil
	})
	if ctx.Err() != nil {
		return false
	}
	ok := err == nil || answered.Load()
	if ok {
		n.met.kvProbes.WithLabelValues("ok").Inc()
		if replayed > 0 {
			n.log.Info("kv events: a probe of a silent stream found batches it had lost", "worker", sub.w.ID,
				"from", from, "batches", replayed)
		}
		return true
	}
	n.met.kvProbes.WithLabelValues("failed").Inc()
	n.setKVState(sub, kvStateStreaming, fmt.Errorf("node: probe of %s: %w", sub.w.KVEvents.ReplayEndpoint, err))
	n.log.Debug("kv events: probe failed", "worker", sub.w.ID, "endpoint", sub.w.KVEvents.ReplayEndpoint, "err", err)
	return false
}

// replayKV replays the engine's kept batches from seq from into a; when
// the replay fails, the worker's event-sourced pages are cleared and live
// events rebuild them.
func (n *Node) replayKV(ctx context.Context, sub *kvSub, a *KVApplier, from int64) {
	n.setKVState(sub, kvStateReplaying, nil)
	rctx, cancel := context.WithTimeout(ctx, kvReplayTimeout)
	defer cancel()
	err := n.cfg.KVEventsReplay(rctx, sub.w.KVEvents.ReplayEndpoint, from, func(m kvevents.Message) error {
		if m.Seq < 0 {
			return nil // the end marker
		}
		n.applyKV(sub, a, a.ApplyReplayed(m, time.Now()))
		return nil
	})
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		n.met.kvReplays.WithLabelValues("failed").Inc()
		n.log.Warn("kv events: replay failed; the worker's event-sourced pages are dropped and rebuilt from live events",
			"worker", sub.w.ID, "endpoint", sub.w.KVEvents.ReplayEndpoint, "from", from, "err", err)
		n.applyKV(sub, a, a.Clear(time.Now()))
		return
	}
	n.met.kvReplays.WithLabelValues("ok").Inc()
}

// noteLive records the live stream's newest sequence number.
func (n *Node) noteLive(sub *kvSub, seq int64) {
	n.kv.mu.Lock()
	if sub.status.LastSeq >= 0 {
		sub.status.SeqBehind = max(0, seq-sub.status.LastSeq-1)
	}
	n.kv.mu.Unlock()
}

// applyKV disseminates an applier's deltas and counts and records what it
// did.
func (n *Node) applyKV(sub *kvSub, a *KVApplier, res KVResult) {
	if len(res.Deltas) > 0 {
		n.st.addDeltas(res.Deltas)
	}
	n.met.countKV(res)
	if res.Err != nil {
		if errors.Is(res.Err, ErrKVBlockSize) {
			if ok, held := n.rejects.allow("kv-block-size/" + sub.w.ID); ok {
				n.log.Error("kv events: stored blocks ignored", "worker", sub.w.ID, "err", res.Err, "suppressed", held)
			}
		} else if ok, held := n.rejects.allow("kv-error/" + sub.w.ID); ok {
			n.log.Warn("kv events: batch not applied", "worker", sub.w.ID, "status", res.Status.String(), "err", res.Err, "suppressed", held)
		}
	}
	now := time.Now()
	n.kv.mu.Lock()
	defer n.kv.mu.Unlock()
	sub.status.Gen = a.Gen()
	if seq, ok := a.Applied(); ok {
		sub.status.LastSeq = seq
	}
	switch res.Status {
	case KVApplied, KVResync, KVRestart:
		if res.TS > 0 {
			ts := time.Unix(0, int64(res.TS*1e9))
			sub.status.LagSeconds = now.Sub(ts).Seconds()
			n.met.kvLag.Observe(max(0, sub.status.LagSeconds))
			sub.status.LastBatch = &now
		}
	}
}

// addDeltas records local index changes for dissemination, under one lock.
func (s *state) addDeltas(ds []radix.Delta) {
	s.mu.Lock()
	for _, d := range ds {
		s.batch.Add(d)
	}
	s.mu.Unlock()
	s.kick()
}

// KVSubscriptions returns every event-streaming worker with its owners,
// and the state of the streams this node follows.
func (n *Node) KVSubscriptions() []KVSubscription {
	n.kv.mu.Lock()
	defer n.kv.mu.Unlock()
	out := make([]KVSubscription, 0, len(n.kv.owners))
	for id, o := range n.kv.owners {
		if sub := n.kv.subs[id]; sub != nil {
			o = sub.status
		}
		o.Owners = slices.Clone(n.kv.owners[id].Owners)
		out = append(out, o)
	}
	slices.SortFunc(out, func(a, b KVSubscription) int { return cmp.Compare(a.Worker, b.Worker) })
	return out
}

// sleepCtx waits d or until ctx ends; it reports whether d passed.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// jitter spreads d by up to a quarter either way, so that subscribers of
// a restarted engine do not retry in step.
func jitter(d time.Duration) time.Duration {
	return d - d/4 + rand.N(d/2+1)
}

// expirePending drops pending pages older than the pending timeout: their
// prefill has not been confirmed by the engine's events in time. Every
// replica expires by the same stamps.
func (n *Node) expirePending(now time.Time) {
	n.st.ix.ExpirePending(indexStamp(now.Add(-n.cfg.PendingTimeout.D())))
}
