package wire

import (
	"bufio"
	"bytes"
	"encoding/hex"
	"net/netip"
	"os"
	"strings"
	"testing"
)

// countingReader yields 0, 1, 2, ...: the nonce of the encrypted examples.
type countingReader struct{ next byte }

func (r *countingReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = r.next
		r.next++
	}
	return len(p), nil
}

// docKey is the test key of docs/wire.md: bytes 0x00..0x1f.
func docKey() []byte {
	k := make([]byte, KeySize)
	for i := range k {
		k[i] = byte(i)
	}
	return k
}

// docExamples builds each example of docs/wire.md with the encoder.
func docExamples(t *testing.T) map[string][]byte {
	src := netip.MustParseAddrPort("10.0.0.1:7946")
	plain := mustCodec(t, Config{})
	ex := map[string][]byte{}
	var err error
	if ex["plain"], err = plain.AppendPacket(nil,
		&Ping{Seq: 1, Target: "gw-b", SourceName: "gw-a", SourceAddr: src},
		&Suspect{Name: "gw-c", Gen: 2, Incarnation: 5, From: "gw-a"}); err != nil {
		t.Fatal(err)
	}
	if ex["compressed"], err = plain.AppendPacket(nil,
		&Data{Kind: 1, Payload: bytes.Repeat([]byte("load=0.5;"), 16)}); err != nil {
		t.Fatal(err)
	}
	k := NewKeyring()
	if err := k.Install(1, docKey()); err != nil {
		t.Fatal(err)
	}
	enc := mustCodec(t, Config{Keyring: k, Label: "prod", Rand: &countingReader{}})
	if ex["encrypted"], err = enc.AppendPacket(nil, &Ack{Seq: 7, Payload: []byte("ok")}); err != nil {
		t.Fatal(err)
	}
	encFrames := mustCodec(t, Config{Keyring: k, Label: "prod", Rand: &countingReader{}})
	if ex["encrypted-frame"], err = encFrames.AppendFrame(nil, TypeNack, (&Nack{Seq: 7}).AppendBody(nil)); err != nil {
		t.Fatal(err)
	}
	if ex["frame"], err = plain.AppendFrame(nil, TypePushPull, (&PushPull{Join: true, Members: 3}).AppendBody(nil)); err != nil {
		t.Fatal(err)
	}
	var chunks bytes.Buffer
	chunker := mustCodec(t, Config{ChunkBytes: 1024, NoCompression: true})
	if err := chunker.WriteFrames(&chunks, TypeData, bytes.Repeat([]byte{0xaa}, 1030), 9); err != nil {
		t.Fatal(err)
	}
	// The doc shows the second (last) chunk frame only.
	ex["chunk"] = chunks.Bytes()[frameHeaderBytes+chunkHeaderBytes+1024:]
	return ex
}

// readDocHex returns the hex blocks of docs/wire.md: a fenced block opened
// by "```hex NAME" maps NAME to its bytes.
func readDocHex(t *testing.T) map[string][]byte {
	f, err := os.Open("../docs/wire.md")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	blocks := map[string][]byte{}
	var name string
	var text strings.Builder
	s := bufio.NewScanner(f)
	for s.Scan() {
		line := s.Text()
		switch {
		case name == "" && strings.HasPrefix(line, "```hex "):
			name = strings.TrimPrefix(line, "```hex ")
			text.Reset()
		case name != "" && line == "```":
			b, err := hex.DecodeString(strings.Join(strings.Fields(text.String()), ""))
			if err != nil {
				t.Fatalf("docs/wire.md block %s: %v", name, err)
			}
			blocks[name] = b
			name = ""
		case name != "":
			// Everything after "|" is a comment.
			line, _, _ = strings.Cut(line, "|")
			text.WriteString(line)
		}
	}
	if err := s.Err(); err != nil {
		t.Fatal(err)
	}
	return blocks
}

// TestDocExamples checks that the encoder produces exactly the bytes of
// every hex example in docs/wire.md, and that they decode.
func TestDocExamples(t *testing.T) {
	doc := readDocHex(t)
	ex := docExamples(t)
	if len(doc) != len(ex) {
		t.Errorf("docs/wire.md has %d hex examples, the test builds %d", len(doc), len(ex))
	}
	for name, want := range ex {
		t.Run(name, func(t *testing.T) {
			got, ok := doc[name]
			if !ok {
				t.Fatalf("no ```hex %s block in docs/wire.md; the encoder writes:\n%s", name, hex.Dump(want))
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("docs/wire.md:\n%sencoder:\n%s", hex.Dump(got), hex.Dump(want))
			}
		})
	}
	k := NewKeyring()
	if err := k.Install(1, docKey()); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"plain", "compressed", "encrypted"} {
		cfg := Config{}
		if name == "encrypted" {
			cfg = Config{Keyring: k, Label: "prod"}
		}
		body, err := mustCodec(t, cfg).OpenPacket(doc[name])
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if msgs, _ := readAll(t, body); len(msgs) == 0 {
			t.Errorf("%s: no messages", name)
		}
	}
}
