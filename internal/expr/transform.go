package expr

import (
	"context"
	"fmt"
)

// Transform is a compiled transformation: immutable and safe for concurrent use.
type Transform struct {
	src string
	prg program
}

// CompileTransform parses and type-checks a transformation; its error is an *Error as for
// CompileFilter.
func CompileTransform(src string) (*Transform, error) {
	_, prg, err := compile(src, CostLimit)
	if err != nil {
		return nil, err
	}
	return &Transform{src: src, prg: prg}, nil
}

// Apply evaluates the transformation for in and returns its value as compact JSON, the body to
// send. Every failure, a limit included, is an *Error.
func (t *Transform) Apply(ctx context.Context, in *Input) (body []byte, err error) {
	// CEL recovers from panics during evaluation; this covers the encoder, so that no value an
	// expression can produce takes the dispatcher down.
	defer func() {
		if r := recover(); r != nil {
			body, err = nil, &Error{Message: fmt.Sprintf("transformation failed: %v", r)}
		}
	}()
	out, err := eval(ctx, t.prg, in, TransformTimeout)
	if err != nil {
		return nil, err
	}
	return encodeJSON(out)
}

// String returns the transformation's source.
func (t *Transform) String() string { return t.src }
