package wire

import (
	"bytes"
	"errors"
	"io"
	"testing"

	"github.com/google/go-cmp/cmp"
)

var (
	testKey1 = bytes.Repeat([]byte{0x11}, KeySize)
	testKey2 = bytes.Repeat([]byte{0x22}, KeySize)
)

// tb is what the helpers need of *testing.T, *testing.B and *rapid.T.
type tb interface {
	Helper()
	Fatal(args ...any)
}

func mustCodec(t tb, cfg Config) *Codec {
	t.Helper()
	c, err := NewCodec(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustKeyring(t tb, ids ...uint8) *Keyring {
	t.Helper()
	k := NewKeyring()
	for _, id := range ids {
		key := bytes.Repeat([]byte{id}, KeySize)
		if err := k.Install(id, key); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// readAll decodes every part of a packet body into new messages.
func readAll(t tb, body []byte) (msgs []Message, unknown int) {
	t.Helper()
	r := NewPartReader(body)
	for {
		typ, b, err := r.Next()
		if err == io.EOF {
			return msgs, unknown
		}
		if errors.Is(err, ErrUnknownType) {
			unknown++
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		m, err := DecodeMessage(typ, b)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, m)
	}
}

func TestPacketRoundTrip(t *testing.T) {
	small := []Message{&Ping{Seq: 1, Target: "b", SourceName: "a", SourceAddr: addr4}, &Suspect{Name: "c", From: "a"}}
	// Repetitive enough to compress well below the budget.
	var big []Message
	for i := range 12 {
		big = append(big, &Alive{Name: "gateway-replica-eu-west-1a", Gen: uint64(i), Addr: addr4, Meta: []byte("model=llama-3-70b zone=eu-west-1a")})
	}
	tests := []struct {
		name      string
		cfg       Config
		msgs      []Message
		wantFlags uint8
	}{
		{"plain", Config{NoChecksum: true}, small, 0},
		{"checksum", Config{}, small, FlagChecksum},
		{"compressed checksum", Config{}, big, FlagCompressed | FlagChecksum},
		{"no compression", Config{NoCompression: true, NoChecksum: true, BudgetBytes: 4000}, big, 0},
		{"encrypted", Config{Keyring: mustKeyring(t, 1), Label: "prod"}, small, FlagEncrypted},
		{"compressed encrypted", Config{Keyring: mustKeyring(t, 1), Label: "prod"}, big, FlagEncrypted | FlagCompressed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := mustCodec(t, tt.cfg)
			pkt, err := c.AppendPacket([]byte("prefix"), tt.msgs...)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.HasPrefix(pkt, []byte("prefix")) {
				t.Fatal("AppendPacket overwrote dst")
			}
			pkt = pkt[len("prefix"):]
			if pkt[0] != Version || pkt[1] != tt.wantFlags {
				t.Fatalf("header % x, want version %d flags %02x", pkt[:2], Version, tt.wantFlags)
			}
			if len(pkt) > c.BudgetBytes() {
				t.Fatalf("packet of %d bytes over budget %d", len(pkt), c.BudgetBytes())
			}
			body, err := mustCodec(t, tt.cfg).OpenPacket(pkt)
			if err != nil {
				t.Fatal(err)
			}
			got, unknown := readAll(t, body)
			if unknown != 0 {
				t.Errorf("%d unknown parts", unknown)
			}
			if diff := cmp.Diff(tt.msgs, got, cmpOpts); diff != "" {
				t.Errorf("(-want +got):\n%s", diff)
			}
		})
	}
}

func TestUnknownTypeSkipped(t *testing.T) {
	body, _ := AppendPart(nil, &Nack{Seq: 1})
	body = append(body, 200, 0, 3, 0xa2, 'h', 'i') // a type from the future
	body, _ = AppendPart(body, &Nack{Seq: 2})
	c := mustCodec(t, Config{})
	pkt, err := c.SealPacket(nil, body)
	if err != nil {
		t.Fatal(err)
	}
	open, err := c.OpenPacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	got, unknown := readAll(t, open)
	if unknown != 1 {
		t.Errorf("unknown %d, want 1", unknown)
	}
	if diff := cmp.Diff([]Message{&Nack{Seq: 1}, &Nack{Seq: 2}}, got); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}

func TestOpenPacketErrors(t *testing.T) {
	plain := mustCodec(t, Config{})
	enc := mustCodec(t, Config{Keyring: mustKeyring(t, 1), Label: "prod"})
	ping := &Ping{Seq: 1, Target: "b", SourceName: "a"}
	good, _ := plain.AppendPacket(nil, ping)
	goodEnc, _ := enc.AppendPacket(nil, ping)
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		b[i] ^= 0x40
		return b
	}
	bomb := append([]byte{Version, FlagCompressed}, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00) // 64 KiB from 2 bytes
	tests := []struct {
		name  string
		codec *Codec
		pkt   []byte
		want  error
	}{
		{"empty", plain, nil, ErrTruncated},
		{"one byte", plain, good[:1], ErrTruncated},
		{"version 2", plain, append([]byte{2}, good[1:]...), ErrUnsupportedVersion},
		{"version 0x00", plain, append([]byte{0}, good[1:]...), ErrUnsupportedVersion},
		{"reserved flag", plain, append([]byte{Version, 0x80}, good[2:]...), ErrMalformed},
		{"encrypted and checksummed", enc, append([]byte{Version, FlagEncrypted | FlagChecksum}, goodEnc[2:]...), ErrMalformed},
		{"bad checksum", plain, flip(good, 4), ErrBadChecksum},
		{"checksum truncated", plain, []byte{Version, FlagChecksum, 1}, ErrTruncated},
		{"tampered ciphertext", enc, flip(goodEnc, len(goodEnc)-20), ErrAuth},
		{"tampered header", enc, append([]byte{Version, FlagEncrypted | FlagCompressed}, goodEnc[2:]...), ErrAuth},
		{"unknown key", enc, append([]byte{Version, FlagEncrypted, 9}, goodEnc[3:]...), ErrUnknownKey},
		{"wrong label", mustCodec(t, Config{Keyring: mustKeyring(t, 1), Label: "staging"}), goodEnc, ErrAuth},
		{"encrypted without keyring", plain, goodEnc, ErrEncryptedRefused},
		{"encrypted with an empty keyring", mustCodec(t, Config{Keyring: NewKeyring()}), goodEnc, ErrEncryptedRefused},
		{"plaintext refused", enc, good, ErrPlaintextRefused},
		{"encrypted truncated", enc, goodEnc[:20], ErrTruncated},
		{"decompression size cap", mustCodec(t, Config{MaxBodyBytes: 1000}), append([]byte{Version, FlagCompressed}, 0, 0, 0x10, 0, 0xff, 0xff, 0xff, 0xff), ErrTooLarge},
		{"decompression ratio cap", plain, bomb, ErrTooLarge},
		{"bad lz4", plain, []byte{Version, FlagCompressed, 0, 0, 0, 10, 0xf0, 1, 2}, ErrMalformed},
		{"compressed too short", plain, []byte{Version, FlagCompressed, 0, 0}, ErrTruncated},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := tt.codec.OpenPacket(tt.pkt)
			if !errors.Is(err, tt.want) {
				t.Fatalf("err %v, want %v", err, tt.want)
			}
			checkDecryptReason(t, err)
		})
	}
}

