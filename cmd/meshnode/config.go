package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/radix"
)

// agentConfig is the agent's configuration. Every field but the secrets is
// a flag (--data-dir), a key of the JSON config file (data_dir) and an
// environment variable (MESHNODE_DATA_DIR). Precedence: defaults < file <
// environment < flags. A setting the agent hands to node.Config has the
// key of node.Config's JSON form, so that the node's validation errors name
// it; the agent then names it as the user wrote it (keyNames).
type agentConfig struct {
	Node         string        `json:"node"`
	Bind         string        `json:"bind"`
	Advertise    string        `json:"advertise"`
	APIAddr      string        `json:"api_addr"`
	APITokenFile string        `json:"api_token_file"`
	Join         []string      `json:"join"`
	RetryJoin    []string      `json:"retry_join"`
	JoinTimeout  node.Duration `json:"join_timeout"`
	Label        string        `json:"label"`
	Profile      string        `json:"profile"`
	DataDir      string        `json:"data_dir"`

	EncryptKeyFile   string `json:"encrypt_key_file"`
	TLSCertFile      string `json:"tls_cert_file"`
	TLSKeyFile       string `json:"tls_key_file"`
	TLSCAFile        string `json:"tls_ca_file"`
	TLSVerifyClients bool   `json:"tls_verify_clients"`
	APIPlaintext     bool   `json:"api_plaintext"`

	LogLevel  string `json:"log_level"`
	LogFormat string `json:"log_format"`

	LeaveTimeout        node.Duration `json:"leave_timeout"`
	AntiEntropyInterval node.Duration `json:"anti_entropy_interval"`
	SnapshotInterval    node.Duration `json:"snapshot_interval"`
	StoreMaxBytes       int64         `json:"store_max_bytes"`
	WorkerPages         int64         `json:"worker_pages"`
	MaxHolderPages      int64         `json:"max_holder_pages"`
	KVSubscribers       int64         `json:"kv_subscribers"`
	EagerMembers        int64         `json:"eager_members"`
	KVGrace             node.Duration `json:"kv_grace"`
	PendingTimeout      node.Duration `json:"pending_timeout"`
	MinorityShare       bool          `json:"minority_share"`
	HeapFloorBytes      int64         `json:"heap_floor_bytes"`
	// WatchHistory and WatchHistoryBytes bound the changes kept for
	// watches to resume from (node.Config).
	WatchHistory      int64 `json:"watch_history"`
	WatchHistoryBytes int64 `json:"watch_history_bytes"`
	// The routing policy (node.Config.RouteCacheThreshold and the others).
	RouteCacheThreshold float64 `json:"route_cache_threshold"`
	RouteBalanceAbs     int64   `json:"route_balance_abs"`
	RouteBalanceRel     float64 `json:"route_balance_rel"`
	RouteCostWeight     float64 `json:"route_cost_weight"`

	MaxStreamBufferBytes int64         `json:"max_stream_buffer_bytes"`
	FirstFrameTimeout    node.Duration `json:"first_frame_timeout"`

	ReapTimeout           node.Duration `json:"reap_timeout"`
	ReadyRequiresMajority bool          `json:"ready_requires_majority"`

	// The routing proxy (node.Config's Proxy* fields).
	ProxyAddr             string        `json:"proxy_addr"`
	ProxyTokenFile        string        `json:"proxy_token_file"`
	ProxyMaxBodyBytes     int64         `json:"proxy_max_body_bytes"`
	ProxyAttempts         int64         `json:"proxy_attempts"`
	ProxyConnectTimeout   node.Duration `json:"proxy_connect_timeout"`
	ProxyFirstByteTimeout node.Duration `json:"proxy_first_byte_timeout"`
	ProxyIdleTimeout      node.Duration `json:"proxy_idle_timeout"`
	ProxyFailures         int64         `json:"proxy_failures"`
	ProxyBackoff          node.Duration `json:"proxy_backoff"`
	ProxyMaxBackoff       node.Duration `json:"proxy_max_backoff"`
	ProxyHealthInterval   node.Duration `json:"proxy_health_interval"`
	ProxyKeyHeader        string        `json:"proxy_key_header"`
	ProxyTokenizer        string        `json:"proxy_tokenizer"`
	ProxyTLSCert          string        `json:"proxy_tls_cert"`
	ProxyTLSKey           string        `json:"proxy_tls_key"`

	// Secrets come from the environment only (or from the files above):
	// never from a flag, which any user can read in the process list, nor
	// from the config file, which is often world-readable.
	EncryptKey string `json:"-"` // MESHNODE_ENCRYPT_KEY
	APIToken   string `json:"-"` // MESHNODE_API_TOKEN
	ProxyToken string `json:"-"` // MESHNODE_PROXY_TOKEN
}

