package server

import (
	"context"
	"errors"

	"github.com/meshnode/meshnode/engine"
)

// kvState is the KV-event publisher (until kvevents lands: none).
type kvState struct {
	pub interface {
		Addr() string
		ReplayAddr() string
		Close() error
	}
}

func startKV(ctx context.Context, cfg Config) (*kvState, error) {
	return nil, errors.New("server: KV events are not available yet")
}

func (s *Server) publishLoop(events <-chan []engine.Event) {
	for range events {
	}
}
