package wire

import "fmt"

// Reassembler joins chunk frames back into transfers, within two bounds:
// the bytes held by all open transfers together and the number of open
// transfers. A chunk that would exceed a bound is refused with ErrTooLarge
// before anything is allocated, and the transfer it belongs to is dropped.
// A Reassembler serves one stream (chunks of a transfer arrive in order);
// it is not safe for concurrent use.
type Reassembler struct {
	maxBytes     int
	maxTransfers int
	used         int
	transfers    map[uint32]*transfer
	dbuf         []byte
	// acct, set by a StreamReader, is charged for the capacity of the
	// transfers' buffers, of last and of the decompressed body.
	acct     *account
	last     []byte // the buffer of the transfer Add returned last
	inflated int    // charged for dbuf's use by the last transfer
}

type transfer struct {
	t     Type
	flags uint8
	count uint32
	total uint32
	next  uint32 // index of the next chunk
	buf   []byte // grows with the chunks received, never to more than total
}

// NewReassembler returns a Reassembler holding at most maxBytes across at
// most maxTransfers open transfers. maxBytes also caps a decompressed
// transfer.
func NewReassembler(maxBytes, maxTransfers int) *Reassembler {
	return &Reassembler{maxBytes: maxBytes, maxTransfers: maxTransfers, transfers: make(map[uint32]*transfer)}
}

// Pending returns the number of open transfers and the bytes they reserve.
func (r *Reassembler) Pending() (transfers, bytes int) { return len(r.transfers), r.used }

// Add takes the next frame of the stream. For an unchunked frame it returns
// the frame's type and body at once. For a chunk it returns done=false until
// the last chunk of its transfer, then the transfer's type and its whole
// body, decompressed if the chunks were compressed. The body is valid until
// the next Add. On an error the chunk's transfer is dropped and its bytes
// released; other transfers are unaffected.
func (r *Reassembler) Add(f Frame) (t Type, body []byte, done bool, err error) {
	r.releaseLast()
	if f.Flags&FrameChunk == 0 {
		return f.Type, f.Body, true, nil
	}
	ch := f.Chunk
	tr := r.transfers[ch.Transfer]
	if err := r.check(f, tr); err != nil {
		r.drop(ch.Transfer)
		return 0, nil, false, err
	}
	if tr == nil {
		tr = &transfer{t: f.Type, flags: f.Flags, count: ch.Count, total: ch.Total}
		r.transfers[ch.Transfer] = tr
		r.used += int(ch.Total)
	}
	if err := r.grow(tr, len(f.Body)); err != nil {
		r.drop(ch.Transfer)
		return 0, nil, false, err
	}
	tr.buf = append(tr.buf, f.Body...)
	tr.next++
	if ch.Index+1 < ch.Count {
		return 0, nil, false, nil
	}
	// The finished buffer stays charged until the next Add, as its body.
	r.last, tr.buf = tr.buf, nil
	r.drop(ch.Transfer)
	if f.Flags&FrameCompressed == 0 {
		return tr.t, r.last, true, nil
	}
	if n := inflatedBytes(r.last, r.maxBytes); r.acct != nil {
		if err := r.acct.charge(n); err != nil {
			return 0, nil, false, err
		}
		r.inflated = n
	}
	r.dbuf, err = appendDecompressed(r.dbuf[:0], r.last, r.maxBytes)
	if err != nil {
		return 0, nil, false, err
	}
	return tr.t, r.dbuf, true, nil
}

// check validates chunk f against its open transfer tr (nil if none).
func (r *Reassembler) check(f Frame, tr *transfer) error {
	ch := f.Chunk
	bad := func(format string, args ...any) error {
		return errf(ErrMalformed, fmt.Sprintf("transfer %d: ", ch.Transfer)+fmt.Sprintf(format, args...))
	}
	if ch.Count == 0 || ch.Index >= ch.Count {
		return bad("chunk %d of %d", ch.Index, ch.Count)
	}
	if len(f.Body) == 0 {
		return bad("empty chunk %d", ch.Index)
	}
	if tr == nil {
		if ch.Index != 0 {
			return bad("chunk %d without chunk 0", ch.Index)
		}
		if ch.Count > ch.Total {
			return bad("%d chunks for %d bytes", ch.Count, ch.Total)
		}
		if len(r.transfers) >= r.maxTransfers {
			return errf(ErrTooLarge, fmt.Sprintf("transfer %d: %d transfers open, max %d", ch.Transfer, len(r.transfers), r.maxTransfers))
		}
		if uint64(ch.Total) > uint64(r.maxBytes-r.used) {
			return errf(ErrTooLarge, fmt.Sprintf("transfer %d: %d bytes, %d of %d bytes free", ch.Transfer, ch.Total, r.maxBytes-r.used, r.maxBytes))
		}
	} else {
		if ch.Index != tr.next {
			return bad("chunk %d, want %d", ch.Index, tr.next)
		}
		if f.Type != tr.t || f.Flags != tr.flags || ch.Count != tr.count || ch.Total != tr.total {
			return bad("chunk %d disagrees with chunk 0", ch.Index)
		}
	}
	have := 0
	if tr != nil {
		have = len(tr.buf)
	}
	if uint64(have)+uint64(len(f.Body)) > uint64(ch.Total) {
		return errf(ErrTooLarge, fmt.Sprintf("transfer %d: chunk %d overruns %d bytes", ch.Transfer, ch.Index, ch.Total))
	}
	if ch.Index+1 == ch.Count && have+len(f.Body) != int(ch.Total) {
		return errf(ErrTruncated, fmt.Sprintf("transfer %d: %d bytes at the last chunk, want %d", ch.Transfer, have+len(f.Body), ch.Total))
	}
	return nil
}

// grow makes room for n more bytes in tr's buffer: its capacity starts at
// MinReadStepBytes and doubles, up to the transfer's total, so it is never
// more than twice the bytes received (or one step). The growth is charged
// first.
func (r *Reassembler) grow(tr *transfer, n int) error {
	need := len(tr.buf) + n
	if need <= cap(tr.buf) {
		return nil
	}
	next := min(int(tr.total), max(MinReadStepBytes, 2*cap(tr.buf), need))
	if err := r.acct.charge(next - cap(tr.buf)); err != nil {
		return err
	}
	nb := make([]byte, len(tr.buf), next)
	copy(nb, tr.buf)
	tr.buf = nb
	return nil
}

// drop forgets transfer id, releasing its bytes.
func (r *Reassembler) drop(id uint32) {
	if tr, ok := r.transfers[id]; ok {
		r.used -= int(tr.total)
		r.acct.release(cap(tr.buf))
		delete(r.transfers, id)
	}
}

// releaseLast gives back what the transfer returned last held.
func (r *Reassembler) releaseLast() {
	r.acct.release(cap(r.last) + r.inflated)
	r.last, r.inflated = nil, 0
}

// Close drops every open transfer and gives their bytes back.
func (r *Reassembler) Close() {
	r.releaseLast()
	for id := range r.transfers {
		r.drop(id)
	}
	r.dbuf = nil
}
