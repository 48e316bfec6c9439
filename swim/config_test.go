package swim

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestProfilesValid(t *testing.T) {
	for name, c := range map[string]Config{"lan": LANConfig(), "wan": WANConfig(), "local": LocalConfig()} {
		t.Run(name, func(t *testing.T) {
			if err := c.Validate(); err != nil {
				t.Fatal(err)
			}
		})
	}
}

func TestValidateReportsEveryProblem(t *testing.T) {
	c := LANConfig()
	c.ProbeInterval = 0
	c.GossipNodes = 0
	c.MaxPacketBytes = 100
	err := c.Validate()
	if !errors.Is(err, ErrConfig) {
		t.Fatalf("Validate() = %v, want ErrConfig", err)
	}
	for _, want := range []string{"ProbeInterval", "GossipNodes", "MaxPacketBytes"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %q, missing %s", err, want)
		}
	}
}

func TestSuspicionBoundsAndRetransmit(t *testing.T) {
	c := LANConfig()
	tests := []struct {
		n        int
		lo, hi   time.Duration
		transmit int
	}{
		{n: 3, lo: 4 * time.Second, hi: 24 * time.Second, transmit: 6},
		{n: 100, lo: 8 * time.Second, hi: 48 * time.Second, transmit: 12},
		{n: 1000, lo: 12 * time.Second, hi: 72 * time.Second, transmit: 16},
	}
	for _, tt := range tests {
		lo, hi := c.suspicionBounds(tt.n)
		if lo != tt.lo || hi != tt.hi {
			t.Errorf("suspicionBounds(%d) = %v, %v; want %v, %v", tt.n, lo, hi, tt.lo, tt.hi)
		}
		if got := c.retransmitLimit(tt.n); got != tt.transmit {
			t.Errorf("retransmitLimit(%d) = %d, want %d", tt.n, got, tt.transmit)
		}
	}
}

func TestPushPullIntervalScalesWithSize(t *testing.T) {
	c := LANConfig()
	for n, want := range map[int]time.Duration{10: 30 * time.Second, 32: 30 * time.Second, 100: 90 * time.Second, 1000: 180 * time.Second} {
		if got := c.pushPullInterval(n); got != want {
			t.Errorf("pushPullInterval(%d) = %v, want %v", n, got, want)
		}
	}
}

func TestRedialInterval(t *testing.T) {
	c := LANConfig()
	for n, want := range map[int]time.Duration{1: time.Second, 16: time.Second, 32: 2 * time.Second, 1000: 62500 * time.Millisecond} {
		if got := c.redialInterval(n); got != want {
			t.Errorf("redialInterval(%d) = %v, want %v", n, got, want)
		}
	}
	c.RedialInterval = 0
	if got := c.redialInterval(5); got != c.ReconnectInterval {
		t.Errorf("RedialInterval 0: redialInterval(5) = %v, want ReconnectInterval %v", got, c.ReconnectInterval)
	}
	c.RedialInterval = -time.Second
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "RedialInterval") {
		t.Errorf("negative RedialInterval: Validate() = %v", err)
	}
}
