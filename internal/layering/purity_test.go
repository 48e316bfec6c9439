package layering

import (
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
)

// pure lists the deterministic cores (DESIGN.md, principle 1) whose
// non-test sources this test reads, relative to the module root.
var pure = []string{"store", "replica"}

// impureImports may not be imported by a core: I/O belongs to runners.
var impureImports = map[string]bool{"net": true, "os": true, "syscall": true, "os/exec": true, "os/signal": true}

// impureTime are the time functions that read the clock or start timers.
var impureTime = map[string]bool{
	"Now": true, "Since": true, "Until": true, "Sleep": true, "After": true,
	"AfterFunc": true, "NewTimer": true, "NewTicker": true, "Tick": true,
}

// TestCoresArePure checks that a core package takes time, randomness and
// I/O as inputs: no net, os or syscall imports, no reading of the clock or
// timers, no global math/rand, no goroutines.
func TestCoresArePure(t *testing.T) {
	for _, pkg := range pure {
		files, err := filepath.Glob(filepath.Join("..", "..", pkg, "*.go"))
		if err != nil {
			t.Fatal(err)
		}
		if len(files) == 0 {
			t.Fatalf("%s: no sources", pkg)
		}
		for _, f := range files {
			if strings.HasSuffix(f, "_test.go") {
				continue
			}
			checkPure(t, pkg, f)
		}
	}
}

func checkPure(t *testing.T, pkg, file string) {
	t.Helper()
	fset := token.NewFileSet()
	af, err := parser.ParseFile(fset, file, nil, parser.SkipObjectResolution)
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]string{} // local name -> import path
	for _, im := range af.Imports {
		path, _ := strconv.Unquote(im.Path.Value)
		if impureImports[path] || strings.HasPrefix(path, "net/") {
			t.Errorf("%s imports %s", fset.Position(im.Pos()), path)
		}
		name := path[strings.LastIndexByte(path, '/')+1:]
		if path == "math/rand/v2" {
			name = "rand"
		}
		if im.Name != nil {
			name = im.Name.Name
		}
		names[name] = path
	}
	ast.Inspect(af, func(n ast.Node) bool {
		switch n := n.(type) {
		case *ast.GoStmt:
			t.Errorf("%s: %s starts a goroutine", fset.Position(n.Pos()), pkg)
		case *ast.SelectorExpr:
			id, ok := n.X.(*ast.Ident)
			if !ok {
				return true
			}
			switch names[id.Name] {
			case "time":
				if impureTime[n.Sel.Name] {
					t.Errorf("%s: %s calls time.%s", fset.Position(n.Pos()), pkg, n.Sel.Name)
				}
			case "math/rand", "math/rand/v2":
				// Types and constructors take a seed; everything else
				// is the global source.
				if !strings.HasPrefix(n.Sel.Name, "New") && n.Sel.Name != "Rand" && n.Sel.Name != "Source" && n.Sel.Name != "PCG" {
					t.Errorf("%s: %s uses the global rand.%s", fset.Position(n.Pos()), pkg, n.Sel.Name)
				}
			}
		}
		return true
	})
}
