package fuzz

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"runtime"
	"runtime/metrics"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/meshnode/meshnode/wire"
)

// Limits small enough that a decoder exceeding them shows up at once.
const (
	fuzzMaxBody  = 4 << 10
	fuzzMaxFrame = 16 << 10
)

var wireCmp = cmp.Options{
	cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b }),
	cmpopts.EquateEmpty(),
}

// fuzzKey is the key the encrypted seeds use (ID 1, label "fuzz").
var fuzzKey = bytes.Repeat([]byte{0x5a}, wire.KeySize)

func fuzzCodec(t testing.TB, encrypted bool) *wire.Codec {
	t.Helper()
	cfg := wire.Config{MaxBodyBytes: fuzzMaxBody, MaxFrameBytes: fuzzMaxFrame, ChunkBytes: 1024, Label: "fuzz"}
	if encrypted {
		k := wire.NewKeyring()
		if err := k.Install(1, fuzzKey); err != nil {
			t.Fatal(err)
		}
		k.SetAcceptPlaintext(true)
		cfg.Keyring = k
	}
	c, err := wire.NewCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// allocBound is what decoding n input bytes may allocate: decoded records
// are larger than their encoding (a member record of 7 bytes decodes into a
// ~100-byte struct) plus slice growth, and the codec's buffers up to the caps.
func allocBound(n int) uint64 { return uint64(64*n + 4*fuzzMaxFrame + 256<<10) }

var allocSample = []metrics.Sample{{Name: "/gc/heap/allocs:bytes"}}

// heapAllocated returns the runtime's running count of heap bytes
// allocated. It is cheap but approximate: the runtime counts small objects
// when their span leaves a P's cache, so a difference of two readings can
// include bytes allocated earlier (all cached spans are flushed when a
// collection ends) and miss some allocated in between.
func heapAllocated() uint64 {
	metrics.Read(allocSample)
	return allocSample[0].Value.Uint64()
}

// exactAllocated returns the heap bytes allocated by running f: reading
// MemStats stops the world and flushes every P's cache, so the difference is
// exact (no other goroutine of the test allocates meanwhile). It costs two
// stop-the-world pauses, so bounded uses it only to confirm.
func exactAllocated(f func()) uint64 {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	f()
	runtime.ReadMemStats(&after)
	return after.TotalAlloc - before.TotalAlloc
}

// bounded runs decode, which reads n input bytes, and fails if it
// allocated more than allocBound(n) bytes (a generous bound: it catches
// allocations sized by a length read from the input, not small overheads).
func bounded(t *testing.T, n int, decode func()) {
	t.Helper()
	boundedBy(t, fmt.Sprintf("decoding %d bytes", n), allocBound(n), decode)
}

// boundedBy runs decode and fails if it allocated more than bound bytes.
// decode must be repeatable (a function of its input, not of state it
// changes): when the cheap reading is over the bound, which a cache flush
// can cause, decode runs again under an exact measurement, and only that
// one decides.
func boundedBy(t *testing.T, what string, bound uint64, decode func()) {
	t.Helper()
	before := heapAllocated()
	decode()
	if heapAllocated()-before <= bound {
		return
	}
	if got := exactAllocated(decode); got > bound {
		t.Fatalf("%s allocated %d bytes, bound %d", what, got, bound)
	}
}

// checkError fails unless err matches one of the sentinels of wire.
func checkError(t *testing.T, err error) {
	t.Helper()
	for _, s := range []error{wire.ErrTooLarge, wire.ErrTruncated, wire.ErrBadChecksum, wire.ErrDecrypt,
		wire.ErrUnknownType, wire.ErrUnsupportedVersion, wire.ErrMalformed, wire.ErrBudget} {
		if errors.Is(err, s) {
			return
		}
	}
	t.Fatalf("error %v matches no wire sentinel", err)
}

// sameMessage fails unless got equals want. The canonical encoding is
// injective on the values a decoder can produce (nil and empty slices aside,
// which the wire does not tell apart), so equal encodings mean equal
// messages; cmp, which is slow, only explains a difference.
func sameMessage(t *testing.T, what string, want, got wire.Message) {
	t.Helper()
	if want.Type() == got.Type() && bytes.Equal(want.AppendBody(nil), got.AppendBody(nil)) {
		return
	}
	t.Fatalf("%s (-want +got):\n%s", what, cmp.Diff(want, got, wireCmp))
}

// checkRoundTrip decodes body as a message of type typ and, if that
// succeeds, checks that the message re-encodes to a body that decodes to an
// equal message.
func checkRoundTrip(t *testing.T, c *wire.Codec, typ wire.Type, body []byte) {
	t.Helper()
	var m wire.Message
	var err error
	bounded(t, len(body), func() { m, err = wire.DecodeMessage(typ, body) })
	if err != nil {
		checkError(t, err)
		return
	}
	again, err := wire.DecodeMessage(typ, m.AppendBody(nil))
	if err != nil {
		t.Fatalf("re-encoded %v does not decode: %v", typ, err)
	}
	sameMessage(t, typ.String()+" round trip", m, again)
	// The codec's interning decoder agrees with the plain one.
	into, _ := wire.NewMessage(typ)
	if err := c.Decode(into, body); err != nil {
		t.Fatalf("Codec.Decode fails where DecodeMessage succeeded: %v", err)
	}
	sameMessage(t, typ.String()+" Codec.Decode", m, into)
}

// FuzzDecodePacket feeds arbitrary bytes to OpenPacket and the part reader:
// no panic, every error a wire sentinel, the decompressed body within its
// cap, and every message that decodes re-encodes to an equal one.
func FuzzDecodePacket(f *testing.F) {
	codecs := []*wire.Codec{fuzzCodec(f, false), fuzzCodec(f, true)}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		for _, c := range codecs {
			var body []byte
			var err error
			bounded(t, len(pkt), func() { body, err = c.OpenPacket(pkt) })
			if err != nil {
				checkError(t, err)
				continue
			}
			if len(body) > max(fuzzMaxBody, len(pkt)) {
				t.Fatalf("body of %d bytes from a %d-byte packet, cap %d", len(body), len(pkt), fuzzMaxBody)
			}
			r := wire.NewPartReader(bytes.Clone(body))
			for {
				typ, mb, err := r.Next()
				if err == io.EOF {
					break
				}
				if err != nil {
					checkError(t, err)
					continue
				}
				checkRoundTrip(t, c, typ, mb)
			}
		}
	})
}

