package sqs

import (
	"encoding/json"
	"net/url"
	"regexp"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
)

// Conn are the connection settings shared by the destination and the source: the queue, and
// how to reach and sign for it.
type Conn struct {
	// QueueURL is the queue's URL, https://sqs.<region>.amazonaws.com/<account>/<name>.
	QueueURL string `json:"queue_url"`
	// Region is the queue's AWS region (it signs the requests).
	Region string `json:"region"`
	// Endpoint overrides the service endpoint (a VPC endpoint, a local SQS-compatible server);
	// empty for AWS's regional endpoint.
	Endpoint string `json:"endpoint,omitempty"`
	// AccessKeyID and SecretAccessKey are the IAM credentials. Secret.
	AccessKeyID     string `json:"access_key_id,omitempty"`
	SecretAccessKey string `json:"secret_access_key,omitempty"`
}

// Settings are an SQS endpoint's settings (the endpoint's "config" object).
type Settings struct {
	Conn
	// GroupID is a FIFO queue's message group: "id" (the event id), "type" (the event type) or
	// a fixed group id. Only for FIFO queues; default "type".
	GroupID string `json:"group_id,omitempty"`
}

// Group id sources.
const (
	GroupByID   = "id"
	GroupByType = "type"
)

var (
	regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]+$`)
	// A FIFO message group id: 1 to 128 characters, alphanumerics and punctuation.
	groupRE = regexp.MustCompile("^[A-Za-z0-9!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~]{1,128}$")
	// A queue name: 1 to 80 alphanumerics, hyphens and underscores (a FIFO queue's ends .fifo).
	queueNameRE = regexp.MustCompile(`^[A-Za-z0-9_-]{1,80}$`)
)

// isFIFO tells whether the queue URL names a FIFO queue.
func (s *Conn) isFIFO() bool { return strings.HasSuffix(s.QueueURL, ".fifo") }

func check(raw json.RawMessage) (*Settings, []*destination.FieldError) {
	var s Settings
	if fe := destination.DecodeSettings(raw, &s, destination.Decoding{Required: "queue_url and region", Known: "queue_url, region, endpoint, access_key_id, secret_access_key, group_id"}); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: v})
	}
	s.Conn.check("sqs:SendMessage", add)

	if s.isFIFO() {
		if s.GroupID == "" {
			s.GroupID = GroupByType
		}
		if s.GroupID != GroupByID && s.GroupID != GroupByType && !groupRE.MatchString(s.GroupID) {
			add("group_id", `must be "id" (the event id), "type" (the event type) or a fixed group id (1 to 128 letters, digits and punctuation)`, s.GroupID)
		}
	} else if s.GroupID != "" && s.QueueURL != "" {
		add("group_id", "applies only to FIFO queues (a queue_url ending in .fifo)", s.GroupID)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}

// check validates the connection settings, normalising them in place; perm names the IAM
// permission the credentials need, for the messages.
func (s *Conn) check(perm string, add func(field, msg string, v any)) {
	s.QueueURL = strings.TrimSpace(s.QueueURL)
	if s.QueueURL == "" {
		add("queue_url", "is required: the queue's URL, https://sqs.<region>.amazonaws.com/<account id>/<queue name>", nil)
	} else if msg := checkURL(s.QueueURL, true); msg != "" {
		add("queue_url", msg, redact(s.QueueURL))
	}

	s.Region = strings.TrimSpace(s.Region)
	switch {
	case s.Region == "":
		add("region", "is required: the queue's AWS region, e.g. us-east-1", nil)
	case !regionRE.MatchString(s.Region):
		add("region", "is not an AWS region (e.g. us-east-1, eu-west-3)", s.Region)
	}

	s.Endpoint = strings.TrimRight(strings.TrimSpace(s.Endpoint), "/")
	if s.Endpoint != "" {
		if msg := checkURL(s.Endpoint, false); msg != "" {
			add("endpoint", msg, redact(s.Endpoint))
		}
	}

	if s.AccessKeyID == "" {
		add("access_key_id", "is required: the IAM access key id of a user or role allowed "+perm+" on the queue", nil)
	} else if strings.ContainsAny(s.AccessKeyID, " \t\r\n") {
		add("access_key_id", "must not contain spaces or line breaks", nil)
	}
	if s.SecretAccessKey == "" {
		add("secret_access_key", "is required: the IAM secret access key that goes with access_key_id", nil)
	} else if strings.ContainsAny(s.SecretAccessKey, " \t\r\n") {
		add("secret_access_key", "must not contain spaces or line breaks", nil)
	}
}

// checkURL checks a queue URL (queue true) or an endpoint URL.
func checkURL(raw string, queue bool) string {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		if queue {
			return "must be an https:// URL like https://sqs.us-east-1.amazonaws.com/123456789012/orders"
		}
		return "must be an https:// URL like https://vpce-0123.sqs.us-east-1.vpce.amazonaws.com"
	}
	if u.User != nil {
		return "must not carry credentials: put them in access_key_id and secret_access_key"
	}
	if u.RawQuery != "" || u.Fragment != "" {
		return "must not have a query or a fragment"
	}
	if !queue {
		if u.Path != "" && u.Path != "/" {
			return "must be the service's base URL, without a path"
		}
		return ""
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) != 2 || parts[0] == "" {
		return "must end with /<account id>/<queue name>"
	}
	name := strings.TrimSuffix(parts[1], ".fifo")
	if !queueNameRE.MatchString(name) {
		return "names an invalid queue (1 to 80 letters, digits, hyphens and underscores, .fifo for a FIFO queue)"
	}
	return ""
}

// redact drops anything in a URL's userinfo, so a password typed there is never echoed.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	if u.User != nil {
		u.User = url.User("REDACTED")
	}
	return u.String()
}
