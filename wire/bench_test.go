package wire

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"

	"github.com/pierrec/lz4/v4"
)

func BenchmarkMessage(b *testing.B) {
	ping := &Ping{Seq: 123456, Target: "gateway-replica-eu-west-1a-017", SourceName: "gateway-replica-eu-west-1b-004", SourceAddr: addr4}
	ack := &Ack{Seq: 123456, Payload: []byte("load=0.42;queue=3")}
	// A push-pull state of 64 members and its digest: the long decodes.
	members, digest := new(Members), new(Digest)
	for i := range 64 {
		name := fmt.Sprintf("gateway-replica-eu-west-1a-%03d", i)
		members.Records = append(members.Records, MemberRecord{Name: name, Gen: uint64(i) << 20, Incarnation: uint64(i * 3),
			State: MemberState(i % 4), Addr: addr4, Meta: []byte("model=llama-3-70b")})
		digest.Entries = append(digest.Entries, DigestEntry{Name: name, Gen: uint64(i) << 20, Incarnation: uint64(i * 3),
			State: MemberState(i % 4)})
	}
	for _, tc := range []struct {
		name string
		m    Message
		into Message
	}{
		{"ping", ping, new(Ping)},
		{"ack", ack, new(Ack)},
		{"members64", members, new(Members)},
		{"digest64", digest, new(Digest)},
	} {
		body := tc.m.AppendBody(nil)
		b.Run(tc.name+"/encode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			buf := make([]byte, 0, 256)
			for b.Loop() {
				buf = tc.m.AppendBody(buf[:0])
			}
		})
		b.Run(tc.name+"/decode", func(b *testing.B) {
			b.ReportAllocs()
			b.SetBytes(int64(len(body)))
			for b.Loop() {
				if err := tc.into.DecodeBody(body); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

// BenchmarkPacketPing measures a whole checksummed packet carrying one ping:
// header, part, body and CRC32C.
func BenchmarkPacketPing(b *testing.B) {
	ping := &Ping{Seq: 123456, Target: "gateway-replica-eu-west-1a-017", SourceName: "gateway-replica-eu-west-1b-004", SourceAddr: addr4}
	c := mustCodec(b, Config{})
	pkt, _ := c.AppendPacket(nil, ping)
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		buf := make([]byte, 0, 1500)
		for b.Loop() {
			buf, _ = c.AppendPacket(buf[:0], ping)
		}
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		var p Ping
		for b.Loop() {
			body, err := c.OpenPacket(pkt)
			if err != nil {
				b.Fatal(err)
			}
			r := NewPartReader(body)
			_, mb, _ := r.Next()
			if err := p.DecodeBody(mb); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// gossip returns the messages of a busy gossip round in priority order:
// alive, suspect and dead news about members with realistic names, then
// store deltas, far more than fit one packet.
func gossip(seed uint64) []Message {
	r := rand.New(rand.NewPCG(seed, 7))
	name := func() string {
		return fmt.Sprintf("gw-%s-%s-%03d", []string{"eu-west-1", "us-east-2", "ap-south-1"}[r.IntN(3)], "abc"[r.IntN(3):][:1], r.IntN(200))
	}
	addr := func() netip.AddrPort {
		return netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(r.IntN(4)), byte(r.IntN(256)), byte(r.IntN(256))}), 7946)
	}
	var msgs []Message
	for range 40 {
		msgs = append(msgs, &Alive{Name: name(), Gen: 1_732_000_000 + r.Uint64N(1e6), Incarnation: r.Uint64N(50), Addr: addr(),
			Meta: fmt.Appendf(nil, "model=llama-3.1-70b;gpu=h100;slots=%d", r.IntN(64))})
		msgs = append(msgs, &Suspect{Name: name(), Gen: 1_732_000_000 + r.Uint64N(1e6), Incarnation: r.Uint64N(50), From: name()})
	}
	for range 100 {
		msgs = append(msgs, &Data{Kind: 1, Payload: fmt.Appendf(nil, "workers/%s/load=%.3f;queue=%d;hlc=%d", name(), r.Float64(), r.IntN(100), 1_732_000_000_000+r.Uint64N(1e9))})
	}
	return msgs
}

// BenchmarkCompoundAES measures a full compound packet with AES-256-GCM
// (nonces from crypto/rand): filled to the 1200-byte budget by Pack from a
// queue of gossip, with and without lz4. "encode" appends exactly the
// messages of that packet; "pack" fills it from the whole queue; "decode"
// opens it and decodes every message into reused values.
func BenchmarkCompoundAES(b *testing.B) {
	for _, noLZ4 := range []bool{false, true} {
		name := "lz4"
		if noLZ4 {
			name = "nolz4"
		}
		b.Run(name, func(b *testing.B) {
			benchCompound(b, Config{Keyring: mustKeyring(b, 1), Label: "prod", NoCompression: noLZ4})
		})
	}
}

func benchCompound(b *testing.B, cfg Config) {
	c := mustCodec(b, cfg)
	msgs := gossip(1)
	var pkt []byte
	var left []Message
	for range 2 { // the second Pack fills from the ratio the first observed
		var err error
		if pkt, left, err = c.Pack(nil, msgs, nil); err != nil {
			b.Fatal(err)
		}
	}
	if len(left) == 0 || len(pkt) < c.BudgetBytes()*3/4 {
		b.Fatalf("setup: packet of %d bytes, %d left; want a full packet", len(pkt), len(left))
	}
	packed := msgs[:0:0]
	for _, m := range msgs {
		if !slices.Contains(left, m) {
			packed = append(packed, m)
		}
	}
	b.Run("encode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkt)))
		buf := make([]byte, 0, 1500)
		var err error
		for b.Loop() {
			buf, err = c.AppendPacket(buf[:0], packed...)
			if err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(buf)), "packet-bytes")
		b.ReportMetric(float64(len(packed)), "msgs/packet")
	})
	b.Run(fmt.Sprintf("pack-from-%d", len(msgs)), func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkt)))
		buf := make([]byte, 0, 1500)
		var rest []Message
		var n int
		for b.Loop() {
			buf, rest, _ = c.Pack(buf[:0], msgs, rest[:0])
			n = len(buf)
		}
		b.ReportMetric(float64(n), "packet-bytes")
		b.ReportMetric(float64(len(msgs)-len(rest)), "msgs/packet")
	})
	b.Run("decode", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(pkt)))
		d := mustCodec(b, cfg)
		var (
			alive   Alive
			suspect Suspect
			data    Data
		)
		for b.Loop() {
			body, err := d.OpenPacket(pkt)
			if err != nil {
				b.Fatal(err)
			}
			r := NewPartReader(body)
			for {
				t, mb, err := r.Next()
				if err == io.EOF {
					break
				}
				var m Message
				switch t {
				case TypeAlive:
					m = &alive
				case TypeSuspect:
					m = &suspect
				default:
					m = &data
				}
				if err := d.Decode(m, mb); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
}

// statePayload returns about n bytes of push-pull state: a Members message
// of realistic records.
func statePayload(n int) []byte {
	r := rand.New(rand.NewPCG(42, 42))
	var m Members
	var body []byte
	for i := 0; len(body) < n; i++ {
		m.Records = append(m.Records, MemberRecord{
			Name:        fmt.Sprintf("gw-%s-%03d", []string{"eu-west-1a", "us-east-2b", "ap-south-1c"}[i%3], i),
			Gen:         1_732_000_000 + r.Uint64N(1e6),
			Incarnation: r.Uint64N(20),
			State:       MemberState(r.IntN(4) / 3),
			Addr:        netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, byte(i >> 8), byte(i), byte(r.IntN(256))}), 7946),
			Meta: fmt.Appendf(nil, "model=%s;gpu=%s;slots=%d;version=1.%d.%d", []string{"llama-3.1-70b", "qwen2.5-72b", "mistral-large"}[r.IntN(3)],
				[]string{"h100", "a100", "l40s"}[r.IntN(3)], r.IntN(64), r.IntN(10), r.IntN(20)),
		})
		body = m.AppendBody(body[:0])
	}
	return body
}

