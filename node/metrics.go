package node

import (
	"runtime"

	"github.com/meshnode/meshnode/swim/swimnet"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics holds the node's collectors. With a nil Registerer they still
// count (cheaply) but are exported nowhere.
type metrics struct {
	reg        prometheus.Registerer
	collectors []prometheus.Collector

	httpRequests   *prometheus.CounterVec
	httpDuration   *prometheus.HistogramVec
	deltasSent     prometheus.Counter
	deltaBytes     prometheus.Counter
	deltasReceived prometheus.Counter
	deltasDup      prometheus.Counter
	deltaErrors    prometheus.Counter
	pushesDropped  prometheus.Counter
	indexDeferred  prometheus.Counter
	streamErrors   prometheus.Counter
	packetsBad     *prometheus.CounterVec
	streamRejected *prometheus.CounterVec
	syncRefused    prometheus.Counter
	connsRefused   prometheus.Counter
	connsClosed    *prometheus.CounterVec
	syncRounds     *prometheus.CounterVec
	syncDuration   prometheus.Histogram
	syncBytes      prometheus.Counter
	memberEvents   *prometheus.CounterVec
	collected      prometheus.Counter
	snapshots      *prometheus.CounterVec
	rateTakes      *prometheus.CounterVec
	routes         *prometheus.CounterVec

	// The proxy's metrics carry no worker label: workers come and go
	// without bound (each registration a new series that never goes
	// away), and per-worker figures belong to the engines' own metrics.
	// Models are labels only once registered: a model a client makes up
	// counts as "-".
	proxyRequests     *prometheus.CounterVec
	proxyTTFB         *prometheus.HistogramVec
	proxyDuration     *prometheus.HistogramVec
	proxyRetries      *prometheus.CounterVec
	proxyEjections    prometheus.Counter
	proxyHealthChecks *prometheus.CounterVec
	kvBatches         prometheus.Counter
	kvEvents          *prometheus.CounterVec
	kvIgnored         *prometheus.CounterVec
	kvGaps            prometheus.Counter
	kvRestarts        prometheus.Counter
	kvDecodeErrors    prometheus.Counter
	kvBlockSize       prometheus.Counter
	kvReplays         *prometheus.CounterVec
	kvOwnerChanges    prometheus.Counter
	kvConnectErrors   prometheus.Counter
	kvProbes          *prometheus.CounterVec
	kvLag             prometheus.Histogram
}

func newMetrics(n *Node, reg prometheus.Registerer, version string) *metrics {
	m := &metrics{reg: reg}
	counter := func(name, help string) prometheus.Counter {
		c := prometheus.NewCounter(prometheus.CounterOpts{Namespace: "meshnode", Name: name, Help: help})
		m.collectors = append(m.collectors, c)
		return c
	}
	counterVec := func(name, help string, labels ...string) *prometheus.CounterVec {
		c := prometheus.NewCounterVec(prometheus.CounterOpts{Namespace: "meshnode", Name: name, Help: help}, labels)
		m.collectors = append(m.collectors, c)
		return c
	}
	gauge := func(name, help string, f func() float64) {
		m.collectors = append(m.collectors, prometheus.NewGaugeFunc(prometheus.GaugeOpts{Namespace: "meshnode", Name: name, Help: help}, f))
	}
	counterFunc := func(name, help string, f func() float64) {
		m.collectors = append(m.collectors, prometheus.NewCounterFunc(prometheus.CounterOpts{Namespace: "meshnode", Name: name, Help: help}, f))
	}
	if version == "" {
		version = "dev"
	}
	bi := prometheus.NewGauge(prometheus.GaugeOpts{Namespace: "meshnode", Name: "build_info",
		Help: "Build information; the value is always 1.", ConstLabels: prometheus.Labels{"version": version, "goversion": runtime.Version()}})
	bi.Set(1)
	m.collectors = append(m.collectors, bi)

	m.httpRequests = counterVec("http_requests_total", "API requests served, by route pattern and status class.", "route", "code")
	m.httpDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "meshnode", Name: "http_request_duration_seconds",
		Help: "API request latency by route pattern.", Buckets: []float64{50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 50e-3, 0.25, 1}}, []string{"route"})
	m.collectors = append(m.collectors, m.httpDuration)
	m.deltasSent = counter("sync_deltas_sent_total", "Delta batches disseminated by this node.")
	m.deltaBytes = counter("sync_delta_sent_bytes_total", "Bytes of delta batches disseminated (once per batch, before fan-out).")
	m.deltasReceived = counter("sync_deltas_received_total", "Delta batches received from peers.")
	m.deltasDup = counter("sync_deltas_duplicate_total", "Gossiped delta batches received again and not applied again (above the eager cluster size, gossip brings each delta several times).")
	m.deltaErrors = counter("sync_delta_errors_total", "Received delta batches that did not apply.")
	m.indexDeferred = counter("sync_index_deferred_total", "Busy index workers left out of an anti-entropy answer because the puller nearly had them (their deltas are in flight); shipped within 30 s or once quiet.")
	m.pushesDropped = counter("sync_pushes_dropped_total", "Large deltas not pushed (too many peers with a push stream, a full peer queue, or a failed stream); anti-entropy repairs them.")
	m.streamErrors = counter("stream_errors_total", "TCP streams that failed (dial, TLS, protocol, deadline).")
	m.packetsBad = counterVec("swim_packets_bad_total", "Gossip input that could not be opened or parsed, by reason (unknown_key, auth_failed, plaintext_refused, encrypted_refused, version, malformed): UDP packets, and the frames of TCP streams (also counted in stream_rejected_total).", "reason")
	m.streamRejected = counterVec("stream_rejected_total", "TCP streams refused because of what the peer sent or presented, by reason (the packet reasons, bad_certificate, tls_handshake); a failed TLS handshake counts on both sides.", "reason")
	for _, r := range packetReasons() {
		m.packetsBad.WithLabelValues(r)
	}
	for _, r := range streamReasons() {
		m.streamRejected.WithLabelValues(r)
	}
	m.syncRefused = counter("sync_refused_total", "Anti-entropy exchanges refused because MaxAntiEntropyStreams were busy.")
	m.connsRefused = counter("tcp_refused_total", "Incoming TCP connections closed at once because too many were being served.")
	m.connsClosed = counterVec("tcp_conns_closed_total", "Incoming TCP connections the node closed before serving them to the end, by reason: "+
		"pending_full, served_full, first_frame_timeout, first_frame_bad, buffer_budget.", "reason")
	gauge("tcp_stream_buffer_bytes", "Bytes held by TCP stream readers, charged to max_stream_buffer_bytes.", func() float64 { return float64(n.streamBuf.used.Load()) })
	gauge("tcp_conns_pending", "Incoming TCP connections waiting for their first frame.", func() float64 { return float64(n.pending.len()) })
	m.syncRounds = counterVec("sync_rounds_total", "Anti-entropy exchanges this node started, by result.", "result")
	m.syncDuration = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "meshnode", Name: "sync_round_duration_seconds",
		Help: "Duration of successful anti-entropy exchanges.", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	m.collectors = append(m.collectors, m.syncDuration)
	m.syncBytes = counter("sync_received_bytes_total", "Bytes of store pages and index batches received by anti-entropy.")
	m.memberEvents = counterVec("member_events_total", "Membership events, by kind.", "kind")
	m.collected = counter("store_tombstones_collected_total", "Tombstones collected by this node's GC rounds.")
	m.snapshots = counterVec("snapshots_total", "Snapshots written, by result.", "result")
	m.rateTakes = counterVec("ratelimit_takes_total", "Rate-limit takes, by outcome.", "outcome")
	m.routes = counterVec("route_decisions_total", "Routing decisions, by rule.", "rule")
	m.proxyRequests = counterVec("proxy_requests_total", "Requests the routing proxy answered, by model, outcome (ok, upstream_4xx, upstream_5xx, "+
		"unreachable, timeout, broken, canceled, no_worker, unknown_model, rate_limited, rejected, unauthorized) and routing rule of the first try.", "model", "outcome", "rule")
	latency := []float64{1e-3, 5e-3, 25e-3, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120}
	m.proxyTTFB = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "meshnode", Name: "proxy_first_byte_seconds",
		Help: "Time from a proxied request's arrival to the first byte of its answer (for a stream: the time to first token), by model.", Buckets: latency}, []string{"model"})
	m.proxyDuration = prometheus.NewHistogramVec(prometheus.HistogramOpts{Namespace: "meshnode", Name: "proxy_request_duration_seconds",
		Help: "Time from a proxied request's arrival to the end of its answer, by model.", Buckets: latency}, []string{"model"})
	m.collectors = append(m.collectors, m.proxyTTFB, m.proxyDuration)
	m.proxyRetries = counterVec("proxy_retries_total", "Proxied requests tried again on the next-best worker, by what failed (connect, status_5xx, timeout).", "reason")
	m.proxyEjections = counter("proxy_worker_ejections_total", "Times the proxy took a worker out of its routing for a backoff (passive failures or a failed health check).")
	m.proxyHealthChecks = counterVec("proxy_health_checks_total", "Active health checks of workers, by result.", "result")
	gauge("proxy_in_flight_requests", "Requests this node's proxy has in flight to workers.", func() float64 {
		if n.proxy == nil {
			return 0
		}
		return float64(n.proxy.load.inFlight.Load())
	})

	m.kvBatches = counter("kvevents_batches_total", "Engine KV event batches received by this node's subscriptions (live and replayed).")
	m.kvEvents = counterVec("kvevents_events_total", "Engine KV events applied to the index, by type (stored, removed, cleared).", "type")
	m.kvIgnored = counterVec("kvevents_events_ignored_total", "Engine KV events not applied, by reason: other_medium (CPU or disk blocks: counted, never routed on), other_group (KV-cache groups after the first, of hybrid models), orphan (parent block unknown), malformed (inconsistent or unknown events).", "reason")
	for _, r := range []string{"stored", "removed", "cleared"} {
		m.kvEvents.WithLabelValues(r)
	}
	for _, r := range []string{"other_medium", "other_group", "orphan", "malformed"} {
		m.kvIgnored.WithLabelValues(r)
	}
	m.kvGaps = counter("kvevents_gaps_total", "Sequence gaps in engine KV event streams (filled by replay, or by clearing and rebuilding the worker's event-sourced pages).")
	m.kvRestarts = counter("kvevents_restarts_total", "Engine restarts detected (a stream's sequence went back): the worker's event-sourced pages were cleared.")
	m.kvDecodeErrors = counter("kvevents_decode_errors_total", "Engine KV event batches that did not decode.")
	m.kvBlockSize = counter("kvevents_block_size_mismatches_total", "Stored-block events ignored because the engine's block size is not a multiple of the model's page size (a configuration error, logged).")
	m.kvReplays = counterVec("kvevents_replays_total", "Replays asked of engines' replay endpoints, by result (ok, failed).", "result")
	m.kvReplays.WithLabelValues("ok")
	m.kvReplays.WithLabelValues("failed")
	m.kvOwnerChanges = counter("kvevents_owner_changes_total", "Changes of an event-streaming worker's subscribing nodes, as this node computes them.")
	m.kvConnectErrors = counter("kvevents_connect_errors_total", "Failed attempts to subscribe to an engine's KV events: dials that failed, and streams that ended before their first message.")
	m.kvProbes = counterVec("kvevents_probes_total", "Probes of engines whose KV event stream stayed silent, through their replay endpoints, by result (ok: the engine answered; failed: it did not, in time).", "result")
	m.kvProbes.WithLabelValues("ok")
	m.kvProbes.WithLabelValues("failed")
	m.kvLag = prometheus.NewHistogram(prometheus.HistogramOpts{Namespace: "meshnode", Name: "kvevents_lag_seconds",
		Help: "Time from an engine's batch timestamp to its application here (clocks of two hosts).", Buckets: prometheus.ExponentialBuckets(0.001, 4, 8)})
	m.collectors = append(m.collectors, m.kvLag)
	gauge("kvevents_subscriptions", "Engine KV event streams this node subscribes to.", func() float64 {
		n.kv.mu.Lock()
		defer n.kv.mu.Unlock()
		return float64(len(n.kv.subs))
	})

	gauge("members", "Members alive or suspect, self included.", func() float64 { l, _, _ := n.quorum(); return float64(l) })
	gauge("cluster_size_members", "Last known cluster size: members not known to have left.", func() float64 { _, k, _ := n.quorum(); return float64(k) })
	gauge("quorum", "1 when this node sees a majority of the last known cluster.", func() float64 {
		if _, _, ok := n.quorum(); ok {
			return 1
		}
		return 0
	})
	gauge("ready", "1 when /readyz succeeds.", func() float64 {
		if ok, _ := n.Ready(); ok {
			return 1
		}
		return 0
	})
	gauge("store_keys", "Live keys in the store.", func() float64 { return float64(n.storeStats().Keys) })
	gauge("store_tombstones", "Tombstones not yet collected.", func() float64 { return float64(n.storeStats().Tombstones) })
	gauge("store_bytes", "Bytes charged against the store's limit.", func() float64 { return float64(n.storeStats().Bytes) })
	counterFunc("store_rejected_total", "Remote writes the store refused.", func() float64 { return float64(n.storeStats().Rejected) })
	counterFunc("watch_history_evicted_total", "Changes dropped from the watch history (its bounds, or a store resynchronisation); a watcher behind them must list again.",
		func() float64 { n.st.mu.Lock(); defer n.st.mu.Unlock(); return float64(n.st.hist.evicted) })
	gauge("watch_history_bytes", "Bytes of keys and values the watch history holds.",
		func() float64 { n.st.mu.Lock(); defer n.st.mu.Unlock(); return float64(n.st.hist.bytes) })
	gauge("index_pages", "Distinct pages in the prefix index.", func() float64 { return float64(n.st.ix.Stats().Pages) })
	gauge("index_holder_pages", "(page, worker) pairs in the prefix index.", func() float64 { return float64(n.st.ix.Stats().HolderPages) })
	gauge("index_bytes", "Estimated heap bytes of the prefix index.", func() float64 { return float64(n.st.ix.Stats().Bytes) })
	counterFunc("udp_dropped_total", "UDP packets dropped because the membership loop was behind.", func() float64 {
		if n.tr == nil {
			return 0
		}
		return float64(n.tr.dropped.Load())
	})
	traffic := func(name, help string, f func(*transport) uint64) {
		counterFunc(name, help, func() float64 {
			if n.tr == nil {
				return 0
			}
			return float64(f(n.tr))
		})
	}
	traffic("udp_sent_bytes_total", "UDP bytes sent (gossip, probes, eager deltas).", func(t *transport) uint64 { return t.udpSent.Load() })
	traffic("udp_received_bytes_total", "UDP bytes received.", func(t *transport) uint64 { return t.udpRecv.Load() })
	traffic("tcp_sent_bytes_total", "TCP stream bytes sent (push-pull, anti-entropy, large deltas), TLS included.", func(t *transport) uint64 { return t.tcpSent.Load() })
	traffic("tcp_received_bytes_total", "TCP stream bytes received.", func(t *transport) uint64 { return t.tcpRecv.Load() })
	m.collectors = append(m.collectors, newSwimCollector(n))

	if reg != nil {
		for _, c := range m.collectors {
			if err := reg.Register(c); err != nil {
				n.log.Warn("metric not registered", "err", err)
			}
		}
	}
	return m
}

