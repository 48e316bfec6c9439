package node

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestWorkerKVEventsValidation(t *testing.T) {
	_, srv := newTestNode(t, nil)
	put := func(kv string) (int, map[string]any) {
		return call(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://127.0.0.1:8000","model":"m","kv_events":`+kv+`}`)
	}
	for _, tt := range []struct {
		name, kv string
		errHas   string // "" for accepted
	}{
		{"tcp", `{"endpoint":"tcp://127.0.0.1:5557"}`, ""},
		{"tcp with replay and topic", `{"endpoint":"tcp://engine-1:5557","replay_endpoint":"tcp://engine-1:5558","topic":"kv"}`, ""},
		{"ipv6", `{"endpoint":"tcp://[::1]:5557"}`, ""},
		{"ipc", `{"endpoint":"ipc:///run/vllm/kv.sock"}`, ""},
		{"missing endpoint", `{"topic":"kv"}`, "kv_events.endpoint \"\": want tcp://host:port or ipc://path"},
		{"no scheme", `{"endpoint":"127.0.0.1:5557"}`, "want tcp://host:port or ipc://path"},
		{"other scheme", `{"endpoint":"udp://127.0.0.1:5557"}`, `scheme "udp": want tcp or ipc`},
		{"no port", `{"endpoint":"tcp://127.0.0.1"}`, "want tcp://host:port"},
		{"port 0", `{"endpoint":"tcp://127.0.0.1:0"}`, `port "0": want 1 to 65535`},
		{"port too large", `{"endpoint":"tcp://127.0.0.1:70000"}`, `port "70000"`},
		{"wildcard", `{"endpoint":"tcp://*:5557"}`, "a wildcard is what the engine binds"},
		{"empty ipc", `{"endpoint":"ipc://"}`, "want ipc://path"},
		{"bad replay", `{"endpoint":"tcp://127.0.0.1:5557","replay_endpoint":"tcp://:5558"}`, "kv_events.replay_endpoint"},
		{"control character in topic", `{"endpoint":"tcp://127.0.0.1:5557","topic":"a\u0001"}`, "kv_events.topic: control character"},
		{"long topic", `{"endpoint":"tcp://127.0.0.1:5557","topic":"` + strings.Repeat("t", 256) + `"}`, "kv_events.topic: 256 bytes"},
		{"unknown field", `{"endpoint":"tcp://127.0.0.1:5557","topics":"kv"}`, "unknown field"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			code, body := put(tt.kv)
			if tt.errHas == "" {
				if code != 200 {
					t.Fatalf("code %d: %v", code, body)
				}
				return
			}
			if msg, _ := body["error"].(string); code != 400 || !strings.Contains(msg, tt.errHas) {
				t.Errorf("code %d, body %v; want 400 with %q", code, body, tt.errHas)
			}
		})
	}
}

func TestWorkerKVEventsKeptAndDropped(t *testing.T) {
	n, srv := newTestNode(t, nil)
	code, _ := call(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://127.0.0.1:8000","model":"m","kv_events":{"endpoint":"tcp://127.0.0.1:5557","replay_endpoint":"tcp://127.0.0.1:5558","topic":"kv"}}`)
	if code != 200 {
		t.Fatal(code)
	}
	w, _ := n.st.worker("w1")
	want := &KVEvents{Endpoint: "tcp://127.0.0.1:5557", ReplayEndpoint: "tcp://127.0.0.1:5558", Topic: "kv"}
	if diff := cmp.Diff(want, w.KVEvents); diff != "" {
		t.Errorf("record (-want +got):\n%s", diff)
	}
	// A patch keeps it; a put without it drops it.
	if code, _ := call(t, srv, "PATCH", "/v1/workers/w1", `{"load":3}`); code != 200 {
		t.Fatal(code)
	}
	if w, _ := n.st.worker("w1"); w.KVEvents == nil {
		t.Error("patch dropped kv_events")
	}
	if code, _ := call(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://127.0.0.1:8000","model":"m"}`); code != 200 {
		t.Fatal(code)
	}
	if w, _ := n.st.worker("w1"); w.KVEvents != nil {
		t.Errorf("put without kv_events kept %+v", w.KVEvents)
	}
}