// Environment variables of the secrets.
const (
	envEncryptKey = "MESHNODE_ENCRYPT_KEY"
	envAPIToken   = "MESHNODE_API_TOKEN"
	envProxyToken = "MESHNODE_PROXY_TOKEN"
	envConfig     = "MESHNODE_CONFIG"
)

// defaultJoinTimeout bounds how long a start with --join waits for the
// join: long enough for a few attempts with backoff against seeds that are
// starting too.
const defaultJoinTimeout = 30 * time.Second

// defaultConfig returns the defaults; the node name is the host name.
func defaultConfig(hostname func() (string, error)) agentConfig {
	name, _ := hostname()
	return agentConfig{
		Node:           name,
		Bind:           node.DefaultBindAddr,
		APIAddr:        node.DefaultAPIAddr,
		JoinTimeout:    node.Duration(defaultJoinTimeout),
		Profile:        "lan",
		LogLevel:       "info",
		LogFormat:      "auto",
		LeaveTimeout:   node.Duration(node.DefaultLeaveTimeout),
		HeapFloorBytes: node.DefaultHeapFloor,
		// The node's defaults, so that --print-config and -h show what
		// runs rather than 0.
		AntiEntropyInterval:  node.Duration(node.DefaultAntiEntropyInterval),
		SnapshotInterval:     node.Duration(node.DefaultSnapshotInterval),
		StoreMaxBytes:        node.DefaultStoreMaxBytes,
		ReapTimeout:          node.Duration(node.DefaultReapTimeout),
		MaxStreamBufferBytes: node.DefaultMaxStreamBufferBytes,
		FirstFrameTimeout:    node.Duration(node.DefaultFirstFrameTimeout),
		WatchHistory:         node.DefaultWatchHistory,
		WatchHistoryBytes:    node.DefaultWatchHistoryBytes,

		ProxyMaxBodyBytes:     node.DefaultProxyMaxBodyBytes,
		ProxyAttempts:         node.DefaultProxyAttempts,
		ProxyConnectTimeout:   node.Duration(node.DefaultProxyConnectTimeout),
		ProxyFirstByteTimeout: node.Duration(node.DefaultProxyFirstByteTimeout),
		ProxyIdleTimeout:      node.Duration(node.DefaultProxyIdleTimeout),
		ProxyFailures:         node.DefaultProxyFailures,
		ProxyBackoff:          node.Duration(node.DefaultProxyBackoff),
		ProxyMaxBackoff:       node.Duration(node.DefaultProxyMaxBackoff),
		KVSubscribers:         node.DefaultKVSubscribers,
		EagerMembers:          node.DefaultEagerMembers,
		KVGrace:               node.Duration(node.DefaultKVGrace),
		PendingTimeout:        node.Duration(node.DefaultPendingTimeout),
		RouteCacheThreshold:   radix.DefaultPolicy().CacheThreshold,
		RouteBalanceAbs:       int64(radix.DefaultPolicy().BalanceAbsThreshold),
		RouteBalanceRel:       radix.DefaultPolicy().BalanceRelThreshold,
	}
}

// option is one configuration setting as a flag and an environment
// variable; the file key is the JSON tag of the same field.
type option struct {
	name  string // flag name; env is MESHNODE_ + upper snake case
	usage string
	// aliases are former names, still accepted as flags, environment
	// variables and file keys.
	aliases []string
	list    bool // repeatable flag; comma-separated in the environment
	bool    bool
	set     func(c *agentConfig, v string) error
	get     func(c *agentConfig) string
}

func (o option) env() string { return envName(o.name) }

// key returns the option's config file key.
func (o option) key() string { return fileKey(o.name) }

// envName and fileKey spell a flag name as an environment variable and as
// a config file key.
func envName(flag string) string { return "MESHNODE_" + strings.ToUpper(fileKey(flag)) }
func fileKey(flag string) string { return strings.ReplaceAll(flag, "-", "_") }

func strOpt(name, usage string, f func(*agentConfig) *string) option {
	return option{name: name, usage: usage,
		set: func(c *agentConfig, v string) error { *f(c) = v; return nil },
		get: func(c *agentConfig) string { return *f(c) }}
}

