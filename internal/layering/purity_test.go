package layering

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// cores lists the deterministic cores (DESIGN.md, principle 1) whose
// non-test sources TestCoresArePure reads, relative to the module root:
// wire, the swim state machine, store, radix, the replication core and the
// engine model.
var cores = []string{"wire", "swim", "store", "radix", "replica", "engine"}

// runners lists the packages under a core's directory that are not part of
// the core: they drive it over sockets, timers and goroutines.
var runners = []string{"swim/swimnet", "engine/server"}

// impureImports may not be imported by a core: I/O belongs to runners. Their
// subpackages (net/http, os/exec, ...) are refused too, except the ones in
// pureImports.
var impureImports = []string{"net", "os", "syscall"}

// pureImports are subpackages of impureImports a core may use. net/netip is
// a value type (an address, a port) that opens no socket and looks up no
// name; the cores use it to name members. (crypto/rand is not refused
// either: wire takes its AES-GCM nonce source as an input and only defaults
// to crypto/rand.Reader; nonces decide nothing a core does.)
var pureImports = map[string]bool{"net/netip": true}

// impureTime are the time functions that read the clock or start timers.
var impureTime = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

// seededRand are the names of math/rand and math/rand/v2 that do not use
// the global source: types, and constructors (New...) that take a seed or a
// source.
var seededRand = map[string]bool{
	"Rand": true, "Source": true, "Source64": true, "PCG": true, "ChaCha8": true, "Zipf": true,
}

// TestCoresArePure checks that a core package takes time, randomness and
// I/O as inputs: no net, os or syscall imports, no reading of the clock or
// timers, no global math/rand, no goroutines, in every non-test source.
func TestCoresArePure(t *testing.T) {
	for _, pkg := range cores {
		files, err := filepath.Glob(filepath.Join("..", "..", pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			n++
			for _, msg := range impurities(t, f) {
				t.Errorf("%s: %s", pkg, msg)
			}
		}
		if n == 0 {
			t.Errorf("%s: no sources", pkg)
		}
	}
}

// pureFiles lists packages that are not cores as a whole (they hold
// sockets too) but whose named files must follow the purity rules: the
// kvevents codec is pure, its ZeroMQ client (zmq.go) is not.
var pureFiles = map[string][]string{
	"kvevents": {"event.go", "decode.go", "encode.go", "seq.go"},
}

// TestPureFiles checks the files of pureFiles as TestCoresArePure checks
// whole cores.
func TestPureFiles(t *testing.T) {
	for pkg, files := range pureFiles {
		for _, f := range files {
			for _, msg := range impurities(t, filepath.Join("..", "..", pkg, f)) {
				t.Errorf("%s: %s", pkg, msg)
			}
		}
	}
}

// TestCoresListed checks that every package under a core's directory is
// either checked as a core or named as a runner, so that a new subpackage
// cannot escape the purity rules unnoticed.
func TestCoresListed(t *testing.T) {
	for _, core := range cores {
		out, err := exec.Command("go", "list", module+"/"+core+"/...").Output()
		if err != nil {
			t.Fatalf("go list %s/...: %v", core, err)
		}
		for _, p := range strings.Fields(string(out)) {
			rel := strings.TrimPrefix(p, module+"/")
			if !slices.Contains(cores, rel) && !slices.Contains(runners, rel) {
				t.Errorf("%s is under core %s but is neither a core nor a runner: add it to cores (it must be pure) or runners", rel, core)
			}
		}
	}
}

// simulators may depend on internal/simnet in their non-test build: the
// trace replay (`meshnode replay`) is a simulation, and simnet is its event
// loop and network model, the one the tests use, and its drivers of the
// product's code (simnet/swimsim, simnet/replsim) run its gateways' mesh.
var simulators = map[string]bool{"replay": true, "cmd/meshnode": true}

// TestProductionImportsNoTestMachinery checks that no package outside
// internal/ depends, in its non-test build, on a package of internal/: that
// directory holds shared test machinery only (simnet, history, testcert,
// layering), which the daemon and the library must not ship. The
// simulators may use internal/simnet and its packages (and nothing else
// of internal/).
func TestProductionImportsNoTestMachinery(t *testing.T) {
	out, err := exec.Command("go", "list", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	internal := module + "/internal/"
	checked := 0
	for _, pkg := range strings.Fields(string(out)) {
		if strings.HasPrefix(pkg, internal) {
			continue
		}
		checked++
		rel := strings.TrimPrefix(pkg, module+"/")
		for _, d := range deps(t, pkg, false) {
			if simulators[rel] && (d == internal+"simnet" || strings.HasPrefix(d, internal+"simnet/")) {
				continue
			}
			if strings.HasPrefix(d, internal) {
				t.Errorf("%s depends on test machinery %s in its non-test build", pkg, d)
			}
		}
	}
	if checked == 0 {
		t.Error("no production package found")
	}
}

// impurities returns what in file breaks the purity rules, one message per
// finding, with its position.
func impurities(t *testing.T, file string) []string {
	t.Helper()
	fset := token.NewFileSet()
	af, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	var bad []string
	report := func(pos token.Pos, format string, args ...any) {
		bad = append(bad, fset.Position(pos).String()+": "+fmt.Sprintf(format, args...))
	}
	names := map[string]string{} // local name -> import path
	for _, im := range af.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		for _, p := range impureImports {
			if (path == p || strings.HasPrefix(path, p+"/")) && !pureImports[path] {
				report(im.Pos(), "imports %s", path)
			}
		}
		name := path[strings.LastIndexByte(path, '/')+1:]
		if path == "math/rand/v2" {
			name = "rand"
		}
		if im.Name != nil {
			name = im.Name.Name
		}
		if name == "." && (path == "time" || path == "math/rand" || path == "math/rand/v2") {
			report(im.Pos(), "dot-imports %s, which hides its calls from this test", path)
		}
		names[name] = path
	}
	ast.Inspect(af, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			report(n.Pos(), "starts a goroutine")
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch names[id.Name] {
			case "time":
				if impureTime[n.Sel.Name] {
					report(n.Pos(), "uses time.%s", n.Sel.Name)
				}
			case "math/rand", "math/rand/v2":
				if !strings.HasPrefix(n.Sel.Name, "New") && !seededRand[n.Sel.Name] {
					report(n.Pos(), "uses the global rand.%s", n.Sel.Name)
				}
			}
		}
		return true
	})
	return bad
}
