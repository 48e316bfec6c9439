//go:build linux

package faults

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os/exec"
	"regexp"
	"strconv"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/meshnode/meshnode/engine"
)

// kvModel is the model every emulated engine serves and every worker
// names.
const kvModel = "demo"

// kvBlockTokens is the engines' block size: the index's default page size,
// so that one engine block is one page.
const kvBlockTokens = 16

// engineProc is one `meshnode engine` process. Requests go to it one at a
// time, so that cache, a replica of its LRU prefix cache in the test, is
// in step with the engine's: a request touches its cached blocks when its
// prefill starts and stores the rest when it ends, and with one request at
// a time that order is the order of the requests.
type engineProc struct {
	t      *testing.T
	name   string // the worker ID it is registered as
	pid    int
	http   string // host:port of its OpenAI API
	events string // tcp://host:port of its KV events
	replay string // tcp://host:port of its replay socket
	stderr *lockedBuffer
	done   chan struct{}
	client *http.Client

	cache   *engine.Cache
	prompts [][]uint32 // every prompt sent, in order
	// stored and evicted count the blocks the engine stored and evicted,
	// by the replica; they may be read while another goroutine sends.
	stored, evicted atomic.Int64
}

var engineRE = regexp.MustCompile(`^meshnode engine: serving http://(\S+) .*, kv events (\S+), replay (\S+)$`)

// startEngine starts an emulated engine of blocks blocks with KV events
// and replay on ports of 127.0.0.1 the process picks. Prefill and decode
// are fast, so that a request takes milliseconds. The test's cleanup kills
// it.
func startEngine(t *testing.T, bin, name string, blocks int) *engineProc {
	t.Helper()
	cmd := exec.Command(bin, "engine", "--addr", "127.0.0.1:0", "--model", kvModel,
		"--blocks", strconv.Itoa(blocks), "--block-size", strconv.Itoa(kvBlockTokens),
		"--prefill-tps", "10000000", "--decode-tps", "100000",
		"--kv-events", "tcp://127.0.0.1:0", "--kv-replay", "tcp://127.0.0.1:0")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	e := &engineProc{t: t, name: name, stderr: &lockedBuffer{}, done: make(chan struct{})}
	cmd.Stderr = e.stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("engine %s: %v", name, err)
	}
	e.pid = cmd.Process.Pid
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		<-e.done
	})
	lines := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		first := true
		for sc.Scan() {
			if first {
				lines <- sc.Text()
				first = false
			}
		}
		close(lines)
		_ = cmd.Wait()
		close(e.done)
	}()
	select {
	case l := <-lines:
		m := engineRE.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("engine %s: unexpected first line %q; stderr:\n%s", name, l, e.stderr.tail(4000))
		}
		e.http, e.events, e.replay = m[1], m[2], m[3]
	case <-time.After(startWait):
		t.Fatalf("engine %s: no ready line within %v; stderr:\n%s", name, startWait, e.stderr.tail(4000))
	}
	e.client = &http.Client{Timeout: 20 * time.Second}
	e.cache, err = engine.NewCache(blocks, kvBlockTokens, 0)
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// signal sends sig to the engine's process group.
func (e *engineProc) signal(sig syscall.Signal) {
	e.t.Helper()
	if err := syscall.Kill(-e.pid, sig); err != nil {
		e.t.Fatalf("engine %s: kill -%d: %v", e.name, sig, err)
	}
}

// complete runs one completion of prompt (token ids) and applies it to the
// replica of the engine's cache. It is not safe for concurrent use.
func (e *engineProc) complete(prompt []uint32) error {
	body, _ := json.Marshal(map[string]any{"model": kvModel, "prompt": prompt, "max_tokens": 1})
	resp, err := e.client.Post("http://"+e.http+"/v1/completions", "application/json", bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("engine %s: %w", e.name, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("engine %s: completion: %s: %s", e.name, resp.Status, b)
	}
	hashes := e.cache.AppendHashes(nil, prompt)
	e.cache.Touch(hashes)
	for _, ev := range e.cache.Store(nil, hashes, prompt) {
		switch ev.Kind {
		case engine.KindBlockStored:
			e.stored.Add(int64(len(ev.BlockHashes)))
		case engine.KindBlockRemoved:
			e.evicted.Add(int64(len(ev.BlockHashes)))
		}
	}
	e.prompts = append(e.prompts, prompt)
	return nil
}

// resetCache clears the engine's prefix cache (vLLM's POST
// /reset_prefix_cache) and the replica.
func (e *engineProc) resetCache() error {
	resp, err := e.client.Post("http://"+e.http+"/reset_prefix_cache", "application/json", nil)
	if err != nil {
		return fmt.Errorf("engine %s: %w", e.name, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<16))
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("engine %s: reset_prefix_cache: %s", e.name, resp.Status)
	}
	e.cache.Clear(nil)
	return nil
}

// cachedBlocks returns the engine's cached_blocks from GET /stats.
func (e *engineProc) cachedBlocks() (int, error) {
	resp, err := e.client.Get("http://" + e.http + "/stats")
	if err != nil {
		return 0, fmt.Errorf("engine %s: %w", e.name, err)
	}
	defer resp.Body.Close()
	var s struct {
		CachedBlocks int `json:"cached_blocks"`
	}
	if resp.StatusCode != http.StatusOK {
		return 0, fmt.Errorf("engine %s: GET /stats: %s", e.name, resp.Status)
	}
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		return 0, fmt.Errorf("engine %s: GET /stats: %w", e.name, err)
	}
	return s.CachedBlocks, nil
}

// checkReplica checks that the engine caches as many blocks as the test's
// replica of its cache: the replica is what the agents' views are compared
// with.
func (e *engineProc) checkReplica() error {
	n, err := e.cachedBlocks()
	if err != nil {
		return err
	}
	if n != e.cache.Len() {
		return fmt.Errorf("engine %s caches %d blocks, the test's replica of its cache %d: the replica is out of step", e.name, n, e.cache.Len())
	}
	return nil
}

// depth returns how many leading blocks (= pages) of prompt the engine
// caches.
func (e *engineProc) depth(prompt []uint32) int {
	return e.cache.Match(e.cache.AppendHashes(nil, prompt))
}

// kvPrompt returns prompt j of engine i: four blocks, the first two shared
// by the prompts of a group of three (a system prompt and its users), all
// distinct from the first block on between engines. Tokens are bytes, as
// the emulator's tokenizer makes them.
func kvPrompt(i, j int) []uint32 {
	p := make([]uint32, 0, 4*kvBlockTokens)
	grp := rand.New(rand.NewPCG(uint64(i), uint64(j/3)))
	p = append(p, uint32('A'+i), uint32('0'+j/3%10))
	for len(p) < 2*kvBlockTokens {
		p = append(p, uint32(grp.IntN(256)))
	}
	own := rand.New(rand.NewPCG(uint64(i)<<32|uint64(j), 7))
	for len(p) < 4*kvBlockTokens {
		p = append(p, uint32(own.IntN(256)))
	}
	return p
}
