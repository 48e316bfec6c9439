package swimnet

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/swim"
	"github.com/meshnode/meshnode/wire"
)

// Transport carries a Runner's packets and streams: datagrams for the
// protocol's UDP traffic and reliable, ordered byte streams for push-pull and
// TCP pings. A Transport moves bytes only; the Runner owns the wire.Codec
// (packet budget, compression, encryption) and the stream framing, so those
// rules are enforced in one place whatever the transport.
//
// Goroutines: WriteTo and DialStream may be called from several goroutines
// at once (the Runner's loop sends packets, its stream workers dial).
// Packets and Streams are read by the Runner's loop only. Shutdown may be
// called from any goroutine, more than once.
type Transport interface {
	// WriteTo sends b as one datagram to to. It must not block for long
	// (drop rather than wait) and must not keep b after it returns.
	WriteTo(b []byte, to netip.AddrPort) error
	// Packets returns the channel of received datagrams. Its capacity is the
	// transport's receive bound: when it is full, packets are dropped and
	// counted, never queued without bound.
	Packets() <-chan Inbound
	// DialStream opens a stream to to. The dial gives up when ctx is done
	// (the Runner gives it the exchange's deadline).
	DialStream(ctx context.Context, to netip.AddrPort) (Conn, error)
	// Streams returns the channel of streams peers opened. The transport
	// bounds the streams accepted and not yet closed; beyond the bound it
	// refuses them and counts them.
	Streams() <-chan Incoming
	// Addr returns the address peers reach this transport at (the
	// advertised address, which may differ from the bound one).
	Addr() netip.AddrPort
	// Shutdown stops receiving, closes the listeners and waits for the
	// transport's goroutines to end. Streams already handed out stay usable
	// until their deadline or Close. It is idempotent.
	Shutdown() error
}

// Inbound is one datagram received. Buf belongs to the receiver.
type Inbound struct {
	From netip.AddrPort
	Buf  []byte
}

// Incoming is one stream a peer opened. From is the peer's address as the
// transport sees it (for TCP, an ephemeral port, not its advertised address).
// The receiver must Close Conn.
type Incoming struct {
	From netip.AddrPort
	Conn Conn
}

// Conn is a bidirectional byte stream with half-close, as a *net.TCPConn
// provides. Read and Write may be called from different goroutines.
type Conn interface {
	io.ReadWriteCloser
	// CloseWrite shuts the sending half: the peer reads io.EOF after the
	// bytes already written, and can still answer.
	CloseWrite() error
	// SetDeadline sets the read and write deadline.
	SetDeadline(t time.Time) error
}

// The stream exchange. A stream carries one exchange: the opener writes its
// request messages, each as a wire frame (chunked if large), then half-closes
// (CloseWrite); the acceptor reads frames until end of stream, answers with
// its reply messages as frames and closes. The opener reads reply frames until
// end of stream. A one-way push gets an empty reply: the acceptor just closes.
// End of stream, rather than a count, delimits a side, so a reader needs no
// length it did not check and a message type added later needs no change.

// Stream limits.
const (
	// maxStreamMsgs bounds the messages of one side of a stream exchange:
	// a push-pull has at most four (header, records, digest, state).
	maxStreamMsgs = 16
	// maxStreamTransfers bounds the chunked transfers open at once on one
	// stream: a sender finishes one message before the next.
	maxStreamTransfers = 1
)

var (
	// ErrStream reports a stream exchange that broke the framing rules:
	// too many messages, a truncated frame, an undecodable message.
	ErrStream = errors.New("swimnet: bad stream")
	// ErrNoReply reports a stream exchange whose peer closed the stream
	// without answering: it was overloaded, leaving, or refused the request
	// (a peer that cannot open this member's frames, because it holds
	// another gossip key or label, closes the stream and logs why). It
	// matches ErrStream too.
	ErrNoReply error = noReply{}
)

type noReply struct{}

func (noReply) Error() string   { return "swimnet: no reply" }
func (noReply) Is(t error) bool { return t == ErrStream }

