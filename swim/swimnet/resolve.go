package swimnet

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Resolver looks up the addresses of a host name. *net.Resolver implements
// it; tests pass a fake to change answers between join attempts.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrSeed reports a seed that is not a valid host:port, IP or host name, or
// whose name resolved to no address.
var ErrSeed = errors.New("swimnet: bad seed")

// maxSeedAddrs bounds the addresses taken from one seed name, so that a
// name with many records does not open a stream to each of them.
const maxSeedAddrs = 8

// ResolveSeeds turns seeds into addresses. A seed is an IP address with a
// port ("10.0.0.1:7946", "[fd00::1]:7946"), a host name with a port
// ("mesh.internal:7946"), or either without a port, which then defaults to
// port. Names are looked up with r on every call, never cached, so that a
// join retry finds seeds whose addresses changed. IPv4-mapped IPv6 answers
// are unmapped; duplicates are dropped. It returns the addresses it found
// and the errors of the seeds it could not resolve, joined.
func ResolveSeeds(ctx context.Context, r Resolver, seeds []string, port uint16) ([]netip.AddrPort, error) {
	var (
		addrs []netip.AddrPort
		errs  []error
	)
	add := func(a netip.AddrPort) {
		a = netip.AddrPortFrom(a.Addr().Unmap(), a.Port())
		if !slices.Contains(addrs, a) {
			addrs = append(addrs, a)
		}
	}
	for _, s := range seeds {
		if a, err := netip.ParseAddrPort(s); err == nil {
			add(a)
			continue
		}
		host, p := s, port
		if h, ps, err := net.SplitHostPort(s); err == nil {
			n, err := strconv.ParseUint(ps, 10, 16)
			if err != nil {
				errs = append(errs, fmt.Errorf("%w: %q: port %q", ErrSeed, s, ps))
				continue
			}
			host, p = h, uint16(n)
		}
		if host == "" || p == 0 {
			errs = append(errs, fmt.Errorf("%w: %q: need a host and a port", ErrSeed, s))
			continue
		}
		if ip, err := netip.ParseAddr(host); err == nil {
			add(netip.AddrPortFrom(ip, p))
			continue
		}
		ips, err := r.LookupNetIP(ctx, "ip", host)
		if err != nil {
			errs = append(errs, fmt.Errorf("%w: %q: %w", ErrSeed, s, err))
			continue
		}
		if len(ips) == 0 {
			errs = append(errs, fmt.Errorf("%w: %q: no address", ErrSeed, s))
			continue
		}
		for _, ip := range ips[:min(len(ips), maxSeedAddrs)] {
			add(netip.AddrPortFrom(ip, p))
		}
	}
	return addrs, errors.Join(errs...)
}

// Joining through seeds: the Runner resolves seed names itself, off the
// protocol loop, on every attempt, and keeps re-resolving them afterwards
// for the core's reconnect loop.

// Join joins the cluster through seeds, each an address or a host name with
// or without a port (the default port is this member's). Seeds that all
// resolve to this member's own address bootstrap a new cluster: Join
// returns 0 and a nil error at once, and the seeds are re-resolved and
// re-dialled while the member is alone. Every attempt
// resolves the seeds again, push-pulls with all of them at once and waits for
// the exchanges to end; between attempts it backs off exponentially from
// [swim.Config].JoinRetryMin to JoinRetryMax, with jitter. It returns the number of
// seed addresses that answered in the first attempt where one did (an
// unresponsive seed delays it by up to [swim.Config].StreamTimeout), or an error
// matching ErrJoin after RunnerOptions.JoinAttempts failed attempts or when
// ctx ends.
//
// These attempts are the only join retries: the core makes one attempt per
// call. Until a join succeeds, the core's reconnect loop also push-pulls
// with one seed of the latest attempt every [swim.Config].ReconnectInterval
// while this member is alone, as it does for a member that is isolated.
func (r *Runner) Join(ctx context.Context, seeds ...string) (int, error) {
	if len(seeds) == 0 {
		return 0, fmt.Errorf("%w: no seeds", ErrJoin)
	}
	wait := r.cfg.JoinRetryMin
	for attempt := 1; ; attempt++ {
		r.seedLookups.Add(1)
		addrs, err := ResolveSeeds(ctx, r.opts.Resolver, seeds, r.tr.Addr().Port())
		resolved := len(addrs)
		addrs = r.withoutSelf(addrs)
		if err == nil && resolved > 0 && len(addrs) == 0 {
			// Every seed is this member: it is the first of its cluster
			// (a headless service that lists only this pod, say). It is
			// joined, alone; the reseed loop keeps resolving the names and
			// the core's reconnect loop dials what they come to list, so
			// members that bootstrapped alone at the same moment merge.
			if !r.onLoop(func() {}) {
				return 0, ErrNotRunning
			}
			r.mu.Lock()
			r.seedNames = slices.Clone(seeds)
			r.mu.Unlock()
			return 0, nil
		}
		if len(addrs) > 0 {
			n, seedErrs, joinErr := r.joinOnce(ctx, addrs)
			if joinErr != nil {
				return 0, joinErr
			}
			if n > 0 {
				r.mu.Lock()
				r.seedNames = slices.Clone(seeds)
				r.mu.Unlock()
				return n, nil
			}
			noAnswer := fmt.Errorf("no seed of %v answered", addrs)
			if len(seedErrs) > 0 {
				noAnswer = fmt.Errorf("no seed of %v answered: %w", addrs, seedErrs)
			}
			err = errors.Join(err, noAnswer)
		} else if err == nil {
			err = errors.New("no seed address other than our own")
		}
		if r.opts.OnJoinFailed != nil {
			r.opts.OnJoinFailed(attempt, err)
		}
		if r.opts.JoinAttempts > 0 && attempt >= r.opts.JoinAttempts {
			return 0, fmt.Errorf("%w after %d attempts: %w", ErrJoin, attempt, err)
		}
		// Jitter over the upper half of the wait keeps joiners that started
		// together from retrying together.
		d := wait/2 + rand.N(wait/2+1)
		t := time.NewTimer(d)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return 0, fmt.Errorf("%w: %w (last attempt: %w)", ErrJoin, ctx.Err(), err)
		case <-r.ctx.Done():
			t.Stop()
			return 0, ErrNotRunning
		}
		wait = min(2*wait, r.cfg.JoinRetryMax)
	}
}

