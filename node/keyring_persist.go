package node

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"

	"github.com/meshnode/meshnode/wire"
)

// fileKeyring holds the keyring as changed at run time (keys, primary,
// plaintext switches). It exists only once the keyring was changed through
// the API, and from then on it, not the configured key, is the keyring a
// start restores: a key removed at run time (perhaps because it leaked)
// must not come back because the configuration still names it.
const fileKeyring = "keyring.json"

type savedKeyring struct {
	Keys            []savedKey `json:"keys"`
	Primary         uint8      `json:"primary"`
	AcceptPlaintext bool       `json:"accept_plaintext"`
	SendPlaintext   bool       `json:"send_plaintext"`
}

type savedKey struct {
	ID  uint8  `json:"id"`
	Key string `json:"key"` // base64
}

// saveKeyring writes the keyring to the data directory (mode 0600), if there
// is one. The caller holds keyringMu, so that files follow changes in order.
func (n *Node) saveKeyring() error {
	if n.cfg.DataDir == "" {
		return nil
	}
	kr := n.keyring
	s := savedKeyring{Keys: []savedKey{}, AcceptPlaintext: kr.AcceptPlaintext(), SendPlaintext: kr.SendPlaintext()}
	s.Primary, _ = kr.Primary()
	for _, id := range kr.List() {
		k, ok := kr.Key(id)
		if !ok {
			continue
		}
		s.Keys = append(s.Keys, savedKey{ID: id, Key: base64.StdEncoding.EncodeToString(k)})
	}
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(n.cfg.DataDir, fileKeyring), append(b, '\n'), 0o600)
}

// restoreKeyring fills n.keyring from the data directory's keyring file and
// reports whether there was one. A file that does not load is set aside and
// reported; the start then uses the configured key.
func (n *Node) restoreKeyring() bool {
	if n.cfg.DataDir == "" {
		return false
	}
	p := filepath.Join(n.cfg.DataDir, fileKeyring)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return false
	}
	if err == nil {
		err = n.applySavedKeyring(b)
	}
	if err != nil {
		n.keyring = wire.NewKeyring()
		n.setAside(fileKeyring, err)
		return false
	}
	return true
}

func (n *Node) applySavedKeyring(b []byte) error {
	var s savedKeyring
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	kr := n.keyring
	for _, k := range s.Keys {
		key, err := base64.StdEncoding.DecodeString(k.Key)
		if err != nil {
			return fmt.Errorf("key %d: %w", k.ID, err)
		}
		if err := kr.Install(k.ID, key); err != nil {
			return err
		}
	}
	if len(s.Keys) > 0 {
		if err := kr.Use(s.Primary); err != nil {
			return err
		}
	}
	kr.SetAcceptPlaintext(s.AcceptPlaintext)
	kr.SetSendPlaintext(s.SendPlaintext)
	return nil
}

// hasKey reports whether the keyring holds key (under any ID).
func hasKey(kr *wire.Keyring, key []byte) bool {
	return slices.ContainsFunc(kr.List(), func(id uint8) bool {
		k, _ := kr.Key(id)
		return slices.Equal(k, key)
	})
}
