package store

import (
	"strings"
	"unicode/utf8"
)

// FeedEvent is an event with its position in its tenant's feed (Store.EventsAfter).
//
// Positions grow in publish order, and a driver makes them safe to resume from: it returns an
// event only once no event with a lower position can still appear. That matters where positions
// are handed out before commit (PostgreSQL's identity column: two transactions take 10 and 11,
// and 11 commits first); a reader that took 11 and moved on would never see 10.
type FeedEvent struct {
	Event
	Position int64
}

// MaxFeedLimit bounds one EventsAfter call.
const MaxFeedLimit = 1000

// MaxFeedBytes bounds the event bytes (payloads) one EventsAfter call returns, whatever its
// limit: a page ends with the event that reaches the bound, so it holds at most MaxFeedBytes
// plus one event. Events are up to 256 KiB by default; without it, a page of 1000 would hold
// 250 MiB, and a listen stream blocked on a client that does not read would keep it.
const MaxFeedBytes = 1 << 20

// MaxPageBytes bounds the event bytes (payloads) of one page of ListEvents in the same way: a
// page ends with the event that reaches it, and its cursor leads on to the rest. A page of 250
// events of 256 KiB would otherwise hold 62 MiB while a client that does not read keeps it.
const MaxPageBytes = MaxFeedBytes

// FeedPageFull reports whether a page EventsAfter returned for limit may have been cut short by
// the limit or by MaxFeedBytes, so that more events may follow at once.
func FeedPageFull(evs []FeedEvent, limit int) bool {
	if len(evs) >= ClampFeed(limit) {
		return true
	}
	n := 0
	for i := range evs {
		n += len(evs[i].Payload)
	}
	return n >= MaxFeedBytes
}

// FeedPatterns splits subscription patterns for a query: match all ("*" or no patterns), exact
// names, and the prefixes of "prefix.*" patterns (with their dot, and their length in
// characters, for SQL's substring functions).
type FeedPatterns struct {
	All      bool
	Exact    []string
	Prefixes []string
	Lengths  []int
}

// SplitPatterns classifies patterns the way MatchAny reads them.
func SplitPatterns(patterns []string) FeedPatterns {
	var f FeedPatterns
	if len(patterns) == 0 {
		f.All = true
	}
	for _, p := range patterns {
		switch {
		case p == "*":
			f.All = true
		case strings.HasSuffix(p, ".*"):
			prefix := p[:len(p)-1]
			f.Prefixes = append(f.Prefixes, prefix)
			f.Lengths = append(f.Lengths, utf8.RuneCountInString(prefix))
		default:
			f.Exact = append(f.Exact, p)
		}
	}
	return f
}

// ClampFeed returns a usable EventsAfter limit.
func ClampFeed(limit int) int {
	switch {
	case limit <= 0:
		return DefaultLimit
	case limit > MaxFeedLimit:
		return MaxFeedLimit
	}
	return limit
}
