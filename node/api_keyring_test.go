package node

import (
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"testing/synctest"
	"time"
)

func testKey(b byte) string {
	k := make([]byte, 32)
	for i := range k {
		k[i] = b + byte(i)
	}
	return base64.StdEncoding.EncodeToString(k)
}

// TestKeyRotationWithoutDowntime moves a running plaintext cluster to
// encryption and then to a new key through the API, checking after every
// step that writes still replicate both ways.
func TestKeyRotationWithoutDowntime(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 2, false)
		step := 0
		replicates := func(what string) {
			t.Helper()
			for from := range 2 {
				step++
				key := fmt.Sprintf("k%d", step)
				c.must(from, "PUT", "/v1/kv/ns/"+key, `{"value":"`+what+`"}`)
				c.everywhere(what+": write from node "+fmt.Sprint(from), c.hasKey("ns", key, what))
			}
		}
		all := func(method, path, body string) []map[string]any {
			t.Helper()
			var out []map[string]any
			for i := range 2 {
				out = append(out, c.must(i, method, path, body))
			}
			return out
		}
		replicates("plaintext")

		res := all("POST", "/v1/keyring", `{"key":"`+testKey(1)+`"}`)
		id1 := res[0]["id"]
		if id1 != res[1]["id"] {
			t.Fatalf("the same key got IDs %v and %v", id1, res[1]["id"])
		}
		kr := res[0]["keyring"].(map[string]any)
		if kr["accept_plaintext"] != true || kr["send_plaintext"] != true {
			t.Fatalf("first key installed without the plaintext switches on: %v", kr)
		}
		replicates("installed")
		all("PUT", "/v1/keyring/plaintext", `{"send":false}`)
		replicates("encrypting")
		all("PUT", "/v1/keyring/plaintext", `{"accept":false}`)
		replicates("encrypted")

		res = all("POST", "/v1/keyring", `{"key":"`+testKey(100)+`","id":7}`)
		if res[0]["id"] != float64(7) {
			t.Fatalf("explicit id ignored: %v", res[0])
		}
		replicates("two keys")
		all("PUT", "/v1/keyring/7/primary", "")
		replicates("new primary")
		all("DELETE", fmt.Sprintf("/v1/keyring/%v", id1), "")
		replicates("rotated")
		got := c.must(0, "GET", "/v1/keyring", "")
		keys := got["keys"].([]any)
		if len(keys) != 1 || keys[0].(map[string]any)["id"] != float64(7) || keys[0].(map[string]any)["primary"] != true {
			t.Fatalf("keyring after rotation: %v", got)
		}
		if got["accept_plaintext"] != false || got["send_plaintext"] != false {
			t.Fatalf("plaintext switches after rotation: %v", got)
		}
		// Removing the primary key would leave the node unable to talk.
		if code, m := c.api(0, "DELETE", "/v1/keyring/7", ""); code != 409 {
			t.Fatalf("remove primary: %d %v, want 409", code, m)
		}
		// The cluster's traffic is encrypted: a plaintext newcomer cannot join.
		plainCfg := localConfig("plain", "")
		plainCfg.APIAddr = "off"
		plain, err := New(plainCfg)
		if err != nil {
			t.Fatal(err)
		}
		plain.memNet = c.mem
		if err := plain.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = plain.Shutdown(t.Context()) })
		_ = plain.Join(c.nodes[0].Addr().String())
		replicates("after a plaintext join attempt")
		// A minute of virtual time: the join loop tries many times.
		time.Sleep(time.Minute)
		for _, m := range c.nodes[0].members() {
			if m.Name == "plain" {
				t.Fatal("a plaintext node joined the encrypted cluster")
			}
		}
	})
}

func TestKeyringAPIErrors(t *testing.T) {
	_, srv := newTestNode(t, nil)
	for _, tc := range []struct {
		method, path, body string
		code               int
		want               string
	}{
		{"POST", "/v1/keyring", `{"key":"c2hvcnQ="}`, 400, "32 bytes"},
		{"POST", "/v1/keyring", `{"key":"` + testKey(1) + `","id":256}`, 400, "0 to 255"},
		{"POST", "/v1/keyring", `{"key":"` + testKey(1) + `","extra":1}`, 400, "extra"},
		{"POST", "/v1/keyring", `{"key":`, 400, ""},
		{"PUT", "/v1/keyring/9/primary", "", 404, "not installed"},
		{"PUT", "/v1/keyring/x/primary", "", 400, "0 to 255"},
		{"DELETE", "/v1/keyring/300", "", 400, "0 to 255"},
		{"PUT", "/v1/keyring/plaintext", `{}`, 400, "accept"},
		{"PUT", "/v1/keyring/plaintext", `{"accept":false}`, 409, "no key"},
	} {
		t.Run(tc.method+" "+tc.path+" "+tc.body, func(t *testing.T) {
			code, m := call(t, srv, tc.method, tc.path, tc.body)
			msg, _ := m["error"].(string)
			if code != tc.code || !strings.Contains(msg, tc.want) {
				t.Fatalf("got %d %q, want %d containing %q", code, msg, tc.code, tc.want)
			}
		})
	}
	// The same key twice is fine; another key under a taken ID is not.
	mustCall(t, srv, "POST", "/v1/keyring", `{"key":"`+testKey(1)+`","id":3}`, 200)
	mustCall(t, srv, "POST", "/v1/keyring", `{"key":"`+testKey(1)+`","id":3}`, 200)
	if code, _ := call(t, srv, "POST", "/v1/keyring", `{"key":"`+testKey(2)+`","id":3}`); code != 409 {
		t.Fatalf("another key under a taken id: %d, want 409", code)
	}
}

