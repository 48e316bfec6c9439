package node

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/kvevents"
	"github.com/prometheus/client_golang/prometheus"
)

// Defaults of Config fields left zero, each with the reason it is what it is.
const (
	// DefaultBindAddr: gossip (UDP) and streams (TCP) share one port, so a
	// firewall rule or a container port mapping names one number.
	DefaultBindAddr = "0.0.0.0:7946"
	// DefaultAPIAddr: the API is loopback-only unless asked otherwise, so a
	// fresh node exposes nothing to the network but gossip.
	DefaultAPIAddr = "127.0.0.1:7947"
	// DefaultAntiEntropyInterval: anti-entropy repairs what eager deltas lost; a few
	// seconds bounds staleness after loss without measurable bandwidth.
	DefaultAntiEntropyInterval = 2 * time.Second
	// DefaultStreamTimeout: the deadline of one exchange on a stream;
	// generous because an anti-entropy bootstrap may ship the whole state.
	DefaultStreamTimeout = 30 * time.Second
	// DefaultEagerMembers: up to this cluster size every delta goes to every
	// member directly; beyond, gossip spreads it (N direct sends per write
	// would cost O(N^2) cluster-wide).
	DefaultEagerMembers = 16
	// DefaultLeaveTimeout: long enough for a few gossip rounds to carry the
	// leave, short enough for a rolling restart.
	DefaultLeaveTimeout = 5 * time.Second
	// DefaultSnapshotInterval bounds what a crash loses to what anti-entropy
	// must bring back.
	DefaultSnapshotInterval = 30 * time.Second
	// DefaultGCHorizon: a member away longer than this no longer holds back
	// tombstone collection and must resynchronise when it returns.
	DefaultGCHorizon = 10 * time.Minute
	// DefaultStoreMaxBytes bounds the store (the store's own default).
	DefaultStoreMaxBytes = 1 << 30
	// DefaultReapTimeout: how long dead and left members are remembered.
	// Longer than typical partitions, so that reconnection can re-dial them
	// and a returning member is known; meanwhile they count towards the
	// cluster size that a majority is judged against.
	DefaultReapTimeout = 30 * time.Minute
	// DefaultMaxRequestBytes fits one store.MaxValueBytes value in JSON.
	DefaultMaxRequestBytes = 4 << 20
	// DefaultMaxListItems bounds one page of any list the API returns.
	DefaultMaxListItems = 1000
	// DefaultMaxWatchers bounds concurrent watch streams.
	DefaultMaxWatchers = 256
	// DefaultMaxAntiEntropyStreams bounds the anti-entropy exchanges served
	// at once, so a burst of joiners cannot exhaust memory.
	DefaultMaxAntiEntropyStreams = 4
	// DefaultMaxStreamBufferBytes bounds the memory all TCP stream readers
	// hold together: room for a few of the largest messages members send
	// (a 16 MiB push-pull state, 1 MiB store pages) at once, and a small
	// share of a gateway host's memory.
	DefaultMaxStreamBufferBytes = 64 << 20
	// DefaultFirstFrameTimeout: a member sends its first frame within one
	// round trip of connecting (two more with TLS); a few seconds leaves
	// room for a loaded host without letting idle connections wait long.
	DefaultFirstFrameTimeout = 3 * time.Second

	// DefaultProxyMaxBodyBytes bounds a proxied completion request: a
	// prompt of the longest contexts (a million tokens as JSON numbers, a
	// few MB of text) fits.
	DefaultProxyMaxBodyBytes = 16 << 20
	// DefaultProxyAttempts: the first try and two retries on the
	// next-best workers; more only piles a failing fleet's load onto the
	// workers still standing.
	DefaultProxyAttempts = 3
	// DefaultProxyConnectTimeout: engines sit on the same network; a
	// connection that takes longer than this is to a host that is down.
	DefaultProxyConnectTimeout = 2 * time.Second
	// DefaultProxyFirstByteTimeout bounds the wait for an engine's
	// answer to start: queueing plus the prefill of a long prompt, and for
	// a non-streamed answer, which starts when it is complete, the whole
	// generation.
	DefaultProxyFirstByteTimeout = 2 * time.Minute
	// DefaultProxyIdleTimeout bounds the silence between two chunks of a
	// streamed answer: decoding emits tokens many times a second.
	DefaultProxyIdleTimeout = 60 * time.Second
	// DefaultProxyFailures consecutive failures take a worker out of the
	// proxy's routing: one failure may be the request's fault.
	DefaultProxyFailures = 3
	// DefaultProxyBackoff is how long a worker first stays out; it
	// doubles at each failure after it came back, up to
	// DefaultProxyMaxBackoff.
	DefaultProxyBackoff    = time.Second
	DefaultProxyMaxBackoff = 30 * time.Second
	// DefaultKVSubscribers: one node follows each engine's KV events; a
	// second doubles the engine's subscribers and the index's event work
	// for a failover without the seconds of failure detection.
	DefaultKVSubscribers = 1
	// DefaultKVGrace: an engine unreachable this long has its event-sourced
	// pages dropped. Long enough to ride out an engine or network restart
	// (the subscriber replays what it missed), short enough that routing
	// stops sending prompts to a cache that is gone.
	DefaultKVGrace = 30 * time.Second
	// DefaultPendingTimeout: a routed prompt's pages count as pending on
	// the chosen worker this long unless the engine's events confirm them.
	// About the p99 time to first token of a long prompt on a busy engine
	// (queueing plus a prefill of tens of thousands of tokens at several
	// thousand tokens a second): shorter loses follow-up turns that arrive
	// while the prefill runs, longer keeps guesses about requests that
	// failed or were evicted. Index stamps have a resolution of a second,
	// so pages go between this and a second later.
	DefaultPendingTimeout = 5 * time.Second
)

