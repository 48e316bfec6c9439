package main

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"text/tabwriter"
	"time"
)

// Client defaults and bounds.
const (
	defaultClientTimeout = 10 * time.Second
	// maxResponseBytes bounds what the client reads of one response.
	maxResponseBytes = 64 << 20
	// maxPages bounds how many pages a list follows.
	maxPages = 1000
)

// client calls an agent's HTTP API.
type client struct {
	base  string // scheme://host:port
	token string
	hc    *http.Client
	json  bool
	stdin io.Reader
	out   io.Writer
	errw  io.Writer
}

// clientOpts are the flags every client command takes.
type clientOpts struct {
	apiAddr, tokenFile, caFile, certFile, keyFile string
	json                                          bool
	timeout                                       time.Duration
}

// register adds the common flags, with defaults from the environment.
func (o *clientOpts) register(fs *flag.FlagSet, env lookupEnv) {
	get := func(k, def string) string {
		if v, ok := env(k); ok && v != "" {
			return v
		}
		return def
	}
	fs.StringVar(&o.apiAddr, "api-addr", get("MESHNODE_API_ADDR", "127.0.0.1:7947"), "agent API address, host:port or a URL [env MESHNODE_API_ADDR]")
	fs.StringVar(&o.tokenFile, "api-token-file", get("MESHNODE_API_TOKEN_FILE", ""), "file holding the API token (or set MESHNODE_API_TOKEN) [env MESHNODE_API_TOKEN_FILE]")
	fs.StringVar(&o.caFile, "tls-ca-file", get("MESHNODE_TLS_CA_FILE", ""), "CA to verify the API's certificate; implies https [env MESHNODE_TLS_CA_FILE]")
	fs.StringVar(&o.certFile, "tls-cert-file", get("MESHNODE_TLS_CERT_FILE", ""), "client certificate, when the API verifies clients [env MESHNODE_TLS_CERT_FILE]")
	fs.StringVar(&o.keyFile, "tls-key-file", get("MESHNODE_TLS_KEY_FILE", ""), "client key [env MESHNODE_TLS_KEY_FILE]")
	fs.BoolVar(&o.json, "json", false, "print JSON instead of a table")
	fs.DurationVar(&o.timeout, "timeout", defaultClientTimeout, "deadline of each request")
}

