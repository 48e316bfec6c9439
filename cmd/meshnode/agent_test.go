package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/node"
)

// waitFor bounds every wait of the binary test: generous, because it must
// pass under -race on a busy two-core machine.
const waitFor = 60 * time.Second

// The binary is built once per test run, into binDir, which TestMain
// removes.
var (
	binDir   string
	binOnce  sync.Once
	binPath  string
	binError error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// buildBinary builds meshnode (once) and returns its path.
func buildBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = filepath.Join(runtime.GOROOT(), "bin", "go")
		}
		if binDir, binError = os.MkdirTemp("", "meshnode-test-"); binError != nil {
			return
		}
		binPath = filepath.Join(binDir, "meshnode")
		// No VCS stamp: the test must not depend on git being usable here
		// (a checkout owned by another user makes git refuse).
		out, err := exec.Command(goTool, "build", "-buildvcs=false", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			binError = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binError != nil {
		t.Fatal(binError)
	}
	return binPath
}

// syncBuffer is a bytes.Buffer safe for a writer goroutine and readers.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// agentProc is a running `meshnode agent`.
type agentProc struct {
	cmd       *exec.Cmd
	stderr    *syncBuffer
	gossip    string
	api       string
	encrypted bool
	proxy     string // host:port of the routing proxy, if any
	done      chan error
}

var readyRE = regexp.MustCompile(`^meshnode agent ready node=(\S+) generation=\d+ gossip=(\S+) api=(\S+) version=\S+ encrypted=(true|false) tls=(true|false)( proxy=\S+)?$`)

// startAgent starts an agent and waits for its ready line.
func startAgent(t *testing.T, bin string, env []string, args ...string) *agentProc {
	t.Helper()
	cmd := exec.Command(bin, append([]string{"agent"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	a := &agentProc{cmd: cmd, stderr: &syncBuffer{}, done: make(chan error, 1)}
	cmd.Stderr = a.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-a.done
	})
	lines := make(chan string, 16)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
		a.done <- cmd.Wait()
	}()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case l, ok := <-lines:
		m := readyRE.FindStringSubmatch(l)
		if !ok || m == nil {
			t.Fatalf("agent's first line %q is not the ready line; stderr:\n%s", l, a.stderr.String())
		}
		a.gossip, a.api, a.encrypted = m[2], m[3], m[4] == "true"
		a.proxy = strings.TrimPrefix(m[6], " proxy=")
	case <-timer.C:
		t.Fatalf("no ready line within %v; stderr:\n%s", waitFor, a.stderr.String())
	}
	go func() {
		for range lines { // nothing else is printed on stdout, but drain it
		}
	}()
	return a
}

// wait waits for the agent to exit and returns its exit code.
func (a *agentProc) wait(t *testing.T) int {
	t.Helper()
	timer := time.NewTimer(waitFor)
	defer timer.Stop()
	select {
	case err := <-a.done:
		a.done <- err // for Cleanup
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatalf("agent: %v", err)
		}
		return 0
	case <-timer.C:
		t.Fatalf("agent did not exit within %v; stderr:\n%s", waitFor, a.stderr.String())
	}
	return -1
}

// eventually polls cond until it returns nil or waitFor passes.
func eventually(t *testing.T, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v: %v", what, waitFor, err)
		}
		<-tick.C
	}
}

// cli runs a client command against api.
type cli struct {
	t   *testing.T
	bin string
	api string
}

func (c cli) run(stdin string, args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	cmd := exec.Command(c.bin, args...)
	cmd.Env = append(os.Environ(), "MESHNODE_API_ADDR="+c.api)
	cmd.Stdin = strings.NewReader(stdin)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		c.t.Fatalf("meshnode %v: %v", args, err)
	}
	return o.String(), e.String(), code
}

// ok runs a command that must succeed and returns its output.
func (c cli) ok(args ...string) string {
	c.t.Helper()
	out, errOut, code := c.run("", args...)
	if code != 0 {
		c.t.Fatalf("meshnode %s: exit %d: %s", strings.Join(args, " "), code, errOut)
	}
	return out
}

