package verify

import (
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"
)

// hmacChecker verifies the generic HMAC scheme: a MAC of a configurable
// algorithm over a template of the body, a timestamp header and an id
// header, written in hex or base64 after an optional prefix in a
// configurable header. It covers the many senders that follow GitHub's or
// Stripe's pattern with their own header names.
type hmacChecker struct {
	macs            macKeys
	header          string
	prefix          string
	base64          bool
	size            int // MAC length in bytes
	tmpl            template
	timestampHeader string
	idHeader        string
	tolerance       time.Duration
}

func newHMACChecker(c *Config) (*hmacChecker, error) {
	tmpl, err := parseTemplate(c.templateText())
	if err != nil {
		return nil, fmt.Errorf("template: %w", err)
	}
	newHash, err := hashOf(c.Algorithm)
	if err != nil {
		return nil, err
	}
	keys := make([][]byte, len(c.Secrets))
	for i, s := range c.Secrets {
		if keys[i], err = decodeSecret(s, c.SecretEncoding); err != nil {
			return nil, fmt.Errorf("secret %d: %w", i, err)
		}
	}
	return &hmacChecker{
		macs:            macKeys{newHash: newHash, keys: keys},
		header:          c.Header,
		prefix:          c.Prefix,
		base64:          c.Encoding == EncodingBase64,
		size:            newHash().Size(),
		tmpl:            tmpl,
		timestampHeader: c.TimestampHeader,
		idHeader:        c.IDHeader,
		tolerance:       c.Tolerance(),
	}, nil
}

func (c *hmacChecker) check(req *Request, now time.Time) (Result, *Error) {
	value := header(req.Header, c.header)
	if value == "" {
		return Result{}, reject(ReasonMissingSignature, c.header, "")
	}
	var ts time.Time
	var values [numParts]string
	if c.timestampHeader != "" {
		t := header(req.Header, c.timestampHeader)
		if t == "" {
			return Result{}, reject(ReasonMissingHeader, c.timestampHeader, "")
		}
		var rerr *Error
		if ts, rerr = checkTimestamp(t, c.timestampHeader, now, c.tolerance); rerr != nil {
			return Result{}, rerr
		}
		values[partTimestamp] = t
	}
	if c.idHeader != "" {
		id := header(req.Header, c.idHeader)
		if id == "" {
			return Result{}, reject(ReasonMissingHeader, c.idHeader, "")
		}
		values[partID] = id
	}
	enc, ok := strings.CutPrefix(value, c.prefix)
	if !ok {
		return Result{}, reject(ReasonMalformedHeader, c.header, "want the prefix %q", c.prefix)
	}
	var sig []byte
	var err error
	if c.base64 {
		sig, err = base64.StdEncoding.DecodeString(enc)
	} else {
		sig, err = hex.DecodeString(enc)
	}
	if err != nil || len(sig) != c.size {
		return Result{}, reject(ReasonMalformedHeader, c.header, "want %d bytes in %s", c.size, c.encodingName())
	}
	i := c.macs.match([][]byte{sig}, c.tmpl.content(values, req.Body)...)
	if i < 0 {
		return Result{}, reject(ReasonBadSignature, c.header, "signature matches no secret")
	}
	return Result{SecretIndex: i, Timestamp: ts}, nil
}

// hashOf is the hash of the hmac scheme's algorithm; "" is sha256.
func hashOf(algorithm string) (func() hash.Hash, error) {
	switch algorithm {
	case AlgorithmSHA1:
		return sha1.New, nil
	case AlgorithmSHA256, "":
		return sha256.New, nil
	case AlgorithmSHA512:
		return sha512.New, nil
	}
	return nil, fmt.Errorf("unknown algorithm %q", algorithm)
}

func (c *hmacChecker) encodingName() string {
	if c.base64 {
		return EncodingBase64
	}
	return EncodingHex
}

// decodeSecret turns a generic HMAC secret into its key. Errors never
// include the secret.
func decodeSecret(s, encoding string) ([]byte, error) {
	var key []byte
	var err error
	switch encoding {
	case "", SecretEncodingRaw:
		return []byte(s), nil
	case EncodingBase64:
		key, err = base64.StdEncoding.DecodeString(s)
	case EncodingHex:
		key, err = hex.DecodeString(s)
	default:
		return nil, fmt.Errorf("unknown secret encoding %q", encoding)
	}
	if err != nil {
		return nil, fmt.Errorf("not valid %s", encoding)
	}
	if len(key) == 0 {
		return nil, errors.New("decodes to an empty key")
	}
	return key, nil
}

// The kinds of template part.
const (
	partLiteral = iota
	partBody
	partTimestamp
	partID
	numParts
)

// template is a parsed signed-content template: literal text and
// placeholders in order.
type template []templatePart

type templatePart struct {
	kind    int
	literal []byte
}

// parseTemplate splits a template into parts. A "{" must open one of the
// known placeholders: there is no escape, and an unknown placeholder is far
// more likely a typo than literal text.
func parseTemplate(s string) (template, error) {
	if s == "" {
		return nil, errors.New("must not be empty")
	}
	if len(s) > maxPathLen {
		return nil, fmt.Errorf("longer than %d bytes", maxPathLen)
	}
	var t template
	for s != "" {
		i := strings.IndexByte(s, '{')
		if i < 0 {
			t = append(t, templatePart{kind: partLiteral, literal: []byte(s)})
			break
		}
		if i > 0 {
			t = append(t, templatePart{kind: partLiteral, literal: []byte(s[:i])})
			s = s[i:]
		}
		var kind int
		switch {
		case strings.HasPrefix(s, PlaceholderBody):
			kind = partBody
		case strings.HasPrefix(s, PlaceholderTimestamp):
			kind = partTimestamp
		case strings.HasPrefix(s, PlaceholderID):
			kind = partID
		default:
			return nil, fmt.Errorf("unknown placeholder at %q; want %s, %s or %s",
				s[:min(len(s), 16)], PlaceholderBody, PlaceholderTimestamp, PlaceholderID)
		}
		if t.uses(kind) {
			return nil, fmt.Errorf("%s appears more than once", s[:strings.IndexByte(s, '}')+1])
		}
		t = append(t, templatePart{kind: kind})
		s = s[strings.IndexByte(s, '}')+1:]
	}
	if !t.uses(partBody) {
		return nil, fmt.Errorf("must contain %s: a signature that does not cover the body proves nothing about it", PlaceholderBody)
	}
	return t, nil
}

func (t template) uses(kind int) bool {
	for _, p := range t {
		if p.kind == kind {
			return true
		}
	}
	return false
}

// content returns the signed content as a list of byte slices, so the body is
// hashed in place rather than copied.
func (t template) content(values [numParts]string, body []byte) [][]byte {
	parts := make([][]byte, len(t))
	for i, p := range t {
		switch p.kind {
		case partLiteral:
			parts[i] = p.literal
		case partBody:
			parts[i] = body
		default:
			parts[i] = []byte(values[p.kind])
		}
	}
	return parts
}
