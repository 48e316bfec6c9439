package replica_test

import (
	"errors"
	"math/rand/v2"
	"testing"
	"time"

	"github.com/meshnode/meshnode/replica"
	"github.com/meshnode/meshnode/store"
)

// TestExchangeSchedule: exchanges are handed out one at a time, with a
// live peer, every [1/2, 3/2) ExchangeInterval; none while one is in
// flight; and the schedule is a function of the seed.
func TestExchangeSchedule(t *testing.T) {
	run := func(seed uint64, doneAfter time.Duration) []time.Duration {
		st, err := store.New(store.Config{Actor: store.Actor{Name: "a", Gen: 1}})
		if err != nil {
			t.Fatal(err)
		}
		e := replica.New(st, nil, replica.Config{ExchangeInterval: 2 * time.Second, Rand: rand.New(rand.NewPCG(seed, 0))})
		e.SetMembers([]replica.Member{
			{Actor: st.Self(), Live: true},
			{Actor: store.Actor{Name: "b", Gen: 1}, Live: true},
			{Actor: store.Actor{Name: "c", Gen: 1}, Live: false},
		})
		var at []time.Duration
		var doneAt time.Time
		var peer store.Actor
		for ms := 0; ms <= 60_000; ms += 10 {
			now := t0.Add(time.Duration(ms) * time.Millisecond)
			if !doneAt.IsZero() && !now.Before(doneAt) {
				e.ExchangeDone(peer, nil, now)
				doneAt = time.Time{}
			}
			r := e.Tick(now)
			if r.Exchange.Name == "" {
				continue
			}
			if !doneAt.IsZero() {
				t.Fatalf("exchange handed out at %v while one is in flight", now.Sub(t0))
			}
			if r.Exchange.Name != "b" {
				t.Fatalf("exchange with %q, want the live peer b", r.Exchange.Name)
			}
			peer, doneAt = r.Exchange, now.Add(doneAfter)
			at = append(at, now.Sub(t0))
		}
		return at
	}
	at := run(1, 10*time.Millisecond)
	if len(at) < 20 || len(at) > 120 {
		t.Fatalf("%d exchanges in 60 s every 1-3 s", len(at))
	}
	for i := 1; i < len(at); i++ {
		if d := at[i] - at[i-1]; d < time.Second || d > 3*time.Second+20*time.Millisecond {
			t.Errorf("exchange %d came %v after the previous, want [1 s, 3 s)", i, d)
		}
	}
	if again := run(1, 10*time.Millisecond); len(again) != len(at) || again[len(again)-1] != at[len(at)-1] {
		t.Errorf("same seed, different schedule")
	}
	// A slow exchange (5 s) delays the next: never two at once.
	slow := run(1, 5*time.Second)
	for i := 1; i < len(slow); i++ {
		if d := slow[i] - slow[i-1]; d < 5*time.Second {
			t.Errorf("exchange %d came %v after the previous, which lasts 5 s", i, d)
		}
	}
}

// TestBootstrap: after a join the first exchange is handed out at once,
// retried every RetryInterval while it fails, and Synced is reported once
// it succeeds; a node alone is synced at once.
func TestBootstrap(t *testing.T) {
	st, err := store.New(store.Config{Actor: store.Actor{Name: "a", Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	e := replica.New(st, nil, replica.Config{ExchangeInterval: time.Minute, RetryInterval: 100 * time.Millisecond})
	e.Tick(t0) // the first tick schedules the periodic exchange a minute away
	e.Bootstrap()
	if r := e.Tick(t0); !r.Synced || r.Exchange.Name != "" {
		t.Fatalf("alone: %+v, want Synced and no exchange", r)
	}
	if e.Bootstrapping() {
		t.Fatal("still bootstrapping after Synced")
	}

	b := store.Actor{Name: "b", Gen: 1}
	e.SetMembers([]replica.Member{{Actor: st.Self(), Live: true}, {Actor: b, Live: true}})
	e.Bootstrap()
	now := t0.Add(time.Second)
	r := e.Tick(now)
	if r.Exchange != b {
		t.Fatalf("bootstrap tick handed out %+v, want an exchange with b", r.Exchange)
	}
	if r := e.ExchangeDone(b, errors.New("refused"), now); r.Synced {
		t.Fatal("Synced after a failed exchange")
	}
	if r := e.Tick(now.Add(50 * time.Millisecond)); r.Exchange.Name != "" {
		t.Fatal("retried before RetryInterval")
	}
	now = now.Add(100 * time.Millisecond)
	if r := e.Tick(now); r.Exchange != b {
		t.Fatalf("no retry after RetryInterval: %+v", r)
	}
	if r := e.ExchangeDone(b, nil, now); !r.Synced {
		t.Fatal("not Synced after a successful exchange")
	}
	if r := e.Tick(now.Add(time.Second)); r.Exchange.Name != "" || r.Synced {
		t.Fatalf("after sync, the next exchange waits for the period: %+v", r)
	}
}
