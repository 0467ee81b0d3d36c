//go:build !unix

package bench

import "time"

// selfCPU is not measured here (no getrusage): the CPU column reads 0.
func selfCPU() time.Duration { return 0 }
