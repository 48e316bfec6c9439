package radix

// Cutting a batch to a packet budget. Gossip carries only what fits one
// packet; a batch larger than that would reach only the few members a
// stream is pushed to and wait for anti-entropy everywhere else. So a
// sender that gossips cuts its deltas into batches that fit, and cuts a
// delta that does not fit alone along its pages where its op allows:
//
//   - an insert or an engine store becomes a run of deltas, each anchored
//     at the last page of the one before (a receiver that gets them out of
//     order holds the later ones until their anchor arrives); a store is
//     cut at block boundaries, each piece keeping its blocks' hashes and
//     the event version, so that applying the pieces is applying the whole;
//   - an engine removal or engine-map delta becomes deltas of fewer blocks
//     at the same version (each block's removal stands alone);
//   - a pending delta is never cut (it stays anchored at the root, since
//     pending anchors expire on each replica's own clock), nor are touches,
//     removals of a worker and clears, which are small.
//
// What still does not fit goes alone, in a batch over the budget.

// deltaSlackBytes covers what a delta's encoding may grow by when it joins
// a batch with other deltas: its stamp is written relative to the batch's
// smallest (up to 4 more bytes) and its worker's position may need more
// bytes.
const deltaSlackBytes = 8

// AppendBatches encodes b's deltas as batches of at most budget bytes each
// where it can, in order, and appends them to dst. A delta that does not
// fit alone is cut (see above); a piece that still does not fit goes alone.
func AppendBatches(dst [][]byte, b *Batch, budget int) ([][]byte, error) {
	var one, cur Batch
	curBytes := 0
	flush := func() error {
		if len(cur.Deltas) == 0 {
			return nil
		}
		enc, err := AppendBatch(nil, &cur)
		if err != nil {
			return err
		}
		dst = append(dst, enc)
		cur.Deltas, curBytes = nil, 0
		return nil
	}
	add := func(d Delta) error {
		one.Deltas = append(one.Deltas[:0], d)
		enc, err := AppendBatch(nil, &one)
		if err != nil {
			return err
		}
		n := len(enc) + deltaSlackBytes
		if len(cur.Deltas) > 0 && curBytes+n > budget {
			if err := flush(); err != nil {
				return err
			}
		}
		cur.Deltas = append(cur.Deltas, d)
		curBytes += n
		return nil
	}
	for _, d := range b.Deltas {
		for _, p := range cutDelta(d, budget) {
			if err := add(p); err != nil {
				return dst, err
			}
		}
	}
	return dst, flush()
}

// cutDelta returns d, or d cut into pieces whose batches fit budget.
func cutDelta(d Delta, budget int) []Delta {
	// A batch of one delta: headers, the worker's name and epoch, the
	// delta's fields; 64 bytes bound all but the name and the lists.
	fixed := 64 + len(d.Worker)
	room := budget - fixed
	switch d.Op {
	case OpInsert:
		return cutPages(d, max(room/8-1, 1))
	case OpStoreEvents:
		ppb := d.PagesPerBlock
		if ppb < 1 || len(d.Hashes) == 0 {
			// Pages only (anti-entropy's form): cut like an insert.
			return cutPages(d, max(room/8-1, 1))
		}
		// Blocks of ppb pages and one hash each; pages beyond the last
		// hashed block stay with the last piece.
		perBlock := 8*ppb + 8
		blocks := max((room-8)/perBlock, 1)
		if len(d.Hashes) <= blocks {
			return []Delta{d}
		}
		var out []Delta
		for k := 0; k < len(d.Hashes); k += blocks {
			end := min(k+blocks, len(d.Hashes))
			p := d
			p.Hashes = d.Hashes[k:end]
			hi := min(end*ppb, len(d.Pages))
			if end == len(d.Hashes) {
				hi = len(d.Pages)
			}
			lo := min(k*ppb, len(d.Pages))
			p.Pages = d.Pages[lo:hi]
			if k > 0 && lo > 0 {
				p.Anchor = d.Pages[lo-1]
			}
			out = append(out, p)
		}
		return out
	case OpRemoveEvents, OpEngineMap:
		per := max((room-8)/16, 1)
		if len(d.Hashes) <= per || len(d.Pages) != len(d.Hashes) {
			return []Delta{d}
		}
		var out []Delta
		for i := 0; i < len(d.Hashes); i += per {
			p := d
			end := min(i+per, len(d.Hashes))
			p.Hashes, p.Pages = d.Hashes[i:end], d.Pages[i:end]
			out = append(out, p)
		}
		return out
	}
	return []Delta{d}
}

// cutPages cuts d's pages into runs of at most per, each anchored at the
// last page of the run before.
func cutPages(d Delta, per int) []Delta {
	if len(d.Pages) <= per {
		return []Delta{d}
	}
	var out []Delta
	for i := 0; i < len(d.Pages); i += per {
		p := d
		p.Pages = d.Pages[i:min(i+per, len(d.Pages))]
		if i > 0 {
			p.Anchor = d.Pages[i-1]
		}
		out = append(out, p)
	}
	return out
}
