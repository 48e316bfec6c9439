package node

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/meshnode/meshnode/store"
	"github.com/prometheus/client_golang/prometheus"
)

// keys returns "key=value" (or "key deleted") for each change.
func changeKeys(chs []change) []string {
	out := []string{}
	for _, c := range chs {
		if c.ev.Deleted {
			out = append(out, c.ev.Key+" deleted")
		} else {
			out = append(out, c.ev.Key+"="+c.ev.Value)
		}
	}
	return out
}

func put(ns, key, value string) store.Event {
	return store.Event{Namespace: ns, Key: key, Value: value}
}

func TestHistorySince(t *testing.T) {
	const start = 1000
	h := newHistory(100, 1<<20, start)
	h.add(put("a", "k1", "1"))                                   // 1001
	h.add(put("b", "x", "1"))                                    // 1002
	h.add(put("a", "k2", "2"))                                   // 1003
	h.add(store.Event{Namespace: "a", Key: "k1", Deleted: true}) // 1004
	if got := []uint64{h.nsIndex("a"), h.nsIndex("b"), h.nsIndex("none")}; !cmp.Equal(got, []uint64{1004, 1002, start}) {
		t.Fatalf("nsIndex a, b, none = %v, want [1004 1002 %d]", got, start)
	}
	tests := []struct {
		name       string
		ns, prefix string
		after      uint64
		max        int
		want       []string
		wantNext   uint64
		wantErr    error
	}{
		{"all from the start", "a", "", start, 10, []string{"k1=1", "k2=2", "k1 deleted"}, 1004, nil},
		{"after an index", "a", "", 1001, 10, []string{"k2=2", "k1 deleted"}, 1004, nil},
		{"after another namespace's index", "a", "", 1002, 10, []string{"k2=2", "k1 deleted"}, 1004, nil},
		{"prefix", "a", "k2", start, 10, []string{"k2=2"}, 1004, nil},
		{"nothing new", "a", "", 1004, 10, []string{}, 1004, nil},
		{"truncated at max", "a", "", start, 2, []string{"k1=1", "k2=2"}, 1003, nil},
		{"unknown namespace", "none", "", start, 10, []string{}, start, nil},
		{"before this process", "a", "", start - 1, 10, nil, 1004, errIndexGone},
		{"from the future", "a", "", 1005, 10, nil, 1004, errIndexGone},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			chs, next, err := h.since(tc.ns, tc.prefix, tc.after, tc.max)
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err %v, want %v", err, tc.wantErr)
			}
			if err == nil {
				if d := cmp.Diff(tc.want, changeKeys(chs)); d != "" {
					t.Errorf("changes (-want +got):\n%s", d)
				}
			}
			if next != tc.wantNext {
				t.Errorf("next %d, want %d", next, tc.wantNext)
			}
		})
	}
}

