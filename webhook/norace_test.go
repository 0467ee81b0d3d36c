//go:build !race

package webhook_test

import (
	"bytes"
	"testing"
)

// TestSignAllocations pins the promise that Sign, on the delivery hot path,
// allocates only the returned string. It is left out under the race detector,
// which makes sync.Pool drop items at random, and is not parallel because
// AllocsPerRun counts every allocation in the process.
func TestSignAllocations(t *testing.T) {
	tests := []struct {
		name string
		keys []string
	}{
		{name: "one secret", keys: []string{specSecret}},
		{name: "two secrets during rotation", keys: []string{otherSecret, specSecret}},
	}
	body := bytes.Repeat([]byte("x"), 1024)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := mustSigner(t, tt.keys...)
			allocs := testing.AllocsPerRun(200, func() {
				s.Sign(specID, specTime(), body)
			})
			if allocs > 1 {
				t.Errorf("Sign allocates %.1f times per call, want at most 1", allocs)
			}
		})
	}
}
