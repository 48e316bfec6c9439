package node

import (
	"bytes"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/google/go-cmp/cmp"
)

func TestRequestBodyReadFrom(t *testing.T) {
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
			b := newRequestBody()
			defer b.release()
			if err := b.readFrom(tc.r, tc.hint); err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(tc.want, string(b.buf)); diff != "" {
				t.Errorf("body (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("error", func(t *testing.T) {
		b := newRequestBody()
		defer b.release()
		if err := b.readFrom(iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader("ab"))), -1); err != iotest.ErrTimeout {
			t.Fatalf("err %v, want %v", err, iotest.ErrTimeout)
		}
	})
}

// TestRequestBodyRefs: the buffer is held while the handler or any reader
// the transport was given holds it, whatever order they let go in, and a
// reader closed twice releases once.
func TestRequestBodyRefs(t *testing.T) {
	b := newRequestBody()
	if err := b.readFrom(strings.NewReader("hello"), 5); err != nil {
		t.Fatal(err)
	}
	r1 := b.reader()
	r2, _ := b.getBody()
	if got, _ := io.ReadAll(r2); !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("second reader read %q", got)
	}
	if got := b.refs.Load(); got != 3 {
		t.Fatalf("refs %d, want 3 (handler and two readers)", got)
	}
	b.release() // the handler is done; the transport still writes r1
	r2.Close()
	r2.Close()
	if got := b.refs.Load(); got != 1 {
		t.Fatalf("refs %d after the handler's release and a reader closed twice, want 1", got)
	}
	if got, _ := io.ReadAll(r1); !bytes.Equal(got, []byte("hello")) {
		t.Fatalf("first reader read %q after the handler's release", got)
	}
	r1.Close()
	if got := b.refs.Load(); got != 0 {
		t.Fatalf("refs %d, want 0", got)
	}
	defer func() {
		if recover() == nil {
			t.Error("a release past zero did not panic")
		}
	}()
	b.release()
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