func TestHistoryBounds(t *testing.T) {
	t.Run("events per namespace", func(t *testing.T) {
		h := newHistory(2, 1<<20, 0)
		for i := range 3 {
			h.add(put("a", fmt.Sprint("k", i), "v")) // 1, 2, 3
		}
		h.add(put("b", "x", "v")) // 4: b's history is its own
		if _, _, err := h.since("a", "", 0, 10); !errors.Is(err, errIndexGone) {
			t.Fatalf("since 0 after change 1 was evicted: err %v, want errIndexGone", err)
		}
		chs, _, err := h.since("a", "", 1, 10)
		if err != nil || !cmp.Equal(changeKeys(chs), []string{"k1=v", "k2=v"}) {
			t.Fatalf("since 1: %v, %v", changeKeys(chs), err)
		}
		if chs, _, err := h.since("b", "", 0, 10); err != nil || len(chs) != 1 {
			t.Fatalf("namespace b lost its change to a's bound: %v, %v", changeKeys(chs), err)
		}
		if h.evicted != 1 {
			t.Fatalf("evicted %d, want 1", h.evicted)
		}
	})
	t.Run("bytes of all namespaces, oldest first", func(t *testing.T) {
		h := newHistory(100, 3*(changeOverheadBytes+10), 0)
		h.add(put("a", "k", "123456789"))            // 1, 10 bytes
		h.add(put("b", "k", "123456789"))            // 2
		h.add(put("c", "k", "123456789"))            // 3: at the bound
		h.add(put("c", "k", strings.Repeat("x", 9))) // 4: evicts 1 (a)
		if _, _, err := h.since("a", "", 0, 10); !errors.Is(err, errIndexGone) {
			t.Fatalf("a's change should be the one evicted: err %v", err)
		}
		for _, ns := range []string{"b", "c"} {
			if _, _, err := h.since(ns, "", 0, 10); err != nil {
				t.Fatalf("%s: %v", ns, err)
			}
		}
		if h.bytes > h.maxBytes {
			t.Fatalf("%d bytes kept, bound %d", h.bytes, h.maxBytes)
		}
	})
	t.Run("the eviction queue stays bounded", func(t *testing.T) {
		for _, tc := range []struct {
			name      string
			maxEvents int
			maxBytes  int64
			wantKept  int
		}{
			{"evicted per namespace", 4, 1 << 30, 12},
			{"evicted by bytes", 1 << 20, 10 * (changeOverheadBytes + 2), 10},
		} {
			h := newHistory(tc.maxEvents, tc.maxBytes, 0)
			for i := range 100000 {
				h.add(put(fmt.Sprint("ns", i%3), "k", "v"))
				if c := cap(h.order); c > 4*h.kept+256 {
					t.Fatalf("%s: after %d changes the eviction queue's array holds %d entries for %d kept changes", tc.name, i+1, c, h.kept)
				}
			}
			if h.kept != tc.wantKept {
				t.Fatalf("%s: kept %d changes, want %d", tc.name, h.kept, tc.wantKept)
			}
			for ns, nh := range h.ns {
				if c := cap(nh.changes); c > 4*(len(nh.changes)-nh.head)+256 {
					t.Fatalf("%s: namespace %s holds an array of %d for %d changes", tc.name, ns, c, len(nh.changes)-nh.head)
				}
			}
		}
	})
	t.Run("a reset voids older indexes", func(t *testing.T) {
		h := newHistory(100, 1<<20, 0)
		h.add(put("a", "k", "v"))        // 1
		h.add(store.Event{Lagged: true}) // reset: floor 2
		if _, _, err := h.since("a", "", 1, 10); !errors.Is(err, errIndexGone) {
			t.Fatalf("index before the reset: err %v, want errIndexGone", err)
		}
		if got := h.nsIndex("a"); got != 2 {
			t.Fatalf("index after the reset %d, want 2", got)
		}
		h.add(put("a", "k2", "v")) // 3
		chs, next, err := h.since("a", "", 2, 10)
		if err != nil || next != 3 || !cmp.Equal(changeKeys(chs), []string{"k2=v"}) {
			t.Fatalf("since the reset: %v, %d, %v", changeKeys(chs), next, err)
		}
	})
}

