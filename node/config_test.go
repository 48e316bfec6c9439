package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// configKeys returns the keys of the *ConfigErrors in err, in order.
func configKeys(t *testing.T, err error) []string {
	t.Helper()
	if err == nil {
		return nil
	}
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("error %v does not match ErrConfig", err)
	}
	errs := []error{err}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		errs = j.Unwrap()
	}
	var keys []string
	for _, e := range errs {
		var ce *ConfigError
		if !errors.As(e, &ce) {
			t.Fatalf("%v is not a *ConfigError", e)
		}
		if !strings.HasPrefix(ce.Error(), "node: invalid config: "+ce.Key+" ") {
			t.Errorf("%q does not start with its key %q", ce.Error(), ce.Key)
		}
		keys = append(keys, ce.Key)
	}
	return keys
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // the keys of the problems, in Validate's order
	}{
		{"zero is valid", Config{}, nil},
		{"bad bind", Config{BindAddr: "nope"}, []string{"bind"}},
		{"bad name", Config{Name: "a\x00b"}, []string{"node"}},
		{"bad advertise", Config{AdvertiseAddr: "host:1"}, []string{"advertise"}},
		{"unspecified advertise", Config{AdvertiseAddr: "0.0.0.0:7946"}, []string{"advertise"}},
		{"bad profile", Config{Profile: "fast"}, []string{"profile"}},
		{"public api without token", Config{APIAddr: "0.0.0.0:7947"}, []string{"api_addr"}},
		{"public api with token", Config{APIAddr: "0.0.0.0:7947", APIToken: "x"}, nil},
		{"api off", Config{APIAddr: "off"}, nil},
		{"tls half", Config{TLSCertFile: "c"}, []string{"tls_cert_file", "tls_cert_file"}},
		{"tls other half", Config{TLSKeyFile: "k"}, []string{"tls_key_file"}},
		{"verify without ca", Config{TLSVerifyClients: true}, []string{"tls_verify_clients"}},
		{"stream buffer too small", Config{MaxStreamBufferBytes: 1 << 20}, []string{"max_stream_buffer_bytes"}},
		{"two kv subscribers", Config{KVSubscribers: 2}, nil},
		{"three kv subscribers", Config{KVSubscribers: 3}, []string{"kv_subscribers"}},
		{"negative kv subscribers", Config{KVSubscribers: -1}, []string{"kv_subscribers"}},
		{"kv grace under a second", Config{KVGrace: Duration(time.Millisecond)}, []string{"kv_grace"}},
		{"pending timeout under a second", Config{PendingTimeout: Duration(500 * time.Millisecond)}, []string{"pending_timeout"}},
		{"pending timeout over an hour", Config{PendingTimeout: Duration(2 * time.Hour)}, []string{"pending_timeout"}},
		{"negative first frame timeout", Config{FirstFrameTimeout: -1}, []string{"first_frame_timeout"}},
		{"first frame timeout over stream timeout", Config{FirstFrameTimeout: Duration(time.Minute)}, []string{"first_frame_timeout"}},
		{"first frame timeout within stream timeout", Config{FirstFrameTimeout: Duration(time.Minute), StreamTimeout: Duration(time.Minute)}, nil},
		{"negative sizes", Config{StoreMaxBytes: -1, MaxHolderPages: -1}, []string{"store_max_bytes", "max_holder_pages"}},
		{"proxy", Config{ProxyAddr: "127.0.0.1:8080", ProxyHealthInterval: Duration(time.Second), ProxyKeyHeader: "X-Api-Key"}, nil},
		{"bad proxy addr", Config{ProxyAddr: "8080"}, []string{"proxy_addr"}},
		{"proxy on the api's port", Config{ProxyAddr: DefaultAPIAddr}, []string{"proxy_addr"}},
		{"bad proxy settings", Config{ProxyMaxBodyBytes: 10, ProxyAttempts: 9, ProxyFailures: -1, ProxyIdleTimeout: -1,
			ProxyBackoff: Duration(time.Hour), ProxyHealthInterval: Duration(time.Millisecond), ProxyKeyHeader: "Bad Header"},
			[]string{"proxy_max_body_bytes", "proxy_attempts", "proxy_failures", "proxy_idle_timeout", "proxy_max_backoff", "proxy_health_interval", "proxy_key_header"}},
		{"every problem at once", Config{BindAddr: "x", Profile: "y", MaxListItems: -1, AntiEntropyInterval: -1, Seeds: []string{"noport"}},
			[]string{"bind", "join", "profile", "max_list_items", "anti_entropy_interval"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if diff := cmp.Diff(tc.want, configKeys(t, tc.cfg.Validate())); diff != "" {
				t.Fatalf("keys (-want +got):\n%s", diff)
			}
		})
	}
}

