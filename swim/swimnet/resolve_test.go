package swimnet_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/meshnode/meshnode/swim/swimnet"
)

// mapResolver answers names from a map; a missing name is an error.
type mapResolver map[string][]netip.Addr

func (m mapResolver) LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error) {
	if network != "ip" {
		return nil, fmt.Errorf("network %q, want ip", network)
	}
	a, ok := m[host]
	if !ok {
		return nil, fmt.Errorf("lookup %s: no such host", host)
	}
	return a, nil
}

func TestResolveSeeds(t *testing.T) {
	ip := netip.MustParseAddr
	ap := netip.MustParseAddrPort
	many := make([]netip.Addr, 20)
	for i := range many {
		many[i] = netip.AddrFrom4([4]byte{10, 1, 0, byte(i)})
	}
	r := mapResolver{
		"one.test":    {ip("10.0.0.1")},
		"two.test":    {ip("10.0.0.2"), ip("fd00::2")},
		"mapped.test": {ip("::ffff:10.0.0.3")},
		"empty.test":  {},
		"many.test":   many,
	}
	tests := []struct {
		name    string
		seeds   []string
		want    []netip.AddrPort
		wantErr bool
	}{
		{"ipv4 with port", []string{"10.0.0.9:7000"}, []netip.AddrPort{ap("10.0.0.9:7000")}, false},
		{"ipv6 with port", []string{"[fd00::9]:7000"}, []netip.AddrPort{ap("[fd00::9]:7000")}, false},
		{"ip without port takes the default", []string{"10.0.0.9", "fd00::9"}, []netip.AddrPort{ap("10.0.0.9:7946"), ap("[fd00::9]:7946")}, false},
		{"name with port", []string{"one.test:7000"}, []netip.AddrPort{ap("10.0.0.1:7000")}, false},
		{"name without port", []string{"two.test"}, []netip.AddrPort{ap("10.0.0.2:7946"), ap("[fd00::2]:7946")}, false},
		{"mapped answers are unmapped", []string{"mapped.test:1"}, []netip.AddrPort{ap("10.0.0.3:1")}, false},
		{"duplicates dropped", []string{"one.test:7946", "10.0.0.1:7946", "10.0.0.1"}, []netip.AddrPort{ap("10.0.0.1:7946")}, false},
		{"addresses per name bounded", []string{"many.test:1"}, func() []netip.AddrPort {
			var w []netip.AddrPort
			for _, a := range many[:8] {
				w = append(w, netip.AddrPortFrom(a, 1))
			}
			return w
		}(), false},
		{"unknown name, others kept", []string{"nowhere.test:1", "one.test:1"}, []netip.AddrPort{ap("10.0.0.1:1")}, true},
		{"name with no address", []string{"empty.test:1"}, nil, true},
		{"bad port", []string{"one.test:http", "one.test:70000"}, nil, true},
		{"port zero", []string{"one.test:0"}, nil, true},
		{"empty host", []string{":7946", ""}, nil, true},
		{"none", nil, nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := swimnet.ResolveSeeds(context.Background(), r, tt.seeds, 7946)
			if diff := cmp.Diff(tt.want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
				t.Errorf("addresses (-want +got):\n%s", diff)
			}
			if (err != nil) != tt.wantErr {
				t.Errorf("err = %v, want error %v", err, tt.wantErr)
			}
			if err != nil && !errors.Is(err, swimnet.ErrSeed) {
				t.Errorf("err = %v, want it to match ErrSeed", err)
			}
		})
	}
}

func TestResolveSeedsCallsResolverEachTime(t *testing.T) {
	res := &fakeResolver{answers: [][]netip.Addr{{netip.MustParseAddr("10.0.0.1")}, {netip.MustParseAddr("10.0.0.2")}}}
	var got []netip.AddrPort
	for range 2 {
		a, err := swimnet.ResolveSeeds(context.Background(), res, []string{"seed.test:1"}, 7946)
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, a...)
	}
	want := []netip.AddrPort{netip.MustParseAddrPort("10.0.0.1:1"), netip.MustParseAddrPort("10.0.0.2:1")}
	if diff := cmp.Diff(want, got, cmp.Comparer(func(a, b netip.AddrPort) bool { return a == b })); diff != "" {
		t.Errorf("addresses over two calls (-want +got):\n%s", diff)
	}
}