// newClient builds the client the options describe.
func (o *clientOpts) newClient(env lookupEnv, stdin io.Reader, stdout, stderr io.Writer) (*client, error) {
	c := &client{json: o.json, stdin: stdin, out: stdout, errw: stderr}
	// The token is trimmed wherever it comes from, as the agent does, and
	// one of white space only is refused.
	if v, ok := env("MESHNODE_API_TOKEN"); ok && v != "" {
		if c.token = strings.TrimSpace(v); c.token == "" {
			return nil, errors.New("api token: MESHNODE_API_TOKEN is only white space")
		}
	} else if o.tokenFile != "" {
		b, err := os.ReadFile(o.tokenFile)
		if err != nil {
			return nil, fmt.Errorf("api token: %w", err)
		}
		if c.token = strings.TrimSpace(string(b)); c.token == "" {
			return nil, fmt.Errorf("api token: %s is empty", o.tokenFile)
		}
	}
	tr := &http.Transport{Proxy: nil, DialContext: (&net.Dialer{Timeout: 5 * time.Second}).DialContext}
	scheme := "http"
	if o.caFile != "" || o.certFile != "" {
		tc := &tls.Config{MinVersion: tls.VersionTLS12}
		if o.caFile != "" {
			pem, err := os.ReadFile(o.caFile)
			if err != nil {
				return nil, fmt.Errorf("tls ca: %w", err)
			}
			tc.RootCAs = x509.NewCertPool()
			if !tc.RootCAs.AppendCertsFromPEM(pem) {
				return nil, fmt.Errorf("tls ca: %s holds no certificate", o.caFile)
			}
		}
		if o.certFile != "" {
			cert, err := tls.LoadX509KeyPair(o.certFile, o.keyFile)
			if err != nil {
				return nil, fmt.Errorf("tls client certificate: %w", err)
			}
			tc.Certificates = []tls.Certificate{cert}
		}
		tr.TLSClientConfig = tc
		scheme = "https"
	}
	c.base = strings.TrimSuffix(o.apiAddr, "/")
	if !strings.HasPrefix(c.base, "http://") && !strings.HasPrefix(c.base, "https://") {
		c.base = scheme + "://" + c.base
	}
	// Never follow a redirect: the API answers none, and following one
	// would send a write somewhere the user did not name.
	c.hc = &http.Client{Transport: tr, Timeout: o.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	return c, nil
}

// apiError is an error response of the API.
type apiError struct {
	Status int
	Msg    string
}

func (e *apiError) Error() string { return fmt.Sprintf("%s (HTTP %d)", e.Msg, e.Status) }

// call sends a request with an optional JSON body and decodes a JSON
// answer into out (when not nil).
func (c *client) call(method, path string, q url.Values, body, out any) error {
	resp, err := c.send(method, path, q, body, "")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
	if err != nil {
		return fmt.Errorf("%s %s: reading the answer: %w", method, path, err)
	}
	if resp.StatusCode/100 != 2 {
		return responseError(resp.StatusCode, b)
	}
	if out == nil {
		return nil
	}
	if err := json.Unmarshal(b, out); err != nil {
		return fmt.Errorf("%s %s: unexpected answer: %w", method, path, err)
	}
	return nil
}

// send sends one request; the caller closes the body.
func (c *client) send(method, path string, q url.Values, body any, accept string) (*http.Response, error) {
	return c.sendHeaders(method, path, q, body, accept, nil)
}

// sendHeaders is send with extra request headers.
func (c *client) sendHeaders(method, path string, q url.Values, body any, accept string, hdr map[string]string) (*http.Response, error) {
	u := c.base + path
	if len(q) > 0 {
		u += "?" + q.Encode()
	}
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, u, rd)
	if err != nil {
		return nil, fmt.Errorf("api address %q: %w", c.base, err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) && !ue.Timeout() {
			err = ue.Err
		}
		return nil, fmt.Errorf("cannot reach the agent API at %s: %v (is `meshnode agent` running? set --api-addr or MESHNODE_API_ADDR)", c.base, err)
	}
	return resp, nil
}

// responseError turns an error response into one line.
func responseError(code int, b []byte) error {
	var e struct {
		Error string `json:"error"`
	}
	msg := strings.TrimSpace(string(b))
	if json.Unmarshal(b, &e) == nil && e.Error != "" {
		msg = e.Error
	}
	if strings.Contains(msg, "HTTP request to an HTTPS server") {
		msg += " Give --tls-ca-file (or MESHNODE_TLS_CA_FILE), or an https:// address."
	}
	if code == http.StatusUnauthorized {
		msg += "; give the token with MESHNODE_API_TOKEN or --api-token-file"
	}
	if code == http.StatusForbidden && strings.Contains(msg, "client certificate") {
		msg += "; give --tls-cert-file and --tls-key-file"
	}
	if code/100 == 3 {
		msg = fmt.Sprintf("the API answered a redirect (%s), not followed: is --api-addr an agent API?", http.StatusText(code))
	}
	if msg == "" {
		msg = http.StatusText(code)
	}
	return &apiError{Status: code, Msg: msg}
}

