package main

import (
	"encoding/json"
	"fmt"
	"io"
	"runtime"
	"runtime/debug"

	"github.com/meshnode/meshnode/wire"
)

// version is the semantic version of this build; release builds set it with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

// buildInfo is what `meshnode version` reports.
type buildInfo struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	// WireMin and WireMax are the packet versions this build reads; it
	// writes wire.Version.
	WireMin   int `json:"wire_min"`
	WireMax   int `json:"wire_max"`
	WireWrite int `json:"wire_write"`
}

// currentBuild reads the commit from the module's build information (set
// by `go build` in a git checkout; "unknown" under `go run` or without VCS).
func currentBuild() buildInfo {
	b := buildInfo{Version: version, Commit: "unknown", GoVersion: runtime.Version(),
		WireMin: wire.MinVersion, WireMax: wire.MaxVersion, WireWrite: wire.Version}
	if bi, ok := debug.ReadBuildInfo(); ok {
		dirty := false
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				b.Commit = s.Value
				if len(b.Commit) > 12 {
					b.Commit = b.Commit[:12]
				}
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
		if dirty && b.Commit != "unknown" {
			b.Commit += "-dirty"
		}
	}
	return b
}

// String is the one-line form.
func (b buildInfo) String() string {
	return fmt.Sprintf("meshnode %s (commit %s, %s, wire protocol %d..%d)", b.Version, b.Commit, b.GoVersion, b.WireMin, b.WireMax)
}

func runVersion(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("version", stderr)
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseInterleaved(fs, args); err != nil {
		return usageError(stderr, "version", err)
	}
	b := currentBuild()
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		_ = enc.Encode(b)
		return 0
	}
	fmt.Fprintln(stdout, b)
	return 0
}
