package node

import (
	"testing"
	"time"
)

// BenchmarkHostileConns measures what hostile TCP connections cost a node
// (issue: a header claiming 16 MiB cost 16 MiB; 200 idle connections
// locked members out). oversized=300: 300 connections, on channels D, A
// and S in turn, each send a frame header claiming 16 MiB - 1 and two
// bytes, then stay silent. idle=200: 200 connections send nothing. It
// reports the live heap and the resident memory the process grew by while
// they are open, and whether an anti-entropy exchange from another member
// succeeds meanwhile (sync-ok: 1 or 0), and how many strangers were closed
// to make room for newer ones (pending-full).
func BenchmarkHostileConns(b *testing.B) {
	channels := []byte{chanDeltas, chanAntiEntropy, chanSwim}
	for _, tc := range []struct {
		name    string
		conns   int
		payload func(i int) []byte
	}{
		{"oversized=300", 300, func(i int) []byte { return hugeHeader(channels[i%len(channels)]) }},
		{"idle=200", 200, func(int) []byte { return nil }},
	} {
		b.Run(tc.name, func(b *testing.B) {
			for b.Loop() {
				c := newCluster(b, 2, false)
				nd := c.nodes[0]
				heap0, rss0 := heapBytes(), rssBytes()
				recv0 := nd.tr.tcpRecv.Load()
				dialAll(b, nd.Addr().String(), tc.conns, tc.payload)
				// Wait until the node has read what was sent (members'
				// streams add to the count; the code before the fix never
				// read some of the S streams: at most 10 s).
				sent := uint64(0)
				for i := range tc.conns {
					sent += uint64(len(tc.payload(i)))
				}
				for deadline := time.Now().Add(10 * time.Second); nd.tr.tcpRecv.Load()-recv0 < sent && time.Now().Before(deadline); {
					time.Sleep(50 * time.Millisecond) // polling the node's progress
				}
				syncOK := 0.0
				if err := c.nodes[1].antiEntropyWith(nd.Addr()); err == nil {
					syncOK = 1
				}
				b.ReportMetric(float64(int64(heapBytes())-int64(heap0))/(1<<20), "heap-MiB")
				b.ReportMetric(float64(int64(rssBytes())-int64(rss0))/(1<<20), "rss-MiB")
				b.ReportMetric(syncOK, "sync-ok")
				b.ReportMetric(testutilCounter(nd.met.connsClosed.WithLabelValues(closedPendingFull)), "pending-full")
			}
		})
	}
}