// fails runs a command that must fail with code and one line on stderr
// containing want.
func (c cli) fails(code int, want string, args ...string) {
	c.t.Helper()
	_, errOut, got := c.run("", args...)
	if got != code {
		c.t.Errorf("meshnode %s: exit %d, want %d; stderr: %s", strings.Join(args, " "), got, code, errOut)
	}
	if !strings.Contains(errOut, want) || strings.Count(strings.TrimSpace(errOut), "\n") != 0 {
		c.t.Errorf("meshnode %s: stderr %q, want one line containing %q", strings.Join(args, " "), errOut, want)
	}
}

func contains(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: output lacks %q:\n%s", what, w, got)
		}
	}
}

// TestAgentBinary builds the binary, runs two agents, drives every client
// command against them, and stops them with SIGTERM: each leaves
// gracefully and exits 0.
func TestAgentBinary(t *testing.T) {
	bin := buildBinary(t)
	dir := t.TempDir()
	cfgFile := filepath.Join(dir, "a.json")
	if err := os.WriteFile(cfgFile, []byte(`{"log_level": "info", "profile": "local"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	common := []string{"--bind", "127.0.0.1:0", "--api-addr", "127.0.0.1:0", "--leave-timeout", "3s", "--log-format", "json"}
	// Both agents encrypt gossip with the same key, given in the two ways.
	key := "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=" // 32 bytes, base64
	keyFile := filepath.Join(dir, "gossip.key")
	if err := os.WriteFile(keyFile, []byte(key+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	a := startAgent(t, bin, []string{"MESHNODE_ENCRYPT_KEY=" + key},
		append([]string{"--node", "alpha", "--config", cfgFile, "--data-dir", filepath.Join(dir, "alpha"), "--label", "test"}, common...)...)
	b := startAgent(t, bin, []string{"MESHNODE_PROFILE=local", "MESHNODE_LABEL=test"},
		append([]string{"--node", "beta", "--encrypt-key-file", keyFile}, common...)...)
	for _, p := range []*agentProc{a, b} {
		if !p.encrypted {
			t.Errorf("agent at %s: ready line says gossip is not encrypted", p.api)
		}
	}
	ca, cb := cli{t, bin, a.api}, cli{t, bin, b.api}

	t.Run("join and members", func(t *testing.T) {
		contains(t, "join", cb.ok("join", a.gossip), "joining through "+a.gossip)
		eventually(t, "both agents see both alive", func() error {
			for _, c := range []cli{ca, cb} {
				var ms []node.MemberInfo
				if err := json.Unmarshal([]byte(c.ok("members", "--json")), &ms); err != nil {
					return err
				}
				alive := 0
				for _, m := range ms {
					if m.State == "alive" {
						alive++
					}
				}
				if alive != 2 {
					return fmt.Errorf("%s sees %d alive: %v", c.api, alive, ms)
				}
			}
			return nil
		})
		contains(t, "members", ca.ok("members"), "NAME", "ADDRESS", "STATE", "alpha", "beta", b.gossip, "alive")
	})
	t.Run("status", func(t *testing.T) {
		contains(t, "status", ca.ok("status"), "node", "alpha (generation", "address", a.gossip, "version", version, "members", "majority")
		var st struct {
			Name        string `json:"name"`
			ClusterSize int    `json:"cluster_size"`
		}
		if err := json.Unmarshal([]byte(ca.ok("status", "--json")), &st); err != nil {
			t.Fatal(err)
		}
		if st.Name != "alpha" || st.ClusterSize != 2 {
			t.Errorf("status --json: name %q cluster size %d, want alpha 2", st.Name, st.ClusterSize)
		}
	})
	t.Run("kv", func(t *testing.T) {
		contains(t, "put", ca.ok("kv", "put", "app", "greeting", "hello mesh"), "put app/greeting")
		contains(t, "get on the writer", ca.ok("kv", "get", "app", "greeting"), "hello mesh")
		eventually(t, "the write reaches beta", func() error {
			if out, _, code := cb.run("", "kv", "get", "app", "greeting"); code != 0 || !strings.Contains(out, "hello mesh") {
				return fmt.Errorf("exit %d: %q", code, out)
			}
			return nil
		})
		if _, errOut, code := cb.run("from stdin", "kv", "put", "app", "path/with/slashes", "-"); code != 0 {
			t.Fatalf("put from stdin: exit %d: %s", code, errOut)
		}
		contains(t, "get key with slashes", cb.ok("kv", "get", "app", "path/with/slashes", "--json"), `"key": "path/with/slashes"`, `"value": "from stdin"`)
		contains(t, "list", cb.ok("kv", "list", "app"), "KEY", "VALUE", "greeting", "hello mesh", "path/with/slashes")
		contains(t, "list --prefix", cb.ok("kv", "list", "app", "--prefix", "path/"), "path/with/slashes")
		contains(t, "del", cb.ok("kv", "del", "app", "path/with/slashes"), "deleted app/path/with/slashes")
		ca.fails(1, `no key "missing"`, "kv", "get", "app", "missing")
		ca.fails(2, "want namespace key", "kv", "get", "app")
	})
	t.Run("kv watch", func(t *testing.T) {
		cmd := exec.Command(bin, "kv", "watch", "events", "--count", "2")
		cmd.Env = append(os.Environ(), "MESHNODE_API_ADDR="+a.api)
		var out syncBuffer
		errOut := &syncBuffer{}
		cmd.Stdout, cmd.Stderr = &out, errOut
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the watch is subscribed", func() error {
			if !strings.Contains(errOut.String(), "watching namespace") {
				return errors.New("not yet")
			}
			return nil
		})
		ca.ok("kv", "put", "events", "e1", "first")
		ca.ok("kv", "del", "events", "e1")
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("watch: %v: %s", err, errOut.String())
			}
		case <-time.After(waitFor):
			_ = cmd.Process.Kill()
			t.Fatalf("watch did not end after two changes; output %q", out.String())
		}
		contains(t, "watch", out.String(), `put e1 "first"`, "del e1")
	})
	t.Run("strict input and watch indexes", func(t *testing.T) { checkAgentInputAndIndexes(t, ca) })
	t.Run("workers and route", func(t *testing.T) {
		contains(t, "workers put", ca.ok("workers", "put", "w1", "--url", "http://10.1.0.1:8000", "--model", "m1", "--label", "zone=a"),
			"w1", "http://10.1.0.1:8000", "zone=a")
		ca.ok("workers", "put", "w2", "--url", "http://10.1.0.2:8000", "--model", "m1", "--load", "1")
		contains(t, "workers list", ca.ok("workers"), "ID", "MODEL", "w1", "w2", "m1", "healthy")
		contains(t, "workers list --model", ca.ok("workers", "list", "--model", "none"), "ID")
		contains(t, "workers get", ca.ok("workers", "get", "w2"), "load", "1")
		prompt := strings.Repeat("a shared system prompt that spans several pages of text. ", 4)
		first := ca.ok("route", "--model", "m1", "--text", prompt, "--record")
		contains(t, "first route", first, "worker", "w1", "least-loaded", "recorded")
		contains(t, "second route", ca.ok("route", "--model", "m1", "--text", prompt), "w1", "cache-hit", "1.00")
		ca.fails(1, "no healthy worker", "route", "--model", "m2", "--text", prompt)
		contains(t, "workers del", ca.ok("workers", "del", "w2"), "removed worker w2")
		// A worker whose engine streams KV events (none listens there: the
		// subscriber retries in the background).
		contains(t, "workers put --kv-events", ca.ok("workers", "put", "w3", "--url", "http://10.1.0.3:8000", "--model", "m3",
			"--kv-events", "tcp://127.0.0.1:1", "--kv-replay", "tcp://127.0.0.1:2", "--kv-topic", "kv"),
			"kv events", "tcp://127.0.0.1:1 replay tcp://127.0.0.1:2 topic kv")
		contains(t, "status lists the stream", ca.ok("status"), "KV EVENTS WORKER", "w3", "tcp://127.0.0.1:1")
		ca.fails(2, "go with --kv-events", "workers", "put", "w4", "--url", "http://10.1.0.4:8000", "--model", "m3", "--kv-topic", "kv")
		ca.fails(1, "a wildcard is what the engine binds", "workers", "put", "w4", "--url", "http://10.1.0.4:8000", "--model", "m3", "--kv-events", "tcp://*:5557")
		ca.ok("workers", "del", "w3")
	})
	t.Run("ratelimit", func(t *testing.T) {
		// An hour's window: the takes below must fall in the same window.
		contains(t, "set", ca.ok("ratelimit", "set", "api", "--limit", "2", "--window", "1h"), "limit api: 2 per 1h0m0s")
		contains(t, "take", ca.ok("ratelimit", "take", "api"), "allowed, 1 remaining")
		out, _, code := ca.run("", "ratelimit", "take", "api", "--n", "2")
		if code != 3 || !strings.Contains(out, "denied") {
			t.Errorf("take over the limit: exit %d, output %q; want 3 and denied", code, out)
		}
		contains(t, "list", ca.ok("ratelimit", "list"), "NAME", "api", "2", "1h0m0s")
		contains(t, "get", ca.ok("ratelimit", "get", "api"), "used", "1 (cluster-wide")
		contains(t, "del", ca.ok("ratelimit", "del", "api"), "deleted limit api")
		ca.fails(1, "no limit", "ratelimit", "take", "api")
	})
	t.Run("ring", func(t *testing.T) {
		out := ca.ok("ring", "user-42", "--n", "2")
		contains(t, "ring", out, "RANK", "OWNER", "alpha", "beta")
	})
	t.Run("key rotation", func(t *testing.T) {
		newKey := strings.TrimSpace(ca.ok("keygen"))
		if len(newKey) != 44 {
			t.Fatalf("keygen printed %q, want 44 base64 characters", newKey)
		}
		// The rotation uses a fixed key: a random one would share the
		// configured key's derived ID (the first byte of its SHA-256) once
		// in 256 runs, and the install would rightly refuse it.
		newKey = "ZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXp7fH1+f4CBgoM="
		newKeyFile := filepath.Join(dir, "new.key")
		if err := os.WriteFile(newKeyFile, []byte(newKey+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		var before node.KeyringInfo
		if err := json.Unmarshal([]byte(ca.ok("keyring", "list", "--json")), &before); err != nil {
			t.Fatal(err)
		}
		if len(before.Keys) != 1 || !before.Keys[0].Primary {
			t.Fatalf("keyring before the rotation: %+v, want the configured key alone", before)
		}
		oldID := fmt.Sprint(before.Keys[0].ID)
		contains(t, "keyring list", ca.ok("keyring", "list"), "ID", "PRIMARY", oldID, "yes", "accept plaintext: no, send plaintext: no")
		// Each step on every member before the next: install, use, remove.
		var id string
		for i, c := range []cli{ca, cb} {
			out := ""
			if i == 0 {
				out = c.ok("keyring", "install", "--key-file", newKeyFile)
			} else {
				var errOut string
				var code int
				out, errOut, code = c.run(newKey+"\n", "keyring", "install", "-")
				if code != 0 {
					t.Fatalf("install from stdin: exit %d: %s", code, errOut)
				}
			}
			m := regexp.MustCompile(`installed key (\d+)`).FindStringSubmatch(out)
			if m == nil || (id != "" && m[1] != id) {
				t.Fatalf("install on %s printed %q; want the same key id on every member (%q)", c.api, out, id)
			}
			id = m[1]
		}
		for _, c := range []cli{ca, cb} {
			c.ok("keyring", "use", id)
		}
		for _, c := range []cli{ca, cb} {
			c.ok("keyring", "remove", oldID)
		}
		var info node.KeyringInfo
		if err := json.Unmarshal([]byte(cb.ok("keyring", "list", "--json")), &info); err != nil {
			t.Fatal(err)
		}
		if len(info.Keys) != 1 || fmt.Sprint(info.Keys[0].ID) != id || !info.Keys[0].Primary {
			t.Errorf("keyring after the rotation: %+v, want key %s alone and primary", info, id)
		}
		ca.fails(1, "not installed", "keyring", "use", oldID)
		contains(t, "plaintext switch", ca.ok("keyring", "plaintext", "--accept", "true"), "accept plaintext: yes, send plaintext: no")
		contains(t, "plaintext switch", ca.ok("keyring", "plaintext", "--accept=false"), "accept plaintext: no, send plaintext: no")
		ca.fails(2, "want --accept or --send", "keyring", "plaintext")
		ca.fails(2, "not as an argument", "keyring", "install", newKey)
		// The members still talk, under the new key only.
		ca.ok("kv", "put", "app", "after-rotation", "yes")
		eventually(t, "a write after the rotation reaches beta", func() error {
			if out, _, code := cb.run("", "kv", "get", "app", "after-rotation"); code != 0 || !strings.Contains(out, "yes") {
				return fmt.Errorf("exit %d: %q", code, out)
			}
			return nil
		})
	})
	t.Run("version", func(t *testing.T) {
		contains(t, "version", ca.ok("version"), "meshnode "+version, runtime.Version(), "wire protocol 1..1")
	})
	t.Run("errors are one line", func(t *testing.T) {
		cli{t, bin, "127.0.0.1:1"}.fails(1, "cannot reach the agent API", "members")
		ca.fails(2, "unknown command", "frobnicate")
		ca.fails(2, "unknown subcommand", "kv", "frob")
	})
	t.Run("start with --join fails when no seed answers", func(t *testing.T) {
		cmd := exec.Command(bin, "agent", "--node", "gamma", "--bind", "127.0.0.1:0", "--api-addr", "off", "--profile", "local",
			"--join", "127.0.0.1:1", "--join-timeout", "1s", "--log-format", "json")
		var out, errOut bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errOut
		err := cmd.Run()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 1 {
			t.Fatalf("exit %v, want 1; stderr:\n%s", err, errOut.String())
		}
		contains(t, "join failure", errOut.String(), "meshnode agent: join through 127.0.0.1:1: not joined within 1s",
			"last attempt: ", "connection refused", "nothing listens at the seed's address")
		if out.Len() != 0 {
			t.Errorf("ready line printed although the join failed: %q", out.String())
		}
	})
	t.Run("SIGHUP reloads the log level", func(t *testing.T) {
		if err := os.WriteFile(cfgFile, []byte(`{"log_level": "debug", "profile": "local"}`), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := a.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		eventually(t, "the reload is logged", func() error {
			if !strings.Contains(a.stderr.String(), `"msg":"reloaded","log_level":"DEBUG"`) {
				return errors.New("not yet")
			}
			return nil
		})
	})
	t.Run("leave through the API, then SIGTERM", func(t *testing.T) {
		contains(t, "leave", cb.ok("leave", "--leave-timeout", "2s"), "left the cluster")
		eventually(t, "alpha sees beta leave", func() error {
			out := ca.ok("members")
			if !strings.Contains(out, "left") {
				return fmt.Errorf("members:\n%s", out)
			}
			return nil
		})
		if err := b.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := b.wait(t); code != 0 {
			t.Errorf("beta exited %d after SIGTERM, want 0; stderr:\n%s", code, b.stderr.String())
		}
	})
	t.Run("SIGTERM leaves gracefully and exits 0", func(t *testing.T) {
		if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := a.wait(t); code != 0 {
			t.Errorf("alpha exited %d after SIGTERM, want 0; stderr:\n%s", code, a.stderr.String())
		}
		contains(t, "alpha's log", a.stderr.String(), `"msg":"leaving the cluster","signal":"terminated"`, `"msg":"left the cluster; stopped"`)
		if _, err := os.Stat(filepath.Join(dir, "alpha", "generation")); err != nil {
			t.Errorf("data dir: %v", err)
		}
	})
	t.Run("a restart restores the data dir with a higher generation", func(t *testing.T) {
		var before node.MemberInfo
		for _, l := range strings.Split(a.stderr.String(), "\n") {
			if strings.Contains(l, `"msg":"node started"`) {
				_ = json.Unmarshal([]byte(l), &before)
			}
		}
		again := startAgent(t, bin, []string{"MESHNODE_ENCRYPT_KEY=" + key},
			append([]string{"--node", "alpha", "--config", cfgFile, "--data-dir", filepath.Join(dir, "alpha"), "--label", "test"}, common...)...)
		c := cli{t, bin, again.api}
		contains(t, "restored key", c.ok("kv", "get", "app", "greeting"), "hello mesh")
		var ms []node.MemberInfo
		if err := json.Unmarshal([]byte(c.ok("members", "--json")), &ms); err != nil {
			t.Fatal(err)
		}
		if len(ms) != 1 || before.Generation == 0 || ms[0].Generation <= before.Generation {
			t.Errorf("members after the restart %+v: want alpha alone with a generation above %d", ms, before.Generation)
		}
		if err := again.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if code := again.wait(t); code != 0 {
			t.Errorf("exit %d after SIGTERM, want 0", code)
		}
	})
}

// fakeNode is a leaver whose Leave blocks until released.
type fakeNode struct {
	release  chan struct{}
	shutdown chan struct{}
}

func (f *fakeNode) Leave(time.Duration) error {
	<-f.release
	return nil
}

func (f *fakeNode) Shutdown(context.Context) error {
	close(f.shutdown)
	return nil
}

func TestLeaveSignals(t *testing.T) {
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	t.Run("a second signal exits at once with 1", func(t *testing.T) {
		f := &fakeNode{release: make(chan struct{}), shutdown: make(chan struct{})}
		defer close(f.release)
		sig := make(chan os.Signal, 2)
		sig <- syscall.SIGHUP // ignored during the leave
		sig <- syscall.SIGINT
		if code := leave(f, time.Minute, sig, log); code != 1 {
			t.Errorf("exit %d, want 1", code)
		}
	})
	t.Run("a completed leave shuts down and exits 0", func(t *testing.T) {
		f := &fakeNode{release: make(chan struct{}), shutdown: make(chan struct{})}
		close(f.release)
		if code := leave(f, time.Minute, make(chan os.Signal), log); code != 0 {
			t.Errorf("exit %d, want 0", code)
		}
		select {
		case <-f.shutdown:
		default:
			t.Error("Shutdown not called")
		}
	})
}

func TestAgentPrintConfigAndBadConfig(t *testing.T) {
	env := envOf(map[string]string{"MESHNODE_API_TOKEN": "tok-secret", "MESHNODE_LOG_LEVEL": "warn"})
	var out, errb bytes.Buffer
	if code := runAgent([]string{"--print-config", "--node", "n1"}, env, &out, &errb, nil); code != 0 {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	contains(t, "print-config", out.String(), `"node": "n1"`, `"log_level": "warn"`, `"api_token": "<redacted>"`)
	if strings.Contains(out.String(), "tok-secret") {
		t.Errorf("token printed:\n%s", out.String())
	}
	out.Reset()
	errb.Reset()
	if code := runAgent([]string{"--profile", "moon", "--log-level", "loud"}, envOf(nil), &out, &errb, nil); code != 2 {
		t.Errorf("bad config: exit %d, want 2", code)
	}
	if got := strings.TrimSpace(errb.String()); strings.Contains(got, "\n") || !strings.Contains(got, "--profile") || !strings.Contains(got, "--log-level") {
		t.Errorf("bad config: want one line naming both problems, got %q", got)
	}
}

// TestAgentProxy: an agent started with --proxy-addr and its token in
// MESHNODE_PROXY_TOKEN names the proxy in its ready line and forwards only
// requests that carry the token, to a worker registered through its API.
func TestAgentProxy(t *testing.T) {
	bin := buildBinary(t)
	up := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprint(w, `{"object":"text_completion","choices":[{"text":"hi"}]}`)
	}))
	defer up.Close()
	a := startAgent(t, bin, []string{"MESHNODE_PROXY_TOKEN=proxy-secret"}, "--node", "px", "--bind", "127.0.0.1:0", "--api-addr", "127.0.0.1:0",
		"--proxy-addr", "127.0.0.1:0", "--profile", "local", "--log-format", "json")
	if a.proxy == "" {
		t.Fatal("the ready line names no proxy")
	}
	cli{t, bin, a.api}.ok("workers", "put", "w1", "--url", up.URL, "--model", "m")
	send := func(token string) int {
		req, _ := http.NewRequest("POST", "http://"+a.proxy+"/v1/completions", strings.NewReader(`{"model":"m","prompt":"hello"}`))
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if code := send(""); code != 401 {
		t.Errorf("without the token: %d, want 401", code)
	}
	if code := send("proxy-secret"); code != 200 {
		t.Errorf("with the token: %d, want 200", code)
	}
}
