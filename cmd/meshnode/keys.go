package main

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"

	"github.com/meshnode/meshnode/node"
	"github.com/meshnode/meshnode/wire"
)

// runKeygen prints a new gossip key: wire.KeySize random bytes in base64,
// the form --encrypt-key-file and MESHNODE_ENCRYPT_KEY read.
func runKeygen(args []string, stdout, stderr io.Writer) int {
	fs := newFlagSet("keygen", stderr)
	pos, err := parseInterleaved(fs, args)
	if err == nil && len(pos) > 0 {
		err = badUsage("takes no arguments")
	}
	if err != nil {
		return usageError(stderr, "keygen", err)
	}
	key := make([]byte, wire.KeySize)
	_, _ = rand.Read(key) // crypto/rand.Read never fails (it crashes the program instead)
	fmt.Fprintln(stdout, base64.StdEncoding.EncodeToString(key))
	return 0
}

// errNoKeyring says what an older agent lacks for run-time key rotation.
var errNoKeyring = errors.New("the agent's API has no keyring endpoints (/v1/keyring): it is an older version, " +
	"which loads one gossip key at start; to change the key, restart the agents with the new one")

// maxKeyFileBytes bounds a key read from a file or stdin (a key in any of
// its encodings is far smaller).
const maxKeyFileBytes = 4096

// setupKeyring drives the agent's gossip keyring. Each call changes one
// node: a cluster-wide rotation runs each step on every node before the
// next (install everywhere, use everywhere, remove everywhere). Keys are
// read from a file or stdin, never from the command line.
func setupKeyring(sub string, fs *flag.FlagSet) func(*client, []string) error {
	var keyFile *string
	var id *int
	var accept, send *string
	switch sub {
	case "install":
		keyFile = fs.String("key-file", "", "`file` holding the key (base64 or hex, as meshnode keygen prints it)")
		id = fs.Int("id", -1, "the key's `id`, 0 to 255, the same on every node (default: derived from the key)")
	case "plaintext":
		accept = fs.String("accept", "", "accept plaintext packets: true or false")
		send = fs.String("send", "", "send plaintext packets: true or false")
	}
	return func(c *client, args []string) error {
		var method, path string
		var body any
		switch sub {
		case "list":
			if err := wantArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			method, path = http.MethodGet, "/v1/keyring"
		case "install":
			key, err := readKey(c, *keyFile, args)
			if err != nil {
				return err
			}
			req := map[string]any{"key": key}
			if *id >= 0 {
				req["id"] = *id
			}
			method, path, body = http.MethodPost, "/v1/keyring", req
		case "use", "remove":
			if err := wantArgs(args, 1, "a key id (see meshnode keyring list)"); err != nil {
				return err
			}
			method, path = http.MethodPut, "/v1/keyring/"+url.PathEscape(args[0])+"/primary"
			if sub == "remove" {
				method, path = http.MethodDelete, "/v1/keyring/"+url.PathEscape(args[0])
			}
		case "plaintext":
			if err := wantArgs(args, 0, "flags only (--accept, --send)"); err != nil {
				return err
			}
			req := map[string]bool{}
			for name, v := range map[string]string{"accept": *accept, "send": *send} {
				if v == "" {
					continue
				}
				b, err := strconv.ParseBool(v)
				if err != nil {
					return badUsage("--%s %q: want true or false", name, v)
				}
				req[name] = b
			}
			if len(req) == 0 {
				return badUsage("want --accept or --send (or both)")
			}
			method, path, body = http.MethodPut, "/v1/keyring/plaintext", req
		}
		var raw json.RawMessage
		err := c.call(method, path, nil, body, &raw)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Msg, "no endpoint") {
			return errNoKeyring
		}
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(raw)
		}
		var info node.KeyringInfo
		if sub == "install" {
			var res struct {
				ID      uint8            `json:"id"`
				Keyring node.KeyringInfo `json:"keyring"`
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("unexpected answer: %w", err)
			}
			fmt.Fprintf(c.out, "installed key %d\n", res.ID)
			info = res.Keyring
		} else if err := json.Unmarshal(raw, &info); err != nil {
			return fmt.Errorf("unexpected answer: %w", err)
		}
		return c.printKeyring(info)
	}
}

// readKey reads the key to install from --key-file or from stdin ("-").
func readKey(c *client, file string, args []string) (string, error) {
	var r io.Reader
	switch {
	case file != "" && len(args) == 0:
		f, err := os.Open(file)
		if err != nil {
			return "", fmt.Errorf("key file: %w", err)
		}
		defer f.Close()
		r = f
	case file == "" && len(args) == 1 && args[0] == "-":
		r = c.stdin
	default:
		return "", badUsage("give the key with --key-file or on stdin (-), not as an argument: arguments show in the process list")
	}
	b, err := io.ReadAll(io.LimitReader(r, maxKeyFileBytes+1))
	if err != nil {
		return "", fmt.Errorf("reading the key: %w", err)
	}
	if len(b) > maxKeyFileBytes {
		return "", fmt.Errorf("key over %d bytes", maxKeyFileBytes)
	}
	return strings.TrimSpace(string(b)), nil
}

func (c *client) printKeyring(info node.KeyringInfo) error {
	rows := make([][]string, len(info.Keys))
	for i, k := range info.Keys {
		rows[i] = []string{strconv.Itoa(int(k.ID)), yesNo(k.Primary)}
	}
	if len(rows) == 0 {
		fmt.Fprintln(c.out, "no gossip key installed: gossip is plaintext")
	} else if err := c.table("ID\tPRIMARY", rows); err != nil {
		return err
	}
	_, err := fmt.Fprintf(c.out, "accept plaintext: %s, send plaintext: %s\n", yesNo(info.AcceptPlaintext), yesNo(info.SendPlaintext))
	return err
}
