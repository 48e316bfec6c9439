package wire

import (
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
	"pgregory.net/rapid"
)

// TestPackProperties checks, over random message sets and configurations:
// the packet never exceeds the budget; every message is either packed or
// left, in the original order; a message was left only if it did not fit
// after the ones packed before it.
func TestPackProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cfg := Config{
			BudgetBytes:   rapid.SampledFrom([]int{64, 200, 1200, 1400, 9000}).Draw(t, "budget"),
			NoCompression: rapid.Bool().Draw(t, "nocompress"),
			NoChecksum:    rapid.Bool().Draw(t, "nochecksum"),
			Label:         rapid.StringN(0, 20, -1).Draw(t, "label"),
		}
		if rapid.Bool().Draw(t, "encrypt") {
			cfg.Keyring = mustKeyring(t, 3)
		}
		c := mustCodec(t, cfg)
		// Several rounds on one codec: later rounds fill from the
		// compression ratio the earlier ones observed.
		rounds := rapid.IntRange(1, 4).Draw(t, "rounds")
		for range rounds {
			checkPack(t, c, cfg, rapid.SliceOfN(genMessage(), 0, 30).Draw(t, "msgs"))
		}
	})
}

func checkPack(t *rapid.T, c *Codec, cfg Config, msgs []Message) {
	left := []Message{&Nack{Seq: 99}} // Pack appends after what the caller had
	pkt, left, err := c.Pack([]byte{0xee}, msgs, left)
	if err != nil {
		t.Fatal(err)
	}
	if left[0].(*Nack).Seq != 99 {
		t.Fatal("Pack overwrote the caller's left slice")
	}
	left = left[1:]
	pkt = pkt[1:]
	if len(pkt) > cfg.BudgetBytes {
		t.Fatalf("packet of %d bytes over budget %d", len(pkt), cfg.BudgetBytes)
	}
	var packed []Message
	if len(pkt) > 0 {
		body, err := mustCodec(t, cfg).OpenPacket(pkt)
		if err != nil {
			t.Fatal(err)
		}
		var unknown int
		packed, unknown = readAll(t, body)
		if unknown != 0 {
			t.Fatalf("%d unknown parts", unknown)
		}
	}
	avail := cfg.BudgetBytes - c.overheadOf(c.keyring.sealer())
	used := 0
	for i, m := range msgs {
		part, err := AppendPart(nil, m)
		if len(left) > 0 && left[0] == m {
			left = left[1:]
			if err == nil && used+len(part) <= avail {
				t.Fatalf("message %d (%d bytes) left although %d of %d bytes were used", i, len(part), used, avail)
			}
			continue
		}
		if len(packed) == 0 {
			t.Fatalf("message %d neither packed nor left", i)
		}
		if diff := cmp.Diff(m, packed[0], cmpOpts); diff != "" {
			t.Fatalf("message %d out of order (-want +got):\n%s", i, diff)
		}
		packed = packed[1:]
		used += len(part)
	}
	if len(left) != 0 || len(packed) != 0 {
		t.Fatalf("%d left and %d packed messages unaccounted for", len(left), len(packed))
	}
}

func TestPackNothingFits(t *testing.T) {
	c := mustCodec(t, Config{NoCompression: true})
	big := &Data{Payload: make([]byte, c.MaxMessageBytes())} // body = 3 + payload > max
	pkt, left, err := c.Pack(nil, []Message{big}, nil)
	if err != nil || len(pkt) != 0 || len(left) != 1 {
		t.Fatalf("Pack = %d bytes, %d left, %v; want no packet, 1 left", len(pkt), len(left), err)
	}
	// A body of exactly MaxMessageBytes fits, to the byte.
	exact := &Data{Payload: make([]byte, c.MaxMessageBytes()-5)} // [kind, bin16 payload]: 1+1+3 bytes
	if n := len(exact.AppendBody(nil)); n != c.MaxMessageBytes() {
		t.Fatalf("test setup: body %d bytes, want %d", n, c.MaxMessageBytes())
	}
	pkt, left, err = c.Pack(nil, []Message{exact}, nil)
	if err != nil || len(left) != 0 || len(pkt) != c.BudgetBytes() {
		t.Fatalf("Pack = %d bytes, %d left, %v; want %d bytes, none left", len(pkt), len(left), err, c.BudgetBytes())
	}
}

func TestPackReadsBack(t *testing.T) {
	c := mustCodec(t, Config{Keyring: mustKeyring(t, 1)})
	var msgs []Message
	for i := range 100 {
		msgs = append(msgs, &Suspect{Name: "gateway-replica-17", Gen: uint64(i), Incarnation: 3, From: "gateway-replica-02"})
	}
	var sent int
	for len(msgs) > 0 {
		pkt, left, err := c.Pack(nil, msgs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) == 0 {
			t.Fatal("no progress")
		}
		body, err := c.OpenPacket(pkt)
		if err != nil {
			t.Fatal(err)
		}
		r := NewPartReader(body)
		var s Suspect
		for {
			_, b, err := r.Next()
			if errors.Is(err, io.EOF) {
				break
			}
			if err := s.DecodeBody(b); err != nil {
				t.Fatal(err)
			}
			if s.Gen != uint64(sent) {
				t.Fatalf("got gen %d, want %d", s.Gen, sent)
			}
			sent++
		}
		msgs = left
	}
	if sent != 100 {
		t.Errorf("sent %d, want 100", sent)
	}
}

// TestPackBudgetWhileKeyringFlips packs while another goroutine switches
// encryption on and off: each packet must still respect the budget, since
// Pack reads the keyring once per packet.
func TestPackBudgetWhileKeyringFlips(t *testing.T) {
	k := mustKeyring(t, 1)
	c := mustCodec(t, Config{Keyring: k, NoChecksum: true, NoCompression: true})
	var msgs []Message
	for i := range 200 {
		msgs = append(msgs, &Suspect{Name: "gateway-replica-17", Gen: uint64(i), From: "gateway-replica-02"})
	}
	done := make(chan struct{})
	flipped := make(chan struct{})
	go func() {
		defer close(flipped)
		for i := 0; ; i++ {
			select {
			case <-done:
				return
			default:
				k.SetSendPlaintext(i%2 == 0)
			}
		}
	}()
	for range 500 {
		pkt, _, err := c.Pack(nil, msgs, nil)
		if err != nil {
			t.Fatal(err)
		}
		if len(pkt) > c.BudgetBytes() {
			close(done)
			<-flipped
			t.Fatalf("packet of %d bytes over budget %d", len(pkt), c.BudgetBytes())
		}
	}
	close(done)
	<-flipped
}
