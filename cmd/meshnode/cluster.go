package main

import (
	"flag"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/meshnode/meshnode/node"
)

// The cluster commands: members, status, join, leave, ring.

func setupMembers(_ string, fs *flag.FlagSet) func(*client, []string) error {
	return func(c *client, args []string) error {
		if err := wantArgs(args, 0, "no arguments"); err != nil {
			return err
		}
		all, err := listAll[node.MemberInfo](c, "/v1/members", nil, "members")
		if err != nil {
			return err
		}
		if c.json {
			return c.printJSON(all)
		}
		rows := make([][]string, len(all))
		for i, m := range all {
			rows[i] = []string{m.Name, m.Addr, m.State, strconv.FormatUint(m.Generation, 10), strconv.FormatUint(m.Incarnation, 10)}
		}
		return c.table("NAME\tADDRESS\tSTATE\tGENERATION\tINCARNATION", rows)
	}
}

// self is the body of GET /v1/self.
type self struct {
	node.MemberInfo
	Version string `json:"version"`
}

func setupStatus(_ string, fs *flag.FlagSet) func(*client, []string) error {
	return func(c *client, args []string) error {
		if err := wantArgs(args, 0, "no arguments"); err != nil {
			return err
		}
		var st node.Status
		if err := c.call(http.MethodGet, "/v1/status", nil, nil, &st); err != nil {
			return err
		}
		var me self
		if err := c.call(http.MethodGet, "/v1/self", nil, nil, &me); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(struct {
				node.Status
				Addr    string `json:"addr"`
				Version string `json:"version"`
			}{st, me.Addr, me.Version})
		}
		ready := "yes"
		if !st.Ready {
			ready = "no: " + st.Reason
		}
		if err := c.pairs(
			"node", fmt.Sprintf("%s (generation %d)", st.Name, st.Generation),
			"address", me.Addr,
			"version", me.Version,
			"members", fmt.Sprintf("%d alive or suspect of %d known", st.ClusterSize, st.KnownSize),
			"majority", yesNo(st.Majority),
			"ready", ready,
			"store", fmt.Sprintf("%d keys, %d tombstones, %d bytes", st.Store.Keys, st.Store.Tombstones, st.Store.Bytes),
			"index", fmt.Sprintf("%d pages, %d holder-pages, %d workers, %d bytes", st.Index.Pages, st.Index.HolderPages, st.Index.Workers, st.Index.Bytes),
		); err != nil {
			return err
		}
		if len(st.KVEvents) == 0 {
			return nil
		}
		fmt.Fprintln(c.out)
		rows := make([][]string, len(st.KVEvents))
		for i, k := range st.KVEvents {
			state, seq, lag := "-", "-", "-"
			if k.Subscribed {
				state = k.State
				if k.Error != "" {
					state += ": " + k.Error
				}
				if k.LastSeq >= 0 {
					seq = strconv.FormatInt(k.LastSeq, 10)
					if k.SeqBehind > 0 {
						seq += fmt.Sprintf(" (%d behind)", k.SeqBehind)
					}
				}
				if k.LastBatch != nil {
					lag = time.Duration(k.LagSeconds * float64(time.Second)).Round(time.Millisecond).String()
				}
			}
			rows[i] = []string{k.Worker, strings.Join(k.Owners, ","), k.Endpoint, seq, lag, state}
		}
		return c.table("KV EVENTS WORKER\tSUBSCRIBERS\tENDPOINT\tLAST SEQ\tLAG\tSTATE (THIS NODE)", rows)
	}
}

func setupJoin(_ string, fs *flag.FlagSet) func(*client, []string) error {
	return func(c *client, args []string) error {
		if len(args) == 0 {
			return badUsage("want one or more seeds, host:port")
		}
		var res struct {
			Joining []string `json:"joining"`
		}
		if err := c.call(http.MethodPost, "/v1/join", nil, map[string][]string{"seeds": args}, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		_, err := fmt.Fprintf(c.out, "joining through %s\n", strings.Join(res.Joining, ", "))
		return err
	}
}

func setupLeave(_ string, fs *flag.FlagSet) func(*client, []string) error {
	timeout := fs.Duration("leave-timeout", 0, "how long the agent waits for the leave to spread (0: its --leave-timeout)")
	return func(c *client, args []string) error {
		if err := wantArgs(args, 0, "no arguments"); err != nil {
			return err
		}
		// The request lasts as long as the leave.
		c.hc.Timeout = max(c.hc.Timeout, *timeout+node.DefaultLeaveTimeout+5*time.Second)
		var res map[string]bool
		if err := c.call(http.MethodPost, "/v1/leave", nil, map[string]string{"timeout": timeout.String()}, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		_, err := fmt.Fprintln(c.out, "left the cluster; the agent keeps answering reads until it is stopped")
		return err
	}
}

func setupRing(_ string, fs *flag.FlagSet) func(*client, []string) error {
	n := fs.Int("n", 1, "how many owners, best first")
	return func(c *client, args []string) error {
		if err := wantArgs(args, 1, "a key"); err != nil {
			return err
		}
		var res struct {
			Key    string            `json:"key"`
			Owners []node.MemberInfo `json:"owners"`
		}
		q := url.Values{"key": {args[0]}, "n": {strconv.Itoa(*n)}}
		if err := c.call(http.MethodGet, "/v1/ring", q, nil, &res); err != nil {
			return err
		}
		if c.json {
			return c.printJSON(res)
		}
		rows := make([][]string, len(res.Owners))
		for i, m := range res.Owners {
			rows[i] = []string{strconv.Itoa(i + 1), m.Name, m.Addr, m.State}
		}
		return c.table("RANK\tOWNER\tADDRESS\tSTATE", rows)
	}
}
