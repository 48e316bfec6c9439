package wire

import (
	"bytes"
	"errors"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestKeyring(t *testing.T) {
	k := NewKeyring()
	if _, ok := k.Primary(); ok {
		t.Fatal("empty keyring has a primary key")
	}
	steps := []struct {
		name string
		op   func() error
		want error
	}{
		{"install short key", func() error { return k.Install(1, testKey1[:16]) }, ErrKeyring},
		{"install 1", func() error { return k.Install(1, testKey1) }, nil},
		{"install 1 again", func() error { return k.Install(1, testKey1) }, nil},
		{"install other key as 1", func() error { return k.Install(1, testKey2) }, ErrKeyring},
		{"install 200", func() error { return k.Install(200, testKey2) }, nil},
		{"use missing", func() error { return k.Use(3) }, ErrKeyring},
		{"remove primary", func() error { return k.Remove(1) }, ErrKeyring},
		{"use 200", func() error { return k.Use(200) }, nil},
		{"remove 1", func() error { return k.Remove(1) }, nil},
		{"remove 1 again", func() error { return k.Remove(1) }, ErrKeyring},
		{"install 0", func() error { return k.Install(0, testKey1) }, nil},
	}
	for _, s := range steps {
		if err := s.op(); !errors.Is(err, s.want) || (s.want == nil) != (err == nil) {
			t.Fatalf("%s: err %v, want %v", s.name, err, s.want)
		}
	}
	if diff := cmp.Diff([]uint8{0, 200}, k.List()); diff != "" {
		t.Errorf("List (-want +got):\n%s", diff)
	}
	if id, ok := k.Primary(); !ok || id != 200 {
		t.Errorf("Primary %d %v, want 200 true", id, ok)
	}
	if b, ok := k.Key(200); !ok || !bytes.Equal(b, testKey2) {
		t.Errorf("Key(200) = %x %v, want the installed key", b, ok)
	} else {
		b[0] ^= 0xff // a copy: the keyring keeps its key
		if again, _ := k.Key(200); !bytes.Equal(again, testKey2) {
			t.Error("changing the slice Key returned changed the installed key")
		}
	}
	if b, ok := k.Key(1); ok || b != nil {
		t.Errorf("Key(1) of a removed key = %x %v", b, ok)
	}
}

func TestKeyringSwitches(t *testing.T) {
	k := NewKeyring()
	if !k.acceptsPlaintext() {
		t.Error("a keyring without keys refuses plaintext")
	}
	if err := k.Install(1, testKey1); err != nil {
		t.Fatal(err)
	}
	if k.acceptsPlaintext() || k.sealer().aead == nil {
		t.Error("with a key and switches off: plaintext accepted or not encrypting")
	}
	k.SetAcceptPlaintext(true)
	k.SetSendPlaintext(true)
	if !k.AcceptPlaintext() || !k.SendPlaintext() || !k.acceptsPlaintext() || k.sealer().aead != nil {
		t.Error("switches on have no effect")
	}
}

// TestKeyringConcurrent rotates keys while codecs encode and decode; run it
// under -race. Every packet must open, since the old key is removed only
// after the new one is primary and both stay installed in between.
func TestKeyringConcurrent(t *testing.T) {
	k := mustKeyring(t, 1)
	var wg sync.WaitGroup
	done := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		wg.Go(func() {
			c := mustCodec(t, Config{Keyring: k})
			for i := 0; ; i++ {
				select {
				case <-done:
					return
				default:
				}
				pkt, err := c.AppendPacket(nil, &Nack{Seq: uint32(i)})
				if err == nil {
					_, err = c.OpenPacket(pkt)
				}
				if err != nil && !errors.Is(err, ErrDecrypt) { // a key may vanish between the two calls
					errs <- err
					return
				}
			}
		})
	}
	for id := uint8(2); id < 50; id++ {
		if err := k.Install(id, testKey2); err != nil {
			t.Fatal(err)
		}
		if err := k.Use(id); err != nil {
			t.Fatal(err)
		}
		if err := k.Remove(id - 1); err != nil {
			t.Fatal(err)
		}
	}
	close(done)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

func TestKeyringZeroValue(t *testing.T) {
	var k Keyring
	if ids := k.List(); len(ids) != 0 {
		t.Errorf("List = %v", ids)
	}
	c := mustCodec(t, Config{Keyring: &k})
	pkt, err := c.AppendPacket(nil, &Nack{Seq: 1})
	if err != nil || pkt[1]&FlagEncrypted != 0 {
		t.Fatalf("empty keyring: flags %02x, %v; want plaintext", pkt[1], err)
	}
	if err := k.Install(5, testKey1); err != nil {
		t.Fatal(err)
	}
	if pkt, _ = c.AppendPacket(nil, &Nack{Seq: 1}); pkt[1]&FlagEncrypted == 0 || pkt[2] != 5 {
		t.Fatalf("after Install: header % x, want encrypted with key 5", pkt[:3])
	}
}
