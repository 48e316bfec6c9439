package main

import (
	"bytes"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
)

func TestEngineUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args   []string
		code   int
		stderr string
		lines  int
	}{
		{[]string{"--blok", "3"}, 2, "meshnode engine: flag provided but not defined: -blok\nrun \"meshnode engine -h\" for its flags\n", 2},
		{[]string{"--blocks", "0"}, 2, "meshnode engine: --blocks 0: want a positive number\n", 1},
		{[]string{"--prefill-tps", "-5"}, 2, "meshnode engine: --prefill-tps -5: want a positive number\n", 1},
		{[]string{"--kv-replay", "tcp://127.0.0.1:5558"}, 2, "meshnode engine: server: a replay endpoint needs an events endpoint\n", 1},
		{[]string{"--model", "a", "--model", "b,a"}, 2, "meshnode engine: server: model name \"a\" is empty or repeated\n", 1},
		{[]string{"extra"}, 2, "meshnode engine: takes flags only\n", 1},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := runEngine(tc.args, &out, &errb, nil)
			if code != tc.code || errb.String() != tc.stderr {
				t.Errorf("exit %d, stderr %q; want %d, %q", code, errb.String(), tc.code, tc.stderr)
			}
		})
	}
	var out, errb bytes.Buffer
	if code := runEngine([]string{"-h"}, &out, &errb, nil); code != 0 {
		t.Errorf("-h: exit %d", code)
	}
	contains(t, "help", errb.String(), "usage: meshnode engine [flags]", "-kv-events", "-prefill-tps", "-block-size")
}

// TestEngineCommand runs `meshnode engine` on a free loopback port, sends
// a completion twice and stops it with a signal.
func TestEngineCommand(t *testing.T) {
	var out syncBuffer
	errOut := &syncBuffer{}
	sig := make(chan os.Signal, 1)
	done := make(chan int, 1)
	go func() {
		done <- runEngine([]string{"--addr", "127.0.0.1:0", "--model", "tiny", "--prefill-tps", "1e6", "--decode-tps", "1e5", "--block-size", "4",
			"--kv-events", "tcp://127.0.0.1:0", "--kv-replay", "tcp://127.0.0.1:0"}, &out, errOut, sig)
	}()
	re := regexp.MustCompile(`serving http://(127\.0\.0\.1:\d+) \(18750 blocks of 4 tokens.*, kv events tcp://127\.0\.0\.1:\d+, replay tcp://127\.0\.0\.1:\d+\n`)
	var addr string
	for deadline := time.Now().Add(20 * time.Second); addr == ""; {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			addr = m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("exited %d: %s", code, errOut.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no ready line: %q %q", out.String(), errOut.String())
		}
		time.Sleep(10 * time.Millisecond) // polling a real process's output
	}
	for i, want := range []int{0, 8} {
		resp, err := http.Post("http://"+addr+"/v1/completions", "application/json", strings.NewReader(`{"model":"tiny","prompt":"0123456789","max_tokens":2}`))
		if err != nil {
			t.Fatal(err)
		}
		var a struct {
			Usage struct {
				PromptTokensDetails struct {
					CachedTokens int `json:"cached_tokens"`
				} `json:"prompt_tokens_details"`
			} `json:"usage"`
		}
		err = json.NewDecoder(resp.Body).Decode(&a)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("request %d: %d %v", i, resp.StatusCode, err)
		}
		if got := a.Usage.PromptTokensDetails.CachedTokens; got != want {
			t.Errorf("request %d: %d cached tokens, want %d", i, got, want)
		}
	}
	sig <- os.Interrupt
	select {
	case code := <-done:
		if code != 0 {
			t.Errorf("exit %d: %s", code, errOut.String())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("the engine did not stop on a signal")
	}
}

// TestReadmeEngineCurlExamples sends the README's curl examples of
// `meshnode engine` (localhost:8000) to an engine's handler: each must
// succeed, so that the README cannot drift from the emulator.
func TestReadmeEngineCurlExamples(t *testing.T) {
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	re := regexp.MustCompile(`^curl -s(?: -N)? '?localhost:8000(/[^' ]*)'?(?: -d '([^']*)')?$`)
	s, err := server.New(server.Config{Models: []string{"llama-8b"}, Engine: engine.Config{PrefillTPS: 1e9, DecodeTPS: 1e9}})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	count := 0
	for line := range strings.SplitSeq(string(b), "\n") {
		if !strings.HasPrefix(line, "curl ") || !strings.Contains(line, "localhost:8000") {
			continue
		}
		m := re.FindStringSubmatch(line)
		if m == nil {
			t.Errorf("README curl example not understood: %s", line)
			continue
		}
		method := "GET"
		if m[2] != "" {
			method = "POST"
		}
		count++
		rec := httptest.NewRecorder()
		s.Handler().ServeHTTP(rec, httptest.NewRequest(method, m[1], strings.NewReader(m[2])))
		if rec.Code != 200 {
			t.Errorf("%s: %d %s", line, rec.Code, rec.Body.String())
		}
	}
	if count == 0 {
		t.Error("README has no curl example of meshnode engine")
	}
}
