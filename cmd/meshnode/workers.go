package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/node"
)

// The gateway commands: workers, route, ratelimit.

// labelsFlag collects repeated --label k=v.
type labelsFlag map[string]string

func (l labelsFlag) String() string { return "" }

func (l labelsFlag) Set(v string) error {
	k, val, ok := strings.Cut(v, "=")
	if !ok || k == "" {
		return fmt.Errorf("%q: want key=value", v)
	}
	l[k] = val
	return nil
}

func setupWorkers(sub string, fs *flag.FlagSet) func(*client, []string) error {
	switch sub {
	case "list":
		model := fs.String("model", "", "only workers of this model")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			q := url.Values{}
			if *model != "" {
				q.Set("model", *model)
			}
			all, err := listAll[node.Worker](c, "/v1/workers", q, "workers")
			if err != nil {
				return err
			}
			if c.json {
				return c.printJSON(all)
			}
			rows := make([][]string, len(all))
			for i, w := range all {
				rows[i] = []string{w.ID, w.Model, w.Health, strconv.Itoa(w.Load), w.URL, labels(w.Labels)}
			}
			return c.table("ID\tMODEL\tHEALTH\tLOAD\tURL\tLABELS", rows)
		}
	case "get":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a worker id"); err != nil {
				return err
			}
			var w node.Worker
			if err := c.call(http.MethodGet, "/v1/workers/"+url.PathEscape(args[0]), nil, nil, &w); err != nil {
				return err
			}
			return c.printWorker(w)
		}
	case "put":
		u := fs.String("url", "", "the worker's URL (required)")
		model := fs.String("model", "", "the model it serves (required)")
		health := fs.String("health", "healthy", "healthy, unhealthy or draining")
		load := fs.Int("load", 0, "current load (e.g. requests in flight)")
		lbl := labelsFlag{}
		fs.Var(lbl, "label", "a label key=value (repeatable)")
		kvEndpoint := fs.String("kv-events", "", "the engine's KV event `endpoint` (ZMQ PUB), tcp://host:port or ipc://path: a node subscribes and routes on what the engine caches")
		kvReplay := fs.String("kv-replay", "", "the engine's KV event replay `endpoint` (ZMQ ROUTER), with --kv-events")
		kvTopic := fs.String("kv-topic", "", "the `topic` of the engine's KV events, with --kv-events (default: every message)")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a worker id"); err != nil {
				return err
			}
			body := map[string]any{"url": *u, "model": *model, "health": *health, "load": *load}
			if len(lbl) > 0 {
				body["labels"] = map[string]string(lbl)
			}
			switch {
			case *kvEndpoint != "":
				body["kv_events"] = node.KVEvents{Endpoint: *kvEndpoint, ReplayEndpoint: *kvReplay, Topic: *kvTopic}
			case *kvReplay != "" || *kvTopic != "":
				return badUsage("--kv-replay and --kv-topic go with --kv-events")
			}
			var w node.Worker
			if err := c.call(http.MethodPut, "/v1/workers/"+url.PathEscape(args[0]), nil, body, &w); err != nil {
				return err
			}
			return c.printWorker(w)
		}
	case "patch":
		health := fs.String("health", "", "new health: healthy, unhealthy or draining (default: unchanged)")
		load := fs.Int("load", -1, "new load (default: unchanged)")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a worker id"); err != nil {
				return err
			}
			body := map[string]any{}
			if *health != "" {
				body["health"] = *health
			}
			if *load >= 0 {
				body["load"] = *load
			}
			if len(body) == 0 {
				return badUsage("want --load or --health (or both)")
			}
			var w node.Worker
			if err := c.call(http.MethodPatch, "/v1/workers/"+url.PathEscape(args[0]), nil, body, &w); err != nil {
				return err
			}
			return c.printWorker(w)
		}
	case "del":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a worker id"); err != nil {
				return err
			}
			var res map[string]bool
			if err := c.call(http.MethodDelete, "/v1/workers/"+url.PathEscape(args[0]), nil, nil, &res); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			_, err := fmt.Fprintf(c.out, "removed worker %s\n", args[0])
			return err
		}
	}
	panic("meshnode: workers subcommand " + sub)
}

