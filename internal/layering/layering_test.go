package layering

import (
	"bufio"
	"bytes"
	"os/exec"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/meshnode/meshnode"

// forbidden lists, for each layer, the meshnode packages it must never
// depend on (directly or transitively). See DESIGN.md, "Layout and
// dependency direction".
var forbidden = map[string][]string{
	"wire": {"swim", "store", "radix", "node", "internal/simnet"},
	// The swim core never depends on its runner.
	"swim": {"swim/swimnet", "store", "radix", "replica", "node"},
	// swim's runner: sockets, timers and goroutines around the core.
	"swim/swimnet": {"store", "radix", "replica", "node"},
	"store":        {"swim", "radix", "node", "internal/simnet"},
	"radix":        {"swim", "store", "node", "internal/simnet"},
	// The replication core.
	"replica": {"swim", "node"},
	// The engine model (a deterministic core) never depends on its server,
	// on the event stream's sockets (kvevents) or on the mesh.
	"engine": {"engine/server", "kvevents", "wire", "swim", "store", "radix", "replica", "node", "internal/simnet"},
	// The engine emulator: the model behind HTTP and ZMQ sockets.
	"engine/server": {"swim", "store", "radix", "replica", "node", "internal/simnet"},
	// The engine KV-event codec and its ZeroMQ client: of ours, it may
	// import wire only.
	"kvevents": {"swim", "store", "radix", "replica", "node", "internal/simnet"},
	// The KV-event workload of the benchmarks: engines' caches and their
	// events, nothing of the mesh.
	"internal/kvwork": {"swim", "store", "radix", "replica", "node", "internal/simnet"},
}

// testsMay lists, for each layer, what its tests (not its code) may depend
// on beyond the forbidden list: replica's simulation takes membership from
// real swim cores (internal/simnet/swimsim).
var testsMay = map[string][]string{
	"replica": {"swim"},
}

// deps returns the transitive dependencies of pkg, optionally including
// the imports of its tests.
func deps(t *testing.T, pkg string, withTests bool) []string {
	t.Helper()
	args := []string{"list", "-deps"}
	if withTests {
		args = append(args, "-test")
	}
	args = append(args, "-f", "{{.ImportPath}}", pkg)
	out, err := exec.Command("go", args...).Output()
	if err != nil {
		t.Fatalf("go %s: %v", strings.Join(args, " "), err)
	}
	var ps []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		p := sc.Text()
		// "pkg [pkg.test]" forms name the same package compiled for tests.
		if i := strings.IndexByte(p, ' '); i >= 0 {
			p = p[:i]
		}
		ps = append(ps, p)
	}
	return ps
}

func TestLayers(t *testing.T) {
	for layer, bad := range forbidden {
		for _, withTests := range []bool{false, true} {
			for _, d := range deps(t, module+"/"+layer, withTests) {
				for _, b := range bad {
					if withTests && slices.Contains(testsMay[layer], b) {
						continue
					}
					if d == module+"/"+b || strings.HasPrefix(d, module+"/"+b+"/") {
						t.Errorf("%s (tests=%v) depends on %s, which DESIGN.md forbids", layer, withTests, d)
					}
				}
			}
		}
	}
}

// TestOnlyCmdAndBenchImportNode checks every package of the module: none but
// cmd/... and bench/... (and node itself) may depend on node, and the trace
// replay, a tool of the binary like bench is of the tests, whose events
// strategy runs node's KV-event applier; nothing but cmd may import replay.
func TestOnlyCmdAndBenchImportNode(t *testing.T) {
	out, err := exec.Command("go", "list", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		rel := strings.TrimPrefix(strings.TrimPrefix(pkg, module), "/")
		if rel == "node" || strings.HasPrefix(rel, "node/") ||
			strings.HasPrefix(rel, "cmd/") || rel == "bench" || strings.HasPrefix(rel, "bench/") {
			continue
		}
		if rel != "replay" {
			for _, d := range deps(t, pkg, false) {
				if d == module+"/replay" {
					t.Errorf("%s depends on replay; only cmd may", pkg)
				}
			}
		} else {
			continue
		}
		for _, d := range deps(t, pkg, false) {
			if d == module+"/node" || strings.HasPrefix(d, module+"/node/") {
				t.Errorf("%s depends on %s; only cmd and bench may import node", pkg, d)
			}
		}
	}
}
