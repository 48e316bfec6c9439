package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/node"
)

func fixedHost() (string, error) { return "host-1", nil }

func envOf(m map[string]string) lookupEnv {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

// writeFile writes content to a file in a fresh directory.
func writeFile(t *testing.T, name, content string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigPrecedence(t *testing.T) {
	file := writeFile(t, "meshnode.json", `{
		"node": "from-file", "bind": "127.0.0.1:8001", "profile": "wan",
		"join": ["file-seed:7946"], "log_level": "warn", "leave_timeout": "7s",
		"minority_share": true, "worker_pages": 100
	}`)
	def := defaultConfig(fixedHost)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want func(c *agentConfig)
	}{
		{name: "defaults", want: func(c *agentConfig) {}},
		{name: "heap floor off from the environment", env: map[string]string{"MESHNODE_HEAP_FLOOR_BYTES": "0"}, want: func(c *agentConfig) { c.HeapFloorBytes = 0 }},
		{name: "file over defaults", args: []string{"--config", file}, want: func(c *agentConfig) {
			c.Node, c.Bind, c.Profile, c.LogLevel = "from-file", "127.0.0.1:8001", "wan", "warn"
			c.Join, c.LeaveTimeout, c.MinorityShare, c.WorkerPages = []string{"file-seed:7946"}, node.Duration(7*time.Second), true, 100
		}},
		{name: "file named by the environment", env: map[string]string{"MESHNODE_CONFIG": file}, want: func(c *agentConfig) {
			c.Node, c.Bind, c.Profile, c.LogLevel = "from-file", "127.0.0.1:8001", "wan", "warn"
			c.Join, c.LeaveTimeout, c.MinorityShare, c.WorkerPages = []string{"file-seed:7946"}, node.Duration(7*time.Second), true, 100
		}},
		{name: "environment over file", args: []string{"--config", file}, env: map[string]string{
			"MESHNODE_NODE": "from-env", "MESHNODE_JOIN": "a:1, b:2", "MESHNODE_LEAVE_TIMEOUT": "3s",
			"MESHNODE_MINORITY_SHARE": "false", "MESHNODE_ENCRYPT_KEY": "k", "MESHNODE_API_TOKEN": "t",
		}, want: func(c *agentConfig) {
			c.Node, c.Bind, c.Profile, c.LogLevel = "from-env", "127.0.0.1:8001", "wan", "warn"
			c.Join, c.LeaveTimeout, c.MinorityShare, c.WorkerPages = []string{"a:1", "b:2"}, node.Duration(3*time.Second), false, 100
			c.EncryptKey, c.APIToken = "k", "t"
		}},
		{name: "flags over environment", args: []string{"--config", file, "--node", "from-flag", "--join", "c:3", "--join", "d:4",
			"--minority-share", "--log-level=debug", "--retry-join", "seeds.example:7946"},
			env: map[string]string{"MESHNODE_NODE": "from-env", "MESHNODE_JOIN": "a:1", "MESHNODE_MINORITY_SHARE": "false", "MESHNODE_LOG_LEVEL": "error"},
			want: func(c *agentConfig) {
				c.Node, c.Bind, c.Profile, c.LogLevel = "from-flag", "127.0.0.1:8001", "wan", "debug"
				c.Join, c.LeaveTimeout, c.MinorityShare, c.WorkerPages = []string{"c:3", "d:4"}, node.Duration(7*time.Second), true, 100
				c.RetryJoin = []string{"seeds.example:7946"}
			}},
		{name: "empty list in the environment clears the file's", args: []string{"--config", file}, env: map[string]string{"MESHNODE_JOIN": ""},
			want: func(c *agentConfig) {
				c.Node, c.Bind, c.Profile, c.LogLevel = "from-file", "127.0.0.1:8001", "wan", "warn"
				c.LeaveTimeout, c.MinorityShare, c.WorkerPages = node.Duration(7*time.Second), true, 100
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _, err := loadConfig(tt.args, envOf(tt.env), fixedHost, io.Discard)
			if err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
			want := def
			tt.want(&want)
			if diff := cmp.Diff(want, got); diff != "" {
				t.Errorf("config (-want +got):\n%s", diff)
			}
		})
	}
}

func TestLoadConfigErrors(t *testing.T) {
	unknown := writeFile(t, "unknown.json", `{"node": "x", "bind_adr": "127.0.0.1:1"}`)
	trailing := writeFile(t, "trailing.json", `{"node": "x"} {"node": "y"}`)
	tests := []struct {
		name string
		args []string
		env  map[string]string
		want []string // substrings of the error, every one
		is   func(error) bool
	}{
		{name: "unknown file key", args: []string{"--config", unknown}, want: []string{`unknown field "bind_adr"`}},
		{name: "trailing data in the file", args: []string{"--config", trailing}, want: []string{"trailing data"}},
		{name: "missing file", args: []string{"--config", filepath.Join(t.TempDir(), "none.json")}, want: []string{"config file"}},
		{name: "bad environment value", env: map[string]string{"MESHNODE_LEAVE_TIMEOUT": "soon"}, want: []string{"MESHNODE_LEAVE_TIMEOUT", `"soon"`}},
		{name: "bad flag value", args: []string{"--leave-timeout", "soon"}, is: func(err error) bool { var fe flagError; return errors.As(err, &fe) }},
		{name: "unknown flag", args: []string{"--bogus"}, is: func(err error) bool { var fe flagError; return errors.As(err, &fe) }},
		{name: "positional argument", args: []string{"extra"}, is: func(err error) bool { var ue usageErr; return errors.As(err, &ue) }},
		{name: "every problem at once", args: []string{"--log-level", "loud", "--log-format", "xml", "--profile", "moon"},
			want: []string{`--log-level "loud"`, `--log-format "xml"`, `--profile "moon"`}},
		{name: "public API without a token", args: []string{"--api-addr", "0.0.0.0:7947"}, want: []string{"API token"},
			is: func(err error) bool { return errors.Is(err, node.ErrConfig) }},
		{name: "TLS cert without key", args: []string{"--tls-cert-file", "c.pem"}, want: []string{"--tls-cert-file without tls_key_file: they go together"}},
		{name: "proxy TLS cert without key", args: []string{"--proxy-addr", "127.0.0.1:0", "--proxy-tls-cert", "c.pem"},
			want: []string{"--proxy-tls-cert set without proxy_tls_key: the proxy's certificate and its key go together"}},
		{name: "proxy TLS key without cert", args: []string{"--proxy-addr", "127.0.0.1:0", "--proxy-tls-key", "k.pem"},
			want: []string{"--proxy-tls-key set without proxy_tls_cert: the proxy's certificate and its key go together"}},
		{name: "proxy TLS without a proxy", args: []string{"--proxy-tls-cert", "c.pem", "--proxy-tls-key", "k.pem"},
			want: []string{"--proxy-tls-cert set without proxy_addr: there is no proxy to serve HTTPS"}},
		{name: "proxy TLS from the environment", env: map[string]string{"MESHNODE_PROXY_ADDR": "127.0.0.1:0", "MESHNODE_PROXY_TLS_KEY": "k.pem"},
			want: []string{"MESHNODE_PROXY_TLS_KEY set without proxy_tls_cert"}},
		{name: "bad seed", args: []string{"--join", "no-port"}, want: []string{`--join seed "no-port"`}},
		{name: "join timeout too short", args: []string{"--join-timeout", "1ms"}, want: []string{"--join-timeout 1ms"}},
		{name: "negative heap floor", env: map[string]string{"MESHNODE_HEAP_FLOOR_BYTES": "-1"}, want: []string{"MESHNODE_HEAP_FLOOR_BYTES -1"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, _, err := loadConfig(tt.args, envOf(tt.env), fixedHost, io.Discard)
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if tt.is != nil && !tt.is(err) {
				t.Errorf("error %q (%T) is not of the expected kind", err, err)
			}
		})
	}
}

func TestLoadConfigTokenMakesPublicAPIValid(t *testing.T) {
	tok := writeFile(t, "token", "s3cret\n")
	for _, tt := range []struct {
		name string
		args []string
		env  map[string]string
	}{
		{name: "token file flag", args: []string{"--api-addr", "0.0.0.0:7947", "--api-token-file", tok}},
		{name: "token in the environment", args: []string{"--api-addr", "0.0.0.0:7947"}, env: map[string]string{"MESHNODE_API_TOKEN": "s3cret"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := loadConfig(tt.args, envOf(tt.env), fixedHost, io.Discard); err != nil {
				t.Fatalf("loadConfig: %v", err)
			}
		})
	}
}

func TestPrintConfig(t *testing.T) {
	t.Run("secrets redacted", func(t *testing.T) {
		cfg, af, err := loadConfig([]string{"--print-config"}, envOf(map[string]string{
			"MESHNODE_ENCRYPT_KEY": "very-secret-key", "MESHNODE_API_TOKEN": "very-secret-token", "MESHNODE_PROXY_TOKEN": "very-secret-proxy"}), fixedHost, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if !af.printConfig {
			t.Fatal("--print-config not seen")
		}
		var buf bytes.Buffer
		if err := printConfig(&buf, cfg); err != nil {
			t.Fatal(err)
		}
		out := buf.String()
		if strings.Contains(out, "very-secret") {
			t.Errorf("secret in the output:\n%s", out)
		}
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		if diff := cmp.Diff(map[string]any{"encrypt_key": "<redacted>", "api_token": "<redacted>", "proxy_token": "<redacted>", "node": "host-1"},
			map[string]any{"encrypt_key": m["encrypt_key"], "api_token": m["api_token"], "proxy_token": m["proxy_token"], "node": m["node"]}); diff != "" {
			t.Errorf("printed config (-want +got):\n%s", diff)
		}
	})
	t.Run("output is a config file that loads to the same configuration", func(t *testing.T) {
		cfg, _, err := loadConfig([]string{"--node", "n7", "--join", "a:1", "--leave-timeout", "9s", "--tls-verify-clients=false"}, envOf(nil), fixedHost, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := printConfig(&buf, cfg); err != nil {
			t.Fatal(err)
		}
		path := writeFile(t, "printed.json", buf.String())
		again, _, err := loadConfig([]string{"--config", path}, envOf(nil), func() (string, error) { return "other-host", nil }, io.Discard)
		if err != nil {
			t.Fatalf("loading the printed config: %v", err)
		}
		again.RetryJoin = nil // printed as [] for readability
		if diff := cmp.Diff(cfg, again); diff != "" {
			t.Errorf("reloaded config (-want +got):\n%s", diff)
		}
	})
}

// TestOptionsHaveDistinctNames guards the option table: a flag, an
// environment variable and a file key per option, none shared.
func TestOptionsHaveDistinctNames(t *testing.T) {
	keys := map[string]bool{}
	b, _ := json.Marshal(agentConfig{})
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	for k := range m {
		keys[strings.ReplaceAll(k, "_", "-")] = true
	}
	seen := map[string]bool{}
	for _, o := range options {
		if seen[o.name] {
			t.Errorf("option %q twice", o.name)
		}
		seen[o.name] = true
		if !keys[o.name] {
			t.Errorf("option %q has no config file key %q", o.name, strings.ReplaceAll(o.name, "-", "_"))
		}
	}
	for k := range keys {
		if !seen[k] {
			t.Errorf("config file key %q has no flag", k)
		}
	}
}

func TestParseInterleaved(t *testing.T) {
	tests := []struct {
		args     []string
		wantPos  []string
		wantJSON bool
	}{
		{args: []string{"ns", "key", "--json"}, wantPos: []string{"ns", "key"}, wantJSON: true},
		{args: []string{"--json", "ns"}, wantPos: []string{"ns"}, wantJSON: true},
		{args: []string{"ns", "--", "--json"}, wantPos: []string{"ns", "--json"}},
		{args: nil},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			fs := newFlagSet("t", io.Discard)
			j := fs.Bool("json", false, "")
			pos, err := parseInterleaved(fs, tt.args)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tt.wantPos, pos); diff != "" {
				t.Errorf("positional (-want +got):\n%s", diff)
			}
			if *j != tt.wantJSON {
				t.Errorf("json = %v, want %v", *j, tt.wantJSON)
			}
		})
	}
}

