// Package wire defines the bytes meshnode puts on the network: the packet
// header and its flags, the numbered message types and their hand-written
// msgpack encodings, compound packets, the packer that fills one UDP packet
// up to a byte budget, TCP stream frames with chunking, lz4 compression with
// size and ratio caps, and the AES-256-GCM keyring.
//
// wire imports no other meshnode package. Every decoder checks each length it
// reads against a limit and the remaining bytes before it allocates, and
// every error it returns matches one of the sentinel errors of this package
// under errors.Is. The format is specified byte for byte in docs/wire.md.
package wire
