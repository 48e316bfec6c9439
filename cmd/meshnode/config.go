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
)

// agentConfig is the agent's configuration. Every field but the secrets is
// a flag (--data-dir), a key of the JSON config file (data_dir) and an
// environment variable (MESHNODE_DATA_DIR). Precedence: defaults < file <
// environment < flags.
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

	LeaveTimeout     node.Duration `json:"leave_timeout"`
	SyncInterval     node.Duration `json:"sync_interval"`
	SnapshotInterval node.Duration `json:"snapshot_interval"`
	StoreMaxBytes    int64         `json:"store_max_bytes"`
	WorkerPages      int64         `json:"worker_pages"`
	MaxHolderPages   int64         `json:"max_holder_pages"`
	MinorityShare    bool          `json:"minority_share"`
	HeapFloorBytes   int64         `json:"heap_floor_bytes"`
	// WatchHistory and WatchHistoryBytes bound the changes kept for
	// watches to resume from (node.Config).
	WatchHistory      int64 `json:"watch_history"`
	WatchHistoryBytes int64 `json:"watch_history_bytes"`

	MaxStreamBufferBytes int64         `json:"max_stream_buffer_bytes"`
	FirstFrameTimeout    node.Duration `json:"first_frame_timeout"`

	ReapTimeout           node.Duration `json:"reap_timeout"`
	ReadyRequiresMajority bool          `json:"ready_requires_majority"`

	// Secrets come from the environment only (or from the files above):
	// never from a flag, which any user can read in the process list, nor
	// from the config file, which is often world-readable.
	EncryptKey string `json:"-"` // MESHNODE_ENCRYPT_KEY
	APIToken   string `json:"-"` // MESHNODE_API_TOKEN
}

// Environment variables of the secrets.
const (
	envEncryptKey = "MESHNODE_ENCRYPT_KEY"
	envAPIToken   = "MESHNODE_API_TOKEN"
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
		SyncInterval:         node.Duration(node.DefaultSyncInterval),
		SnapshotInterval:     node.Duration(node.DefaultSnapshotInterval),
		StoreMaxBytes:        node.DefaultStoreMaxBytes,
		ReapTimeout:          node.Duration(node.DefaultReapTimeout),
		MaxStreamBufferBytes: node.DefaultMaxStreamBufferBytes,
		FirstFrameTimeout:    node.Duration(node.DefaultFirstFrameTimeout),
		WatchHistory:         node.DefaultWatchHistory,
		WatchHistoryBytes:    node.DefaultWatchHistoryBytes,
	}
}

// option is one configuration setting as a flag and an environment
// variable; the file key is the JSON tag of the same field.
type option struct {
	name  string // flag name; env is MESHNODE_ + upper snake case
	usage string
	list  bool // repeatable flag; comma-separated in the environment
	bool  bool
	set   func(c *agentConfig, v string) error
	get   func(c *agentConfig) string
}

func (o option) env() string {
	return "MESHNODE_" + strings.ToUpper(strings.ReplaceAll(o.name, "-", "_"))
}

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
	durOpt("sync-interval", "`period` of anti-entropy with a random member (0: the default)", func(c *agentConfig) *node.Duration { return &c.SyncInterval }),
	durOpt("snapshot-interval", "`period` of snapshots to --data-dir (0: the default)", func(c *agentConfig) *node.Duration { return &c.SnapshotInterval }),
	intOpt("store-max-bytes", "bound of the replicated store in `bytes` (0: the default)", func(c *agentConfig) *int64 { return &c.StoreMaxBytes }),
	intOpt("worker-pages", "each worker's budget of `pages` in the prefix index (0: unlimited)", func(c *agentConfig) *int64 { return &c.WorkerPages }),
	intOpt("max-holder-pages", "cap of the prefix index in (page, worker) `pairs` (0: unlimited)", func(c *agentConfig) *int64 { return &c.MaxHolderPages }),
	intOpt("heap-floor-bytes", "heap size in `bytes` below which the garbage collector does not run; fewer collections on a small heap keep the API's latency tail low (0: Go's default, GOGC alone)", func(c *agentConfig) *int64 { return &c.HeapFloorBytes }),
	intOpt("watch-history", "`changes` of each namespace kept for watches to resume from by index (0: node default, 1024)", func(c *agentConfig) *int64 { return &c.WatchHistory }),
	intOpt("watch-history-bytes", "bound in `bytes` of the keys and values the watch history of all namespaces keeps (0: node default, 64 MiB)", func(c *agentConfig) *int64 { return &c.WatchHistoryBytes }),
	intOpt("max-stream-buffer-bytes", "`bytes` all TCP stream readers may hold together; connections not yet proven hold at most a quarter, and a stream that needs more is closed", func(c *agentConfig) *int64 { return &c.MaxStreamBufferBytes }),
	durOpt("first-frame-timeout", "how long (`duration`) an incoming TCP connection has for its TLS handshake and first valid frame", func(c *agentConfig) *node.Duration { return &c.FirstFrameTimeout }),
	durOpt("reap-timeout", "how long (`duration`) a dead or left member is remembered (and counted in the cluster size a majority is judged against); it goes within 1.125 times this", func(c *agentConfig) *node.Duration { return &c.ReapTimeout }),
	boolOpt("ready-requires-majority", "/readyz answers 503 while this node sees no majority of the last known cluster (a minority replica leaves the load balancer)", func(c *agentConfig) *bool { return &c.ReadyRequiresMajority }),
	boolOpt("minority-share", "on the minority side of a partition, admit only this side's share of each rate limit", func(c *agentConfig) *bool { return &c.MinorityShare }),
}

