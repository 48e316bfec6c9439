package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/engine/server"
)

// modelsFlag is a repeatable --model; each value may also list names
// separated by commas.
type modelsFlag []string

func (m *modelsFlag) String() string { return strings.Join(*m, ",") }

func (m *modelsFlag) Set(v string) error {
	for name := range strings.SplitSeq(v, ",") {
		if name = strings.TrimSpace(name); name == "" {
			return fmt.Errorf("empty model name in %q", v)
		}
		*m = append(*m, name)
	}
	return nil
}

// engineConfig parses the flags of `meshnode engine`.
func engineConfig(args []string, stderr io.Writer) (server.Config, error) {
	fs := newFlagSet("engine", stderr)
	d := engine.DefaultConfig()
	var cfg server.Config
	var models modelsFlag
	fs.StringVar(&cfg.Addr, "addr", "127.0.0.1:8000", "HTTP listen address, host:port (port 0 picks one)")
	fs.Var(&models, "model", "a model name served (repeatable, or comma-separated) [meshnode-emulated]")
	fs.IntVar(&cfg.Engine.Blocks, "blocks", d.Blocks, "KV cache size in blocks")
	fs.IntVar(&cfg.Engine.BlockTokens, "block-size", d.BlockTokens, "tokens per KV block")
	fs.Float64Var(&cfg.Engine.PrefillTPS, "prefill-tps", d.PrefillTPS, "prefill rate: uncached prompt tokens per second")
	fs.Float64Var(&cfg.Engine.DecodeTPS, "decode-tps", d.DecodeTPS, "decode rate: output tokens per second per sequence")
	fs.IntVar(&cfg.Engine.MaxBatch, "max-batch", d.MaxBatch, "most sequences in prefill or decode at once")
	fs.IntVar(&cfg.Engine.MaxQueue, "max-queue", d.MaxQueue, "most requests waiting; more are answered 429")
	fs.IntVar(&cfg.MaxTokens, "max-tokens", 4096, "largest max_tokens a request may ask for")
	fs.IntVar(&cfg.MaxPromptTokens, "max-prompt-tokens", 131072, "longest prompt, in tokens")
	fs.Int64Var(&cfg.MaxBodyBytes, "max-body-bytes", 4<<20, "largest request body")
	fs.StringVar(&cfg.KVEvents, "kv-events", "", "ZMQ PUB endpoint for KV events in vLLM's format, e.g. tcp://127.0.0.1:5557 (empty: none)")
	fs.StringVar(&cfg.KVReplay, "kv-replay", "", "ZMQ ROUTER endpoint replaying kept event batches, e.g. tcp://127.0.0.1:5558 (empty: none)")
	fs.StringVar(&cfg.KVTopic, "kv-topic", "", "topic of the KV event messages")
	fs.IntVar(&cfg.KVKeep, "kv-keep", 10000, "event batches kept for replay")
	fs.Uint64Var(&cfg.Engine.HashSeed, "hash-seed", 0, "parent value of every prompt's first block hash")
	fs.Uint64Var(&cfg.Seed, "seed", 0, "varies the generated filler text")
	pos, err := parseInterleaved(fs, args)
	if err != nil {
		return cfg, err
	}
	if len(pos) > 0 {
		return cfg, badUsage("takes flags only")
	}
	cfg.Models = models
	// Zero means "the default" to the server: refuse it here, where the
	// user typed it.
	for _, f := range []struct {
		name string
		v    float64
	}{
		{"blocks", float64(cfg.Engine.Blocks)}, {"block-size", float64(cfg.Engine.BlockTokens)},
		{"prefill-tps", cfg.Engine.PrefillTPS}, {"decode-tps", cfg.Engine.DecodeTPS},
		{"max-batch", float64(cfg.Engine.MaxBatch)}, {"max-queue", float64(cfg.Engine.MaxQueue)},
		{"max-tokens", float64(cfg.MaxTokens)}, {"max-prompt-tokens", float64(cfg.MaxPromptTokens)},
		{"max-body-bytes", float64(cfg.MaxBodyBytes)}, {"kv-keep", float64(cfg.KVKeep)},
	} {
		if !(f.v > 0) {
			return cfg, badUsage("--%s %v: want a positive number", f.name, f.v)
		}
	}
	if err := cfg.Validate(); err != nil {
		return cfg, badUsage("%s", oneLine(err))
	}
	return cfg, nil
}

// runEngine runs an emulated inference engine until SIGINT or SIGTERM.
func runEngine(args []string, stdout, stderr io.Writer, sig <-chan os.Signal) int {
	cfg, err := engineConfig(args, stderr)
	if err != nil {
		return usageError(stderr, "engine", err)
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, nil))
	s, err := server.New(cfg)
	if err != nil {
		fmt.Fprintf(stderr, "meshnode engine: %v\n", oneLine(err))
		return 1
	}
	if err := s.Start(context.Background()); err != nil {
		fmt.Fprintf(stderr, "meshnode engine: %v\n", oneLine(err))
		return 1
	}
	defer s.Close()
	ec := cfg.Engine.WithDefaults()
	line := fmt.Sprintf("meshnode engine: serving http://%s (%d blocks of %d tokens, %g prefill tokens/s, %g decode tokens/s)",
		s.Addr(), ec.Blocks, ec.BlockTokens, ec.PrefillTPS, ec.DecodeTPS)
	if a := s.KVEventsAddr(); a != "" {
		line += ", kv events " + a
	}
	if a := s.KVReplayAddr(); a != "" {
		line += ", replay " + a
	}
	fmt.Fprintln(stdout, line)
	<-sig
	return 0
}
