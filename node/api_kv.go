package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/store"
)

// KV is one key as the KV API returns it.
type KV struct {
	Key   string `json:"key"`
	Value string `json:"value"`
	// StampMs is the write's hybrid-clock time in Unix milliseconds.
	StampMs int64 `json:"stamp_ms,omitempty"`
}

// WatchEvent is one change as the watch API streams it.
type WatchEvent struct {
	Key     string `json:"key,omitempty"`
	Value   string `json:"value,omitempty"`
	Deleted bool   `json:"deleted,omitempty"`
	StampMs int64  `json:"stamp_ms,omitempty"`
	// Lagged says changes were missed: list the namespace again.
	Lagged bool `json:"lagged,omitempty"`
	// Index is the change's index on this node (see the watch API); on a
	// Lagged event, the namespace's current index.
	Index uint64 `json:"index,omitempty"`
}

// validKey checks a namespace and key from a path (ValidName, ValidKey).
func validKey(w http.ResponseWriter, ns, key string) bool {
	err := ValidNamespace(ns)
	if err == nil {
		err = ValidKey(key)
	}
	if err != nil {
		writeErr(w, err)
		return false
	}
	return true
}

// indexHeader carries a namespace's watch index on every KV read and watch
// answer (see history).
const indexHeader = "X-Meshnode-Index"

func setIndex(w http.ResponseWriter, index uint64) {
	w.Header().Set(indexHeader, strconv.FormatUint(index, 10))
}

func (n *Node) handlePut(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("ns"), r.PathValue("key")
	if !validKey(w, ns, key) {
		return
	}
	var req struct {
		Value *string `json:"value"`
	}
	if !n.decode(w, r, &req, false) {
		return
	}
	if req.Value == nil {
		writeError(w, http.StatusBadRequest, `missing "value"`)
		return
	}
	if err := n.st.put(ns, key, []byte(*req.Value), time.Now()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]string{"namespace": ns, "key": key})
}

func (n *Node) handleGet(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("ns"), r.PathValue("key")
	if !validKey(w, ns, key) {
		return
	}
	v, ok, index := n.st.getIndexed(ns, key)
	setIndex(w, index)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("no key %q in namespace %q", key, ns))
		return
	}
	writeJSON(w, 200, KV{Key: key, Value: v})
}

func (n *Node) handleDelete(w http.ResponseWriter, r *http.Request) {
	ns, key := r.PathValue("ns"), r.PathValue("key")
	if !validKey(w, ns, key) {
		return
	}
	if err := n.st.del(ns, key, time.Now()); err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, map[string]bool{"deleted": true})
}

func (n *Node) handleList(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if !validNameHTTP(w, "namespace", ns, store.MaxNamespaceBytes) {
		return
	}
	prefix, ok := prefixParam(w, r)
	if !ok {
		return
	}
	limit, cursor, ok := n.pageParams(w, r)
	if !ok {
		return
	}
	items, next, index := n.st.listIndexed(ns, prefix, cursor, limit)
	out := make([]KV, len(items))
	for i, kv := range items {
		out[i] = KV{Key: kv.Key, Value: kv.Value, StampMs: kv.Stamp.Millis()}
	}
	setIndex(w, index)
	writeJSON(w, 200, map[string]any{"items": out, "next_cursor": next, "index": index})
}

// prefixParam reads the prefix query parameter: at most store.MaxKeyBytes
// bytes of text (validText).
func prefixParam(w http.ResponseWriter, r *http.Request) (string, bool) {
	p := r.URL.Query().Get("prefix")
	err := validText("prefix", p)
	if err == nil && len(p) > store.MaxKeyBytes {
		err = fmt.Errorf("%w: prefix: at most %d bytes", ErrBadRequest, store.MaxKeyBytes)
	}
	if err != nil {
		writeErr(w, err)
		return "", false
	}
	return p, true
}

