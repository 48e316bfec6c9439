package node

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestKeyringInfoPlaintext: a node without a key said it neither accepts
// nor sends plaintext, while it does nothing else.
func TestKeyringInfoPlaintext(t *testing.T) {
	_, srv := newTestNode(t, nil)
	_, got := call(t, srv, "GET", "/v1/keyring", "")
	want := map[string]any{"keys": []any{}, "encrypted": false, "accept_plaintext": true, "send_plaintext": true}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("GET /v1/keyring on a plaintext node (-want +got):\n%s", diff)
	}
}
