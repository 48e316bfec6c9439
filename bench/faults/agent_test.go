//go:build linux

package faults

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// startWait bounds the wait for an agent's ready line: generous, the
// machine may be busy; a join through a seed is part of it.
const startWait = 60 * time.Second

// lockedBuffer is a bytes.Buffer safe for a writer and readers.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *lockedBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *lockedBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// tail returns the last n bytes of the log, for failure messages.
func (s *lockedBuffer) tail(n int) string {
	str := s.String()
	if len(str) > n {
		str = "..." + str[len(str)-n:]
	}
	return str
}

// keepLog writes an agent's log to the directory named by envLogs, if
// set, under the test's name.
func keepLog(t *testing.T, file string, log *lockedBuffer) {
	if suite.logs == "" {
		return
	}
	dir := filepath.Join(suite.logs, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Logf("keep logs: %v", err)
		return
	}
	if err := os.WriteFile(filepath.Join(dir, file), []byte(log.String()), 0o644); err != nil {
		t.Logf("keep logs: %v", err)
	}
}

// agent is one `meshnode agent` process, possibly in a network namespace.
// Its identity (name, bind address, data directory) survives restarts.
type agent struct {
	t       *testing.T
	bin     string
	name    string
	profile string
	ns      *namespace // nil: the test's own namespace, loopback
	bind    string     // --bind; after a start, the bound address
	dataDir string     // "" without persistence
	extra   []string   // more flags
	env     []string   // more environment (KEY=value)

	// Set by start.
	gossip string // host:port bound for gossip
	api    string // host:port of the API, on the loopback of ns
	ready  string // the ready line
	pid    int
	stderr *lockedBuffer
	done   chan struct{} // closed when the process has been reaped
	exited bool
	client *http.Client
}

var readyRE = regexp.MustCompile(`^meshnode agent ready node=(\S+) generation=\d+ gossip=(\S+) api=(\S+) `)

// dial returns a dialer that opens connections from the agent's network
// namespace (the API listens on its loopback).
func (a *agent) dial() func(ctx context.Context, network, addr string) (net.Conn, error) {
	if a.ns == nil {
		var d net.Dialer
		return d.DialContext
	}
	return a.ns.dial
}

// start starts the process with --join seeds (none: a new cluster) and
// waits for its ready line. The test's cleanup kills it.
func (a *agent) start(seeds ...string) {
	a.t.Helper()
	if err := a.tryStart(startWait, seeds...); err != nil {
		a.t.Fatal(err)
	}
}

// tryStart is start with a join timeout, reporting a failure to start or
// join (the process has then exited or is killed by the cleanup).
func (a *agent) tryStart(joinTimeout time.Duration, seeds ...string) error {
	t := a.t
	t.Helper()
	args := []string{"agent", "--node", a.name, "--bind", a.bind, "--api-addr", "127.0.0.1:0",
		"--profile", a.profile, "--log-format", "json", "--join-timeout", joinTimeout.String()}
	if a.dataDir != "" {
		args = append(args, "--data-dir", a.dataDir)
	}
	for _, s := range seeds {
		args = append(args, "--join", s)
	}
	if suite.logs != "" {
		args = append(args, "--log-level", "debug")
	}
	args = append(args, a.extra...)
	var cmd *exec.Cmd
	if a.ns != nil {
		// ip execs the agent: the pid is the agent's.
		cmd = exec.Command("ip", append([]string{"netns", "exec", a.ns.name, a.bin}, args...)...)
	} else {
		cmd = exec.Command(a.bin, args...)
	}
	cmd.Env = append(cmd.Environ(), a.env...)
	// Its own process group, so that a kill reaches everything it starts;
	// killed with the test process if that dies first.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	a.stderr = &lockedBuffer{}
	cmd.Stderr = a.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		return err
	}
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("%s: start: %w", a.name, err)
	}
	a.pid, a.exited = cmd.Process.Pid, false
	done := make(chan struct{})
	a.done = done
	stderr := a.stderr
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-done
		keepLog(t, fmt.Sprintf("%s-%d.log", a.name, cmd.Process.Pid), stderr)
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
		_ = cmd.Wait()
		close(done)
	}()
	readyWait := joinTimeout + 30*time.Second
	timer := time.NewTimer(readyWait)
	defer timer.Stop()
	select {
	case l, ok := <-lines:
		m := readyRE.FindStringSubmatch(l)
		if !ok || m == nil {
			<-done
			a.exited = true
			return fmt.Errorf("%s: no ready line (got %q); stderr:\n%s", a.name, l, a.stderr.tail(4000))
		}
		a.gossip, a.api, a.ready = m[2], m[3], l
	case <-timer.C:
		return fmt.Errorf("%s: no ready line within %v; stderr:\n%s", a.name, readyWait, a.stderr.tail(4000))
	}
	a.bind = a.gossip // a restart comes back on the same address
	a.client = &http.Client{
		Timeout: 20 * time.Second,
		Transport: &http.Transport{
			DialContext:         a.dial(),
			MaxIdleConnsPerHost: 8,
			DisableCompression:  true,
		},
	}
	return nil
}

// signal sends sig to the agent's process group.
func (a *agent) signal(sig syscall.Signal) {
	a.t.Helper()
	if err := syscall.Kill(-a.pid, sig); err != nil {
		a.t.Fatalf("%s: kill -%d: %v", a.name, sig, err)
	}
}

