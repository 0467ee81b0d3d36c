package source

// Error is a failure of a broker source, as its Consumer or Open reports it: Msg is a sentence
// for the tenant (no secret), Kind one of destination's Kind constants (blocked_destination,
// connection_refused, no_route, denied, broker_error, …), Op what the source was doing, Err the
// cause. Source is the type's name ("kafka", "redis", …) for the message.
type Error struct {
	Source, Op, Kind, Msg string
	Err                   error
}

func (e *Error) Error() string { return e.Source + " source: " + e.Op + ": " + e.Msg }
func (e *Error) Unwrap() error { return e.Err }
