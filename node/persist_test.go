package node

import (
	"bytes"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestPersistRoundTripAndGeneration(t *testing.T) {
	dir := t.TempDir()
	cfg := Config{Name: "p", APIAddr: "off", DataDir: dir}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := a.st.put("ns", "k", []byte("v"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, err := a.st.putWorker(Worker{ID: "w", URL: "http://w", Model: "m", Health: "healthy"}, time.Now()); err != nil {
		t.Fatal(err)
	}
	wk, _ := a.st.worker("w")
	pages := a.st.ix.AppendTextPages(nil, "m", bytes.Repeat([]byte("x"), 256))
	if _, err := a.st.ix.Insert("w", wk.Epoch, 1, pages); err != nil {
		t.Fatal(err)
	}
	if err := a.snapshot(); err != nil {
		t.Fatal(err)
	}
	b, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if b.Generation() <= a.Generation() {
		t.Fatalf("generation %d after %d: must grow", b.Generation(), a.Generation())
	}
	if v, ok := b.st.get("ns", "k"); !ok || v != "v" {
		t.Fatalf("store not restored: %q %v", v, ok)
	}
	if got := b.st.ix.Stats().HolderPages; got != int64(len(pages)) {
		t.Fatalf("index holder pages %d, want %d", got, len(pages))
	}
	// The restored node writes under its new generation: a write after the
	// restore must not collide with the old process's dots.
	if err := b.st.put("ns", "k2", []byte("v2"), time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestPersistCorruptSnapshotSetAside(t *testing.T) {
	for _, file := range []string{fileStore, fileIndex} {
		t.Run(file, func(t *testing.T) {
			dir := t.TempDir()
			cfg := Config{Name: "p", APIAddr: "off", DataDir: dir}
			a, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			if err := a.st.put("ns", "k", []byte("v"), time.Now()); err != nil {
				t.Fatal(err)
			}
			if err := a.snapshot(); err != nil {
				t.Fatal(err)
			}
			p := filepath.Join(dir, file)
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			raw[len(raw)-1] ^= 0xff // flip the last byte: a checksum mismatch
			if err := os.WriteFile(p, raw, 0o600); err != nil {
				t.Fatal(err)
			}
			var logs bytes.Buffer
			cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
			b, err := New(cfg)
			if err != nil {
				t.Fatalf("a corrupt snapshot must not stop the node: %v", err)
			}
			_, ok := b.st.get("ns", "k")
			if file == fileStore && ok {
				t.Fatal("corrupt store snapshot was loaded")
			}
			if file == fileIndex && !ok {
				t.Fatal("intact store snapshot was not loaded")
			}
			if _, err := os.Stat(p); !os.IsNotExist(err) {
				t.Fatalf("corrupt snapshot still in place: %v", err)
			}
			aside, _ := filepath.Glob(p + ".corrupt-*")
			if len(aside) != 1 {
				t.Fatalf("set-aside files: %v", aside)
			}
			if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), file) {
				t.Fatalf("corruption not reported: %s", logs.String())
			}
		})
	}
}
