//go:build !race

package input

// raceEnabled is true when the race detector is on: the memory test then
// streams less, as everything runs about ten times slower.
const raceEnabled = false
