package node

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestRouteSources checks what a route answers on workers that stream
// engine KV events: the pages their events hold ("events"), prompts routed
// to them and not yet confirmed ("pending", until the pending timeout),
// LoRA prompts apart from the base model's, and "recorded" on a worker
// without events.
func TestRouteSources(t *testing.T) {
	n, srv := newTestNode(t, func(c *Config) { c.MaxRequestBytes = 1 << 20 })
	for _, w := range []string{
		`"e1","url":"http://127.0.0.1:8001","model":"m","kv_events":{"endpoint":"tcp://127.0.0.1:5557"}`,
		`"r1","url":"http://127.0.0.1:8002","model":"r"`,
	} {
		id := w[1:3]
		if code, body := call(t, srv, "PUT", "/v1/workers/"+id, "{"+w[5:]+"}"); code != 200 {
			t.Fatalf("put %s: %d %v", id, code, body)
		}
	}
	wk, _ := n.st.worker("e1")
	a := NewKVApplier(n.evIx, "e1", "m", wk.Epoch)
	now := time.Now()
	a.Begin(now, false)
	base, lora := toks(0, 64), toks(1000, 64)
	sqlEv := stored([]uint64{21, 22}, 0, lora, 32)
	sqlEv.HasLoRA, sqlEv.LoRAName = true, "sql"
	res := a.ApplyBatch(0, batch(stored([]uint64{11, 12}, 0, base, 32), sqlEv), now)
	if res.Err != nil || res.Stored != 2 {
		t.Fatalf("apply: %+v", res)
	}
	route := func(body string) map[string]any {
		t.Helper()
		code, m := call(t, srv, "POST", "/v1/route", body)
		if code != 200 {
			t.Fatalf("route %s: %d %v", body, code, m)
		}
		return m
	}
	check := func(what string, m map[string]any, pages int, sources ...string) {
		t.Helper()
		want := []any{}
		for _, s := range sources {
			want = append(want, s)
		}
		if m["matched_pages"] != float64(pages) {
			t.Errorf("%s: matched %v pages, want %d (%v)", what, m["matched_pages"], pages, m)
		}
		if diff := cmp.Diff(want, m["sources"]); diff != "" {
			t.Errorf("%s: sources (-want +got):\n%s", what, diff)
		}
	}
	check("events", route(fmt.Sprintf(`{"model":"m","tokens":%s}`, tokensJSON(base))), 4, "events")
	check("lora prompt without its adapter", route(fmt.Sprintf(`{"model":"m","tokens":%s}`, tokensJSON(lora))), 0)
	check("lora", route(fmt.Sprintf(`{"model":"m","lora":"sql","tokens":%s}`, tokensJSON(lora))), 4, "events")
	if code, _ := call(t, srv, "POST", "/v1/route", `{"model":"m","lora":"sql","text":"hello"}`); code != 400 {
		t.Errorf("lora with text: %d, want 400", code)
	}

	longer := append(append([]uint32{}, base...), toks(500, 32)...)
	m := route(fmt.Sprintf(`{"model":"m","tokens":%s,"record":true}`, tokensJSON(longer)))
	if m["recorded"] != true || m["pending"] != true {
		t.Fatalf("record on an event-streaming worker: %v", m)
	}
	check("pending beyond the events", route(fmt.Sprintf(`{"model":"m","tokens":%s}`, tokensJSON(longer))), 6, "pending")
	check("events and pending", route(fmt.Sprintf(`{"model":"m","tokens":%s}`, tokensJSON(base))), 4, "events", "pending")
	n.expirePending(now.Add(n.cfg.PendingTimeout.D() + 2*time.Second))
	check("pending expired", route(fmt.Sprintf(`{"model":"m","tokens":%s}`, tokensJSON(longer))), 4, "events")

	m = route(fmt.Sprintf(`{"model":"r","tokens":%s,"record":true}`, tokensJSON(base)))
	if m["recorded"] != true || m["pending"] != nil {
		t.Fatalf("record on a worker without events: %v", m)
	}
	check("recorded", route(fmt.Sprintf(`{"model":"r","tokens":%s}`, tokensJSON(base))), 4, "recorded")
}
