package server

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/meshnode/meshnode/engine"
)

// BenchmarkServer measures the emulator's own cost per request over
// loopback HTTP, with prefill and decode made nearly instant (a billion
// tokens per second) so that only the server's work shows: what a proxy
// benchmark pays for its upstream. One client, keep-alive, 4 output tokens,
// a 200-byte prompt sharing its first 160 bytes with every other.
func BenchmarkServer(b *testing.B) {
	for _, stream := range []bool{false, true} {
		name := map[bool]string{false: "non-streaming", true: "streaming"}[stream]
		b.Run(name, func(b *testing.B) {
			s, err := New(Config{Addr: "127.0.0.1:0", Engine: engine.Config{PrefillTPS: 1e9, DecodeTPS: 1e9, MaxQueue: 1 << 16}})
			if err != nil {
				b.Fatal(err)
			}
			if err := s.Start(context.Background()); err != nil {
				b.Fatal(err)
			}
			defer s.Close()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 4}}
			url := "http://" + s.Addr() + "/v1/completions"
			body := `{"prompt":"` + strings.Repeat("p", 160) + `%s","max_tokens":4,"stream":` + map[bool]string{false: "false", true: "true"}[stream] + `}`
			i := 0
			b.ReportAllocs()
			start := time.Now()
			for b.Loop() {
				i++
				tail := strings.Repeat(string(rune('a'+i%26)), 40)
				resp, err := client.Post(url, "application/json", strings.NewReader(strings.Replace(body, "%s", tail, 1)))
				if err != nil {
					b.Fatal(err)
				}
				if _, err := io.Copy(io.Discard, resp.Body); err != nil {
					b.Fatal(err)
				}
				resp.Body.Close()
				if resp.StatusCode != 200 {
					b.Fatalf("status %d", resp.StatusCode)
				}
			}
			b.ReportMetric(float64(i)/time.Since(start).Seconds(), "requests/s")
		})
	}
}