func listOpt(name, usage string, f func(*agentConfig) *[]string) option {
	return option{name: name, usage: usage, list: true,
		set: func(c *agentConfig, v string) error { *f(c) = append(*f(c), v); return nil },
		get: func(c *agentConfig) string { return strings.Join(*f(c), ",") }}
}

func boolOpt(name, usage string, f func(*agentConfig) *bool) option {
	return option{name: name, usage: usage, bool: true,
		set: func(c *agentConfig, v string) error {
			b, err := strconv.ParseBool(v)
			if err != nil {
				return fmt.Errorf("%q: want true or false", v)
			}
			*f(c) = b
			return nil
		},
		get: func(c *agentConfig) string { return strconv.FormatBool(*f(c)) }}
}

func durOpt(name, usage string, f func(*agentConfig) *node.Duration) option {
	return option{name: name, usage: usage,
		set: func(c *agentConfig, v string) error {
			d, err := time.ParseDuration(v)
			if err != nil {
				return fmt.Errorf("%q: want a duration like 5s", v)
			}
			*f(c) = node.Duration(d)
			return nil
		},
		get: func(c *agentConfig) string { return f(c).D().String() }}
}

func intOpt(name, usage string, f func(*agentConfig) *int64) option {
	return option{name: name, usage: usage,
		set: func(c *agentConfig, v string) error {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return fmt.Errorf("%q: want an integer", v)
			}
			*f(c) = n
			return nil
		},
		get: func(c *agentConfig) string { return strconv.FormatInt(*f(c), 10) }}
}

func floatOpt(name, usage string, f func(*agentConfig) *float64) option {
	return option{name: name, usage: usage,
		set: func(c *agentConfig, v string) error {
			x, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return fmt.Errorf("%q: want a number", v)
			}
			*f(c) = x
			return nil
		},
		get: func(c *agentConfig) string { return strconv.FormatFloat(*f(c), 'g', -1, 64) }}
}

// withAliases returns o that also answers to the former names aliases.
func withAliases(o option, aliases ...string) option {
	o.aliases = aliases
	return o
}