// kvPayload returns about n bytes of store deltas: a msgpack array of
// [namespace, key, value, hlc, actor] entries with realistic worker keys.
func kvPayload(n int) []byte {
	r := rand.New(rand.NewPCG(43, 43))
	var entries []byte
	count := 0
	for len(entries) < n {
		entries = append(entries, 0x95)
		entries = AppendStr(entries, []string{"workers", "limits", "config"}[r.IntN(3)])
		entries = AppendStr(entries, fmt.Sprintf("workers/gw-%s-%03d/%s", []string{"eu-west-1a", "us-east-2b"}[r.IntN(2)], r.IntN(300),
			[]string{"load", "health", "queue", "model"}[r.IntN(4)]))
		entries = AppendBin(entries, fmt.Appendf(nil, `{"url":"http://10.0.%d.%d:8000","model":"llama-3.1-70b","load":%.3f,"healthy":true}`,
			r.IntN(4), r.IntN(256), r.Float64()))
		entries = AppendUint(entries, 1_732_000_000_000<<16|r.Uint64N(1<<30))
		entries = AppendUint(entries, r.Uint64N(64))
		count++
	}
	return append(AppendArrayHeader(nil, count), entries...)
}

func BenchmarkLZ4State64K(b *testing.B) {
	for _, tc := range []struct {
		name string
		src  []byte
	}{
		{"members", statePayload(64 << 10)},
		{"kv-deltas", kvPayload(64 << 10)},
	} {
		b.Run(tc.name, func(b *testing.B) { benchLZ4(b, tc.src) })
	}
}

func benchLZ4(b *testing.B, src []byte) {
	var lz lz4.Compressor
	comp, ok := appendCompressed(&lz, nil, src)
	if !ok {
		b.Fatal("setup: state did not compress")
	}
	ratio := float64(len(src)) / float64(len(comp))
	b.Run("compress", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		buf := make([]byte, 0, len(src))
		for b.Loop() {
			buf, _ = appendCompressed(&lz, buf[:0], src)
		}
		b.ReportMetric(ratio, "ratio")
	})
	b.Run("decompress", func(b *testing.B) {
		b.ReportAllocs()
		b.SetBytes(int64(len(src)))
		buf := make([]byte, 0, len(src))
		for b.Loop() {
			var err error
			if buf, err = appendDecompressed(buf[:0], comp, len(src)); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(ratio, "ratio")
	})
}