// watchNode is a node that is not started, for tests in a synctest bubble:
// its API is served in-process, without sockets.
func watchNode(t *testing.T, mod func(*Config)) *Node {
	t.Helper()
	cfg := Config{Name: "t1", BindAddr: "127.0.0.1:0", APIAddr: "off", Registerer: prometheus.NewRegistry(), MaxListItems: 50}
	if mod != nil {
		mod(&cfg)
	}
	n, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// pending is an API request served in a goroutine.
type pending struct {
	rec  *httptest.ResponseRecorder
	done chan struct{}
}

func serve(n *Node, method, target string, hdr map[string]string) *pending {
	p := &pending{rec: httptest.NewRecorder(), done: make(chan struct{})}
	req := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	go func() {
		defer close(p.done)
		n.Handler().ServeHTTP(p.rec, req)
	}()
	return p
}

func (p *pending) finished() bool {
	select {
	case <-p.done:
		return true
	default:
		return false
	}
}

// index returns the answer's X-Meshnode-Index, checking it against the
// body's index when there is one.
func (p *pending) index(t *testing.T) (uint64, map[string]any) {
	t.Helper()
	var body map[string]any
	if err := json.Unmarshal(p.rec.Body.Bytes(), &body); err != nil {
		t.Fatalf("answer %d is not JSON: %q", p.rec.Code, p.rec.Body.String())
	}
	h, err := strconv.ParseUint(p.rec.Header().Get(indexHeader), 10, 64)
	if err != nil {
		t.Fatalf("answer %d without a valid %s header: %v", p.rec.Code, indexHeader, err)
	}
	if v, ok := body["index"]; ok && uint64(v.(float64)) != h {
		t.Fatalf("body index %v, header %d", v, h)
	}
	return h, body
}

// eventLines returns "key=value" or "key deleted" for each event of a
// long-poll answer.
func eventLines(t *testing.T, body map[string]any) []string {
	t.Helper()
	out := []string{}
	evs, ok := body["events"].([]any)
	if !ok {
		t.Fatalf("no events in %v", body)
	}
	for _, e := range evs {
		m := e.(map[string]any)
		if m["deleted"] == true {
			out = append(out, m["key"].(string)+" deleted")
		} else {
			out = append(out, fmt.Sprintf("%s=%s", m["key"], m["value"]))
		}
	}
	return out
}

func TestAPIWatchIndexLosesNothing(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := watchNode(t, nil)
		write := func(key, value string) {
			t.Helper()
			var err error
			if value == "" {
				err = n.st.del("app", key, time.Now())
			} else {
				err = n.st.put("app", key, []byte(value), time.Now())
			}
			if err != nil {
				t.Fatal(err)
			}
		}
		write("old", "0")
		list := serve(n, "GET", "/v1/kv/app", nil)
		<-list.done
		idx, _ := list.index(t)

		// Changes made while no poll is waiting are all answered, at once
		// and in order, by the next poll that names the previous index.
		write("a", "1")
		write("a", "2")
		write("b", "1")
		write("a", "")
		var seen []string
		p := serve(n, "GET", fmt.Sprintf("/v1/watch/app?index=%d&timeout=1m", idx), nil)
		synctest.Wait()
		if !p.finished() {
			t.Fatal("a watch whose index is behind waits instead of answering at once")
		}
		next, body := p.index(t)
		seen = append(seen, eventLines(t, body)...)
		if next <= idx {
			t.Fatalf("index did not advance: %d after %d", next, idx)
		}

		// Nothing after the index: the poll waits for the next change.
		p = serve(n, "GET", fmt.Sprintf("/v1/watch/app?index=%d&timeout=1m", next), nil)
		synctest.Wait()
		if p.finished() {
			t.Fatalf("a watch at the current index answered at once: %s", p.rec.Body.String())
		}
		write("c", "1")
		write("c", "2") // may or may not be in the same answer
		<-p.done
		next, body = p.index(t)
		seen = append(seen, eventLines(t, body)...)
		if len(seen) < 6 {
			p = serve(n, "GET", fmt.Sprintf("/v1/watch/app?index=%d&timeout=1m", next), nil)
			<-p.done
			next, body = p.index(t)
			seen = append(seen, eventLines(t, body)...)
		}
		want := []string{"a=1", "a=2", "b=1", "a deleted", "c=1", "c=2"}
		if d := cmp.Diff(want, seen); d != "" {
			t.Fatalf("changes seen through polls (-want +got):\n%s", d)
		}

		// No change until the timeout: an empty answer with the same index.
		p = serve(n, "GET", fmt.Sprintf("/v1/watch/app?index=%d&timeout=10s", next), nil)
		time.Sleep(10*time.Second - time.Millisecond)
		synctest.Wait()
		if p.finished() {
			t.Fatal("the watch answered before its timeout")
		}
		time.Sleep(time.Millisecond)
		<-p.done
		got, body := p.index(t)
		if lines := eventLines(t, body); len(lines) != 0 || got != next {
			t.Fatalf("at the timeout: events %v, index %d; want none and %d", lines, got, next)
		}

		// Changes outside the prefix do not end a watch of the prefix,
		// and a read's index covers them.
		p = serve(n, "GET", fmt.Sprintf("/v1/watch/app?prefix=x&index=%d&timeout=1m", next), nil)
		write("y", "1")
		synctest.Wait()
		if p.finished() {
			t.Fatalf("a change outside the prefix ended the watch: %s", p.rec.Body.String())
		}
		get := serve(n, "GET", "/v1/kv/app/y", nil)
		<-get.done
		if gi, _ := get.index(t); gi <= next {
			t.Fatalf("read index %d does not cover the change after %d", gi, next)
		}
		write("x1", "1")
		<-p.done
		if _, body := p.index(t); !cmp.Equal(eventLines(t, body), []string{"x1=1"}) {
			t.Fatalf("prefix watch: %v", body)
		}
	})
}

