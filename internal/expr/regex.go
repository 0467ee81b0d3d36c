package expr

import (
	"fmt"
	"regexp"
	"regexp/syntax"
	"sync"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/interpreter"
)

// CEL's own matches runs one RE2 match to its end and charges for it afterwards, by the
// pattern's length rather than its compiled size, and CEL looks at the deadline only between
// comprehension iterations. A match takes time in proportion to the input's length times the
// compiled program's size, up to about 20 ns per byte and instruction: ten matches of a 183-
// instruction pattern over 250 KiB were charged 960,000 units together, under the limit, and ran
// for seconds. Herald
// replaces matches with one that knows each call's work before it starts: the pattern is compiled
// once (at plan time for a literal, through a small cache for a dynamic one), and a call is
// refused, or charged its work to the cost limit, before the match runs.

// overloadRegexWork is the cost-tracker entry a match's work is charged under; it is not a
// function an expression can call.
const overloadRegexWork = "herald_regex_work"

// The overloads of matches. They cannot keep CEL's ids: one of those is the function's name,
// which the dispatcher registers for the function itself.
const (
	overloadMatches       = "herald_matches_string_string"
	overloadMatchesMember = "herald_string_matches_string"
)

// regexCacheSize bounds the compiled dynamic patterns one program keeps.
const regexCacheSize = 16

// maxRegexEstimate is the upper estimate of a program's size beyond which a pattern is refused
// without being compiled: simplifying and compiling x{1,1000} repeated takes 100 ms and more.
const maxRegexEstimate = 16 * MaxRegexProgramSize

// regex is a compiled pattern and the size of its program.
type regex struct {
	re   *regexp.Regexp
	size int // instructions in the RE2 program
}

// compileRegex compiles pattern if it is at most MaxRegexPatternBytes long and its program has
// at most MaxRegexProgramSize instructions (regexp/syntax Parse, Simplify, Compile).
func compileRegex(pattern string) (*regex, error) {
	if len(pattern) > MaxRegexPatternBytes {
		return nil, fmt.Errorf("regex pattern is %d bytes long; at most %d are allowed", len(pattern), MaxRegexPatternBytes)
	}
	parsed, err := syntax.Parse(pattern, syntax.Perl)
	if err != nil {
		return nil, fmt.Errorf("invalid regex: %w", err)
	}
	if n := estimateProgram(parsed); n > maxRegexEstimate {
		return nil, fmt.Errorf("regex program size exceeds limit of %d instructions", MaxRegexProgramSize)
	}
	prog, err := syntax.Compile(parsed.Simplify())
	if err != nil {
		return nil, fmt.Errorf("invalid regex: %w", err)
	}
	if n := len(prog.Inst); n > MaxRegexProgramSize {
		return nil, fmt.Errorf("regex program size %d exceeds limit of %d instructions", n, MaxRegexProgramSize)
	}
	re, err := regexp.Compile(pattern)
	if err != nil {
		return nil, fmt.Errorf("invalid regex: %w", err)
	}
	return &regex{re: re, size: len(prog.Inst)}, nil
}

// estimateProgram is an upper estimate of the instructions syntax.Compile emits for re once
// simplified, in which counted repetitions are expanded; it saturates above maxRegexEstimate.
func estimateProgram(re *syntax.Regexp) int {
	const limit = maxRegexEstimate + 1
	n := 1
	switch re.Op {
	case syntax.OpLiteral:
		n = len(re.Rune)
	case syntax.OpCapture, syntax.OpStar, syntax.OpPlus, syntax.OpQuest:
		n = 2 + estimateProgram(re.Sub[0])
	case syntax.OpRepeat:
		copies := re.Max
		if copies < 0 {
			copies = re.Min + 1
		}
		n = min(copies*(estimateProgram(re.Sub[0])+1), limit)
	case syntax.OpConcat, syntax.OpAlternate:
		for _, sub := range re.Sub {
			n = min(n+estimateProgram(sub)+1, limit)
		}
	}
	return min(n+2, limit)
}

// matchWork is what matching s against r costs in units of the cost limit: one per byte and
// instruction, which takes between a nanosecond and about 20.
func matchWork(r *regex, s string) uint64 { return uint64(len(s)) * uint64(r.size) }

// checkMatch refuses a match whose input or work is over the limits, before it runs.
func checkMatch(r *regex, s string) error {
	if len(s) > MaxRegexInputBytes {
		return callLimitError(fmt.Sprintf("matches: the string is %d bytes long; at most %d are matched", len(s), MaxRegexInputBytes))
	}
	if w := matchWork(r, s); w > MaxRegexWork {
		return callLimitError(fmt.Sprintf("matches: a %d-byte string against a regex program of %d instructions is %d units of work; at most %d are allowed",
			len(s), r.size, w, MaxRegexWork))
	}
	return nil
}

// callLimitError is a call refused before it ran, for its input's size or its work; it is
// ErrCallLimit.
type callLimitError string

func (e callLimitError) Error() string        { return string(e) }
func (e callLimitError) Is(target error) bool { return target == ErrCallLimit }

// regexFunction declares matches (global and member) in place of CEL's. Its binding compiles
// the pattern on every call; programs replace it with a regexCall (see regexDecorator), so it
// runs only if a program is planned without that decorator.
func regexFunction() cel.EnvOption {
	bind := cel.BinaryBinding(func(s, pattern ref.Val) ref.Val {
		str, ok1 := s.(types.String)
		pat, ok2 := pattern.(types.String)
		if !ok1 || !ok2 {
			return types.NoSuchOverloadErr()
		}
		r, err := compileRegex(string(pat))
		if err != nil {
			return types.WrapErr(err)
		}
		if err := checkMatch(r, string(str)); err != nil {
			return types.WrapErr(err)
		}
		return types.Bool(r.re.MatchString(string(str)))
	})
	return cel.Function(overloads.Matches,
		cel.Overload(overloadMatches, []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, bind),
		cel.MemberOverload(overloadMatchesMember, []*cel.Type{cel.StringType, cel.StringType}, cel.BoolType, bind))
}