// TestConfigKeysAreJSONKeys: every key Validate names is a JSON key of
// Config, the key meshnode agent's config file uses.
func TestConfigKeysAreJSONKeys(t *testing.T) {
	b, err := json.Marshal(Config{Name: "n", BindAddr: "b", AdvertiseAddr: "a", Seeds: []string{"s"}, Label: "l", Profile: "p",
		APIAddr: "x", APITokenFile: "f", MaxRequestBytes: 1, MaxListItems: 1, MaxWatchers: 1, WatchHistory: 1, WatchHistoryBytes: 1,
		AntiEntropyInterval: 1, StreamTimeout: 1, MaxAntiEntropyStreams: 1, MaxStreamBufferBytes: 1, FirstFrameTimeout: 1,
		EagerMembers: 1, LeaveTimeout: 1, GCHorizon: 1, ReapTimeout: 1, SnapshotInterval: 1, StoreMaxBytes: 1, WorkerPages: 1,
		MaxHolderPages: 1, TLSCertFile: "c", TLSKeyFile: "k", TLSCAFile: "ca", TLSVerifyClients: true})
	if err != nil {
		t.Fatal(err)
	}
	var keys map[string]any
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	bad := Config{Name: "a\x00", BindAddr: "x", AdvertiseAddr: "y", Seeds: []string{"z"}, Profile: "p", APIAddr: "q",
		MaxRequestBytes: 1, MaxListItems: -1, MaxWatchers: -1, WatchHistory: -1, WatchHistoryBytes: 1, AntiEntropyInterval: -1,
		StreamTimeout: -1, MaxAntiEntropyStreams: -1, MaxStreamBufferBytes: 1, FirstFrameTimeout: -1, EagerMembers: -1,
		LeaveTimeout: -1, GCHorizon: -1, ReapTimeout: 1, SnapshotInterval: -1, StoreMaxBytes: -1, WorkerPages: -1,
		MaxHolderPages: -1, TLSKeyFile: "k", TLSVerifyClients: true}
	for _, k := range configKeys(t, bad.Validate()) {
		if _, ok := keys[k]; !ok && k != "api_token" {
			t.Errorf("Validate names %q, not a JSON key of Config", k)
		}
	}
}

func TestConfigJSON(t *testing.T) {
	in := `{"node":"a","join":["10.0.0.1:7946"],"anti_entropy_interval":"1.5s","leave_timeout":2000000000,"minority_share":true}`
	var c Config
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "a", Seeds: []string{"10.0.0.1:7946"}, AntiEntropyInterval: Duration(1500 * time.Millisecond), LeaveTimeout: Duration(2 * time.Second), MinorityShare: true}
	if diff := cmp.Diff(want, c, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Registerer" || p.String() == "Logger" }, cmp.Ignore())); diff != "" {
		t.Fatalf("decoded (-want +got):\n%s", diff)
	}
	out, err := json.Marshal(Config{AntiEntropyInterval: Duration(time.Second), APIToken: "secret", EncryptKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, `"anti_entropy_interval":"1s"`) || strings.Contains(s, "secret") || strings.Contains(s, `"k"`) {
		t.Fatalf("marshalled %s: want durations as strings and no secrets", s)
	}
	if err := json.Unmarshal([]byte(`{"anti_entropy_interval":"soon"}`), &c); err == nil {
		t.Fatal("want an error for a bad duration")
	}
}
