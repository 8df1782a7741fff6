//go:build race

package telemetry_test

// raceEnabled: sync.Pool drops items at random under the race detector,
// so allocation counts are not deterministic there.
const raceEnabled = true
