package redisstream

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

// Limits of the settings.
const (
	maxStreamBytes   = 512
	maxUsernameBytes = 256
	maxPasswordBytes = 1024
	maxAddressBytes  = 300
)

// Conn are the connection settings every Redis endpoint and Redis source has, under the same
// field names: the server, the database and the credentials.
type Conn struct {
	// Address is host:port of the Redis server.
	Address string `json:"address"`
	// DB is the logical database (SELECT); 0 by default.
	DB *int `json:"db,omitempty"`
	// Username is the ACL user (Redis 6+); empty for the default user.
	Username string `json:"username,omitempty"`
	// Password is the user's password (a secret: sealed at rest, never shown).
	Password string `json:"password,omitempty"`
	// TLS connects with TLS, verifying the server's certificate against the address's host.
	TLS bool `json:"tls"`
}

func (c *Conn) db() int {
	if c.DB == nil {
		return 0
	}
	return *c.DB
}

// key is the pool key of the connection settings: the clients they may share.
func (c *Conn) key(internal bool) poolKey {
	return poolKey{
		address:  c.Address,
		username: c.Username,
		password: c.Password,
		db:       c.db(),
		tls:      c.TLS,
		internal: internal,
	}
}

// check validates the connection fields and fills their defaults.
func (c *Conn) check(add func(field, msg string, value any)) {
	if msg := checkAddress(c.Address); msg != "" {
		// The address is shown back only when it cannot hold a credential.
		var v any = c.Address
		if strings.Contains(c.Address, "@") {
			v = nil
		}
		add("address", msg, v)
	}
	if c.DB == nil {
		zero := 0
		c.DB = &zero
	} else if *c.DB < 0 {
		add("db", "must be 0 or more (the logical database number)", *c.DB)
	}
	if len(c.Username) > maxUsernameBytes {
		add("username", fmt.Sprintf("must be at most %d bytes", maxUsernameBytes), nil)
	} else if c.Username != "" && !printable(c.Username, false) {
		add("username", "must be printable text without spaces", c.Username)
	}
	if len(c.Password) > maxPasswordBytes {
		add("password", fmt.Sprintf("must be at most %d bytes", maxPasswordBytes), nil)
	} else if c.Password != "" && !printable(c.Password, true) {
		add("password", "must be printable text (no control characters)", nil)
	}
}

// checkStream validates a stream key; what says what the stream is for ("to add the messages
// to", "to read").
func checkStream(stream, what string, add func(field, msg string, value any)) {
	switch {
	case stream == "":
		add("stream", "is required: the key of the stream "+what, nil)
	case len(stream) > maxStreamBytes:
		add("stream", fmt.Sprintf("must be at most %d bytes (it has %d)", maxStreamBytes, len(stream)), nil)
	case !printable(stream, true):
		add("stream", "must be printable text (no control characters)", stream)
	}
}

// Settings are a Redis Streams endpoint's settings (the API's "config" object).
type Settings struct {
	Conn
	// Stream is the stream's key.
	Stream string `json:"stream"`
	// MaxLen trims the stream to about this many entries at each XADD (MAXLEN ~ n); 0 or absent:
	// no trimming.
	MaxLen *int64 `json:"maxlen,omitempty"`
}

func (s *Settings) maxLen() int64 {
	if s.MaxLen == nil {
		return 0
	}
	return *s.MaxLen
}

// destinationDecoding words the decoding errors of an endpoint's settings.
var destinationDecoding = destination.Decoding{Required: "address and stream", Known: "address, db, username, password, tls, stream, maxlen"}

// check validates every field of an endpoint's settings and fills the defaults. It does no I/O.
func check(raw json.RawMessage) (*Settings, []*destination.FieldError) {
	var s Settings
	if fe := destination.DecodeSettings(raw, &s, destinationDecoding); fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs destination.FieldErrors
	add := errs.Add
	s.Conn.check(add)
	checkStream(s.Stream, "to add the messages to", add)
	if s.MaxLen != nil && *s.MaxLen <= 0 {
		add("maxlen", "must be greater than 0 (leave it out for no trimming)", *s.MaxLen)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return &s, nil
}

// checkAddress returns what is wrong with a host:port address, or "".
func checkAddress(a string) string {
	if a == "" {
		return "is required: host:port of the Redis server, e.g. redis.internal:6379"
	}
	if len(a) > maxAddressBytes {
		return fmt.Sprintf("must be at most %d bytes", maxAddressBytes)
	}
	if strings.Contains(a, "://") {
		if u, err := url.Parse(a); err == nil && u.User != nil {
			if _, has := u.User.Password(); has {
				return "must not carry a password: put the password in the password setting (and the user in username), and the address as host:port"
			}
		}
		return "must be host:port, not a URL (e.g. redis.internal:6379; use the tls, db, username and password settings for the rest)"
	}
	if strings.Contains(a, "@") {
		return "must be host:port without a user or password: put the password in the password setting and the user in username"
	}
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		return "must be host:port, e.g. redis.internal:6379 or [::1]:6379"
	}
	if host == "" {
		return "has no host: it must be host:port, e.g. redis.internal:6379"
	}
	if !printable(host, false) {
		return "has an invalid host"
	}
	n, err := strconv.Atoi(port)
	if err != nil || n < 1 || n > 65535 {
		return "has an invalid port: it must be a number from 1 to 65535"
	}
	return ""
}

func printable(s string, spaces bool) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if unicode.IsControl(r) || (!spaces && unicode.IsSpace(r)) {
			return false
		}
	}
	return true
}
