package node

import (
	"context"
	"encoding/base64"
	"fmt"
	"strings"
	"testing"
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
	c := newCluster(t, 2, false)
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
	plain, err := New(localConfig("plain", ""))
	if err != nil {
		t.Fatal(err)
	}
	if err := plain.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = plain.Shutdown(t.Context()) })
	_ = plain.Join(c.nodes[0].Addr().String())
	replicates("after a plaintext join attempt")
	for _, m := range c.nodes[0].members() {
		if m.Name == "plain" {
			t.Fatal("a plaintext node joined the encrypted cluster")
		}
	}
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
	c := newCluster(t, 2, false, func(cfg *Config) { cfg.GossipKey = testKey(1) })
	for i := range 2 {
		c.must(i, "POST", "/v1/keyring", `{"key":"`+testKey(50)+`"}`)
	}
	var newID, oldID float64
	for _, k := range c.must(0, "GET", "/v1/keyring", "")["keys"].([]any) {
		if k.(map[string]any)["primary"] == true {
			oldID = k.(map[string]any)["id"].(float64)
		} else {
			newID = k.(map[string]any)["id"].(float64)
		}
	}
	for i := range 2 {
		c.must(i, "PUT", fmt.Sprintf("/v1/keyring/%v/primary", newID), "")
	}
	for i := range 2 {
		c.must(i, "DELETE", fmt.Sprintf("/v1/keyring/%v", oldID), "")
	}

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := c.nodes[1].Shutdown(ctx); err != nil {
		t.Fatal(err)
	}
	c.nodes[1] = nil
	c.cfgs[1].GossipKey = testKey(50)
	c.start(1)
	got := c.must(1, "GET", "/v1/keyring", "")["keys"].([]any)
	if len(got) != 1 || got[0].(map[string]any)["id"] != newID {
		t.Fatalf("restarted node's keyring %v, want only key %v", got, newID)
	}
	c.join(1)
	c.converged()
	c.must(1, "PUT", "/v1/kv/ns/after-restart", `{"value":"v"}`)
	c.everywhere("a write from the restarted node", c.hasKey("ns", "after-restart", "v"))
}
