package node

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"

	"github.com/meshnode/meshnode/wire"
)

// The keyring endpoints change this node's gossip keys at run time. They
// act on this node only: an operator rotates a cluster's key by calling
// each step on every node before the next step (install everywhere, use
// everywhere, remove everywhere). With a data directory every change is
// saved there (keyring_persist.go) and a restart restores it; without one,
// put the new key in the key file too so that a restart keeps it (it takes
// the same ID there unless the install gave an explicit one).

// KeyringInfo is this node's keyring as the API shows it (never the keys).
// AcceptPlaintext and SendPlaintext say what the node does: a node with no
// key accepts and sends plaintext whatever the switches, and one with keys
// but no primary sends plaintext.
type KeyringInfo struct {
	Keys            []KeyInfo `json:"keys"`
	Encrypted       bool      `json:"encrypted"` // a primary key is in use for sending
	AcceptPlaintext bool      `json:"accept_plaintext"`
	SendPlaintext   bool      `json:"send_plaintext"`
}

// KeyInfo names one installed key.
type KeyInfo struct {
	ID      uint8 `json:"id"`
	Primary bool  `json:"primary"`
}

type installKeyRequest struct {
	// Key is 32 bytes in base64 or hex (meshnode keygen).
	Key string `json:"key"`
	// ID is the key's one-byte ID, the same on every node. Without it the ID
	// is derived from the key (the first byte of its SHA-256), so every
	// node that installs the same key picks the same ID.
	ID *int `json:"id"`
}

type plaintextRequest struct {
	Accept *bool `json:"accept"`
	Send   *bool `json:"send"`
}

func (n *Node) keyringInfo() KeyringInfo {
	kr := n.keyring
	primary, hasPrimary := kr.Primary()
	info := KeyringInfo{Keys: []KeyInfo{}, AcceptPlaintext: kr.AcceptPlaintext(), SendPlaintext: kr.SendPlaintext()}
	for _, id := range kr.List() {
		info.Keys = append(info.Keys, KeyInfo{ID: id, Primary: hasPrimary && id == primary})
	}
	if len(info.Keys) == 0 {
		info.AcceptPlaintext = true
	}
	if !hasPrimary {
		info.SendPlaintext = true
	}
	info.Encrypted = !info.SendPlaintext
	return info
}

func (n *Node) handleListKeys(w http.ResponseWriter, r *http.Request) {
	writeJSON(w, http.StatusOK, n.keyringInfo())
}

// handleInstallKey installs a key. On a node that had no key, the first key
// would at once become primary and the node would stop talking to the
// plaintext cluster; so it turns both plaintext switches on first, and the
// operator turns them off (PUT /v1/keyring/plaintext) once every node has
// the key.
func (n *Node) handleInstallKey(w http.ResponseWriter, r *http.Request) {
	var req installKeyRequest
	if !n.decode(w, r, &req, false) {
		return
	}
	key, err := parseKey([]byte(req.Key))
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key: want %d bytes in base64 or hex", wire.KeySize))
		return
	}
	var id uint8
	if req.ID != nil {
		if *req.ID < 0 || *req.ID > 255 {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("id %d: want 0 to 255", *req.ID))
			return
		}
		id = uint8(*req.ID)
	} else {
		id = keyID(key)
	}
	n.keyringMu.Lock()
	defer n.keyringMu.Unlock()
	kr := n.keyring
	first := len(kr.List()) == 0
	if first {
		kr.SetAcceptPlaintext(true)
		kr.SetSendPlaintext(true)
	}
	if err := kr.Install(id, key); err != nil {
		if first {
			kr.SetAcceptPlaintext(false)
			kr.SetSendPlaintext(false)
		}
		writeError(w, http.StatusConflict, fmt.Sprintf("%v (generate another key; an explicit \"id\" is not what a restarted node derives from its configured key)", err))
		return
	}
	n.log.Info("gossip key installed", "id", id, "plaintext_switches_on", first)
	if !n.keyringSaved(w) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"id": id, "keyring": n.keyringInfo()})
}

// keyID parses the {id} of the path and checks that the key is installed.
func (n *Node) keyID(w http.ResponseWriter, r *http.Request) (uint8, bool) {
	v, err := strconv.ParseUint(r.PathValue("id"), 10, 8)
	if err != nil {
		writeError(w, http.StatusBadRequest, fmt.Sprintf("key id %q: want 0 to 255", r.PathValue("id")))
		return 0, false
	}
	if !slices.Contains(n.keyring.List(), uint8(v)) {
		writeError(w, http.StatusNotFound, fmt.Sprintf("key id %d: not installed", v))
		return 0, false
	}
	return uint8(v), true
}

func (n *Node) handleUseKey(w http.ResponseWriter, r *http.Request) {
	n.keyringMu.Lock()
	defer n.keyringMu.Unlock()
	id, ok := n.keyID(w, r)
	if !ok {
		return
	}
	if err := n.keyring.Use(id); err != nil {
		writeKeyringError(w, err)
		return
	}
	n.log.Info("gossip key made primary", "id", id)
	if !n.keyringSaved(w) {
		return
	}
	writeJSON(w, http.StatusOK, n.keyringInfo())
}

func (n *Node) handleRemoveKey(w http.ResponseWriter, r *http.Request) {
	n.keyringMu.Lock()
	defer n.keyringMu.Unlock()
	id, ok := n.keyID(w, r)
	if !ok {
		return
	}
	if err := n.keyring.Remove(id); err != nil {
		writeKeyringError(w, err)
		return
	}
	n.log.Info("gossip key removed", "id", id)
	if !n.keyringSaved(w) {
		return
	}
	writeJSON(w, http.StatusOK, n.keyringInfo())
}

func (n *Node) handlePlaintext(w http.ResponseWriter, r *http.Request) {
	var req plaintextRequest
	if !n.decode(w, r, &req, false) {
		return
	}
	if req.Accept == nil && req.Send == nil {
		writeError(w, http.StatusBadRequest, `want "accept" or "send" (or both)`)
		return
	}
	n.keyringMu.Lock()
	defer n.keyringMu.Unlock()
	kr := n.keyring
	if _, ok := kr.Primary(); !ok && (req.Accept != nil && !*req.Accept) {
		writeError(w, http.StatusConflict, "no key installed: plaintext is the only way to talk")
		return
	}
	if req.Accept != nil {
		kr.SetAcceptPlaintext(*req.Accept)
	}
	if req.Send != nil {
		kr.SetSendPlaintext(*req.Send)
	}
	n.log.Info("gossip plaintext switches", "accept", kr.AcceptPlaintext(), "send", kr.SendPlaintext())
	if !n.keyringSaved(w) {
		return
	}
	writeJSON(w, http.StatusOK, n.keyringInfo())
}

// keyringSaved saves the keyring after a change and reports whether it
// did; if not, it answers 500: the change is in force but a restart would
// lose it.
func (n *Node) keyringSaved(w http.ResponseWriter) bool {
	if err := n.saveKeyring(); err != nil {
		n.log.Error("keyring changed but not saved to the data directory", "err", err)
		writeError(w, http.StatusInternalServerError, fmt.Sprintf("keyring changed in memory but not saved to the data directory (a restart would lose the change): %v", err))
		return false
	}
	return true
}

// writeKeyringError maps keyring refusals (such as removing the primary
// key) to 409.
func writeKeyringError(w http.ResponseWriter, err error) {
	if errors.Is(err, wire.ErrKeyring) {
		writeError(w, http.StatusConflict, err.Error())
		return
	}
	writeErr(w, err)
}
