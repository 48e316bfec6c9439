//go:build linux

package faults

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
)

// member is a member as /v1/members shows it.
type member struct {
	Name       string `json:"name"`
	Generation uint64 `json:"generation"`
	State      string `json:"state"`
}

// stateOf returns the state of name in ms, or "unknown".
func stateOf(ms []member, name string) string {
	for _, m := range ms {
		if m.Name == name {
			return m.State
		}
	}
	return "unknown"
}

// getJSON GETs path and decodes a 200 answer into v.
func (a *agent) getJSON(path string, v any) error {
	resp, err := a.client.Get(a.base() + path)
	if err != nil {
		return fmt.Errorf("%s: %w", a.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("%s: GET %s: %s: %s", a.name, path, resp.Status, b)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		return fmt.Errorf("%s: GET %s: %w", a.name, path, err)
	}
	return nil
}

// members returns every member the agent knows, itself included.
func (a *agent) members() ([]member, error) {
	var all []member
	cursor := ""
	for {
		var page struct {
			Members    []member `json:"members"`
			NextCursor string   `json:"next_cursor"`
		}
		if err := a.getJSON("/v1/members?cursor="+url.QueryEscape(cursor), &page); err != nil {
			return nil, err
		}
		all = append(all, page.Members...)
		if page.NextCursor == "" {
			return all, nil
		}
		cursor = page.NextCursor
	}
}

// storeStats is the part of /v1/status the suite reports.
type storeStats struct {
	Keys       int    `json:"keys"`
	Tombstones int    `json:"tombstones"`
	Collected  uint64 `json:"collected"`
	Resyncs    uint64 `json:"resyncs"`
}

// status returns the store's part of /v1/status.
func (a *agent) status() (storeStats, error) {
	var s struct {
		Store storeStats `json:"store"`
	}
	err := a.getJSON("/v1/status", &s)
	return s.Store, err
}

// do sends one request with a JSON body and returns the status code.
func (a *agent) do(method, path string, body io.Reader) (int, error) {
	req, err := http.NewRequest(method, a.base()+path, body)
	if err != nil {
		return 0, err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := a.client.Do(req)
	if err != nil {
		return 0, fmt.Errorf("%s: %s %s: %w", a.name, method, path, err)
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	return resp.StatusCode, nil
}

// kvPath is the API path of a key.
func kvPath(ns, key string) string { return "/v1/kv/" + ns + "/" + url.PathEscape(key) }

// put writes key = value and reports whether the node acknowledged it (200).
func (a *agent) put(ns, key, value string) error {
	b, _ := json.Marshal(map[string]string{"value": value})
	code, err := a.do(http.MethodPut, kvPath(ns, key), strings.NewReader(string(b)))
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("%s: PUT %s/%s: status %d", a.name, ns, key, code)
	}
	return err
}

// del deletes key and reports whether the node acknowledged it (200).
func (a *agent) del(ns, key string) error {
	code, err := a.do(http.MethodDelete, kvPath(ns, key), nil)
	if err == nil && code != http.StatusOK {
		err = fmt.Errorf("%s: DELETE %s/%s: status %d", a.name, ns, key, code)
	}
	return err
}

// list returns the whole namespace: key -> value.
func (a *agent) list(ns string) (map[string]string, error) {
	out := map[string]string{}
	cursor := ""
	for {
		var page struct {
			Items []struct {
				Key   string `json:"key"`
				Value string `json:"value"`
			} `json:"items"`
			NextCursor string `json:"next_cursor"`
		}
		if err := a.getJSON("/v1/kv/"+ns+"?cursor="+url.QueryEscape(cursor), &page); err != nil {
			return nil, err
		}
		for _, it := range page.Items {
			out[it.Key] = it.Value
		}
		if page.NextCursor == "" {
			return out, nil
		}
		cursor = page.NextCursor
	}
}

// metrics returns the samples of /metrics by series ("name" or
// `name{label="v"}`).
func (a *agent) metrics() (map[string]float64, error) {
	resp, err := a.client.Get(a.base() + "/metrics")
	if err != nil {
		return nil, fmt.Errorf("%s: %w", a.name, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s: GET /metrics: %s", a.name, resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		l := sc.Text()
		if l == "" || l[0] == '#' {
			continue
		}
		i := strings.LastIndexByte(l, ' ')
		if i < 0 {
			continue
		}
		v, err := strconv.ParseFloat(l[i+1:], 64)
		if err != nil {
			continue
		}
		out[l[:i]] = v
	}
	return out, sc.Err()
}

// heapBytes returns go_memstats_heap_alloc_bytes of the agent.
func (a *agent) heapBytes() (float64, error) {
	m, err := a.metrics()
	if err != nil {
		return 0, err
	}
	v, ok := m["go_memstats_heap_alloc_bytes"]
	if !ok {
		return 0, fmt.Errorf("%s: no go_memstats_heap_alloc_bytes in /metrics", a.name)
	}
	return v, nil
}

// sum adds the samples of every series of metric name.
func sum(m map[string]float64, name string) float64 {
	t := 0.0
	for k, v := range m {
		if k == name || strings.HasPrefix(k, name+"{") {
			t += v
		}
	}
	return t
}