// minStreamBufferBytes is the smallest stream buffer budget: the
// strangers' quarter of it holds a first frame of a whole chunk (1 MiB)
// while members read a chunk and reassemble a transfer.
const minStreamBufferBytes = 8 << 20

// Config configures a Node. Its JSON keys are the keys of meshnode agent's
// config file (and, with dashes, its flags; in upper case after MESHNODE_,
// its environment variables), so that a setting has one name from the
// command line to Validate's errors. Fields that hold secrets or live
// objects have no JSON form. Zero fields take the defaults in brackets.
type Config struct {
	// Name is the member name, unique in the cluster [host name] (key
	// node: the node's name).
	Name string `json:"node,omitempty"`
	// BindAddr is the host:port the UDP socket and the TCP listener bind
	// [DefaultBindAddr]. Port 0 picks a free port (tests).
	BindAddr string `json:"bind,omitempty"`
	// AdvertiseAddr is the ip:port other members reach this node at
	// [the bound address, or the first non-loopback address when bound to
	// the unspecified address].
	AdvertiseAddr string `json:"advertise,omitempty"`
	// Seeds are host:port addresses of members that Join without
	// arguments joins through; names are re-resolved on every attempt.
	// (The agent fills it from its keys join, whose join its start waits
	// for, and retry_join, whose it does not.)
	Seeds []string `json:"join,omitempty"`
	// Label names the cluster; it authenticates encrypted traffic.
	Label string `json:"label,omitempty"`
	// Profile selects swim timings: "lan", "wan" or "local" ["lan"].
	Profile string `json:"profile,omitempty"`

	// APIAddr is the HTTP API listener [DefaultAPIAddr]; "off" disables it.
	APIAddr string `json:"api_addr,omitempty"`
	// APITokenFile holds the bearer token the API requires. A token is
	// mandatory when APIAddr is not a loopback address.
	APITokenFile string `json:"api_token_file,omitempty"`
	// APIToken is the token itself (from the environment); it wins over
	// APITokenFile.
	APIToken string `json:"-"`
	// MaxRequestBytes bounds an API request body [DefaultMaxRequestBytes].
	MaxRequestBytes int64 `json:"max_request_bytes,omitempty"`
	// MaxListItems bounds one page of a list [DefaultMaxListItems].
	MaxListItems int `json:"max_list_items,omitempty"`
	// MaxWatchers bounds concurrent watch streams [DefaultMaxWatchers].
	MaxWatchers int `json:"max_watchers,omitempty"`
	// WatchHistory is how many changes of each namespace the node keeps
	// for watches to resume from by index [DefaultWatchHistory].
	WatchHistory int `json:"watch_history,omitempty"`
	// WatchHistoryBytes bounds the keys and values the watch history of all
	// namespaces holds [DefaultWatchHistoryBytes].
	WatchHistoryBytes int64 `json:"watch_history_bytes,omitempty"`

	// AntiEntropyInterval is the period of anti-entropy with a random member
	// [DefaultAntiEntropyInterval]. (It was SyncInterval, key sync_interval.)
	AntiEntropyInterval Duration `json:"anti_entropy_interval,omitempty"`
	// StreamTimeout is the deadline of one exchange on a TCP stream between
	// members: anti-entropy, a delta push, a swim stream
	// [DefaultStreamTimeout]. (It was SyncTimeout.)
	StreamTimeout Duration `json:"stream_timeout,omitempty"`
	// MaxAntiEntropyStreams bounds the anti-entropy exchanges served at
	// once [DefaultMaxAntiEntropyStreams]. (It was MaxSyncStreams.)
	MaxAntiEntropyStreams int `json:"max_anti_entropy_streams,omitempty"`
	// MaxStreamBufferBytes bounds the bytes all TCP stream readers hold
	// together [DefaultMaxStreamBufferBytes]; connections not yet proven
	// may hold a quarter of it. A stream whose reader needs more than is
	// free is closed and counted. Buffers grow with the bytes received,
	// whatever a frame's length field claims.
	MaxStreamBufferBytes int64 `json:"max_stream_buffer_bytes,omitempty"`
	// FirstFrameTimeout is how long an accepted TCP connection has to
	// complete the TLS handshake and send its channel byte and a valid
	// first frame [DefaultFirstFrameTimeout]; it is closed and counted
	// otherwise.
	FirstFrameTimeout Duration `json:"first_frame_timeout,omitempty"`
	// EagerMembers is the largest cluster in which deltas go to every
	// member directly [DefaultEagerMembers].
	EagerMembers int `json:"eager_members,omitempty"`
	// RoutePolicy is the routing policy of /v1/route (radix.Policy, where
	// every parameter is documented with the values the traces support);
	// zero fields take radix.DefaultPolicy's values, and RouteCostWeight 0
	// keeps the threshold rules. The cost rule (RouteCostWeight > 0,
	// radix.DefaultCostWeight = 3 on the traces) reads each worker's load as
	// the prefill tokens queued on it, so it needs loads reported in tokens.
	RouteCacheThreshold float64 `json:"route_cache_threshold,omitempty"`
	RouteBalanceAbs     int     `json:"route_balance_abs,omitempty"`
	RouteBalanceRel     float64 `json:"route_balance_rel,omitempty"`
	RouteCostWeight     float64 `json:"route_cost_weight,omitempty"`
	// LeaveTimeout bounds Leave when the caller gives no timeout
	// [DefaultLeaveTimeout].
	LeaveTimeout Duration `json:"leave_timeout,omitempty"`
	// GCHorizon: see DefaultGCHorizon.
	GCHorizon Duration `json:"gc_horizon,omitempty"`
	// ReapTimeout is how long a dead or left member is remembered before
	// it is forgotten [DefaultReapTimeout]; reaping runs every eighth of
	// it, so a member goes within 1.125 times this.
	ReapTimeout Duration `json:"reap_timeout,omitempty"`
	// ReadyRequiresMajority makes Ready (and /readyz) report false while
	// this node sees no majority of the last known cluster, so that a load
	// balancer takes a replica on the minority side of a partition out.
	ReadyRequiresMajority bool `json:"ready_requires_majority,omitempty"`

	// DataDir enables persistence: snapshots and the generation live there.
	DataDir string `json:"data_dir,omitempty"`
	// SnapshotInterval is the period of snapshots [DefaultSnapshotInterval].
	SnapshotInterval Duration `json:"snapshot_interval,omitempty"`

	// StoreMaxBytes bounds the store [DefaultStoreMaxBytes].
	StoreMaxBytes int64 `json:"store_max_bytes,omitempty"`
	// WorkerPages is each worker's page budget in the index [unlimited].
	WorkerPages int64 `json:"worker_pages,omitempty"`
	// MaxHolderPages caps the index [unlimited].
	MaxHolderPages int64 `json:"max_holder_pages,omitempty"`
	// MinorityShare makes rate limiters on the minority side of a partition
	// admit only their share: limit * visible / last known cluster size.
	MinorityShare bool `json:"minority_share,omitempty"`

	// EncryptKeyFile holds the 32-byte AES-256 gossip key (raw, hex or
	// base64). Without a key, gossip is plaintext with CRC32C.
	EncryptKeyFile string `json:"encrypt_key_file,omitempty"`
	// EncryptKey is the key itself (from the environment); it wins over
	// EncryptKeyFile.
	EncryptKey string `json:"-"`

	// TLSCertFile and TLSKeyFile enable TLS for TCP streams between
	// members and for the API.
	TLSCertFile string `json:"tls_cert_file,omitempty"`
	TLSKeyFile  string `json:"tls_key_file,omitempty"`
	// TLSCAFile verifies peers: members' certificates always, API clients'
	// when TLSVerifyClients is set.
	TLSCAFile        string `json:"tls_ca_file,omitempty"`
	TLSVerifyClients bool   `json:"tls_verify_clients,omitempty"`
	// APIPlaintext keeps the API on plain HTTP although TLS is configured
	// (e.g. behind a local proxy).
	APIPlaintext bool `json:"api_plaintext,omitempty"`

	// ProxyAddr is the host:port of the OpenAI-compatible routing proxy
	// (proxy.go) [off]: /v1/chat/completions, /v1/completions and
	// /v1/models, routed to the registered workers.
	ProxyAddr string `json:"proxy_addr,omitempty"`
	// ProxyTokenFile holds the bearer token clients of the proxy must
	// present [none: the proxy is open]. It is not the API token.
	ProxyTokenFile string `json:"proxy_token_file,omitempty"`
	// ProxyToken is the token itself (from the environment); it wins over
	// ProxyTokenFile.
	ProxyToken string `json:"-"`
	// ProxyMaxBodyBytes bounds a proxied request body
	// [DefaultProxyMaxBodyBytes].
	ProxyMaxBodyBytes int64 `json:"proxy_max_body_bytes,omitempty"`
	// ProxyAttempts bounds the workers one request is tried on
	// [DefaultProxyAttempts]; 1 disables retries.
	ProxyAttempts int `json:"proxy_attempts,omitempty"`
	// ProxyConnectTimeout, ProxyFirstByteTimeout and ProxyIdleTimeout
	// bound the connection to an engine, the wait for its answer to start
	// and the silence between chunks of a stream [the Default* above].
	ProxyConnectTimeout   Duration `json:"proxy_connect_timeout,omitempty"`
	ProxyFirstByteTimeout Duration `json:"proxy_first_byte_timeout,omitempty"`
	ProxyIdleTimeout      Duration `json:"proxy_idle_timeout,omitempty"`
	// ProxyFailures is how many consecutive failures take a worker out of
	// the proxy's routing [DefaultProxyFailures]; it stays out for
	// ProxyBackoff, doubled at each failure after it came back, at most
	// ProxyMaxBackoff.
	ProxyFailures   int      `json:"proxy_failures,omitempty"`
	ProxyBackoff    Duration `json:"proxy_backoff,omitempty"`
	ProxyMaxBackoff Duration `json:"proxy_max_backoff,omitempty"`
	// ProxyHealthInterval, when set, is the period of active checks of
	// each worker's GET /health [off].
	ProxyHealthInterval Duration `json:"proxy_health_interval,omitempty"`
	// ProxyKeyHeader names the request header that carries a client's
	// API key; with a limit named "api-key" defined, each key is limited
	// on its own [none].
	ProxyKeyHeader string `json:"proxy_key_header,omitempty"`
	// ProxyTokenizer says how the proxy routes a text prompt: "text" by
	// pages of its bytes, "bytes" by token ids as meshnode engine
	// tokenizes it (one per byte; a chat as "role: content\n" per
	// message), which match the pages of that engine's KV events ["text"].
	// A prompt given as token ids routes by them either way.
	ProxyTokenizer string `json:"proxy_tokenizer,omitempty"`
	// ProxyTLSCertFile and ProxyTLSKeyFile, both or neither, make the
	// proxy serve HTTPS with this PEM certificate and private key; its
	// clients present no certificate (the proxy's bearer token is their
	// credential). ReloadTLS reads them again. Apart from TLSCertFile:
	// clients trust a public name, members the cluster CA.
	ProxyTLSCertFile string `json:"proxy_tls_cert,omitempty"`
	ProxyTLSKeyFile  string `json:"proxy_tls_key,omitempty"`
	// KVSubscribers is how many live nodes subscribe to each worker's
	// engine KV events, chosen by rendezvous hashing of the worker ID over
	// the live members: 1 or 2 [DefaultKVSubscribers].
	KVSubscribers int `json:"kv_subscribers,omitempty"`
	// KVGrace is how long an engine may stay unreachable before its
	// event-sourced pages are dropped [DefaultKVGrace]. Unreachable: no
	// dial succeeded, no message arrived and no probe of its replay
	// endpoint was answered (a silent stream is probed every
	// min(KVGrace/3, 5 s), each probe waiting min(KVGrace/2, 5 s)). An
	// engine without a replay endpoint cannot be probed: its grace period
	// counts failed connections only, and an engine stopped with its
	// stream open keeps its pages.
	KVGrace Duration `json:"kv_grace,omitempty"`
	// PendingTimeout is how long a routed prompt's pages count as pending
	// on an event-streaming worker before its events confirm them
	// [DefaultPendingTimeout].
	PendingTimeout Duration `json:"pending_timeout,omitempty"`
	// KVEventsDial subscribes to an engine's KV event stream [a ZMQ SUB
	// socket, package kvevents]. Simulations set it to feed events
	// without sockets.
	KVEventsDial func(ctx context.Context, endpoint, topic string) (EventStream, error) `json:"-"`
	// KVEventsReplay asks an engine's replay endpoint for the batches from
	// startSeq on, calling fn for each and returning after the end marker
	// (not passed to fn) [ZMQ, package kvevents].
	KVEventsReplay func(ctx context.Context, endpoint string, startSeq int64, fn func(kvevents.Message) error) error `json:"-"`

	// Logger receives the node's logs; nil means off.
	Logger *slog.Logger `json:"-"`
	// Registerer receives the node's metrics; nil means off. If it is also
	// a prometheus.Gatherer (a *prometheus.Registry is), /metrics serves it.
	Registerer prometheus.Registerer `json:"-"`
	// Version is reported by meshnode_build_info and /v1/self.
	Version string `json:"-"`
}

