package swimnet_test

import (
	"fmt"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
)

// e2eTimeout bounds every wait of the tests on wall time. It is generous on
// purpose: the machine running the tests may be slow and busy, and a wait
// ends as soon as its condition holds.
const e2eTimeout = 30 * time.Second

// noLeaks fails t if goroutines started during the test outlive it. It runs
// after every cleanup registered later, so the runners' Shutdowns come first.
func noLeaks(t *testing.T) {
	t.Helper()
	ignore := goleak.IgnoreCurrent()
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
}

// wantState returns a condition that every runner in rs sees name in state.
func wantState(rs []*swimnet.Runner, name string, want swim.State) func() error {
	return func() error {
		for _, r := range rs {
			m, ok := r.Member(name)
			got := m.State
			if !ok {
				return fmt.Errorf("%s does not know %s", r.Self().Name, name)
			}
			if got != want {
				return fmt.Errorf("%s sees %s %v, want %v", r.Self().Name, name, got, want)
			}
		}
		return nil
	}
}
