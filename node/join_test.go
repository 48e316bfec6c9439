package node

import (
	"bytes"
	"errors"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"testing/synctest"
)

// joinLoops counts the goroutines that run a join loop, from their
// stacks: before join loops were one at a time, each Join started its own
// goroutine in runnerMembership.Join.
func joinLoops() int {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	count := 0
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		if bytes.Contains(g, []byte("node.(*membership).joinLoop")) ||
			bytes.Contains(g, []byte("node.(*membership).Join.func")) ||
			bytes.Contains(g, []byte("node.(*runnerMembership).Join.func")) {
			count++
		}
	}
	return count
}

// TestJoinOneLoop: joins through seeds that never answer, through the API
// and the method, with the same and with other seeds, leave one join loop
// running, and Shutdown ends it.
func TestJoinOneLoop(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 0, false)
		c.cfgs = []Config{localConfig("lonely", "")}
		c.nodes = make([]*Node, 1)
		c.start(0)
		nd := c.nodes[0]
		// Nothing listens at these addresses on the in-memory network:
		// every attempt fails and the loop backs off until it is replaced
		// or stopped. The seeds are addresses, not names: a name lookup
		// would use the process's resolver, which must not start inside a
		// synctest bubble (it is shared with code outside).
		const nowhere, nowhereElse = "127.0.0.1:9", "127.0.0.2:9"
		api := func(body string) {
			t.Helper()
			rec := httptest.NewRecorder()
			nd.Handler().ServeHTTP(rec, httptest.NewRequest("POST", "/v1/join", strings.NewReader(body)))
			if rec.Code != http.StatusAccepted {
				t.Fatalf("POST /v1/join %s: %d %s", body, rec.Code, rec.Body)
			}
		}
		steps := []struct {
			name string
			join func()
		}{
			{"method", func() { must(t, nd.Join(nowhere)) }},
			{"same seeds again", func() { must(t, nd.Join(nowhere)) }},
			{"same seeds through the API", func() { api(`{"seeds":["` + nowhere + `"]}`) }},
			{"other seeds through the API", func() { api(`{"seeds":["` + nowhere + `","` + nowhereElse + `"]}`) }},
			{"other seeds again", func() { must(t, nd.Join(nowhereElse)) }},
			{"first seeds again", func() { must(t, nd.Join(nowhere)) }},
		}
		for _, s := range steps {
			s.join()
			// A loop just handed to the group may not have started yet;
			// once every goroutine waits, it must be the only one.
			synctest.Wait()
			if n := joinLoops(); n != 1 {
				t.Fatalf("%s: %d join loops, want 1", s.name, n)
			}
			if ok, why := nd.Ready(); ok || why != "joining" {
				t.Fatalf("%s: Ready() = %v, %q; want false, joining", s.name, ok, why)
			}
		}
		must(t, nd.Shutdown(t.Context()))
		if n := joinLoops(); n != 0 {
			t.Fatalf("after Shutdown: %d join loops, want 0", n)
		}
		if err := nd.Join(nowhere); !errors.Is(err, ErrClosed) {
			t.Fatalf("Join after Shutdown: %v, want ErrClosed", err)
		}
	})
}

// TestJoinLoopEndsWhenJoined: repeated joins through a live seed end in
// one successful join, after which no join loop is left.
func TestJoinLoopEndsWhenJoined(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 0, false)
		c.cfgs = []Config{localConfig("seed", ""), localConfig("joiner", "")}
		c.nodes = make([]*Node, 2)
		c.start(0)
		c.start(1)
		for range 3 {
			c.join(1)
		}
		c.converged()
		synctest.Wait()
		if n := joinLoops(); n != 0 {
			t.Fatalf("%d join loops after the join", n)
		}
	})
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}