// options lists every setting; README's configuration reference follows it.
var options = []option{
	strOpt("node", "`name` of the member, unique in the cluster; defaults to the host name", func(c *agentConfig) *string { return &c.Node }),
	strOpt("bind", "`host:port` for gossip (UDP) and streams (TCP); port 0 picks a free one", func(c *agentConfig) *string { return &c.Bind }),
	strOpt("advertise", "`ip:port` other members reach this node at (default: the bound address)", func(c *agentConfig) *string { return &c.Advertise }),
	strOpt("api-addr", "`host:port` of the HTTP API, or off; a non-loopback address needs an API token", func(c *agentConfig) *string { return &c.APIAddr }),
	strOpt("api-token-file", "`file` holding the API bearer token (or set MESHNODE_API_TOKEN)", func(c *agentConfig) *string { return &c.APITokenFile }),
	listOpt("join", "`host:port` of a member to join through; the start fails if not joined within --join-timeout (repeatable)", func(c *agentConfig) *[]string { return &c.Join }),
	listOpt("retry-join", "`host:port` or DNS name:port to join through, resolved again and retried with backoff until joined; the start does not wait (repeatable)", func(c *agentConfig) *[]string { return &c.RetryJoin }),
	durOpt("join-timeout", "how long (`duration`) a start with --join waits for the join", func(c *agentConfig) *node.Duration { return &c.JoinTimeout }),
	strOpt("label", "cluster `name`; with encryption it authenticates every packet", func(c *agentConfig) *string { return &c.Label }),
	strOpt("profile", "timing `profile`: lan, wan or local", func(c *agentConfig) *string { return &c.Profile }),
	strOpt("data-dir", "`directory` for snapshots and the generation; empty disables persistence", func(c *agentConfig) *string { return &c.DataDir }),
	strOpt("encrypt-key-file", "`file` holding the 32-byte gossip key (base64, hex or raw; or set MESHNODE_ENCRYPT_KEY)", func(c *agentConfig) *string { return &c.EncryptKeyFile }),
	strOpt("tls-cert-file", "PEM certificate `file` for member streams and the API (with --tls-key-file and --tls-ca-file; SIGHUP reloads both)", func(c *agentConfig) *string { return &c.TLSCertFile }),
	strOpt("tls-key-file", "PEM private key `file` of --tls-cert-file", func(c *agentConfig) *string { return &c.TLSKeyFile }),
	strOpt("tls-ca-file", "PEM CA `file` that signs members' (and API clients') certificates", func(c *agentConfig) *string { return &c.TLSCAFile }),
	boolOpt("tls-verify-clients", "require API clients to present a certificate signed by --tls-ca-file", func(c *agentConfig) *bool { return &c.TLSVerifyClients }),
	boolOpt("api-plaintext", "serve the API over plain HTTP although TLS is configured", func(c *agentConfig) *bool { return &c.APIPlaintext }),
	strOpt("log-level", "`level`: debug, info, warn or error (SIGHUP reloads it)", func(c *agentConfig) *string { return &c.LogLevel }),
	strOpt("log-format", "`format`: text, json, or auto (text on a terminal, json otherwise)", func(c *agentConfig) *string { return &c.LogFormat }),
	durOpt("leave-timeout", "how long (`duration`) a graceful leave waits for the news to spread", func(c *agentConfig) *node.Duration { return &c.LeaveTimeout }),
	withAliases(durOpt("anti-entropy-interval", "`period` of anti-entropy with a random member (0: the default)", func(c *agentConfig) *node.Duration { return &c.AntiEntropyInterval }), "sync-interval"),
	durOpt("snapshot-interval", "`period` of snapshots to --data-dir (0: the default)", func(c *agentConfig) *node.Duration { return &c.SnapshotInterval }),
	intOpt("store-max-bytes", "bound of the replicated store in `bytes` (0: the default)", func(c *agentConfig) *int64 { return &c.StoreMaxBytes }),
	intOpt("worker-pages", "each worker's budget of `pages` in the prefix index (0: unlimited)", func(c *agentConfig) *int64 { return &c.WorkerPages }),
	intOpt("max-holder-pages", "cap of the prefix index in (page, worker) `pairs` (0: unlimited)", func(c *agentConfig) *int64 { return &c.MaxHolderPages }),
	intOpt("eager-members", "the largest cluster (in `members`, self included) in which deltas go straight to every member; above, by gossip", func(c *agentConfig) *int64 { return &c.EagerMembers }),
	intOpt("kv-subscribers", "how many live `nodes` subscribe to each worker's engine KV events: 1 or 2", func(c *agentConfig) *int64 { return &c.KVSubscribers }),
	durOpt("kv-grace", "how long (`duration`) an engine may stay unreachable (failed dials; with a replay endpoint, also a silent stream whose replay endpoint does not answer) before its event-sourced pages are dropped", func(c *agentConfig) *node.Duration { return &c.KVGrace }),
	durOpt("pending-timeout", "how long (`duration`) a routed prompt's pages count as pending on a worker that streams KV events, until its events confirm them", func(c *agentConfig) *node.Duration { return &c.PendingTimeout }),
	intOpt("heap-floor-bytes", "heap size in `bytes` below which the garbage collector does not run; fewer collections on a small heap keep the API's latency tail low (0: Go's default, GOGC alone)", func(c *agentConfig) *int64 { return &c.HeapFloorBytes }),
	intOpt("watch-history", "`changes` of each namespace kept for watches to resume from by index (0: node default, 1024)", func(c *agentConfig) *int64 { return &c.WatchHistory }),
	intOpt("watch-history-bytes", "bound in `bytes` of the keys and values the watch history of all namespaces keeps (0: node default, 64 MiB)", func(c *agentConfig) *int64 { return &c.WatchHistoryBytes }),
	intOpt("max-stream-buffer-bytes", "`bytes` all TCP stream readers may hold together; connections not yet proven hold at most a quarter, and a stream that needs more is closed", func(c *agentConfig) *int64 { return &c.MaxStreamBufferBytes }),
	durOpt("first-frame-timeout", "how long (`duration`) an incoming TCP connection has for its TLS handshake and first valid frame", func(c *agentConfig) *node.Duration { return &c.FirstFrameTimeout }),
	durOpt("reap-timeout", "how long (`duration`) a dead or left member is remembered (and counted in the cluster size a majority is judged against); it goes within 1.125 times this", func(c *agentConfig) *node.Duration { return &c.ReapTimeout }),
	boolOpt("ready-requires-majority", "/readyz answers 503 while this node sees no majority of the last known cluster (a minority replica leaves the load balancer)", func(c *agentConfig) *bool { return &c.ReadyRequiresMajority }),
	boolOpt("minority-share", "on the minority side of a partition, admit only this side's share of each rate limit", func(c *agentConfig) *bool { return &c.MinorityShare }),
	strOpt("proxy-addr", "`host:port` of the OpenAI-compatible routing proxy (/v1/chat/completions, /v1/completions, /v1/models); empty: off", func(c *agentConfig) *string { return &c.ProxyAddr }),
	strOpt("proxy-tls-cert", "PEM certificate `file` the proxy serves HTTPS with (with --proxy-tls-key; SIGHUP reloads both); none: plain HTTP", func(c *agentConfig) *string { return &c.ProxyTLSCert }),
	strOpt("proxy-tls-key", "PEM private key `file` of --proxy-tls-cert", func(c *agentConfig) *string { return &c.ProxyTLSKey }),
	strOpt("proxy-token-file", "`file` holding the bearer token the proxy's clients must present (or set MESHNODE_PROXY_TOKEN); none: the proxy is open", func(c *agentConfig) *string { return &c.ProxyTokenFile }),
	intOpt("proxy-max-body-bytes", "bound in `bytes` of a proxied request body", func(c *agentConfig) *int64 { return &c.ProxyMaxBodyBytes }),
	intOpt("proxy-attempts", "workers one proxied request is tried on (connect error, 5xx or first-byte timeout before anything reached the client); 1: no retries", func(c *agentConfig) *int64 { return &c.ProxyAttempts }),
	durOpt("proxy-connect-timeout", "how long (`duration`) the proxy waits to connect to an engine", func(c *agentConfig) *node.Duration { return &c.ProxyConnectTimeout }),
	durOpt("proxy-first-byte-timeout", "how long (`duration`) the proxy waits for an answer to start (a non-streamed answer starts when it is complete)", func(c *agentConfig) *node.Duration { return &c.ProxyFirstByteTimeout }),
	durOpt("proxy-idle-timeout", "how long (`duration`) a streamed answer may stay silent before the proxy cuts it", func(c *agentConfig) *node.Duration { return &c.ProxyIdleTimeout }),
	intOpt("proxy-failures", "consecutive failed requests that take a worker out of the proxy's routing for a backoff", func(c *agentConfig) *int64 { return &c.ProxyFailures }),
	durOpt("proxy-backoff", "how long (`duration`) a failing worker first stays out; doubled at each failure after it came back", func(c *agentConfig) *node.Duration { return &c.ProxyBackoff }),
	durOpt("proxy-max-backoff", "cap (`duration`) of a failing worker's backoff", func(c *agentConfig) *node.Duration { return &c.ProxyMaxBackoff }),
	durOpt("proxy-health-interval", "`period` of active checks of each worker's GET /health (0: off)", func(c *agentConfig) *node.Duration { return &c.ProxyHealthInterval }),
	strOpt("proxy-tokenizer", "how the proxy routes text prompts: `text` (pages of bytes) or bytes (token ids as meshnode engine tokenizes, matching its KV events)", func(c *agentConfig) *string { return &c.ProxyTokenizer }),
	strOpt("proxy-key-header", "request `header` carrying a client's API key, limited on its own by the limit named api-key", func(c *agentConfig) *string { return &c.ProxyKeyHeader }),
	floatOpt("route-cache-threshold", "routing: the match `ratio` from which the best-matching worker wins (threshold rules)", func(c *agentConfig) *float64 { return &c.RouteCacheThreshold }),
	intOpt("route-balance-abs", "routing: loads are imbalanced (the least loaded wins) when max - min exceeds this `load` (threshold rules)", func(c *agentConfig) *int64 { return &c.RouteBalanceAbs }),
	floatOpt("route-balance-rel", "routing: ... and max exceeds this `factor` times min (threshold rules)", func(c *agentConfig) *float64 { return &c.RouteBalanceRel }),
	floatOpt("route-cost-weight", "routing: a positive `weight` selects the cost rule (queued prefill tokens + weight x unmatched prompt tokens; loads must be queued tokens; 3 on the traces); 0: the threshold rules", func(c *agentConfig) *float64 { return &c.RouteCostWeight }),
}

