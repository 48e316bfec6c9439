package store

import (
	"cmp"
	"errors"
	"fmt"
	"hash/maphash"
	"slices"
	"strings"
	"time"
)

// Limits on what one write may hold. They are part of the contract with
// peers: a decoder rejects anything larger.
const (
	MaxKeyBytes       = 1 << 10 // 1 KiB
	MaxValueBytes     = 1 << 20 // 1 MiB
	MaxNamespaceBytes = 255
	MaxNamespaces     = 1 << 15
	maxActors         = 1<<16 - 1 // entries keep a 16-bit actor index
)

// Config configures a Store. Zero fields take the defaults noted.
type Config struct {
	// Actor is the local writer's identity. Its Gen must be new for every
	// process start (and for every restore from a snapshot), or dots collide.
	Actor Actor
	// MaxBytes bounds keys + values + 64 bytes per key [1 GiB].
	MaxBytes int64
	// MaxSkew is how far ahead of local time a remote stamp may be before
	// its write is held back [1s], the clock error NTP keeps us within.
	MaxSkew time.Duration
	// MaxActors bounds the actor table, which hostile input could
	// otherwise grow [4096]: each restart adds one actor per node.
	MaxActors int
	// MaxHeld bounds the writes held back for clock skew [4096]. Past it,
	// writes are rejected (and counted) and come again with anti-entropy.
	MaxHeld int
	// MaxDeltaEntries bounds the records one delta may carry [1<<20].
	MaxDeltaEntries int
}

// Validate reports every problem with c at once.
func (c Config) Validate() error {
	var errs []error
	if c.Actor.Name == "" {
		errs = append(errs, errors.New("store: Config.Actor.Name is empty"))
	}
	if len(c.Actor.Name) > MaxNamespaceBytes {
		errs = append(errs, fmt.Errorf("store: Config.Actor.Name longer than %d bytes", MaxNamespaceBytes))
	}
	if c.MaxBytes < 0 || c.MaxSkew < 0 || c.MaxActors < 0 || c.MaxHeld < 0 || c.MaxDeltaEntries < 0 {
		errs = append(errs, errors.New("store: negative limit in Config"))
	}
	if c.MaxActors > maxActors {
		errs = append(errs, fmt.Errorf("store: Config.MaxActors above %d", maxActors))
	}
	return errors.Join(errs...)
}

func (c *Config) setDefaults() {
	if c.MaxBytes == 0 {
		c.MaxBytes = 1 << 30
	}
	if c.MaxSkew == 0 {
		c.MaxSkew = time.Second
	}
	if c.MaxActors == 0 {
		c.MaxActors = 4096
	}
	if c.MaxHeld == 0 {
		c.MaxHeld = 4096
	}
	if c.MaxDeltaEntries == 0 {
		c.MaxDeltaEntries = 1 << 20
	}
}

// Stats counts what the store did that an operator may want to see.
type Stats struct {
	Keys       int    // live keys
	Tombstones int    // tombstones not yet collected
	Bytes      int64  // bytes charged against MaxBytes
	Held       uint64 // remote writes held back for clock skew
	Released   uint64 // held writes later applied
	Rejected   uint64 // remote writes refused (held queue full, store full, stale)
	Collected  uint64 // tombstones collected
	Stale      uint64 // incoming writes discarded under the GC floor
	Resyncs    uint64 // times a floor from a peer forced a resynchronisation
	Lagged     uint64 // watch subscriptions that overflowed
	Skipped    uint64 // counter updates for unknown or bad windows
}

// Store is one replica's state. It is not safe for concurrent use: node
// serialises access behind one mutex.
type Store struct {
	cfg       Config
	clock     hlc
	actors    []Actor
	actorIdx  map[Actor]uint32
	ctx       []actorCtx // causal context, by actor index
	dots      []dotIndex // entries by current dot, by actor index
	floor     []uint64   // GC floor, by actor index
	t         table
	nsIdx     map[string]uint16
	nsNames   []string
	bytes     int64
	tombs     int
	seq       uint64 // last local write's seq
	sent      uint64 // local seq handed out by AppendDeltas
	limiters  map[string]*limiter
	subs      []*Subscription
	held      []heldWrite
	heldDots  map[dotKey]struct{}
	heldBytes int
	amap      []uint32
	w         deltaWriter
	members   map[Actor]*member
	gc        gcRound
	stats     Stats
	scratch   Delta
}

// New returns an empty store for cfg.
func New(cfg Config) (*Store, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.setDefaults()
	s := &Store{
		cfg:      cfg,
		actorIdx: map[Actor]uint32{},
		nsIdx:    map[string]uint16{},
		limiters: map[string]*limiter{},
		members:  map[Actor]*member{},
	}
	s.t.seed = maphash.MakeSeed()
	if _, err := s.actorIndex(cfg.Actor); err != nil {
		return nil, err
	}
	return s, nil
}

// Self returns the local actor.
func (s *Store) Self() Actor { return s.actors[0] }

// Stats returns the store's counters.
func (s *Store) Stats() Stats {
	st := s.stats
	st.Tombstones = s.tombs
	st.Keys = len(s.t.entries) - s.tombs
	st.Bytes = s.bytes
	return st
}

func checkKey(key string) error {
	if len(key) == 0 || len(key) > MaxKeyBytes {
		return fmt.Errorf("%w: %d bytes (1..%d allowed)", ErrKeyTooLarge, len(key), MaxKeyBytes)
	}
	return nil
}