// Duration is a time.Duration that reads and writes JSON as a Go duration
// string ("2s", "150ms"); a bare number is read as nanoseconds.
type Duration time.Duration

// D returns d as a time.Duration.
func (d Duration) D() time.Duration { return time.Duration(d) }

// MarshalJSON writes d as a duration string.
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads a duration string or a number of nanoseconds.
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		n, err := strconv.ParseInt(string(b), 10, 64)
		if err != nil {
			return fmt.Errorf("node: duration %s: want a string like \"2s\" or nanoseconds", b)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return fmt.Errorf("node: duration %q: %w", s, err)
	}
	*d = Duration(v)
	return nil
}

// orZero sets *p to v when *p is the zero value.
func orZero[T comparable](p *T, v T) {
	var zero T
	if *p == zero {
		*p = v
	}
}

// withDefaults returns c with zero fields set to their defaults.
func (c Config) withDefaults() Config {
	def := func(p *Duration, v time.Duration) {
		if *p == 0 {
			*p = Duration(v)
		}
	}
	orZero(&c.BindAddr, DefaultBindAddr)
	orZero(&c.APIAddr, DefaultAPIAddr)
	orZero(&c.Profile, "lan")
	orZero(&c.MaxRequestBytes, DefaultMaxRequestBytes)
	orZero(&c.MaxListItems, DefaultMaxListItems)
	orZero(&c.MaxWatchers, DefaultMaxWatchers)
	orZero(&c.WatchHistory, DefaultWatchHistory)
	orZero(&c.WatchHistoryBytes, DefaultWatchHistoryBytes)
	orZero(&c.MaxAntiEntropyStreams, DefaultMaxAntiEntropyStreams)
	orZero(&c.EagerMembers, DefaultEagerMembers)
	orZero(&c.MaxStreamBufferBytes, DefaultMaxStreamBufferBytes)
	def(&c.FirstFrameTimeout, DefaultFirstFrameTimeout)
	def(&c.AntiEntropyInterval, DefaultAntiEntropyInterval)
	def(&c.StreamTimeout, DefaultStreamTimeout)
	def(&c.LeaveTimeout, DefaultLeaveTimeout)
	def(&c.GCHorizon, DefaultGCHorizon)
	def(&c.SnapshotInterval, DefaultSnapshotInterval)
	def(&c.ReapTimeout, DefaultReapTimeout)
	orZero(&c.StoreMaxBytes, DefaultStoreMaxBytes)
	orZero(&c.ProxyMaxBodyBytes, DefaultProxyMaxBodyBytes)
	orZero(&c.ProxyAttempts, DefaultProxyAttempts)
	orZero(&c.ProxyFailures, DefaultProxyFailures)
	def(&c.ProxyConnectTimeout, DefaultProxyConnectTimeout)
	def(&c.ProxyFirstByteTimeout, DefaultProxyFirstByteTimeout)
	def(&c.ProxyIdleTimeout, DefaultProxyIdleTimeout)
	def(&c.ProxyBackoff, DefaultProxyBackoff)
	def(&c.ProxyMaxBackoff, DefaultProxyMaxBackoff)
	orZero(&c.KVSubscribers, DefaultKVSubscribers)
	def(&c.KVGrace, DefaultKVGrace)
	def(&c.PendingTimeout, DefaultPendingTimeout)
	if c.KVEventsDial == nil {
		c.KVEventsDial = dialKVEvents
	}
	if c.KVEventsReplay == nil {
		c.KVEventsReplay = replayKVEvents
	}
	return c
}