func TestAPIWatchIndexGone(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := watchNode(t, func(c *Config) { c.WatchHistory = 2 })
		list := serve(n, "GET", "/v1/kv/app", nil)
		<-list.done
		idx, _ := list.index(t)
		for i := range 3 {
			if err := n.st.put("app", fmt.Sprint("k", i), []byte("v"), time.Now()); err != nil {
				t.Fatal(err)
			}
		}
		cases := []struct {
			name   string
			target string
			hdr    map[string]string
			code   int
		}{
			{"evicted", fmt.Sprintf("/v1/watch/app?index=%d", idx), nil, http.StatusGone},
			{"evicted, SSE resume", "/v1/watch/app", map[string]string{"Accept": "text/event-stream", "Last-Event-ID": fmt.Sprint(idx)}, http.StatusGone},
			{"from the future", fmt.Sprintf("/v1/watch/app?index=%d", idx+100), nil, http.StatusGone},
			{"kept", fmt.Sprintf("/v1/watch/app?index=%d", idx+1), nil, http.StatusOK},
			{"not a number", "/v1/watch/app?index=soon", nil, http.StatusBadRequest},
			{"since is not a parameter", fmt.Sprintf("/v1/watch/app?since=%d", idx), nil, http.StatusBadRequest},
		}
		for _, tc := range cases {
			p := serve(n, "GET", tc.target, tc.hdr)
			<-p.done
			if p.rec.Code != tc.code {
				t.Fatalf("%s: status %d, want %d: %s", tc.name, p.rec.Code, tc.code, p.rec.Body.String())
			}
			if tc.code == http.StatusGone {
				cur, body := p.index(t)
				if msg, _ := body["error"].(string); !strings.Contains(msg, "list the namespace again") {
					t.Fatalf("%s: 410 body %v does not tell the client to list again", tc.name, body)
				}
				if cur != idx+3 {
					t.Fatalf("%s: 410 index %d, want the current %d", tc.name, cur, idx+3)
				}
			}
		}

		// A restore changes the store without events: every earlier index
		// is void, and a blocked watch is told at once.
		snap := func() []byte {
			n.st.mu.Lock()
			defer n.st.mu.Unlock()
			return n.st.store.AppendSnapshot(nil)
		}()
		p := serve(n, "GET", fmt.Sprintf("/v1/watch/app?index=%d&timeout=1m", idx+3), nil)
		synctest.Wait()
		n.st.mu.Lock()
		err := n.st.store.Restore(snap)
		n.st.changedLocked()
		n.st.mu.Unlock()
		if err != nil {
			t.Fatal(err)
		}
		<-p.done
		if p.rec.Code != http.StatusGone {
			t.Fatalf("watch across a restore: status %d: %s", p.rec.Code, p.rec.Body.String())
		}
	})
}

// sseEvent is one server-sent event.
type sseEvent struct {
	ID string
	WatchEvent
}

// readEvents reads count events from an SSE stream.
func readEvents(t *testing.T, sc *bufio.Scanner, count int) []sseEvent {
	t.Helper()
	var out []sseEvent
	var cur sseEvent
	for len(out) < count && sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "id: "):
			cur.ID = strings.TrimPrefix(line, "id: ")
		case strings.HasPrefix(line, "data: "):
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &cur.WatchEvent); err != nil {
				t.Fatal(err)
			}
		case line == "":
			out = append(out, cur)
			cur = sseEvent{}
		}
	}
	if len(out) < count {
		t.Fatalf("stream ended after %d of %d events: %v", len(out), count, sc.Err())
	}
	return out
}

