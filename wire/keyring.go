package wire

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
)

// KeySize is the size of a keyring key: AES-256.
const KeySize = 32

// Keyring holds the AES-256-GCM keys of a cluster, each under a one-byte key
// ID that the operator chooses when installing it (the same ID for the same
// key on every node; wire never derives it). A sender encrypts with the
// primary key and writes its ID in the packet; a receiver picks the key by
// that ID, so there is no trial decryption.
//
// Two switches let a running cluster move to encryption without downtime:
// with AcceptPlaintext set, a node also accepts packets that are not
// encrypted (verify-incoming off); with SendPlaintext set, it sends
// plaintext even though it has keys (verify-outgoing off). Rollout: install
// the key everywhere with both switches on, then turn SendPlaintext off
// everywhere, then AcceptPlaintext off. Key rotation: install the new key
// everywhere, Use it everywhere, then Remove the old one.
//
// A Keyring is safe for concurrent use; readers (every packet) take no lock.
type Keyring struct {
	mu              sync.Mutex // serialises writers
	state           atomic.Pointer[keyState]
	acceptPlaintext atomic.Bool
	sendPlaintext   atomic.Bool
}

type keyState struct {
	keys    [256]*keyEntry
	primary int // -1: none
}

type keyEntry struct {
	key  [KeySize]byte
	aead cipher.AEAD
}

// NewKeyring returns an empty keyring with both plaintext switches off. The
// zero Keyring is the same.
func NewKeyring() *Keyring { return &Keyring{} }

var emptyKeys = &keyState{primary: -1}

// load returns the current keys.
func (k *Keyring) load() *keyState {
	if s := k.state.Load(); s != nil {
		return s
	}
	return emptyKeys
}

// Install adds key under id. The first key installed becomes the primary.
// Installing the same key again under the same ID is a no-op; a different key
// under an ID in use is an error (remove it first).
func (k *Keyring) Install(id uint8, key []byte) error {
	if len(key) != KeySize {
		return errf(ErrKeyring, fmt.Sprintf("key %d: %d bytes, want %d", id, len(key), KeySize))
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.load()
	if e := old.keys[id]; e != nil {
		if bytes.Equal(e.key[:], key) {
			return nil
		}
		return errf(ErrKeyring, fmt.Sprintf("key %d: ID in use by another key", id))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return errf(ErrKeyring, fmt.Sprintf("key %d: %v", id, err))
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return errf(ErrKeyring, fmt.Sprintf("key %d: %v", id, err))
	}
	next := *old
	e := &keyEntry{aead: aead}
	copy(e.key[:], key)
	next.keys[id] = e
	if next.primary < 0 {
		next.primary = int(id)
	}
	k.state.Store(&next)
	return nil
}

// Use makes the installed key id the primary key, used to encrypt.
func (k *Keyring) Use(id uint8) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.load()
	if old.keys[id] == nil {
		return errf(ErrKeyring, fmt.Sprintf("key %d: not installed", id))
	}
	next := *old
	next.primary = int(id)
	k.state.Store(&next)
	return nil
}

// Remove deletes key id. The primary key cannot be removed: Use another
// first. Removing an ID that is not installed is an error.
func (k *Keyring) Remove(id uint8) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	old := k.load()
	if old.keys[id] == nil {
		return errf(ErrKeyring, fmt.Sprintf("key %d: not installed", id))
	}
	if old.primary == int(id) {
		return errf(ErrKeyring, fmt.Sprintf("key %d: is the primary key", id))
	}
	next := *old
	next.keys[id] = nil
	k.state.Store(&next)
	return nil
}

// List returns the installed key IDs in increasing order.
func (k *Keyring) List() []uint8 {
	s := k.load()
	var ids []uint8
	for i, e := range s.keys {
		if e != nil {
			ids = append(ids, uint8(i))
		}
	}
	return slices.Clip(ids)
}

// Key returns a copy of key id, and false if it is not installed. It is for
// saving the keyring (the keys never leave the process otherwise).
func (k *Keyring) Key(id uint8) ([]byte, bool) {
	e := k.load().keys[id]
	if e == nil {
		return nil, false
	}
	return bytes.Clone(e.key[:]), true
}

// Primary returns the primary key ID, and false if the keyring is empty.
func (k *Keyring) Primary() (uint8, bool) {
	s := k.load()
	return uint8(max(s.primary, 0)), s.primary >= 0
}

// SetAcceptPlaintext sets whether plaintext packets and frames are accepted
// although keys are installed (verify-incoming off).
func (k *Keyring) SetAcceptPlaintext(v bool) { k.acceptPlaintext.Store(v) }

// AcceptPlaintext reports the switch SetAcceptPlaintext sets.
func (k *Keyring) AcceptPlaintext() bool { return k.acceptPlaintext.Load() }

// SetSendPlaintext sets whether packets and frames are sent unencrypted
// although keys are installed (verify-outgoing off).
func (k *Keyring) SetSendPlaintext(v bool) { k.sendPlaintext.Store(v) }

// SendPlaintext reports the switch SetSendPlaintext sets.
func (k *Keyring) SendPlaintext() bool { return k.sendPlaintext.Load() }

// sealer is what a sender encrypts with: the primary key's ID and AEAD, or a
// nil AEAD to send plaintext.
type sealer struct {
	id   uint8
	aead cipher.AEAD
}

// sealer returns the primary key, or plaintext when there is no keyring, no
// key, or SendPlaintext is on.
func (k *Keyring) sealer() sealer {
	if k == nil || k.sendPlaintext.Load() {
		return sealer{}
	}
	s := k.load()
	if s.primary < 0 {
		return sealer{}
	}
	return sealer{uint8(s.primary), s.keys[s.primary].aead}
}

// opener returns the AEAD for key id, or nil.
func (k *Keyring) opener(id uint8) cipher.AEAD {
	if k == nil {
		return nil
	}
	if e := k.load().keys[id]; e != nil {
		return e.aead
	}
	return nil
}

// hasKeys reports whether k holds a key (then it has a primary).
func (k *Keyring) hasKeys() bool { return k != nil && k.load().primary >= 0 }

// acceptsPlaintext reports whether a receiver takes an unencrypted packet:
// always without a keyring or keys, else only with AcceptPlaintext on.
func (k *Keyring) acceptsPlaintext() bool {
	if k == nil || k.acceptPlaintext.Load() {
		return true
	}
	return k.load().primary < 0
}
