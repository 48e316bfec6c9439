package node

import (
	"fmt"
	"net"
	"strconv"
	"strings"
)

// Bounds of a worker's KV event endpoints.
const (
	maxKVEndpointBytes = 1024
	maxKVTopicBytes    = 255
)

// Validate checks the endpoints and the topic, reporting the first problem
// (the error matches ErrBadRequest): endpoints are tcp://host:port (a host
// name or an IP address, a port in 1..65535; not a wildcard, which only a
// publisher binds) or ipc://path, and the topic is text of at most 255
// bytes.
func (k KVEvents) Validate() error {
	if err := validKVEndpoint("kv_events.endpoint", k.Endpoint); err != nil {
		return err
	}
	if k.ReplayEndpoint != "" {
		if err := validKVEndpoint("kv_events.replay_endpoint", k.ReplayEndpoint); err != nil {
			return err
		}
	}
	if len(k.Topic) > maxKVTopicBytes {
		return fmt.Errorf("%w: kv_events.topic: %d bytes, at most %d", ErrBadRequest, len(k.Topic), maxKVTopicBytes)
	}
	return validText("kv_events.topic", k.Topic)
}

// validKVEndpoint checks one ZMQ endpoint a subscriber connects to.
func validKVEndpoint(what, e string) error {
	bad := func(why string) error {
		return fmt.Errorf("%w: %s %q: %s", ErrBadRequest, what, e, why)
	}
	if e == "" {
		return bad("want tcp://host:port or ipc://path")
	}
	if len(e) > maxKVEndpointBytes {
		return bad(fmt.Sprintf("at most %d bytes", maxKVEndpointBytes))
	}
	if err := validText(what, e); err != nil {
		return err
	}
	scheme, rest, ok := strings.Cut(e, "://")
	if !ok {
		return bad("want tcp://host:port or ipc://path")
	}
	switch scheme {
	case "tcp":
		host, port, err := net.SplitHostPort(rest)
		if err != nil {
			return bad("want tcp://host:port")
		}
		if p, err := strconv.ParseUint(port, 10, 16); err != nil || p == 0 {
			return bad(fmt.Sprintf("port %q: want 1 to 65535", port))
		}
		switch {
		case host == "":
			return bad("no host")
		case host == "*" || host == "0.0.0.0" || host == "::":
			return bad("a wildcard is what the engine binds; give an address it is reached at")
		case len(host) > 253 || strings.ContainsAny(host, "/ "):
			return bad("want a host name or an IP address")
		}
	case "ipc":
		if rest == "" {
			return bad("want ipc://path")
		}
	default:
		return bad(fmt.Sprintf("scheme %q: want tcp or ipc", scheme))
	}
	return nil
}
