package kvevents

import (
	"strings"
	"testing"
)

// TestErrorText: errors name the package once and say where they were
// found.
func TestErrorText(t *testing.T) {
	var b Batch
	err := DecodeBatch(&b, unhex(t, `92 00 92 91 b0 416c6c426c6f636b73436c6561726564 91 a1`), Limits{})
	want := "kvevents: decode batch: event 1: event tag: string of 1 bytes in 0: kvevents: malformed batch"
	if err == nil || err.Error() != want {
		t.Errorf("error %q, want %q", err, want)
	}
	if _, err := DecodeSeq(nil); err == nil || strings.Count(err.Error(), "kvevents:") != 2 || !strings.HasPrefix(err.Error(), "kvevents: ") {
		t.Errorf("DecodeSeq error %q", err)
	}
}