// kill9 kills the agent with SIGKILL and reaps it.
func (a *agent) kill9() {
	a.t.Helper()
	a.signal(syscall.SIGKILL)
	a.reap(startWait)
}

// reap waits until the process has exited.
func (a *agent) reap(within time.Duration) {
	a.t.Helper()
	select {
	case <-a.done:
		a.exited = true
		a.client.CloseIdleConnections()
	case <-time.After(within):
		a.t.Fatalf("%s: still running %v after being told to stop; stderr:\n%s", a.name, within, a.stderr.tail(4000))
	}
}

// base returns the API's base URL.
func (a *agent) base() string { return "http://" + a.api }

// cluster is a set of agents that joined through the first one.
type cluster struct {
	t      *testing.T
	agents []*agent
	net    *topology // nil: all on the test's loopback
}

// clusterOpts describes a cluster to start.
type clusterOpts struct {
	n       int
	profile string // lan or local
	sideA   int    // > 0: in namespaces, agents [0, sideA) on side A, the rest on side B
	data    bool   // each agent gets a data directory
	extra   []string
	env     []string
}

// newCluster starts the agents one after the other (each joins through
// the first) and waits until every one sees all of them alive.
func newCluster(t *testing.T, bin string, o clusterOpts) *cluster {
	t.Helper()
	c := &cluster{t: t}
	if o.sideA > 0 {
		c.net = newTopology(t, o.n, o.sideA)
	}
	for i := range o.n {
		a := &agent{t: t, bin: bin, name: fmt.Sprintf("n%02d", i), profile: o.profile, bind: "127.0.0.1:0", extra: o.extra, env: o.env}
		if c.net != nil {
			a.ns = c.net.nodes[i]
			a.bind = a.ns.addr + ":7946"
		}
		if o.data {
			a.dataDir = t.TempDir()
		}
		if i == 0 {
			a.start()
		} else {
			a.start(c.agents[0].gossip)
		}
		c.agents = append(c.agents, a)
	}
	if _, err := c.waitWhole(c.agents, 60*time.Second); err != nil {
		t.Fatalf("cluster of %d did not form: %v", o.n, err)
	}
	return c
}

// names returns the agents' names.
func names(as []*agent) []string {
	var s []string
	for _, a := range as {
		s = append(s, a.name)
	}
	return s
}

// except returns the agents of c not in out.
func (c *cluster) except(out ...*agent) []*agent {
	var r []*agent
next:
	for _, a := range c.agents {
		for _, o := range out {
			if a == o {
				continue next
			}
		}
		r = append(r, a)
	}
	return r
}

// waitWhole polls until every agent of view sees every agent of view
// alive, and returns the time it took.
func (c *cluster) waitWhole(view []*agent, within time.Duration) (time.Duration, error) {
	took, _, err := c.waitWholeGap(view, within)
	return took, err
}

// waitWholeGap is waitWhole that also returns the last gap seen before the
// view became whole ("" if it was whole at once), for failure messages.
func (c *cluster) waitWholeGap(view []*agent, within time.Duration) (time.Duration, string, error) {
	want := names(view)
	gap := ""
	took, err := poll(within, func() error {
		err := whole(view, want)
		if err != nil {
			gap = err.Error()
		}
		return err
	})
	return took, gap, err
}

// whole checks that every agent of view sees every name of want alive.
func whole(view []*agent, want []string) error {
	for _, a := range view {
		ms, err := a.members()
		if err != nil {
			return err
		}
		for _, w := range want {
			if s := stateOf(ms, w); s != "alive" {
				return fmt.Errorf("%s sees %s %s", a.name, w, s)
			}
		}
	}
	return nil
}

// waitState polls until every observer sees every one of targets in one
// of the states, and returns the time it took. seen records, per observer
// and target, when the state was first seen (nil: not recorded).
func waitState(observers, targets []*agent, states []string, within time.Duration, seen map[[2]string]time.Duration) (time.Duration, error) {
	start := time.Now()
	return poll(within, func() error {
		var missing []string
		for _, o := range observers {
			ms, err := o.members()
			if err != nil {
				return err
			}
			for _, tg := range targets {
				s := stateOf(ms, tg.name)
				ok := false
				for _, w := range states {
					ok = ok || s == w
				}
				if !ok {
					missing = append(missing, fmt.Sprintf("%s sees %s %s", o.name, tg.name, s))
					continue
				}
				if k := [2]string{o.name, tg.name}; seen != nil {
					if _, done := seen[k]; !done {
						seen[k] = time.Since(start)
					}
				}
			}
		}
		if len(missing) > 0 {
			return fmt.Errorf("want %s: %s", strings.Join(states, " or "), strings.Join(missing, "; "))
		}
		return nil
	})
}

// pollEvery is the polling period of every wait.
const pollEvery = 50 * time.Millisecond

// poll calls cond every pollEvery until it returns nil (then it returns
// the time since the call) or within passes (then the last error).
func poll(within time.Duration, cond func() error) (time.Duration, error) {
	start := time.Now()
	deadline := start.Add(within)
	tick := time.NewTicker(pollEvery)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return time.Since(start), nil
		}
		if time.Now().After(deadline) {
			return time.Since(start), fmt.Errorf("not within %v: %w", within, err)
		}
		<-tick.C
	}
}
