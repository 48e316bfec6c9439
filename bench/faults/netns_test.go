//go:build linux

package faults

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
)

// The partition network. Each agent has a namespace with one veth (eth0,
// 10.213.0.(10+i)/24) whose peer is a port of the bridge of its side, brA
// or brB, in the switch namespace. One veth pair (cutA on brA, cutB on brB)
// joins the bridges: setting it down is the partition. No namespace has any
// other link, so nothing here can reach or route to a real network.
const (
	subnetPrefix = "10.213.0."
	subnetBits   = "/24"
)

// namespace is one network namespace made by the test.
type namespace struct {
	name string
	addr string // IPv4 address of eth0; "" for the switch
}

// dial opens a connection from inside the namespace: on an OS thread
// switched into it (setns), since a socket belongs to the namespace of the
// thread that creates it. The thread switches back before it is released;
// if that fails the thread stays locked and Go discards it.
func (n *namespace) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	type result struct {
		c   net.Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", syscall.Gettid()))
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer orig.Close()
		target, err := os.Open("/run/netns/" + n.name)
		if err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, err}
			return
		}
		defer target.Close()
		if err := setns(target); err != nil {
			runtime.UnlockOSThread()
			ch <- result{nil, fmt.Errorf("setns %s: %w", n.name, err)}
			return
		}
		var d net.Dialer
		c, err := d.DialContext(ctx, network, addr)
		if setns(orig) == nil {
			runtime.UnlockOSThread()
		}
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// setns moves the calling thread into the network namespace of f.
func setns(f *os.File) error {
	if sysSetns == ^uintptr(0) {
		return errors.New("setns: not supported on this architecture")
	}
	_, _, e := syscall.RawSyscall(sysSetns, f.Fd(), syscall.CLONE_NEWNET, 0)
	if e != 0 {
		return e
	}
	return nil
}

// topology is the switch and the agents' namespaces of one test.
type topology struct {
	t      *testing.T
	prefix string
	sw     *namespace
	nodes  []*namespace
}

// canPartition reports why namespaces cannot be made here ("" if they can).
func canPartition() string {
	if os.Geteuid() != 0 {
		return "partitions need root (network namespaces)"
	}
	if _, err := exec.LookPath("ip"); err != nil {
		return "partitions need the ip command (iproute2)"
	}
	return ""
}

// ip runs `ip args...`.
func ip(args ...string) error {
	out, err := exec.Command("ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// newTopology creates the namespaces of n agents, [0, sideA) on side A,
// and removes them in the test's cleanup (registered before anything is
// created, so a failure half-way cleans up too). It skips the test with
// the reason when namespaces cannot be made.
func newTopology(t *testing.T, n, sideA int) *topology {
	t.Helper()
	if why := canPartition(); why != "" {
		t.Skip(why)
	}
	if n > 200 {
		t.Fatalf("topology: %d agents: at most 200", n)
	}
	tp := &topology{t: t, prefix: fmt.Sprintf("mnf%d-%d", os.Getpid(), nextTopology())}
	var made []string
	t.Cleanup(func() {
		// Deleting a namespace deletes its links, and a veth with its peer.
		for i := len(made) - 1; i >= 0; i-- {
			if err := ip("netns", "delete", made[i]); err != nil {
				t.Errorf("cleanup: %v", err)
			}
		}
	})
	must := func(args ...string) {
		t.Helper()
		if err := ip(args...); err != nil {
			t.Fatalf("topology: %v", err)
		}
	}
	add := func(name string) *namespace {
		must("netns", "add", name)
		made = append(made, name)
		must("-n", name, "link", "set", "lo", "up")
		return &namespace{name: name}
	}
	tp.sw = add(tp.prefix + "-sw")
	sw := tp.sw.name
	for _, br := range []string{"brA", "brB"} {
		must("-n", sw, "link", "add", br, "type", "bridge", "stp_state", "0", "forward_delay", "0")
		must("-n", sw, "link", "set", br, "up")
	}
	must("-n", sw, "link", "add", "cutA", "type", "veth", "peer", "name", "cutB")
	must("-n", sw, "link", "set", "cutA", "master", "brA")
	must("-n", sw, "link", "set", "cutB", "master", "brB")
	must("-n", sw, "link", "set", "cutA", "up")
	must("-n", sw, "link", "set", "cutB", "up")
	for i := range n {
		ns := add(fmt.Sprintf("%s-n%d", tp.prefix, i))
		ns.addr = fmt.Sprintf("%s%d", subnetPrefix, 10+i)
		port := fmt.Sprintf("p%d", i)
		must("-n", sw, "link", "add", port, "type", "veth", "peer", "name", "eth0", "netns", ns.name)
		br := "brA"
		if i >= sideA {
			br = "brB"
		}
		must("-n", sw, "link", "set", port, "master", br)
		must("-n", sw, "link", "set", port, "up")
		must("-n", ns.name, "addr", "add", ns.addr+subnetBits, "dev", "eth0")
		must("-n", ns.name, "link", "set", "eth0", "up")
		tp.nodes = append(tp.nodes, ns)
	}
	return tp
}

// topologies numbers the topologies of this process, so that names stay
// unique if a cleanup failed.
var topologies atomic.Int64

func nextTopology() int64 { return topologies.Add(1) }

// cut partitions side A from side B.
func (tp *topology) cut() error { return tp.link("down") }

// heal joins the sides again.
func (tp *topology) heal() error { return tp.link("up") }

func (tp *topology) link(state string) error {
	return errors.Join(ip("-n", tp.sw.name, "link", "set", "cutA", state),
		ip("-n", tp.sw.name, "link", "set", "cutB", state))
}
