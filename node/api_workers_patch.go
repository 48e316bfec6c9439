package node

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

// workerPatch is the body of PATCH /v1/workers/{id}: the fields a worker
// reports often, each optional; the others (url, model, labels) keep their
// values.
type workerPatch struct {
	Health *string `json:"health"`
	Load   *int    `json:"load"`
}

func (p workerPatch) validate() string {
	if p.Health == nil && p.Load == nil {
		return "want health or load (or both)"
	}
	if p.Health != nil {
		switch *p.Health {
		case "healthy", "unhealthy", "draining":
		default:
			return fmt.Sprintf("health %q: want healthy, unhealthy or draining", *p.Health)
		}
	}
	if p.Load != nil && *p.Load < 0 {
		return fmt.Sprintf("load %d: must not be negative", *p.Load)
	}
	return ""
}

// handlePatchWorker updates a registered worker's health or load without
// resending its URL, model and labels.
func (n *Node) handlePatchWorker(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if !validID(w, "worker id", id) {
		return
	}
	var p workerPatch
	if !n.decode(w, r, &p, false) {
		return
	}
	if msg := p.validate(); msg != "" {
		writeError(w, http.StatusBadRequest, msg)
		return
	}
	wk, err := n.st.patchWorker(id, p, time.Now())
	if err != nil {
		writeErr(w, err)
		return
	}
	writeJSON(w, 200, wk)
}

// patchWorker applies p to worker id's record in one write, so that a
// concurrent patch of the other field is not lost on this replica.
func (s *state) patchWorker(id string, p workerPatch, now time.Time) (Worker, error) {
	var out Worker
	err := s.write(func() error {
		v, ok := s.store.Get(nsWorkers, id)
		if !ok {
			return fmt.Errorf("%w: worker %q", ErrNotFound, id)
		}
		if err := json.Unmarshal([]byte(v), &out); err != nil {
			return fmt.Errorf("node: worker %q: stored record: %w", id, err)
		}
		if p.Health != nil {
			out.Health = *p.Health
		}
		if p.Load != nil {
			out.Load = *p.Load
		}
		b, err := json.Marshal(out)
		if err != nil {
			return err
		}
		return s.store.Put(nsWorkers, id, b, now)
	})
	return out, err
}