// agentFlags are the flags that are not configuration.
type agentFlags struct {
	configFile  string
	printConfig bool
}

// setting records one flag occurrence, applied after the file and the
// environment; given is the flag as the user wrote it (--sync-interval for
// an alias).
type setting struct {
	opt   *option
	val   string
	given string
}

// recorder is the flag.Value of an option's name or alias: it checks the
// value at parse time and records it.
type recorder struct {
	opt  *option
	name string
	def  string
	sets *[]setting
}

func (r *recorder) String() string {
	if r == nil {
		return ""
	}
	return r.def
}

func (r *recorder) Set(v string) error {
	var scratch agentConfig
	if err := r.opt.set(&scratch, v); err != nil {
		return err
	}
	*r.sets = append(*r.sets, setting{r.opt, v, "--" + r.name})
	return nil
}

func (r *recorder) IsBoolFlag() bool { return r.opt.bool }

// agentFlagSet builds the agent's flag set; the defaults it shows are those
// of def.
func agentFlagSet(stderr io.Writer, def *agentConfig, sets *[]setting, af *agentFlags) *flag.FlagSet {
	fs := newFlagSet("agent", stderr)
	fs.StringVar(&af.configFile, "config", "", "JSON config file (keys are the flag names in snake_case; or set "+envConfig+")")
	fs.BoolVar(&af.printConfig, "print-config", false, "print the effective configuration (secrets redacted) and exit")
	for i := range options {
		o := &options[i]
		d := o.get(def)
		switch d {
		case "false", "0", "0s":
			d = "" // flag prints no default for a zero value
		}
		fs.Var(&recorder{opt: o, name: o.name, def: d, sets: sets}, o.name, o.usage+" [env "+o.env()+"]")
		for _, a := range o.aliases {
			fs.Var(&recorder{opt: o, name: a, sets: sets}, a, "former name of --"+o.name)
		}
	}
	return fs
}

