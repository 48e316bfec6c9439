package bench

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"time"
)

// rawClient is the latency benchmarks' load generator: HTTP/1.1 on kept
// alive loopback connections, every request one prepared byte string,
// every answer read to its end with the least parsing (the status line,
// then Content-Length or the chunked encoding). net/http's client cost
// the benchmark's process more CPU per request than the emulated engine
// did; on two shared cores that was load on both paths, more on the
// proxied one, which has more to schedule. Both paths use the same client.
type rawClient struct {
	addr    string // host:port
	req     []byte
	idle    chan *rawConn
	timeout time.Duration
}

type rawConn struct {
	c  net.Conn
	br *bufio.Reader
}

// newRawClient prepares POSTs of body to url (http://host:port/path).
func newRawClient(url, body string) (*rawClient, error) {
	hostPath, ok := strings.CutPrefix(url, "http://")
	host, path, ok2 := strings.Cut(hostPath, "/")
	if !ok || !ok2 {
		return nil, fmt.Errorf("raw client: url %q: want http://host:port/path", url)
	}
	req := fmt.Sprintf("POST /%s HTTP/1.1\r\nHost: %s\r\nUser-Agent: meshnode-bench\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s",
		path, host, len(body), body)
	return &rawClient{addr: host, req: []byte(req), idle: make(chan *rawConn, 1024), timeout: 10 * time.Second}, nil
}

// do sends the request on an idle connection (a new one if none is idle)
// and reads the answer; it returns the number of body bytes read.
func (rc *rawClient) do() (int, error) {
	var cn *rawConn
	select {
	case cn = <-rc.idle:
	default:
		c, err := net.DialTimeout("tcp", rc.addr, rc.timeout)
		if err != nil {
			return 0, err
		}
		cn = &rawConn{c: c, br: bufio.NewReaderSize(c, 4096)}
	}
	n, keep, err := cn.roundTrip(rc.req, rc.timeout)
	if err != nil || !keep {
		cn.c.Close()
		return n, err
	}
	select {
	case rc.idle <- cn:
	default:
		cn.c.Close()
	}
	return n, nil
}

// close closes the idle connections.
func (rc *rawClient) close() {
	for {
		select {
		case cn := <-rc.idle:
			cn.c.Close()
		default:
			return
		}
	}
}

var errRawAnswer = errors.New("raw client: malformed answer")

func (cn *rawConn) roundTrip(req []byte, timeout time.Duration) (n int, keep bool, err error) {
	if err := cn.c.SetDeadline(time.Now().Add(timeout)); err != nil {
		return 0, false, err
	}
	if _, err := cn.c.Write(req); err != nil {
		return 0, false, err
	}
	line, err := cn.br.ReadSlice('\n')
	if err != nil {
		return 0, false, err
	}
	if !bytes.HasPrefix(line, []byte("HTTP/1.1 200 ")) {
		return 0, false, fmt.Errorf("raw client: status %q", bytes.TrimSpace(line))
	}
	length, chunked, keep := -1, false, true
	for {
		line, err := cn.br.ReadSlice('\n')
		if err != nil {
			return 0, false, err
		}
		if len(line) <= 2 {
			break
		}
		k, v, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return 0, false, errRawAnswer
		}
		v = bytes.TrimSpace(v)
		switch {
		case bytes.EqualFold(k, []byte("Content-Length")):
			if length, err = strconv.Atoi(string(v)); err != nil || length < 0 {
				return 0, false, errRawAnswer
			}
		case bytes.EqualFold(k, []byte("Transfer-Encoding")):
			chunked = bytes.EqualFold(v, []byte("chunked"))
		case bytes.EqualFold(k, []byte("Connection")):
			keep = !bytes.EqualFold(v, []byte("close"))
		}
	}
	switch {
	case chunked:
		for {
			line, err := cn.br.ReadSlice('\n')
			if err != nil {
				return n, false, err
			}
			hex, _, _ := bytes.Cut(bytes.TrimSpace(line), []byte(";"))
			size, err := strconv.ParseUint(string(hex), 16, 31)
			if err != nil {
				return n, false, errRawAnswer
			}
			if size == 0 {
				for { // trailers, then the empty line
					line, err := cn.br.ReadSlice('\n')
					if err != nil {
						return n, false, err
					}
					if len(line) <= 2 {
						return n, keep, nil
					}
				}
			}
			if _, err := cn.br.Discard(int(size) + 2); err != nil {
				return n, false, err
			}
			n += int(size)
		}
	case length >= 0:
		_, err := cn.br.Discard(length)
		return length, keep && err == nil, err
	default:
		return 0, false, errors.New("raw client: answer without a length")
	}
}
