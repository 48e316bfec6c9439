package swim

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"strconv"
)

// Resolver looks up the addresses of a host name. *net.Resolver implements
// it; tests pass a fake to change answers between join attempts.
type Resolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// ErrSeed reports a seed that is not a valid host:port, IP or host name, or
// whose name resolved to no address.
var ErrSeed = errors.New("swim: bad seed")

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