// TestRestartAfterRotation rotates a cluster from its configured key to a
// new one through the API, then restarts a node with the new key in its
// configuration, as the README tells operators to: the restarted node must
// speak the key ID the others use for that key, and rejoin.
func TestRestartAfterRotation(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 2, false, func(cfg *Config) { cfg.EncryptKey = testKey(1) })
		newID := rotate(t, c, testKey(50))

		if err := c.nodes[1].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[1] = nil
		c.cfgs[1].EncryptKey = testKey(50)
		c.start(1)
		got := c.must(1, "GET", "/v1/keyring", "")["keys"].([]any)
		if len(got) != 1 || got[0].(map[string]any)["id"] != newID {
			t.Fatalf("restarted node's keyring %v, want only key %v", got, newID)
		}
		c.join(1)
		c.converged()
		c.must(1, "PUT", "/v1/kv/ns/after-restart", `{"value":"v"}`)
		c.everywhere("a write from the restarted node", c.hasKey("ns", "after-restart", "v"))
	})
}

// rotate moves every node of c from its primary key to key: install, use,
// remove, each step on every node before the next. It returns the new ID.
func rotate(t *testing.T, c *testCluster, key string) float64 {
	t.Helper()
	var oldID float64
	for _, k := range c.must(0, "GET", "/v1/keyring", "")["keys"].([]any) {
		if k.(map[string]any)["primary"] == true {
			oldID = k.(map[string]any)["id"].(float64)
		}
	}
	var newID float64
	for i := range c.nodes {
		newID = c.must(i, "POST", "/v1/keyring", `{"key":"`+key+`"}`)["id"].(float64)
	}
	for i := range c.nodes {
		c.must(i, "PUT", fmt.Sprintf("/v1/keyring/%v/primary", newID), "")
	}
	for i := range c.nodes {
		c.must(i, "DELETE", fmt.Sprintf("/v1/keyring/%v", oldID), "")
	}
	return newID
}

// TestKeyringSurvivesRestart rotates the key at run time on nodes with a
// data directory and restarts one with its configuration unchanged (still
// naming the old key): the saved keyring wins, plaintext switches included,
// and the node rejoins.
func TestKeyringSurvivesRestart(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 2, true, func(cfg *Config) { cfg.EncryptKey = testKey(1) })
		newID := rotate(t, c, testKey(50))
		c.must(1, "PUT", "/v1/keyring/plaintext", `{"accept":true}`)
		fi, err := os.Stat(filepath.Join(c.cfgs[1].DataDir, fileKeyring))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("keyring file mode %v, want 0600", fi.Mode().Perm())
		}

		if err := c.nodes[1].Shutdown(t.Context()); err != nil {
			t.Fatal(err)
		}
		c.nodes[1] = nil
		c.start(1)
		got := c.must(1, "GET", "/v1/keyring", "")
		keys := got["keys"].([]any)
		if len(keys) != 1 || keys[0].(map[string]any)["id"] != newID || keys[0].(map[string]any)["primary"] != true {
			t.Fatalf("restarted node's keyring %v, want only key %v, primary", got, newID)
		}
		if got["accept_plaintext"] != true || got["send_plaintext"] != false {
			t.Fatalf("restarted node's plaintext switches %v, want accept on, send off", got)
		}
		c.join(1)
		c.converged()
		c.must(1, "PUT", "/v1/kv/ns/after-restart", `{"value":"v"}`)
		c.everywhere("a write from the restarted node", c.hasKey("ns", "after-restart", "v"))
	})
}

// TestKeyringFileThatDoesNotLoad checks that a damaged keyring file is set
// aside and the configured key used.
func TestKeyringFileThatDoesNotLoad(t *testing.T) {
	for name, content := range map[string]string{
		"not JSON":       "{",
		"bad key":        `{"keys":[{"id":3,"key":"c2hvcnQ="}],"primary":3}`,
		"absent primary": `{"keys":[{"id":3,"key":"` + testKey(9) + `"}],"primary":4}`,
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, fileKeyring), []byte(content), 0o600); err != nil {
				t.Fatal(err)
			}
			cfg := localConfig("n", dir)
			cfg.EncryptKey = testKey(1)
			n, err := New(cfg)
			if err != nil {
				t.Fatal(err)
			}
			k, _ := parseKey([]byte(testKey(1)))
			if ids := n.keyring.List(); len(ids) != 1 || ids[0] != keyID(k) {
				t.Errorf("keyring %v, want the configured key's ID %d alone", ids, keyID(k))
			}
			aside, _ := filepath.Glob(filepath.Join(dir, fileKeyring+".corrupt-*"))
			if _, err := os.Stat(filepath.Join(dir, fileKeyring)); len(aside) != 1 || !errors.Is(err, os.ErrNotExist) {
				t.Errorf("damaged keyring file not set aside: %v, %v", aside, err)
			}
		})
	}
}

// TestKeyringNotSaved checks that a change the data directory cannot keep is
// answered with an error that says the change is in force but not saved.
func TestKeyringNotSaved(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		c := newVirtualCluster(t, 1, true)
		// A non-empty directory where the file goes: the rename fails.
		if err := os.MkdirAll(filepath.Join(c.cfgs[0].DataDir, fileKeyring, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		code, m := c.api(0, "POST", "/v1/keyring", `{"key":"`+testKey(1)+`"}`)
		if code != 500 || !strings.Contains(fmt.Sprint(m["error"]), "not saved") {
			t.Fatalf("install with an unwritable keyring file: %d %v, want 500 saying it was not saved", code, m)
		}
		if ids := c.nodes[0].keyring.List(); len(ids) != 1 {
			t.Fatalf("keyring %v: the change should be in force", ids)
		}
	})
}
