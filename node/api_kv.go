package node

import (
	"encoding/json"
	"fmt"
	"net/http"
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
}

// validKey checks a namespace and key from a path.
func validKey(w http.ResponseWriter, ns, key string) bool {
	switch {
	case ns == "" || len(ns) > store.MaxNamespaceBytes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("namespace: want 1 to %d bytes", store.MaxNamespaceBytes))
	case key == "" || len(key) > store.MaxKeyBytes:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key: want 1 to %d bytes", store.MaxKeyBytes))
	default:
		return true
	}
	return false
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
	v, ok := n.st.get(ns, key)
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
	if len(ns) > store.MaxNamespaceBytes {
		writeError(w, http.StatusBadRequest, "namespace too long")
		return
	}
	limit, cursor, ok := n.pageParams(w, r)
	if !ok {
		return
	}
	items, next := n.st.list(ns, r.URL.Query().Get("prefix"), cursor, limit)
	out := make([]KV, len(items))
	for i, kv := range items {
		out[i] = KV{Key: kv.Key, Value: kv.Value, StampMs: kv.Stamp.Millis()}
	}
	writeJSON(w, 200, map[string]any{"items": out, "next_cursor": next})
}

// handleWatch streams the changes of a namespace (optionally a key prefix)
// made after the request starts: as server-sent events when the client
// accepts text/event-stream, else as a long poll that returns the first
// changes (or none at the timeout, default 30s).
func (n *Node) handleWatch(w http.ResponseWriter, r *http.Request) {
	ns := r.PathValue("ns")
	if ns == "" || len(ns) > store.MaxNamespaceBytes {
		writeError(w, http.StatusBadRequest, "namespace: bad length")
		return
	}
	sse := strings.Contains(r.Header.Get("Accept"), "text/event-stream")
	timeout := 30 * time.Second
	if s := r.URL.Query().Get("timeout"); s != "" {
		d, err := time.ParseDuration(s)
		if err != nil || d <= 0 || d > 5*time.Minute {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("timeout %q: want a duration in (0, 5m]", s))
			return
		}
		timeout = d
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
	s.mu.Lock()
	sub := s.store.Subscribe(ns, r.URL.Query().Get("prefix"), 1024)
	s.mu.Unlock()
	n.subscribed.Add(1)
	defer n.subscribed.Add(-1)
	defer func() {
		s.mu.Lock()
		sub.Cancel()
		s.mu.Unlock()
	}()
	drain := func(max int) []WatchEvent {
		var out []WatchEvent
		s.mu.Lock()
		defer s.mu.Unlock()
		for len(out) < max {
			ev, ok := sub.Next()
			if !ok {
				break
			}
			out = append(out, WatchEvent{Key: ev.Key, Value: ev.Value, Deleted: ev.Deleted, StampMs: ev.Stamp.Millis(), Lagged: ev.Lagged})
		}
		return out
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	if sse {
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(200)
		flusher.Flush()
	}
	enc := json.NewEncoder(w)
	for {
		changed := s.wait()
		if evs := drain(n.cfg.MaxListItems); len(evs) > 0 {
			if !sse {
				writeJSON(w, 200, map[string]any{"events": evs})
				return
			}
			for _, ev := range evs {
				fmt.Fprint(w, "data: ")
				_ = enc.Encode(ev) // ends with the newline; a blank line ends the event
				fmt.Fprint(w, "\n")
			}
			flusher.Flush()
			continue
		}
		select {
		case <-changed:
		case <-r.Context().Done():
			return
		case <-n.stop:
			if !sse {
				writeJSON(w, 200, map[string]any{"events": []WatchEvent{}})
			}
			return
		case <-deadline.C:
			if !sse {
				writeJSON(w, 200, map[string]any{"events": []WatchEvent{}})
			}
			return
		}
	}
}
