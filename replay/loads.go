package replay

import (
	"encoding/binary"
	"slices"
	"time"
)

// Loads through the mesh. With a mesh and Config.LoadOwnRoutes, each
// gateway does what a node's proxy does (node/proxy_load.go): it counts
// the requests it has in flight on each engine (until their last token)
// and the prefill tokens it has queued there (until their first), and
// every Config.LoadInterval, when they changed, writes them into its store
// under the namespace "load" and its name; its replication core carries
// the write to the other gateways like any other. A gateway routes with
// its own counts, exact, plus the others' as its store holds them: as old
// as the publishing interval plus the mesh's delay.

// loadNS is the store namespace of the gateways' counts, as node's.
const loadNS = "load"

// meshLoad is the per-gateway state of loads through the mesh.
type meshLoad struct {
	queued, inFlight []int // this gateway's own counts, per engine
	changed          bool
	next             time.Duration // next publication
	buf              []byte
}

// initMeshLoads turns loads through the mesh on, when the fleet has a
// mesh and the configuration asks for a proxy's loads.
func (s *sim) initMeshLoads() {
	if s.mesh == nil || s.cfg.LoadInterval <= 0 || !s.cfg.LoadOwnRoutes {
		return
	}
	s.mloads = make([]meshLoad, len(s.gws))
	for g := range s.mloads {
		s.mloads[g] = meshLoad{queued: make([]int, s.cfg.Workers), inFlight: make([]int, s.cfg.Workers),
			next: s.cfg.LoadInterval}
	}
	s.reqGw = make([]int32, len(s.reqs))
	s.own, s.ownTokens = nil, nil // its own counts are exact here
	s.seenQueued = make([]int, s.cfg.Workers)
	s.seenInFlight = make([]int, s.cfg.Workers)
}

// meshLoadsAt fills seenQueued and seenInFlight with what gateway g sees:
// its own counts and the others' as its store holds them.
func (s *sim) meshLoadsAt(g int) {
	own := &s.mloads[g]
	copy(s.seenQueued, own.queued)
	copy(s.seenInFlight, own.inFlight)
	self := s.gws[g].member.Name
	for _, kv := range s.gws[g].member.Eng.Store().List(loadNS, "") {
		if kv.Key == self {
			continue
		}
		b := []byte(kv.Value)
		for w := range s.cfg.Workers {
			q, n := binary.Uvarint(b)
			if n <= 0 {
				break
			}
			f, m := binary.Uvarint(b[n:])
			if m <= 0 {
				break
			}
			b = b[n+m:]
			s.seenQueued[w] += int(q)
			s.seenInFlight[w] += int(f)
		}
	}
}

// routedLoad counts request i, routed by gateway g to engine w.
func (s *sim) routedLoad(g, i, w int) {
	s.reqGw[i] = int32(g)
	ml := &s.mloads[g]
	ml.queued[w] += s.est[i]
	ml.inFlight[w]++
	ml.changed = true
}

// prefilledLoad releases request i's queued tokens on engine w, and its
// request count at done.
func (s *sim) prefilledLoad(i, w int, done time.Duration) {
	g := int(s.reqGw[i])
	ml := &s.mloads[g]
	ml.queued[w] -= s.est[i]
	ml.changed = true
	s.net.At(s.vtime(max(done, s.since(s.net.Now()))), func() {
		ml.inFlight[w]--
		ml.changed = true
	})
}

// publishLoad writes gateway g's counts into its store when they changed
// since the last publication, and returns when it is next due.
func (s *sim) publishLoad(g int, now time.Duration) time.Duration {
	ml := &s.mloads[g]
	if ml.changed {
		ml.changed = false
		ml.buf = ml.buf[:0]
		for w := range s.cfg.Workers {
			ml.buf = binary.AppendUvarint(ml.buf, uint64(max(ml.queued[w], 0)))
			ml.buf = binary.AppendUvarint(ml.buf, uint64(max(ml.inFlight[w], 0)))
		}
		m := s.gws[g].member
		if err := m.Eng.Store().Put(loadNS, m.Name, slices.Clone(ml.buf), s.net.Now()); err != nil {
			panic("replay: publish a gateway's load: " + err.Error()) // a small value
		}
		m.Disseminate()
	}
	return now + s.cfg.LoadInterval
}