// FuzzDecodeFrame feeds arbitrary bytes to DecodeFrame, ReadFrame, a
// StreamReader and a Reassembler: no panic, the three decoders agree (on
// the frame and on the bytes it takes), nothing exceeds the frame cap or
// the reassembly bound, and decoded messages round-trip.
func FuzzDecodeFrame(f *testing.F) {
	codecs := [][3]*wire.Codec{{fuzzCodec(f, false), fuzzCodec(f, false), fuzzCodec(f, false)},
		{fuzzCodec(f, true), fuzzCodec(f, true), fuzzCodec(f, true)}}
	f.Fuzz(func(t *testing.T, stream []byte) {
		for _, cc := range codecs {
			c, rc, sc := cc[0], cc[1], cc[2]
			var frames []wire.Frame
			for rest := stream; len(rest) > 0; {
				var (
					fr, fr2, fr3    wire.Frame
					n, read, read3  int
					err, err2, err3 error
				)
				// A fresh reader each time keeps the decode repeatable.
				bounded(t, len(rest), func() {
					fr, n, err = c.DecodeFrame(rest)
					r := bytes.NewReader(rest)
					fr2, err2 = rc.ReadFrame(r)
					read = len(rest) - r.Len()
					r3 := bytes.NewReader(rest)
					sr := wire.NewStreamReader(sc, r3, wire.StreamLimits{})
					fr3, err3 = sr.ReadFrame()
					read3 = len(rest) - r3.Len()
				})
				if (err == nil) != (err2 == nil) || (err == nil) != (err3 == nil) {
					t.Fatalf("DecodeFrame: %v, ReadFrame: %v, StreamReader: %v", err, err2, err3)
				}
				if err != nil {
					checkError(t, err)
					break
				}
				if fr.Type != fr2.Type || fr.Flags != fr2.Flags || fr.Chunk != fr2.Chunk || !bytes.Equal(fr.Body, fr2.Body) {
					t.Fatalf("DecodeFrame and ReadFrame differ (-Decode +Read):\n%s", cmp.Diff(fr, fr2, cmpopts.EquateEmpty()))
				}
				if read != n {
					t.Fatalf("ReadFrame took %d bytes, DecodeFrame %d", read, n)
				}
				if fr.Type != fr3.Type || fr.Flags != fr3.Flags || fr.Chunk != fr3.Chunk || !bytes.Equal(fr.Body, fr3.Body) || read3 != n {
					t.Fatalf("DecodeFrame and StreamReader differ (-Decode +Stream):\n%s", cmp.Diff(fr, fr3, cmpopts.EquateEmpty()))
				}
				if len(fr.Body) > fuzzMaxFrame {
					t.Fatalf("frame body of %d bytes over cap %d", len(fr.Body), fuzzMaxFrame)
				}
				rest = rest[n:]
				fr.Body = bytes.Clone(fr.Body) // the codec reuses its buffer
				frames = append(frames, fr)
			}
			checkReassembly(t, c, frames)
		}
	})
}