func (s *Store) namespace(ns string) (uint16, error) {
	if i, ok := s.nsIdx[ns]; ok {
		return i, nil
	}
	if ns == "" || len(ns) > MaxNamespaceBytes || len(s.nsNames) >= MaxNamespaces {
		return 0, fmt.Errorf("%w: %q", ErrBadNamespace, ns)
	}
	i := uint16(len(s.nsNames))
	s.nsNames = append(s.nsNames, ns)
	s.nsIdx[ns] = i
	return i, nil
}

// Put sets key in namespace ns to value, stamped at now.
func (s *Store) Put(ns, key string, value []byte, now time.Time) error {
	if len(value) > MaxValueBytes {
		return fmt.Errorf("%w: %d bytes (max %d)", ErrValueTooLarge, len(value), MaxValueBytes)
	}
	return s.write(ns, key, value, false, now)
}

// Delete removes key from namespace ns by writing a tombstone, which
// replicates like a write and is collected once causally stable.
func (s *Store) Delete(ns, key string, now time.Time) error {
	return s.write(ns, key, nil, true, now)
}

func (s *Store) write(ns, key string, value []byte, tomb bool, now time.Time) error {
	if err := checkKey(key); err != nil {
		return err
	}
	nsi, err := s.namespace(ns)
	if err != nil {
		return err
	}
	idx, h := s.t.lookup(nsi, key)
	// Deleting a key we do not hold still writes a tombstone: it records
	// the delete against a write that has not reached us yet.
	grow := int64(len(key)+len(value)) + entryOverhead
	if idx >= 0 {
		grow -= s.t.entries[idx].size()
	}
	// A tombstone replacing an entry never grows the store, so deletes
	// work when it is full; a new tombstone is charged like a write.
	if (!tomb || idx < 0) && grow > 0 && s.bytes+grow > s.cfg.MaxBytes {
		return fmt.Errorf("%w: %d of %d bytes used", ErrStoreFull, s.bytes, s.cfg.MaxBytes)
	}
	if idx < 0 && s.t.full() {
		return fmt.Errorf("%w: %d keys", ErrStoreFull, len(s.t.entries))
	}
	s.seq++
	seq := s.seq
	s.ctx[0].add(seq)
	e := newEntry(concatKV(key, value), len(key), tomb, s.clock.tick(now), seq, 0, nsi)
	s.install(idx, h, e)
	return nil
}

// install puts e at idx (or adds it, with key hash h, when idx < 0),
// keeping the dot index, byte count and tombstone count right, and tells
// watchers.
func (s *Store) install(idx int, h uint64, e entry) {
	if idx < 0 {
		idx = s.t.insert(e, h)
	} else {
		old := &s.t.entries[idx]
		s.dots[old.actor].remove(old.seq)
		s.bytes -= old.size()
		if old.tomb() {
			s.tombs--
		}
		*old = e
	}
	s.dots[e.actor].add(e.seq, uint32(idx))
	s.bytes += e.size()
	if e.tomb() {
		s.tombs++
	}
	if len(s.subs) > 0 {
		s.notify(&s.t.entries[idx])
	}
}

// wins reports whether write a beats write b: the greater (stamp, actor).
func (s *Store) wins(aStamp uint64, aActor uint32, b *entry) bool {
	if aStamp != b.stamp {
		return aStamp > b.stamp
	}
	x, y := s.actors[aActor], s.actors[b.actor]
	if c := strings.Compare(x.Name, y.Name); c != 0 {
		return c > 0
	}
	return x.Gen > y.Gen
}

// Get returns the value of key in namespace ns. The string shares the
// store's memory; it is immutable, so no copy is needed.
func (s *Store) Get(ns, key string) (string, bool) {
	nsi, ok := s.nsIdx[ns]
	if !ok {
		return "", false
	}
	idx, _ := s.t.lookup(nsi, key)
	if idx < 0 {
		return "", false
	}
	e := &s.t.entries[idx]
	if e.tomb() {
		return "", false
	}
	return e.value(), true
}

// AppendValue appends the value of key in namespace ns to dst.
func (s *Store) AppendValue(dst []byte, ns, key string) ([]byte, bool) {
	v, ok := s.Get(ns, key)
	if !ok {
		return dst, false
	}
	return append(dst, v...), true
}

// KV is one key and its current value, as List returns them.
type KV struct {
	Key   string
	Value string
	Stamp Stamp
}

// List returns the live keys of namespace ns that start with prefix, in key
// order. It scans the whole store: namespaces meant for listing (workers,
// config) are small.
func (s *Store) List(ns, prefix string) []KV {
	nsi, ok := s.nsIdx[ns]
	if !ok {
		return nil
	}
	var out []KV
	for i := range s.t.entries {
		e := &s.t.entries[i]
		if e.ns != nsi || e.tomb() || !strings.HasPrefix(e.key(), prefix) {
			continue
		}
		out = append(out, KV{Key: e.key(), Value: e.value(), Stamp: Stamp(e.stamp)})
	}
	slices.SortFunc(out, func(a, b KV) int { return cmp.Compare(a.Key, b.Key) })
	return out
}

// Namespaces returns the namespace names the store has seen, in order.
func (s *Store) Namespaces() []string {
	out := slices.Clone(s.nsNames)
	slices.Sort(out)
	return out
}