// keyNames maps a config file key to the name the user gave the setting
// under: a flag (--bind), an environment variable (MESHNODE_BIND) or a key
// of the config file, former names included. Settings left at their
// defaults keep their file key.
type keyNames map[string]string

// of returns the name key was given under.
func (k keyNames) of(key string) string {
	if n, ok := k[key]; ok {
		return n
	}
	return key
}

// loadConfig computes the effective configuration from args, the
// environment and the config file, and validates it, reporting every
// problem at once; each names its setting as the user gave it.
func loadConfig(args []string, env lookupEnv, hostname func() (string, error), stderr io.Writer) (agentConfig, agentFlags, error) {
	var sets []setting
	var af agentFlags
	cfg := defaultConfig(hostname)
	fs := agentFlagSet(stderr, &cfg, &sets, &af)
	if err := fs.Parse(args); err != nil {
		return cfg, af, flagError{err}
	}
	if fs.NArg() > 0 {
		return cfg, af, badUsage("unexpected argument %q: the agent takes flags only", fs.Arg(0))
	}
	names := keyNames{"api_token": envAPIToken, "proxy_token": envProxyToken}
	path := af.configFile
	if path == "" {
		path, _ = env(envConfig)
	}
	if path != "" {
		given, err := readConfigFile(path, &cfg)
		if err != nil {
			return cfg, af, err
		}
		for key, as := range given {
			names[key] = "config file " + path + ": " + as
		}
	}
	var errs []error
	for i := range options {
		o := &options[i]
		name := o.env()
		v, ok := env(name)
		for _, a := range o.aliases {
			if ok {
				break
			}
			name = envName(a)
			v, ok = env(name)
		}
		if !ok {
			continue
		}
		names[o.key()] = name
		if o.list {
			var l []string
			for s := range strings.SplitSeq(v, ",") {
				if s = strings.TrimSpace(s); s != "" {
					l = append(l, s)
				}
			}
			*listField(&cfg, o) = l
			continue
		}
		if err := o.set(&cfg, v); err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", name, err))
		}
	}
	cfg.EncryptKey, _ = env(envEncryptKey)
	cfg.APIToken, _ = env(envAPIToken)
	cfg.ProxyToken, _ = env(envProxyToken)
	cleared := map[*option]bool{}
	for _, s := range sets {
		if s.opt.list && !cleared[s.opt] {
			*listField(&cfg, s.opt) = nil
			cleared[s.opt] = true
		}
		_ = s.opt.set(&cfg, s.val) // checked by recorder.Set
		names[s.opt.key()] = s.given
	}
	cfg.zeroMeansDefault()
	if err := errors.Join(append(errs, cfg.validate(names))...); err != nil {
		return cfg, af, err
	}
	return cfg, af, nil
}

// zeroMeansDefault replaces the zeros that mean "the default" by the
// default, so that the configuration printed is the one that runs.
func (c *agentConfig) zeroMeansDefault() {
	def := defaultConfig(func() (string, error) { return "", nil })
	if c.AntiEntropyInterval == 0 {
		c.AntiEntropyInterval = def.AntiEntropyInterval
	}
	if c.SnapshotInterval == 0 {
		c.SnapshotInterval = def.SnapshotInterval
	}
	if c.StoreMaxBytes == 0 {
		c.StoreMaxBytes = def.StoreMaxBytes
	}
	if c.ReapTimeout == 0 {
		c.ReapTimeout = def.ReapTimeout
	}
}