// TestReadmeListsEveryOption keeps the README's configuration reference in
// step with the option table.
func TestReadmeListsEveryOption(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	readme := string(b)
	for _, o := range options {
		if !strings.Contains(readme, "`--"+o.name+"`") {
			t.Errorf("README.md does not document --%s", o.name)
		}
	}
	for name := range clientCommands {
		if !strings.Contains(readme, "`"+name) {
			t.Errorf("README.md does not document the %s command", name)
		}
	}
}

// TestPrintConfigShowsEffectiveDefaults: --print-config showed 0s and 0
// for settings whose zero means a node default.
func TestPrintConfigShowsEffectiveDefaults(t *testing.T) {
	for _, env := range []map[string]string{nil, {"MESHNODE_ANTI_ENTROPY_INTERVAL": "0s", "MESHNODE_SNAPSHOT_INTERVAL": "0s", "MESHNODE_STORE_MAX_BYTES": "0", "MESHNODE_REAP_TIMEOUT": "0s"}} {
		cfg, _, err := loadConfig([]string{"--print-config"}, envOf(env), fixedHost, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		var buf bytes.Buffer
		if err := printConfig(&buf, cfg); err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
			t.Fatal(err)
		}
		want := map[string]any{"anti_entropy_interval": "2s", "snapshot_interval": "30s", "store_max_bytes": float64(1 << 30), "reap_timeout": "30m0s"}
		got := map[string]any{}
		for k := range want {
			got[k] = m[k]
		}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("printed config with env %v (-want +got):\n%s", env, diff)
		}
	}
}

