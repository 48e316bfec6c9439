package swim

import (
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/wire"
)

func names(msgs []wire.Message) []string {
	var out []string
	for _, m := range msgs {
		switch m := m.(type) {
		case *wire.Alive:
			out = append(out, "alive:"+m.Name)
		case *wire.Suspect:
			out = append(out, "suspect:"+m.Name)
		case *wire.Dead:
			out = append(out, "dead:"+m.Name)
		case *wire.Data:
			out = append(out, "data:"+string(m.Payload))
		}
	}
	return out
}

func push(q *queue, key string, m wire.Message, prio int) {
	q.push(key, m, MessageSize(m), prio, 100)
}

func TestQueuePriorityAndReplacement(t *testing.T) {
	q := newQueue()
	push(&q, "", &wire.Data{Payload: []byte("d1")}, prioData)
	push(&q, "x", &wire.Suspect{Name: "x"}, prioSuspect)
	push(&q, "y", &wire.Alive{Name: "y"}, prioAlive)
	push(&q, "x", &wire.Alive{Name: "x", Incarnation: 1}, prioAlive) // replaces the suspect
	got, _ := q.fill(nil, 1000, 10)
	want := []string{"alive:y", "alive:x", "data:d1"}
	if diff := cmp.Diff(want, names(got)); diff != "" {
		t.Errorf("fill order (-want +got):\n%s", diff)
	}
	if q.len() != 3 {
		t.Errorf("len = %d, want 3", q.len())
	}
}

func TestQueueRetransmitLimitAndFreshFirst(t *testing.T) {
	q := newQueue()
	push(&q, "a", &wire.Alive{Name: "a"}, prioAlive)
	for range 3 {
		q.fill(nil, 1000, 3)
	}
	if q.len() != 0 {
		t.Fatalf("after 3 sends with limit 3, len = %d, want 0", q.len())
	}
	push(&q, "a", &wire.Alive{Name: "a"}, prioAlive)
	q.fill(nil, 1000, 5)
	push(&q, "b", &wire.Alive{Name: "b"}, prioAlive)
	// Budget for one message: the one sent fewer times goes first.
	one := MessageSize(&wire.Alive{Name: "b"})
	got, used := q.fill(nil, one, 5)
	if diff := cmp.Diff([]string{"alive:b"}, names(got)); diff != "" || used != one {
		t.Errorf("fill(one) = %v (%d bytes), want [alive:b] (%d)\n%s", names(got), used, one, diff)
	}
}

// TestQueueBoost checks that boosted news is sent mult times the limit, and
// that news replacing it starts unboosted.
func TestQueueBoost(t *testing.T) {
	q := newQueue()
	push(&q, "self", &wire.Alive{Name: "self"}, prioAlive)
	q.boost("self", 3)
	push(&q, "x", &wire.Alive{Name: "x"}, prioAlive)
	sent := map[string]int{}
	for range 20 {
		got, _ := q.fill(nil, 1000, 2)
		for _, n := range names(got) {
			sent[n]++
		}
	}
	if diff := cmp.Diff(map[string]int{"alive:self": 6, "alive:x": 2}, sent); diff != "" {
		t.Errorf("sends with limit 2 (-want +got):\n%s", diff)
	}
	push(&q, "self", &wire.Alive{Name: "self", Incarnation: 1}, prioAlive)
	for range 3 {
		q.fill(nil, 1000, 2)
	}
	if q.len() != 0 {
		t.Errorf("a replacement kept the boost: %d queued after 3 sends with limit 2", q.len())
	}
	q.boost("absent", 3) // nothing queued under the key: no effect, no panic
}

// TestRefutationOutlastsOtherNews checks that a core sends a refutation
// more times than other news, its own plain alive messages included.
func TestRefutationOutlastsOtherNews(t *testing.T) {
	c, err := NewCore(LANConfig(), Identity{Name: "self", Gen: 1, Addr: netip.MustParseAddrPort("10.0.0.1:7946")}, rand.New(rand.NewPCG(1, 2)), time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	c.queue = newQueue() // what the start queued
	limit := c.cfg.retransmitLimit(1)
	count := func() map[string]int {
		sent := map[string]int{}
		for range 10 * limit {
			got, _ := c.queue.fill(nil, 1000, limit)
			for _, n := range names(got) {
				sent[n]++
			}
		}
		return sent
	}
	c.broadcastSelf() // a plain announcement (a start, new metadata)
	if sent := count(); sent["alive:self"] != limit {
		t.Errorf("a plain alive was sent %d times with limit %d, want %d", sent["alive:self"], limit, limit)
	}
	c.broadcastRefutation()
	c.enqueue("other", &wire.Alive{Name: "other", Gen: 1}, prioAlive)
	if sent := count(); sent["alive:self"] != refuteRetransmitMult*limit || sent["alive:other"] != limit {
		t.Errorf("sends %v with limit %d, want the refutation %d times and other news %d", sent, limit, refuteRetransmitMult*limit, limit)
	}
}

func TestQueueRespectsBudget(t *testing.T) {
	q := newQueue()
	for i := range 200 {
		push(&q, string(rune('A'+i%26))+string(rune('a'+i/26)), &wire.Alive{Name: "member-with-a-long-name", Incarnation: uint64(i), Meta: make([]byte, 40)}, prioAlive)
	}
	for _, budget := range []int{100, 500, 1169} {
		got, used := q.fill(nil, budget, 100)
		if used > budget || BodySize(got) != used {
			t.Errorf("budget %d: used %d, body %d", budget, used, BodySize(got))
		}
		if used < budget-MessageSize(got[0]) {
			t.Errorf("budget %d: only %d used with more queued", budget, used)
		}
	}
}

func TestQueueBoundEvictsLeastUrgent(t *testing.T) {
	q := newQueue()
	q.push("", &wire.Data{Payload: []byte("d")}, 20, prioData, 2)
	q.push("a", &wire.Alive{Name: "a"}, 20, prioAlive, 2)
	if !q.push("b", &wire.Alive{Name: "b"}, 20, prioAlive, 2) {
		t.Fatal("alive news refused while data could be evicted")
	}
	if q.push("", &wire.Data{Payload: []byte("e")}, 20, prioData, 2) {
		t.Error("data accepted into a queue full of alive news")
	}
	got, _ := q.fill(nil, 1000, 10)
	if diff := cmp.Diff([]string{"alive:a", "alive:b"}, names(got)); diff != "" {
		t.Errorf("(-want +got):\n%s", diff)
	}
}