// checkReassembly feeds frames to a Reassembler: each Add allocates within
// the bound of its frame, the reassembler never holds more than its bound,
// errors are wire sentinels, and whole transfers round-trip as messages.
func checkReassembly(t *testing.T, c *wire.Codec, frames []wire.Frame) {
	t.Helper()
	bound := allocBound(0) // the reassembler itself
	for _, fr := range frames {
		bound += allocBound(len(fr.Body))
	}
	// A fresh reassembler per run keeps the measured pass repeatable; the
	// checks run on a second pass.
	boundedBy(t, fmt.Sprintf("reassembling %d frames", len(frames)), bound, func() {
		ra := wire.NewReassembler(fuzzMaxFrame, 2)
		for _, fr := range frames {
			_, _, _, _ = ra.Add(fr)
		}
	})
	ra := wire.NewReassembler(fuzzMaxFrame, 2)
	for _, fr := range frames {
		typ, body, done, err := ra.Add(fr)
		if _, used := ra.Pending(); used > fuzzMaxFrame {
			t.Fatalf("reassembler holds %d bytes, bound %d", used, fuzzMaxFrame)
		}
		if err != nil {
			checkError(t, err)
			continue
		}
		if done && typ.Known() {
			checkRoundTrip(t, c, typ, bytes.Clone(body))
		}
	}
}

// fuzzBudget is a wire.Budget that checks it is never overdrawn nor
// over-released.
type fuzzBudget struct {
	t          *testing.T
	size, used int64
}

func (b *fuzzBudget) TryAcquire(n int64) bool {
	if n <= 0 {
		b.t.Fatalf("budget asked for %d bytes", n)
	}
	if b.used+n > b.size {
		return false
	}
	b.used += n
	return true
}

func (b *fuzzBudget) Release(n int64) {
	if b.used -= n; b.used < 0 || n <= 0 {
		b.t.Fatalf("budget released %d bytes, leaving %d", n, b.used)
	}
}