func TestOperabilitySettings(t *testing.T) {
	cfg, _, err := loadConfig([]string{"--reap-timeout", "2m", "--ready-requires-majority"}, envOf(nil), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nc := cfg.nodeConfig()
	if nc.ReapTimeout.D() != 2*time.Minute || !nc.ReadyRequiresMajority {
		t.Errorf("flags reached the node as reap_timeout %v, ready_requires_majority %t", nc.ReapTimeout.D(), nc.ReadyRequiresMajority)
	}
	cfg, _, err = loadConfig(nil, envOf(map[string]string{"MESHNODE_REAP_TIMEOUT": "90s", "MESHNODE_READY_REQUIRES_MAJORITY": "true"}), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.ReapTimeout.D() != 90*time.Second || !cfg.ReadyRequiresMajority {
		t.Errorf("environment gave reap_timeout %v, ready_requires_majority %t", cfg.ReapTimeout.D(), cfg.ReadyRequiresMajority)
	}
	if _, _, err := loadConfig([]string{"--reap-timeout", "10ms"}, envOf(nil), fixedHost, io.Discard); err == nil || !strings.Contains(err.Error(), "--reap-timeout 10ms") {
		t.Errorf("reap_timeout 10ms: %v, want an error naming it", err)
	}
}

// TestConfigErrorsNameTheKeyAsGiven: a bad value names its setting the way
// the user gave it, as a flag, an environment variable or a config file
// key, former names included, whether the agent or the node finds the
// problem. Before, the node's errors named its own keys (bind_addr, seed),
// which the user never wrote.
func TestConfigErrorsNameTheKeyAsGiven(t *testing.T) {
	file := func(content string) string { return writeFile(t, "meshnode.json", content) }
	tests := []struct {
		name string
		args []string
		env  map[string]string
		file string // config file content, if any
		want string // the error is this line
	}{
		{name: "node's key as a flag", args: []string{"--bind", "nope"},
			want: `--bind "nope": address nope: missing port in address`},
		{name: "node's key in the environment", env: map[string]string{"MESHNODE_BIND": "nope"},
			want: `MESHNODE_BIND "nope": address nope: missing port in address`},
		{name: "node's key in the file", file: `{"bind": "nope"}`,
			want: `config file @FILE@: bind "nope": address nope: missing port in address`},
		{name: "a flag over a bad file value", args: []string{"--advertise", "0.0.0.0:1"}, file: `{"advertise": "nope"}`,
			want: `--advertise "0.0.0.0:1": want a reachable ip and a port`},
		{name: "the environment over a bad file value", env: map[string]string{"MESHNODE_PROFILE": "moon"}, file: `{"profile": "sun"}`,
			want: `MESHNODE_PROFILE "moon": want lan, wan or local`},
		{name: "agent's key as a flag", args: []string{"--log-format", "xml"}, want: `--log-format "xml": want auto, text or json`},
		{name: "agent's key in the environment", env: map[string]string{"MESHNODE_LOG_FORMAT": "xml"},
			want: `MESHNODE_LOG_FORMAT "xml": want auto, text or json`},
		{name: "agent's key in the file", file: `{"log_format": "xml"}`, want: `config file @FILE@: log_format "xml": want auto, text or json`},
		{name: "a seed of --join", args: []string{"--join", "no-port"}, want: `--join seed "no-port": want host:port`},
		{name: "a seed of MESHNODE_RETRY_JOIN", env: map[string]string{"MESHNODE_RETRY_JOIN": "a:1,b:0"},
			want: `MESHNODE_RETRY_JOIN seed "b:0": port "0": want 1 to 65535`},
		{name: "a seed of the file's retry_join", file: `{"retry_join": ["x"]}`, want: `config file @FILE@: retry_join seed "x": want host:port`},
		{name: "a former flag name", args: []string{"--sync-interval", "-1s"}, want: `--sync-interval -1s: must be positive`},
		{name: "a former environment variable", env: map[string]string{"MESHNODE_SYNC_INTERVAL": "-1s"},
			want: `MESHNODE_SYNC_INTERVAL -1s: must be positive`},
		{name: "a former file key", file: `{"sync_interval": "-1s"}`, want: `config file @FILE@: sync_interval -1s: must be positive`},
		{name: "the current name", args: []string{"--anti-entropy-interval", "-1s"}, want: `--anti-entropy-interval -1s: must be positive`},
		{name: "a secret from the environment", env: map[string]string{"MESHNODE_API_TOKEN": " "},
			want: `MESHNODE_API_TOKEN (from the environment) is only white space`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			args := tt.args
			want := tt.want
			if tt.file != "" {
				path := file(tt.file)
				args = append([]string{"--config", path}, args...)
				want = strings.ReplaceAll(want, "@FILE@", path)
			}
			_, _, err := loadConfig(args, envOf(tt.env), fixedHost, io.Discard)
			if err == nil {
				t.Fatal("loadConfig succeeded, want an error")
			}
			if diff := cmp.Diff(want, err.Error()); diff != "" {
				t.Errorf("error (-want +got):\n%s", diff)
			}
		})
	}
}

// TestFormerNamesStillWork: the settings renamed keep their former flag,
// environment variable and file key, and a file may not give both names.
func TestFormerNamesStillWork(t *testing.T) {
	want := node.Duration(7 * time.Second)
	for _, c := range []struct {
		args []string
		env  map[string]string
	}{
		{args: []string{"--sync-interval", "7s"}},
		{env: map[string]string{"MESHNODE_SYNC_INTERVAL": "7s"}},
		{args: []string{"--config", writeFile(t, "old.json", `{"sync_interval": "7s"}`)}},
		{args: []string{"--anti-entropy-interval", "7s"}, env: map[string]string{"MESHNODE_SYNC_INTERVAL": "1s"}},
	} {
		cfg, _, err := loadConfig(c.args, envOf(c.env), fixedHost, io.Discard)
		if err != nil {
			t.Fatalf("%v %v: %v", c.args, c.env, err)
		}
		if got := cfg.nodeConfig().AntiEntropyInterval; got != want {
			t.Errorf("%v %v: anti-entropy interval %v, want %v", c.args, c.env, got.D(), want.D())
		}
	}
	both := writeFile(t, "both.json", `{"sync_interval": "7s", "anti_entropy_interval": "8s"}`)
	if _, _, err := loadConfig([]string{"--config", both}, envOf(nil), fixedHost, io.Discard); err == nil || !strings.Contains(err.Error(), "both set") {
		t.Errorf("a file with both names: %v, want an error", err)
	}
}

// TestAgentKeysAreNodeKeys: every node.Config setting the agent fills has
// the same key in the agent's config file as in node.Config's JSON form
// (which is what the node's errors name). Before, bind was bind_addr and
// join was seeds there.
func TestAgentKeysAreNodeKeys(t *testing.T) {
	var full agentConfig
	v := reflect.ValueOf(&full).Elem()
	for i := range v.NumField() {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString("x")
		case reflect.Bool:
			f.SetBool(true)
		case reflect.Int64:
			f.SetInt(1)
		case reflect.Float64:
			f.SetFloat(1)
		case reflect.Slice:
			f.Set(reflect.ValueOf([]string{"x"}))
		default:
			t.Fatalf("field %s: kind %v not handled", v.Type().Field(i).Name, f.Kind())
		}
	}
	keys := func(x any) map[string]bool {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		out := map[string]bool{}
		for k := range m {
			out[k] = true
		}
		return out
	}
	agent, nodeKeys := keys(full), keys(full.nodeConfig())
	if len(nodeKeys) < 20 {
		t.Fatalf("only %d node keys filled: %v", len(nodeKeys), nodeKeys)
	}
	for k := range nodeKeys {
		if !agent[k] {
			t.Errorf("node.Config key %q is no key of the agent's config file", k)
		}
	}
}

