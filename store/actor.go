package store

import "fmt"

// Actor identifies a writer: a node name and the generation of the process
// that runs it. A restarted process gets a new generation, so its dots never
// collide with those of the process before it.
type Actor struct {
	Name string
	Gen  uint64
}

func (a Actor) String() string { return fmt.Sprintf("%s/%d", a.Name, a.Gen) }

// actorIndex returns the compact index of a, adding it to the table when
// new. Index 0 is always the local actor. Per-actor slices grow with the
// table.
func (s *Store) actorIndex(a Actor) (uint32, error) {
	if i, ok := s.actorIdx[a]; ok {
		return i, nil
	}
	if len(s.actors) >= s.cfg.MaxActors {
		return 0, fmt.Errorf("%w: %d known, adding %s", ErrTooManyActors, len(s.actors), a)
	}
	i := uint32(len(s.actors))
	s.actors = append(s.actors, a)
	s.actorIdx[a] = i
	s.ctx = append(s.ctx, actorCtx{})
	s.dots = append(s.dots, dotIndex{})
	s.floor = append(s.floor, 0)
	return i, nil
}

// Actors returns the actors the store knows, local actor first.
func (s *Store) Actors() []Actor { return append([]Actor(nil), s.actors...) }
