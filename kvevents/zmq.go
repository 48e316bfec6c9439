package kvevents

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"sync"

	"github.com/go-zeromq/zmq4"
	"golang.org/x/sync/errgroup"
)

// Subscriber is a SUB socket connected to one engine's PUB endpoint. Recv
// is for one goroutine; Close may be called from any.
type Subscriber struct {
	sock zmq4.Socket
}

// Subscribe connects a SUB socket to endpoint (tcp://HOST:PORT as the
// engines' --kv-events-config names it) and subscribes to topic ("" for
// every topic, vLLM's default). zmq4 retries a refused connection a few
// times (about 2.5 s) before Subscribe fails; the caller owns any longer
// retry. The socket lives until Close or until ctx is done.
func Subscribe(ctx context.Context, endpoint, topic string) (*Subscriber, error) {
	ep, err := guarded(endpoint)
	if err != nil {
		return nil, err
	}
	sock := zmq4.NewSub(ctx, zmq4.WithLogger(discardLogger()))
	if err := sock.SetOption(zmq4.OptionSubscribe, topic); err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("kvevents: subscribe %q: %w", topic, err)
	}
	if err := sock.Dial(ep); err != nil {
		_ = sock.Close()
		return nil, fmt.Errorf("kvevents: subscribe to %s: %w", endpoint, err)
	}
	return &Subscriber{sock: sock}, nil
}

// Recv returns the next message [topic, seq, payload]. A message of another
// shape returns an error wrapping ErrDecode, after which Recv may be called
// again. Any other error (the connection dropped, the engine went away,
// ctx ended, Close) is final for this Subscriber: close it, subscribe
// again and replay from the last sequence number seen. The payload is the
// caller's to keep.
func (s *Subscriber) Recv() (Message, error) {
	msg, err := s.sock.Recv()
	if err != nil {
		return Message{}, fmt.Errorf("kvevents: receive: %w", err)
	}
	if len(msg.Frames) != 3 {
		return Message{}, fmt.Errorf("kvevents: receive: %w",
			malformed("message of %d frames, want 3 (topic, seq, payload)", len(msg.Frames)))
	}
	seq, err := DecodeSeq(msg.Frames[1])
	if err != nil {
		return Message{}, err
	}
	return Message{Topic: string(msg.Frames[0]), Seq: seq, Payload: msg.Frames[2]}, nil
}

// Close closes the socket; a Recv in progress returns an error. A
// connection the engine closed first is not an error.
func (s *Subscriber) Close() error { return ignoreClosed(s.sock.Close()) }

// Replay asks the engine's replay endpoint (its ROUTER socket) for the
// batches it keeps from startSeq on and calls fn with each, in order, until
// the engine's end marker (seq -1), which fn does not see. It returns fn's
// first error, ctx's error, or an error for a reply of another shape. The
// engine keeps a bounded history: the first Seq fn sees may be above
// startSeq (the batches in between are lost), or fn may see nothing.
func Replay(ctx context.Context, endpoint string, startSeq int64, fn func(Message) error) error {
	ep, err := guarded(endpoint)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	sock := zmq4.NewDealer(ctx, zmq4.WithLogger(discardLogger()))
	defer sock.Close()
	if err := sock.Dial(ep); err != nil {
		return fmt.Errorf("kvevents: replay from %s: %w", endpoint, err)
	}
	// A DEALER sends the empty delimiter a REQ socket would add itself:
	// the engine's ROUTER reads [identity, "", start_seq].
	if err := sock.SendMulti(zmq4.NewMsgFrom([]byte{}, AppendSeq(nil, startSeq))); err != nil {
		return fmt.Errorf("kvevents: replay request to %s: %w", endpoint, err)
	}
	for {
		msg, err := sock.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return fmt.Errorf("kvevents: replay from %s: %w", endpoint, ctx.Err())
			}
			return fmt.Errorf("kvevents: replay from %s: %w", endpoint, err)
		}
		frames := msg.Frames
		if len(frames) == 4 && len(frames[0]) == 0 && len(frames[1]) == 0 {
			frames = frames[1:] // an extra empty delimiter (a REQ-style router)
		}
		if len(frames) != 3 || len(frames[0]) != 0 {
			return fmt.Errorf("kvevents: replay from %s: %w", endpoint,
				malformed("reply of %d frames, want 3 (\"\", seq, payload)", len(msg.Frames)))
		}
		seq, err := DecodeSeq(frames[1])
		if err != nil {
			return err
		}
		if seq == SeqEnd {
			return nil
		}
		if err := fn(Message{Seq: seq, Payload: frames[2]}); err != nil {
			return err
		}
	}
}

// Publisher publishes batches as an engine does: a PUB socket sending
// [topic, seq, payload] with seq 0, 1, 2, ..., and a ROUTER socket serving
// replay of the last keep payloads. It is for the engine emulator and for
// tests. Its methods are safe for concurrent use.
//
// zmq4 v0.17.0 never stops the writer loop of a PUB socket: each
// Publisher leaves one idle goroutine behind after Close (tests that check
// for leaks ignore ZMQ4LeakedFunction). Subscriber and Replay leave none.
type Publisher struct {
	pub, router zmq4.Socket
	topic       []byte
	cancel      context.CancelFunc
	g           errgroup.Group

	mu   sync.Mutex
	seq  int64    // the next sequence number
	kept [][]byte // ring of the last payloads; kept[seq%len] holds seq's
}

// ZMQ4LeakedFunction is the function of the goroutine zmq4 leaves behind
// for each closed PUB socket, for goleak.IgnoreAnyFunction.
const ZMQ4LeakedFunction = "github.com/go-zeromq/zmq4.(*pubMWriter).run"