// FuzzStreamReader reads arbitrary bytes as a stream of messages with the
// production frame cap (16 MiB) and a small budget: whatever the length
// fields claim, memory follows the bytes given (the decompression ratio
// aside), errors are wire sentinels, the budget is never overdrawn, and
// Close gives it all back.
func FuzzStreamReader(f *testing.F) {
	mk := func(encrypted bool) *wire.Codec {
		cfg := wire.Config{Label: "fuzz"}
		if encrypted {
			k := wire.NewKeyring()
			if err := k.Install(1, fuzzKey); err != nil {
				f.Fatal(err)
			}
			k.SetAcceptPlaintext(true)
			cfg.Keyring = k
		}
		c, err := wire.NewCodec(cfg)
		if err != nil {
			f.Fatal(err)
		}
		return c
	}
	codecs := []*wire.Codec{mk(false), mk(true)}
	f.Add([]byte{0x00, 0xff, 0xff, 0xff, 11, 0, 0x92, 0x01})
	f.Add([]byte{0x00, 0xff, 0xff, 0xff, 11, wire.FrameChunk, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9, 0x03, 0xff, 0xff, 0xff, 1, 2})
	f.Fuzz(func(t *testing.T, stream []byte) {
		for _, c := range codecs {
			b := &fuzzBudget{t: t, size: 256 << 10}
			// Reading n bytes holds at most 2n plus a read step per
			// buffer, and a decompressed body of at most 255n.
			bound := uint64(300*len(stream) + 512<<10)
			boundedBy(t, fmt.Sprintf("streaming %d bytes", len(stream)), bound, func() {
				sr := wire.NewStreamReader(c, bytes.NewReader(stream), wire.StreamLimits{MaxTransferBytes: 64 << 20, MaxTransfers: 2, Budget: b})
				defer sr.Close()
				for {
					typ, body, err := sr.Next()
					if errors.Is(err, io.EOF) {
						return
					}
					if err != nil {
						checkError(t, err)
						return
					}
					if sr.Held() != b.used {
						t.Fatalf("reader holds %d bytes, budget lent %d", sr.Held(), b.used)
					}
					if typ.Known() {
						_, _ = wire.DecodeMessage(typ, body)
					}
				}
			})
			if b.used != 0 {
				t.Fatalf("%d bytes charged after Close", b.used)
			}
		}
	})
}

// FuzzDecodeMessage decodes arbitrary bodies as every message type.
func FuzzDecodeMessage(f *testing.F) {
	c := fuzzCodec(f, false)
	f.Fuzz(func(t *testing.T, typ uint8, body []byte) {
		checkRoundTrip(t, c, wire.Type(typ), body)
	})
}

