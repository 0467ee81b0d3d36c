package redisstream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
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

// Settings are a Redis Streams endpoint's settings (the API's "config" object).
type Settings struct {
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
	// Stream is the stream's key.
	Stream string `json:"stream"`
	// MaxLen trims the stream to about this many entries at each XADD (MAXLEN ~ n); 0 or absent:
	// no trimming.
	MaxLen *int64 `json:"maxlen,omitempty"`
}

func (s *Settings) db() int {
	if s.DB == nil {
		return 0
	}
	return *s.DB
}

func (s *Settings) maxLen() int64 {
	if s.MaxLen == nil {
		return 0
	}
	return *s.MaxLen
}

// decodeSettings decodes strictly: unknown fields and trailing data are refused.
func decodeSettings(raw json.RawMessage) (*Settings, *destination.FieldError) {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil, &destination.FieldError{Field: "", Message: "settings are required: an object with at least \"address\" and \"stream\""}
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var s Settings
	if err := dec.Decode(&s); err != nil {
		return nil, decodeError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, &destination.FieldError{Field: "", Message: "settings must be a single JSON object"}
	}
	return &s, nil
}

func decodeError(err error) *destination.FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		if te.Field == "" {
			return &destination.FieldError{Field: "", Message: "settings must be a JSON object"}
		}
		want := te.Type.String()
		switch want {
		case "int", "int64":
			want = "an integer"
		case "string":
			want = "a string"
		case "bool":
			want = "true or false"
		}
		return &destination.FieldError{Field: te.Field, Message: fmt.Sprintf("must be %s, not a JSON %s", want, te.Value)}
	}
	msg := err.Error()
	if f, ok := strings.CutPrefix(msg, "json: unknown field "); ok {
		name, _ := strconv.Unquote(f)
		if name == "" {
			name = f
		}
		return &destination.FieldError{Field: name, Message: "unknown setting (the settings of a redis endpoint are address, db, username, password, tls, stream, maxlen)"}
	}
	return &destination.FieldError{Field: "", Message: "settings are not a valid JSON object: " + msg}
}

// check validates every field and fills the defaults. It does no I/O.
func check(raw json.RawMessage) (*Settings, []*destination.FieldError) {
	s, fe := decodeSettings(raw)
	if fe != nil {
		return nil, []*destination.FieldError{fe}
	}
	var errs []*destination.FieldError
	add := func(field, msg string, value any) {
		errs = append(errs, &destination.FieldError{Field: field, Message: msg, Value: value})
	}

	if msg := checkAddress(s.Address); msg != "" {
		// The address is shown back only when it cannot hold a credential.
		var v any = s.Address
		if strings.Contains(s.Address, "@") {
			v = nil
		}
		add("address", msg, v)
	}
	if s.DB == nil {
		zero := 0
		s.DB = &zero
	} else if *s.DB < 0 {
		add("db", "must be 0 or more (the logical database number)", *s.DB)
	}
	if len(s.Username) > maxUsernameBytes {
		add("username", fmt.Sprintf("must be at most %d bytes", maxUsernameBytes), nil)
	} else if s.Username != "" && !printable(s.Username, false) {
		add("username", "must be printable text without spaces", s.Username)
	}
	if len(s.Password) > maxPasswordBytes {
		add("password", fmt.Sprintf("must be at most %d bytes", maxPasswordBytes), nil)
	} else if s.Password != "" && !printable(s.Password, true) {
		add("password", "must be printable text (no control characters)", nil)
	}
	switch {
	case s.Stream == "":
		add("stream", "is required: the key of the stream to add the messages to", nil)
	case len(s.Stream) > maxStreamBytes:
		add("stream", fmt.Sprintf("must be at most %d bytes (it has %d)", maxStreamBytes, len(s.Stream)), nil)
	case !printable(s.Stream, true):
		add("stream", "must be printable text (no control characters)", s.Stream)
	}
	if s.MaxLen != nil && *s.MaxLen <= 0 {
		add("maxlen", "must be greater than 0 (leave it out for no trimming)", *s.MaxLen)
	}
	if len(errs) > 0 {
		return nil, errs
	}
	return s, nil
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
