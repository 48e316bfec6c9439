package main

import (
	"bufio"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/node"
)

// maxValueBytes bounds a value read from stdin (the API's own bound is
// DefaultMaxRequestBytes for the whole request).
const maxValueBytes = node.DefaultMaxRequestBytes

// maxEventBytes bounds one server-sent event line.
const maxEventBytes = 8 << 20

// watchPoll is how long one watch request lasts before the client renews
// it (the API's upper bound is 5m).
const watchPoll = 5 * time.Minute

// checkKV refuses, before any request, a namespace or key the API would
// refuse: names with control characters or invalid UTF-8, keys with empty,
// "." or ".." segments (which a path cannot carry unchanged).
func checkKV(ns, key string) error {
	err := node.ValidNamespace(ns)
	if err == nil && key != "" {
		err = node.ValidKey(key)
	}
	if err != nil {
		return errors.New(strings.TrimPrefix(err.Error(), node.ErrBadRequest.Error()+": "))
	}
	return nil
}

func kvPath(ns, key string) string {
	return "/v1/kv/" + url.PathEscape(ns) + "/" + escapeKey(key)
}

// escapeKey escapes a key for the path, keeping its slashes: the API's
// key pattern spans the rest of the path.
func escapeKey(key string) string {
	parts := strings.Split(key, "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	return strings.Join(parts, "/")
}

func setupKV(sub string, fs *flag.FlagSet) func(*client, []string) error {
	switch sub {
	case "get":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 2, "namespace key"); err != nil {
				return err
			}
			if err := checkKV(args[0], args[1]); err != nil {
				return err
			}
			var kv node.KV
			if err := c.call(http.MethodGet, kvPath(args[0], args[1]), nil, nil, &kv); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(kv)
			}
			_, err := fmt.Fprintln(c.out, kv.Value)
			return err
		}
	case "put":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 3, `namespace key value (value "-" reads stdin)`); err != nil {
				return err
			}
			if err := checkKV(args[0], args[1]); err != nil {
				return err
			}
			val := args[2]
			if val == "-" {
				b, err := io.ReadAll(io.LimitReader(c.stdin, maxValueBytes+1))
				if err != nil {
					return fmt.Errorf("reading stdin: %w", err)
				}
				if len(b) > maxValueBytes {
					return fmt.Errorf("value on stdin over %d bytes", maxValueBytes)
				}
				val = string(b)
			}
			var res map[string]string
			if err := c.call(http.MethodPut, kvPath(args[0], args[1]), nil, map[string]string{"value": val}, &res); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			_, err := fmt.Fprintf(c.out, "put %s/%s\n", args[0], args[1])
			return err
		}
	case "del":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 2, "namespace key"); err != nil {
				return err
			}
			if err := checkKV(args[0], args[1]); err != nil {
				return err
			}
			var res map[string]bool
			if err := c.call(http.MethodDelete, kvPath(args[0], args[1]), nil, nil, &res); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			_, err := fmt.Fprintf(c.out, "deleted %s/%s\n", args[0], args[1])
			return err
		}
	case "list":
		prefix := fs.String("prefix", "", "only keys with this prefix")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a namespace"); err != nil {
				return err
			}
			if err := checkKV(args[0], ""); err != nil {
				return err
			}
			q := url.Values{}
			if *prefix != "" {
				q.Set("prefix", *prefix)
			}
			all, err := listAll[node.KV](c, "/v1/kv/"+url.PathEscape(args[0]), q, "items")
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(all)
			}
			rows := make([][]string, len(all))
			for i, kv := range all {
				rows[i] = []string{kv.Key, shorten(kv.Value, 60), stamp(kv.StampMs)}
			}
			return c.table("KEY\tVALUE\tWRITTEN", rows)
		}
	case "watch":
		prefix := fs.String("prefix", "", "only keys with this prefix")
		count := fs.Int("count", 0, "exit after this many changes (0: run until interrupted)")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a namespace"); err != nil {
				return err
			}
			if err := checkKV(args[0], ""); err != nil {
				return err
			}
			return c.watch(args[0], *prefix, *count)
		}
	}
	panic("meshnode: kv subcommand " + sub)
}

