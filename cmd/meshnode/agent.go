package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/meshnode/meshnode/node"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// shutdownTimeout bounds the wait for the node's goroutines after leaving.
const shutdownTimeout = 10 * time.Second

// runAgent runs a node until the first SIGINT or SIGTERM on sig, then
// leaves gracefully and returns 0; a second such signal during the leave
// returns 1 at once. SIGHUP reloads the log level and the TLS certificate.
// Logs go to stderr; the ready line (or banner, on a terminal) goes to
// stdout.
func runAgent(args []string, env lookupEnv, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	cfg, af, err := loadConfig(args, env, os.Hostname, stderr)
	if err != nil {
		var fe flagError
		var ue usageErr
		if errors.As(err, &fe) || errors.As(err, &ue) {
			return usageError(stderr, "agent", err)
		}
		fmt.Fprintf(stderr, "meshnode agent: %v\n", oneLine(err))
		return 2
	}
	if af.printConfig {
		if err := printConfig(stdout, cfg); err != nil {
			fmt.Fprintf(stderr, "meshnode agent: %v\n", err)
			return 1
		}
		return 0
	}

	level := new(slog.LevelVar)
	l, _ := parseLevel(cfg.LogLevel) // validated
	level.Set(l)
	log := slog.New(logHandler(stderr, cfg.LogFormat, level))

	defer node.StartHeapFloor(uint64(cfg.HeapFloorBytes))()

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	nc := cfg.nodeConfig()
	nc.Logger, nc.Registerer, nc.Version = log, reg, version
	n, err := node.New(nc)
	if err != nil {
		fmt.Fprintf(stderr, "meshnode agent: %v\n", oneLine(err))
		return 1
	}
	if err := n.Start(); err != nil {
		fmt.Fprintf(stderr, "meshnode agent: %v\n", oneLine(err))
		return 1
	}
	if seeds := append(append([]string(nil), cfg.Join...), cfg.RetryJoin...); len(seeds) > 0 {
		// The node retries with backoff, resolving names again each time,
		// until it joins or shuts down.
		if err := n.Join(seeds...); err != nil {
			fmt.Fprintf(stderr, "meshnode agent: join: %v\n", oneLine(err))
			_ = n.Shutdown(context.Background())
			return 1
		}
		if len(cfg.Join) > 0 {
			if err := waitJoined(n, cfg.JoinTimeout.D(), sig); err != nil {
				fmt.Fprintf(stderr, "meshnode agent: join through %s: %v\n", strings.Join(seeds, ", "), oneLine(err))
				_ = n.Shutdown(context.Background())
				return 1
			}
		}
	}
	printReady(stdout, n, cfg)

	for s := range sig {
		if s == syscall.SIGHUP {
			reload(n, args, env, cfg, level, log)
			continue
		}
		log.Info("leaving the cluster", "signal", s.String(), "timeout", cfg.LeaveTimeout.D().String())
		return leave(n, cfg.LeaveTimeout.D(), sig, log)
	}
	return 0
}

// leaver is the part of *node.Node that leave uses.
type leaver interface {
	Leave(timeout time.Duration) error
	Shutdown(ctx context.Context) error
}

// leave runs the graceful leave and the shutdown, unless a second SIGINT or
// SIGTERM asks to exit at once.
func leave(n leaver, timeout time.Duration, sig <-chan os.Signal, log *slog.Logger) int {
	done := make(chan error, 1)
	go func() {
		err := n.Leave(timeout)
		ctx, cancel := context.WithTimeout(context.Background(), shutdownTimeout)
		defer cancel()
		done <- errors.Join(err, n.Shutdown(ctx))
	}()
	for {
		select {
		case err := <-done:
			if err != nil {
				// The node is down either way; a leave that timed out only
				// means some members learn of it by failure detection.
				log.Warn("leave incomplete", "err", err)
			}
			log.Info("left the cluster; stopped")
			return 0
		case s := <-sig:
			if s == syscall.SIGHUP {
				continue
			}
			log.Warn("second signal: exiting at once", "signal", s.String())
			return 1
		}
	}
}

