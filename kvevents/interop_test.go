package kvevents

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// python returns a Python 3 interpreter that can import zmq and msgpack:
// $MESHNODE_PYTHON, python3 on the PATH, or Debian's /usr/bin/python3
// (where python3-zmq and python3-msgpack install), or "" with the reason
// none fits.
func python() (string, string) {
	var cands []string
	if p := os.Getenv("MESHNODE_PYTHON"); p != "" {
		cands = append(cands, p)
	}
	cands = append(cands, "python3", "/usr/bin/python3")
	var why []string
	for _, c := range cands {
		path, err := exec.LookPath(c)
		if err != nil {
			why = append(why, fmt.Sprintf("%s: not found", c))
			continue
		}
		out, err := exec.Command(path, "-c", "import zmq, msgpack").CombinedOutput()
		if err != nil {
			why = append(why, fmt.Sprintf("%s: %s", path, bytes.TrimSpace(out)))
			continue
		}
		return path, ""
	}
	return "", fmt.Sprint("no python3 with the zmq and msgpack modules (Debian: python3-zmq python3-msgpack): ", why)
}

// byteHash is testdata/publisher.py's byte_hash, folded: the last 8 of its
// 32 bytes, big-endian.
func byteHash(i int) uint64 {
	var h [32]byte
	for j := range h {
		h[j] = byte((i*7 + j) % 256)
	}
	return FoldHash(h[:])
}

// pythonBatches are what testdata/publisher.py publishes, as they must
// decode.
func pythonBatches() []Batch {
	tokens := make([]uint32, 32)
	for i := range tokens {
		tokens[i] = uint32(1000 + i)
	}
	return []Batch{
		{TS: 1700000000.25, HasDPRank: true, Events: []Event{
			{Kind: KindBlockStored, BlockHashes: []uint64{11, 1<<63 + 5}, TokenIDs: tokens, BlockSize: 16, Medium: "GPU"},
			{Kind: KindBlockRemoved, BlockHashes: []uint64{11}, Medium: "GPU"},
			{Kind: KindAllBlocksCleared},
		}},
		{TS: 1700000001.5, DPRank: 1, HasDPRank: true, Events: []Event{
			{Kind: KindBlockStored, BlockHashes: []uint64{byteHash(1), byteHash(2)}, ParentHash: byteHash(0), HasParent: true,
				TokenIDs: tokens, BlockSize: 16, LoRAID: 3, HasLoRA: true, LoRAName: "sql-adapter", Medium: "GPU", GroupIdx: 1},
			{Kind: KindBlockRemoved, BlockHashes: []uint64{byteHash(2)}, Medium: "CPU"},
		}},
		{TS: 1700000002, DPRank: 2, HasDPRank: true, Events: []Event{
			{Kind: KindBlockStored, BlockHashes: []uint64{1<<64 - 5, 1 << 63}, ParentHash: 1<<64 - 7, HasParent: true,
				TokenIDs: []uint32{1, 2, 3, 4, 5, 6}, BlockSize: 3},
			{Kind: KindBlockRemoved, BlockHashes: []uint64{1<<64 - 5}},
		}},
		{TS: 1700000003, Skipped: 1, Events: []Event{
			{Kind: KindBlockRemoved, BlockHashes: []uint64{1<<64 - 1}},
		}},
	}
}

// TestPythonPublisher subscribes to testdata/publisher.py, which publishes
// with pyzmq (libzmq) and the msgpack module as the engines do, decodes
// what it sends, then replays part of it from its ROUTER socket.
func TestPythonPublisher(t *testing.T) {
	py, why := python()
	if py == "" {
		t.Skip(why)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, py, "testdata/publisher.py")
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		_ = stdin.Close() // the publisher exits when its stdin closes
		if err := cmd.Wait(); err != nil {
			t.Errorf("publisher.py: %v\n%s", err, stderr.String())
		}
	}()
	var pubPort, routerPort int
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("reading the ports: %v\n%s", err, stderr.String())
	}
	if _, err := fmt.Sscan(line, &pubPort, &routerPort); err != nil {
		t.Fatalf("ports line %q: %v", line, err)
	}

	s, err := Subscribe(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", pubPort), "kv")
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	want := pythonBatches()
	payloads := make([][]byte, len(want))
	var b Batch
	for i := range want {
		m, err := s.Recv()
		if err != nil {
			t.Fatalf("Recv %d: %v\n%s", i, err, stderr.String())
		}
		if m.Topic != "kv" || m.Seq != int64(i) {
			t.Fatalf("message %d: topic %q, seq %d", i, m.Topic, m.Seq)
		}
		if err := DecodeBatch(&b, m.Payload, Limits{}); err != nil {
			t.Fatalf("batch %d (%x): %v", i, m.Payload, err)
		}
		if d := cmp.Diff(want[i], b, batchCmp); d != "" {
			t.Errorf("batch %d (-want +got):\n%s", i, d)
		}
		payloads[i] = m.Payload
	}

	var seqs []int64
	err = Replay(ctx, fmt.Sprintf("tcp://127.0.0.1:%d", routerPort), 1, func(m Message) error {
		if m.Seq < 0 || m.Seq >= int64(len(payloads)) || !bytes.Equal(m.Payload, payloads[m.Seq]) {
			return fmt.Errorf("replayed seq %d differs from the published one", m.Seq)
		}
		seqs = append(seqs, m.Seq)
		return nil
	})
	if err != nil {
		t.Fatalf("Replay: %v\n%s", err, stderr.String())
	}
	if d := cmp.Diff([]int64{1, 2, 3}, seqs); d != "" {
		t.Errorf("replayed seqs (-want +got):\n%s", d)
	}
}
