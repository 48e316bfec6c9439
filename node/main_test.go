package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// node the tests start must stop all of its goroutines on Shutdown.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
