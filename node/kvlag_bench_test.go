package node

import (
	"context"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/meshnode/meshnode/internal/kvwork"
	"github.com/meshnode/meshnode/kvevents"
	"github.com/meshnode/meshnode/radix"
	"github.com/prometheus/client_golang/prometheus"
)

// The KV-event lag benchmarks (issue 12, item 9): 16 engines publish
// 100k blocks/s in total, one node subscribes to each, and each stored
// event's pages must become routable for its worker on every one of 8
// nodes. The lag of an event is the time from its publication to the
// moment the last node's index matches all its pages for the worker.
//
// The driver below is shared by the simulation (kvlag_sim_bench_test.go:
// virtual time, in-memory network and streams) and the loopback run
// (kvlag_loopback_bench_test.go: real clock, UDP/TCP and ZMQ on
// 127.0.0.1). It publishes each engine's steps on schedule, cuts every
// stored request into the index's pages, and polls every node's index for
// the events not yet routable everywhere.

const (
	lagModel = "llama"
	// lagStep is an engine's step: it publishes one batch per step, as
	// vLLM does (a step of a busy engine takes 10-50 ms).
	lagStep = 10 * time.Millisecond
)

// lagConfig is one lag run.
type lagConfig struct {
	Engines int
	// BlocksPerSecond is the rate of stored blocks of all engines.
	BlocksPerSecond float64
	// Run is how long the engines publish; Drain how long the driver then
	// waits for the last events to become routable.
	Run, Drain time.Duration
	// Poll is how often the driver looks at the indexes: the lags it
	// reports are late by up to this much.
	Poll     time.Duration
	Workload kvwork.Config
}

// lagEvent is one stored event of the workload.
type lagEvent struct {
	pages []uint64 // the prompt's pages up to the event's last block
	// evictedAt is the engine's step at which the event's last block is
	// evicted (-1: never in the run): from then on its prefix is not
	// whole in the engine, nor, rightly, in the index.
	evictedAt int
	at        time.Time // when it was published
	seen      []bool    // by node
	left      int       // nodes that do not route it yet
	done      bool
}

// lagStep is one engine step of the workload: a batch and the stored
// events in it.
type lagStepBatch struct {
	payload []byte
	blocks  int
	events  []*lagEvent
}

// lagWorkload generates the engines' steps of cfg up front, so that the
// run spends no time on them: what engine i publishes at its step k is
// steps[i][k].
func lagWorkload(tb testing.TB, cfg lagConfig, seed uint64, pageT int, nodes int) [][]lagStepBatch {
	tb.Helper()
	steps := int(cfg.Run / lagStep)
	perStep := cfg.BlocksPerSecond / float64(cfg.Engines) * lagStep.Seconds()
	out := make([][]lagStepBatch, cfg.Engines)
	var batch kvevents.Batch
	var stored []kvwork.Stored
	for i := range out {
		e, err := kvwork.NewEngine(cfg.Workload, uint64(i+1))
		if err != nil {
			tb.Fatal(err)
		}
		byLast := map[uint64][]*lagEvent{} // cached last blocks' events
		out[i] = make([]lagStepBatch, steps)
		for k := range steps {
			batch.Events, stored = batch.Events[:0], stored[:0]
			stored = e.Step(&batch, perStep, stored)
			for _, ev := range batch.Events {
				if ev.Kind != kvevents.KindBlockRemoved {
					continue
				}
				for _, h := range ev.BlockHashes {
					for _, le := range byLast[h] {
						le.evictedAt = k
					}
					delete(byLast, h)
				}
			}
			if len(batch.Events) == 0 {
				continue
			}
			payload, err := kvevents.AppendBatch(nil, &batch)
			if err != nil {
				tb.Fatal(err)
			}
			st := lagStepBatch{payload: payload}
			for _, s := range stored {
				le := &lagEvent{pages: radix.AppendTokenPages(nil, seed, pageT, s.Tokens), evictedAt: -1,
					seen: make([]bool, nodes), left: nodes}
				byLast[s.LastHash] = append(byLast[s.LastHash], le)
				st.events = append(st.events, le)
				st.blocks += s.Blocks
			}
			out[i][k] = st
		}
	}
	return out
}