// regexValidator refuses at compile time a literal pattern that is invalid, too long or too
// large; a dynamic pattern gets the same checks each time it runs.
type regexValidator struct{}

func (regexValidator) Name() string { return "herald.expr.regex" }

func (regexValidator) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *ast.AST, iss *cel.Issues) {
	calls := ast.MatchDescendants(ast.NavigateAST(a), func(e ast.NavigableExpr) bool {
		return e.Kind() == ast.CallKind && e.AsCall().FunctionName() == overloads.Matches
	})
	for _, call := range calls {
		c := call.AsCall()
		args := c.Args()
		i := 1
		if c.IsMemberFunction() {
			i = 0
		}
		if len(args) <= i || args[i].Kind() != ast.LiteralKind {
			continue
		}
		pattern, ok := args[i].AsLiteral().(types.String)
		if !ok {
			continue
		}
		if _, err := compileRegex(string(pattern)); err != nil {
			iss.ReportErrorAtID(args[i].ID(), "%s", err.Error())
		}
	}
}

// regexDecorator replaces each planned matches call with a regexCall: a literal pattern is
// compiled here, once per program, and dynamic patterns share one bounded cache per program.
func regexDecorator() cel.ProgramOption {
	cache := &regexCache{items: make(map[string]regexCacheEntry)}
	return cel.CustomDecoratorV2(func(i interpreter.InterpretableV2) (interpreter.InterpretableV2, error) {
		call, ok := i.(interpreter.InterpretableCall)
		if !ok || call.Function() != overloads.Matches || len(call.Args()) != 2 {
			return i, nil
		}
		rc := &regexCall{InterpretableCall: call, cache: cache}
		if c, ok := call.Args()[1].(interpreter.InterpretableConst); ok {
			if pattern, ok := c.Value().(types.String); ok {
				r, err := compileRegex(string(pattern))
				if err != nil {
					return nil, err
				}
				rc.literal = r
			}
		}
		return rc, nil
	})
}

// regexCall is a planned matches call whose work is known, refused or charged before it runs.
type regexCall struct {
	interpreter.InterpretableCall
	literal *regex // the compiled pattern when it is a literal
	cache   *regexCache
}

// Exec implements interpreter.InterpretableV2.
func (c *regexCall) Exec(frame *interpreter.ExecutionFrame) ref.Val {
	args := c.Args()
	s := args[0].Exec(frame)
	if types.IsUnknownOrError(s) {
		return s
	}
	pattern := args[1].Exec(frame)
	if types.IsUnknownOrError(pattern) {
		return pattern
	}
	str, ok1 := s.(types.String)
	pat, ok2 := pattern.(types.String)
	if !ok1 || !ok2 {
		return types.NewErrWithNodeID(c.ID(), "no such overload: matches")
	}
	r := c.literal
	if r == nil {
		var err error
		if r, err = c.cache.get(string(pat)); err != nil {
			return types.WrapErr(err)
		}
	}
	if err := checkMatch(r, string(str)); err != nil {
		return types.WrapErr(err)
	}
	if costs := frame.CostTracker(); costs != nil {
		// Charged before the match, so that a call the remaining budget cannot pay for stops
		// the evaluation instead of running.
		costs.EvalUnary(frame, c.ID(), regexWorkCall{}, types.Int(matchWork(r, string(str))), nil)
	}
	return types.Bool(r.re.MatchString(string(str)))
}

// Eval implements interpreter.Interpretable.
func (c *regexCall) Eval(vars interpreter.Activation) ref.Val {
	return interpreter.EvalActivation(vars, c.Exec)
}

// regexWorkCall is the cost.Call a match's work is charged as.
type regexWorkCall struct{}

func (regexWorkCall) Function() string   { return overloads.Matches }
func (regexWorkCall) OverloadID() string { return overloadRegexWork }

// regexWorkTracker charges the work handed to it as the only argument.
func regexWorkTracker() cost.TrackerOption {
	return cost.OverloadTracker(overloadRegexWork, func(args []ref.Val, _ ref.Val) *uint64 {
		var c uint64 = 1
		if len(args) == 1 {
			if n, ok := args[0].(types.Int); ok && n > 0 {
				c = uint64(n)
			}
		}
		return &c
	})
}

// regexCache keeps a program's compiled dynamic patterns, and their errors, up to
// regexCacheSize; when full it starts over, which is enough for the few patterns an event's
// fields hold.
type regexCache struct {
	mu    sync.Mutex
	items map[string]regexCacheEntry
}

type regexCacheEntry struct {
	r   *regex
	err error
}

func (c *regexCache) get(pattern string) (*regex, error) {
	if len(pattern) > MaxRegexPatternBytes {
		return compileRegex(pattern) // refused at once; not kept, as it may be large
	}
	c.mu.Lock()
	e, ok := c.items[pattern]
	c.mu.Unlock()
	if ok {
		return e.r, e.err
	}
	r, err := compileRegex(pattern)
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.items) >= regexCacheSize {
		clear(c.items)
	}
	c.items[pattern] = regexCacheEntry{r: r, err: err}
	return r, err
}
