package kafka

import (
	"encoding/json"
	"fmt"
	"net"
	"slices"
	"strconv"
	"strings"

	"github.com/heraldhq/herald/internal/destination"
)

// Conn are the connection settings shared by the Kafka destination and the Kafka source (same
// field names in both): where the cluster is and how to authenticate.
type Conn struct {
	// Brokers are the bootstrap brokers, host:port (1 to 16).
	Brokers []string `json:"brokers"`
	// SASL is the SASL mechanism: "none", "plain", "scram-sha-256" or "scram-sha-512".
	SASL string `json:"sasl"`
	// Username and Password are the SASL credentials (Password is a secret).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	// TLS dials the brokers over TLS (verified against the system's roots).
	TLS bool `json:"tls"`
}

// Settings is a Kafka endpoint's "config" object, as Check returns it (defaults filled in).
type Settings struct {
	Conn
	// Topic receives every message.
	Topic string `json:"topic"`
	// Key selects the record key: "id" (the event id), "type" (the event type) or
	// "data.<path>" (a field of the envelope's data; the event id when it is missing).
	Key string `json:"key"`
	// Compression is the producer's batch compression: none, gzip, snappy, lz4 or zstd.
	Compression string `json:"compression"`
}

// Limits and values Check enforces.
const (
	maxBrokers     = 16
	maxTopicLen    = 249 // Kafka's own limit
	maxKeyPathLen  = 256
	maxUsernameLen = 256
	maxPasswordLen = 1024

	keyID   = "id"
	keyType = "type"
	keyData = "data."

	saslNone = "none"
)

// saslMechanisms and compressions are the accepted values, in the order error messages list them.
func saslMechanisms() []string { return []string{saslNone, "plain", "scram-sha-256", "scram-sha-512"} }
func compressions() []string   { return []string{"none", "gzip", "snappy", "lz4", "zstd"} }

// Check validates an endpoint's settings field by field and returns them normalised.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := parseSettings(raw)
	return destination.EncodeSettings(s, errs)
}

// parseSettings decodes strictly and validates; it returns the normalised settings or every
// problem found.
func parseSettings(raw json.RawMessage) (*Settings, []*destination.FieldError) {
	var s Settings
	if err := destination.DecodeSettings(raw, &s, destinationFields()); err != nil {
		return nil, []*destination.FieldError{err}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, v any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: v})
	}

	s.Conn.check(add)

	if msg := checkTopic(s.Topic); msg != "" {
		add("topic", msg, s.Topic)
	}

	if s.Key == "" {
		s.Key = keyID
	}
	if msg := checkKey(s.Key); msg != "" {
		add("key", msg, s.Key)
	}

	s.Compression = strings.ToLower(s.Compression)
	if s.Compression == "" {
		s.Compression = "none"
	}
	if !slices.Contains(compressions(), s.Compression) {
		add("compression", "must be one of "+strings.Join(compressions(), ", "), s.Compression)
	}

	if errs != nil {
		return nil, errs
	}
	return &s, nil
}

// check validates the connection settings, reporting each problem through add, and fills the
// defaults (sasl "none"). No I/O.
func (s *Conn) check(add func(field, msg string, v any)) {
	switch {
	case len(s.Brokers) == 0:
		add("brokers", "is required: list at least one broker as host:port, e.g. \"kafka-1.example.com:9092\"", nil)
	case len(s.Brokers) > maxBrokers:
		add("brokers", fmt.Sprintf("lists %d brokers; at most %d are allowed (the client discovers the rest of the cluster from them)", len(s.Brokers), maxBrokers), nil)
	default:
		seen := make(map[string]int, len(s.Brokers))
		for i, b := range s.Brokers {
			field := fmt.Sprintf("brokers[%d]", i)
			if msg, secret := checkBroker(b); msg != "" {
				var v any = b
				if secret {
					v = nil
				}
				add(field, msg, v)
				continue
			}
			k := strings.ToLower(b)
			if j, dup := seen[k]; dup {
				add(field, fmt.Sprintf("repeats brokers[%d]", j), b)
				continue
			}
			seen[k] = i
		}
	}

	s.SASL = strings.ToLower(s.SASL)
	if s.SASL == "" {
		s.SASL = saslNone
	}
	switch {
	case !slices.Contains(saslMechanisms(), s.SASL):
		add("sasl", "must be one of "+strings.Join(saslMechanisms(), ", "), s.SASL)
	case s.SASL == saslNone:
		if s.Username != "" {
			add("username", "is only used with SASL: set sasl to plain, scram-sha-256 or scram-sha-512, or remove the username", s.Username)
		}
		if s.Password != "" {
			add("password", "is only used with SASL: set sasl to plain, scram-sha-256 or scram-sha-512, or remove the password", nil)
		}
	default:
		switch {
		case s.Username == "":
			add("username", "is required with sasl "+s.SASL, nil)
		case len(s.Username) > maxUsernameLen:
			add("username", fmt.Sprintf("is longer than %d bytes", maxUsernameLen), nil)
		}
		switch {
		case s.Password == "":
			add("password", "is required with sasl "+s.SASL, nil)
		case len(s.Password) > maxPasswordLen:
			add("password", fmt.Sprintf("is longer than %d bytes", maxPasswordLen), nil)
		}
	}
}

