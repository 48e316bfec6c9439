package node

import (
	"bytes"
	"context"
	"io"
	"net/http/httptest"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestReadBody(t *testing.T) {
	long := strings.Repeat("0123456789", 1000)
	for _, tc := range []struct {
		name string
		r    io.Reader
		hint int64
		want string
	}{
		{"declared length", strings.NewReader(long), int64(len(long)), long},
		{"unknown length", strings.NewReader(long), -1, long},
		{"one byte a read", iotest.OneByteReader(strings.NewReader("abc")), -1, "abc"},
		{"empty", strings.NewReader(""), 0, ""},
		{"data with EOF", iotest.DataErrReader(strings.NewReader("abc")), 3, "abc"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := readBody(tc.r, tc.hint)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(got)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("one allocation for a declared length", func(t *testing.T) {
		if n := testing.AllocsPerRun(50, func() { readBody(strings.NewReader(long), int64(len(long))) }); n > 2 {
			t.Errorf("%v allocations, want at most 2 (the buffer and the reader)", n)
		}
	})
	t.Run("error", func(t *testing.T) {
		if _, err := readBody(iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("ab"))), -1); err != iotest.ErrTimeout {
			t.Fatalf("err %v, want %v", err, iotest.ErrTimeout)
		}
	})
}

// TestUpstreamRequestBodyInMemory: the body the proxy sends is one
// net/http knows to be in memory (io.NopCloser of a bytes.Reader), so the
// transport writes headers and body at once; a reader of another type
// makes it flush the headers on their own, one more write and one more
// wake-up of the engine per request. GetBody gives the body again.
func TestUpstreamRequestBodyInMemory(t *testing.T) {
	in := httptest.NewRequest("POST", "/v1/chat/completions", nil)
	base, _ := url.Parse("http://127.0.0.1:9/prefix/")
	out := upstreamRequest(context.Background(), in, base, []byte("hello"))
	if got, want := reflect.TypeOf(out.Body), reflect.TypeOf(io.NopCloser(bytes.NewReader(nil))); got != want {
		t.Errorf("body of type %v, want %v", got, want)
	}
	if out.URL.String() != "http://127.0.0.1:9/prefix/v1/chat/completions" || out.ContentLength != 5 || out.Host != "" {
		t.Errorf("url %s, length %d, host %q", out.URL, out.ContentLength, out.Host)
	}
	for range 2 {
		rc, err := out.GetBody()
		if err != nil {
			t.Fatal(err)
		}
		if b, _ := io.ReadAll(rc); string(b) != "hello" {
			t.Fatalf("GetBody gave %q", b)
		}
	}
}

func TestURLCache(t *testing.T) {
	var c urlCache
	u1, err := c.parse("http://127.0.0.1:9/v1")
	if err != nil {
		t.Fatal(err)
	}
	u2, _ := c.parse("http://127.0.0.1:9/v1")
	if u1 != u2 || u1.Host != "127.0.0.1:9" || u1.Path != "/v1" {
		t.Fatalf("parse: %v and %v, want one cached URL of host 127.0.0.1:9 path /v1", u1, u2)
	}
	if _, err := c.parse("http://[::1"); err == nil {
		t.Fatal("a bad URL parsed")
	}
	for i := range maxCachedURLs + 10 {
		if _, err := c.parse("http://127.0.0.1:" + string(rune('0'+i%10)) + "/" + strings.Repeat("x", i)); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.n.Load(); n > maxCachedURLs {
		t.Fatalf("%d URLs cached, want at most %d", n, maxCachedURLs)
	}
}