func (c *client) printWorker(w node.Worker) error {
	if c.json {
		return c.printJSON(w)
	}
	kv := "-"
	if k := w.KVEvents; k != nil {
		kv = k.Endpoint
		if k.ReplayEndpoint != "" {
			kv += " replay " + k.ReplayEndpoint
		}
		if k.Topic != "" {
			kv += " topic " + k.Topic
		}
	}
	return c.pairs("id", w.ID, "url", w.URL, "model", w.Model, "health", w.Health,
		"load", strconv.Itoa(w.Load), "labels", labels(w.Labels), "epoch", strconv.FormatUint(w.Epoch, 10), "kv events", kv)
}

// labels formats labels sorted, k=v,k=v.
func labels(m map[string]string) string {
	if len(m) == 0 {
		return "-"
	}
	ks := make([]string, 0, len(m))
	for k, v := range m {
		ks = append(ks, k+"="+v)
	}
	sort.Strings(ks)
	return strings.Join(ks, ",")
}

func setupRoute(_ string, fs *flag.FlagSet) func(*client, []string) error {
	model := fs.String("model", "", "the model (required)")
	text := fs.String("text", "", "the prompt as text (or give --tokens)")
	tokens := fs.String("tokens", "", "the prompt as comma-separated token ids")
	byteTokens := fs.String("byte-tokens", "", "the prompt as `text` tokenized one token per byte, as meshnode engine does")
	record := fs.Bool("record", false, "record that the chosen worker now holds the prompt's prefix (pending until its KV events confirm it, for a worker that streams them)")
	lora := fs.String("lora", "", "the LoRA `adapter` the prompt runs with, as the engine names it in its KV events (with --tokens)")
	return func(c *client, args []string) error {
		if err := wantArgs(args, 0, "flags only (--model, --text or --tokens)"); err != nil {
			return err
		}
		body := map[string]any{"model": *model, "record": *record}
		if *lora != "" {
			body["lora"] = *lora
		}
		switch {
		case *byteTokens != "" && (*tokens != "" || *text != ""):
			return badUsage("give one of --text, --tokens and --byte-tokens")
		case *byteTokens != "":
			ts := make([]uint32, len(*byteTokens))
			for i := range len(*byteTokens) {
				ts[i] = uint32((*byteTokens)[i])
			}
			body["tokens"] = ts
		case *tokens != "" && *text != "":
			return badUsage("give --text or --tokens, not both")
		case *tokens != "":
			var ts []uint32
			for s := range strings.SplitSeq(*tokens, ",") {
				v, err := strconv.ParseUint(strings.TrimSpace(s), 10, 32)
				if err != nil {
					return badUsage("--tokens: %q is not a token id", s)
				}
				ts = append(ts, uint32(v))
			}
			body["tokens"] = ts
		default:
			body["text"] = *text
		}
		var r node.RouteResult
		if err := c.call(http.MethodPost, "/v1/route", nil, body, &r); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(r)
		}
		return c.pairs("worker", r.Worker, "url", r.URL, "rule", r.Rule,
			"matched pages", strconv.Itoa(r.MatchedPages), "match ratio", strconv.FormatFloat(r.MatchRatio, 'f', 2, 64),
			"recorded", recorded(r), "sources", sources(r.Sources))
	}
}

// recorded says whether and how a route was recorded.
func recorded(r node.RouteResult) string {
	if r.Pending {
		return "yes, pending until the engine's events confirm it"
	}
	return yesNo(r.Recorded)
}

// sources lists what a route's matched pages came from.
func sources(s []string) string {
	if len(s) == 0 {
		return "-"
	}
	return strings.Join(s, ", ")
}

