package pubsub

import (
	"encoding/json"
	"fmt"
	"net"
	"regexp"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
)

// Conn are the connection settings shared by the destination and the source: which project,
// through which endpoint, with which credentials.
type Conn struct {
	// Project is the Google Cloud project that holds the topic (or the subscription).
	Project string `json:"project"`
	// Endpoint is host:port of an emulator or a private endpoint; empty for Google's.
	Endpoint string `json:"endpoint,omitempty"`
	// CredentialsJSON is a service account key (the JSON file Google gives). Secret.
	CredentialsJSON string `json:"credentials_json,omitempty"`
}

// Settings are a Pub/Sub endpoint's settings (the endpoint's "config" object).
type Settings struct {
	Conn
	// Topic is the topic's id (or its full name projects/<project>/topics/<id>).
	Topic string `json:"topic"`
	// OrderingKey selects the message's ordering key: "id" (the event id), "type" (the event
	// type) or "" (none). When set, the publisher orders messages per key.
	OrderingKey string `json:"ordering_key"`
}

// Ordering key sources.
const (
	OrderingNone = ""
	OrderingID   = "id"
	OrderingType = "type"
)

// Google's limits: project ids are 6 to 30 characters (lower-case letters, digits, hyphens; a
// domain-scoped project is "example.com:my-project"); topic ids 3 to 255 characters, starting with
// a letter, not starting with "goog".
var (
	projectRE = regexp.MustCompile(`^([a-z0-9.-]+:)?[a-z][a-z0-9-]{4,28}[a-z0-9]$`)
	topicRE   = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9\-_.~+%]{2,254}$`)
)

// check validates raw settings field by field and returns them normalised.
func check(raw json.RawMessage) (*Settings, []*destination.FieldError) {
	var s Settings
	if fe := destination.DecodeSettings(raw, &s, destination.Decoding{Required: "project and topic", Known: "project, topic, ordering_key, endpoint, credentials_json"}); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: v})
	}

	s.Conn.check("topic", add)

	s.Topic = strings.TrimSpace(s.Topic)
	if p, id, ok := splitTopicName(s.Topic); ok {
		// A full name must name the same project.
		if s.Project != "" && p != s.Project {
			add("topic", fmt.Sprintf("names project %q, but project is %q: give the topic id alone", p, s.Project), s.Topic)
		}
		s.Topic = id
	}
	switch {
	case s.Topic == "":
		add("topic", "is required: the topic id", nil)
	case strings.HasPrefix(strings.ToLower(s.Topic), "goog"):
		add("topic", "must not start with \"goog\" (reserved by Google)", s.Topic)
	case !topicRE.MatchString(s.Topic):
		add("topic", "is not a topic id (3 to 255 characters: letters, digits, - _ . ~ + %, starting with a letter)", s.Topic)
	}

	switch s.OrderingKey {
	case OrderingNone, OrderingID, OrderingType:
	default:
		add("ordering_key", `must be "id" (the event id), "type" (the event type) or "" (no ordering)`, s.OrderingKey)
	}

	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}

// check validates the connection settings (what names what the project holds: "topic",
// "subscription"), normalising them in place.
func (c *Conn) check(what string, add func(field, msg string, v any)) {
	c.Project = strings.TrimSpace(c.Project)
	switch {
	case c.Project == "":
		add("project", "is required: the Google Cloud project id that holds the "+what, nil)
	case !projectRE.MatchString(c.Project):
		add("project", "is not a Google Cloud project id (6 to 30 lower-case letters, digits and hyphens, starting with a letter)", c.Project)
	}

	c.Endpoint = strings.TrimSpace(c.Endpoint)
	if c.Endpoint != "" {
		if msg := checkEndpoint(c.Endpoint); msg != "" {
			add("endpoint", msg, c.Endpoint)
		}
	}

	if c.CredentialsJSON == "" {
		if c.Endpoint == "" {
			add("credentials_json", "is required to reach Google's endpoint: paste a service account key (JSON)", nil)
		}
	} else if msg := checkCredentials(c.CredentialsJSON); msg != "" {
		add("credentials_json", msg, nil) // never echo a secret
	}
}

// splitTopicName splits "projects/<p>/topics/<id>".
func splitTopicName(s string) (project, id string, ok bool) { return splitName(s, "topics") }

// splitName splits "projects/<p>/<kind>/<id>".
func splitName(s, kind string) (project, id string, ok bool) {
	parts := strings.Split(s, "/")
	if len(parts) == 4 && parts[0] == "projects" && parts[2] == kind {
		return parts[1], parts[3], true
	}
	return "", "", false
}

func checkEndpoint(ep string) string {
	if strings.Contains(ep, "://") || strings.ContainsAny(ep, "/@") {
		return "must be host:port (e.g. pubsub-emulator.internal:8085), without a scheme, path or credentials"
	}
	host, port, err := net.SplitHostPort(ep)
	if err != nil || host == "" {
		return "must be host:port (e.g. pubsub-emulator.internal:8085)"
	}
	if n, err := strconv.ParseUint(port, 10, 16); err != nil || n == 0 {
		return "has an invalid port (1 to 65535)"
	}
	return ""
}

// serviceAccountKey is the part of a service account key file that is checked.
type serviceAccountKey struct {
	Type        string `json:"type"`
	ClientEmail string `json:"client_email"`
	PrivateKey  string `json:"private_key"`
}

// checkCredentials accepts a service account key only: other credential files (external
// accounts, authorized users) fetch tokens from URLs or run programs named in the file.
func checkCredentials(js string) string {
	var k serviceAccountKey
	if err := json.Unmarshal([]byte(js), &k); err != nil {
		return "is not JSON: paste the service account key file as it is"
	}
	if k.Type != "service_account" {
		return `must be a service account key ("type": "service_account")`
	}
	if k.ClientEmail == "" || !strings.Contains(k.PrivateKey, "PRIVATE KEY") {
		return "is not a complete service account key (client_email and private_key are required)"
	}
	return ""
}
