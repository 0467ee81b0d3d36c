package expr

import (
	"fmt"
	"sync"
	"time"

	"cel.dev/cel-go/cel"
	"cel.dev/cel-go/common/ast"
	"cel.dev/cel-go/common/cost"
	celenv "cel.dev/cel-go/common/env"
	"cel.dev/cel-go/common/overloads"
	"cel.dev/cel-go/common/types/ref"
	"cel.dev/cel-go/ext"
)

// Limits on what an expression may be and may do; the package doc explains each.
const (
	MaxSourceBytes          = 4096
	MaxParseDepth           = 32
	MaxComprehensionNesting = 3
	// CostLimit bounds a transformation's evaluation, FilterCostLimit a filter's: a filter's
	// time budget is a tenth of a transformation's, and filters run on the publish path.
	CostLimit        = 1_000_000
	FilterCostLimit  = 250_000
	FilterTimeout    = 5 * time.Millisecond
	TransformTimeout = 50 * time.Millisecond
	MaxOutputBytes   = 1 << 20
	// MaxRegexProgramSize bounds a regular expression's compiled RE2 program, in instructions:
	// matching is linear in the input times the program, and a call runs to its end.
	MaxRegexProgramSize = 256
	// MaxRegexPatternBytes bounds a pattern's length, so that compiling one, at save for a
	// literal or at run time for a dynamic pattern, is cheap.
	MaxRegexPatternBytes = 1024
	// MaxRegexInputBytes bounds the string one match reads.
	MaxRegexInputBytes = 64 << 10
	// MaxRegexWork bounds one match's work, the string's length in bytes times the program's
	// instructions (each unit takes 1 to 20 ns): 64 KiB for a 4-instruction pattern, 1 KiB for
	// the largest. Every match is also charged its work against the cost limit before it runs.
	MaxRegexWork = 1 << 18
	// InterruptCheckFrequency is how many comprehension iterations run between deadline checks.
	InterruptCheckFrequency = 100
	// MaxListElements bounds the lists lists.range and split build, checked before they run.
	MaxListElements = 10_000
	// MaxSortElements bounds the lists sort and sortBy sort, checked before they run: CEL's
	// sort compares at a few hundred nanoseconds each.
	MaxSortElements = 1000
)

// variables are the names an expression sees besides event: the envelope's top-level fields.
var variables = [...]string{"id", "type", "timestamp", "data", "source", "resource", "inbound"}

// env returns the one CEL environment every expression compiles in. It is built on first use and
// never modified after: cel.Env is safe for concurrent Compile and Program calls, and building it
// takes far longer than compiling a filter, so building it per compile would dominate.
var env = sync.OnceValues(newEnv)

func newEnv() (*cel.Env, error) {
	opts := []cel.EnvOption{
		// The standard library without its matches, which regexFunction replaces.
		cel.StdLib(cel.StdLibSubset(celenv.NewLibrarySubset().AddExcludedFunctions(&celenv.Function{Name: overloads.Matches}))),
		cel.Variable("event", cel.MapType(cel.StringType, cel.DynType)),
		cel.CrossTypeNumericComparisons(true),
		cel.DefaultUTCTimeZone(true),
		cel.OptionalTypes(),
		ext.Strings(),
		linearStringSearch(),
		ext.Math(),
		ext.Lists(ext.ListsMaxRangeSize(MaxListElements)),
		ext.TwoVarComprehensions(),
		// Version 0: base64 only. json.encode materializes a value of any size before it is
		// charged, so it is left out along with the parsers.
		ext.Encoders(ext.EncodersVersion(0)),
		cel.ParserExpressionSizeLimit(MaxSourceBytes),
		cel.ParserRecursionLimit(MaxParseDepth),
		regexFunction(),
		cel.ASTValidators(cel.ValidateComprehensionNestingLimit(MaxComprehensionNesting), amplifierValidator{}, regexValidator{}),
		reshapeFunctions(),
	}
	for _, name := range variables {
		opts = append(opts, cel.Variable(name, cel.DynType))
	}
	e, err := cel.NewCustomEnv(opts...)
	if err != nil {
		return nil, err
	}
	// cel-go v0.33.2 loads the checker's symbol catalog lazily, on the first undeclared
	// reference, and that write races with concurrent compiles that copy the checker's scope.
	// Loading it here, before the environment is shared, removes the race.
	_, _ = e.Compile("herald_warmup.undeclared()")
	return e, nil
}

// programOptions are the evaluation limits of a program: costLimit is CostLimit or
// FilterCostLimit.
func programOptions(costLimit uint64) []cel.ProgramOption {
	trackers := append(reshapeCostTrackers(), cost.OverloadTracker(overloads.AddList, chargeConcat), regexWorkTracker())
	trackers = append(trackers, searchCostTrackers()...)
	return []cel.ProgramOption{
		cel.CostLimit(costLimit),
		cel.CostTrackerOptions(trackers...),
		cel.InterruptCheckFrequency(InterruptCheckFrequency),
		regexDecorator(),
		guardDecorator(),
	}
}

// chargeConcat charges list concatenation for the smaller operand. CEL concatenates lists lazily
// at a constant cost, so x + x nested a few times would describe billions of elements for almost
// nothing, and the first function to walk them would run unbounded. Charging the smaller side
// keeps every list's length below what was paid for (a result outgrows its larger operand by
// exactly the charge) while a comprehension appending one element at a time stays linear.
func chargeConcat(args []ref.Val, _ ref.Val) *uint64 {
	c := uint64(1)
	if len(args) == 2 {
		c += min(size(args[0]), size(args[1]))
	}
	return &c
}

// amplifiers are functions whose result can be far larger than what CEL charged to build their
// arguments, because the arguments may hold many references to one large value: a list of ten
// thousand references to one long string costs ten thousand, joining it costs gigabytes. CEL
// charges a call only after it returns, so the cost limit cannot stop them; they are refused at
// compile time instead, as is distinct, whose time grows with the square of its list's length
// (a list of 60,000 numbers fits in one event).
var amplifiers = map[string]string{
	"join":     "concatenate strings with +",
	"replace":  "",
	"format":   "concatenate strings with +",
	"flatten":  "",
	"distinct": "",
}

// amplifierValidator refuses calls to the amplifiers.
type amplifierValidator struct{}

func (amplifierValidator) Name() string { return "herald.expr.amplifiers" }

func (amplifierValidator) Validate(_ *cel.Env, _ cel.ValidatorConfig, a *ast.AST, iss *cel.Issues) {
	root := ast.NavigateAST(a)
	calls := ast.MatchDescendants(root, func(e ast.NavigableExpr) bool {
		if e.Kind() != ast.CallKind {
			return false
		}
		_, denied := amplifiers[e.AsCall().FunctionName()]
		return denied
	})
	for _, call := range calls {
		name := call.AsCall().FunctionName()
		msg := fmt.Sprintf("function %s is not available: its work is not bounded by the cost limit", name)
		if hint := amplifiers[name]; hint != "" {
			msg += "; " + hint
		}
		iss.ReportErrorAtID(call.ID(), "%s", msg)
	}
}
