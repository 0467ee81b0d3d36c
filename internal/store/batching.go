package store

import (
	"slices"
	"time"
)

// BatchCandidate is a due delivery a batching claim may take (ClaimRequest.Batch).
type BatchCandidate struct {
	ID  int64
	Due time.Time
}

// FormBatches groups candidates (in rank order) into at most limit batches of up to maxEvents,
// each sorted by id (publish order within the batch). A batch short of maxEvents is formed only
// once its oldest candidate has been due for wait; otherwise waitUntil says when it will have.
// Both drivers' batching claims form their batches with it.
func FormBatches(cands []BatchCandidate, limit, maxEvents int, wait time.Duration, now time.Time) (batches [][]int64, waitUntil time.Time) {
	for len(batches) < limit && len(cands) > 0 {
		if len(cands) < maxEvents {
			oldest := cands[0].Due
			for _, c := range cands {
				if c.Due.Before(oldest) {
					oldest = c.Due
				}
			}
			if until := oldest.Add(wait); until.After(now) {
				return batches, until.UTC()
			}
		}
		n := min(len(cands), maxEvents)
		ids := make([]int64, n)
		for i, c := range cands[:n] {
			ids[i] = c.ID
		}
		slices.Sort(ids)
		batches = append(batches, ids)
		cands = cands[n:]
	}
	return batches, time.Time{}
}

// Earliest is the earlier of two times, a zero one standing for none.
func Earliest(a, b time.Time) time.Time {
	if a.IsZero() || (!b.IsZero() && b.Before(a)) {
		return b
	}
	return a
}
