// Command meshnode is the meshnode daemon (`meshnode agent`), its
// command-line client (members, kv, workers, route, ...) and a local demo.
//
// Exit codes: 0 success, 1 failure (one line on stderr says why), 2 bad
// usage.
package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"
)

const usage = `usage: meshnode <command> [flags] [args]

Daemon:
  agent       run a node (meshnode agent -h lists its flags)
  demo        start a local cluster in this process and show it working
  engine      an emulated inference engine: OpenAI API, prefix cache, KV events

Client (calls the agent's HTTP API; --api-addr or MESHNODE_API_ADDR):
  members     list the members and their state
  status      this node's view: cluster size, majority, readiness, store and index
  join        join the agent to a cluster through seeds: join host:port...
  leave       make the agent leave the cluster gracefully
  kv          get | put | del | list | watch keys of a namespace
  workers     list | get | put | patch | del inference workers
  route       pick a worker for a prompt (cache-aware routing)
  ratelimit   list | get | set | take | del rate limits
  ring        the members that own a key (rendezvous hashing)
  keyring     list | install | use | remove | plaintext: rotate gossip keys

Tools:
  replay      replay a request trace through G gateways and W modeled engines: cache hits, TTFT per strategy
  keygen      print a new random 32-byte gossip key (base64)
  version     print the version, commit, Go version and wire protocol range

Run "meshnode <command> -h" for a command's flags.
`

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agent" {
		sig := make(chan os.Signal, 4)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
		os.Exit(runAgent(os.Args[2:], os.LookupEnv, os.Stdout, os.Stderr, sig))
	}
	if len(os.Args) > 1 && os.Args[1] == "engine" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		os.Exit(runEngine(os.Args[2:], os.Stdout, os.Stderr, sig))
	}
	if len(os.Args) > 1 && os.Args[1] == "demo" {
		sig := make(chan os.Signal, 1)
		signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
		os.Exit(runDemo(os.Args[2:], os.Stdout, os.Stderr, sig))
	}
	os.Exit(run(os.Args[1:], os.LookupEnv, os.Stdin, os.Stdout, os.Stderr))
}

// run dispatches the commands that need no signal handling.
func run(args []string, env lookupEnv, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return 2
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "help", "-h", "--help", "-help":
		fmt.Fprint(stdout, usage)
		return 0
	case "version", "--version", "-v":
		return runVersion(rest, stdout, stderr)
	case "keygen":
		return runKeygen(rest, stdout, stderr)
	case "replay":
		return runReplay(rest, stdout, stderr)
	}
	if h, ok := clientCommands[cmd]; ok {
		return runClient(cmd, h, rest, env, stdin, stdout, stderr)
	}
	fmt.Fprintf(stderr, "meshnode: unknown command %q%s (run meshnode help)\n", cmd, didYouMean(cmd, commandNames()))
	return 2
}

// commandNames lists every command, for suggestions.
func commandNames() []string {
	names := []string{"agent", "demo", "engine", "help", "version", "keygen", "replay"}
	for name := range clientCommands {
		names = append(names, name)
	}
	return names
}

// didYouMean returns `; did you mean "x"?` for the candidate closest to
// s (by edit distance, at most a third of its length, or a prefix), or "".
func didYouMean(s string, candidates []string) string {
	best, bestD := "", 0
	for _, c := range candidates {
		if c == "" {
			continue
		}
		d := editDistance(strings.ToLower(s), c)
		if len(s) >= 2 && strings.HasPrefix(c, strings.ToLower(s)) {
			d = min(d, 1)
		}
		if best == "" || d < bestD || d == bestD && c < best {
			best, bestD = c, d
		}
	}
	if best == "" || bestD > max(1, len(s)/3) {
		return ""
	}
	return fmt.Sprintf("; did you mean %q?", best)
}

