package replay

import (
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/meshnode/meshnode/internal/simnet"
	"github.com/meshnode/meshnode/radix"
)

// Config describes one replay: the fleet, the engines, the network that
// replicates the index and the routing policy. The zero value of a field
// takes its default (Defaults).
type Config struct {
	// Gateways is the number of gateway replicas (G) [1]. Requests arrive
	// at them in turn (request i at gateway i mod G).
	Gateways int
	// Workers is the number of engines (W) [8].
	Workers int
	// BlockTokens is the trace's block size in tokens [512]; the engines
	// cache blocks of this size.
	BlockTokens int
	// PageTokens is the index's page size in tokens; it must divide
	// BlockTokens [BlockTokens].
	PageTokens int
	// CacheTokens is each engine's KV cache [300,000 tokens: an 8B model in
	// bf16 on an 80 GB GPU keeps about that much after the weights].
	CacheTokens int
	// PrefillTokensPerSecond is each engine's prefill rate of uncached
	// input tokens [10,000].
	PrefillTokensPerSecond float64
	// DecodeTokensPerSecond is the decode rate of one sequence [50].
	DecodeTokensPerSecond float64
	// MaxBatch is the most sequences an engine decodes at once [64].
	MaxBatch int
	// Speedup divides the trace's arrival times [1]: 2 replays it twice as
	// fast, on the same engines, which doubles their load.
	Speedup float64
	// Seed makes the run deterministic: the same seed, trace and config
	// give the same figures (routing decisions per second aside).
	Seed uint64
	// Policy is the cache-aware policy of the index strategies
	// [radix.CostPolicy(PageTokens): the cost rule with weight 3, which
	// the traces support]. Under the cost rule the candidates' loads are
	// the prefill tokens queued on each engine as the gateways count them
	// (prompt tokens routed and not yet prefilled, less what each route
	// expected cached); under the threshold rules, requests in flight.
	Policy radix.Policy
	// Net is the network, and the gateways' mesh settings.
	Net Network
	// LoadInterval, when positive, makes the loads the strategies see a
	// snapshot taken at most every LoadInterval (at the first arrival
	// after each boundary), as loads replicated periodically are; 0: every
	// strategy sees the engines' loads exactly, at once [0].
	LoadInterval time.Duration
	// LoadOwnRoutes, with LoadInterval, adds to the snapshot each
	// gateway's own routes since it was taken, as a proxy that counts what
	// it sends would [false]. With a mesh (the meshnode strategies, more
	// than one gateway) the loads then travel through it instead of being
	// a snapshot: each gateway publishes its own counts every LoadInterval
	// and reads the others' from its store (loads.go).
	LoadOwnRoutes bool
	// PendingTimeout is how long a routed prompt's pages count as pending
	// on its engine in the events strategy [5 s, node.DefaultPendingTimeout;
	// the trace's p99 TTFT under meshnode is about 6 s].
	PendingTimeout time.Duration
}

// Network is the network between the gateways, and between the engines
// and the gateways. How the gateways replicate is not a parameter: it is
// the product's code with node's configuration (see gateway).
type Network struct {
	// Profile is the gateways' swim profile, as meshnode agent --profile
	// takes it ["lan"].
	Profile string
	// EagerMembers is the gateways' eager_members (node.Config): up to
	// this fleet size deltas go straight to every gateway, by gossip
	// above [node.DefaultEagerMembers, 16].
	EagerMembers int
	// Link is the one-way path between two gateways [250 µs + up to 250 µs
	// of jitter: one LAN hop].
	Link simnet.Link
	// EventLink is the path from an engine to the gateway that subscribes
	// to its KV events [like Link].
	EventLink simnet.Link
}

// Defaults returns c with every zero field set to its default.
func (c Config) Defaults() Config {
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	deff := func(p *float64, v float64) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Gateways, 1)
	def(&c.Workers, 8)
	def(&c.BlockTokens, 512)
	def(&c.PageTokens, c.BlockTokens)
	def(&c.CacheTokens, 300_000)
	deff(&c.PrefillTokensPerSecond, 10_000)
	deff(&c.DecodeTokensPerSecond, 50)
	def(&c.MaxBatch, 64)
	deff(&c.Speedup, 1)
	if c.Policy == (radix.Policy{}) {
		c.Policy = radix.CostPolicy(c.PageTokens)
	}
	if c.Policy.CostWeight > 0 && c.Policy.PageTokens == 0 {
		c.Policy.PageTokens = c.PageTokens
	}
	if c.PendingTimeout == 0 {
		c.PendingTimeout = 5 * time.Second
	}
	n := &c.Net
	if n.Link == (simnet.Link{}) {
		n.Link = simnet.Link{Delay: 250 * time.Microsecond, Jitter: 250 * time.Microsecond}
	}
	if n.EventLink == (simnet.Link{}) {
		n.EventLink = n.Link
	}
	if n.Profile == "" {
		n.Profile = "lan"
	}
	def(&n.EagerMembers, 16)
	return c
}

// Validate reports every problem of c (after Defaults) at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf("replay: "+format, a...)) }
	if c.Gateways < 1 || c.Gateways > 4096 {
		bad("gateways %d out of range [1, 4096]", c.Gateways)
	}
	if c.Workers < 1 || c.Workers > 4096 {
		bad("workers %d out of range [1, 4096]", c.Workers)
	}
	if c.BlockTokens < 1 || c.BlockTokens > 1<<16 {
		bad("block tokens %d out of range [1, 65536]", c.BlockTokens)
	}
	if c.PageTokens < 1 || c.BlockTokens%max(c.PageTokens, 1) != 0 {
		bad("page tokens %d must divide block tokens %d", c.PageTokens, c.BlockTokens)
	}
	if c.CacheTokens < c.BlockTokens {
		bad("cache tokens %d hold no block of %d", c.CacheTokens, c.BlockTokens)
	}
	if !(c.PrefillTokensPerSecond > 0) || !(c.DecodeTokensPerSecond > 0) {
		bad("prefill and decode rates must be positive (%g, %g)", c.PrefillTokensPerSecond, c.DecodeTokensPerSecond)
	}
	if c.MaxBatch < 1 {
		bad("max batch %d must be at least 1", c.MaxBatch)
	}
	if !(c.Speedup > 0) || c.Speedup > 1e6 {
		bad("speedup %g out of range (0, 1e6]", c.Speedup)
	}
	if c.Policy.CostWeight < 0 || c.Policy.CacheThreshold < 0 || c.Policy.BalanceRelThreshold < 0 {
		bad("policy: negative weight or threshold")
	}
	if c.LoadInterval < 0 {
		bad("load interval %v is negative", c.LoadInterval)
	}
	if c.PendingTimeout < 0 {
		bad("pending timeout %v is negative", c.PendingTimeout)
	}
	if c.Net.EagerMembers < 1 {
		bad("network: eager members %d must be positive", c.Net.EagerMembers)
	}
	if !slices.Contains([]string{"lan", "wan", "local"}, c.Net.Profile) {
		bad("network: profile %q is not lan, wan or local", c.Net.Profile)
	}
	return errors.Join(errs...)
}
