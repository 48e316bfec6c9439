package store

import "errors"

// Sentinel errors. Callers test them with errors.Is; the returned errors
// wrap them with detail.
var (
	// ErrKeyTooLarge: a key is longer than MaxKeyBytes (or empty).
	ErrKeyTooLarge = errors.New("store: key too large")
	// ErrValueTooLarge: a value is longer than MaxValueBytes.
	ErrValueTooLarge = errors.New("store: value too large")
	// ErrStoreFull: the write would take the store past Config.MaxBytes.
	ErrStoreFull = errors.New("store: store full")
	// ErrBadNamespace: a namespace name is empty or longer than MaxNamespaceBytes,
	// or the store already holds MaxNamespaces namespaces.
	ErrBadNamespace = errors.New("store: bad namespace")
	// ErrTooManyActors: a delta or digest names more actors than
	// Config.MaxActors allows the store to remember.
	ErrTooManyActors = errors.New("store: too many actors")
	// ErrMalformed: bytes from the network or a snapshot do not decode.
	ErrMalformed = errors.New("store: malformed encoding")
	// ErrVersion: an encoding carries a version this code does not know.
	ErrVersion = errors.New("store: unknown encoding version")
	// ErrChecksum: a snapshot's CRC32C does not match its body.
	ErrChecksum = errors.New("store: snapshot checksum mismatch")
)
