package node

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

// FuzzParsePrompt feeds arbitrary request bodies to the hand-written prompt
// parser, which reads bytes from API clients. It must never panic, and
// whatever it accepts encoding/json (with unknown fields disallowed) must
// accept too, with the same value. The converse does not hold: the parser
// is stricter (duplicate and case-folded field names are errors).
func FuzzParsePrompt(f *testing.F) {
	for _, s := range []string{
		`{"model":"m","tokens":[1,2,3]}`,
		` { "model" : "m" , "text" : "hello" , "record" : true } `,
		`{"worker":"w1","text":"tab\there \"quoted\" \u00e9 é"}`,
		`{"model":"m","text":null,"tokens":null,"record":false}`,
		`{"tokens":[4294967295,0]}`,
		`{"model":"m"`,
		`[1,2]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var got promptRequest
		if err := parsePrompt(b, &got, make(tokenList, 0, 4)); err != nil {
			return
		}
		var want promptRequest
		dec := json.NewDecoder(strings.NewReader(string(b)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&want); err != nil {
			t.Fatalf("parsePrompt accepted %q, encoding/json: %v", b, err)
		}
		if dec.More() {
			t.Fatalf("parsePrompt accepted %q with trailing data", b)
		}
		if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
			t.Fatalf("%q (-encoding/json +parsePrompt):\n%s", b, diff)
		}
	})
}