// connWant is what a connection field's value must be, where the Go type does not say it.
func connWant() map[string]string {
	return map[string]string{"brokers": "a list of host:port strings"}
}

func destinationFields() destination.Decoding {
	return destination.Decoding{Required: "brokers and topic", Known: "brokers, topic, key, sasl, username, password, tls, compression", Hint: connWant()}
}

// checkBroker returns why b is not a usable host:port ("" if it is), and whether b may hold a
// secret (so that it is not echoed).
func checkBroker(b string) (msg string, secret bool) {
	if b == "" {
		return "is empty: give host:port, e.g. \"kafka-1.example.com:9092\"", false
	}
	if at := strings.LastIndex(b, "@"); at >= 0 {
		userinfo := b[:at]
		if i := strings.Index(userinfo, "://"); i >= 0 {
			userinfo = userinfo[i+3:]
		}
		if strings.Contains(userinfo, ":") {
			return "carries a password: put the password in the password setting (and the user in username), and give the broker as host:port", true
		}
		return "must be host:port without a user: put the user in the username setting", false
	}
	if strings.Contains(b, "://") {
		return "must be host:port without a scheme, e.g. \"kafka-1.example.com:9092\" (use tls: true for TLS)", false
	}
	if strings.ContainsAny(b, " \t\r\n/?#") {
		return "must be host:port, e.g. \"kafka-1.example.com:9092\"", false
	}
	host, port, err := net.SplitHostPort(b)
	if err != nil {
		return "must be host:port, e.g. \"kafka-1.example.com:9092\" (an IPv6 address goes in brackets: \"[::1]:9092\")", false
	}
	if host == "" {
		return "has no host", false
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return "has an invalid port: it must be a number from 1 to 65535", false
	}
	if net.ParseIP(host) == nil && !validHostname(host) {
		return "has an invalid host name", false
	}
	return "", false
}

func validHostname(h string) bool {
	if len(h) > 253 {
		return false
	}
	for _, label := range strings.Split(strings.TrimSuffix(h, "."), ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// checkTopic applies Kafka's topic name rules.
func checkTopic(t string) string {
	switch {
	case t == "":
		return "is required"
	case len(t) > maxTopicLen:
		return fmt.Sprintf("is %d characters long; Kafka allows at most %d", len(t), maxTopicLen)
	case t == "." || t == "..":
		return "cannot be \".\" or \"..\""
	}
	for _, c := range t {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return fmt.Sprintf("contains %q: a Kafka topic name uses only letters, digits, '.', '_' and '-'", c)
		}
	}
	return ""
}

// checkKey validates the key setting.
func checkKey(k string) string {
	const what = "must be \"id\" (the event id), \"type\" (the event type) or \"data.<field>\" (a field of the event's data, e.g. \"data.customer.id\")"
	if k == keyID || k == keyType {
		return ""
	}
	path, ok := strings.CutPrefix(k, keyData)
	if !ok {
		return what
	}
	if len(path) > maxKeyPathLen {
		return fmt.Sprintf("has a field path longer than %d characters", maxKeyPathLen)
	}
	for _, seg := range strings.Split(path, ".") {
		if seg == "" {
			return what + "; the field path has an empty part"
		}
	}
	return ""
}
