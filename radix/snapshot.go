package radix

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"slices"
)

// Snapshot errors. Restore reports them wrapped; test with errors.Is.
var (
	ErrSnapshotMagic    = errors.New("radix: not a radix snapshot")
	ErrSnapshotVersion  = errors.New("radix: unsupported snapshot version")
	ErrSnapshotChecksum = errors.New("radix: snapshot checksum mismatch")
)

var snapshotMagic = [4]byte{'M', 'N', 'R', 'X'}

const snapshotVersion = 1

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// AppendSnapshot appends a snapshot of the whole index to dst:
// "MNRX", version u8, CRC32C (Castagnoli) of the body as u32 little-endian,
// then the body: one batch (AppendBatch) holding every worker's Holdings,
// workers sorted by name.
func (ix *Index) AppendSnapshot(dst []byte) ([]byte, error) {
	ix.mu.RLock()
	names := make([]string, 0, len(ix.x.workers))
	for i := range ix.x.workers {
		if ix.x.workers[i].owner == 0 { // pending pages are not kept
			names = append(names, ix.x.workers[i].name)
		}
	}
	slices.Sort(names)
	var b Batch
	for _, name := range names {
		ix.x.holdings(&b, name, 0, int(^uint(0)>>1))
	}
	ix.mu.RUnlock()
	dst = append(dst, snapshotMagic[:]...)
	dst = append(dst, snapshotVersion, 0, 0, 0, 0)
	crcAt := len(dst) - 4
	dst, err := AppendBatch(dst, &b)
	if err != nil {
		return dst, err
	}
	binary.LittleEndian.PutUint32(dst[crcAt:], crc32.Checksum(dst[crcAt+4:], castagnoli))
	return dst, nil
}

// Restore builds an index from a snapshot with cfg. It is all or nothing:
// on any error it returns nil and the error.
func Restore(cfg Config, data []byte) (*Index, error) {
	if len(data) < 9 || [4]byte(data[:4]) != snapshotMagic {
		return nil, ErrSnapshotMagic
	}
	if data[4] != snapshotVersion {
		return nil, fmt.Errorf("%w: %d", ErrSnapshotVersion, data[4])
	}
	body := data[9:]
	if crc32.Checksum(body, castagnoli) != binary.LittleEndian.Uint32(data[5:]) {
		return nil, ErrSnapshotChecksum
	}
	var b Batch
	if err := DecodeBatch(&b, body, SnapshotLimits()); err != nil {
		return nil, fmt.Errorf("radix: snapshot: %w", err)
	}
	// Replay without budgets, so that no anchor is evicted before the
	// chains below it arrive, then apply the budgets of cfg.
	open := cfg
	open.WorkerPages, open.MaxHolderPages = 0, 0
	ix := New(open)
	for i, d := range b.Deltas {
		if err := ix.x.apply(d); err != nil {
			return nil, fmt.Errorf("radix: snapshot delta %d: %w", i, err)
		}
	}
	if ix.x.pend.n > 0 {
		return nil, fmt.Errorf("radix: snapshot: %d deltas without their anchor: %w", ix.x.pend.n, ErrDecode)
	}
	ix.x.cfg = cfg.withDefaults()
	for w := range ix.x.workers {
		ix.x.enforce(uint32(w))
	}
	return ix, nil
}
