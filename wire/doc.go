// Package wire defines the bytes meshnode puts on the network: the packet
// header and its flags, the numbered message types and their hand-written
// msgpack encodings, compound packets, the packer that fills one UDP packet
// up to a byte budget, TCP stream frames with chunking, lz4 compression with
// size and ratio caps, and the AES-256-GCM keyring.
//
// wire imports no other meshnode package. Every decoder checks each length it
// reads against a limit and the remaining bytes before it allocates, and
// every error it returns matches one of the sentinel errors of this package
// under errors.Is, except the errors of an io.Reader or io.Writer the caller
// passes in, which are returned as they are (io.EOF at the clean end of a
// stream). The format is specified byte for byte in docs/wire.md.
//
// # Use
//
// A Codec holds the configuration (cluster label, Keyring, budget, limits)
// and the scratch buffers of the hot path; it is not safe for concurrent
// use, so each goroutine that sends or receives owns one. Codecs may share a
// Keyring, which is safe for concurrent use and may be changed (keys
// installed, rotated, plaintext switches flipped) while traffic flows.
//
// Sending gossip:
//
//	pkt, left, err := c.Pack(buf[:0], queue, left[:0]) // fills up to the budget
//	// send pkt if len(pkt) > 0; left holds, in order, what did not fit
//
// Receiving a packet:
//
//	body, err := c.OpenPacket(pkt) // version, checksum or decryption, decompression
//	r := wire.NewPartReader(body)
//	for {
//		typ, b, err := r.Next()
//		if err == io.EOF { break }
//		if errors.Is(err, wire.ErrUnknownType) { unknown++; continue }
//		if err != nil { ...; break }
//		switch typ {
//		case wire.TypePing: err = c.Decode(&ping, b) // reuses ping's strings
//		...
//		}
//	}
//
// Streams use AppendFrame or WriteFrames to send and ReadFrame plus a
// Reassembler to receive. Bodies returned by OpenPacket, DecodeFrame and
// ReadFrame alias the codec's buffers until its next decoding call; decoded
// messages never alias their input.
//
// # msgpack for other encodings
//
// Packages that encode records of their own inside Data bodies or on disk
// (store, radix) use the same msgpack subset through AppendArrayHeader,
// AppendUint, AppendBool, AppendNil, AppendStr, AppendBin, AppendBinString
// and AppendBinHeader, which always write the shortest standard form, and
// Reader, which keeps its first error, wraps the caller's sentinel error,
// bounds every length by the caller's limit and the bytes left, and does not
// allocate. wire decodes its own message bodies with the same Reader:
//
//	dst = wire.AppendArrayHeader(dst, 2)
//	dst = wire.AppendStr(dst, name)
//	dst = wire.AppendUint(dst, gen)
//
//	r := wire.NewReader(b, ErrMalformed)
//	r.ExpectArray(2)
//	name, gen := r.Str(255), r.Uint()
//	r.End()
//	if err := r.Err(); err != nil { ... } // errors.Is(err, ErrMalformed)
package wire