// lagResult is what a run measured.
type lagResult struct {
	Lags []time.Duration // one per event routable everywhere, sorted
	// Events and Blocks are the stored events and blocks published,
	// Batches the batches.
	Events, Blocks, Batches int
	// Evicted: events whose blocks the engine evicted before every node
	// routed them (no lag measured: they are gone by design).
	Evicted int
	// Unresolved: events still not routable everywhere after the drain.
	Unresolved int
	// Publishing is how long publishing took; MaxBehind how late the
	// driver published a step at worst (a driver that cannot keep up).
	Publishing, MaxBehind time.Duration
	// Counters are lagCounters after the run.
	Counters map[string]float64
}

// Rate is the achieved rate of stored blocks.
func (r lagResult) Rate() float64 { return float64(r.Blocks) / r.Publishing.Seconds() }

// Quantile returns the lag at quantile q (0..1).
func (r lagResult) Quantile(q float64) time.Duration {
	if len(r.Lags) == 0 {
		return 0
	}
	i := int(math.Ceil(q*float64(len(r.Lags)))) - 1
	return r.Lags[min(max(i, 0), len(r.Lags)-1)]
}

// report records r on b.
func (r lagResult) report(b *testing.B) {
	ms := func(d time.Duration) float64 { return float64(d) / 1e6 }
	b.ReportMetric(ms(r.Quantile(0.5)), "p50-ms")
	b.ReportMetric(ms(r.Quantile(0.99)), "p99-ms")
	b.ReportMetric(ms(r.Quantile(1)), "max-ms")
	b.ReportMetric(r.Rate(), "blocks/s")
	b.ReportMetric(float64(len(r.Lags)), "events")
	b.ReportMetric(float64(r.Evicted), "evicted")
	b.ReportMetric(float64(r.Unresolved), "unresolved")
	b.ReportMetric(ms(r.MaxBehind), "behind-ms")
	b.ReportMetric(0, "ns/op") // one op is one whole run
}

func (r lagResult) String() string {
	return fmt.Sprintf("%d events (%d blocks, %d batches) at %.0f blocks/s: lag p50 %v p99 %v max %v; %d evicted first, %d unresolved; publishing %v behind at worst; counters over the nodes: %v",
		len(r.Lags), r.Blocks, r.Batches, r.Rate(), r.Quantile(0.5), r.Quantile(0.99), r.Quantile(1), r.Evicted, r.Unresolved, r.MaxBehind, r.Counters)
}

// lagWorker is engine i's worker ID.
func lagWorker(i int) string { return fmt.Sprintf("gpu-%02d", i) }

// registerLagWorkers registers one worker per endpoint on node 0 and
// waits until every node holds every record.
func registerLagWorkers(c *testCluster, endpoints []string) {
	c.t.Helper()
	for i, ep := range endpoints {
		c.must(0, "PUT", "/v1/workers/"+lagWorker(i), fmt.Sprintf(
			`{"url":"http://127.0.0.1:%d","model":%q,"kv_events":{"endpoint":%q}}`, 9000+i, lagModel, ep))
	}
	c.everywhere("the workers replicate", func(i int) error {
		if n := len(c.nodes[i].st.kvWorkers()); n != len(endpoints) {
			return fmt.Errorf("%d of %d workers", n, len(endpoints))
		}
		return nil
	})
}

// waitSubscribed waits until every worker's stream is followed by exactly
// one node, in the streaming state, and extra(i) holds for each engine i
// (the engine's side of the subscription).
func waitSubscribed(c *testCluster, engines int, extra func(i int) error) {
	c.t.Helper()
	eventually(c.t, "one node streams each engine", func() error {
		subs := map[string]int{}
		for _, nd := range c.nodes {
			for _, s := range nd.KVSubscriptions() {
				if s.Subscribed && s.State == kvStateStreaming {
					subs[s.Worker]++
				}
			}
		}
		for i := range engines {
			if n := subs[lagWorker(i)]; n != 1 {
				return fmt.Errorf("%s: %d streaming subscriptions", lagWorker(i), n)
			}
			if err := extra(i); err != nil {
				return err
			}
		}
		return nil
	})
}

