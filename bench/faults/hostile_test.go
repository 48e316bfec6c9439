//go:build linux

package faults

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// dialer opens a connection (from the agent's namespace, if any).
type dialer func(ctx context.Context, network, addr string) (net.Conn, error)

// holdConns opens n TCP connections to addr, writes first on each (nothing
// for idle connections), and keeps them open until the test ends. It
// returns the connections opened and the first error.
func holdConns(t *testing.T, dial dialer, addr string, n int, first []byte) ([]net.Conn, error) {
	t.Helper()
	var conns []net.Conn
	t.Cleanup(func() {
		for _, c := range conns {
			c.Close()
		}
	})
	for range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dial(ctx, "tcp", addr)
		cancel()
		if err != nil {
			return conns, err
		}
		conns = append(conns, c)
		if len(first) > 0 {
			c.SetWriteDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write(first); err != nil {
				return conns, err
			}
		}
	}
	return conns, nil
}

// halfOpen opens n connections to addr that each send first and then
// close their sending side (TCP FIN) and never read, kept until the test
// ends.
func halfOpen(t *testing.T, dial dialer, addr string, n int, first []byte) error {
	t.Helper()
	cs, err := holdConns(t, dial, addr, n, first)
	for _, c := range cs {
		if tc, ok := c.(*net.TCPConn); ok {
			_ = tc.CloseWrite()
		}
	}
	return err
}

// maxFrameHeader is the attack of item 2: the channel byte, a frame length
// of 16 MiB - 1 and the type and flags bytes, then silence.
func maxFrameHeader(channel byte) []byte {
	b := []byte{channel}
	b = binary.BigEndian.AppendUint32(b, 16<<20-1)
	return append(b, 11, 0) // type data, no flags
}

// udpGarbage sends random datagrams of 1 to 1400 bytes to addr at about
// rate per second for d, and returns the number sent.
func udpGarbage(dial dialer, addr string, rate int, d time.Duration, rng *rand.Rand) (int, error) {
	c, err := dial(context.Background(), "udp", addr)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	buf := make([]byte, 1400)
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	end := time.Now().Add(d)
	sent := 0
	for time.Now().Before(end) {
		<-tick.C
		n := 1 + rng.IntN(len(buf))
		for i := range buf[:n] {
			buf[i] = byte(rng.Uint32())
		}
		if sent%4 == 0 {
			buf[0] = 1 // a plausible version byte, to get past the first check
		}
		if _, err := c.Write(buf[:n]); err != nil {
			return sent, err
		}
		sent++
	}
	return sent, nil
}

// tcpGarbage opens n connections to addr, writes up to 64 KB of random
// bytes on each (after a channel byte on every other one) and closes it.
func tcpGarbage(dial dialer, addr string, n int, rng *rand.Rand) (int64, error) {
	var total int64
	for i := range n {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := dial(ctx, "tcp", addr)
		cancel()
		if err != nil {
			return total, err
		}
		b := make([]byte, 1+rng.IntN(64<<10))
		for j := range b {
			b[j] = byte(rng.Uint32())
		}
		if i%2 == 0 {
			b[0] = "SAD"[rng.IntN(3)]
		}
		c.SetDeadline(time.Now().Add(5 * time.Second))
		m, _ := c.Write(b) // the node may close early: that is its right
		total += int64(m)
		c.Close()
	}
	return total, nil
}

// repeatReader yields n bytes: a JSON prefix, then 'a' to the end (a huge
// value whose closing quote never comes).
type repeatReader struct{ n, off int64 }

func (r *repeatReader) Read(p []byte) (int, error) {
	const prefix = `{"value":"`
	if r.off >= r.n {
		return 0, io.EOF
	}
	k := 0
	for k < len(p) && r.off < r.n {
		if r.off < int64(len(prefix)) {
			p[k] = prefix[r.off]
		} else {
			p[k] = 'a'
		}
		k++
		r.off++
	}
	return k, nil
}

// hugeBody PUTs a body of n bytes and returns the status (0 if the node
// closed the connection before answering: also a refusal).
func hugeBody(a *agent, n int64) (int, error) {
	req, err := http.NewRequest(http.MethodPut, a.base()+kvPath("huge", "k"), &repeatReader{n: n})
	if err != nil {
		return 0, err
	}
	req.ContentLength = n
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, nil
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	return resp.StatusCode, nil
}

// rssBytes returns the resident size of a process (VmRSS).
func rssBytes(pid int) (float64, error) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return 0, err
	}
	for l := range strings.SplitSeq(string(b), "\n") {
		if v, ok := strings.CutPrefix(l, "VmRSS:"); ok {
			f := strings.Fields(v) // "1234 kB"
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseFloat(f[0], 64)
				return kb * 1024, err
			}
		}
	}
	return 0, fmt.Errorf("no VmRSS for pid %d", pid)
}

// memPeak samples an agent's heap and RSS until stop is closed, and
// reports the peaks on done.
type memPeak struct {
	heap, rss float64
	samples   int
	err       error
}

func sampleMem(a *agent, every time.Duration, stop <-chan struct{}) <-chan memPeak {
	done := make(chan memPeak, 1)
	go func() {
		var p memPeak
		tick := time.NewTicker(every)
		defer tick.Stop()
		for {
			if h, err := a.heapBytes(); err == nil {
				p.heap = max(p.heap, h)
				p.samples++
			} else if p.err == nil {
				p.err = err
			}
			if r, err := rssBytes(a.pid); err == nil {
				p.rss = max(p.rss, r)
			}
			select {
			case <-stop:
				done <- p
				return
			case <-tick.C:
			}
		}
	}()
	return done
}

// mib formats bytes in MiB.
func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }
