package node

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		want []string // substrings, one per expected problem
	}{
		{"zero is valid", Config{}, nil},
		{"bad bind", Config{BindAddr: "nope"}, []string{"bind_addr"}},
		{"bad advertise", Config{AdvertiseAddr: "host:1"}, []string{"advertise_addr"}},
		{"unspecified advertise", Config{AdvertiseAddr: "0.0.0.0:7946"}, []string{"advertise_addr"}},
		{"bad profile", Config{Profile: "fast"}, []string{"profile"}},
		{"public api without token", Config{APIAddr: "0.0.0.0:7947"}, []string{"token"}},
		{"public api with token", Config{APIAddr: "0.0.0.0:7947", APIToken: "x"}, nil},
		{"api off", Config{APIAddr: "off"}, nil},
		{"tls half", Config{TLSCertFile: "c"}, []string{"go together", "tls_ca_file"}},
		{"verify without ca", Config{TLSVerifyClients: true}, []string{"tls_verify_clients"}},
		{"stream buffer too small", Config{MaxStreamBufferBytes: 1 << 20}, []string{"max_stream_buffer_bytes"}},
		{"negative first frame timeout", Config{FirstFrameTimeout: -1}, []string{"first_frame_timeout"}},
		{"first frame timeout over sync timeout", Config{FirstFrameTimeout: Duration(time.Minute)}, []string{"first_frame_timeout"}},
		{"first frame timeout within sync timeout", Config{FirstFrameTimeout: Duration(time.Minute), SyncTimeout: Duration(time.Minute)}, nil},
		{"every problem at once", Config{BindAddr: "x", Profile: "y", MaxListItems: -1, SyncInterval: -1, Seeds: []string{"noport"}},
			[]string{"bind_addr", "profile", "max_list_items", "sync_interval", "seed"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.cfg.Validate()
			if len(tc.want) == 0 {
				if err != nil {
					t.Fatalf("unexpected error: %v", err)
				}
				return
			}
			if !errors.Is(err, ErrConfig) {
				t.Fatalf("error %v does not match ErrConfig", err)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tc.want) {
				t.Fatalf("%d problems, want %d: %v", len(lines), len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error does not mention %q: %v", w, err)
				}
			}
		})
	}
}

func TestConfigJSON(t *testing.T) {
	in := `{"name":"a","seeds":["10.0.0.1:7946"],"sync_interval":"1.5s","leave_timeout":2000000000,"minority_share":true}`
	var c Config
	dec := json.NewDecoder(strings.NewReader(in))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		t.Fatal(err)
	}
	want := Config{Name: "a", Seeds: []string{"10.0.0.1:7946"}, SyncInterval: Duration(1500 * time.Millisecond), LeaveTimeout: Duration(2 * time.Second), MinorityShare: true}
	if diff := cmp.Diff(want, c, cmp.FilterPath(func(p cmp.Path) bool { return p.String() == "Registerer" || p.String() == "Logger" }, cmp.Ignore())); diff != "" {
		t.Fatalf("decoded (-want +got):\n%s", diff)
	}
	out, err := json.Marshal(Config{SyncInterval: Duration(time.Second), APIToken: "secret", GossipKey: "k"})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(out); !strings.Contains(s, `"sync_interval":"1s"`) || strings.Contains(s, "secret") || strings.Contains(s, `"k"`) {
		t.Fatalf("marshalled %s: want durations as strings and no secrets", s)
	}
	if err := json.Unmarshal([]byte(`{"sync_interval":"soon"}`), &c); err == nil {
		t.Fatal("want an error for a bad duration")
	}
}
