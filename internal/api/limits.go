package api

import (
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
)

const (
	// DefaultMaxJSONDepth bounds how deeply a request body may nest arrays and objects. No request
	// of this API needs more than a few levels besides an event's data, and 64 leaves that plenty;
	// deeper documents only make decoding and validation recurse.
	DefaultMaxJSONDepth = 64
	// maxErrorValueBytes bounds the offending value a problem echoes back. The decoder echoes the
	// whole body of a request it cannot parse; without a bound, a 32 MiB body of control characters
	// would be answered with about 190 MiB of escapes.
	maxErrorValueBytes = 256
)

// depthError is the answer to a body nested too deeply. Huma answers a body it cannot decode with
// 400 and this message at location "body".
type depthError struct{ max int }

func (e *depthError) Error() string {
	return fmt.Sprintf("JSON nesting is deeper than %d levels", e.max)
}

// jsonFormat is huma's JSON format with a nesting limit checked before decoding.
func jsonFormat(maxDepth int) huma.Format {
	return huma.Format{
		Marshal: huma.DefaultJSONFormat.Marshal,
		Unmarshal: func(data []byte, v any) error {
			if tooDeep(data, maxDepth) {
				return &depthError{max: maxDepth}
			}
			return json.Unmarshal(data, v)
		},
	}
}

// tooDeep reports whether b nests arrays and objects more than max levels deep. It does not
// validate (the decoder does that after it); it only has to be right for valid JSON, and it is one
// linear pass with no allocation, so it costs far less than the decode it protects.
func tooDeep(b []byte, max int) bool {
	depth := 0
	for i := 0; i < len(b); i++ {
		switch b[i] {
		case '"':
			// Skip the string: brackets inside it do not count.
			for i++; i < len(b) && b[i] != '"'; i++ {
				if b[i] == '\\' {
					i++
				}
			}
		case '{', '[':
			depth++
			if depth > max {
				return true
			}
		case '}', ']':
			depth--
		}
	}
	return false
}

// boundErrorValues is a huma transformer that shortens the values problems echo back, so an error
// answer is never much larger than its message.
func boundErrorValues(ctx huma.Context, _ string, v any) (any, error) {
	em, ok := v.(*huma.ErrorModel)
	if !ok {
		return v, nil
	}
	// Bodies that carry secrets (metaSecretBody) are never echoed in their problems. Nor does any
	// problem quote a whole body back (what the JSON parser does with one it cannot read).
	secretBody := false
	if ctx != nil {
		if op := ctx.Operation(); op != nil {
			secretBody = op.Metadata[metaSecretBody] == true
		}
	}
	for _, d := range em.Errors {
		if d == nil {
			continue
		}
		if secretBody || d.Location == "body" {
			d.Value = nil
			continue
		}
		switch val := d.Value.(type) {
		case nil, bool, float64, int, int64:
		case string:
			if len(val) > maxErrorValueBytes {
				cut := maxErrorValueBytes
				for cut > 0 && !utf8.RuneStart(val[cut]) {
					cut--
				}
				d.Value = val[:cut] + "…"
			}
		default:
			// A decoded array or object: keep it only while it is small.
			if b, err := json.Marshal(val); err != nil || len(b) > maxErrorValueBytes {
				d.Value = nil
			}
		}
	}
	return em, nil
}