// ErrConfig is matched by every error Validate returns.
var ErrConfig = errors.New("node: invalid config")

// ConfigError is one problem Validate found with one setting. Key is the
// setting's JSON key (see Config), so that a program that read the setting
// under another name (a flag, an environment variable) can say which name
// the user wrote; Problem says what is wrong, starting with the value.
type ConfigError struct {
	Key     string
	Problem string
}

func (e *ConfigError) Error() string { return ErrConfig.Error() + ": " + e.Key + " " + e.Problem }

// Is makes every ConfigError match ErrConfig.
func (e *ConfigError) Is(target error) bool { return target == ErrConfig }

// Validate reports every problem with c (after defaults) at once, each as
// a *ConfigError.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &ConfigError{Key: key, Problem: fmt.Sprintf(format, a...)})
	}
	if len(c.Name) > 255 {
		bad("node", "is %d bytes, at most 255", len(c.Name))
	} else if c.Name != "" {
		if err := ValidName("name", c.Name, 255); err != nil {
			bad("node", "%q: %s", c.Name, strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": name: "))
		}
	}
	if c.APIToken != "" && strings.TrimSpace(c.APIToken) == "" {
		bad("api_token", "(from the environment) is only white space")
	}
	if _, _, err := net.SplitHostPort(c.BindAddr); err != nil {
		bad("bind", "%q: %v", c.BindAddr, err)
	}
	if c.AdvertiseAddr != "" {
		if ap, err := netip.ParseAddrPort(c.AdvertiseAddr); err != nil {
			bad("advertise", "%q: want ip:port: %v", c.AdvertiseAddr, err)
		} else if ap.Addr().IsUnspecified() || ap.Port() == 0 {
			bad("advertise", "%q: want a reachable ip and a port", c.AdvertiseAddr)
		}
	}
	for _, s := range c.Seeds {
		if err := ValidSeed(s); err != nil {
			bad("join", "%s", strings.TrimPrefix(err.Error(), ErrBadRequest.Error()+": "))
		}
	}
	switch c.Profile {
	case "lan", "wan", "local":
	default:
		bad("profile", "%q: want lan, wan or local", c.Profile)
	}
	if c.APIAddr != "off" {
		host, _, err := net.SplitHostPort(c.APIAddr)
		if err != nil {
			bad("api_addr", "%q: %v", c.APIAddr, err)
		} else if !isLoopbackHost(host) && c.APIToken == "" && c.APITokenFile == "" {
			bad("api_addr", "%q is not loopback: an API token (api_token_file or the environment) is required", c.APIAddr)
		}
	}
	if c.MaxRequestBytes < 1024 {
		bad("max_request_bytes", "%d: at least 1024", c.MaxRequestBytes)
	}
	if c.MaxListItems < 1 || c.MaxListItems > 100000 {
		bad("max_list_items", "%d: want 1..100000", c.MaxListItems)
	}
	if c.MaxWatchers < 1 {
		bad("max_watchers", "%d: at least 1", c.MaxWatchers)
	}
	if c.WatchHistory < 1 || c.WatchHistory > 1<<20 {
		bad("watch_history", "%d: want 1..1048576", c.WatchHistory)
	}
	if c.WatchHistoryBytes < 1<<10 {
		bad("watch_history_bytes", "%d: at least 1024", c.WatchHistoryBytes)
	}
	if c.MaxAntiEntropyStreams < 1 || c.MaxAntiEntropyStreams > 64 {
		bad("max_anti_entropy_streams", "%d: want 1..64", c.MaxAntiEntropyStreams)
	}
	if c.MaxStreamBufferBytes < minStreamBufferBytes {
		bad("max_stream_buffer_bytes", "%d: at least %d", c.MaxStreamBufferBytes, minStreamBufferBytes)
	}
	if d := c.FirstFrameTimeout.D(); d < 0 || d > c.StreamTimeout.D() {
		bad("first_frame_timeout", "%v: want a positive duration at most stream_timeout (%v)", d, c.StreamTimeout.D())
	}
	if c.EagerMembers < 1 {
		bad("eager_members", "%d: at least 1", c.EagerMembers)
	}
	if !(c.RouteCacheThreshold >= 0 && c.RouteCacheThreshold <= 1) {
		bad("route_cache_threshold", "%v: want 0..1", c.RouteCacheThreshold)
	}
	if c.RouteBalanceAbs < 0 {
		bad("route_balance_abs", "%d: must not be negative", c.RouteBalanceAbs)
	}
	if !(c.RouteBalanceRel == 0 || c.RouteBalanceRel >= 1 && c.RouteBalanceRel <= 1e6) {
		bad("route_balance_rel", "%v: want 0 (the default) or 1..1e6", c.RouteBalanceRel)
	}
	if !(c.RouteCostWeight >= 0 && c.RouteCostWeight <= 1e6) {
		bad("route_cost_weight", "%v: want 0 (the threshold rules) or a positive weight up to 1e6", c.RouteCostWeight)
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{
		{"anti_entropy_interval", c.AntiEntropyInterval}, {"stream_timeout", c.StreamTimeout},
		{"leave_timeout", c.LeaveTimeout}, {"gc_horizon", c.GCHorizon}, {"snapshot_interval", c.SnapshotInterval},
	} {
		if d.d < 0 {
			bad(d.key, "%v: must be positive", d.d.D())
		}
	}
	if c.ReapTimeout < Duration(time.Second) {
		bad("reap_timeout", "%v: at least 1s", c.ReapTimeout.D())
	}
	for _, v := range []struct {
		key string
		n   int64
	}{{"store_max_bytes", c.StoreMaxBytes}, {"worker_pages", c.WorkerPages}, {"max_holder_pages", c.MaxHolderPages}} {
		if v.n < 0 {
			bad(v.key, "%d: must not be negative", v.n)
		}
	}
	if c.KVSubscribers < 1 || c.KVSubscribers > 2 {
		bad("kv_subscribers", "%d: want 1 or 2", c.KVSubscribers)
	}
	if c.KVGrace < Duration(time.Second) {
		bad("kv_grace", "%v: at least 1s", c.KVGrace.D())
	}
	if c.PendingTimeout < Duration(time.Second) || c.PendingTimeout > Duration(time.Hour) {
		bad("pending_timeout", "%v: want 1s to 1h (index stamps count seconds)", c.PendingTimeout.D())
	}
	if (c.TLSCertFile == "") != (c.TLSKeyFile == "") {
		if c.TLSCertFile == "" {
			bad("tls_key_file", "without tls_cert_file: they go together")
		} else {
			bad("tls_cert_file", "without tls_key_file: they go together")
		}
	}
	c.validateProxy(bad)
	if c.TLSVerifyClients && c.TLSCAFile == "" {
		bad("tls_verify_clients", "needs tls_ca_file")
	}
	if c.TLSCertFile != "" && c.TLSCAFile == "" {
		bad("tls_cert_file", "needs tls_ca_file to verify other members")
	}
	return errors.Join(errs...)
}

