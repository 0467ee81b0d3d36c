//go:build race

package node_test

// raceEnabled: the race detector changes allocation and pooling enough to blur heap measurements.
const raceEnabled = true
