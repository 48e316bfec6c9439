package wire_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"

	"github.com/meshnode/meshnode/wire"
)

// Example shows a sender packing gossip into one encrypted packet and a
// receiver decoding it into reused messages.
func Example() {
	keys := wire.NewKeyring()
	if err := keys.Install(1, bytes.Repeat([]byte{0x42}, wire.KeySize)); err != nil {
		panic(err)
	}
	send, _ := wire.NewCodec(wire.Config{Label: "prod", Keyring: keys})
	recv, _ := wire.NewCodec(wire.Config{Label: "prod", Keyring: keys})

	queue := []wire.Message{
		&wire.Ping{Seq: 1, Target: "gw-b", SourceName: "gw-a", SourceAddr: netip.MustParseAddrPort("10.0.0.1:7946")},
		&wire.Suspect{Name: "gw-c", Gen: 2, Incarnation: 5, From: "gw-a"},
		&wire.Data{Kind: 1, Payload: make([]byte, 5000)}, // too large for a packet: stays in left
	}
	pkt, left, err := send.Pack(nil, queue, nil)
	if err != nil {
		panic(err)
	}
	fmt.Printf("packet of %d bytes (budget %d), %d message left\n", len(pkt), send.BudgetBytes(), len(left))

	body, err := recv.OpenPacket(pkt)
	if err != nil {
		panic(err)
	}
	var (
		ping    wire.Ping
		suspect wire.Suspect
	)
	r := wire.NewPartReader(body)
	for {
		typ, b, err := r.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			panic(err)
		}
		switch typ {
		case wire.TypePing:
			if err := recv.Decode(&ping, b); err != nil {
				panic(err)
			}
			fmt.Printf("ping %d for %s from %s at %v\n", ping.Seq, ping.Target, ping.SourceName, ping.SourceAddr)
		case wire.TypeSuspect:
			if err := recv.Decode(&suspect, b); err != nil {
				panic(err)
			}
			fmt.Printf("%s suspects %s (gen %d, incarnation %d)\n", suspect.From, suspect.Name, suspect.Gen, suspect.Incarnation)
		}
	}
	// Output:
	// packet of 70 bytes (budget 1200), 1 message left
	// ping 1 for gw-b from gw-a at 10.0.0.1:7946
	// gw-a suspects gw-c (gen 2, incarnation 5)
}
