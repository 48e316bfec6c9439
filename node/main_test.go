package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// node the tests start must stop all of its goroutines on Shutdown. One
// exception, not the node's: zmq4 v0.17.0's PUB socket never stops its
// writer goroutine (its Close does not close the writer), one per emulated
// engine that the KV event end-to-end test starts.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"))
}
