package replay

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"
)

// traceEnv names a trace file for BenchmarkReplay/trace; without it the
// benchmark looks for the given trace next to the repository
// (../shared/traces/synthetic_trace.jsonl from the repository's root).
const traceEnv = "MESHNODE_REPLAY_TRACE"

// BenchmarkReplay measures the simulation's speed in requests replayed
// per second of wall time, over every strategy and G = 1, 4, 16 and 64,
// as `meshnode replay` runs it (issue 13: at least 1,000 requests/s), with
// as many runs at once as GOMAXPROCS.
// synthetic: a generated trace of 4,000 requests, always there; trace:
// the given Mooncake trace, when present.
func BenchmarkReplay(b *testing.B) {
	opt := Options{Gateways: []int{1, 4, 16, 64}, Parallel: runtime.GOMAXPROCS(0)}
	b.Run("synthetic", func(b *testing.B) {
		reqs := synthTrace(1, 4000, 200, 20, 10, 512, 250*time.Millisecond)
		benchReplay(b, reqs, cliConfig, opt)
	})
	b.Run("trace", func(b *testing.B) {
		path := os.Getenv(traceEnv)
		if path == "" {
			path = filepath.Join("..", "..", "shared", "traces", "synthetic_trace.jsonl")
		}
		f, err := os.Open(path)
		if err != nil {
			b.Skipf("no trace to replay (set %s): %v", traceEnv, err)
		}
		reqs, err := ParseTrace(f, DefaultLimits())
		f.Close()
		if err != nil {
			b.Fatal(err)
		}
		benchReplay(b, reqs, cliConfig, opt)
	})
}

// cliConfig is meshnode replay's default: loads as a proxy sees them.
var cliConfig = Config{LoadInterval: 50 * time.Millisecond, LoadOwnRoutes: true}

func benchReplay(b *testing.B, reqs []Request, cfg Config, opt Options) {
	b.ReportAllocs()
	var runs int
	for b.Loop() {
		rep, err := Run(reqs, cfg, opt)
		if err != nil {
			b.Fatal(err)
		}
		runs += len(rep.Results)
	}
	b.ReportMetric(float64(runs*len(reqs))/b.Elapsed().Seconds(), "requests/s")
}
