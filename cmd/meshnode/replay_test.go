package main

import (
	"bytes"
	"encoding/json"
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
	code = run([]string{"replay", "--gateways", "2", "--workers", "2", "--block-tokens", "16", "--cache-tokens", "320", "--strategies", "random,oracle", smallTrace},
		envOf(nil), strings.NewReader(""), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "G = 2 gateways") || !strings.Contains(out.String(), "oracle") {
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
		{[]string{"replay", "--live", smallTrace}, 1, "--live is not implemented yet"},
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
