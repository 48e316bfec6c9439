package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// node the tests start must stop all of its goroutines on Shutdown. The
// one exception is zmq4's PUB writer, which its Close leaves blocked
// forever (go-zeromq/zmq4 v0.17.0): only the engines' publishers of the
// loopback benchmarks use PUB sockets; nodes never do. Nor is zmq4's SUB
// reader, which a subscription closed while messages still arrive leaves
// blocked on its queue (the loopback lag benchmark at high rates shows it:
// a zmq4 bug that costs one goroutine per such unsubscription).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"),
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*qreader).listen"))
}
