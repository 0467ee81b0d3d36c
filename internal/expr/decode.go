package expr

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
)

// maxDecodeDepth bounds the nesting of the JSON an Input decodes (the API already refuses
// deeper documents; this keeps the recursion bounded whatever the caller).
const maxDecodeDepth = 128

// decoder turns JSON straight into CEL values in one pass: decoding into Go values first and
// converting them after costs twice the allocations, and this runs once per published event for
// endpoints with filters.
type decoder struct {
	b []byte
	// text is b as one string: strings without escapes (nearly all, keys included) are slices of
	// it, so that the envelope's text is copied once rather than once per string.
	text string
	pos  int
}

func newDecoder(b []byte) *decoder { return &decoder{b: b, text: string(b)} }

var errSyntax = errors.New("invalid JSON")

func (d *decoder) skipSpace() {
	for d.pos < len(d.b) {
		switch d.b[d.pos] {
		case ' ', '\t', '\n', '\r':
			d.pos++
		default:
			return
		}
	}
}

func (d *decoder) value(depth int) (ref.Val, error) {
	if depth > maxDecodeDepth {
		return nil, fmt.Errorf("JSON nested deeper than %d levels", maxDecodeDepth)
	}
	d.skipSpace()
	if d.pos >= len(d.b) {
		return nil, errSyntax
	}
	switch c := d.b[d.pos]; {
	case c == '{':
		m, err := d.object(depth)
		if err != nil {
			return nil, err
		}
		return types.NewMap(types.DefaultTypeAdapter, m), nil
	case c == '[':
		return d.array(depth)
	case c == '"':
		s, err := d.str()
		if err != nil {
			return nil, err
		}
		return types.String(s), nil
	case c == 't':
		return d.literal("true", types.True)
	case c == 'f':
		return d.literal("false", types.False)
	case c == 'n':
		return d.literal("null", types.NullValue)
	case c == '-' || (c >= '0' && c <= '9'):
		return d.number()
	}
	return nil, errSyntax
}

func (d *decoder) literal(word string, v ref.Val) (ref.Val, error) {
	if len(d.b)-d.pos < len(word) || string(d.b[d.pos:d.pos+len(word)]) != word {
		return nil, errSyntax
	}
	d.pos += len(word)
	return v, nil
}

func (d *decoder) object(depth int) (map[string]ref.Val, error) {
	d.pos++ // {
	m := map[string]ref.Val{}
	d.skipSpace()
	if d.pos < len(d.b) && d.b[d.pos] == '}' {
		d.pos++
		return m, nil
	}
	for {
		d.skipSpace()
		if d.pos >= len(d.b) || d.b[d.pos] != '"' {
			return nil, errSyntax
		}
		k, err := d.str()
		if err != nil {
			return nil, err
		}
		d.skipSpace()
		if d.pos >= len(d.b) || d.b[d.pos] != ':' {
			return nil, errSyntax
		}
		d.pos++
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		m[k] = v // the last of duplicate keys wins, as in encoding/json
		d.skipSpace()
		if d.pos >= len(d.b) {
			return nil, errSyntax
		}
		switch d.b[d.pos] {
		case ',':
			d.pos++
		case '}':
			d.pos++
			return m, nil
		default:
			return nil, errSyntax
		}
	}
}

func (d *decoder) array(depth int) (ref.Val, error) {
	d.pos++ // [
	var l []ref.Val
	d.skipSpace()
	if d.pos < len(d.b) && d.b[d.pos] == ']' {
		d.pos++
		return types.NewRefValList(types.DefaultTypeAdapter, []ref.Val{}), nil
	}
	for {
		v, err := d.value(depth + 1)
		if err != nil {
			return nil, err
		}
		l = append(l, v)
		d.skipSpace()
		if d.pos >= len(d.b) {
			return nil, errSyntax
		}
		switch d.b[d.pos] {
		case ',':
			d.pos++
		case ']':
			d.pos++
			return types.NewRefValList(types.DefaultTypeAdapter, l), nil
		default:
			return nil, errSyntax
		}
	}
}

// str reads a string; one without escapes (nearly all) is sliced, others go through
// encoding/json, which knows every escape and surrogate rule.
func (d *decoder) str() (string, error) {
	start := d.pos
	d.pos++ // "
	plain := true
	for d.pos < len(d.b) {
		c := d.b[d.pos]
		switch {
		case c == '"':
			d.pos++
			if plain {
				s := d.text[start+1 : d.pos-1]
				if !utf8.ValidString(s) {
					return string([]rune(s)), nil // invalid bytes become U+FFFD, as encoding/json does
				}
				return s, nil
			}
			var s string
			if err := json.Unmarshal(d.b[start:d.pos], &s); err != nil {
				return "", errSyntax
			}
			return s, nil
		case c == '\\':
			plain = false
			d.pos += 2
			continue
		case c < 0x20:
			return "", errSyntax
		}
		d.pos++
	}
	return "", errSyntax
}

// number reads a JSON number (-?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?): integral values
// that fit an int64 are ints (also 1e3 and 1200.0, so that they equal int literals), others
// doubles.
func (d *decoder) number() (ref.Val, error) {
	start := d.pos
	digits := func() int {
		n := 0
		for d.pos < len(d.b) && d.b[d.pos] >= '0' && d.b[d.pos] <= '9' {
			d.pos++
			n++
		}
		return n
	}
	if d.b[d.pos] == '-' {
		d.pos++
	}
	lead := d.pos
	if n := digits(); n == 0 || (n > 1 && d.b[lead] == '0') {
		return nil, errSyntax
	}
	integer := true
	if d.pos < len(d.b) && d.b[d.pos] == '.' {
		d.pos++
		integer = false
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	if d.pos < len(d.b) && (d.b[d.pos] == 'e' || d.b[d.pos] == 'E') {
		d.pos++
		integer = false
		if d.pos < len(d.b) && (d.b[d.pos] == '+' || d.b[d.pos] == '-') {
			d.pos++
		}
		if digits() == 0 {
			return nil, errSyntax
		}
	}
	text := d.text[start:d.pos]
	if integer {
		if i, err := strconv.ParseInt(text, 10, 64); err == nil {
			return types.Int(i), nil
		}
	}
	f, err := strconv.ParseFloat(text, 64)
	if err != nil && !errors.Is(err, strconv.ErrRange) {
		return nil, errSyntax
	}
	if f == math.Trunc(f) && f >= -(1<<63) && f < 1<<63 {
		return types.Int(int64(f)), nil
	}
	return types.Double(f), nil
}
