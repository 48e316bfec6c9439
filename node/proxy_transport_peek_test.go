//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package node

import (
	"net"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestUpstreamTransportPeeksIdle: a connection idle longer than idleCheck
// is peeked at before use: one its engine closed is dropped, an open one
// is used.
func TestUpstreamTransportPeeksIdle(t *testing.T) {
	e := newCountingEngine(t, nil)
	up := newTestUpstream(t)
	key := strings.TrimPrefix(e.srv.URL, "http://")
	if _, _, err := upPost(t, up, e.srv.URL+"/a"); err != nil {
		t.Fatal(err)
	}
	later := time.Now().Add(2 * idleCheck)
	c := up.get(key, later)
	if c == nil {
		t.Fatal("get dropped an open idle connection")
	}
	up.put(c, time.Now())

	e.srv.CloseClientConnections()
	waitReadable(t, c.nc) // the engine's close has reached the connection
	if got := up.get(key, later); got != nil {
		t.Fatal("get returned a connection its engine closed")
	}
}

// waitReadable blocks until nc has something to read (bytes or its end),
// on the runtime's poller, for at most 10 s; it reads nothing.
func waitReadable(t *testing.T, nc net.Conn) {
	t.Helper()
	rc, err := nc.(syscall.Conn).SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	defer nc.SetReadDeadline(time.Time{})
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		return err != syscall.EAGAIN && err != syscall.EWOULDBLOCK // false: wait until readable
	})
	if err != nil {
		t.Fatalf("waiting for the connection to be readable: %v", err)
	}
}