// waitJoined waits until the node has joined, the timeout passes or a
// SIGINT or SIGTERM arrives.
func waitJoined(n *node.Node, timeout time.Duration, sig <-chan os.Signal) error {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		if _, why := n.Ready(); why != "joining" {
			return nil
		}
		select {
		case <-deadline.C:
			err := fmt.Errorf("not joined within %v (see --join-timeout; --retry-join does not wait)", timeout)
			if last := n.JoinError(); last != nil {
				err = fmt.Errorf("%w; last attempt: %v", err, last)
			}
			return err
		case s := <-sig:
			if s != syscall.SIGHUP {
				return fmt.Errorf("interrupted by %v", s)
			}
		case <-tick.C:
		}
	}
}

// tlsReloader is the part of *node.Node that reload uses.
type tlsReloader interface{ ReloadTLS() error }

// reload re-reads the configuration (file and environment; flags are
// fixed) and applies what can change in a running node: the log level. It
// also reads the TLS certificate and key files again, the proxy's too
// (their paths are fixed; the CA is not reloaded).
func reload(n tlsReloader, args []string, env lookupEnv, old agentConfig, level *slog.LevelVar, log *slog.Logger) {
	if cfg, _, err := loadConfig(args, env, os.Hostname, io.Discard); err != nil {
		log.Error("reload: configuration not applied", "err", oneLine(err))
	} else {
		l, _ := parseLevel(cfg.LogLevel)
		level.Set(l)
		log.Info("reloaded", "log_level", l.String())
	}
	if old.TLSCertFile == "" && old.ProxyTLSCert == "" {
		return
	}
	if err := n.ReloadTLS(); err != nil {
		log.Error("reload: TLS certificate not replaced; the old one stays in use", "err", err)
		return
	}
	log.Info("reloaded the TLS certificate and key", "cert", old.TLSCertFile, "proxy_cert", old.ProxyTLSCert)
}

// printReady announces the running node: one line for logs and process
// supervisors, a short banner on a terminal.
func printReady(w io.Writer, n *node.Node, cfg agentConfig) {
	api := n.APIAddr()
	if api == "" {
		api = "off"
	}
	tlsOn := cfg.TLSCertFile != ""
	if isTerminal(w) {
		fmt.Fprintf(w, "meshnode %s agent running\n", version)
		fmt.Fprintf(w, "  node:       %s (generation %d)\n", n.Name(), n.Generation())
		fmt.Fprintf(w, "  gossip:     %s (UDP and TCP), encrypted: %s\n", n.Addr(), yesNo(cfg.encrypted()))
		fmt.Fprintf(w, "  api:        %s, TLS: %s\n", api, yesNo(tlsOn && !cfg.APIPlaintext))
		fmt.Fprintf(w, "  profile:    %s, data dir: %s\n", cfg.Profile, orNone(cfg.DataDir))
		if p := n.ProxyAddr(); p != "" {
			fmt.Fprintf(w, "  proxy:      %s (OpenAI-compatible), token: %s, TLS: %s\n", p, yesNo(cfg.ProxyToken != "" || cfg.ProxyTokenFile != ""), yesNo(n.ProxyTLS()))
		}
		fmt.Fprintln(w, "  Ctrl-C leaves the cluster gracefully; twice exits at once.")
		return
	}
	proxy := ""
	if p := n.ProxyAddr(); p != "" {
		proxy = " proxy=" + p
	}
	fmt.Fprintf(w, "meshnode agent ready node=%s generation=%d gossip=%s api=%s version=%s encrypted=%t tls=%t%s\n",
		n.Name(), n.Generation(), n.Addr(), api, version, cfg.encrypted(), tlsOn, proxy)
}

func yesNo(b bool) string {
	if b {
		return "yes"
	}
	return "no"
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// logHandler returns the slog handler for format ("auto": text on a
// terminal, JSON otherwise).
func logHandler(w io.Writer, format string, level *slog.LevelVar) slog.Handler {
	opts := &slog.HandlerOptions{Level: level}
	if format == "json" || (format == "auto" && !isTerminal(w)) {
		return slog.NewJSONHandler(w, opts)
	}
	return slog.NewTextHandler(w, opts)
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
