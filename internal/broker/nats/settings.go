package natsdest

import (
	"encoding/json"
	"fmt"
	"net"
	"net/url"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/destination"
)

// Limits on settings values.
const (
	maxServers       = 16
	maxSubjectLen    = 1024
	maxStreamNameLen = 255
	maxCredentialLen = 4096
	defaultPort      = "4222"
)

// Conn are the connection settings a NATS endpoint and a NATS source share (same field names):
// the servers and the credentials. Password and Token are secrets.
type Conn struct {
	// URL is one NATS server ("nats://host:port") or several, comma-separated, of one cluster.
	URL string `json:"url"`
	// Username and Password, or Token: the credentials (secrets: Password and Token).
	Username string `json:"username,omitempty"`
	Password string `json:"password,omitempty"`
	Token    string `json:"token,omitempty"`
	// TLS requires TLS to the servers.
	TLS bool `json:"tls"`
}

// Settings are a NATS endpoint's settings (the endpoint's "config" object).
type Settings struct {
	Conn
	// Subject is where each message is published; a stream must capture it.
	Subject string `json:"subject"`
	// Stream, if set, is the stream the publish expects (JetStream refuses it otherwise).
	Stream string `json:"stream,omitempty"`
}

// destinationDecoding words the decoding errors of an endpoint's settings.
var destinationDecoding = destination.Decoding{Required: "url and subject", Known: "url, subject, stream, username, password, token, tls"}

// parseSettings decodes an endpoint's settings strictly: a JSON object, unknown fields refused.
func parseSettings(raw json.RawMessage) (*Settings, []*destination.FieldError) {
	var s Settings
	if fe := destination.DecodeSettings(raw, &s, destinationDecoding); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	return &s, nil
}

// check validates every field and normalises the settings in place.
func (s *Settings) check() []*destination.FieldError {
	var errs destination.FieldErrors
	add := errs.Add
	s.Conn.check(add)
	if msg := checkSubject(s.Subject); msg != "" {
		add("subject", msg, s.Subject)
	}
	if s.Stream != "" {
		if msg := checkStreamName(s.Stream); msg != "" {
			add("stream", msg, s.Stream)
		}
	}
	return errs
}

// check validates the connection fields and normalises the URL in place, reporting each problem
// to add. No value holding a credential is echoed.
func (c *Conn) check(add func(field, msg string, value any)) {
	if u, msg := normaliseServers(c.URL); msg != "" {
		add("url", msg, nil) // the value is not echoed: it might carry a credential
	} else {
		c.URL = u
	}
	switch {
	case c.Token != "" && (c.Username != "" || c.Password != ""):
		add("token", "use either username and password or a token, not both", nil)
	case c.Password != "" && c.Username == "":
		add("username", "is required with a password", nil)
	case c.Username != "" && c.Password == "":
		add("password", "is required with a username", nil)
	}
	for _, f := range []struct{ field, v string }{{"username", c.Username}, {"password", c.Password}, {"token", c.Token}} {
		switch {
		case len(f.v) > maxCredentialLen:
			add(f.field, fmt.Sprintf("is longer than %d bytes", maxCredentialLen), nil)
		case strings.ContainsFunc(f.v, unicode.IsControl):
			add(f.field, "must not contain control characters (line breaks, tabs)", nil)
		}
	}
}

// normaliseServers checks a comma-separated list of nats:// URLs and returns it as
// "nats://host:port,…" (port 4222 filled in). The message is "" when the list is good.
func normaliseServers(list string) (string, string) {
	if strings.TrimSpace(list) == "" {
		return "", "is required: the NATS server, as nats://host:port (several servers of one cluster comma-separated)"
	}
	parts := strings.Split(list, ",")
	if len(parts) > maxServers {
		return "", fmt.Sprintf("lists %d servers; at most %d are allowed", len(parts), maxServers)
	}
	out := make([]string, 0, len(parts))
	for i, p := range parts {
		p = strings.TrimSpace(p)
		where := ""
		if len(parts) > 1 {
			where = fmt.Sprintf("server %d: ", i+1)
		}
		if p == "" {
			return "", where + "is empty (remove the extra comma)"
		}
		u, err := url.Parse(p)
		if err != nil || u.Opaque != "" {
			return "", where + "is not a URL of the form nats://host:port"
		}
		if u.Scheme != "nats" {
			return "", where + fmt.Sprintf("has scheme %q; use nats://host:port (set tls to true for TLS)", u.Scheme)
		}
		if u.User != nil {
			if _, hasPassword := u.User.Password(); hasPassword {
				return "", where + "carries a password: put the password in the password setting and the user name in the username setting"
			}
			return "", where + "carries a credential (NATS reads a lone user name in the URL as a token): put it in the token setting, or use the username and password settings"
		}
		if u.Path != "" && u.Path != "/" || u.RawQuery != "" || u.Fragment != "" {
			return "", where + "must be only nats://host:port, without a path, query or fragment"
		}
		host, port := u.Hostname(), u.Port()
		if host == "" {
			return "", where + "has no host"
		}
		if strings.HasSuffix(u.Host, ":") {
			return "", where + "has an empty port"
		}
		if port == "" {
			port = defaultPort
		}
		if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
			return "", where + fmt.Sprintf("has port %q; a port is a number from 1 to 65535", port)
		}
		out = append(out, "nats://"+net.JoinHostPort(host, port))
	}
	return strings.Join(out, ","), ""
}

// checkSubject accepts a NATS subject that can be published to: dot-separated non-empty tokens,
// no whitespace, no wildcards, not in the reserved "$" namespace (JetStream's API, the system
// account), whose answers are not a publish acknowledgement.
func checkSubject(s string) string {
	switch {
	case s == "":
		return "is required: the subject to publish to (a stream must capture it), e.g. herald.events"
	case subjectChars(s) != "":
		return subjectChars(s)
	case strings.ContainsAny(s, "*>"):
		return "must not contain wildcards (* or >): a message is published to one subject"
	case strings.HasPrefix(s, "$"):
		return "must not start with $ (reserved for JetStream's API and the system account)"
	}
	for _, tok := range strings.Split(s, ".") {
		if tok == "" {
			return "has an empty token: tokens are separated by single dots, with none at the start or end"
		}
	}
	return ""
}

// subjectChars checks what a subject and a subject filter share: the length, UTF-8, no spaces
// or control characters. The message is "" when they are good.
func subjectChars(s string) string {
	switch {
	case len(s) > maxSubjectLen:
		return fmt.Sprintf("is longer than %d bytes", maxSubjectLen)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }):
		return "must not contain spaces or control characters"
	}
	return ""
}

// checkStreamName applies JetStream's rules for stream names.
func checkStreamName(s string) string {
	switch {
	case len(s) > maxStreamNameLen:
		return fmt.Sprintf("is longer than %d bytes", maxStreamNameLen)
	case !utf8.ValidString(s):
		return "is not valid UTF-8"
	case strings.ContainsFunc(s, func(r rune) bool { return unicode.IsSpace(r) || !unicode.IsPrint(r) }):
		return "must not contain spaces or non-printable characters"
	case strings.ContainsAny(s, ".*>/\\"):
		return "must not contain . * > / or \\ (JetStream's rules for stream names)"
	}
	return ""
}
