package store

import "github.com/meshnode/meshnode/wire"

// The store's encodings are msgpack, written with wire's Append functions
// and read with wire.Reader (see docs/wire.md, section 11).

// reader is a wire.Reader whose errors wrap ErrMalformed, plus the reads
// of the store's own records (name, actorRef, seq, readColumn).
type reader struct{ wire.Reader }

func newReader(b []byte) reader { return reader{wire.NewReader(b, ErrMalformed)} }
