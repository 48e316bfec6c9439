package node

import (
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"unicode"
	"unicode/utf8"
)

// FuzzKeyPath checks the names and paths API clients send. ValidName agrees
// with a plain model (UTF-8, no control character, bounded); every key
// ValidKey accepts, escaped segment by segment as the CLI does, makes a
// path that canonicalPath accepts and that ServeMux routes, without a
// redirect, back to the same namespace and key; and a path canonicalPath
// accepts is never one ServeMux would redirect.
func FuzzKeyPath(f *testing.F) {
	for _, s := range []string{"a/b", "../x", "a//b", "dir/", "/k", ".", "a..b/.c", "k\x00", "\xff", "été/✓", "a%2Fb", "%2E%2E"} {
		f.Add(s)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("PUT /v1/kv/{ns}/{key...}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("X-Key", url.PathEscape(r.PathValue("key")))
	})
	f.Fuzz(func(t *testing.T, s string) {
		model := s != "" && len(s) <= 255 && utf8.ValidString(s) && strings.IndexFunc(s, unicode.IsControl) < 0
		if got := ValidName("name", s, 255) == nil; got != model {
			t.Fatalf("ValidName(%q) accepts: %v, model: %v", s, got, model)
		}
		if ValidKey(s) == nil {
			segs := strings.Split(s, "/")
			for i, seg := range segs {
				segs[i] = url.PathEscape(seg)
			}
			p := "/v1/kv/ns/" + strings.Join(segs, "/")
			if !canonicalPath(p) {
				t.Fatalf("key %q is valid but its path %q is not canonical", s, p)
			}
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("PUT", "/", nil)
			req.URL = &url.URL{Path: "/x", RawPath: p}
			req.URL.Path, _ = url.PathUnescape(p)
			mux.ServeHTTP(rec, req)
			if got, _ := url.PathUnescape(rec.Header().Get("X-Key")); rec.Code != 200 || got != s {
				t.Fatalf("key %q: path %q answered %d with key %q", s, p, rec.Code, got)
			}
		}
		p := "/" + s
		if u, err := url.Parse(p); err == nil && u.Opaque == "" && canonicalPath(u.EscapedPath()) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest("PUT", "/", nil)
			req.URL = &url.URL{Path: u.Path, RawPath: u.RawPath}
			mux.ServeHTTP(rec, req)
			if rec.Code/100 == 3 {
				t.Fatalf("canonical path %q redirected (%d)", u.EscapedPath(), rec.Code)
			}
		}
	})
}
