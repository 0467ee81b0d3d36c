package pubsub

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
)

// SourceSettings are a Pub/Sub source's settings: the connection settings of an endpoint (same
// names, same checks) and the subscription to pull from.
type SourceSettings struct {
	Conn
	// Subscription is the subscription's id (or its full name
	// projects/<project>/subscriptions/<id>). It must exist: Herald never creates it.
	Subscription string `json:"subscription"`
}

const sourceFields = "project, subscription, endpoint, credentials_json"

// checkSource validates a source's settings field by field, without I/O.
func checkSource(raw json.RawMessage) (*SourceSettings, []*destination.FieldError) {
	var s SourceSettings
	if fe := destination.DecodeSettings(raw, &s, destination.Decoding{Required: "project and subscription", Known: sourceFields}); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: v})
	}
	s.Conn.check("subscription", add)

	s.Subscription = strings.TrimSpace(s.Subscription)
	if p, id, ok := splitName(s.Subscription, "subscriptions"); ok {
		if s.Project != "" && p != s.Project {
			add("subscription", fmt.Sprintf("names project %q, but project is %q: give the subscription id alone", p, s.Project), s.Subscription)
		}
		s.Subscription = id
	}
	switch {
	case s.Subscription == "":
		add("subscription", "is required: the id of the subscription to pull from (it must exist: Herald does not create it)", nil)
	case strings.HasPrefix(strings.ToLower(s.Subscription), "goog"):
		add("subscription", "must not start with \"goog\" (reserved by Google)", s.Subscription)
	case !topicRE.MatchString(s.Subscription): // the same rules as a topic id
		add("subscription", "is not a subscription id (3 to 255 characters: letters, digits, - _ . ~ + %, starting with a letter)", s.Subscription)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}

// name is the subscription's full name.
func (s *SourceSettings) name() string {
	return "projects/" + s.Project + "/subscriptions/" + s.Subscription
}