// pubHWM bounds the messages the PUB socket queues (vLLM's default); past
// it, new messages are dropped, as a slow subscriber's are in ZeroMQ.
const pubHWM = 100_000

// NewPublisher binds a PUB socket to endpoint and, unless replayEndpoint
// is "", a ROUTER socket to replayEndpoint (tcp://127.0.0.1:0 picks a
// port: see Addr and ReplayAddr), keeping the last keep payloads (at least
// one) for replay.
func NewPublisher(ctx context.Context, endpoint, replayEndpoint, topic string, keep int) (*Publisher, error) {
	ep, err := guarded(endpoint)
	if err != nil {
		return nil, err
	}
	rep := ""
	if replayEndpoint != "" {
		if rep, err = guarded(replayEndpoint); err != nil {
			return nil, err
		}
	}
	ctx, cancel := context.WithCancel(ctx)
	p := &Publisher{topic: []byte(topic), cancel: cancel, kept: make([][]byte, max(keep, 1))}
	p.pub = zmq4.NewPub(ctx, zmq4.WithLogger(discardLogger()))
	if err := p.pub.SetOption(zmq4.OptionHWM, pubHWM); err != nil {
		p.Close()
		return nil, fmt.Errorf("kvevents: publisher: %w", err)
	}
	if err := p.pub.Listen(ep); err != nil {
		p.Close()
		return nil, fmt.Errorf("kvevents: publisher: %w", err)
	}
	if rep != "" {
		p.router = zmq4.NewRouter(ctx, zmq4.WithLogger(discardLogger()))
		if err := p.router.Listen(rep); err != nil {
			p.Close()
			return nil, fmt.Errorf("kvevents: publisher replay: %w", err)
		}
		p.g.Go(func() error { p.serveReplay(ctx); return nil })
	}
	return p, nil
}

// Addr returns the address the PUB socket is bound to.
func (p *Publisher) Addr() net.Addr { return p.pub.Addr() }

// ReplayAddr returns the address of the replay socket, nil without one.
func (p *Publisher) ReplayAddr() net.Addr {
	if p.router == nil {
		return nil
	}
	return p.router.Addr()
}

// Publish encodes b in the array form and publishes it with the next
// sequence number, which it returns. A message published before a
// subscriber's subscription has reached the publisher is not delivered to
// it (ZeroMQ's slow joiner): replay recovers it.
func (p *Publisher) Publish(b *Batch) (int64, error) {
	payload, err := AppendBatch(nil, b)
	if err != nil {
		return 0, err
	}
	return p.PublishRaw(payload)
}

// PublishRaw publishes payload as it is, with the next sequence number
// (for tests that send what the encoder would not).
func (p *Publisher) PublishRaw(payload []byte) (int64, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	seq := p.seq
	msg := zmq4.NewMsgFrom(p.topic, AppendSeq(nil, seq), payload)
	if err := p.pub.SendMulti(msg); err != nil {
		return 0, fmt.Errorf("kvevents: publish: %w", err)
	}
	p.kept[seq%int64(len(p.kept))] = payload
	p.seq++
	return seq, nil
}

// Subscribed reports whether a subscription to topic has reached the PUB
// socket (a subscriber connected with that topic or a prefix of it).
func (p *Publisher) Subscribed(topic string) bool {
	t, ok := p.pub.(zmq4.Topics)
	if !ok {
		return false
	}
	for _, s := range t.Topics() {
		if len(s) <= len(topic) && topic[:len(s)] == s {
			return true
		}
	}
	return false
}

// serveReplay answers replay requests until ctx ends.
func (p *Publisher) serveReplay(ctx context.Context) {
	for ctx.Err() == nil {
		msg, err := p.router.Recv()
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			continue // a peer's connection failed; others are served
		}
		// [identity, "", start_seq]; anything else is ignored, as vLLM
		// ignores it.
		if len(msg.Frames) != 3 || len(msg.Frames[1]) != 0 {
			continue
		}
		start, err := DecodeSeq(msg.Frames[2])
		if err != nil {
			continue
		}
		id := msg.Frames[0]
		for _, m := range p.since(start) {
			if p.router.SendMulti(zmq4.NewMsgFrom(id, []byte{}, AppendSeq(nil, m.Seq), m.Payload)) != nil {
				break
			}
		}
		_ = p.router.SendMulti(zmq4.NewMsgFrom(id, []byte{}, AppendSeq(nil, SeqEnd), []byte{}))
	}
}

// since returns the kept payloads from seq start on, in order.
func (p *Publisher) since(start int64) []Message {
	p.mu.Lock()
	defer p.mu.Unlock()
	first := max(start, p.seq-int64(len(p.kept)), 0)
	var out []Message
	for s := first; s < p.seq; s++ {
		out = append(out, Message{Seq: s, Payload: p.kept[s%int64(len(p.kept))]})
	}
	return out
}

// Close closes the sockets and waits for the replay server to stop.
func (p *Publisher) Close() error {
	p.cancel()
	var errs []error
	if p.pub != nil {
		errs = append(errs, ignoreClosed(p.pub.Close()))
	}
	if p.router != nil {
		errs = append(errs, ignoreClosed(p.router.Close()))
	}
	_ = p.g.Wait()
	return errors.Join(errs...)
}

// ignoreClosed drops net.ErrClosed: zmq4 closes every peer connection on
// Close and reports a connection the peer (a subscriber that went away)
// closed first, which is not a failure of the publisher.
func ignoreClosed(err error) error {
	if errors.Is(err, net.ErrClosed) {
		return nil
	}
	return err
}

// discardLogger returns a logger for zmq4 that drops its messages: zmq4
// logs connection failures to stderr by default, and this package reports
// them as errors instead.
func discardLogger() *log.Logger { return log.New(io.Discard, "", 0) }
