package kvevents

import (
	"bytes"
	"encoding/binary"
	"testing"
)

// FuzzGuardScan feeds the ZMTP frame guard arbitrary streams cut at
// arbitrary points (the bytes come from any engine endpoint a worker
// record names): it never panics, the cut does not change its verdict, and
// a stream it passes has no frame or message over the caps.
func FuzzGuardScan(f *testing.F) {
	greeting := make([]byte, zmtpGreetingBytes)
	f.Add(append(greeting, 0x01, 2, 'a', 'b', 0x00, 1, 'c'), uint8(3))
	f.Add(append(greeting, binary.BigEndian.AppendUint64([]byte{flagLong}, MaxFrameBytes+1)...), uint8(1))
	f.Add(append(greeting, bytes.Repeat([]byte{flagMore, 0}, maxFramesPerMessage+1)...), uint8(7))
	f.Add(append(greeting, flagCommand, 5, 'R', 'E', 'A', 'D', 'Y'), uint8(64))
	f.Fuzz(func(t *testing.T, stream []byte, chunk uint8) {
		whole := guardConn{greeting: zmtpGreetingBytes}
		errWhole := whole.scan(stream)
		cut := guardConn{greeting: zmtpGreetingBytes}
		step := int(chunk)%97 + 1
		var errCut error
		for rest := stream; len(rest) > 0 && errCut == nil; {
			k := min(step, len(rest))
			errCut = cut.scan(rest[:k])
			rest = rest[k:]
		}
		if (errWhole == nil) != (errCut == nil) {
			t.Fatalf("whole: %v; in chunks of %d: %v", errWhole, step, errCut)
		}
		if errWhole == nil && (whole.msgBytes > MaxFrameBytes || whole.frames > maxFramesPerMessage) {
			t.Fatalf("passed a message of %d bytes in %d frames", whole.msgBytes, whole.frames)
		}
	})
}
