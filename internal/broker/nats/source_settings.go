package natsdest

import (
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// Defaults and limits of a source's settings.
const (
	defaultAckWait       = 30 * time.Second
	minAckWait           = time.Second
	maxAckWait           = 12 * time.Hour
	defaultMaxAckPending = 1000
	maxMaxAckPending     = 100_000
)

// SourceSettings are a NATS JetStream source's settings: the connection settings of an endpoint
// (same names) and what the durable consumer needs.
type SourceSettings struct {
	Conn
	// Stream is the stream to read. It must exist: Herald creates its durable consumer on it,
	// never the stream.
	Stream string `json:"stream"`
	// FilterSubject, if set, restricts the consumer to the stream's messages on these subjects
	// (wildcards allowed).
	FilterSubject string `json:"filter_subject,omitempty"`
	// AckWait is how long a message delivered to a node and not acknowledged stays with it
	// before JetStream delivers it again (to any node): a Go duration, "30s" by default.
	AckWait string `json:"ack_wait"`
	// MaxAckPending bounds the messages delivered and not yet acknowledged, over all the nodes
	// sharing the consumer: JetStream delivers no more until some are acknowledged.
	MaxAckPending int `json:"max_ack_pending"`

	ackWait time.Duration
}

// sourceDecoding words the decoding errors of a source's settings.
var sourceDecoding = destination.Decoding{
	Required: "url and stream",
	Known:    "url, username, password, token, tls, stream, filter_subject, ack_wait, max_ack_pending",
	Hint: map[string]string{
		"ack_wait":        `a duration in a string, such as "30s" or "2m"`,
		"max_ack_pending": "a whole number",
	},
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
	if s.Stream == "" {
		add("stream", "is required: the JetStream stream to read (it must exist: Herald creates its durable consumer on it, never the stream)", nil)
	} else if msg := checkStreamName(s.Stream); msg != "" {
		add("stream", msg, s.Stream)
	}
	if s.FilterSubject != "" {
		if msg := checkFilterSubject(s.FilterSubject); msg != "" {
			add("filter_subject", msg, s.FilterSubject)
		}
	}
	s.ackWait = errs.Duration("ack_wait", &s.AckWait, defaultAckWait, minAckWait, maxAckWait,
		"how long a message delivered to Herald and not acknowledged waits before JetStream delivers it again")
	switch {
	case s.MaxAckPending == 0:
		s.MaxAckPending = defaultMaxAckPending
	case s.MaxAckPending < 0 || s.MaxAckPending > maxMaxAckPending:
		add("max_ack_pending", fmt.Sprintf("must be from 1 to %d (the messages delivered and not yet acknowledged, over all nodes)", maxMaxAckPending), s.MaxAckPending)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}

// checkFilterSubject accepts a subject filter: dot-separated non-empty tokens, "*" only as a
// whole token, ">" only as the whole last token, no whitespace.
func checkFilterSubject(s string) string {
	if msg := subjectChars(s); msg != "" {
		return msg
	}
	toks := strings.Split(s, ".")
	for i, tok := range toks {
		switch {
		case tok == "":
			return "has an empty token: tokens are separated by single dots, with none at the start or end"
		case tok == ">" && i != len(toks)-1:
			return "may use > only as the last token (orders.>)"
		case tok != "*" && tok != ">" && strings.ContainsAny(tok, "*>"):
			return "may use * and > only as whole tokens (orders.*.created, orders.>)"
		}
	}
	return ""
}