// limitInfo is the body of GET /v1/limits/{name}.
type limitInfo struct {
	Name      string        `json:"name"`
	Limit     uint64        `json:"limit"`
	Window    node.Duration `json:"window"`
	Used      uint64        `json:"used"`
	Remaining uint64        `json:"remaining"`
	Reset     time.Time     `json:"reset"`
	Share     float64       `json:"share"`
}

func limitPath(name string) string { return "/v1/limits/" + url.PathEscape(name) }

func setupRatelimit(sub string, fs *flag.FlagSet) func(*client, []string) error {
	switch sub {
	case "list":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 0, "no arguments"); err != nil {
				return err
			}
			names, err := listAll[string](c, "/v1/limits", nil, "limits")
			if err != nil {
				return err
			}
			infos := make([]limitInfo, 0, len(names))
			for _, n := range names {
				var li limitInfo
				if err := c.call(http.MethodGet, limitPath(n), nil, nil, &li); err != nil {
					return err
				}
				infos = append(infos, li)
			}
			if c.json {
				return c.printJSON(infos)
			}
			rows := make([][]string, len(infos))
			for i, li := range infos {
				rows[i] = []string{li.Name, strconv.FormatUint(li.Limit, 10), li.Window.D().String(),
					strconv.FormatUint(li.Used, 10), strconv.FormatUint(li.Remaining, 10)}
			}
			return c.table("NAME\tLIMIT\tWINDOW\tUSED\tREMAINING", rows)
		}
	case "get":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a limit name"); err != nil {
				return err
			}
			var li limitInfo
			if err := c.call(http.MethodGet, limitPath(args[0]), nil, nil, &li); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(li)
			}
			return c.pairs("name", li.Name, "limit", strconv.FormatUint(li.Limit, 10), "window", li.Window.D().String(),
				"used", fmt.Sprintf("%d (cluster-wide, this window)", li.Used), "remaining", strconv.FormatUint(li.Remaining, 10),
				"reset", li.Reset.Format(time.RFC3339Nano), "share", strconv.FormatFloat(li.Share, 'f', 2, 64))
		}
	case "set":
		limit := fs.Uint64("limit", 0, "requests admitted per window, cluster-wide (required)")
		window := fs.Duration("window", time.Second, "the window")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a limit name"); err != nil {
				return err
			}
			var res map[string]any
			body := map[string]any{"limit": *limit, "window": window.String()}
			if err := c.call(http.MethodPut, limitPath(args[0]), nil, body, &res); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			_, err := fmt.Fprintf(c.out, "limit %s: %d per %v\n", args[0], *limit, *window)
			return err
		}
	case "take":
		n := fs.Uint64("n", 1, "tokens to take")
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a limit name"); err != nil {
				return err
			}
			var r node.TakeResult
			if err := c.call(http.MethodPost, limitPath(args[0])+"/take", nil, map[string]uint64{"n": *n}, &r); err != nil {
				return err
			}
			if c.json {
				if err := c.printJSON(r); err != nil {
					return err
				}
			} else {
				verdict := "allowed"
				if !r.Allowed {
					verdict = "denied"
				}
				fmt.Fprintf(c.out, "%s, %d remaining, window resets %s\n", verdict, r.Remaining, r.Reset.Format(time.RFC3339Nano))
			}
			if !r.Allowed {
				return exitCode(3) // a gate for scripts: non-zero when denied
			}
			return nil
		}
	case "del":
		return func(c *client, args []string) error {
			if err := wantArgs(args, 1, "a limit name"); err != nil {
				return err
			}
			var res map[string]bool
			if err := c.call(http.MethodDelete, limitPath(args[0]), nil, nil, &res); err != nil {
				return err
			}
			if c.json {
				return c.printJSON(res)
			}
			_, err := fmt.Fprintf(c.out, "deleted limit %s\n", args[0])
			return err
		}
	}
	panic("meshnode: ratelimit subcommand " + sub)
}