// printJSON writes v indented.
func (c *client) printJSON(v any) error {
	enc := json.NewEncoder(c.out)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// table writes rows under a header, aligned.
func (c *client) table(header string, rows [][]string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, header)
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// pairs writes key-value lines, aligned.
func (c *client) pairs(kv ...string) error {
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	for i := 0; i+1 < len(kv); i += 2 {
		fmt.Fprintf(tw, "%s\t%s\n", kv[i], kv[i+1])
	}
	return tw.Flush()
}

// listAll follows next_cursor through a paginated list and returns the
// items under key of every page, in order (empty, not nil, when there are
// none).
func listAll[T any](c *client, path string, q url.Values, key string) ([]T, error) {
	if q == nil {
		q = url.Values{}
	}
	all := []T{}
	for range maxPages {
		var page map[string]json.RawMessage
		if err := c.call(http.MethodGet, path, q, nil, &page); err != nil {
			return nil, err
		}
		var items []T
		var next string
		if err := json.Unmarshal(page[key], &items); err != nil {
			return nil, fmt.Errorf("GET %s: unexpected answer: %q: %w", path, key, err)
		}
		if raw, ok := page["next_cursor"]; ok {
			if err := json.Unmarshal(raw, &next); err != nil {
				return nil, fmt.Errorf("GET %s: unexpected answer: next_cursor: %w", path, err)
			}
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		q.Set("cursor", next)
	}
	return nil, fmt.Errorf("GET %s: more than %d pages", path, maxPages)
}

// clientCommand sets up a client command: given the subcommand (or "" for
// commands without), it adds its flags to fs and returns what to run with
// the positional arguments.
type clientCommand struct {
	subs  []string // accepted subcommands; the first is the default
	setup func(sub string, fs *flag.FlagSet) func(c *client, args []string) error
}

// clientCommands maps a command name to its implementation.
var clientCommands = map[string]clientCommand{
	"members":   {setup: setupMembers},
	"status":    {setup: setupStatus},
	"join":      {setup: setupJoin},
	"leave":     {setup: setupLeave},
	"kv":        {subs: []string{"", "get", "put", "del", "list", "watch"}, setup: setupKV},
	"workers":   {subs: []string{"list", "get", "put", "patch", "del"}, setup: setupWorkers},
	"route":     {setup: setupRoute},
	"ratelimit": {subs: []string{"list", "get", "set", "take", "del"}, setup: setupRatelimit},
	"ring":      {setup: setupRing},
	"keyring":   {subs: []string{"list", "install", "use", "remove", "plaintext"}, setup: setupKeyring},
}

// runClient parses a client command's arguments and runs it.
func runClient(name string, cmd clientCommand, args []string, env lookupEnv, stdin io.Reader, stdout, stderr io.Writer) int {
	sub := ""
	full := name
	if cmd.subs != nil {
		switch {
		case len(args) > 0 && isHelpFlag(args[0]):
			sub = "" // the command's own help, below
		case len(args) > 0 && !strings.HasPrefix(args[0], "-"):
			sub, args = args[0], args[1:]
		default:
			sub = cmd.subs[0]
		}
		ok := false
		for _, s := range cmd.subs {
			ok = ok || (s == sub && s != "")
		}
		subs := strings.Join(nonEmpty(cmd.subs), ", ")
		switch {
		case ok:
		case sub == "" && len(args) > 0 && isHelpFlag(args[0]):
			fmt.Fprintf(stdout, "usage: meshnode %s <subcommand> [flags] [args]\n\nsubcommands: %s\n\nRun \"meshnode %s <subcommand> -h\" for its flags and arguments.\n", name, subs, name)
			return 0
		case sub == "":
			fmt.Fprintf(stderr, "meshnode %s: want a subcommand: %s (run \"meshnode %s -h\")\n", name, subs, name)
			return 2
		default:
			fmt.Fprintf(stderr, "meshnode %s: unknown subcommand %q%s (want one of %s)\n", name, sub, didYouMean(sub, cmd.subs), subs)
			return 2
		}
		full = name + " " + sub
	}
	fs := newFlagSet(full, stderr)
	var o clientOpts
	o.register(fs, env)
	runFn := cmd.setup(sub, fs)
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return usageError(stderr, full, err)
	}
	c, err := o.newClient(env, stdin, stdout, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "meshnode %s: %v\n", full, err)
		return 1
	}
	defer c.hc.CloseIdleConnections()
	if err := runFn(c, pos); err != nil {
		var ue usageErr
		if errors.As(err, &ue) {
			return usageError(stderr, full, err)
		}
		var ex exitCode
		if errors.As(err, &ex) {
			return int(ex)
		}
		fmt.Fprintf(stderr, "meshnode %s: %s\n", full, oneLine(err))
		return 1
	}
	return 0
}

// exitCode ends a command with a non-zero status after it has printed its
// answer (a denied rate-limit take).
type exitCode int

func (e exitCode) Error() string { return fmt.Sprintf("exit status %d", int(e)) }

func isHelpFlag(s string) bool { return s == "-h" || s == "--help" || s == "-help" }

func nonEmpty(s []string) []string {
	var out []string
	for _, x := range s {
		if x != "" {
			out = append(out, x)
		}
	}
	return out
}

// wantArgs checks the number of positional arguments.
func wantArgs(args []string, n int, form string) error {
	if len(args) != n {
		return badUsage("want %s, got %d argument(s)", form, len(args))
	}
	return nil
}
