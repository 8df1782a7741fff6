//go:build race

package h1server

// raceEnabled: sync.Pool drops items at random under the race detector,
// and the detector allocates; allocation counts are not checked then.
const raceEnabled = true
