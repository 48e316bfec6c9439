package memberlist

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"sync"
	"time"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/swim/swimnet"
)

// userKind tags the harness's broadcasts for the layer above the swim core.
const userKind = 200

// meshnodeConfig maps s onto the swim LAN profile. PauseThreshold is raised
// so that a busy machine is not taken for a paused process.
func meshnodeConfig(s Settings) swim.Config {
	cfg := swim.LANConfig()
	cfg.ProbeInterval = s.ProbeInterval
	cfg.ProbeTimeout = s.ProbeTimeout
	cfg.IndirectChecks = s.IndirectChecks
	cfg.SuspicionMult = s.SuspicionMult
	cfg.SuspicionMaxMult = s.SuspicionMaxMult
	cfg.HealthMax = s.HealthMax
	cfg.GossipInterval = s.GossipInterval
	cfg.GossipNodes = s.GossipNodes
	cfg.RetransmitMult = s.RetransmitMult
	cfg.PushPullInterval = s.PushPullInterval
	cfg.StreamTimeout = s.StreamTimeout
	cfg.PauseThreshold = 5 * time.Second
	return cfg
}

// meshnodeCluster is N swim Runners over the transport the daemon ships
// (node.SwimTransport: UDP and TCP on one port, a channel byte per
// connection, first-frame admission), wrapped to count bytes.
type meshnodeCluster struct {
	runners []*swimnet.Runner
	nets    []*node.SwimTransport
	names   map[string]int
	seed    string
	count   *counter
	got     *receipts
	timeout time.Duration
}

// newMeshnodeCluster starts n runners on 127.0.0.1 with free ports.
// Deliveries of user broadcasts are recorded in got.
func newMeshnodeCluster(n int, s Settings, got *receipts) (*meshnodeCluster, error) {
	c := &meshnodeCluster{
		names:   make(map[string]int, n),
		count:   &counter{},
		got:     got,
		timeout: 4 * s.StreamTimeout,
	}
	for i := range n {
		cfg := meshnodeConfig(s)
		cfg.State = meshnodeState{node: i, got: got}
		nt, err := node.ListenSwimTransport(node.Config{Name: strconv.Itoa(i), BindAddr: "127.0.0.1:0", APIAddr: "off"})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("meshnode node %d: %w", i, err)
		}
		c.nets = append(c.nets, nt)
		tr := newCountedTransport(nt, c.count)
		name := strconv.Itoa(i)
		d := &meshnodeDelegate{node: i, got: got}
		r, err := swimnet.NewRunner(cfg, swim.Identity{Name: name, Gen: 1}, tr, swimnet.RunnerOptions{
			Delegate: d,
			// Nobody reads the events (the harness polls Members): they are
			// dropped and counted, never waited for.
			EventBuffer: 1,
		})
		if err != nil {
			tr.Shutdown()
			c.Close()
			return nil, fmt.Errorf("meshnode node %d: %w", i, err)
		}
		d.runner = r // before Start: no delivery can race with it
		c.runners = append(c.runners, r)
		c.names[name] = i
		if err := r.Start(); err != nil {
			c.Close()
			return nil, fmt.Errorf("meshnode node %d: %w", i, err)
		}
	}
	c.seed = c.runners[0].Addr().String()
	return c, nil
}

// Size implements cluster.
func (c *meshnodeCluster) Size() int { return len(c.runners) }

// Join implements cluster.
func (c *meshnodeCluster) Join(i int) error {
	if i == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.timeout)
	defer cancel()
	_, err := c.runners[i].Join(ctx, c.seed)
	return err
}

// Alive implements cluster.
func (c *meshnodeCluster) Alive(i int) []bool {
	alive := make([]bool, len(c.runners))
	for _, m := range c.runners[i].Members() {
		j, ok := c.names[m.Name]
		if ok && (m.State == swim.StateAlive || m.State == swim.StateSuspect) {
			alive[j] = true
		}
	}
	return alive
}

