package radix

import "errors"

// The radix encodings are msgpack, written with wire's Append functions and
// read with wire.Reader (see docs/wire.md, section 12).

// ErrDecode is wrapped by every decoding error.
var ErrDecode = errors.New("radix: malformed encoding")
