package kvwork

import (
	"errors"
	"math/rand/v2"

	"github.com/meshnode/meshnode/engine"
	"github.com/meshnode/meshnode/kvevents"
)

// Config shapes the workload. A zero field takes its default.
type Config struct {
	// BlockTokens is the engine's block size in tokens [16].
	BlockTokens int
	// CacheBlocks is the engine's cache capacity in blocks [8192]: small
	// enough that the cache churns within seconds at thousands of blocks
	// a second, so removals are part of the stream.
	CacheBlocks int
	// SystemPrompts is how many distinct shared system prompts there are
	// [32]; prompt i is chosen with weight 1/(i+1).
	SystemPrompts int
	// MinSystemTokens and MaxSystemTokens bound a system prompt [256, 1536].
	MinSystemTokens, MaxSystemTokens int
	// MinPromptTokens and MaxPromptTokens bound a whole prompt [512, 4096].
	MinPromptTokens, MaxPromptTokens int
	// FollowUpPercent is the share of requests that continue a recent
	// conversation [30].
	FollowUpPercent int
	// Vocab is the number of distinct token ids [50000].
	Vocab int
}

func (c Config) withDefaults() Config {
	def := func(v *int, d int) {
		if *v == 0 {
			*v = d
		}
	}
	def(&c.BlockTokens, 16)
	def(&c.CacheBlocks, 8192)
	def(&c.SystemPrompts, 32)
	def(&c.MinSystemTokens, 256)
	def(&c.MaxSystemTokens, 1536)
	def(&c.MinPromptTokens, 512)
	def(&c.MaxPromptTokens, 4096)
	def(&c.FollowUpPercent, 30)
	def(&c.Vocab, 50000)
	return c
}

// minTurnTokens is the shortest user turn after a system prompt.
const minTurnTokens = 64

// conversations is how many recent conversations a follow-up picks from.
const conversations = 64

// Stored is one request whose blocks a BlockStored event of the batch
// stored.
type Stored struct {
	// Tokens is the request's prompt up to the end of its last stored
	// block: what a route for it matches once the event is replicated.
	// It is the request's own slice, never reused.
	Tokens []uint32
	// LastHash is the engine's hash of the last stored block; while the
	// engine's cache contains it (Engine.Contains), the whole prefix is
	// cached.
	LastHash uint64
	// Blocks is how many blocks the event stored.
	Blocks int
}

// Engine is one generated engine. It is not safe for concurrent use.
type Engine struct {
	cfg    Config
	rng    *rand.Rand
	cache  *engine.Cache
	system [][]uint32
	weight []float64 // cumulative weights of the system prompts
	convs  [][]uint32
	credit float64
	evs    []engine.Event
}

// NewEngine returns an engine generating cfg's workload from seed.
func NewEngine(cfg Config, seed uint64) (*Engine, error) {
	cfg = cfg.withDefaults()
	if cfg.MinSystemTokens > cfg.MaxSystemTokens || cfg.MinPromptTokens > cfg.MaxPromptTokens ||
		cfg.MaxSystemTokens+minTurnTokens > cfg.MaxPromptTokens {
		return nil, errors.New("kvwork: want MinSystemTokens <= MaxSystemTokens, MinPromptTokens <= MaxPromptTokens and room for a turn after the longest system prompt")
	}
	c, err := engine.NewCache(cfg.CacheBlocks, cfg.BlockTokens, 0)
	if err != nil {
		return nil, err
	}
	e := &Engine{cfg: cfg, rng: rand.New(rand.NewPCG(seed, 0x6b76776f726b)), cache: c}
	// The system prompts are the same for every engine of a run (a seed
	// of their own): engines of one model see the same prompts.
	sys := rand.New(rand.NewPCG(1, 2))
	sum := 0.0
	for i := range cfg.SystemPrompts {
		n := cfg.MinSystemTokens + sys.IntN(cfg.MaxSystemTokens-cfg.MinSystemTokens+1)
		e.system = append(e.system, randomTokens(sys, nil, n, cfg.Vocab))
		sum += 1 / float64(i+1)
		e.weight = append(e.weight, sum)
	}
	return e, nil
}

func randomTokens(r *rand.Rand, dst []uint32, n, vocab int) []uint32 {
	for range n {
		dst = append(dst, uint32(r.IntN(vocab)))
	}
	return dst
}

// Contains reports whether the engine's cache holds block hash h.
func (e *Engine) Contains(h uint64) bool { return e.cache.Contains(h) }

// BlockTokens returns the engine's block size.
func (e *Engine) BlockTokens() int { return e.cfg.BlockTokens }

// prompt generates the next request's prompt.
func (e *Engine) prompt() []uint32 {
	cfg := e.cfg
	if len(e.convs) > 0 && e.rng.IntN(100) < cfg.FollowUpPercent {
		i := e.rng.IntN(len(e.convs))
		prev := e.convs[i]
		turn := minTurnTokens + e.rng.IntN(512)
		if len(prev)+turn <= cfg.MaxPromptTokens {
			p := randomTokens(e.rng, append(make([]uint32, 0, len(prev)+turn), prev...), turn, cfg.Vocab)
			e.convs[i] = p
			return p
		}
	}
	x := e.rng.Float64() * e.weight[len(e.weight)-1]
	s := 0
	for s < len(e.weight)-1 && e.weight[s] < x {
		s++
	}
	sys := e.system[s]
	n := cfg.MinPromptTokens + e.rng.IntN(cfg.MaxPromptTokens-cfg.MinPromptTokens+1)
	n = max(n, len(sys)+minTurnTokens)
	p := randomTokens(e.rng, append(make([]uint32, 0, n), sys...), n-len(sys), cfg.Vocab)
	if len(e.convs) < conversations {
		e.convs = append(e.convs, p)
	} else {
		e.convs[e.rng.IntN(conversations)] = p
	}
	return p
}

// Step generates one engine step: blocks more blocks of credit (a rate
// times the step's duration; fractions carry over) buy requests until the
// credit is spent. Their events are appended to b.Events in vLLM's form
// (GPU medium) and the requests that stored blocks to dst, which is
// returned. A step may store nothing (b.Events unchanged) when the credit
// does not reach a request.
func (e *Engine) Step(b *kvevents.Batch, blocks float64, dst []Stored) []Stored {
	e.credit += blocks
	bt := e.cfg.BlockTokens
	for e.credit > 0 {
		p := e.prompt()
		full := len(p) / bt
		hashes := e.cache.AppendHashes(make([]uint64, 0, full), p)
		e.evs = e.cache.Store(e.evs[:0], hashes, p)
		stored := 0
		for _, ev := range e.evs {
			k := kvevents.Event{BlockHashes: ev.BlockHashes, Medium: kvevents.MediumGPU}
			switch ev.Kind {
			case engine.KindBlockStored:
				k.Kind = kvevents.KindBlockStored
				k.ParentHash, k.HasParent = ev.ParentHash, ev.HasParent
				k.TokenIDs, k.BlockSize = ev.TokenIDs, ev.BlockSize
				stored = len(ev.BlockHashes)
			case engine.KindBlockRemoved:
				k.Kind = kvevents.KindBlockRemoved
			default:
				continue
			}
			b.Events = append(b.Events, k)
		}
		// A prompt all cached still costs its prefill's scheduling slot:
		// count a block so that the loop ends.
		e.credit -= float64(max(stored, 1))
		if stored > 0 {
			n := min(full, e.cfg.CacheBlocks)
			dst = append(dst, Stored{Tokens: p[:n*bt], LastHash: hashes[n-1], Blocks: stored})
		}
	}
	return dst
}
