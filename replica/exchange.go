package replica

import (
	"errors"
	"time"

	"github.com/meshnode/meshnode/store"
)

// ErrKind reports a message of a kind the engine does not handle.
var ErrKind = errors.New("replica: unknown data kind")

// Anti-entropy scheduling. Every ExchangeInterval, jittered so that nodes
// started together do not exchange in lockstep, the engine hands out one
// exchange with a random live member; after Bootstrap it hands one out on
// every Tick (at most every RetryInterval after a failure) until one
// succeeds. One exchange runs at a time.

// Bootstrap starts the first sync after a successful join: exchanges are
// handed out at once until one succeeds (Ready.Synced reports it).
func (e *Engine) Bootstrap() { e.bootstrap, e.retryAt = true, time.Time{} }

// Bootstrapping reports whether the first exchange after a join is pending.
func (e *Engine) Bootstrapping() bool { return e.bootstrap }

func (e *Engine) tickExchange(now time.Time, r *Ready) {
	if e.exchanging {
		return
	}
	if e.nextExchange.IsZero() && !e.bootstrap {
		e.nextExchange = now.Add(e.jitter())
		return
	}
	due := !now.Before(e.nextExchange)
	if e.bootstrap {
		due = !now.Before(e.retryAt)
	}
	if !due {
		return
	}
	e.nextExchange = now.Add(e.jitter())
	if len(e.peers) == 0 {
		if e.bootstrap {
			// Joined alone (the seeds named only this node): the
			// cluster's first member has nothing to fetch.
			e.bootstrap = false
			r.Synced = true
		}
		return
	}
	r.Exchange = e.peers[e.cfg.Rand.IntN(len(e.peers))].Actor
	e.exchanging = true
}

// jitter returns a period in [1/2, 3/2) ExchangeInterval.
func (e *Engine) jitter() time.Duration {
	p := e.cfg.ExchangeInterval
	return p/2 + time.Duration(e.cfg.Rand.Int64N(int64(p)))
}

// ExchangeDone reports the end of the exchange handed out in
// Ready.Exchange with peer, err nil when it succeeded.
func (e *Engine) ExchangeDone(peer store.Actor, err error, now time.Time) Ready {
	var r Ready
	e.exchanging = false
	if !e.bootstrap {
		return r
	}
	if err == nil {
		e.bootstrap = false
		r.Synced = true
		return r
	}
	e.retryAt = now.Add(e.cfg.RetryInterval)
	return r
}
