package expr

import (
	"encoding/base64"
	"fmt"
	"math"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"

	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
)

// encodeJSON writes v as compact JSON without HTML escaping. It is written against CEL values
// rather than through ConvertToNative and encoding/json so that it can stop at MaxOutputBytes
// instead of first building the whole native value, and so that every value it cannot represent
// is an error with a path, never a panic.
func encodeJSON(v ref.Val) ([]byte, error) {
	e := jsonEncoder{buf: make([]byte, 0, 1024)}
	if err := e.value(v); err != nil {
		return nil, err
	}
	// value checks before each element; the last one may have crossed the limit.
	if len(e.buf) > MaxOutputBytes {
		return nil, errOutputTooLarge()
	}
	return e.buf, nil
}

type jsonEncoder struct {
	buf []byte
	// path is where the encoder is, kept as segments and only formatted for an error message.
	path []pathSegment
}

type pathSegment struct {
	key   string
	index int // when key is ""
}

func (e *jsonEncoder) pathString() string {
	b := []byte{'$'}
	for _, s := range e.path {
		if s.key == "" {
			b = append(b, '[')
			b = strconv.AppendInt(b, int64(s.index), 10)
			b = append(b, ']')
		} else {
			b = append(b, '.')
			b = append(b, s.key...)
		}
	}
	return string(b)
}

func (e *jsonEncoder) unrepresentable(what string) *Error {
	return &Error{Message: fmt.Sprintf("transformation output at %s is %s, which JSON cannot represent", e.pathString(), what)}
}

func errOutputTooLarge() *Error {
	return &Error{Message: fmt.Sprintf("transformation output exceeds %d bytes", MaxOutputBytes), err: ErrOutputTooLarge}
}

func (e *jsonEncoder) value(v ref.Val) *Error {
	if len(e.buf) > MaxOutputBytes {
		return errOutputTooLarge()
	}
	switch v := v.(type) {
	case types.Null:
		e.buf = append(e.buf, "null"...)
	case types.Bool:
		e.buf = strconv.AppendBool(e.buf, bool(v))
	case types.Int:
		e.buf = strconv.AppendInt(e.buf, int64(v), 10)
	case types.Uint:
		e.buf = strconv.AppendUint(e.buf, uint64(v), 10)
	case types.Double:
		f := float64(v)
		if math.IsNaN(f) || math.IsInf(f, 0) {
			return e.unrepresentable(strconv.FormatFloat(f, 'g', -1, 64))
		}
		e.buf = appendFloat(e.buf, f)
	case types.String:
		e.buf = appendString(e.buf, string(v))
	case types.Bytes:
		e.buf = append(e.buf, '"')
		e.buf = base64.StdEncoding.AppendEncode(e.buf, []byte(v))
		e.buf = append(e.buf, '"')
	case types.Timestamp:
		e.buf = appendString(e.buf, v.UTC().Format(time.RFC3339Nano))
	case types.Duration:
		e.buf = appendString(e.buf, strconv.FormatFloat(v.Seconds(), 'f', -1, 64)+"s")
	case *types.Err:
		return &Error{Message: "evaluation failed: " + v.Error(), err: v}
	case traits.Lister:
		return e.list(v)
	case traits.Mapper:
		if m, ok := v.Value().(map[string]ref.Val); ok {
			return e.stringMap(m)
		}
		return e.object(v)
	default:
		return e.unrepresentable("a " + v.Type().TypeName())
	}
	return nil
}

func (e *jsonEncoder) list(l traits.Lister) *Error {
	e.buf = append(e.buf, '[')
	e.path = append(e.path, pathSegment{})
	elems, direct := l.Value().([]ref.Val)
	n, _ := l.Size().(types.Int)
	for i := range int(n) {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.path[len(e.path)-1].index = i
		var el ref.Val
		if direct {
			el = elems[i]
		} else {
			el = l.Get(types.Int(i))
		}
		if err := e.value(el); err != nil {
			return err
		}
	}
	e.path = e.path[:len(e.path)-1]
	e.buf = append(e.buf, ']')
	return nil
}

// stringMap writes the maps that NewInput and the reshape functions build, without the
// allocations of CEL's generic iterator.
func (e *jsonEncoder) stringMap(m map[string]ref.Val) *Error {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return e.entries(keys, func(k string) ref.Val { return m[k] })
}

// object writes any other map, converting int and uint keys to strings as encoding/json does.
func (e *jsonEncoder) object(m traits.Mapper) *Error {
	vals := make(map[string]ref.Val, size(m))
	it := m.Iterator()
	for it.HasNext() == types.True {
		k := it.Next()
		var key string
		switch k := k.(type) {
		case types.String:
			key = string(k)
		case types.Int:
			key = strconv.FormatInt(int64(k), 10)
		case types.Uint:
			key = strconv.FormatUint(uint64(k), 10)
		default:
			return &Error{Message: fmt.Sprintf("transformation output at %s has a %s key, but JSON keys are strings", e.pathString(), k.Type().TypeName())}
		}
		vals[key] = m.Get(k)
	}
	return e.stringMap(vals)
}

// entries writes an object with keys in the given (sorted) order, so that the same value always
// gives the same body.
func (e *jsonEncoder) entries(keys []string, get func(string) ref.Val) *Error {
	e.buf = append(e.buf, '{')
	e.path = append(e.path, pathSegment{})
	for i, k := range keys {
		if i > 0 {
			e.buf = append(e.buf, ',')
		}
		e.buf = appendString(e.buf, k)
		e.buf = append(e.buf, ':')
		e.path[len(e.path)-1].key = k
		if err := e.value(get(k)); err != nil {
			return err
		}
	}
	e.path = e.path[:len(e.path)-1]
	e.buf = append(e.buf, '}')
	return nil
}

// appendFloat formats like encoding/json: the shortest representation, with an exponent only
// for very small or very large magnitudes.
func appendFloat(b []byte, f float64) []byte {
	abs := math.Abs(f)
	format := byte('f')
	if abs != 0 && (abs < 1e-6 || abs >= 1e21) {
		format = 'e'
	}
	b = strconv.AppendFloat(b, f, format, -1, 64)
	if format == 'e' {
		// clean up e-09 to e-9
		n := len(b)
		if n >= 4 && b[n-4] == 'e' && b[n-3] == '-' && b[n-2] == '0' {
			b[n-2] = b[n-1]
			b = b[:n-1]
		}
	}
	return b
}

const hexDigits = "0123456789abcdef"

// appendString quotes s as encoding/json does with HTML escaping off: control characters,
// quotes, backslashes and U+2028/U+2029 are escaped, invalid UTF-8 becomes U+FFFD.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		if c := s[i]; c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			start = i
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += n
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
			i += n
			start = i
			continue
		}
		i += n
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}