// unregister removes the node's collectors, so that a registry can outlive
// the node (tests, restarts in one process).
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors {
		m.reg.Unregister(c)
	}
}

// swimCollector exports the swim Runner's counters, read once per scrape.
type swimCollector struct {
	n     *Node
	descs []*prometheus.Desc
	get   []func(swimnet.RunnerStats) uint64
}

func newSwimCollector(n *Node) *swimCollector {
	c := &swimCollector{n: n}
	add := func(name, help string, f func(swimnet.RunnerStats) uint64) {
		c.descs = append(c.descs, prometheus.NewDesc("meshnode_swim_"+name, help, nil, nil))
		c.get = append(c.get, f)
	}
	add("probes_total", "Direct failure-detection probes started.", func(s swimnet.RunnerStats) uint64 { return s.Core.ProbesSent })
	add("probe_failures_total", "Probes that ended in a suspicion.", func(s swimnet.RunnerStats) uint64 { return s.Core.ProbesFailed })
	add("tcp_only_probes_total", "Probes answered over TCP only.", func(s swimnet.RunnerStats) uint64 { return s.Core.TCPOnlyProbes })
	add("suspicions_total", "Suspicions this node raised from its own probes.", func(s swimnet.RunnerStats) uint64 { return s.Core.SuspicionsRaised })
	add("death_verdicts_total", "Death verdicts this node issued.", func(s swimnet.RunnerStats) uint64 { return s.Core.DeathVerdicts })
	add("verdicts_withheld_total", "Verdicts deferred by the self-isolation guard.", func(s swimnet.RunnerStats) uint64 { return s.Core.VerdictsWithheld })
	add("refutations_total", "Alive messages sent to refute accusations.", func(s swimnet.RunnerStats) uint64 { return s.Core.Refutations })
	add("refutations_withheld_total", "Accusations of this node left unrefuted because it distrusted itself.", func(s swimnet.RunnerStats) uint64 { return s.Core.RefutesWithheld })
	add("isolation_changes_total", "Times this node started or stopped distrusting itself (self-isolation guard).", func(s swimnet.RunnerStats) uint64 { return s.Core.IsolationChanges })
	add("link_checks_total", "Link checks (four members pinged at once) a node that distrusted itself started on hearing from another member.", func(s swimnet.RunnerStats) uint64 { return s.Core.LinkChecks })
	add("link_checks_passed_total", "Link checks every pinged member answered: the node trusted itself again (a partition healed).", func(s swimnet.RunnerStats) uint64 { return s.Core.LinkChecksPassed })
	add("fast_probes_total", "Probes started at twice the rate because many members were suspect at once.", func(s swimnet.RunnerStats) uint64 { return s.Core.FastProbes })
	add("side_pings_total", "Extra direct pings sent beside probes while many members were suspect at once, or after a probe whose relays were all silent.", func(s swimnet.RunnerStats) uint64 { return s.Core.SidePings })
	add("sweeps_total", "Discovery sweeps (pings to every member, to find those still up) started after a probe whose relays were all silent.", func(s swimnet.RunnerStats) uint64 { return s.Core.Sweeps })
	add("side_suspicions_total", "Suspicions raised or confirmed because a side ping went unanswered.", func(s swimnet.RunnerStats) uint64 { return s.Core.SideSuspicions })
	add("broadcasts_dropped_total", "Broadcasts dropped because the queue was full.", func(s swimnet.RunnerStats) uint64 { return s.Core.BroadcastsDropped })
	add("events_dropped_total", "Membership events dropped because the node read them too slowly.", func(s swimnet.RunnerStats) uint64 { return s.EventsDropped })
	add("deliveries_dropped_total", "Data payloads dropped because the node applied them too slowly.", func(s swimnet.RunnerStats) uint64 { return s.DeliveriesDropped })
	add("stream_errors_total", "Swim stream exchanges that failed.", func(s swimnet.RunnerStats) uint64 { return s.StreamErrors })
	return c
}

