// Package expr compiles and runs the expressions endpoints carry: filters that decide at fan-out
// whether an event goes to an endpoint, and transformations that reshape the body sent. Both are
// CEL (cel.dev/cel-go): no I/O, no unbounded loops, and every evaluation runs under limits.
//
// # Variables
//
// Both kinds of expression see the event envelope as `event` (a map), and each top-level field of
// the envelope as its own variable: `id`, `type`, `timestamp` (a string), `data`, `source`,
// `resource` and `inbound`. All are declared dyn; a field missing from the envelope is null, so
// `resource == null` is a valid test and `has(data.customer)` tests a key. JSON numbers that are
// integral and fit an int64 are CEL ints, others are doubles; comparisons across int and double are
// allowed, so `data.amount > 1000` holds for 1200 and for 1200.5.
//
// # Filters
//
// A filter is a boolean expression: `data.amount > 1000 && data.currency == "EUR"`. A filter whose
// type is known not to be bool is refused at compile time; one that yields a non-bool at run time,
// or fails (a missing key, say), does not match.
//
// # Transformations
//
// A transformation's value, encoded as compact JSON, is the body sent instead of the envelope. Map
// keys are written in sorted order (as encoding/json does). Bytes are written as standard base64
// strings, timestamps as RFC 3339 strings and durations as seconds with an "s" suffix (the protobuf
// JSON forms); int map keys become strings; NaN, infinities, types, optionals and other map keys
// are errors. Besides the standard library and the strings, math, lists, two-variable
// comprehension, optional and base64 extensions, four functions make the usual reshapes one call
// each:
//
//	omit(m, ["card", "customer.email"])  // m without those keys; dotted paths reach into nested maps
//	pick(m, ["id", "customer.email"])    // only those keys, nesting kept; missing paths are skipped
//	merge(m1, m2)                        // m1 with m2's keys added or overriding (shallow)
//	rename(m, {"amount": "total"})       // keys renamed (shallow); a renamed key overrides one of the same name
//
// # Limits
//
// Expressions come from tenants, so every limit is a constant here rather than a setting:
//
//   - MaxSourceBytes: the source is at most 4096 bytes. The parser accepts at most MaxParseDepth
//     (32) levels of nesting, which long chains of && and || do not count against, and
//     comprehensions (all, exists, map, filter, transformMap, ...) nest at most
//     MaxComprehensionNesting (3) deep, a chained .map().map() counting as nesting.
//   - CostLimit and FilterCostLimit: a transformation may spend at most 1,000,000 units of CEL's
//     runtime cost, a filter 250,000, where a unit is roughly one variable lookup, field selection
//     or scalar operation, and string, list and map operations cost in proportion to their size
//     (a string comparison or concatenation one unit per ten characters). Omitting a key from a
//     64 KiB envelope costs a few hundred units and mapping over a thousand items about 15,000; a
//     nested comprehension over thousands of elements is stopped.
//   - FilterTimeout and TransformTimeout: Match runs for at most 5 ms and Apply for at most 50 ms,
//     or less if the caller's context ends sooner. CEL checks the deadline every
//     InterruptCheckFrequency comprehension iterations; an expression without a comprehension
//     evaluates each node once, so its time is bounded by its size and the cost limit, and it
//     runs without a timer (which would otherwise be a third of a filter's run time).
//   - MaxOutputBytes: Apply's JSON is at most 1 MiB; the encoder stops as soon as it passes that.
//
// CEL charges a function after it returns and looks at the deadline only between comprehension
// iterations, so a single call must be bounded before it runs. Every function either is linear
// in inputs the cost limit already bounds, or is checked here:
//
//   - matches is Herald's own (regex.go). A pattern is at most MaxRegexPatternBytes (1 KiB) and
//     compiles to at most MaxRegexProgramSize (256) RE2 instructions: a literal pattern that does
//     not is refused at compile time, a dynamic one when it runs. A match reads at most
//     MaxRegexInputBytes (64 KiB) and does at most MaxRegexWork (262,144) units of work, the
//     string's bytes times the program's instructions, and each match is charged its work
//     against the cost limit before it runs. Literal patterns are compiled once per program,
//     dynamic ones through a small cache per program.
//   - indexOf and lastIndexOf search in linear time (CEL's compare at every position).
//   - sort and sortBy sort at most MaxSortElements (1000) elements, and split builds at most
//     MaxListElements (10,000), as lists.range does; both are checked before the call.
//
// The memory bound follows from the cost limit and the output cap: CEL charges list, map and string
// construction in proportion to the elements or bytes built, so an evaluation cannot build more
// than about CostLimit elements, or ten times as many bytes of strings, and the JSON encoder never
// holds more than MaxOutputBytes. Two gaps in CEL's model are closed here. List concatenation is
// lazy in CEL and charged one unit, so (l + l) nested a few times would describe billions of
// elements; it is charged the length of its smaller operand instead. And functions whose result
// can dwarf their charged arguments (a list of ten thousand references to one long string costs
// ten thousand, joining it costs gigabytes) are refused at compile time: join, replace, format and
// flatten, and distinct, whose time grows with the square of its list's length; the json and yaml
// encoders are not enabled. Errors for a limit wrap ErrCostLimit, ErrTimeLimit, ErrCallLimit or
// ErrOutputTooLarge.
//
// Compiled filters and transformations are immutable and safe for concurrent use; a Cache keeps
// them by source text. The package holds no mutable state: the CEL environment is built once,
// lazily, and never changed.
package expr