// writeMsgs writes msgs to w as frames, one per message, and flushes.
// buf is scratch space for message bodies; the grown buffer is returned.
func writeMsgs(codec *wire.Codec, w *bufio.Writer, msgs []wire.Message, buf []byte) ([]byte, error) {
	for i, m := range msgs {
		buf = m.AppendBody(buf[:0])
		if err := codec.WriteFrames(w, m.Type(), buf, uint32(i)); err != nil {
			return buf, fmt.Errorf("swimnet: write %v frame: %w", m.Type(), err)
		}
	}
	if err := w.Flush(); err != nil {
		return buf, fmt.Errorf("swimnet: write stream: %w", err)
	}
	return buf, nil
}

// readMsgs reads frames from r until end of stream and decodes them into new
// messages, which the caller may keep. Messages of unknown types are skipped
// and counted in unknown. maxBytes bounds the bytes held by a chunked
// transfer being reassembled; budget, if not nil, is charged for the
// reader's buffers until readMsgs returns.
func readMsgs(codec *wire.Codec, r io.Reader, maxBytes int, budget wire.Budget) (msgs []wire.Message, unknown int, err error) {
	sr := wire.NewStreamReader(codec, r, wire.StreamLimits{MaxTransferBytes: maxBytes, MaxTransfers: maxStreamTransfers, Budget: budget})
	defer sr.Close()
	for {
		f, err := sr.ReadFrame()
		if errors.Is(err, io.EOF) {
			return msgs, unknown, nil
		}
		if err != nil {
			return msgs, unknown, fmt.Errorf("%w: read frame: %w", ErrStream, err)
		}
		t, body, done, err := sr.Add(f)
		if err != nil {
			return msgs, unknown, fmt.Errorf("%w: frame of %v: %w", ErrStream, f.Type, err)
		}
		if !done {
			continue
		}
		if !t.Known() {
			unknown++
			continue
		}
		if len(msgs) == maxStreamMsgs {
			return msgs, unknown, fmt.Errorf("%w: more than %d messages", ErrStream, maxStreamMsgs)
		}
		m, err := wire.DecodeMessage(t, body)
		if err != nil {
			return msgs, unknown, fmt.Errorf("%w: decode %v: %w", ErrStream, t, err)
		}
		msgs = append(msgs, m)
	}
}

// The Runner's stream workers: one goroutine per exchange, bounded (the core
// caps the exchanges it opens at [swim.Config].MaxStreams, the Runner those it
// serves at RunnerOptions.MaxIncomingStreams), each under a deadline, each
// handing its outcome back to the protocol loop.

// getCodec returns a stream worker's codec: each worker needs its own, and
// reusing them keeps their buffers warm.
func (r *Runner) getCodec() *wire.Codec {
	if c, ok := r.codecs.Get().(*wire.Codec); ok {
		return c
	}
	c, err := wire.NewCodec(r.opts.Wire)
	if err != nil {
		panic("swimnet: codec config validated in NewRunner: " + err.Error())
	}
	return c
}

// open makes a stream exchange the core asked for and feeds the outcome back
// to the loop.
func (r *Runner) open(s swim.Stream) {
	defer r.wg.Done()
	msgs, err := r.exchange(s)
	if err != nil {
		r.streamErrors.Add(1)
	}
	select {
	case r.results <- streamResult{id: s.ID, msgs: msgs, err: err}:
	case <-r.ctx.Done():
	}
}