// FuzzRoundTripMessages builds a message of every type from fuzz inputs and
// checks that it survives encoding in a body, in a packet (plain and
// encrypted) and in a stream frame.
func FuzzRoundTripMessages(f *testing.F) {
	codecs := []*wire.Codec{fuzzCodec(f, false), fuzzCodec(f, true)}
	f.Fuzz(func(t *testing.T, typ uint8, s1, s2 string, u1, u2 uint64, flag bool, a1, a2 []byte) {
		addr := func(b []byte) netip.AddrPort {
			switch {
			case len(b) >= 18:
				return netip.AddrPortFrom(netip.AddrFrom16([16]byte(b)), uint16(b[16])<<8|uint16(b[17]))
			case len(b) >= 6:
				return netip.AddrPortFrom(netip.AddrFrom4([4]byte(b)), uint16(b[4])<<8|uint16(b[5]))
			}
			return netip.AddrPort{}
		}
		var m wire.Message
		switch wire.Type(typ%11 + 1) {
		case wire.TypePing:
			m = &wire.Ping{Seq: uint32(u1), Target: s1, SourceName: s2, SourceAddr: addr(a1)}
		case wire.TypeIndirectPing:
			m = &wire.IndirectPing{Seq: uint32(u1), Target: s1, TargetAddr: addr(a1), WantNack: flag, SourceName: s2, SourceAddr: addr(a2)}
		case wire.TypeAck:
			m = &wire.Ack{Seq: uint32(u1), Payload: a1}
		case wire.TypeNack:
			m = &wire.Nack{Seq: uint32(u1)}
		case wire.TypeAlive:
			m = &wire.Alive{Name: s1, Gen: u1, Incarnation: u2, Addr: addr(a1), Meta: a2}
		case wire.TypeSuspect:
			m = &wire.Suspect{Name: s1, Gen: u1, Incarnation: u2, From: s2}
		case wire.TypeDead:
			m = &wire.Dead{Name: s1, Gen: u1, Incarnation: u2, From: s2, Left: flag}
		case wire.TypePushPull:
			m = &wire.PushPull{Join: flag, Members: uint32(u1), StateBytes: uint32(u2)}
		case wire.TypeDigest:
			d := &wire.Digest{}
			for i := range len(a1) % 8 {
				d.Entries = append(d.Entries, wire.DigestEntry{Name: s1, Gen: u1 + uint64(i), Incarnation: u2, State: wire.MemberState(a1[i])})
			}
			m = d
		case wire.TypeMembers:
			ms := &wire.Members{}
			for i := range len(a1) % 8 {
				ms.Records = append(ms.Records, wire.MemberRecord{Name: s2, Gen: u1, Incarnation: u2 + uint64(i),
					State: wire.MemberState(a1[i]), Addr: addr(a2), Meta: a1[:i]})
			}
			m = ms
		default:
			m = &wire.Data{Kind: uint8(u1), Payload: a1}
		}
		body := m.AppendBody(nil)
		got, err := wire.DecodeMessage(m.Type(), body)
		if err != nil {
			t.Fatalf("%v does not decode: %v", m.Type(), err)
		}
		sameMessage(t, "body round trip", m, got) // wire's rapid tests compare fields with cmp
		for _, c := range codecs {
			pkt, left, err := c.Pack(nil, []wire.Message{m}, nil)
			if err != nil {
				t.Fatal(err)
			}
			if len(pkt) > c.BudgetBytes() {
				t.Fatalf("packet of %d bytes over budget %d", len(pkt), c.BudgetBytes())
			}
			if len(left) == 0 {
				pb, err := c.OpenPacket(pkt)
				if err != nil {
					t.Fatalf("packed %v does not open: %v", m.Type(), err)
				}
				r := wire.NewPartReader(pb)
				pt, mb, err := r.Next()
				if err != nil || pt != m.Type() {
					t.Fatalf("part %v, %v; want %v", pt, err, m.Type())
				}
				got, err := wire.DecodeMessage(pt, mb)
				if err != nil {
					t.Fatal(err)
				}
				sameMessage(t, "packet round trip", m, got)
			} else if len(body) <= c.MaxMessageBytes() {
				t.Fatalf("%d-byte body left out of an empty packet (max %d)", len(body), c.MaxMessageBytes())
			}
			if len(body) > fuzzMaxFrame {
				continue // over the reassembly bound this test uses
			}
			var stream bytes.Buffer
			if err := c.WriteFrames(&stream, m.Type(), body, 1); err != nil {
				if errors.Is(err, wire.ErrTooLarge) {
					continue
				}
				t.Fatal(err)
			}
			ra := wire.NewReassembler(fuzzMaxFrame, 1)
			for {
				fr, err := c.ReadFrame(&stream)
				if err != nil {
					t.Fatalf("frame of %v: %v", m.Type(), err)
				}
				ft, fb, done, err := ra.Add(fr)
				if err != nil {
					t.Fatal(err)
				}
				if !done {
					continue
				}
				if ft != m.Type() || !bytes.Equal(fb, body) {
					t.Fatalf("frame carried %v, %d bytes; want %v, %d bytes", ft, len(fb), m.Type(), len(body))
				}
				break
			}
		}
	})
}