// isLoopbackHost reports whether host (an IP or "localhost") is loopback.
func isLoopbackHost(host string) bool {
	if host == "localhost" {
		return true
	}
	a, err := netip.ParseAddr(host)
	return err == nil && a.IsLoopback()
}

// validateProxy checks the proxy's settings; bad records a problem.
func (c Config) validateProxy(bad func(key, format string, a ...any)) {
	if c.ProxyAddr != "" {
		if _, port, err := net.SplitHostPort(c.ProxyAddr); err != nil {
			bad("proxy_addr", "%q: %v", c.ProxyAddr, err)
		} else if c.ProxyAddr == c.APIAddr && port != "0" {
			bad("proxy_addr", "%q: the API listens there", c.ProxyAddr)
		}
	}
	switch {
	case c.ProxyTLSCertFile != "" && c.ProxyTLSKeyFile == "":
		bad("proxy_tls_cert", "set without proxy_tls_key: the proxy's certificate and its key go together")
	case c.ProxyTLSCertFile == "" && c.ProxyTLSKeyFile != "":
		bad("proxy_tls_key", "set without proxy_tls_cert: the proxy's certificate and its key go together")
	case c.ProxyTLSCertFile != "" && c.ProxyAddr == "":
		bad("proxy_tls_cert", "set without proxy_addr: there is no proxy to serve HTTPS")
	}
	if c.ProxyToken != "" && strings.TrimSpace(c.ProxyToken) == "" {
		bad("proxy_token", "(from the environment) is only white space")
	}
	if c.ProxyMaxBodyBytes < 1024 {
		bad("proxy_max_body_bytes", "%d: at least 1024", c.ProxyMaxBodyBytes)
	}
	if c.ProxyAttempts < 1 || c.ProxyAttempts > 8 {
		bad("proxy_attempts", "%d: want 1..8", c.ProxyAttempts)
	}
	if c.ProxyFailures < 1 {
		bad("proxy_failures", "%d: at least 1", c.ProxyFailures)
	}
	for _, d := range []struct {
		key string
		d   Duration
	}{
		{"proxy_connect_timeout", c.ProxyConnectTimeout}, {"proxy_first_byte_timeout", c.ProxyFirstByteTimeout},
		{"proxy_idle_timeout", c.ProxyIdleTimeout}, {"proxy_backoff", c.ProxyBackoff}, {"proxy_max_backoff", c.ProxyMaxBackoff},
	} {
		if d.d < Duration(time.Millisecond) {
			bad(d.key, "%v: at least 1ms", d.d.D())
		}
	}
	if c.ProxyMaxBackoff < c.ProxyBackoff {
		bad("proxy_max_backoff", "%v: below proxy_backoff (%v)", c.ProxyMaxBackoff.D(), c.ProxyBackoff.D())
	}
	if c.ProxyHealthInterval != 0 && c.ProxyHealthInterval < Duration(100*time.Millisecond) {
		bad("proxy_health_interval", "%v: 0 (off) or at least 100ms", c.ProxyHealthInterval.D())
	}
	switch c.ProxyTokenizer {
	case "", "text", "bytes":
	default:
		bad("proxy_tokenizer", "%q: want text or bytes", c.ProxyTokenizer)
	}
	if c.ProxyKeyHeader != "" {
		if err := ValidName("header", c.ProxyKeyHeader, 128); err != nil || strings.ContainsAny(c.ProxyKeyHeader, " :") {
			bad("proxy_key_header", "%q: want an HTTP header name", c.ProxyKeyHeader)
		}
	}
}
