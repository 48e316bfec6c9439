package node

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestParsePromptAgreesWithEncodingJSON checks the hand-written parser
// against encoding/json with unknown fields disallowed: the same value for
// valid bodies, an error for invalid ones.
func TestParsePromptAgreesWithEncodingJSON(t *testing.T) {
	tests := []string{
		`{"model":"m","tokens":[1,2,3]}`,
		` { "model" : "m" , "text" : "hello" , "record" : true } `,
		`{"worker":"w1","text":"tab\there \"quoted\" \u00e9 é"}`,
		`{"model":"m","text":null,"tokens":null,"record":false}`,
		`{}`,
		`{"model":"m","tokens":[]}`,
		"{\"text\":\"\xff\xfe invalid utf-8\"}",
		`{"model":"m","extra":1}`,
		`{"model":5}`,
		`{"tokens":[1,"2"]}`,
		`{"tokens":[1,[2]]}`,
		`{"tokens":[-1]}`,
		`{"tokens":[4294967296]}`,
		`{"record":"yes"}`,
		`{"model":"m"} x`,
		`{"model":"m",}`,
		`{"model" "m"}`,
		`{"model":"m"`,
		`{"text":"unterminated}`,
		`[1,2]`,
		`{"model":"a\nb"}`,
		"{\"model\":\"raw\ncontrol\"}",
	}
	for _, in := range tests {
		t.Run(in, func(t *testing.T) {
			var want promptRequest
			dec := json.NewDecoder(strings.NewReader(in))
			dec.DisallowUnknownFields()
			werr := dec.Decode(&want)
			if werr == nil && dec.More() {
				werr = errTrailing
			}
			var got promptRequest
			gerr := parsePrompt([]byte(in), &got, make(tokenList, 0, 2))
			if (werr == nil) != (gerr == nil) {
				t.Fatalf("encoding/json: %v, parsePrompt: %v", werr, gerr)
			}
			if werr == nil {
				if diff := cmp.Diff(want, got); diff != "" {
					t.Fatalf("(-encoding/json +parsePrompt):\n%s", diff)
				}
			}
		})
	}
}

var errTrailing = bytes.ErrTooLarge // any non-nil error: encoding/json saw trailing data

func TestParsePromptStricterThanEncodingJSON(t *testing.T) {
	var req promptRequest
	if err := parsePrompt([]byte(`{"model":"a","model":"b"}`), &req, nil); err == nil || !strings.Contains(err.Error(), "duplicate") {
		t.Fatalf("duplicate field: err %v", err)
	}
	if err := parsePrompt([]byte(``), &req, nil); err == nil || !strings.Contains(err.Error(), "empty") {
		t.Fatalf("empty body: err %v", err)
	}
}
