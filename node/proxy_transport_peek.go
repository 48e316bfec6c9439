//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package node

import (
	"net"
	"syscall"
)

// connAlive reports whether an idle connection is still open and silent:
// a peek that does not wait finds nothing to read (EAGAIN), where a
// connection its engine closed reads as its end, and one with bytes on it
// holds something no request asked for.
func connAlive(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return true
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	alive := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, err := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		alive = err == syscall.EAGAIN || err == syscall.EWOULDBLOCK || err == syscall.EINTR
		return true
	})
	return err == nil && alive
}