// handleWatch answers with the changes of a namespace (optionally of a key
// prefix) after an index, as Consul's blocking queries do. The index is
// the query parameter index, else the Last-Event-ID header (SSE resume),
// else the namespace's index when the request starts (changes from now on).
// Changes after the index that are already kept are answered at once; else
// the request waits for the next one. As a long poll it answers with the
// first changes (or none at the timeout, default 30s) and the index to
// pass next; as server-sent events (Accept: text/event-stream) every change
// is an event whose id is its index. An index whose changes are no longer
// all kept gets 410 Gone with the current index: list the namespace again
// and watch from the list's index.
func (n *Node) handleWatch(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if !validNameHTTP(w, "namespace", ns, store.MaxNamespaceBytes) {
		return
	}
	prefix, ok := prefixParam(w, r)
	if !ok {
		return
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	q := r.URL.Query()
	for k := range q {
		if k != "prefix" && k != "timeout" && k != "index" {
			// A parameter silently ignored (since, say) looks like it works
			// and loses changes.
			writeError(w, http.StatusBadRequest, fmt.Sprintf("unknown query parameter %q: a watch takes prefix, timeout and index", k))
			return
		}
	}
	timeout := 30 * time.Second
	if s := q.Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 5*time.Minute {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout %q: want a duration in (0, 5m]", s))
			return
		}
		timeout = d
	}
	var after uint64
	hasIndex := false
	for _, src := range []struct{ what, v string }{{"index", q.Get("index")}, {"Last-Event-ID", r.Header.Get("Last-Event-ID")}} {
		if src.v == "" {
			continue
		}
		v, err := strconv.ParseUint(src.v, 10, 64)
		if err != nil {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("%s %q: want an index a read or watch answered (X-Meshnode-Index)", src.what, src.v))
			return
		}
		after, hasIndex = v, true
		break
	}
	if n.watchers.Add(1) > int64(n.cfg.MaxWatchers) {
		n.watchers.Add(-1)
		writeError(w, http.StatusServiceUnavailable, "too many watchers")
		return
	}
	defer n.watchers.Add(-1)
	flusher, _ := w.(http.Flusher)
	if sse && flusher == nil {
		writeError(w, http.StatusNotAcceptable, "streaming unsupported")
		return
	}
	s := n.st
	poll := func() ([]change, uint64, error) {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.hist.since(ns, prefix, after, n.cfg.MaxListItems)
	}
	if !hasIndex {
		s.mu.Lock()
		after = s.hist.nsIndex(ns)
		s.mu.Unlock()
	}
	n.subscribed.Add(1)
	defer n.subscribed.Add(-1)
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	started := false
	enc := json.NewEncoder(w)
	for {
		changed := s.wait()
		chs, next, err := poll()
		if err != nil {
			if !started {
				setIndex(w, next)
				writeJSON(w, http.StatusGone, watchGone{Error: fmt.Sprintf("index %d: the changes after it are no longer kept (or it is from another process or node): list the namespace again and watch from the index the list answers", after), Index: next})
				return
			}
			// The stream fell behind the kept history: say so, without an
			// id, so that a resume from the last id gets 410 too.
			fmt.Fprint(w, "data: ")
			_ = enc.Encode(WatchEvent{Lagged: true, Index: next})
			fmt.Fprint(w, "\n")
			flusher.Flush()
			return
		}
		evs := make([]WatchEvent, len(chs))
		for i, c := range chs {
			evs[i] = WatchEvent{Key: c.ev.Key, Value: c.ev.Value, Deleted: c.ev.Deleted, StampMs: c.ev.Stamp.Millis(), Index: c.index}
		}
		after = next
		if !sse {
			if len(evs) > 0 {
				setIndex(w, next)
				writeJSON(w, 200, watchAnswer{Events: evs, Index: next})
				return
			}
		} else {
			if !started {
				setIndex(w, next)
				w.Header().Set("Content-Type", "text/event-stream")
				w.Header().Set("Cache-Control", "no-store")
				w.WriteHeader(200)
				started = true
			}
			for _, ev := range evs {
				fmt.Fprintf(w, "id: %d\ndata: ", ev.Index)
				_ = enc.Encode(ev) // ends with the newline; a blank line ends the event
				fmt.Fprint(w, "\n")
			}
			flusher.Flush()
			if len(chs) == n.cfg.MaxListItems {
				continue // more may wait already
			}
		}
		select {
		case <-changed:
			continue
		case <-r.Context().Done():
			return
		case <-n.ctx.Done():
		case <-deadline.C:
		}
		if !sse {
			// One last look, so that the answer's index covers the
			// changes up to now.
			chs, next, err = poll()
			if err == nil && len(chs) == 0 {
				setIndex(w, next)
				writeJSON(w, 200, watchAnswer{Events: []WatchEvent{}, Index: next})
				return
			}
			continue
		}
		return
	}
}

// watchAnswer is the body of a long-poll watch answer.
type watchAnswer struct {
	Events []WatchEvent `json:"events"`
	// Index is the index to pass to the next watch.
	Index uint64 `json:"index"`
}

// watchGone is the body of a 410 answer to a watch.
type watchGone struct {
	Error string `json:"error"`
	// Index is the namespace's current index.
	Index uint64 `json:"index"`
}
