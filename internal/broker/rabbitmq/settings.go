package rabbitmq

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/destination"
)

// Connection is how Herald reaches a RabbitMQ broker: the settings a destination and a source
// share (same field names, same checks, same guarded dialing).
type Connection struct {
	// URL is amqp://host[:port][/vhost] or amqps://…; a user name may be written in it (Check
	// moves it to Username), a password may not.
	URL string `json:"url"`
	// Username is the user Herald logs in as (SASL PLAIN). Required: here or in the URL.
	Username string `json:"username"`
	// Password is the user's password (a secret: sealed at rest, never shown).
	Password string `json:"password,omitempty"`
}

// Settings are a RabbitMQ endpoint's settings (the endpoint's "config" object).
type Settings struct {
	Connection
	// Exchange is where messages are published; "" is the default exchange (then RoutingKey
	// is a queue name). Required (the empty string must be written out).
	Exchange *string `json:"exchange"`
	// RoutingKey is every message's routing key. Required, at most 255 bytes.
	RoutingKey string `json:"routing_key"`
	// Persistent publishes with delivery mode 2 (the broker writes the message to disk on
	// durable queues before it confirms). Default true.
	Persistent *bool `json:"persistent"`
}

// destinationDecoding words the decoding errors of an endpoint's settings.
var destinationDecoding = destination.Decoding{Required: "url and exchange",
	Known: "url, username, password, exchange, routing_key, persistent"}

const maxShortString = 255

// parsedURL is a checked URL: what the pool dials and keys on.
type parsedURL struct {
	scheme, host, port, vhost string
}

// dialURL is the URL without credentials, as amqp091 parses it.
func (u parsedURL) dialURL() string {
	if u.vhost == "/" {
		return u.scheme + "://" + net.JoinHostPort(u.host, u.port) + "/"
	}
	return u.scheme + "://" + net.JoinHostPort(u.host, u.port) + "/" + url.PathEscape(u.vhost)
}

// address is host:port, for messages.
func (u parsedURL) address() string { return net.JoinHostPort(u.host, u.port) }

// Check implements destination.Type.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, u, errs := decodeSettings(raw)
	if len(errs) > 0 {
		return nil, errs
	}
	return destination.EncodeSettings(normalised(s, u), nil)
}

func normalised(s *Settings, u parsedURL) *Settings {
	n := *s
	n.URL = u.dialURL()
	return &n
}

// check validates the connection settings, reporting each problem through add, moves a user
// named in the URL to Username, and returns the parsed URL (valid only if nothing was added).
func (c *Connection) check(add func(field, msg string, v any)) parsedURL {
	u, urlUser, msg := parseURL(c.URL)
	if msg != "" {
		add("url", msg, echoableURL(c.URL))
	}
	switch {
	case urlUser != "" && c.Username != "" && urlUser != c.Username:
		add("username", fmt.Sprintf("the URL names user %q and username says %q: give the user in one place", urlUser, c.Username), c.Username)
	case urlUser != "":
		c.Username = urlUser
	case c.Username == "" && msg == "":
		add("username", "required: the user Herald logs in as (in this setting or in the URL, as amqp://user@host/)", nil)
	}
	if len(c.Username) > maxShortString {
		add("username", fmt.Sprintf("at most %d bytes", maxShortString), nil)
	}
	if len(c.Password) > 4096 {
		add("password", "at most 4096 bytes", nil)
	}
	return u
}

// decodeSettings decodes strictly and validates every field; it returns the settings with the
// user name moved out of the URL and the defaults filled in.
func decodeSettings(raw json.RawMessage) (*Settings, parsedURL, []*destination.FieldError) {
	var s Settings
	if fe := destination.DecodeSettings(raw, &s, destinationDecoding); fe != nil {
		return nil, parsedURL{}, []*destination.FieldError{fe}
	}
	var errs destination.FieldErrors
	add := errs.Add
	u := s.Connection.check(add)
	switch {
	case s.Exchange == nil:
		add("exchange", `required: the exchange to publish to ("" for the default exchange, which routes to the queue named by routing_key)`, nil)
	case len(*s.Exchange) > maxShortString:
		add("exchange", fmt.Sprintf("at most %d bytes", maxShortString), *s.Exchange)
	case !validName(*s.Exchange):
		add("exchange", "may contain only letters, digits, '-', '_', '.' and ':'", *s.Exchange)
	}
	switch {
	case s.RoutingKey == "":
		add("routing_key", "required: the routing key of every message (the queue name when exchange is \"\")", nil)
	case len(s.RoutingKey) > maxShortString:
		add("routing_key", fmt.Sprintf("at most %d bytes (it is %d)", maxShortString, len(s.RoutingKey)), nil)
	case !validUTF8NoControl(s.RoutingKey):
		add("routing_key", "must be UTF-8 without control characters", nil)
	}
	if s.Persistent == nil {
		p := true
		s.Persistent = &p
	}
	if len(errs) > 0 {
		return nil, parsedURL{}, errs
	}
	return &s, u, nil
}

// parseURL checks an endpoint's URL and returns it without user, the user it named, and what is
// wrong with it ("" if nothing).
func parseURL(raw string) (parsedURL, string, string) {
	if raw == "" {
		return parsedURL{}, "", "required: the broker's address, amqp://host:5672/vhost or amqps://host:5671/vhost"
	}
	u, err := url.Parse(raw)
	if err != nil {
		// url.Parse's error repeats the URL, which may hold a password: say less.
		return parsedURL{}, "", "is not a valid URL (expected amqp://host:5672/vhost)"
	}
	if u.User != nil {
		if _, has := u.User.Password(); has {
			return parsedURL{}, "", "must not contain a password: put the password in the password setting"
		}
	}
	var p parsedURL
	switch u.Scheme {
	case "amqp":
		p.port = "5672"
	case "amqps":
		p.port = "5671"
	default:
		return parsedURL{}, "", "scheme must be amqp or amqps"
	}
	p.scheme = u.Scheme
	if u.Opaque != "" || u.Host == "" || u.Hostname() == "" {
		return parsedURL{}, "", "must name a host: amqp://host:5672/vhost"
	}
	if u.RawQuery != "" || u.ForceQuery || u.Fragment != "" {
		return parsedURL{}, "", "must not have a query or fragment (Herald sets the connection parameters itself)"
	}
	p.host = u.Hostname()
	if port := u.Port(); port != "" {
		n, err := strconv.ParseUint(port, 10, 16)
		if err != nil || n == 0 {
			return parsedURL{}, "", "port must be 1 to 65535"
		}
		p.port = port
	}
	// The vhost is the path without its leading "/", percent-decoded (amqp://h/%2f is "/").
	// An empty path is the default vhost "/".
	switch path := u.Path; {
	case path == "" || path == "/":
		p.vhost = "/"
	default:
		p.vhost = strings.TrimPrefix(path, "/")
	}
	if len(p.vhost) > maxShortString || !validUTF8NoControl(p.vhost) {
		return parsedURL{}, "", "the vhost must be at most 255 bytes of UTF-8 without control characters"
	}
	user := ""
	if u.User != nil {
		user = u.User.Username()
	}
	return p, user, ""
}

// echoableURL is the URL to show back in an error, or nil if it may hold a password (or cannot
// be parsed, so that nobody can tell).
func echoableURL(raw string) any {
	u, err := url.Parse(raw)
	if err != nil || u.User != nil {
		return nil
	}
	return raw
}

func validName(s string) bool {
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.' || r == ':') {
			return false
		}
	}
	return true
}

func validUTF8NoControl(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if r < 0x20 || r == 0x7f {
			return false
		}
	}
	return true
}
