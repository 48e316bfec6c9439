package swimsim

import (
	"fmt"
	"time"

	"github.com/meshnode/meshnode/swim"
)

// Spread is how far one metadata change got.
type Spread struct {
	// Took is the time until every other node had the change (the limit if
	// not all did); Reached counts the nodes that had it then.
	Took    time.Duration
	Reached int
	OK      bool
}

// Disseminate changes the metadata of each node of srcs in turn and runs
// until every other node has seen the change (at most limit), then gap
// before the next. Change k sets metaBytes bytes (at least 1): k, then 1,
// 2, ... It
// returns an error only if a core refuses the metadata. OnEvent is chained
// during the run (the recorder keeps recording) and restored after.
func (s *Scenario) Disseminate(srcs []int, metaBytes int, limit, gap time.Duration) ([]Spread, error) {
	prev := s.OnEvent
	defer func() { s.OnEvent = prev }()
	var out []Spread
	for k, src := range srcs {
		name := s.Nodes[src].Name
		seen := map[int]bool{}
		s.OnEvent = func(obs int, ev swim.Event) {
			if prev != nil {
				prev(obs, ev)
			}
			if ev.Kind == swim.EventUpdate && ev.Member.Name == name {
				seen[obs] = true
			}
		}
		meta := make([]byte, metaBytes)
		for i := range meta {
			meta[i] = byte(i)
		}
		meta[0] = byte(k)
		if err := s.Nodes[src].Core.SetMeta(s.Net.Now(), meta); err != nil {
			return out, fmt.Errorf("swimsim: change %d at %s: %w", k, name, err)
		}
		s.Nodes[src].Flush()
		s.Net.Wake(src)
		want := len(s.Nodes) - 1
		d, ok := s.RunUntil(limit, func() bool { return len(seen) == want })
		out = append(out, Spread{Took: d, Reached: len(seen), OK: ok})
		s.Net.RunFor(gap)
	}
	return out, nil
}