// Broadcast implements cluster.
func (c *meshnodeCluster) Broadcast(i int, payload []byte) error {
	return c.runners[i].Broadcast(userKind, payload)
}

// Crash implements cluster.
func (c *meshnodeCluster) Crash(i int) error {
	return c.runners[i].Shutdown()
}

// Bytes implements cluster.
func (c *meshnodeCluster) Bytes() bytes { return c.count.load() }

// Close implements cluster.
func (c *meshnodeCluster) Close() error {
	var errs []error
	for _, r := range c.runners {
		errs = append(errs, r.Shutdown())
	}
	return errors.Join(errs...)
}

// meshnodeDelegate records the user broadcasts a runner delivers and
// gossips each on the first time it arrives, as meshnode's node layer does
// with deltas: the swim core sends a payload only from the member that
// queued it, RetransmitMult * ceil(log10(N+1)) times (at least 6).
type meshnodeDelegate struct {
	node   int
	got    *receipts
	runner *swimnet.Runner
}

// NotifyData implements swimnet.Delegate.
func (d *meshnodeDelegate) NotifyData(r swim.Received) {
	if r.Data.Kind == userKind && d.got.add(d.node, r.Data.Payload, time.Now()) {
		// A relay the queue refuses shows up as a broadcast that did not
		// reach everyone.
		_ = d.runner.Broadcast(userKind, r.Data.Payload)
	}
}

// NotifyState implements swimnet.Delegate: the broadcasts a peer holds.
func (d *meshnodeDelegate) NotifyState(rs swim.RemoteState) {
	d.got.merge(d.node, rs.State, time.Now())
}

// meshnodeState supplies a runner's push-pull state.
type meshnodeState struct {
	node int
	got  *receipts
}

// LocalState implements swim.StateDelegate.
func (s meshnodeState) LocalState(bool) []byte { return s.got.state(s.node) }

// countedTransport counts the bytes a swim Transport sends.
type countedTransport struct {
	swimnet.Transport
	c       *counter
	streams chan swimnet.Incoming
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// newCountedTransport wraps t; one goroutine wraps the streams peers open,
// until Shutdown.
func newCountedTransport(t swimnet.Transport, c *counter) *countedTransport {
	ct := &countedTransport{Transport: t, c: c, streams: make(chan swimnet.Incoming), done: make(chan struct{})}
	ct.wg.Add(1)
	go ct.forward()
	return ct
}

func (ct *countedTransport) forward() {
	defer ct.wg.Done()
	for {
		select {
		case in := <-ct.Transport.Streams():
			in.Conn = countedStream{Conn: in.Conn, c: ct.c}
			select {
			case ct.streams <- in:
			case <-ct.done:
				in.Conn.Close()
				return
			}
		case <-ct.done:
			return
		}
	}
}

// WriteTo implements swimnet.Transport.
func (ct *countedTransport) WriteTo(b []byte, to netip.AddrPort) error {
	err := ct.Transport.WriteTo(b, to)
	if err == nil {
		ct.c.udp.Add(uint64(len(b)))
	}
	return err
}

// DialStream implements swimnet.Transport.
func (ct *countedTransport) DialStream(ctx context.Context, to netip.AddrPort) (swimnet.Conn, error) {
	conn, err := ct.Transport.DialStream(ctx, to)
	if err != nil {
		return nil, err
	}
	return countedStream{Conn: conn, c: ct.c}, nil
}

// Streams implements swimnet.Transport.
func (ct *countedTransport) Streams() <-chan swimnet.Incoming { return ct.streams }

// Shutdown implements swimnet.Transport.
func (ct *countedTransport) Shutdown() error {
	err := ct.Transport.Shutdown()
	ct.once.Do(func() { close(ct.done) })
	ct.wg.Wait()
	return err
}

// countedStream counts the bytes written on a swim stream.
type countedStream struct {
	swimnet.Conn
	c *counter
}

// Write implements swimnet.Conn.
func (cs countedStream) Write(p []byte) (int, error) {
	n, err := cs.Conn.Write(p)
	cs.c.tcp.Add(uint64(n))
	return n, err
}
