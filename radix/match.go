package radix

// step is one chain on a matched path: the prompt matched through chain ci
// up to end pages in total.
type step struct {
	ci  uint32
	end uint32
}

// walk appends to path the chains matched by the prompt pages hs.
func (x *core) walk(path []step, hs []uint64) []step {
	if len(hs) == 0 {
		return path
	}
	ci, off, ok := x.table.get(hs[0])
	if !ok || off != 0 || x.chains[ci].depth != 0 {
		return path
	}
	i := 0
	for {
		h := x.chains[ci].hashes
		k := matchLen(h, hs[i:])
		i += k
		path = append(path, step{ci, uint32(i)})
		if k < len(h) || i == len(hs) {
			return path
		}
		nci, noff, ok := x.table.get(hs[i])
		if !ok || noff != 0 || x.chains[nci].parent != ci {
			return path
		}
		ci = nci
	}
}

// matchLen returns the length of the common prefix of a and b, comparing
// four hashes at a time.
func matchLen(a, b []uint64) int {
	n := min(len(a), len(b))
	a, b = a[:n], b[:n]
	k := 0
	for ; k+4 <= n; k += 4 {
		if a[k] != b[k] || a[k+1] != b[k+1] || a[k+2] != b[k+2] || a[k+3] != b[k+3] {
			break
		}
	}
	for k < n && a[k] == b[k] {
		k++
	}
	return k
}

// workerDepth is a worker index and its matched depth in pages.
type workerDepth struct {
	w     uint32
	pages uint32
}

// appendDepths appends each worker's matched depth on path, deepest first.
// Holders nest along a path, so a worker's depth is the end of the deepest
// step that lists it.
func (x *core) appendDepths(dst []workerDepth, path []step) []workerDepth {
	for j := len(path) - 1; j >= 0; j-- {
		hs := x.chains[path[j].ci].holders
		var deeper []holder
		if j+1 < len(path) {
			deeper = x.chains[path[j+1].ci].holders
		}
		p := 0
		for _, h := range hs {
			for p < len(deeper) && deeper[p].w < h.w {
				p++
			}
			if p < len(deeper) && deeper[p].w == h.w {
				continue
			}
			dst = append(dst, workerDepth{h.w, path[j].end})
		}
	}
	return dst
}
