// Command meshnode is the meshnode daemon and its command-line client.
package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
)

// version is the semantic version of this build; release builds set it with
// -ldflags "-X main.version=...".
var version = "0.1.0-dev"

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

func run(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, "usage: meshnode <command> [flags]\n\ncommands:\n  version   print the version")
		return 2
	}
	switch args[0] {
	case "version", "--version", "-v":
		fmt.Fprintf(stdout, "meshnode %s (%s)\n", version, runtime.Version())
		return 0
	default:
		fmt.Fprintf(stderr, "meshnode: unknown command %q\n", args[0])
		return 2
	}
}