// listField returns the slice a list option appends to.
func listField(c *agentConfig, o *option) *[]string {
	switch o.name {
	case "join":
		return &c.Join
	case "retry-join":
		return &c.RetryJoin
	}
	panic("meshnode: no list field for option " + o.name)
}

// readConfigFile decodes a JSON object over cfg; unknown keys are errors,
// so that a misspelt key is not silently ignored. Former names of keys are
// read as the current ones. It returns the keys the file sets, each with
// the name the file gives it.
func readConfigFile(path string, cfg *agentConfig) (given map[string]string, err error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, fmt.Errorf("config file %s: trailing data after the JSON object", path)
	}
	given = make(map[string]string, len(raw))
	for _, o := range options {
		for _, a := range o.aliases {
			v, ok := raw[fileKey(a)]
			if !ok {
				continue
			}
			if _, both := raw[o.key()]; both {
				return nil, fmt.Errorf("config file %s: %s and its former name %s both set", path, o.key(), fileKey(a))
			}
			delete(raw, fileKey(a))
			raw[o.key()] = v
			given[o.key()] = fileKey(a)
		}
	}
	for k := range raw {
		if _, ok := given[k]; !ok {
			given[k] = k
		}
	}
	canonical, err := json.Marshal(raw)
	if err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	dec = json.NewDecoder(bytes.NewReader(canonical))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return nil, fmt.Errorf("config file %s: %w", path, err)
	}
	return given, nil
}

// configError is a problem with one setting, named as the user gave it.
type configError struct {
	name, problem string
	err           error // the node's *node.ConfigError, if it found the problem
}

func (e *configError) Error() string { return e.name + " " + e.problem }
func (e *configError) Unwrap() error { return e.err }

// validate checks the configuration: what the agent adds, then the node's
// own validation; every problem names its setting as names says the user
// gave it.
func (c agentConfig) validate(names keyNames) error {
	var errs []error
	bad := func(key, format string, a ...any) {
		errs = append(errs, &configError{name: names.of(key), problem: fmt.Sprintf(format, a...)})
	}
	if _, err := parseLevel(c.LogLevel); err != nil {
		bad("log_level", "%q: want debug, info, warn or error", c.LogLevel)
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		bad("log_format", "%q: want auto, text or json", c.LogFormat)
	}
	if c.JoinTimeout.D() < 100*time.Millisecond {
		bad("join_timeout", "%v: at least 100ms", c.JoinTimeout.D())
	}
	if c.HeapFloorBytes < 0 {
		bad("heap_floor_bytes", "%d: want 0 or more", c.HeapFloorBytes)
	}
	if c.Node == "" {
		bad("node", "empty: no name given and the host name is unknown")
	}
	// The node checks the seeds of both lists as one; the agent checks
	// each list, to name the one a bad seed is in.
	for _, l := range []struct {
		key   string
		seeds []string
	}{{"join", c.Join}, {"retry_join", c.RetryJoin}} {
		for _, s := range l.seeds {
			if err := node.ValidSeed(s); err != nil {
				bad(l.key, "%s", strings.TrimPrefix(err.Error(), node.ErrBadRequest.Error()+": "))
			}
		}
	}
	if err := c.nodeConfig().Validate(); err != nil {
		nerrs := []error{err}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			nerrs = j.Unwrap()
		}
		for _, e := range nerrs {
			var ce *node.ConfigError
			switch {
			case !errors.As(e, &ce):
				errs = append(errs, e)
			case ce.Key == "join": // checked above
			default:
				errs = append(errs, &configError{name: names.of(ce.Key), problem: ce.Problem, err: ce})
			}
		}
	}
	return errors.Join(errs...)
}

// parseLevel reads a log level name.
func parseLevel(s string) (slog.Level, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(s)); err != nil {
		return 0, fmt.Errorf("log_level %q: want debug, info, warn or error", s)
	}
	return l, nil
}

