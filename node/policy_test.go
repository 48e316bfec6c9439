package node

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/radix"
)

// TestRoutePolicyFromConfig: the configured policy reaches /v1/route; zero
// fields keep radix's defaults.
func TestRoutePolicyFromConfig(t *testing.T) {
	n, _ := newTestNode(t, nil)
	if diff := cmp.Diff(radix.DefaultPolicy(), n.routePolicy("m")); diff != "" {
		t.Errorf("default policy (-want +got):\n%s", diff)
	}
	n, srv := newTestNode(t, func(c *Config) {
		c.RouteCacheThreshold, c.RouteBalanceAbs, c.RouteBalanceRel, c.RouteCostWeight = 0.25, 4, 1.5, 3
	})
	want := radix.Policy{CacheThreshold: 0.25, BalanceAbsThreshold: 4, BalanceRelThreshold: 1.5, CostWeight: 3, PageTokens: radix.DefaultPageTokens}
	if diff := cmp.Diff(want, n.routePolicy("m")); diff != "" {
		t.Errorf("configured policy (-want +got):\n%s", diff)
	}
	// Loads in queued tokens: w1 holds the prompt's 4 pages of 64 bytes
	// but has 1,000 tokens queued; w2 nothing queued and nothing cached.
	// Cost: w1 1000, w2 0 + 3 * 4 * 16 = 192.
	mustCall(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://w1:8000","model":"m","load":1000}`, 200)
	mustCall(t, srv, "PUT", "/v1/workers/w2", `{"url":"http://w2:8000","model":"m","load":0}`, 200)
	prompt := strings.Repeat("p", 64*4)
	mustCall(t, srv, "POST", "/v1/index/insert", `{"worker":"w1","text":"`+prompt+`"}`, 200)
	r := mustCall(t, srv, "POST", "/v1/route", `{"model":"m","text":"`+prompt+`"}`, 200)
	if r["worker"] != "w2" || r["rule"] != "cost" {
		t.Errorf("route: %v", r)
	}
	mustCall(t, srv, "PATCH", "/v1/workers/w1", `{"load":100}`, 200)
	r = mustCall(t, srv, "POST", "/v1/route", `{"model":"m","text":"`+prompt+`"}`, 200)
	if r["worker"] != "w1" || r["rule"] != "cost" || r["matched_pages"] != float64(4) {
		t.Errorf("route: %v", r)
	}
}

func TestRoutePolicyValidate(t *testing.T) {
	for _, tc := range []struct {
		mod  func(*Config)
		want string
	}{
		{func(c *Config) { c.RouteCacheThreshold = 1.5 }, "route_cache_threshold"},
		{func(c *Config) { c.RouteBalanceAbs = -1 }, "route_balance_abs"},
		{func(c *Config) { c.RouteBalanceRel = 0.5 }, "route_balance_rel"},
		{func(c *Config) { c.RouteCostWeight = -2 }, "route_cost_weight"},
	} {
		cfg := Config{Name: "t1", BindAddr: "127.0.0.1:0", APIAddr: "off"}
		tc.mod(&cfg)
		if err := cfg.withDefaults().Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("error %v, want one naming %s", err, tc.want)
		}
	}
}
