package node

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/radix"
	"github.com/meshnode/meshnode/store"
)

// Files in the data directory.
const (
	fileGeneration = "generation"
	fileStore      = "store.snap"
	fileIndex      = "index.snap"
)

// nextGeneration returns this process's generation: above the one persisted
// in the data directory (which it then persists) and above the clock, so that
// a node without a data directory still gets increasing generations.
func (n *Node) nextGeneration(now time.Time) (uint64, error) {
	gen := uint64(now.UnixMilli())
	if n.cfg.DataDir == "" {
		return gen, nil
	}
	if err := os.MkdirAll(n.cfg.DataDir, 0o700); err != nil {
		return 0, fmt.Errorf("node: data dir: %w", err)
	}
	p := filepath.Join(n.cfg.DataDir, fileGeneration)
	if b, err := os.ReadFile(p); err == nil {
		prev, err := strconv.ParseUint(strings.TrimSpace(string(b)), 10, 64)
		if err != nil {
			return 0, fmt.Errorf("node: %s: %w", p, err)
		}
		gen = max(gen, prev+1)
	} else if !errors.Is(err, os.ErrNotExist) {
		return 0, fmt.Errorf("node: generation: %w", err)
	}
	if err := writeFileAtomic(p, []byte(strconv.FormatUint(gen, 10)+"\n"), 0o600); err != nil {
		return 0, err
	}
	return gen, nil
}

// restore loads the snapshots of the data directory into st and returns the
// index. A snapshot that does not load is renamed aside and reported, and
// that part starts empty: never half-loaded (store and index restores are
// all or nothing).
func (n *Node) restore(st *store.Store) (*radix.Index, error) {
	cfg := n.indexConfig()
	if n.cfg.DataDir == "" {
		return radix.New(cfg), nil
	}
	if b, ok := n.readSnapshot(fileStore); ok {
		if err := st.Restore(b); err != nil {
			n.setAside(fileStore, err)
		} else {
			n.log.Info("store restored", "keys", st.Stats().Keys)
		}
	}
	if b, ok := n.readSnapshot(fileIndex); ok {
		ix, err := radix.Restore(cfg, b)
		if err == nil {
			n.log.Info("index restored", "pages", ix.Stats().Pages)
			return ix, nil
		}
		n.setAside(fileIndex, err)
	}
	return radix.New(cfg), nil
}

func (n *Node) readSnapshot(name string) ([]byte, bool) {
	b, err := os.ReadFile(filepath.Join(n.cfg.DataDir, name))
	if err != nil {
		if !errors.Is(err, os.ErrNotExist) {
			n.setAside(name, err)
		}
		return nil, false
	}
	return b, true
}

// setAside renames a file of the data directory that did not load (a
// snapshot, the keyring), so that the next write does not overwrite the
// evidence and the next start does not trip on it.
func (n *Node) setAside(name string, cause error) {
	p := filepath.Join(n.cfg.DataDir, name)
	aside := fmt.Sprintf("%s.corrupt-%d", p, time.Now().UnixNano())
	if err := os.Rename(p, aside); err != nil {
		n.log.Error("file in the data directory did not load and could not be set aside", "file", p, "err", cause, "rename_err", err)
		return
	}
	n.log.Error("file in the data directory did not load; set aside, starting without it", "file", p, "aside", aside, "err", cause)
}

// snapshot writes the store and the index to the data directory atomically.
func (n *Node) snapshot() error {
	if n.cfg.DataDir == "" {
		return nil
	}
	n.st.mu.Lock()
	sb := n.st.store.AppendSnapshot(nil)
	n.st.mu.Unlock()
	ib, err := n.st.ix.AppendSnapshot(nil)
	if err == nil {
		err = writeFileAtomic(filepath.Join(n.cfg.DataDir, fileStore), sb, 0o600)
	}
	if err == nil {
		err = writeFileAtomic(filepath.Join(n.cfg.DataDir, fileIndex), ib, 0o600)
	}
	if err != nil {
		n.met.snapshots.WithLabelValues("error").Inc()
		return fmt.Errorf("node: snapshot: %w", err)
	}
	n.met.snapshots.WithLabelValues("ok").Inc()
	return nil
}
