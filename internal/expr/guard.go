package expr

import (
	"fmt"
	"strings"
	"unicode/utf8"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/functions"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/common/types/traits"
	"cel.dev/cel-go/interpreter"
)

// A few functions do far more work than CEL charges before they return: sort compares
// n·log n elements at a few hundred nanoseconds each (60,000 numbers, which fit in one event,
// took half a second) and split("") of a 250 KiB string builds a quarter of a million strings.
// CEL charges them only afterwards, so each call is checked before it runs, on its evaluated
// arguments, and refused above a size.

// callGuard returns the check run before a call of the named function, or nil.
func callGuard(function string) func(args []ref.Val) error {
	switch function {
	case "sort", "@sortByAssociatedKeys": // sortBy expands to the latter
		return guardSort
	case "split":
		return guardSplit
	}
	return nil
}

func guardSort(args []ref.Val) error {
	if n := size(args[0]); n > MaxSortElements {
		return callLimitError(fmt.Sprintf("sort: the list has %d elements; at most %d are sorted", n, MaxSortElements))
	}
	return nil
}

func guardSplit(args []ref.Val) error {
	s, ok1 := args[0].(types.String)
	sep, ok2 := args[1].(types.String)
	if !ok1 || !ok2 {
		return nil // the function reports the mismatch
	}
	var pieces int64
	if sep == "" {
		pieces = int64(utf8.RuneCountInString(string(s)))
	} else {
		pieces = int64(strings.Count(string(s), string(sep))) + 1
	}
	if len(args) == 3 {
		if n, ok := args[2].(types.Int); ok && n >= 0 {
			pieces = min(pieces, int64(n))
		}
	}
	if pieces > MaxListElements {
		return callLimitError(fmt.Sprintf("split: the result would have %d elements; at most %d are allowed", pieces, MaxListElements))
	}
	return nil
}

// guardDecorator replaces each planned call of a guarded function with a guardedCall that runs
// the function's implementation, as the environment binds it, after the guard.
func guardDecorator() cel.ProgramOption {
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok {
			return i, nil
		}
		guard := callGuard(call.Function())
		if guard == nil {
			return i, nil
		}
		impl, err := functionBinding(call.Function())
		if err != nil {
			return nil, err
		}
		return &guardedCall{InterpretableCall: call, guard: guard, impl: impl}, nil
	})
}

// functionBinding returns the environment's binding of the named function that dispatches over
// all of its overloads.
func functionBinding(name string) (*functions.Overload, error) {
	e, err := env()
	if err != nil {
		return nil, err
	}
	decl, ok := e.Functions()[name]
	if !ok {
		return nil, fmt.Errorf("expr: function %s is not declared", name)
	}
	bindings, err := decl.Bindings()
	if err != nil {
		return nil, fmt.Errorf("expr: bind %s: %w", name, err)
	}
	for _, b := range bindings {
		if b.Operator == name {
			return b, nil
		}
	}
	return nil, fmt.Errorf("expr: function %s has no binding", name)
}

// guardedCall runs a guard on a call's arguments before the call.
type guardedCall struct {
	interpreter.InterpretableCall
	guard func(args []ref.Val) error
	impl  *functions.Overload
}

// Exec implements interpreter.InterpretableV2.
func (c *guardedCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	argExprs := c.Args()
	args := make([]ref.Val, len(argExprs))
	for i, a := range argExprs {
		v := a.Exec(frame)
		if types.IsUnknownOrError(v) {
			return v
		}
		args[i] = v
	}
	if err := c.guard(args); err != nil {
		return types.WrapErr(err)
	}
	var res ref.Val
	switch {
	case c.impl.OperandTrait != 0 && !args[0].Type().HasTrait(c.impl.OperandTrait):
		res = types.NewErrWithNodeID(c.ID(), "no such overload: %s", c.Function())
	case len(args) == 1 && c.impl.Unary != nil:
		res = c.impl.Unary(args[0])
	case len(args) == 2 && c.impl.Binary != nil:
		res = c.impl.Binary(args[0], args[1])
	case c.impl.Function != nil:
		res = c.impl.Function(args...)
	case args[0].Type().HasTrait(traits.ReceiverType):
		res = args[0].(traits.Receiver).Receive(c.Function(), c.OverloadID(), args[1:])
	default:
		res = types.NewErrWithNodeID(c.ID(), "no such overload: %s", c.Function())
	}
	if costs := frame.CostTracker(); costs != nil {
		costs.EvalVarArgs(frame, c.ID(), c, args, res)
	}
	return res
}

// Eval implements interpreter.Interpretable.
func (c *guardedCall) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, c.Exec)
}
