package node

import (
	"fmt"
	"testing"
	"testing/synctest"
	"time"
)

// The readiness tests run in virtual time on the in-memory network
// (e2e_virtual_test.go): partitions come from the network's loss rule.

// TestReadyRequiresMajority checks the opt-in: a node cut off from the
// majority reports not ready while it is cut, and ready again after the
// heal; the majority side stays ready throughout.
func TestReadyRequiresMajority(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false, func(cfg *Config) { cfg.ReadyRequiresMajority = true })
		c.cutOff(2)
		eventually(t, "the cut node reports not ready", func() error {
			code, m := c.api(2, "GET", "/readyz", "")
			if code != 503 || m["reason"] != "no majority" || m["majority"] != false {
				return fmt.Errorf("/readyz of the cut node: %d %v", code, m)
			}
			return nil
		})
		if code, m := c.api(0, "GET", "/readyz", ""); code != 200 || m["ready"] != true {
			t.Fatalf("/readyz on the majority side: %d %v", code, m)
		}
		c.heal()
		eventually(t, "the healed node reports ready", func() error {
			if code, m := c.api(2, "GET", "/readyz", ""); code != 200 {
				return fmt.Errorf("/readyz after the heal: %d %v", code, m)
			}
			return nil
		})
	})
}

// TestReadyIgnoresMajorityByDefault: without the opt-in a node on the
// minority side stays ready (it serves what it has; README says so).
func TestReadyIgnoresMajorityByDefault(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 3, false)
		cut := c.nodes[2]
		c.cutOff(2)
		eventually(t, "the cut node loses its majority", func() error {
			if _, _, maj := cut.quorum(); maj {
				return fmt.Errorf("still a majority")
			}
			return nil
		})
		if code, m := c.api(2, "GET", "/readyz", ""); code != 200 {
			t.Fatalf("/readyz of the cut node without the opt-in: %d %v", code, m)
		}
	})
}

// TestHealthz checks that /healthz answers 503 in the states it reports:
// it answered 503 only after shutdown, when nothing serves it; now from
// the start of a leave on.
func TestHealthz(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 0, false)
		c.cfgs = []Config{localConfig("h0", "")}
		c.nodes = []*Node{nil}
		c.start(0)
		if code, m := c.api(0, "GET", "/healthz", ""); code != 200 || m["status"] != "ok" {
			t.Fatalf("/healthz of a running node: %d %v", code, m)
		}
		if err := c.nodes[0].Leave(time.Second); err != nil {
			t.Fatal(err)
		}
		if code, m := c.api(0, "GET", "/healthz", ""); code != 503 || m["status"] != "left" {
			t.Fatalf("/healthz after Leave: %d %v", code, m)
		}
	})
}
