package main

import (
	"bytes"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestUsageErrors: a bad flag printed the whole usage (16-26 lines), and
// `kv -h` and unknown subcommands said "want a subcommand".
func TestUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args           []string
		code           int
		stdout, stderr []string // substrings
		stderrLines    int      // when not 0, the exact number of lines
	}{
		{args: []string{"kv", "-h"}, code: 0, stdout: []string{"usage: meshnode kv <subcommand>", "get, put, del, list, watch", `"meshnode kv <subcommand> -h"`}},
		{args: []string{"workers", "--help"}, code: 0, stdout: []string{"list, get, put, patch, del"}},
		{args: []string{"kv"}, code: 2, stderr: []string{"want a subcommand: get, put, del, list, watch"}, stderrLines: 1},
		{args: []string{"kv", "gte", "ns", "k"}, code: 2, stderr: []string{`unknown subcommand "gte"; did you mean "get"?`}, stderrLines: 1},
		{args: []string{"workers", "pach", "w1"}, code: 2, stderr: []string{`did you mean "patch"?`}, stderrLines: 1},
		{args: []string{"membrs"}, code: 2, stderr: []string{`unknown command "membrs"; did you mean "members"?`}, stderrLines: 1},
		{args: []string{"frobnicate"}, code: 2, stderr: []string{`unknown command "frobnicate" (run meshnode help)`}, stderrLines: 1},
		{args: []string{"kv", "get", "--bogus", "ns", "k"}, code: 2, stderr: []string{"meshnode kv get: flag provided but not defined: -bogus", `run "meshnode kv get -h" for its flags`}, stderrLines: 2},
		{args: []string{"members", "--timeout", "soon"}, code: 2, stderr: []string{"meshnode members: invalid value", `run "meshnode members -h"`}, stderrLines: 2},
		{args: []string{"kv", "get", "-h"}, code: 0, stderr: []string{"usage: meshnode kv get [flags] namespace key", "-api-addr"}},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, envOf(nil), strings.NewReader(""), &out, &errb)
			if code != tc.code {
				t.Errorf("exit %d, want %d (stderr %q)", code, tc.code, errb.String())
			}
			contains(t, "stdout", out.String(), tc.stdout...)
			contains(t, "stderr", errb.String(), tc.stderr...)
			if n := strings.Count(errb.String(), "\n"); tc.stderrLines != 0 && n != tc.stderrLines {
				t.Errorf("stderr has %d lines, want %d:\n%s", n, tc.stderrLines, errb.String())
			}
		})
	}
}

func TestAgentBadFlagIsOneLineAndAHint(t *testing.T) {
	var out, errb bytes.Buffer
	code := runAgent([]string{"--heap-flor", "3"}, envOf(nil), &out, &errb, nil)
	want := "meshnode agent: flag provided but not defined: -heap-flor\nrun \"meshnode agent -h\" for its flags\n"
	if diff := cmp.Diff(want, errb.String()); code != 2 || diff != "" {
		t.Errorf("exit %d, stderr (-want +got):\n%s", code, diff)
	}
}

func TestWorkersPatch(t *testing.T) {
	var body string
	f := &fakeAPI{answers: map[string]func(http.ResponseWriter, *http.Request){
		"PATCH /v1/workers/w1": func(w http.ResponseWriter, r *http.Request) {
			b, _ := io.ReadAll(r.Body)
			body = string(b)
			_, _ = w.Write([]byte(`{"id":"w1","url":"http://w:1","model":"m","health":"draining","load":4}`))
		},
	}}
	out, errOut, code := runAgainst(t, f, nil, "workers", "patch", "w1", "--load", "4", "--health", "draining")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	if diff := cmp.Diff(`{"health":"draining","load":4}`, body); diff != "" {
		t.Errorf("PATCH body (-want +got):\n%s", diff)
	}
	contains(t, "patch output", out, "draining")
	if _, errOut, code := runAgainst(t, f, nil, "workers", "patch", "w1"); code != 2 || !strings.Contains(errOut, "want --load or --health") {
		t.Errorf("patch without flags: exit %d, %q", code, errOut)
	}
}

// TestKeyringListPlaintext: on a plaintext node keyring list said "accept
// plaintext: no, send plaintext: no".
func TestKeyringListPlaintext(t *testing.T) {
	f := &fakeAPI{answers: map[string]func(http.ResponseWriter, *http.Request){
		"GET /v1/keyring": answer(200, `{"keys":[],"encrypted":false,"accept_plaintext":true,"send_plaintext":true}`),
	}}
	out, errOut, code := runAgainst(t, f, nil, "keyring", "list")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := "no gossip key installed: gossip is plaintext\naccept plaintext: yes, send plaintext: yes\n"
	if diff := cmp.Diff(want, out); diff != "" {
		t.Errorf("keyring list (-want +got):\n%s", diff)
	}
}
