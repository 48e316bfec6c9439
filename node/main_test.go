package node

import (
	"testing"

	"go.uber.org/goleak"
)

// TestMain fails the package if any goroutine outlives the tests: every
// node the tests start must stop all of its goroutines on Shutdown. One
// exception, not the node's: zmq4 v0.17.0's PUB socket never stops its
// writer goroutine (its Close does not close the writer), one per emulated
// engine that the KV event end-to-end test and the loopback lag benchmark
// start. Nor is zmq4's SUB reader, which a subscription closed while
// messages still arrive leaves blocked on its queue (the loopback lag
// benchmark at high rates shows it: a zmq4 bug that costs one goroutine
// per such unsubscription).
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m,
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*pubMWriter).run"),
		goleak.IgnoreAnyFunction("github.com/go-zeromq/zmq4.(*qreader).listen"))
}