func (r *Runner) withoutSelf(addrs []netip.AddrPort) []netip.AddrPort {
	self := r.tr.Addr()
	out := addrs[:0]
	for _, a := range addrs {
		if a != self {
			out = append(out, a)
		}
	}
	return out
}

// maxJoinErrs bounds the exchange errors kept for one join attempt.
const maxJoinErrs = 16

// seedErrors are the errors of the join exchanges of one attempt, one per
// seed address that did not answer, on one line.
type seedErrors []error

func (e seedErrors) Error() string {
	var b strings.Builder
	for i, err := range e {
		if i > 0 {
			b.WriteString("; ")
		}
		b.WriteString(err.Error())
	}
	return b.String()
}

func (e seedErrors) Unwrap() []error { return e }

// joinOnce makes one join attempt and waits for its exchanges to end. It
// returns the number of seeds that answered (0 if none did) and, when none
// did, why the exchanges failed.
func (r *Runner) joinOnce(ctx context.Context, addrs []netip.AddrPort) (int, seedErrors, error) {
	res := make(chan joinResult, 1)
	if !r.onLoop(func() {
		if len(r.joinWaiters) == 0 {
			r.joinOK = 0
			r.joinErrs = nil
		}
		r.core.Join(time.Now(), addrs)
		r.joinWaiters = append(r.joinWaiters, res)
	}) {
		return 0, nil, ErrNotRunning
	}
	select {
	case jr := <-res:
		if jr.joined {
			return max(jr.n, 1), nil, nil
		}
		return 0, seedErrors(jr.errs), nil
	case <-ctx.Done():
		return 0, nil, fmt.Errorf("%w: %w", ErrJoin, ctx.Err())
	case <-r.ctx.Done():
		return 0, nil, ErrNotRunning
	}
}

// reseedLoop re-resolves the seeds of the last successful Join every
// [swim.Config].ReconnectInterval and hands their addresses to the core, so that its
// reconnect loop (which re-dials seeds while this member is alone or
// isolated) reaches seeds whose names now point elsewhere. Lookups run here,
// never on the protocol loop, so a slow resolver cannot stall the protocol.
func (r *Runner) reseedLoop() {
	defer r.wg.Done()
	tick := time.NewTicker(r.cfg.ReconnectInterval)
	defer tick.Stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case <-tick.C:
		}
		r.mu.Lock()
		names := r.seedNames
		r.mu.Unlock()
		if len(names) == 0 {
			continue
		}
		r.seedLookups.Add(1)
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.ReconnectInterval)
		addrs, _ := ResolveSeeds(ctx, r.opts.Resolver, names, r.tr.Addr().Port())
		cancel()
		// A failed lookup keeps the addresses the core has.
		if addrs = r.withoutSelf(addrs); len(addrs) > 0 {
			r.onLoop(func() { r.core.SetSeeds(addrs) })
		}
	}
}
