package node

import (
	"errors"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestReapTimeout checks that the setting reaches the membership layer:
// dead members were reaped after about 34 minutes with no setting.
func TestReapTimeout(t *testing.T) {
	for _, tc := range []struct {
		name string
		set  Duration
		want time.Duration
	}{
		{name: "default", want: DefaultReapTimeout},
		{name: "set", set: Duration(90 * time.Second), want: 90 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			n, err := New(Config{Name: "r", BindAddr: "127.0.0.1:0", APIAddr: "off", ReapTimeout: tc.set})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, n.swimConfig().ReapTimeout); diff != "" {
				t.Errorf("swim ReapTimeout (-want +got):\n%s", diff)
			}
		})
	}
	if err := (Config{ReapTimeout: Duration(500 * time.Millisecond)}).Validate(); !errors.Is(err, ErrConfig) {
		t.Errorf("Validate with reap_timeout 500ms: %v, want an error", err)
	}
}
