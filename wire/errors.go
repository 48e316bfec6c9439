package wire

import "errors"

// Sentinel errors. Every error returned by this package matches exactly one of
// them under errors.Is (the decryption reasons below refine ErrDecrypt and
// match it as well); the text of a returned error starts with the sentinel's
// text and adds context after a colon.
var (
	// ErrTooLarge reports a length above a configured limit: a packet over
	// the budget, a frame over the frame cap, a decompressed size over its
	// cap or ratio, a transfer over the reassembly bound.
	ErrTooLarge = errors.New("wire: too large")
	// ErrTruncated reports input that ends before a length it declared.
	ErrTruncated = errors.New("wire: truncated")
	// ErrBadChecksum reports a CRC32C mismatch on a plaintext packet.
	ErrBadChecksum = errors.New("wire: bad checksum")
	// ErrDecrypt reports an encrypted packet or frame that cannot be opened
	// (unknown key ID, wrong key, wrong label, tampering), an encrypted packet
	// when no keyring is configured, or a plaintext one while plaintext is
	// not accepted.
	ErrDecrypt = errors.New("wire: cannot decrypt")
	// ErrUnknownKey reports an encrypted packet or frame under a key ID
	// this keyring does not hold, while it holds others: the sender uses
	// another key. It matches ErrDecrypt.
	ErrUnknownKey error = &reason{"unknown key ID"}
	// ErrAuth reports an encrypted packet or frame whose key ID is
	// installed but whose authentication fails: the sender's cluster label
	// differs (the label is authenticated, never sent, so a wrong label and
	// a wrong key under the same ID look alike), or the bytes were forged
	// or damaged. It matches ErrDecrypt.
	ErrAuth error = &reason{"authentication failed"}
	// ErrPlaintextRefused reports a plaintext packet or frame while keys are
	// installed and plaintext is not accepted (Keyring.AcceptPlaintext
	// off). It matches ErrDecrypt.
	ErrPlaintextRefused error = &reason{"plaintext refused"}
	// ErrEncryptedRefused reports an encrypted packet or frame at a codec
	// with no keyring or an empty one: the sender encrypts, this node does
	// not. It matches ErrDecrypt.
	ErrEncryptedRefused error = &reason{"encrypted input without a key"}
	// ErrUnknownType reports a message type this version does not know. In a
	// compound packet the part is skipped and the rest still decodes.
	ErrUnknownType = errors.New("wire: unknown message type")
	// ErrUnsupportedVersion reports a packet version outside
	// [MinVersion, MaxVersion].
	ErrUnsupportedVersion = errors.New("wire: unsupported version")
	// ErrMalformed reports bytes that are not a valid encoding: a wrong
	// msgpack type, reserved flag bits, an invalid address length, chunks out
	// of order, trailing bytes.
	ErrMalformed = errors.New("wire: malformed")
	// ErrKeyring reports a keyring misuse: a key of the wrong size, an ID
	// already taken by another key, removing the primary key, using an ID
	// that is not installed.
	ErrKeyring = errors.New("wire: keyring")
	// ErrBudget reports a stream reader that needed more memory than its
	// Budget had free: the stream should be closed.
	ErrBudget = errors.New("wire: over memory budget")
	// ErrConfig reports an invalid Config.
	ErrConfig = errors.New("wire: invalid config")
)

// reason is a refinement of ErrDecrypt: its text follows ErrDecrypt's, and
// errors.Is matches both.
type reason struct{ what string }

func (r *reason) Error() string { return ErrDecrypt.Error() + ": " + r.what }
func (r *reason) Unwrap() error { return ErrDecrypt }

// Error is the structured error this package returns: a sentinel Kind plus
// context. errors.Is(err, Kind) holds. A Reader's errors are Errors too, whose
// Kind is the sentinel its user gave NewReader.
type Error struct {
	Kind   error  // one of the sentinel errors above, or a Reader user's
	Detail string // what was being done, e.g. "ping: need 9 bytes, have 3 at byte 5"
}

// Error returns the sentinel's text followed by the detail.
func (e *Error) Error() string {
	if e.Detail == "" {
		return e.Kind.Error()
	}
	return e.Kind.Error() + ": " + e.Detail
}

// Unwrap returns the sentinel, for errors.Is.
func (e *Error) Unwrap() error { return e.Kind }

func errf(kind error, detail string) error { return &Error{Kind: kind, Detail: detail} }
