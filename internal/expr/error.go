package expr

import "errors"

// Error is a compile or evaluation error with a user-facing message.
type Error struct {
	// Message is safe to show to the tenant who wrote the expression, e.g. in a 422 response.
	Message string
	err     error
}

func (e *Error) Error() string { return e.Message }

// Unwrap returns the cause: one of the Err sentinels below for a limit, or CEL's error.
func (e *Error) Unwrap() error { return e.err }

// Sentinels for the limits, to tell them apart with errors.Is.
var (
	ErrCostLimit      = errors.New("expression cost limit exceeded")
	ErrTimeLimit      = errors.New("expression time limit exceeded")
	ErrOutputTooLarge = errors.New("transformation output too large")
	// ErrCallLimit is a function call refused before it ran: a regular expression over too
	// long a string or with too much work, a sort or a split of too many elements.
	ErrCallLimit = errors.New("function call limit exceeded")
)
