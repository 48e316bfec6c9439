package node

import (
	"encoding/json"
	"strings"
	"testing"
)

var validCases = []string{
	``, ` `, `{}`, `[]`, `{"a":1}`, `{"a":1,}`, `[1,]`, `[,1]`, `{"a" 1}`, `{1:2}`, `{"a":1 "b":2}`,
	`"abc"`, `"a\"b\\c\/d\b\f\n\r\t\u00e9\uD83D"`, `"\x"`, `"\u12"`, `"\u12G4"`, "\"a\x01\"", `"unterminated`,
	"\"\xff\xfe\"", `0`, `-0`, `01`, `-`, `1.`, `1.5`, `.5`, `1e5`, `1E+5`, `1e-5`, `1e`, `1e+`, `-1.5e10`,
	`true`, `false`, `null`, `tru`, `truex`, `nul`, ` [ 1 , { "a" : [ true , null ] } ] `, `[1]]`, `[[1]`,
	`{"a":{"b":{}}}`, `{"a":[}`, `[}`, `{]`, "\ufeff{}", `{} {}`, `1 2`, "[\n\t1\r]",
	strings.Repeat("[", 64) + strings.Repeat("]", 64), strings.Repeat("[", 65) + strings.Repeat("]", 65),
	strings.Repeat("[", 10001) + strings.Repeat("]", 10001), strings.Repeat(`{"a":`, 70) + "1" + strings.Repeat("}", 70),
}

func TestValidJSON(t *testing.T) {
	for _, s := range validCases {
		if got, want := validJSON([]byte(s)), json.Valid([]byte(s)); got != want {
			t.Errorf("validJSON(%.40q) = %t, json.Valid %t", s, got, want)
		}
	}
}

// FuzzValidJSON: validJSON answers what json.Valid answers.
func FuzzValidJSON(f *testing.F) {
	for _, s := range validCases {
		f.Add([]byte(s))
	}
	for _, tc := range scanBodies {
		f.Add([]byte(tc.body))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		if got, want := validJSON(b), json.Valid(b); got != want {
			t.Fatalf("validJSON(%q) = %t, json.Valid %t", b, got, want)
		}
	})
}