// watch streams the changes of a namespace as server-sent events, renewing
// the request when the API ends it. It resumes each new request from the
// index of the last change it saw (Last-Event-ID), so that nothing changed
// between two requests is lost; when the agent no longer keeps the changes
// since then (410 Gone, or a lagged event) it says so and goes on from the
// current index.
func (c *client) watch(ns, prefix string, count int) error {
	c.hc.Timeout = 0 // a stream; each request ends at watchPoll
	q := url.Values{"timeout": {watchPoll.String()}}
	if prefix != "" {
		q.Set("prefix", prefix)
	}
	seen := 0
	announced := false
	index := "" // the index to resume from; "" the first time
	for {
		hdr := map[string]string{}
		if index != "" {
			hdr["Last-Event-ID"] = index
		}
		resp, err := c.sendHeaders(http.MethodGet, "/v1/watch/"+url.PathEscape(ns), q, nil, "text/event-stream", hdr)
		if err != nil {
			return err
		}
		if resp.StatusCode == http.StatusGone {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
			resp.Body.Close()
			var gone struct {
				Index uint64 `json:"index"`
			}
			if json.Unmarshal(b, &gone) != nil || gone.Index == 0 {
				return responseError(resp.StatusCode, b)
			}
			if err := c.printEvent(node.WatchEvent{Lagged: true, Index: gone.Index}); err != nil {
				return err
			}
			index = strconv.FormatUint(gone.Index, 10)
			continue
		}
		if resp.StatusCode != http.StatusOK {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, maxResponseBytes))
			resp.Body.Close()
			return responseError(resp.StatusCode, b)
		}
		if index == "" {
			index = resp.Header.Get("X-Meshnode-Index")
		}
		if !announced {
			// The answer's header arrives once the watch has its index:
			// every change from now on is shown.
			fmt.Fprintf(c.errw, "watching namespace %q; changes follow\n", ns)
			announced = true
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 0, 64<<10), maxEventBytes)
		id := ""
		for sc.Scan() {
			line := sc.Text()
			if v, ok := strings.CutPrefix(line, "id: "); ok {
				id = v
				continue
			}
			data, ok := strings.CutPrefix(line, "data: ")
			if !ok {
				continue
			}
			var ev node.WatchEvent
			if err := json.Unmarshal([]byte(data), &ev); err != nil {
				resp.Body.Close()
				return fmt.Errorf("watch: bad event: %w", err)
			}
			switch {
			case ev.Lagged && ev.Index != 0:
				index = strconv.FormatUint(ev.Index, 10)
			case id != "":
				index = id
			}
			id = ""
			if err := c.printEvent(ev); err != nil {
				resp.Body.Close()
				return err
			}
			if seen++; count > 0 && seen >= count {
				resp.Body.Close()
				return nil
			}
		}
		err = sc.Err()
		resp.Body.Close()
		if err != nil {
			return fmt.Errorf("watch: %w", err)
		}
	}
}

func (c *client) printEvent(ev node.WatchEvent) error {
	if c.json {
		return json.NewEncoder(c.out).Encode(ev)
	}
	var err error
	switch {
	case ev.Lagged:
		_, err = fmt.Fprintln(c.out, "lagged: changes were missed; list the namespace again")
	case ev.Deleted:
		_, err = fmt.Fprintf(c.out, "del %s\n", ev.Key)
	default:
		_, err = fmt.Fprintf(c.out, "put %s %s\n", ev.Key, strconv.Quote(shorten(ev.Value, 200)))
	}
	return err
}

// shorten cuts s to n runes with an ellipsis.
func shorten(s string, n int) string {
	r := []rune(s)
	if len(r) <= n {
		return s
	}
	return string(r[:n-1]) + "…"
}

// stamp formats a hybrid-clock time in milliseconds.
func stamp(ms int64) string {
	if ms == 0 {
		return "-"
	}
	return time.UnixMilli(ms).UTC().Format("2006-01-02T15:04:05.000Z")
}
