package main

import (
	"bytes"
	"os"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/meshnode/meshnode/kvevents"
	"go.uber.org/goleak"
)

// TestDemo runs the demo briefly in this process: it must exit 0, show
// each part of the show, and leave no goroutine behind (every node shut
// down).
func TestDemo(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreAnyFunction(kvevents.ZMQ4LeakedFunction)) // TestProxyDemo's engines may have run before
	var out, errb bytes.Buffer
	if code := runDemo([]string{"--nodes", "3", "--duration", "3s"}, &out, &errb, nil); code != 0 {
		t.Fatalf("demo exited %d; stderr:\n%s\nstdout:\n%s", code, errb.String(), out.String())
	}
	got := out.String()
	for _, want := range []string{
		"cluster converged: every node sees 3 alive",
		"registered 4 workers",
		"reached all 3 running nodes in",
		"node-3 killed without leaving",
		"node-3 restarted: generation",
		"routing: ",
		"cache-hit decisions",
		"matched pages",
		"decisions by rule: ",
		"rate limit 60 per 2s: ",
		"summary",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "\x1b[") {
		t.Errorf("escape sequences in output that is not a terminal:\n%q", got)
	}
}

// TestProxyDemo runs the routing-tier show briefly: turns stream through
// the nodes' proxies to the engines, later turns find their prefix cached,
// and nothing is left running.
func TestProxyDemo(t *testing.T) {
	// zmq4 leaves a PUB socket's writer goroutine behind after Close
	// (kvevents.ZMQ4LeakedFunction): the engines' event sockets.
	defer goleak.VerifyNone(t, goleak.IgnoreAnyFunction(kvevents.ZMQ4LeakedFunction))
	var out, errb bytes.Buffer
	if code := runDemo([]string{"--proxy", "--nodes", "2", "--duration", "3s"}, &out, &errb, nil); code != 0 {
		t.Fatalf("demo exited %d; stderr:\n%s\nstdout:\n%s", code, errb.String(), out.String())
	}
	got := out.String()
	for _, want := range []string{"2 nodes with proxies", "turn 2 via node-", "TTFT", "summary", "prompt tokens cached: ", "turns by engine: engine-"} {
		if !strings.Contains(got, want) {
			t.Errorf("output lacks %q:\n%s", want, got)
		}
	}
	// Parse the counts: a substring test would read "420 streamed" as
	// "0 streamed".
	m := regexp.MustCompile(`turns: (\d+) streamed, (\d+) failed`).FindStringSubmatch(got)
	if m == nil {
		t.Fatalf("no turn counts in the summary:\n%s", got)
	}
	if streamed, _ := strconv.Atoi(m[1]); streamed == 0 || m[2] != "0" {
		t.Errorf("%s streamed, %s failed; want some streamed and none failed:\n%s", m[1], m[2], got)
	}
}

func TestDemoUsage(t *testing.T) {
	for _, args := range [][]string{{"--nodes", "1"}, {"--nodes", "99"}, {"--duration", "10ms"}, {"extra"}, {"--bogus"}} {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			if code := runDemo(args, &out, &errb, nil); code != 2 {
				t.Errorf("exit %d, want 2; stderr: %s", code, errb.String())
			}
		})
	}
}

// TestDemoInterrupted: a signal stops the demo early, cleanly, with exit 0.
func TestDemoInterrupted(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreAnyFunction(kvevents.ZMQ4LeakedFunction)) // TestProxyDemo's engines may have run before
	sig := make(chan os.Signal, 1)
	sig <- syscall.SIGINT
	var out, errb bytes.Buffer
	if code := runDemo([]string{"--nodes", "2", "--duration", "1m"}, &out, &errb, sig); code != 0 {
		t.Fatalf("exit %d; stderr:\n%s", code, errb.String())
	}
	if got := out.String() + errb.String(); !strings.Contains(got, "interrupted") {
		t.Errorf("output does not say it was interrupted:\n%s", got)
	}
}