func TestAPIWatchSSEResume(t *testing.T) {
	n, srv := newTestNode(t, nil)
	code, m := call(t, srv, "GET", "/v1/kv/app", "")
	if code != 200 {
		t.Fatalf("list: %d", code)
	}
	idx := uint64(m["index"].(float64))
	for _, k := range []string{"a", "b"} {
		if err := n.st.put("app", k, []byte("1"), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	open := func(hdr map[string]string, q string) (*bufio.Scanner, func()) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", srv.URL+"/v1/watch/app?timeout=1m"+q, nil)
		req.Header.Set("Accept", "text/event-stream")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		if resp.StatusCode != 200 {
			t.Fatalf("watch: status %d", resp.StatusCode)
		}
		return bufio.NewScanner(resp.Body), func() { cancel(); resp.Body.Close() }
	}
	sc, stop := open(nil, fmt.Sprintf("&index=%d", idx))
	first := readEvents(t, sc, 2)
	stop()
	// Changes made while the client is away.
	if err := n.st.put("app", "c", []byte("1"), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := n.st.del("app", "a", time.Now()); err != nil {
		t.Fatal(err)
	}
	sc, stop = open(map[string]string{"Last-Event-ID": first[0].ID}, "")
	defer stop()
	second := readEvents(t, sc, 3)
	var got []string
	for _, ev := range append(first, second...) {
		if ev.ID != fmt.Sprint(ev.Index) {
			t.Fatalf("event id %q, index %d", ev.ID, ev.Index)
		}
		got = append(got, fmt.Sprintf("%s deleted=%v", ev.Key, ev.Deleted))
	}
	// The second stream resumes after the first event: b again, then what
	// happened while away.
	want := []string{"a deleted=false", "b deleted=false", "b deleted=false", "c deleted=false", "a deleted=true"}
	if d := cmp.Diff(want, got); d != "" {
		t.Fatalf("events (-want +got):\n%s", d)
	}
}

func TestAPIWatchSSELagsBehindHistory(t *testing.T) {
	n, srv := newTestNode(t, func(c *Config) { c.WatchHistory = 2 })
	req, _ := http.NewRequest("GET", srv.URL+"/v1/watch/app?timeout=1m", nil)
	req.Header.Set("Accept", "text/event-stream")
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	start, err := strconv.ParseUint(resp.Header.Get(indexHeader), 10, 64)
	if resp.StatusCode != 200 || err != nil {
		t.Fatalf("watch: %d, index %q", resp.StatusCode, resp.Header.Get(indexHeader))
	}
	// Three changes merged at once evict the first before the stream can
	// send it.
	other, err := store.New(store.Config{Actor: store.Actor{Name: "other", Gen: 1}})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"a", "b", "c"} {
		if err := other.Put("app", k, []byte("v"), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	delta, _, _ := other.AppendDeltas(nil, 1<<20)
	if err := n.applyStore(delta); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(resp.Body)
	var lines []string
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	want := []string{fmt.Sprintf(`data: {"lagged":true,"index":%d}`, start+3), ""}
	if d := cmp.Diff(want, lines); d != "" {
		t.Fatalf("stream (-want +got):\n%s", d)
	}
}

func TestAPIWorkerReadsCarryTheIndex(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		n := watchNode(t, nil)
		list := serve(n, "GET", "/v1/workers", nil)
		<-list.done
		idx, _ := list.index(t)
		if _, err := n.st.putWorker(Worker{ID: "w1", URL: "http://w1", Model: "m", Health: "healthy"}, time.Now()); err != nil {
			t.Fatal(err)
		}
		get := serve(n, "GET", "/v1/workers/w1", nil)
		<-get.done
		if gi, _ := get.index(t); gi != idx+1 {
			t.Fatalf("worker read index %d, want %d", gi, idx+1)
		}
		p := serve(n, "GET", fmt.Sprintf("/v1/watch/workers?index=%d", idx), nil)
		<-p.done
		if _, body := p.index(t); len(eventLines(t, body)) != 1 {
			t.Fatalf("watch of workers from the list's index: %v", body)
		}
	})
}

// BenchmarkWatchHistory measures what the watch history costs each change
// the node applies (add, with the default bounds and 100-byte values over
// 1000 namespaces, evicting all along) and what a poll costs (since, one
// namespace holding DefaultWatchHistory changes, answering the last 10).
func BenchmarkWatchHistory(b *testing.B) {
	val := strings.Repeat("v", 100)
	b.Run("add", func(b *testing.B) {
		h := newHistory(DefaultWatchHistory, DefaultWatchHistoryBytes, 0)
		evs := make([]store.Event, 1000)
		for i := range evs {
			evs[i] = put(fmt.Sprint("ns", i), fmt.Sprint("key-", i), val)
		}
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			h.add(evs[i%len(evs)])
			i++
		}
		b.ReportMetric(float64(h.bytes)/(1<<20), "history_MiB")
		b.ReportMetric(float64(h.kept), "kept_changes")
	})
	b.Run("since", func(b *testing.B) {
		h := newHistory(DefaultWatchHistory, DefaultWatchHistoryBytes, 0)
		for i := range DefaultWatchHistory {
			h.add(put("ns", fmt.Sprint("key-", i), val))
		}
		after := h.index - 10
		b.ReportAllocs()
		for b.Loop() {
			if chs, _, err := h.since("ns", "", after, 1000); err != nil || len(chs) != 10 {
				b.Fatal(len(chs), err)
			}
		}
	})
}