// editDistance is the optimal string alignment distance between a and b
// (bytes): insertions, deletions, substitutions and transpositions of
// neighbours each cost one.
func editDistance(a, b string) int {
	d := make([][]int, len(a)+1)
	for i := range d {
		d[i] = make([]int, len(b)+1)
		d[i][0] = i
	}
	for j := range d[0] {
		d[0][j] = j
	}
	for i := 1; i <= len(a); i++ {
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			d[i][j] = min(d[i-1][j]+1, d[i][j-1]+1, d[i-1][j-1]+cost)
			if i > 1 && j > 1 && a[i-1] == b[j-2] && a[i-2] == b[j-1] {
				d[i][j] = min(d[i][j], d[i-2][j-2]+1)
			}
		}
	}
	return d[len(a)][len(b)]
}

// lookupEnv is os.LookupEnv, passed in so tests control the environment.
type lookupEnv func(string) (string, bool)

// newFlagSet returns a flag set that reports errors instead of exiting. A
// bad flag prints one line and a hint, not the whole usage; -h prints the
// usage.
func newFlagSet(name string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("meshnode "+name, flag.ContinueOnError)
	out := &flagOutput{w: stderr, prefix: "meshnode " + name + ": "}
	fs.SetOutput(out)
	fs.Usage = func() {
		// The flag package prints a parse error before calling Usage, and
		// nothing before it for -h.
		if out.wrote {
			fmt.Fprintf(stderr, "run \"meshnode %s -h\" for its flags\n", name)
		} else {
			fmt.Fprintf(stderr, "usage: meshnode %s [flags]%s\n\nflags:\n", name, positionalUsage[name])
			fs.SetOutput(stderr)
			fs.PrintDefaults()
			fs.SetOutput(out)
		}
		out.wrote = false
	}
	return fs
}

// flagOutput is a flag set's output for its error messages: it prefixes
// them with the command and records that one was written.
type flagOutput struct {
	w      io.Writer
	prefix string
	wrote  bool
}

func (o *flagOutput) Write(p []byte) (int, error) {
	if !o.wrote {
		if _, err := io.WriteString(o.w, o.prefix); err != nil {
			return 0, err
		}
	}
	o.wrote = true
	return o.w.Write(p)
}

// positionalUsage is what follows the flags in a command's usage line.
var positionalUsage = map[string]string{
	"kv get": " namespace key", "kv put": " namespace key value|-", "kv del": " namespace key",
	"kv list": " namespace", "kv watch": " namespace",
	"workers get": " id", "workers put": " id", "workers patch": " id", "workers del": " id",
	"ratelimit get": " name", "ratelimit set": " name", "ratelimit take": " name", "ratelimit del": " name",
	"join": " host:port...", "ring": " key", "replay": " TRACE", "keyring use": " id", "keyring remove": " id",
}

// parseInterleaved parses fs from args and returns the positional
// arguments, allowing flags after them (`kv get ns key --json`). Everything
// after "--" is positional.
func parseInterleaved(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		rest := fs.Args()
		if consumed := len(args) - len(rest); consumed > 0 && args[consumed-1] == "--" {
			return append(pos, rest...), nil
		}
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

// usageError prints a usage problem and returns exit code 2. The flag
// package has already printed its message for flag errors.
func usageError(stderr io.Writer, cmd string, err error) int {
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	var ue usageErr
	if errors.As(err, &ue) {
		fmt.Fprintf(stderr, "meshnode %s: %s\n", cmd, ue.msg)
	}
	return 2
}

// usageErr is a wrong number or form of positional arguments.
type usageErr struct{ msg string }

func (e usageErr) Error() string { return e.msg }

func badUsage(format string, a ...any) error { return usageErr{fmt.Sprintf(format, a...)} }

// flagError is an error the flag package has already printed.
type flagError struct{ err error }

func (e flagError) Error() string { return e.err.Error() }
func (e flagError) Unwrap() error { return e.err }

// oneLine joins the lines of a multi-error into one.
func oneLine(err error) string { return strings.ReplaceAll(err.Error(), "\n", "; ") }
