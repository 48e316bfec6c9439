//go:build race

package radix

// raceEnabled: sync.Pool drops items at random under -race.
const raceEnabled = true