// runLag drives a lag run on the started cluster c, whose workers
// lagWorker(i) stream engine i's events through publish, and returns
// what it measured. Time is time.Now's: virtual in a synctest bubble,
// real otherwise.
//
// At every poll it publishes the steps that are due and then looks, for
// each worker and node, at the worker's oldest events the node does not
// route yet, in publication order, stopping at the first it does not
// route: a node applies one worker's deltas in order, and looking no
// further keeps the polls cheap when lags grow. An event seen out of
// order is therefore seen late: the lags are never under-reported.
func runLag(tb testing.TB, c *testCluster, cfg lagConfig, publish func(engine int, payload []byte) error) lagResult {
	tb.Helper()
	ixs := make([]*radix.Index, len(c.nodes))
	for i, nd := range c.nodes {
		ixs[i] = nd.st.ix
	}
	steps := lagWorkload(tb, cfg, radix.TokenSeed(lagModel), ixs[0].PageTokens(lagModel), len(ixs))

	var res lagResult
	open := make([][]*lagEvent, cfg.Engines) // by worker, in publication order
	stepOf := make([]int, cfg.Engines)       // each engine's next step
	var hits []radix.Hit
	routes := func(ix *radix.Index, w string, pages []uint64) bool {
		hits = ix.MatchPages(hits[:0], pages)
		for _, h := range hits {
			if h.Worker == w {
				return h.Pages == len(pages)
			}
		}
		return false
	}
	check := func(now time.Time) {
		for w, evs := range open {
			name := lagWorker(w)
			for _, ev := range evs {
				if ev.evictedAt >= 0 && stepOf[w] > ev.evictedAt {
					ev.done = true
					res.Evicted++
				}
			}
			for n, ix := range ixs {
				for _, ev := range evs {
					if ev.done || ev.seen[n] {
						continue
					}
					if !routes(ix, name, ev.pages) {
						break
					}
					ev.seen[n] = true
					if ev.left--; ev.left == 0 {
						ev.done = true
						res.Lags = append(res.Lags, now.Sub(ev.at))
					}
				}
			}
			open[w] = slices.DeleteFunc(evs, func(ev *lagEvent) bool { return ev.done })
		}
	}

	start := time.Now()
	tick := time.NewTicker(cfg.Poll)
	defer tick.Stop()
	for now := start; ; now = <-tick.C {
		more := false
		for i := range steps {
			for ; stepOf[i] < len(steps[i]); stepOf[i]++ {
				due := start.Add(lagStep*time.Duration(stepOf[i]) + lagStep*time.Duration(i)/time.Duration(cfg.Engines))
				if due.After(now) {
					break
				}
				res.MaxBehind = max(res.MaxBehind, now.Sub(due))
				st := &steps[i][stepOf[i]]
				if st.payload == nil {
					continue
				}
				at := time.Now()
				if err := publish(i, st.payload); err != nil {
					tb.Fatalf("engine %d: %v", i, err)
				}
				res.Batches++
				res.Blocks += st.blocks
				res.Events += len(st.events)
				for _, ev := range st.events {
					ev.at = at
				}
				open[i] = append(open[i], st.events...)
			}
			more = more || stepOf[i] < len(steps[i])
		}
		check(time.Now())
		if !more {
			break
		}
	}
	res.Publishing = time.Since(start)
	deadline := time.Now().Add(cfg.Drain)
	for slices.ContainsFunc(open, func(evs []*lagEvent) bool { return len(evs) > 0 }) && time.Now().Before(deadline) {
		<-tick.C
		check(time.Now())
	}
	for _, evs := range open {
		res.Unresolved += len(evs)
	}
	res.Counters = lagCounters(c)
	slices.Sort(res.Lags)
	return res
}

