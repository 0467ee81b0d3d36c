package expr

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"cel.dev/cel-go/cel"
	celast "cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// program is a planned expression.
type program struct {
	prg cel.Program
	// loops is whether the expression has a comprehension. Only comprehensions can run for long
	// on a small input (every other node runs once, and the cost limit bounds what each one does),
	// and only they check for a deadline, so the others skip the timer, which would otherwise be
	// a third of a filter's run time.
	loops bool
	// costLimit is the cost limit the program runs under.
	costLimit uint64
}

// compile parses and checks src and plans it for evaluation under the package's limits, with
// costLimit as its cost limit.
func compile(src string, costLimit uint64) (*cel.Ast, program, error) {
	if strings.TrimSpace(src) == "" {
		return nil, program{}, &Error{Message: "expression is empty"}
	}
	if len(src) > MaxSourceBytes {
		return nil, program{}, &Error{Message: fmt.Sprintf("expression is %d bytes long; at most %d are allowed", len(src), MaxSourceBytes)}
	}
	e, err := env()
	if err != nil {
		return nil, program{}, fmt.Errorf("expr: build CEL environment: %w", err)
	}
	ast, iss := e.Compile(src)
	if iss.Err() != nil {
		return nil, program{}, &Error{Message: issuesMessage(iss), err: iss.Err()}
	}
	prg, err := e.Program(ast, programOptions(costLimit)...)
	if err != nil {
		return nil, program{}, &Error{Message: "invalid expression: " + err.Error(), err: err}
	}
	loops := len(celast.MatchDescendants(celast.NavigateAST(ast.NativeRep()), celast.KindMatcher(celast.ComprehensionKind))) > 0
	return ast, program{prg: prg, loops: loops, costLimit: costLimit}, nil
}

// issuesMessage renders CEL's compile errors as "line:column: message", one per line, without
// CEL's "<input>" file name and source excerpt, which mean nothing in an API error.
func issuesMessage(iss *cel.Issues) string {
	var b strings.Builder
	for i, e := range iss.Errors() {
		if i > 0 {
			b.WriteString("\n")
		}
		// CEL columns are zero-based; editors count from one. Some errors, such as the parser's
		// depth limit, have no location.
		if e.Location != nil && e.Location.Line() > 0 {
			fmt.Fprintf(&b, "%d:%d: ", e.Location.Line(), e.Location.Column()+1)
		}
		b.WriteString(e.Message)
	}
	if b.Len() == 0 {
		return iss.Err().Error()
	}
	return b.String()
}

// eval runs p over in under a deadline of at most timeout.
func eval(ctx context.Context, p program, in *Input, timeout time.Duration) (ref.Val, error) {
	if !p.loops {
		if err := ctx.Err(); err != nil {
			return nil, evalError(ctx, err, p.costLimit, timeout)
		}
		out, _, err := p.prg.Eval(in.vars)
		if err != nil {
			return nil, evalError(ctx, err, p.costLimit, timeout)
		}
		return out, nil
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	out, _, err := p.prg.ContextEval(ctx, in.vars)
	if err != nil {
		return nil, evalError(ctx, err, p.costLimit, timeout)
	}
	return out, nil
}

// evalError turns CEL's evaluation error into an *Error that names the limit that was hit.
func evalError(ctx context.Context, err error, costLimit uint64, timeout time.Duration) *Error {
	var cancelled interpreter.EvalCancelledError
	switch {
	case errors.As(err, &cancelled) && cancelled.Cause == interpreter.CostLimitExceeded:
		return &Error{Message: fmt.Sprintf("evaluation exceeded the cost limit of %d", costLimit), err: ErrCostLimit}
	case errors.Is(err, context.DeadlineExceeded) || (errors.Is(err, interpreter.InterruptError{}) && errors.Is(ctx.Err(), context.DeadlineExceeded)):
		return &Error{Message: fmt.Sprintf("evaluation exceeded the time limit of %s", timeout), err: ErrTimeLimit}
	case errors.Is(err, context.Canceled):
		return &Error{Message: "evaluation canceled", err: err}
	default:
		return &Error{Message: "evaluation failed: " + err.Error(), err: err}
	}
}
