package wire

import (
	"bytes"
	"errors"
	"io"
	"runtime"
	"testing"
)

// testBudget is a Budget that records the most it lent at once.
type testBudget struct {
	size, used, peak int64
}

func (b *testBudget) TryAcquire(n int64) bool {
	if b.used+n > b.size {
		return false
	}
	b.used += n
	b.peak = max(b.peak, b.used)
	return true
}

func (b *testBudget) Release(n int64) {
	b.used -= n
	if b.used < 0 {
		panic("wire test: budget released more than acquired")
	}
}

// errSilent stands for a peer that stops sending: the read that would
// block returns it.
var errSilent = errors.New("peer went silent")

// silentAfter returns a reader of b that then fails with errSilent.
func silentAfter(b []byte) io.Reader {
	return io.MultiReader(bytes.NewReader(b), errReader{errSilent})
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// allocated returns the heap bytes f allocated. The test runs alone in its
// goroutine, so the difference of two MemStats readings is exact enough.
func allocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// hugeHeader is a frame header claiming the largest default frame, then
// two body bytes: what a stranger sends to make a reader allocate.
func hugeHeader(flags uint8) []byte {
	size := DefaultMaxFrameBytes - 1
	return []byte{byte(size >> 24), byte(size >> 16), byte(size >> 8), byte(size), byte(TypeData), flags, 0x92, 0x01}
}

// TestReadFrameMemoryFollowsBytes: a header claiming 16 MiB followed by two
// bytes costs a reader what it received (one read step), not the claim.
func TestReadFrameMemoryFollowsBytes(t *testing.T) {
	t.Run("Codec.ReadFrame", func(t *testing.T) {
		c := mustCodec(t, Config{})
		var err error
		got := allocated(func() { _, err = c.ReadFrame(silentAfter(hugeHeader(0))) })
		if !errors.Is(err, errSilent) {
			t.Fatalf("err %v, want the reader's", err)
		}
		if got > 4*MinReadStepBytes {
			t.Errorf("8 bytes received allocated %d bytes, want at most %d", got, 4*MinReadStepBytes)
		}
	})
	t.Run("StreamReader", func(t *testing.T) {
		for _, flags := range []uint8{0, FrameChunk, FrameCompressed} {
			b := &testBudget{size: 1 << 30}
			s := NewStreamReader(mustCodec(t, Config{}), silentAfter(hugeHeader(flags)), StreamLimits{Budget: b})
			var err error
			got := allocated(func() { _, _, err = s.Next() })
			if !errors.Is(err, errSilent) {
				t.Fatalf("flags %02x: err %v, want the reader's", flags, err)
			}
			if got > 4*MinReadStepBytes || b.peak > MinReadStepBytes {
				t.Errorf("flags %02x: 8 bytes received allocated %d bytes, charged %d; want at most %d, %d",
					flags, got, b.peak, 4*MinReadStepBytes, MinReadStepBytes)
			}
			s.Close()
			if b.used != 0 {
				t.Errorf("flags %02x: %d bytes still charged after Close", flags, b.used)
			}
		}
	})
}

// TestReassemblerMemoryFollowsBytes: chunk 0 of a transfer claiming 64 MiB
// with ten bytes of data costs about ten bytes, not the claimed total.
func TestReassemblerMemoryFollowsBytes(t *testing.T) {
	r := NewReassembler(64<<20, 1)
	var err error
	got := allocated(func() { _, _, _, err = r.Add(chunk(1, 0, 64, 64<<20, make([]byte, 10))) })
	if err != nil {
		t.Fatal(err)
	}
	if got > 4*MinReadStepBytes {
		t.Errorf("a 10-byte chunk allocated %d bytes, want at most %d", got, 4*MinReadStepBytes)
	}
}

// TestStreamReaderGrowsInSteps: a frame's buffer, charged to the budget,
// is never more than twice the bytes received (or one step).
func TestStreamReaderGrowsInSteps(t *testing.T) {
	frame, err := mustCodec(t, Config{NoCompression: true}).AppendFrame(nil, TypeData, (&Data{Payload: make([]byte, 1<<20)}).AppendBody(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, sent := range []int{6, 100, 5000, 70000, 600000} {
		b := &testBudget{size: 1 << 30}
		s := NewStreamReader(mustCodec(t, Config{}), silentAfter(frame[:sent]), StreamLimits{Budget: b})
		if _, err := s.ReadFrame(); !errors.Is(err, errSilent) {
			t.Fatalf("sent %d: err %v, want the reader's", sent, err)
		}
		if want := max(MinReadStepBytes, 2*int64(sent)); b.peak > want {
			t.Errorf("sent %d bytes: charged %d, want at most %d", sent, b.peak, want)
		}
		s.Close()
	}
}

// TestStreamReaderBudget: a reader that outgrows the shared budget fails
// with ErrBudget and gives everything back on Close; whole messages of
// every kind (chunked, compressed, encrypted) read within a budget that
// fits them.
func TestStreamReaderBudget(t *testing.T) {
	big := &Data{Payload: payload(3<<20, 7)}
	small := &Nack{Seq: 9}
	for _, cfg := range []Config{{}, {NoCompression: true}, {Keyring: mustKeyring(t, 4), Label: "prod"}} {
		w := mustCodec(t, cfg)
		var stream bytes.Buffer
		for i, m := range []Message{small, big, small} {
			if err := w.WriteFrames(&stream, m.Type(), m.AppendBody(nil), uint32(i)); err != nil {
				t.Fatal(err)
			}
		}
		raw := stream.Bytes()

		// Too small a budget: ErrBudget, then nothing charged after Close.
		b := &testBudget{size: 1 << 20}
		s := NewStreamReader(mustCodec(t, cfg), bytes.NewReader(raw), StreamLimits{MaxTransferBytes: 16 << 20, Budget: b})
		var err error
		for err == nil {
			_, _, err = s.Next()
		}
		if !errors.Is(err, ErrBudget) {
			t.Errorf("budget of 1 MiB: err %v, want ErrBudget", err)
		}
		s.Close()
		if b.used != 0 {
			t.Errorf("%d bytes charged after Close", b.used)
		}

		// A budget that fits: the messages come back whole.
		b = &testBudget{size: 64 << 20}
		s = NewStreamReader(mustCodec(t, cfg), bytes.NewReader(raw), StreamLimits{MaxTransferBytes: 16 << 20, Budget: b})
		for _, want := range []Message{small, big, small} {
			typ, body, err := s.Next()
			if err != nil {
				t.Fatal(err)
			}
			// Compare encodings: cmp walks a 3 MiB payload byte by byte.
			if wantBody := want.AppendBody(nil); typ != want.Type() || !bytes.Equal(body, wantBody) {
				t.Fatalf("got %v of %d bytes, want %v of %d bytes", typ, len(body), want.Type(), len(wantBody))
			}
		}
		if _, _, err := s.Next(); err != io.EOF {
			t.Errorf("at end: %v, want io.EOF", err)
		}
		if s.Held() != b.used {
			t.Errorf("Held %d, budget lent %d", s.Held(), b.used)
		}
		s.Close()
		if b.used != 0 || s.Held() != 0 {
			t.Errorf("after Close: %d bytes charged, Held %d", b.used, s.Held())
		}
	}
}