// lagStreams routes endpoints to in-memory engine streams: the
// KVEventsDial seam of the simulation. A stream holds up to
// lagStreamQueue messages; past it a message is dropped and counted, as
// ZeroMQ drops for a slow subscriber past its high-water mark.
type lagStreams struct {
	mu      sync.Mutex
	subs    map[string][]*lagStream // by endpoint
	seq     map[string]int64
	dropped atomic.Int64
}

const lagStreamQueue = 4096

type lagStream struct {
	ch   chan kvevents.Message
	done chan struct{}
	once sync.Once
	l    *lagStreams
	ep   string
}

func newLagStreams() *lagStreams {
	return &lagStreams{subs: map[string][]*lagStream{}, seq: map[string]int64{}}
}

var errLagStreamClosed = errors.New("test: stream closed")

func (l *lagStreams) dial(_ context.Context, endpoint, _ string) (EventStream, error) {
	s := &lagStream{ch: make(chan kvevents.Message, lagStreamQueue), done: make(chan struct{}), l: l, ep: endpoint}
	l.mu.Lock()
	l.subs[endpoint] = append(l.subs[endpoint], s)
	l.mu.Unlock()
	return s, nil
}

// subscribers returns how many streams endpoint has.
func (l *lagStreams) subscribers(endpoint string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.subs[endpoint])
}

// publish sends payload to endpoint's streams with the next sequence
// number.
func (l *lagStreams) publish(endpoint string, payload []byte) {
	l.mu.Lock()
	defer l.mu.Unlock()
	m := kvevents.Message{Topic: "kv", Seq: l.seq[endpoint], Payload: payload}
	l.seq[endpoint]++
	for _, s := range l.subs[endpoint] {
		select {
		case s.ch <- m:
		default:
			l.dropped.Add(1)
		}
	}
}

func (s *lagStream) Recv() (kvevents.Message, error) {
	select {
	case m := <-s.ch:
		return m, nil
	case <-s.done:
		return kvevents.Message{}, errLagStreamClosed
	}
}

func (s *lagStream) Close() error {
	s.once.Do(func() {
		close(s.done)
		s.l.mu.Lock()
		s.l.subs[s.ep] = slices.DeleteFunc(s.l.subs[s.ep], func(x *lagStream) bool { return x == s })
		s.l.mu.Unlock()
	})
	return nil
}

// lagCounters sums, over c's nodes, the counters that say which path
// carried (or lost) the index's deltas, and the index's deltas waiting
// for, or dropped for want of, their anchor: what to look at when the lag
// misses.
func lagCounters(c *testCluster) map[string]float64 {
	names := []string{
		"meshnode_sync_deltas_sent_total", "meshnode_sync_delta_sent_bytes_total",
		"meshnode_sync_deltas_received_total", "meshnode_sync_delta_errors_total",
		"meshnode_sync_pushes_dropped_total", "meshnode_sync_received_bytes_total",
		"meshnode_sync_refused_total", "meshnode_udp_dropped_total",
		"meshnode_deliveries_dropped_total", "meshnode_broadcasts_dropped_total",
		"meshnode_kvevents_gaps_total", "meshnode_udp_sent_bytes_total", "meshnode_tcp_sent_bytes_total",
	}
	out := map[string]float64{}
	for i, nd := range c.nodes {
		st := nd.st.ix.Stats()
		out["index_pending"] += float64(st.Pending)
		out["index_pending_dropped"] += float64(st.PendingDropped)
		g, ok := c.cfgs[i].Registerer.(prometheus.Gatherer)
		if !ok {
			continue
		}
		mfs, err := g.Gather()
		if err != nil {
			continue
		}
		for _, mf := range mfs {
			if !slices.Contains(names, mf.GetName()) {
				continue
			}
			for _, m := range mf.GetMetric() {
				out[strings.TrimPrefix(mf.GetName(), "meshnode_")] += m.GetCounter().GetValue()
			}
		}
	}
	return out
}
