package main

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

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

// errNoKeyring says what the agent lacks for runtime key rotation.
var errNoKeyring = errors.New("the agent's API has no keyring endpoints (/v1/keyring): " +
	"this version loads one gossip key at start (--encrypt-key-file or MESHNODE_ENCRYPT_KEY) and cannot rotate it at run time; " +
	"to change the key, restart the agents with the new one")

// setupKeyring calls the keyring endpoints of the API, which this version
// of the node does not serve: each subcommand then fails with
// errNoKeyring. The calls follow the memberlist/serf model (list, install,
// use, remove) so that they work once the node serves them.
func setupKeyring(sub string, fs *flag.FlagSet) func(*client, []string) error {
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
			if err := wantArgs(args, 1, "a base64 key (see meshnode keygen)"); err != nil {
				return err
			}
			method, path, body = http.MethodPost, "/v1/keyring", map[string]string{"key": args[0]}
		case "use", "remove":
			if err := wantArgs(args, 1, "a key id"); err != nil {
				return err
			}
			method, path = http.MethodPut, "/v1/keyring/"+url.PathEscape(args[0])+"/primary"
			if sub == "remove" {
				method, path = http.MethodDelete, "/v1/keyring/"+url.PathEscape(args[0])
			}
		}
		var res any
		err := c.call(method, path, nil, body, &res)
		var ae *apiError
		if errors.As(err, &ae) && ae.Status == http.StatusNotFound && strings.HasPrefix(ae.Msg, "no endpoint") {
			return errNoKeyring
		}
		if err != nil {
			return err
		}
		return c.printJSON(res)
	}
}
