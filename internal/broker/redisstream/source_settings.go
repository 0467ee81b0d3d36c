package redisstream

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// Defaults and limits of a source's settings.
const (
	// StartNew reads the entries added after the source was created (after the consumer group is
	// created when the creation time is unknown); StartAll reads the stream from its first entry.
	StartNew = "new"
	StartAll = "all"

	defaultClaimIdle = 60 * time.Second
	minClaimIdle     = 100 * time.Millisecond
	maxClaimIdle     = 7 * 24 * time.Hour
	maxFieldBytes    = 256
)

// SourceSettings are a Redis Streams source's settings: the connection settings of an endpoint
// (same names) and what the consumer group needs.
type SourceSettings struct {
	Conn
	// Stream is the key of the stream to read. It must exist: Herald creates its consumer group
	// on it, never the stream.
	Stream string `json:"stream"`
	// Start is where a consumer group Herald creates begins: "new" (entries added from now on,
	// XGROUP CREATE … $) or "all" (the whole stream, XGROUP CREATE … 0). An existing group
	// keeps its position.
	Start string `json:"start"`
	// ClaimIdle is how long an entry stays pending (delivered, not acknowledged) before another
	// member of the group may take it over: a Go duration, "60s" by default.
	ClaimIdle string `json:"claim_idle"`
	// BodyField names the entry field holding the message body ("body", as the redis
	// destination writes it).
	BodyField string `json:"body_field"`

	claimIdle time.Duration
}

// sourceDecoding words the decoding errors of a source's settings.
var sourceDecoding = destination.Decoding{
	Required: "address and stream",
	Known:    "address, db, username, password, tls, stream, start, claim_idle, body_field",
	Hint:     map[string]string{"claim_idle": `a duration in a string, such as "60s" or "500ms"`},
}

// checkSource validates every field of a source's settings and fills the defaults. No I/O.
func checkSource(raw json.RawMessage) (*SourceSettings, []*destination.FieldError) {
	var s SourceSettings
	if fe := destination.DecodeSettings(raw, &s, sourceDecoding); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs destination.FieldErrors
	add := errs.Add
	s.Conn.check(add)
	checkStream(s.Stream, "to read (it must exist: Herald creates its consumer group, never the stream)", add)
	switch s.Start {
	case "":
		s.Start = StartNew
	case StartNew, StartAll:
	default:
		add("start", `must be "new" (entries added from when Herald creates the consumer group) or "all" (the whole stream)`, s.Start)
	}
	s.claimIdle = errs.Duration("claim_idle", &s.ClaimIdle, defaultClaimIdle, minClaimIdle, maxClaimIdle,
		"how long an unacknowledged entry waits before another member takes it over")
	switch {
	case s.BodyField == "":
		s.BodyField = FieldBody
	case len(s.BodyField) > maxFieldBytes:
		add("body_field", fmt.Sprintf("must be at most %d bytes", maxFieldBytes), nil)
	case !printable(s.BodyField, true):
		add("body_field", "must be printable text (no control characters)", s.BodyField)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}