func TestPartReaderTruncated(t *testing.T) {
	for _, body := range [][]byte{{byte(TypeNack)}, {byte(TypeNack), 0, 5, 0x91}} {
		r := NewPartReader(body)
		if _, _, err := r.Next(); !errors.Is(err, ErrTruncated) {
			t.Fatalf("% x: err %v, want ErrTruncated", body, err)
		}
		if _, _, err := r.Next(); err != io.EOF {
			t.Fatalf("% x: after truncation err %v, want EOF", body, err)
		}
	}
}

func TestAppendPacketOverBudget(t *testing.T) {
	c := mustCodec(t, Config{NoCompression: true})
	big := &Data{Payload: make([]byte, 1200)}
	dst := []byte("keep")
	got, err := c.AppendPacket(dst, big)
	if !errors.Is(err, ErrTooLarge) {
		t.Fatalf("err %v, want ErrTooLarge", err)
	}
	if string(got) != "keep" {
		t.Errorf("dst changed to %q", got)
	}
	if _, err := AppendPart(nil, &Data{Payload: make([]byte, 70000)}); !errors.Is(err, ErrTooLarge) {
		t.Errorf("AppendPart of a 70000-byte body: err %v, want ErrTooLarge", err)
	}
}

// TestPlaintextRollout walks a cluster from plaintext to encryption as the
// Keyring doc describes, checking at each step that every pair of nodes
// still talks.
func TestPlaintextRollout(t *testing.T) {
	type node struct {
		k *Keyring
		c *Codec
	}
	nodes := make([]node, 3)
	for i := range nodes {
		nodes[i].c = mustCodec(t, Config{Label: "prod"})
	}
	talk := func(step string, wantFlags uint8) {
		t.Helper()
		for i, a := range nodes {
			for j, b := range nodes {
				pkt, err := a.c.AppendPacket(nil, &Nack{Seq: uint32(i*10 + j)})
				if err != nil {
					t.Fatal(err)
				}
				if pkt[1]&FlagEncrypted != wantFlags {
					t.Errorf("%s: %d->%d flags %02x", step, i, j, pkt[1])
				}
				if _, err := b.c.OpenPacket(pkt); err != nil {
					t.Errorf("%s: %d->%d: %v", step, i, j, err)
				}
			}
		}
	}
	talk("plaintext", 0)
	// Install the key with both switches on, one node at a time.
	for i := range nodes {
		k := NewKeyring()
		k.SetAcceptPlaintext(true)
		k.SetSendPlaintext(true)
		if err := k.Install(7, testKey1); err != nil {
			t.Fatal(err)
		}
		nodes[i] = node{k, mustCodec(t, Config{Label: "prod", Keyring: k})}
		talk("installing", 0)
	}
	// Send encrypted, one node at a time: others still accept.
	for i := range nodes {
		nodes[i].k.SetSendPlaintext(false)
		for j := range nodes {
			pkt, _ := nodes[i].c.AppendPacket(nil, &Nack{})
			if _, err := nodes[j].c.OpenPacket(pkt); err != nil {
				t.Errorf("sending encrypted %d->%d: %v", i, j, err)
			}
		}
	}
	talk("all sending encrypted", FlagEncrypted)
	for i := range nodes {
		nodes[i].k.SetAcceptPlaintext(false)
	}
	talk("plaintext refused", FlagEncrypted)
	stray := mustCodec(t, Config{Label: "prod"})
	pkt, _ := stray.AppendPacket(nil, &Nack{})
	if _, err := nodes[0].c.OpenPacket(pkt); !errors.Is(err, ErrDecrypt) {
		t.Errorf("plaintext after rollout: err %v, want ErrDecrypt", err)
	}
	// Rotate: install key 8 everywhere, use it everywhere, remove 7.
	for _, n := range nodes {
		if err := n.k.Install(8, testKey2); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range nodes {
		if err := n.k.Use(8); err != nil {
			t.Fatal(err)
		}
		talk("rotating", FlagEncrypted)
	}
	for _, n := range nodes {
		if err := n.k.Remove(7); err != nil {
			t.Fatal(err)
		}
	}
	talk("rotated", FlagEncrypted)
	pkt, _ = nodes[0].c.AppendPacket(nil, &Nack{})
	if pkt[2] != 8 {
		t.Errorf("key ID %d, want 8", pkt[2])
	}
}

func TestConfigValidate(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		errs int
	}{
		{"zero", Config{}, 0},
		{"label too long", Config{Label: string(make([]byte, 256))}, 1},
		{"budget too small", Config{BudgetBytes: 10}, 1},
		{"budget over UDP", Config{BudgetBytes: 70000}, 1},
		{"several", Config{BudgetBytes: 10, MaxBodyBytes: -1, ChunkBytes: 10}, 3},
		{"chunk over frame", Config{MaxFrameBytes: 4096, ChunkBytes: 4096}, 1},
		{"frame cap too small", Config{MaxFrameBytes: 10}, 1},
		{"chunk fits frame", Config{MaxFrameBytes: 4096, ChunkBytes: 4096 - 45}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.cfg.Validate()
			n := 0
			if err != nil {
				n = len(err.(interface{ Unwrap() []error }).Unwrap())
			}
			if n != tt.errs {
				t.Fatalf("%d problems (%v), want %d", n, err, tt.errs)
			}
			if err != nil && !errors.Is(err, ErrConfig) {
				t.Errorf("err %v does not match ErrConfig", err)
			}
			if _, err := NewCodec(tt.cfg); (err != nil) != (tt.errs > 0) {
				t.Errorf("NewCodec err %v", err)
			}
		})
	}
}

