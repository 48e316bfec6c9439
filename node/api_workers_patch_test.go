package node

import (
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestAPIPatchWorker: a load update had to resend the URL, model and
// labels; PATCH changes health and load alone.
func TestAPIPatchWorker(t *testing.T) {
	_, srv := newTestNode(t, nil)
	mustCall(t, srv, "PUT", "/v1/workers/w1", `{"url":"http://w1:8000","model":"m","load":1,"labels":{"zone":"a"}}`, 200)
	for _, tc := range []struct {
		name, body string
		code       int
		want       map[string]any // fields of the record after the call
	}{
		{name: "load alone", body: `{"load":7}`, code: 200, want: map[string]any{"load": 7.0, "health": "healthy", "url": "http://w1:8000", "labels": map[string]any{"zone": "a"}}},
		{name: "health alone", body: `{"health":"draining"}`, code: 200, want: map[string]any{"load": 7.0, "health": "draining", "url": "http://w1:8000", "labels": map[string]any{"zone": "a"}}},
		{name: "both", body: `{"health":"healthy","load":0}`, code: 200, want: map[string]any{"load": 0.0, "health": "healthy", "url": "http://w1:8000", "labels": map[string]any{"zone": "a"}}},
		{name: "nothing to change", body: `{}`, code: 400},
		{name: "negative load", body: `{"load":-1}`, code: 400},
		{name: "bad health", body: `{"health":"fine"}`, code: 400},
		{name: "a field PATCH does not change", body: `{"url":"http://x:1"}`, code: 400},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, m := call(t, srv, "PATCH", "/v1/workers/w1", tc.body)
			if code != tc.code {
				t.Fatalf("PATCH %s: %d %v, want %d", tc.body, code, m, tc.code)
			}
			if tc.want == nil {
				return
			}
			got := mustCall(t, srv, "GET", "/v1/workers/w1", "", 200)
			sub := map[string]any{}
			for k := range tc.want {
				sub[k] = got[k]
			}
			if diff := cmp.Diff(tc.want, sub); diff != "" {
				t.Errorf("worker after PATCH %s (-want +got):\n%s", tc.body, diff)
			}
		})
	}
	if code, m := call(t, srv, "PATCH", "/v1/workers/nobody", `{"load":1}`); code != 404 {
		t.Errorf("PATCH of an unknown worker: %d %v, want 404", code, m)
	}
}
