package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// node the tests start must stop all of its goroutines on Shutdown. The
// one exception is zmq4's PUB writer, which its Close leaves blocked
// forever (go-zeromq/zmq4 v0.17.0): only the engines' publishers of the
// loopback benchmarks use PUB sockets; nodes never do.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m, goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"))
}
