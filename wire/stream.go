package wire

import (
	"errors"
	"fmt"
	"io"
)

// Budget is memory shared by the stream readers of a process: a reader
// takes bytes from it before its buffers grow and gives them back when it
// closes. *semaphore.Weighted from golang.org/x/sync implements it. A nil
// Budget bounds nothing but the per-stream limits.
type Budget interface {
	// TryAcquire takes n bytes if they are free, without blocking.
	TryAcquire(n int64) bool
	// Release gives back n bytes taken before.
	Release(n int64)
}

// MinReadStepBytes is the first step of a frame buffer: a reader holds at
// most this much for a frame whose body has not arrived yet, and then at
// most twice what it has received, whatever the frame's length field says.
const MinReadStepBytes = 4 << 10

// account charges one reader's buffers to a Budget.
type account struct {
	budget Budget
	held   int64
}

// charge takes n more bytes, or fails with ErrBudget.
func (a *account) charge(n int) error {
	if a == nil || n <= 0 {
		return nil
	}
	if a.budget != nil && !a.budget.TryAcquire(int64(n)) {
		return errf(ErrBudget, fmt.Sprintf("%d more bytes for a reader holding %d", n, a.held))
	}
	a.held += int64(n)
	return nil
}

// release gives back n bytes.
func (a *account) release(n int) {
	if a == nil || n <= 0 {
		return
	}
	if a.budget != nil {
		a.budget.Release(int64(n))
	}
	a.held -= int64(n)
}

// StreamLimits bounds what a StreamReader holds.
type StreamLimits struct {
	// MaxTransferBytes bounds the bytes of the chunked transfers open on
	// the stream, and a decompressed transfer [the codec's MaxFrameBytes].
	MaxTransferBytes int
	// MaxTransfers bounds the chunked transfers open at once [1].
	MaxTransfers int
	// Budget is shared by all readers; nil bounds only this stream.
	Budget Budget
}

// StreamReader reads the messages of one stream: frames, reassembled when
// chunked. Its memory grows with the bytes received, never with what a
// length field claims: a frame's body is read into a buffer that starts at
// MinReadStepBytes and doubles, up to the frame's length, as bytes arrive;
// a transfer's buffer grows the same way chunk by chunk. Every growth is
// charged to the Budget first; a reader that cannot get the bytes fails
// with ErrBudget, and its caller should close the stream. A StreamReader is
// not safe for concurrent use; Close gives its bytes back.
type StreamReader struct {
	codec *Codec
	r     io.Reader
	re    *Reassembler
	acct  *account
	hdr   [frameHeaderBytes]byte
	buf   []byte // the raw frame body; its capacity is charged
	n     int    // bytes of the last frame in buf
	// inflated is charged for the body the codec decompressed for the
	// last frame, released at the next read.
	inflated int
}

// NewStreamReader returns a reader of the frames c encodes, from r.
func NewStreamReader(c *Codec, r io.Reader, l StreamLimits) *StreamReader {
	if l.MaxTransferBytes <= 0 {
		l.MaxTransferBytes = c.maxFrame
	}
	if l.MaxTransfers <= 0 {
		l.MaxTransfers = 1
	}
	acct := &account{budget: l.Budget}
	re := NewReassembler(l.MaxTransferBytes, l.MaxTransfers)
	re.acct = acct
	return &StreamReader{codec: c, r: r, re: re, acct: acct}
}

// Held returns the bytes the reader holds charged to its Budget.
func (s *StreamReader) Held() int64 { return s.acct.held }

// Raw returns the bytes of the last frame read, header included, as they
// were on the wire. They are valid until the next read.
func (s *StreamReader) Raw() (hdr, body []byte) { return s.hdr[:], s.buf[:s.n] }

// ReadFrame reads one frame, not reassembled. A stream that ends cleanly
// before a frame returns io.EOF; one that ends inside a frame,
// ErrTruncated. The frame's Body is valid until the next read.
func (s *StreamReader) ReadFrame() (Frame, error) {
	s.acct.release(s.inflated)
	s.inflated = 0
	s.n = 0
	if _, err := io.ReadFull(s.r, s.hdr[:]); err != nil {
		if errors.Is(err, io.ErrUnexpectedEOF) {
			return Frame{}, errf(ErrTruncated, "frame header")
		}
		return Frame{}, err
	}
	size, err := s.codec.frameSize(s.hdr[:])
	if err != nil {
		return Frame{}, err
	}
	if s.buf, err = readGrowing(s.r, s.buf[:0], size, s.acct); err != nil {
		return Frame{}, err
	}
	s.n = size
	// The codec decompresses an unchunked body into a buffer of its own:
	// it charges the decompressed size to acct first.
	s.codec.acct = s.acct
	f, err := s.codec.openFrame(s.hdr[4:], s.buf[:size])
	s.inflated, s.codec.acct, s.codec.inflated = s.codec.inflated, nil, 0
	return f, err
}

// Next reads frames until a whole message is in and returns its type and
// body, valid until the next read.
func (s *StreamReader) Next() (Type, []byte, error) {
	for {
		f, err := s.ReadFrame()
		if err != nil {
			return 0, nil, err
		}
		if t, body, done, err := s.Add(f); err != nil || done {
			return t, body, err
		}
	}
}

// Add passes a frame read by ReadFrame to the reader's Reassembler, as
// Next does; it is for a caller that looked at the first frame first.
func (s *StreamReader) Add(f Frame) (t Type, body []byte, done bool, err error) {
	return s.re.Add(f)
}

// Close drops the reader's buffers and gives their bytes back to the
// Budget. It is idempotent; the reader must not be used after.
func (s *StreamReader) Close() {
	s.re.Close()
	s.acct.release(int(s.acct.held))
	s.buf, s.inflated, s.n = nil, 0, 0
}

// readGrowing reads size bytes from r into buf (whose length must be 0),
// growing it in steps: MinReadStepBytes first, then doubling, so that its
// capacity is never more than twice the bytes received (or
// MinReadStepBytes). Growth beyond buf's capacity is charged to acct. The
// capacity is kept for the next frame.
func readGrowing(r io.Reader, buf []byte, size int, acct *account) ([]byte, error) {
	for len(buf) < size {
		if len(buf) == cap(buf) {
			next := min(size, max(MinReadStepBytes, 2*cap(buf)))
			if err := acct.charge(next - cap(buf)); err != nil {
				return buf[:0], err
			}
			nb := make([]byte, len(buf), next)
			copy(nb, buf)
			buf = nb
		}
		step := min(size, cap(buf))
		n, err := io.ReadFull(r, buf[len(buf):step])
		buf = buf[:len(buf)+n]
		if err != nil {
			if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
				return buf[:0], errf(ErrTruncated, fmt.Sprintf("frame of %d bytes, got %d", size, len(buf)))
			}
			return buf[:0], err
		}
	}
	return buf, nil
}
