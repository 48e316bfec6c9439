//go:build race

package replica_test

// raceEnabled: the race detector slows the simulation about tenfold, so the
// default seed counts shrink to keep CI's share under a minute.
const raceEnabled = true