// TestEncodingKeepsDecodedBody checks that sending with a codec does not
// clobber the body its last OpenPacket returned.
func TestEncodingKeepsDecodedBody(t *testing.T) {
	k := mustKeyring(t, 1)
	c := mustCodec(t, Config{Keyring: k, ChunkBytes: 1024})
	pkt, _ := c.AppendPacket(nil, &Nack{Seq: 42})
	body, err := c.OpenPacket(pkt)
	if err != nil {
		t.Fatal(err)
	}
	want := bytes.Clone(body)
	if _, err := c.AppendPacket(nil, &Ack{Seq: 1, Payload: make([]byte, 500)}); err != nil {
		t.Fatal(err)
	}
	if err := c.WriteFrames(io.Discard, TypeData, payload(5000, 9), 1); err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(body, want) {
		t.Error("encoding changed the decoded body")
	}
}

// checkDecryptReason fails unless err matches at most one of the reasons
// that refine ErrDecrypt, and matches ErrDecrypt exactly when it matches
// one of them, so that callers can tell the causes apart.
func checkDecryptReason(t *testing.T, err error) {
	t.Helper()
	n := 0
	for _, r := range []error{ErrUnknownKey, ErrAuth, ErrPlaintextRefused, ErrEncryptedRefused} {
		if errors.Is(err, r) {
			n++
		}
	}
	if n > 1 || (n == 1) != errors.Is(err, ErrDecrypt) {
		t.Fatalf("err %v: matches %d decryption reasons, ErrDecrypt %v", err, n, errors.Is(err, ErrDecrypt))
	}
}
