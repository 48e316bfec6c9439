package memberlist

import (
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
)

// memberlistConfig maps s onto memberlist's LAN profile for node name.
// Its own transport is supplied by the caller.
func memberlistConfig(s Settings, name string) *memberlist.Config {
	conf := memberlist.DefaultLANConfig()
	conf.Name = name
	conf.ProbeInterval = s.ProbeInterval
	conf.ProbeTimeout = s.ProbeTimeout
	conf.IndirectChecks = s.IndirectChecks
	conf.SuspicionMult = s.SuspicionMult
	conf.SuspicionMaxTimeoutMult = s.SuspicionMaxMult
	conf.AwarenessMaxMultiplier = s.HealthMax
	conf.GossipInterval = s.GossipInterval
	conf.GossipNodes = s.GossipNodes
	conf.RetransmitMult = s.RetransmitMult
	conf.PushPullInterval = s.PushPullInterval
	conf.TCPTimeout = s.StreamTimeout
	conf.Logger = log.New(io.Discard, "", 0)
	return conf
}

// memberlistCluster is N hashicorp memberlists over memberlist
// NetTransports wrapped to count bytes.
type memberlistCluster struct {
	lists     []*memberlist.Memberlist
	delegates []*memberlistDelegate
	seed      string
	count     *counter
}

// newMemberlistCluster starts n memberlists on 127.0.0.1 with free ports
// (NetTransport picks one free for TCP and UDP when BindPort is 0).
// Deliveries of user broadcasts are recorded in got.
func newMemberlistCluster(n int, s Settings, got *receipts) (*memberlistCluster, error) {
	c := &memberlistCluster{count: &counter{}}
	for i := range n {
		name := strconv.Itoa(i)
		conf := memberlistConfig(s, name)
		nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
			BindAddrs: []string{"127.0.0.1"},
			BindPort:  0,
			Logger:    conf.Logger,
		})
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("memberlist node %d: %w", i, err)
		}
		conf.Transport = newCountedMLTransport(nt, c.count)
		d := &memberlistDelegate{node: i, got: got}
		d.queue.RetransmitMult = s.RetransmitMult
		d.queue.NumNodes = d.numNodes
		conf.Delegate = d
		ml, err := memberlist.Create(conf)
		if err != nil {
			conf.Transport.Shutdown()
			c.Close()
			return nil, fmt.Errorf("memberlist node %d: %w", i, err)
		}
		d.list.Store(ml)
		c.lists = append(c.lists, ml)
		c.delegates = append(c.delegates, d)
	}
	c.seed = c.lists[0].LocalNode().Address()
	return c, nil
}

// Size implements cluster.
func (c *memberlistCluster) Size() int { return len(c.lists) }

// Join implements cluster.
func (c *memberlistCluster) Join(i int) error {
	if i == 0 {
		return nil
	}
	_, err := c.lists[i].Join([]string{c.seed})
	return err
}

// Alive implements cluster. memberlist's Members lists the nodes that are
// neither dead nor left.
func (c *memberlistCluster) Alive(i int) []bool {
	alive := make([]bool, len(c.lists))
	for _, m := range c.lists[i].Members() {
		j, err := strconv.Atoi(m.Name)
		if err == nil && j >= 0 && j < len(alive) {
			alive[j] = true
		}
	}
	return alive
}

// Broadcast implements cluster.
func (c *memberlistCluster) Broadcast(i int, payload []byte) error {
	c.delegates[i].queue.QueueBroadcast(userBroadcast(append([]byte(nil), payload...)))
	return nil
}

// Crash implements cluster: Shutdown without Leave.
func (c *memberlistCluster) Crash(i int) error {
	return c.lists[i].Shutdown()
}

// Bytes implements cluster.
func (c *memberlistCluster) Bytes() bytes { return c.count.load() }

// Close implements cluster.
func (c *memberlistCluster) Close() error {
	var errs []error
	for _, ml := range c.lists {
		errs = append(errs, ml.Shutdown())
	}
	return errors.Join(errs...)
}

// memberlistDelegate queues a node's user broadcasts the way memberlist's
// documentation suggests (a TransmitLimitedQueue behind GetBroadcasts),
// records those it receives and queues each again on the first time it
// arrives, as Serf does: memberlist sends a user broadcast only from the
// member that queued it, RetransmitMult * ceil(log10(N+1)) times.
type memberlistDelegate struct {
	node  int
	got   *receipts
	queue memberlist.TransmitLimitedQueue
	list  atomic.Pointer[memberlist.Memberlist]
}

