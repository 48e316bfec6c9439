package bench

import (
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
)

// TestRawClient: the load generator reads answers of declared length and
// chunked ones to their end, keeps one connection for requests in
// sequence, and fails on a status other than 200.
func TestRawClient(t *testing.T) {
	var dials atomic.Int32
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		switch r.URL.Path {
		case "/fail":
			http.Error(w, "no", 500)
		case "/stream":
			for range 3 {
				io.WriteString(w, "data: x\n\n")
				w.(http.Flusher).Flush()
			}
		default:
			w.Write(body)
		}
	}))
	srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			dials.Add(1)
		}
	}
	srv.Start()
	defer srv.Close()
	for _, tc := range []struct {
		path string
		want int
	}{{"/echo", 5}, {"/stream", 27}} {
		rc, err := newRawClient(srv.URL+tc.path, "hello")
		if err != nil {
			t.Fatal(err)
		}
		for range 3 {
			n, err := rc.do()
			if err != nil || n != tc.want {
				t.Fatalf("%s: %d body bytes, %v; want %d", tc.path, n, err, tc.want)
			}
		}
		rc.close()
	}
	if d := dials.Load(); d != 2 {
		t.Errorf("%d connections for two clients of three requests each, want 2", d)
	}
	rc, _ := newRawClient(srv.URL+"/fail", "x")
	if _, err := rc.do(); err == nil || !strings.Contains(err.Error(), "500") {
		t.Fatalf("status 500: err %v", err)
	}
}