// agentFlags are the flags that are not configuration.
type agentFlags struct {
	configFile  string
	printConfig bool
}

// setting records one flag occurrence, applied after the file and the
// environment.
type setting struct {
	opt *option
	val string
}

// recorder is the flag.Value of an option: it checks the value at parse
// time and records it.
type recorder struct {
	opt  *option
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
	*r.sets = append(*r.sets, setting{r.opt, v})
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
		fs.Var(&recorder{opt: o, def: d, sets: sets}, o.name, o.usage+" [env "+o.env()+"]")
	}
	return fs
}

// loadConfig computes the effective configuration from args, the
// environment and the config file, and validates it, reporting every
// problem at once.
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
	path := af.configFile
	if path == "" {
		path, _ = env(envConfig)
	}
	if path != "" {
		if err := readConfigFile(path, &cfg); err != nil {
			return cfg, af, err
		}
	}
	var errs []error
	for i := range options {
		o := &options[i]
		v, ok := env(o.env())
		if !ok {
			continue
		}
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
			errs = append(errs, fmt.Errorf("%s: %w", o.env(), err))
		}
	}
	cfg.EncryptKey, _ = env(envEncryptKey)
	cfg.APIToken, _ = env(envAPIToken)
	cleared := map[*option]bool{}
	for _, s := range sets {
		if s.opt.list && !cleared[s.opt] {
			*listField(&cfg, s.opt) = nil
			cleared[s.opt] = true
		}
		_ = s.opt.set(&cfg, s.val) // checked by recorder.Set
	}
	cfg.zeroMeansDefault()
	if err := errors.Join(append(errs, cfg.validate())...); err != nil {
		return cfg, af, err
	}
	return cfg, af, nil
}

// zeroMeansDefault replaces the zeros that mean "the default" by the
// default, so that the configuration printed is the one that runs.
func (c *agentConfig) zeroMeansDefault() {
	def := defaultConfig(func() (string, error) { return "", nil })
	if c.SyncInterval == 0 {
		c.SyncInterval = def.SyncInterval
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
// so that a misspelt key is not silently ignored.
func readConfigFile(path string, cfg *agentConfig) error {
	b, err := os.ReadFile(path)
	if err != nil {
		return fmt.Errorf("config file: %w", err)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(cfg); err != nil {
		return fmt.Errorf("config file %s: %w", path, err)
	}
	if _, err := dec.Token(); err != io.EOF {
		return fmt.Errorf("config file %s: trailing data after the JSON object", path)
	}
	return nil
}

// validate checks what the agent adds to the node's own validation.
func (c agentConfig) validate() error {
	var errs []error
	if _, err := parseLevel(c.LogLevel); err != nil {
		errs = append(errs, err)
	}
	switch c.LogFormat {
	case "auto", "text", "json":
	default:
		errs = append(errs, fmt.Errorf("log_format %q: want auto, text or json", c.LogFormat))
	}
	if c.JoinTimeout.D() < 100*time.Millisecond {
		errs = append(errs, fmt.Errorf("join_timeout %v: at least 100ms", c.JoinTimeout.D()))
	}
	if c.HeapFloorBytes < 0 {
		errs = append(errs, fmt.Errorf("heap_floor_bytes %d: want 0 or more", c.HeapFloorBytes))
	}
	if c.Node == "" {
		errs = append(errs, errors.New("node: no name given and the host name is unknown"))
	}
	if err := c.nodeConfig().Validate(); err != nil {
		errs = append(errs, err)
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
		SyncInterval:          c.SyncInterval,
		SnapshotInterval:      c.SnapshotInterval,
		DataDir:               c.DataDir,
		StoreMaxBytes:         c.StoreMaxBytes,
		WorkerPages:           c.WorkerPages,
		MaxHolderPages:        c.MaxHolderPages,
		MinorityShare:         c.MinorityShare,
		MaxStreamBufferBytes:  c.MaxStreamBufferBytes,
		FirstFrameTimeout:     c.FirstFrameTimeout,
		ReapTimeout:           c.ReapTimeout,
		ReadyRequiresMajority: c.ReadyRequiresMajority,
		GossipKeyFile:         c.EncryptKeyFile,
		GossipKey:             c.EncryptKey,
		TLSCertFile:           c.TLSCertFile,
		TLSKeyFile:            c.TLSKeyFile,
		TLSCAFile:             c.TLSCAFile,
		TLSVerifyClients:      c.TLSVerifyClients,
		APIPlaintext:          c.APIPlaintext,
	}
	// Out of range values stay out of range, for Validate to refuse.
	cfg.WatchHistory = int(min(max(c.WatchHistory, -1), 1<<30))
	cfg.WatchHistoryBytes = c.WatchHistoryBytes
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
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.SetEscapeHTML(false)
	return enc.Encode(r)
}
