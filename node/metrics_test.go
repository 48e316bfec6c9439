package node

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil/promlint"
)

func TestMetricsLint(t *testing.T) {
	reg := prometheus.NewRegistry()
	n, srv := newTestNode(t, func(c *Config) { c.Registerer = reg; c.Version = "1.2.3" })
	// Exercise the labelled metrics so that they have children to lint.
	mustCall(t, srv, "PUT", "/v1/kv/ns/k", `{"value":"v"}`, 200)
	mustCall(t, srv, "GET", "/v1/kv/ns/nokey", "", 404)
	mustCall(t, srv, "PUT", "/v1/limits/l", `{"limit":1,"window":"1s"}`, 200)
	mustCall(t, srv, "POST", "/v1/limits/l/take", `{"n":1}`, 200)
	n.met.syncRounds.WithLabelValues("ok").Inc()
	n.met.memberEvents.WithLabelValues("join").Inc()
	n.met.snapshots.WithLabelValues("ok").Inc()
	n.met.routes.WithLabelValues("cache-hit").Inc()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	problems, err := promlint.NewWithMetricFamilies(mfs).Lint()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
	names := map[string]bool{}
	for _, mf := range mfs {
		if !strings.HasPrefix(mf.GetName(), "meshnode_") {
			t.Errorf("metric %s lacks the meshnode_ prefix", mf.GetName())
		}
		names[mf.GetName()] = true
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "peer", "key", "member", "node", "path":
					t.Errorf("metric %s has an unbounded label %s", mf.GetName(), l.GetName())
				}
			}
		}
	}
	for _, want := range []string{"meshnode_build_info", "meshnode_http_requests_total", "meshnode_store_keys", "meshnode_members"} {
		if !names[want] {
			t.Errorf("missing %s", want)
		}
	}
	// /metrics serves the registry.
	resp, err := srv.Client().Get(srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("/metrics: %d", resp.StatusCode)
	}
	// Shutdown unregisters everything, so a restarted node can register again.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := n.Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	if mfs, _ := reg.Gather(); len(mfs) != 0 {
		t.Fatalf("%d metric families left after Shutdown", len(mfs))
	}
}
