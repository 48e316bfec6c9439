package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// readmeSection returns the lines of README.md's section titled title.
func readmeSection(t *testing.T, title string) []string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("..", "..", "README.md"))
	if err != nil {
		t.Fatal(err)
	}
	_, rest, ok := strings.Cut(string(b), "\n## "+title+"\n")
	if !ok {
		t.Fatalf("README.md has no section %q", title)
	}
	if i := strings.Index(rest, "\n## "); i >= 0 {
		rest = rest[:i]
	}
	return strings.Split(rest, "\n")
}

// shellWords splits a README command line as sh would for the simple
// forms the README uses: words, single-quoted strings, a trailing & and
// a # comment.
func shellWords(line string) ([]string, error) {
	var words []string
	var cur strings.Builder
	in, quoted := false, false
	for i := 0; i < len(line); i++ {
		c := line[i]
		switch {
		case quoted:
			if c == '\'' {
				quoted = false
			} else {
				cur.WriteByte(c)
			}
		case c == '\'':
			quoted, in = true, true
		case c == '#' && !in:
			i = len(line)
		case c == ' ' || c == '\t':
			if in {
				words = append(words, cur.String())
				cur.Reset()
				in = false
			}
		default:
			cur.WriteByte(c)
			in = true
		}
	}
	if quoted {
		return nil, errors.New("unterminated quote")
	}
	if in {
		words = append(words, cur.String())
	}
	if n := len(words); n > 0 && words[n-1] == "&" {
		words = words[:n-1]
	}
	return words, nil
}

// checkCommand parses a meshnode command line with the command's own flags
// and checks, without running it, that every flag and argument is valid.
func checkCommand(args []string) error {
	if len(args) == 0 {
		return errors.New("no command")
	}
	noEnv := func(string) (string, bool) { return "", false }
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "agent":
		_, _, err := loadConfig(rest, noEnv, func() (string, error) { return "host", nil }, io.Discard)
		return err
	case "engine":
		_, err := engineConfig(rest, io.Discard)
		return err
	}
	h, ok := clientCommands[cmd]
	if !ok {
		return fmt.Errorf("unknown command %q", cmd)
	}
	sub := ""
	if h.subs != nil {
		if len(rest) == 0 || strings.HasPrefix(rest[0], "-") {
			sub = h.subs[0]
		} else {
			sub, rest = rest[0], rest[1:]
		}
	}
	fs := newFlagSet(cmd, io.Discard)
	var o clientOpts
	o.register(fs, noEnv)
	h.setup(sub, fs)
	_, err := parseInterleaved(fs, rest)
	return err
}

// TestReadmeKVEventsExample parses every meshnode command of the README's
// section on engine KV events with the command's flags, so that the
// laptop example cannot drift from the binary.
func TestReadmeKVEventsExample(t *testing.T) {
	n := 0
	code := false
	for _, line := range readmeSection(t, "Precise routing with engine KV events") {
		if strings.HasPrefix(line, "```") {
			code = !code
			continue
		}
		if !code {
			continue
		}
		words, err := shellWords(strings.TrimSpace(line))
		if err != nil {
			t.Errorf("%s: %v", line, err)
			continue
		}
		for len(words) > 0 && strings.Contains(words[0], "=") && !strings.HasPrefix(words[0], "-") {
			words = words[1:] // an environment assignment
		}
		if len(words) == 0 || words[0] != "./meshnode" {
			continue
		}
		n++
		if err := checkCommand(words[1:]); err != nil {
			t.Errorf("README: %s: %v", line, err)
		}
	}
	if n < 8 {
		t.Errorf("found %d meshnode commands in the section, want the whole example (8 or more)", n)
	}
}

func TestCheckCommandRefusesBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"workers", "put", "w1", "--kv-event", "tcp://127.0.0.1:1"},
		{"route", "--lora"},
		{"agent", "--kv-subscribers", "3"},
		{"engine", "--kv-replay", "tcp://127.0.0.1:5558"},
		{"nosuch"},
	} {
		if err := checkCommand(args); err == nil {
			t.Errorf("%q: accepted", args)
		}
	}
}