// TestKVEventsSettings: the engine KV event settings reach the node from
// flags and the environment, and the node's refusals name them as given.
func TestKVEventsSettings(t *testing.T) {
	cfg, _, err := loadConfig([]string{"--kv-subscribers", "2", "--kv-grace", "45s"},
		envOf(map[string]string{"MESHNODE_PENDING_TIMEOUT": "3s"}), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nc := cfg.nodeConfig()
	if nc.KVSubscribers != 2 || nc.KVGrace.D() != 45*time.Second || nc.PendingTimeout.D() != 3*time.Second {
		t.Errorf("the node got kv_subscribers %d, kv_grace %v, pending_timeout %v", nc.KVSubscribers, nc.KVGrace.D(), nc.PendingTimeout.D())
	}
	def, _, err := loadConfig(nil, envOf(nil), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if nc := def.nodeConfig(); nc.KVSubscribers != node.DefaultKVSubscribers || nc.KVGrace.D() != node.DefaultKVGrace || nc.PendingTimeout.D() != node.DefaultPendingTimeout {
		t.Errorf("defaults: %d %v %v", nc.KVSubscribers, nc.KVGrace.D(), nc.PendingTimeout.D())
	}
	for _, tt := range []struct {
		args []string
		env  map[string]string
		want string
	}{
		{args: []string{"--kv-subscribers", "3"}, want: "--kv-subscribers 3: want 1 or 2"},
		{env: map[string]string{"MESHNODE_KV_GRACE": "10ms"}, want: "MESHNODE_KV_GRACE"},
		{args: []string{"--pending-timeout", "2h"}, want: "--pending-timeout"},
	} {
		if _, _, err := loadConfig(tt.args, envOf(tt.env), fixedHost, io.Discard); err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v %v: %v, want an error with %q", tt.args, tt.env, err, tt.want)
		}
	}
}

// TestRoutePolicyOptions: the routing policy's settings reach node.Config;
// the defaults are radix's.
func TestRoutePolicyOptions(t *testing.T) {
	cfg, _, err := loadConfig(nil, envOf(nil), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nc := cfg.nodeConfig()
	if nc.RouteCacheThreshold != 0.5 || nc.RouteBalanceAbs != 32 || nc.RouteBalanceRel != 1.1 || nc.RouteCostWeight != 0 {
		t.Errorf("defaults: %v %v %v %v", nc.RouteCacheThreshold, nc.RouteBalanceAbs, nc.RouteBalanceRel, nc.RouteCostWeight)
	}
	cfg, _, err = loadConfig([]string{"--route-cost-weight", "3", "--route-cache-threshold", "0.25"}, envOf(map[string]string{"MESHNODE_ROUTE_BALANCE_ABS": "4"}), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	nc = cfg.nodeConfig()
	if nc.RouteCostWeight != 3 || nc.RouteCacheThreshold != 0.25 || nc.RouteBalanceAbs != 4 {
		t.Errorf("set: %v %v %v", nc.RouteCostWeight, nc.RouteCacheThreshold, nc.RouteBalanceAbs)
	}
	if _, _, err := loadConfig([]string{"--route-cost-weight", "much"}, envOf(nil), fixedHost, io.Discard); err == nil || !strings.Contains(err.Error(), "want a number") {
		t.Errorf("bad weight: %v", err)
	}
}

// TestEagerMembers: --eager-members (eager_members, MESHNODE_EAGER_MEMBERS)
// reaches the node, defaults to node's, and a value below 1 is refused
// under the name it was given.
func TestEagerMembers(t *testing.T) {
	cfg, _, err := loadConfig([]string{"--eager-members", "64"}, envOf(nil), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := cfg.nodeConfig().EagerMembers; got != 64 {
		t.Errorf("eager members %d, want 64", got)
	}
	def, _, err := loadConfig(nil, envOf(nil), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := def.nodeConfig().EagerMembers; got != node.DefaultEagerMembers {
		t.Errorf("default eager members %d, want %d", got, node.DefaultEagerMembers)
	}
	env, _, err := loadConfig(nil, envOf(map[string]string{"MESHNODE_EAGER_MEMBERS": "32"}), fixedHost, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if got := env.nodeConfig().EagerMembers; got != 32 {
		t.Errorf("eager members from the environment %d, want 32", got)
	}
	if _, _, err := loadConfig([]string{"--eager-members", "-1"}, envOf(nil), fixedHost, io.Discard); err == nil || !strings.Contains(err.Error(), "eager-members") {
		t.Errorf("--eager-members -1: %v, want an error naming it", err)
	}
}
