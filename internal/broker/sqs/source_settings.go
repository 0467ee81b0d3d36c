package sqs

import (
	"encoding/json"
	"fmt"

	"github.com/heraldhq/herald/internal/destination"
)

// Visibility timeout of a source: SQS's limits (0 is refused: every message would be visible to
// the other consumers again at once).
const (
	defaultVisibility = 30
	maxVisibility     = 43200
)

// SourceSettings are an SQS source's settings: the connection settings of an endpoint (same
// names, same checks) and the visibility timeout of the messages it receives.
type SourceSettings struct {
	Conn
	// VisibilityTimeout is how long, in seconds, a received message stays hidden from the other
	// consumers before SQS delivers it again unless Herald deleted it: 30 by default, 1 to 43200.
	VisibilityTimeout int `json:"visibility_timeout"`
}

const sourceFields = "queue_url, region, endpoint, access_key_id, secret_access_key, visibility_timeout"

// checkSource validates a source's settings field by field, without I/O, and fills the defaults.
func checkSource(raw json.RawMessage) (*SourceSettings, []*destination.FieldError) {
	var s SourceSettings
	if fe := destination.DecodeSettings(raw, &s, destination.Decoding{Required: "queue_url and region", Known: sourceFields, Hint: map[string]string{"visibility_timeout": "a whole number of seconds"}}); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: v})
	}
	s.Conn.check("sqs:ReceiveMessage, sqs:DeleteMessage and sqs:ChangeMessageVisibility", add)
	switch {
	case s.VisibilityTimeout == 0:
		s.VisibilityTimeout = defaultVisibility
	case s.VisibilityTimeout < 1 || s.VisibilityTimeout > maxVisibility:
		add("visibility_timeout", fmt.Sprintf("must be from 1 to %d seconds (how long a received message stays hidden before SQS delivers it again)", maxVisibility), s.VisibilityTimeout)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}