// nodeConfig maps the agent's configuration onto the node's; the logger,
// registry and version are the caller's to add.
func (c agentConfig) nodeConfig() node.Config {
	cfg := node.Config{
		Name:                  c.Node,
		BindAddr:              c.Bind,
		AdvertiseAddr:         c.Advertise,
		Seeds:                 append(append([]string(nil), c.Join...), c.RetryJoin...),
		Label:                 c.Label,
		Profile:               c.Profile,
		APIAddr:               c.APIAddr,
		APITokenFile:          c.APITokenFile,
		APIToken:              c.APIToken,
		LeaveTimeout:          c.LeaveTimeout,
		AntiEntropyInterval:   c.AntiEntropyInterval,
		SnapshotInterval:      c.SnapshotInterval,
		DataDir:               c.DataDir,
		StoreMaxBytes:         c.StoreMaxBytes,
		WorkerPages:           c.WorkerPages,
		MaxHolderPages:        c.MaxHolderPages,
		KVGrace:               c.KVGrace,
		PendingTimeout:        c.PendingTimeout,
		MinorityShare:         c.MinorityShare,
		MaxStreamBufferBytes:  c.MaxStreamBufferBytes,
		FirstFrameTimeout:     c.FirstFrameTimeout,
		ReapTimeout:           c.ReapTimeout,
		ReadyRequiresMajority: c.ReadyRequiresMajority,
		EncryptKeyFile:        c.EncryptKeyFile,
		EncryptKey:            c.EncryptKey,
		TLSCertFile:           c.TLSCertFile,
		TLSKeyFile:            c.TLSKeyFile,
		TLSCAFile:             c.TLSCAFile,
		TLSVerifyClients:      c.TLSVerifyClients,
		APIPlaintext:          c.APIPlaintext,
		ProxyAddr:             c.ProxyAddr,
		ProxyTokenFile:        c.ProxyTokenFile,
		ProxyToken:            c.ProxyToken,
		ProxyMaxBodyBytes:     c.ProxyMaxBodyBytes,
		ProxyConnectTimeout:   c.ProxyConnectTimeout,
		ProxyFirstByteTimeout: c.ProxyFirstByteTimeout,
		ProxyIdleTimeout:      c.ProxyIdleTimeout,
		ProxyBackoff:          c.ProxyBackoff,
		ProxyMaxBackoff:       c.ProxyMaxBackoff,
		ProxyHealthInterval:   c.ProxyHealthInterval,
		ProxyKeyHeader:        c.ProxyKeyHeader,
		ProxyTokenizer:        c.ProxyTokenizer,
		ProxyTLSCertFile:      c.ProxyTLSCert,
		ProxyTLSKeyFile:       c.ProxyTLSKey,
		RouteCacheThreshold:   c.RouteCacheThreshold,
		RouteBalanceAbs:       int(min(max(c.RouteBalanceAbs, -1), 1<<30)),
		RouteBalanceRel:       c.RouteBalanceRel,
		RouteCostWeight:       c.RouteCostWeight,
	}
	// Out of range values stay out of range, for Validate to refuse.
	cfg.WatchHistory = int(min(max(c.WatchHistory, -1), 1<<30))
	cfg.WatchHistoryBytes = c.WatchHistoryBytes
	cfg.ProxyAttempts = int(min(max(c.ProxyAttempts, -1), 1<<20))
	cfg.ProxyFailures = int(min(max(c.ProxyFailures, -1), 1<<30))
	cfg.KVSubscribers = int(min(max(c.KVSubscribers, -1), 1<<30))
	cfg.EagerMembers = int(min(max(c.EagerMembers, -1), 1<<30))
	return cfg
}

// encrypted reports whether gossip will be encrypted.
func (c agentConfig) encrypted() bool { return c.EncryptKey != "" || c.EncryptKeyFile != "" }

// redacted is the configuration as --print-config shows it: every key of
// the file format, and the secrets given through the environment as
// "<redacted>".
type redacted struct {
	agentConfig
	EncryptKey string `json:"encrypt_key,omitempty"`
	APIToken   string `json:"api_token,omitempty"`
	ProxyToken string `json:"proxy_token,omitempty"`
}

// printConfig writes the effective configuration as JSON. Without secrets
// in the environment the output is a valid config file.
func printConfig(w io.Writer, c agentConfig) error {
	if c.Join == nil {
		c.Join = []string{}
	}
	if c.RetryJoin == nil {
		c.RetryJoin = []string{}
	}
	r := redacted{agentConfig: c}
	if c.EncryptKey != "" {
		r.EncryptKey = "<redacted>"
	}
	if c.APIToken != "" {
		r.APIToken = "<redacted>"
	}
	if c.ProxyToken != "" {
		r.ProxyToken = "<redacted>"
	}
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
