package replica_test

import (
	"fmt"
	"math/rand/v2"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
)

// engineWithPeers returns an engine "a" (eager up to 4 members, fan-out 2) whose
// membership holds peers live members besides itself, and one dead.
func engineWithPeers(t *testing.T, peers int) *replica.Engine {
	t.Helper()
	st, err := store.New(store.Config{Actor: store.Actor{Name: "a", Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e := replica.New(st, nil, replica.Config{EagerMembers: 4, PushFanout: 2, Rand: rand.New(rand.NewPCG(1, 2))})
	members := []replica.Member{{Actor: st.Self(), Live: true}, {Actor: store.Actor{Name: "dead", Gen: 1}}}
	for i := range peers {
		members = append(members, replica.Member{Actor: store.Actor{Name: fmt.Sprintf("p%d", i), Gen: 1}, Live: true})
	}
	e.SetMembers(members)
	return e
}

type sent struct {
	To  string
	Via string
}

func summary(r replica.Ready) []sent {
	var out []sent
	for _, m := range r.Messages {
		out = append(out, sent{m.To.Name, m.Via.String()})
	}
	return out
}

// TestBroadcastAddresses pins the dissemination policy: eager packets (or
// streams when too large) to every live peer up to EagerMembers members,
// self included; gossip above; streams to PushFanout distinct peers for a
// delta too large to gossip. Dead members get nothing.
func TestBroadcastAddresses(t *testing.T) {
	tests := []struct {
		name    string
		peers   int
		payload int
		want    []sent
	}{
		{"alone", 0, 10, nil},
		{"eager", 3, 10, []sent{{"p0", "packet"}, {"p1", "packet"}, {"p2", "packet"}}},
		{"eager too large", 2, 101, []sent{{"p0", "stream"}, {"p1", "stream"}}},
		{"gossip", 4, 10, []sent{{"", "gossip"}}},
		{"gossip at the budget", 9, 100, []sent{{"", "gossip"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engineWithPeers(t, tt.peers)
			got := summary(e.Broadcast(replica.KindStoreDelta, make([]byte, tt.payload), 100))
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("messages (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("large cluster, too large", func(t *testing.T) {
		e := engineWithPeers(t, 9)
		got := summary(e.Broadcast(replica.KindStoreDelta, make([]byte, 101), 100))
		if len(got) != 2 || got[0].To == got[1].To || got[0].Via != "stream" || got[1].Via != "stream" || got[0].To == "dead" || got[1].To == "dead" {
			t.Errorf("messages %v, want streams to 2 distinct live peers", got)
		}
	})
}

// TestDisseminateFlushesStore: local writes leave the store as deltas
// addressed to every peer, once.
func TestDisseminateFlushesStore(t *testing.T) {
	e := engineWithPeers(t, 2)
	if err := e.Store().Put("ns", "k", []byte("v"), t0); err != nil {
		t.Fatal(err)
	}
	want := []sent{{"p0", "packet"}, {"p1", "packet"}}
	if diff := cmp.Diff(want, summary(e.Disseminate(1200))); diff != "" {
		t.Errorf("first flush (-want +got):\n%s", diff)
	}
	if got := summary(e.Disseminate(1200)); got != nil {
		t.Errorf("second flush sent %v, want nothing", got)
	}
}

// TestReceiveGossipsOnOnce: above EagerMembers a delta received in a
// packet is gossiped on the first time only, never one received over a
// stream or one this node gossiped itself; in a small cluster never.
func TestReceiveGossipsOnOnce(t *testing.T) {
	src := engineWithPeers(t, 0)
	if err := src.Store().Put("ns", "k", []byte("v"), t0); err != nil {
		t.Fatal(err)
	}
	deltas := src.Flush(1200)
	if len(deltas) != 1 {
		t.Fatalf("%d deltas, want 1", len(deltas))
	}
	d := deltas[0]
	receive := func(e *replica.Engine, b []byte, via replica.Via) []sent {
		t.Helper()
		r, err := e.Receive(replica.KindStoreDelta, b, via, t0)
		if err != nil {
			t.Fatal(err)
		}
		return summary(r)
	}
	gossip := []sent{{"", "gossip"}}

	large := engineWithPeers(t, 9)
	if diff := cmp.Diff(gossip, receive(large, d, replica.ViaPacket)); diff != "" {
		t.Errorf("first receipt (-want +got):\n%s", diff)
	}
	if got := receive(large, d, replica.ViaPacket); got != nil {
		t.Errorf("second receipt sent %v, want nothing", got)
	}
	if got := len(large.Store().List("ns", "")); got != 1 {
		t.Errorf("receiver holds %d keys, want 1", got)
	}

	streamed := engineWithPeers(t, 9)
	if got := receive(streamed, d, replica.ViaStream); got != nil {
		t.Errorf("receipt over a stream sent %v, want nothing", got)
	}

	own := engineWithPeers(t, 9)
	own.Broadcast(replica.KindStoreDelta, d, 1200)
	if got := receive(own, d, replica.ViaPacket); got != nil {
		t.Errorf("receipt of a delta it gossiped itself sent %v, want nothing", got)
	}

	small := engineWithPeers(t, 2)
	if got := receive(small, d, replica.ViaPacket); got != nil {
		t.Errorf("receipt in a small cluster sent %v, want nothing", got)
	}

	if _, err := small.Receive(99, d, replica.ViaPacket, t0); err == nil {
		t.Error("Receive accepted an unknown kind")
	}
	if _, err := small.Receive(replica.KindStoreDelta, []byte{0xc1}, replica.ViaPacket, t0); err == nil {
		t.Error("Receive accepted a malformed delta")
	}
}

// TestReceiveSkipsDuplicates: above EagerMembers a gossiped delta received
// again is not applied again (Ready.Duplicate); one that failed to apply
// is not remembered, so a later copy is tried again; deltas over streams
// and in small clusters are always applied.
func TestReceiveSkipsDuplicates(t *testing.T) {
	src := engineWithPeers(t, 0)
	if err := src.Store().Put("ns", "k", []byte("v"), t0); err != nil {
		t.Fatal(err)
	}
	d := src.Flush(1200)[0]
	dup := func(e *replica.Engine, b []byte, via replica.Via) (bool, error) {
		r, err := e.Receive(replica.KindStoreDelta, b, via, t0)
		return r.Duplicate, err
	}
	tests := []struct {
		name  string
		peers int
		via   replica.Via
		want  []bool // Duplicate at each receipt
	}{
		{"gossip", 9, replica.ViaPacket, []bool{false, true, true}},
		{"gossip over streams", 9, replica.ViaStream, []bool{false, false}},
		{"small cluster", 2, replica.ViaPacket, []bool{false, false}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := engineWithPeers(t, tt.peers)
			var got []bool
			for range tt.want {
				d, err := dup(e, d, tt.via)
				if err != nil {
					t.Fatal(err)
				}
				got = append(got, d)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Duplicate per receipt (-want +got):\n%s", diff)
			}
			if n := len(e.Store().List("ns", "")); n != 1 {
				t.Errorf("receiver holds %d keys, want 1", n)
			}
		})
	}
	t.Run("refused", func(t *testing.T) {
		e := engineWithPeers(t, 9)
		bad := []byte{0xff, 0x01}
		for i := range 2 {
			isDup, err := dup(e, bad, replica.ViaPacket)
			if err == nil || isDup {
				t.Errorf("receipt %d of a malformed delta: duplicate %v, error %v; want an error, not a duplicate", i, isDup, err)
			}
		}
	})
	t.Run("unknown kind", func(t *testing.T) {
		e := engineWithPeers(t, 9)
		if _, err := e.Receive(99, d, replica.ViaPacket, t0); err != replica.ErrKind {
			t.Errorf("error %v, want ErrKind", err)
		}
	})
}

// TestBroadcastIndexCuts: index deltas go whole to every peer of a small
// cluster (over a stream when too large for a packet), and cut into
// batches that each fit a packet to gossip in a large one, which decode
// to the same deltas.
func TestBroadcastIndexCuts(t *testing.T) {
	ix := radix.New(radix.Config{})
	pages := make([]uint64, 400) // 3.2 KB of pages
	for i := range pages {
		pages[i] = uint64(i)*0x9E3779B97F4A7C15 | 1
	}
	d, err := ix.Insert("w", 1, 5, pages)
	if err != nil {
		t.Fatal(err)
	}
	var b radix.Batch
	b.Add(d)
	const budget = 1000

	small := engineWithPeers(t, 2)
	r, encs, err := small.BroadcastIndex(&b, budget)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]sent{{"p0", "stream"}, {"p1", "stream"}}, summary(r)); diff != "" || len(encs) != 1 {
		t.Errorf("small cluster: %d batches, messages (-want +got):\n%s", len(encs), diff)
	}

	large := engineWithPeers(t, 9)
	r, encs, err = large.BroadcastIndex(&b, budget)
	if err != nil {
		t.Fatal(err)
	}
	if len(encs) < 4 || len(r.Messages) != len(encs) {
		t.Fatalf("large cluster: %d batches, %d messages; want at least 4, one each", len(encs), len(r.Messages))
	}
	var got []uint64
	for i, m := range r.Messages {
		if m.Via != replica.ViaGossip || len(m.Payload) > budget {
			t.Errorf("message %d: %v of %d bytes, want gossip within %d", i, m.Via, len(m.Payload), budget)
		}
		var db radix.Batch
		if err := radix.DecodeBatch(&db, m.Payload, radix.DefaultLimits()); err != nil {
			t.Fatal(err)
		}
		for _, d := range db.Deltas {
			got = append(got, d.Pages...)
		}
	}
	if diff := cmp.Diff(pages, got); diff != "" {
		t.Errorf("pages carried (-want +got):\n%s", diff)
	}
}