// Describe implements prometheus.Collector.
func (c *swimCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.descs {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *swimCollector) Collect(ch chan<- prometheus.Metric) {
	var s swimnet.RunnerStats
	if c.n.mem != nil {
		s = c.n.mem.r.Stats()
	}
	for i, d := range c.descs {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(c.get[i](s)))
	}
}

// countKV counts what applying one engine message did.
func (m *metrics) countKV(res KVResult) {
	switch res.Status {
	case KVCleared:
		return
	case KVDuplicate:
		m.kvBatches.Inc()
		return
	case KVGap:
		m.kvBatches.Inc()
		m.kvGaps.Inc()
		return // the batch comes again after the replay
	case KVResync:
		m.kvGaps.Inc()
	case KVRestart:
		m.kvRestarts.Inc()
	case KVDecodeError:
		m.kvDecodeErrors.Inc()
	}
	m.kvBatches.Inc()
	add := func(c prometheus.Counter, v int) {
		if v > 0 {
			c.Add(float64(v))
		}
	}
	add(m.kvEvents.WithLabelValues("stored"), res.Stored)
	add(m.kvEvents.WithLabelValues("removed"), res.Removed)
	add(m.kvEvents.WithLabelValues("cleared"), res.Cleared)
	add(m.kvIgnored.WithLabelValues("other_medium"), res.OtherMedium)
	add(m.kvIgnored.WithLabelValues("other_group"), res.OtherGroup)
	add(m.kvIgnored.WithLabelValues("orphan"), res.Orphans)
	add(m.kvIgnored.WithLabelValues("malformed"), res.Malformed)
	add(m.kvBlockSize, res.BlockSize)
}