// numNodes sizes the retransmit limit; memberlist may ask for broadcasts
// before Create has returned.
func (d *memberlistDelegate) numNodes() int {
	if ml := d.list.Load(); ml != nil {
		return ml.NumMembers()
	}
	return 1
}

// NodeMeta implements memberlist.Delegate.
func (*memberlistDelegate) NodeMeta(int) []byte { return nil }

// NotifyMsg implements memberlist.Delegate.
func (d *memberlistDelegate) NotifyMsg(b []byte) {
	if d.got.add(d.node, b, time.Now()) {
		d.queue.QueueBroadcast(userBroadcast(append([]byte(nil), b...)))
	}
}

// GetBroadcasts implements memberlist.Delegate.
func (d *memberlistDelegate) GetBroadcasts(overhead, limit int) [][]byte {
	return d.queue.GetBroadcasts(overhead, limit)
}

// LocalState implements memberlist.Delegate.
func (d *memberlistDelegate) LocalState(bool) []byte { return d.got.state(d.node) }

// MergeRemoteState implements memberlist.Delegate: the broadcasts a peer
// holds.
func (d *memberlistDelegate) MergeRemoteState(buf []byte, _ bool) {
	d.got.merge(d.node, buf, time.Now())
}

// userBroadcast is one user message; no message replaces another.
type userBroadcast []byte

// Invalidates implements memberlist.Broadcast.
func (userBroadcast) Invalidates(memberlist.Broadcast) bool { return false }

// Message implements memberlist.Broadcast.
func (b userBroadcast) Message() []byte { return b }

// Finished implements memberlist.Broadcast.
func (userBroadcast) Finished() {}

// countedMLTransport counts the bytes a memberlist Transport sends. It
// forwards memberlist's node-aware calls when the wrapped transport has
// them, so that memberlist behaves as it does over its own NetTransport.
type countedMLTransport struct {
	*memberlist.NetTransport
	c       *counter
	streams chan net.Conn
	done    chan struct{}
	wg      sync.WaitGroup
	once    sync.Once
}

// newCountedMLTransport wraps t; one goroutine wraps the streams peers
// open, until Shutdown.
func newCountedMLTransport(t *memberlist.NetTransport, c *counter) *countedMLTransport {
	ct := &countedMLTransport{NetTransport: t, c: c, streams: make(chan net.Conn), done: make(chan struct{})}
	ct.wg.Add(1)
	go ct.forward()
	return ct
}

func (ct *countedMLTransport) forward() {
	defer ct.wg.Done()
	for {
		select {
		case conn := <-ct.NetTransport.StreamCh():
			select {
			case ct.streams <- countedConn{Conn: conn, c: ct.c}:
			case <-ct.done:
				conn.Close()
				return
			}
		case <-ct.done:
			return
		}
	}
}

// WriteTo implements memberlist.Transport.
func (ct *countedMLTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	return ct.WriteToAddress(b, memberlist.Address{Addr: addr})
}

// WriteToAddress implements memberlist.NodeAwareTransport.
func (ct *countedMLTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	t, err := ct.NetTransport.WriteToAddress(b, a)
	if err == nil {
		ct.c.udp.Add(uint64(len(b)))
	}
	return t, err
}

// DialTimeout implements memberlist.Transport.
func (ct *countedMLTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return ct.DialAddressTimeout(memberlist.Address{Addr: addr}, timeout)
}

// DialAddressTimeout implements memberlist.NodeAwareTransport.
func (ct *countedMLTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	conn, err := ct.NetTransport.DialAddressTimeout(a, timeout)
	if err != nil {
		return nil, err
	}
	return countedConn{Conn: conn, c: ct.c}, nil
}

// StreamCh implements memberlist.Transport.
func (ct *countedMLTransport) StreamCh() <-chan net.Conn { return ct.streams }

// Shutdown implements memberlist.Transport.
func (ct *countedMLTransport) Shutdown() error {
	err := ct.NetTransport.Shutdown()
	ct.once.Do(func() { close(ct.done) })
	ct.wg.Wait()
	return err
}
