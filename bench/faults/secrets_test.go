//go:build linux

package faults

import (
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
	"time"
)

// newKey returns a gossip key as meshnode keygen prints it.
func newKey() string {
	return base64.StdEncoding.EncodeToString(randBytes(32))
}

func randBytes(n int) []byte {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return b
}

// warnings counts the log lines at level WARN or ERROR in a JSON log.
func warnings(log string) int {
	return strings.Count(log, `"level":"WARN"`) + strings.Count(log, `"level":"ERROR"`)
}

// TestWrongSecret: a joiner with the wrong gossip key, or the right key and
// the wrong label, cannot join, and both sides say why: a log line at
// warn or error level on each, and meshnode_swim_packets_bad_total with a
// reason label on the member (issue 10, item 7: nothing logged, the counter
// at 0).
func TestWrongSecret(t *testing.T) {
	bin := need(t, modeShort)
	key := newKey()
	cases := []struct {
		name       string
		env, extra []string
	}{
		{"key", []string{"MESHNODE_ENCRYPT_KEY=" + newKey()}, []string{"--label", "prod"}},
		{"label", []string{"MESHNODE_ENCRYPT_KEY=" + key}, []string{"--label", "staging"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := newCluster(t, bin, clusterOpts{n: 3, profile: "lan",
				env: []string{"MESHNODE_ENCRYPT_KEY=" + key}, extra: []string{"--label", "prod"}})
			seed := c.agents[0]
			seedWarn := warnings(seed.stderr.String())
			joiner := &agent{t: t, bin: bin, name: "stranger", profile: "lan", bind: "127.0.0.1:0",
				env: tc.env, extra: tc.extra}
			err := joiner.tryStart(3*time.Second, seed.gossip)
			if err == nil {
				t.Fatalf("a joiner with the wrong %s joined", tc.name)
			}
			// The joiner has exited; the member may count and log a moment
			// later.
			var got string
			_, perr := poll(10*time.Second, func() error {
				m, err := seed.metrics()
				if err != nil {
					return err
				}
				var with []string
				for k, v := range m {
					if strings.HasPrefix(k, "meshnode_swim_packets_bad_total{") && strings.Contains(k, "reason=") && v > 0 {
						with = append(with, fmt.Sprintf("%s %g", k, v))
					}
				}
				got = fmt.Sprintf("packets_bad_total %g (%s)", sum(m, "meshnode_swim_packets_bad_total"), strings.Join(with, ", "))
				if len(with) == 0 {
					return fmt.Errorf("no meshnode_swim_packets_bad_total with a reason label above 0: %s", got)
				}
				if warnings(seed.stderr.String()) == seedWarn {
					return fmt.Errorf("the member logged no warning")
				}
				return nil
			})
			figure(t, "joiner with the wrong %s: member's %s; warnings logged: member %d, joiner %d",
				tc.name, got, warnings(seed.stderr.String())-seedWarn, warnings(joiner.stderr.String()))
			if perr != nil {
				t.Errorf("item 7: wrong %s: %v", tc.name, perr)
			}
			if warnings(joiner.stderr.String()) == 0 {
				t.Errorf("item 7: wrong %s: the joiner logged no warning; it said: %s", tc.name, lastLine(joiner.stderr.String()))
			}
		})
	}
}
