package expr

import (
	"errors"
	"fmt"

	"cel.dev/cel-go/common/types"
)

// Input is one event's envelope as expressions see it, decoded once and shared by every filter
// and transformation evaluated for that event (safe for concurrent reads).
type Input struct {
	// vars is the activation handed to CEL as is: converting the envelope to CEL values once
	// here means an evaluation allocates nothing to read it.
	vars map[string]any
}

// NewInput decodes an envelope, which must be a JSON object. Integral numbers that fit an int64
// become CEL ints, all other numbers doubles.
func NewInput(payload []byte) (*Input, error) {
	d := newDecoder(payload)
	d.skipSpace()
	if d.pos >= len(d.b) || d.b[d.pos] != '{' {
		return nil, errors.New("expr: decode envelope: not a JSON object")
	}
	event, err := d.object(0)
	if err != nil {
		return nil, fmt.Errorf("expr: decode envelope: %w", err)
	}
	d.skipSpace()
	if d.pos != len(d.b) {
		return nil, errors.New("expr: decode envelope: trailing data after the JSON object")
	}
	vars := make(map[string]any, len(variables)+1)
	vars["event"] = types.NewMap(types.DefaultTypeAdapter, event)
	for _, name := range variables {
		if v, ok := event[name]; ok {
			vars[name] = v
		} else {
			vars[name] = types.NullValue
		}
	}
	return &Input{vars: vars}, nil
}
