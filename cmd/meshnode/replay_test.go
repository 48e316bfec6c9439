package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const smallTrace = "../../replay/testdata/small.jsonl"

func TestReplayCommand(t *testing.T) {
	svg := filepath.Join(t.TempDir(), "r.svg")
	var out, errb bytes.Buffer
	code := run([]string{"replay", "--gateways", "1,3", "--workers", "3", "--block-tokens", "16", "--cache-tokens", "320",
		"--prefill-tps", "1000", "--json", "--svg", svg, smallTrace}, envOf(nil), strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		Trace struct {
			Requests int `json:"requests"`
		} `json:"trace"`
		Results []struct {
			Strategy string  `json:"strategy"`
			Gateways int     `json:"gateways"`
			HitRatio float64 `json:"hit_ratio"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("output is not JSON: %v\n%s", err, out.String())
	}
	if rep.Trace.Requests != 60 || len(rep.Results) == 0 || rep.Results[len(rep.Results)-1].Gateways != 3 {
		t.Errorf("report: %+v", rep)
	}
	b, err := os.ReadFile(svg)
	if err != nil || !bytes.HasPrefix(b, []byte("<svg")) {
		t.Errorf("SVG: %v %.40q", err, b)
	}

	out.Reset()
	code = run([]string{"replay", "--svg", "", "--gateways", "2", "--workers", "2", "--block-tokens", "16", "--cache-tokens", "320", "--strategies", "random,oracle", smallTrace},
		envOf(nil), strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "G = 2 gateways") || !strings.Contains(out.String(), "oracle") ||
		!strings.Contains(out.String(), "policy of the index strategies: cost rule") {
		t.Errorf("exit %d, table:\n%s", code, out.String())
	}

	out.Reset()
	code = run([]string{"replay", "--svg", "", "--gateways", "1", "--workers", "2", "--block-tokens", "16", "--cache-tokens", "320", "--strategies", "meshnode-recorded",
		"--cost-weight", "0", "--balance-abs", "2", smallTrace}, envOf(nil), strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "thresholds, best match from a match ratio of 0.5; least loaded (requests in flight) when max - min > 2") {
		t.Errorf("exit %d, table:\n%s", code, out.String())
	}
}

func TestReplayErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"replay"}, 2, "meshnode replay: want one trace file, got 0 arguments"},
		{[]string{"replay", "--gateways", "1,x", smallTrace}, 2, `--gateways: "x" is not a positive integer`},
		{[]string{"replay", "--strategies", "best", "--block-tokens", "16", smallTrace}, 1, `unknown strategy "best"`},
		{[]string{"replay", smallTrace}, 1, "line 1: 7 hash_ids for input_length 108: want 1 blocks of 512 tokens"},
		{[]string{"replay", "--live", "--strategies", "oracle", "--block-tokens", "16", smallTrace}, 1, "no strategy --live can run"},
		{[]string{"replay", "no-such-file.jsonl"}, 1, "no-such-file.jsonl"},
	} {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			var out, errb bytes.Buffer
			code := run(tc.args, envOf(nil), strings.NewReader(""), &out, &errb)
			if code != tc.code || !strings.Contains(errb.String(), tc.want) {
				t.Errorf("exit %d (want %d), stderr %q, want %q", code, tc.code, errb.String(), tc.want)
			}
		})
	}
}

// TestReplayLive runs a short trace on two real agents and two emulated
// engines on loopback (real time: the figures vary, the shape does not).
func TestReplayLive(t *testing.T) {
	if testing.Short() {
		t.Skip("starts agents and engines on loopback")
	}
	var trace strings.Builder
	for i := range 12 {
		// Two prefixes of 2 blocks of 16 tokens and one block of its own.
		fmt.Fprintf(&trace, `{"timestamp": %d, "input_length": 48, "output_length": 2, "hash_ids": [%d, %d, %d]}`+"\n", 40*i, i%2*10, i%2*10+1, 100+i)
	}
	path := filepath.Join(t.TempDir(), "t.jsonl")
	if err := os.WriteFile(path, []byte(trace.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"replay", "--live", "--gateways", "2", "--workers", "2", "--block-tokens", "16", "--cache-tokens", "320",
		"--prefill-tps", "1000", "--speedup", "4", "--strategies", "round-robin,meshnode-recorded", "--json", "--svg", filepath.Join(t.TempDir(), "r.svg"), path},
		envOf(nil), strings.NewReader(""), &out, &errb)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var rep struct {
		Results []struct {
			Strategy       string  `json:"strategy"`
			Gateways       int     `json:"gateways"`
			HitRatio       float64 `json:"hit_ratio"`
			TTFTP50Seconds float64 `json:"ttft_p50_seconds"`
		} `json:"results"`
	}
	if err := json.Unmarshal(out.Bytes(), &rep); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if len(rep.Results) != 2 {
		t.Fatalf("results: %+v", rep.Results)
	}
	for _, r := range rep.Results {
		if r.Gateways != 2 || r.TTFTP50Seconds <= 0 || r.HitRatio < 0 || r.HitRatio > 1 {
			t.Errorf("result %+v", r)
		}
	}
}