func (r *Runner) exchange(s swim.Stream) ([]wire.Message, error) {
	ctx, cancel := context.WithDeadline(r.ctx, s.Deadline)
	defer cancel()
	conn, err := r.tr.DialStream(ctx, s.To)
	if err != nil {
		return nil, err
	}
	defer conn.Close()
	// Deadline or Shutdown: closing the connection ends any blocked read
	// or write.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	if err := conn.SetDeadline(s.Deadline); err != nil {
		return nil, fmt.Errorf("swimnet: stream to %v: %w", s.To, err)
	}
	codec := r.getCodec()
	defer r.codecs.Put(codec)
	if _, err := writeMsgs(codec, bufio.NewWriter(conn), s.Msgs, nil); err != nil {
		return nil, streamFailed(ctx, s.To, err)
	}
	if err := conn.CloseWrite(); err != nil {
		return nil, streamFailed(ctx, s.To, err)
	}
	msgs, unknown, err := readMsgs(codec, conn, r.opts.MaxStreamBytes, r.opts.StreamBudget)
	r.partsUnknown.Add(uint64(unknown))
	if err != nil {
		if r.opts.OnBadInput != nil && ctx.Err() == nil {
			r.opts.OnBadInput(BadInput{From: s.To, Stream: true, Reply: true, Err: err})
		}
		return nil, streamFailed(ctx, s.To, err)
	}
	if len(msgs) == 0 && !s.OneWay {
		// The peer refused (overloaded, wrong target, leaving): tell the
		// core the exchange failed rather than that it said nothing.
		return nil, fmt.Errorf("swimnet: stream to %v: %w", s.To, ErrNoReply)
	}
	return msgs, nil
}

// streamFailed wraps the error of an exchange with to. A peer that closed
// the stream under the request (a broken pipe, a reset, a half-close of a
// connection it already reset) refused it just as one that closed it
// without answering: both match ErrNoReply.
func streamFailed(ctx context.Context, to netip.AddrPort, err error) error {
	switch {
	case ctx.Err() != nil:
		err = fmt.Errorf("%w (%w)", err, ctx.Err())
	case errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.ENOTCONN) ||
		errors.Is(err, io.ErrClosedPipe):
		err = fmt.Errorf("%w: the peer closed the stream (%w)", ErrNoReply, err)
	}
	return fmt.Errorf("swimnet: stream to %v: %w", to, err)
}

// waitingPerSlot is how many streams may wait for each serving slot.
const waitingPerSlot = 3

// admit serves in at once when a slot is free; otherwise it lets in wait,
// unread, for a slot (bounded in number and time), and closes it when the
// wait is full or too long. Called on the loop; never blocks it.
func (r *Runner) admit(in Incoming) {
	if r.inSlots.TryAcquire(1) {
		r.wg.Add(1)
		go r.serve(in)
		return
	}
	if !r.inWaiting.TryAcquire(1) {
		r.streamsRejected.Add(1)
		in.Conn.Close()
		return
	}
	r.wg.Add(1)
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.StreamTimeout/4)
		err := r.inSlots.Acquire(ctx, 1)
		cancel()
		r.inWaiting.Release(1)
		if err == nil {
			r.serve(in) // serve releases the slot and the WaitGroup
			return
		}
		if r.ctx.Err() == nil {
			r.streamsRejected.Add(1)
		}
		in.Conn.Close()
		r.wg.Done()
	}()
}

// serve answers a stream a peer opened: read its request to the end, let the
// core answer on the loop, write the answer, close.
func (r *Runner) serve(in Incoming) {
	defer r.wg.Done()
	defer r.inSlots.Release(1)
	defer in.Conn.Close()
	stop := context.AfterFunc(r.ctx, func() { in.Conn.Close() })
	defer stop()
	if err := in.Conn.SetDeadline(time.Now().Add(r.cfg.StreamTimeout)); err != nil {
		r.streamErrors.Add(1)
		return
	}
	codec := r.getCodec()
	defer r.codecs.Put(codec)
	req, unknown, err := readMsgs(codec, in.Conn, r.opts.MaxStreamBytes, r.opts.StreamBudget)
	r.partsUnknown.Add(uint64(unknown))
	if err != nil && r.opts.OnBadInput != nil {
		r.opts.OnBadInput(BadInput{From: in.From, Stream: true, Err: err})
	}
	if err != nil || len(req) == 0 {
		r.streamErrors.Add(1)
		return
	}
	reply := make(chan []wire.Message, 1)
	select {
	case r.serves <- serveReq{from: in.From, msgs: req, reply: reply}:
	case <-r.ctx.Done():
		return
	}
	var resp []wire.Message
	select {
	case resp = <-reply:
	case <-r.ctx.Done():
		return
	}
	if len(resp) == 0 {
		return
	}
	if _, err := writeMsgs(codec, bufio.NewWriter(in.Conn), resp, nil); err != nil {
		r.streamErrors.Add(1)
	}
}
