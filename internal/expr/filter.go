package expr

import (
	"context"
	"fmt"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/types"
)

// Filter is a compiled filter: immutable and safe for concurrent use.
type Filter struct {
	src string
	prg program
}

// CompileFilter parses and type-checks a filter. Its error is an *Error whose Message says what
// is wrong and where (line:column), fit for a 422 at body.filter. A filter whose type is known
// not to be bool is refused; one of type dyn is accepted and must yield a bool when it runs.
func CompileFilter(src string) (*Filter, error) {
	ast, prg, err := compile(src, FilterCostLimit)
	if err != nil {
		return nil, err
	}
	if t := ast.OutputType(); !t.IsExactType(cel.BoolType) && !t.IsExactType(cel.DynType) {
		return nil, &Error{Message: fmt.Sprintf("a filter must be a boolean expression, this one is of type %s", t)}
	}
	return &Filter{src: src, prg: prg}, nil
}

// Match evaluates the filter for in. A runtime error (a missing key, a limit, a non-bool value)
// returns false and the error: callers treat it as no match.
func (f *Filter) Match(ctx context.Context, in *Input) (bool, error) {
	out, err := eval(ctx, f.prg, in, FilterTimeout)
	if err != nil {
		return false, err
	}
	b, ok := out.(types.Bool)
	if !ok {
		return false, &Error{Message: fmt.Sprintf("filter yielded a %s, not a bool", out.Type().TypeName())}
	}
	return bool(b), nil
}

// String returns the filter's source.
func (f *Filter) String() string { return f.src }
