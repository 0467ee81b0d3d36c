package expr

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

const envelope = `{"id":"evt_1","type":"invoice.paid","timestamp":"2026-11-30T10:00:00Z",` +
	`"data":{"id":"inv_1","amount":1200,"currency":"EUR","customer":{"email":"a@b.c","name":"Ada"},"card":"4242"},` +
	`"source":"billing","inbound":{"request_id":"req_1","provider_id":"prv_1"}}`

func mustInput(t testing.TB, payload string) *Input {
	t.Helper()
	in, err := NewInput([]byte(payload))
	if err != nil {
		t.Fatalf("NewInput: %v", err)
	}
	return in
}

func asError(t *testing.T, err error) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("error %v (%T) is not an *Error", err, err)
	}
	if e.Message == "" {
		t.Fatal("empty Message")
	}
	return e
}

func TestNewInput_RejectsNonObjects(t *testing.T) {
	t.Parallel()
	for _, payload := range []string{``, `[]`, `"x"`, `{"a":1} {}`, `{"a":`} {
		if _, err := NewInput([]byte(payload)); err == nil {
			t.Errorf("NewInput(%q): no error", payload)
		}
	}
}

func TestFilter_Match(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	inDouble := mustInput(t, `{"id":"e","type":"invoice.paid","data":{"amount":1200.5,"currency":"EUR"}}`)
	inSmall := mustInput(t, `{"id":"e","type":"invoice.paid","data":{"amount":999,"currency":"EUR"}}`)
	inResource := mustInput(t, `{"id":"e","type":"t","data":{},"resource":{"id":"inv_1","type":"invoice"}}`)

	cases := []struct {
		name string
		src  string
		in   *Input
		want bool
	}{
		{"int above", `data.amount > 1000 && data.currency == "EUR"`, in, true},
		{"double above", `data.amount > 1000 && data.currency == "EUR"`, inDouble, true},
		{"int below", `data.amount > 1000 && data.currency == "EUR"`, inSmall, false},
		{"int equals double literal", `data.amount == 1200.0`, in, true},
		{"double compared to int", `data.amount < 1201`, inDouble, true},
		{"prefix", `type.startsWith("invoice.")`, in, true},
		{"prefix miss", `type.startsWith("customer.")`, in, false},
		{"has and suffix miss", `has(data.customer) && data.customer.email.endsWith("@example.com")`, in, false},
		{"has and suffix hit", `has(data.customer) && data.customer.email.endsWith("@b.c")`, in, true},
		{"has absent", `has(data.refund)`, in, false},
		{"event variable", `event.source == "billing" && event.data.card == "4242"`, in, true},
		{"missing resource is null", `resource == null`, in, true},
		{"present resource", `resource != null && resource.type == "invoice"`, inResource, true},
		{"in list", `type in ["invoice.paid", "invoice.voided"]`, in, true},
		{"timestamp", `timestamp(timestamp) > timestamp("2026-01-01T00:00:00Z")`, in, true},
		{"string ext", `data.customer.name.lowerAscii() == "ada"`, in, true},
		{"comprehension", `event.exists(k, k == "inbound")`, in, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := CompileFilter(tc.src)
			if err != nil {
				t.Fatalf("CompileFilter: %v", err)
			}
			got, err := f.Match(context.Background(), tc.in)
			if err != nil {
				t.Fatalf("Match: %v", err)
			}
			if got != tc.want {
				t.Errorf("Match = %v, want %v", got, tc.want)
			}
			if f.String() != tc.src {
				t.Errorf("String = %q", f.String())
			}
		})
	}
}

func TestNewInput_Numbers(t *testing.T) {
	t.Parallel()
	in := mustInput(t, `{"data":{"i":1200,"f":1200.5,"e":1e3,"neg":-7,"big":18446744073709551615,"tiny":1e-300}}`)
	f, err := CompileFilter(`type(data.i) == int && type(data.f) == double && type(data.e) == int && data.e == 1000 ` +
		`&& data.neg == -7 && type(data.big) == double && type(data.tiny) == double`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.Match(context.Background(), in); !ok || err != nil {
		t.Errorf("Match = %v, %v; want true", ok, err)
	}
}

func TestCompileFilter_LongButShallowFilter(t *testing.T) {
	t.Parallel()
	clauses := make([]string, 80)
	for i := range clauses {
		clauses[i] = `type == "t` + strings.Repeat("x", i%5) + `"`
	}
	src := strings.Join(clauses, " || ") + ` || (((((((((data.amount > 1)))))))))`
	if _, err := CompileFilter(src); err != nil {
		t.Fatalf("CompileFilter: %v", err)
	}
}

func TestFilter_RuntimeErrorIsNoMatch(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	for _, src := range []string{
		`data.refund.amount > 0`,     // no such key
		`resource.type == "invoice"`, // select on null
		`data.currency`,              // dyn, but a string at run time
		`data.amount / 0 > 1`,        // division by zero
		`int(data.currency) > 1`,     // bad conversion
		`data.amount > "x"`,          // no such overload
	} {
		f, err := CompileFilter(src)
		if err != nil {
			t.Fatalf("CompileFilter(%q): %v", src, err)
		}
		got, err := f.Match(context.Background(), in)
		if got {
			t.Errorf("Match(%q) = true, want false", src)
		}
		if err == nil {
			t.Errorf("Match(%q): no error", src)
			continue
		}
		asError(t, err)
	}
}

func TestCompileFilter_Errors(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, src, contains string
	}{
		{"syntax", `data.amount >`, "1:14: Syntax error"},
		{"syntax line two", "data.amount > 1 &&\n  )", "2:3: Syntax error"},
		{"undeclared", `amount > 1`, "undeclared reference to 'amount'"},
		{"int", `data.amount + 1`, ""},
		{"int literal", `1`, "must be a boolean expression, this one is of type int"},
		{"string", `"yes"`, "of type string"},
		{"map", `{"a": true}`, "of type map"},
		{"empty", `  `, "empty"},
		{"too long", `type == "` + strings.Repeat("a", MaxSourceBytes) + `"`, "at most 4096"},
		{"too deep", strings.Repeat("[", 60) + strings.Repeat("]", 60) + ` == []`, "recursion"},
		{"comprehension nesting", `[1].all(a, [1].all(b, [1].all(c, [1].all(d, true))))`, "nesting limit"},
		{"amplifier", `["a"].join(",") == "a"`, "join is not available"},
		{"regex too large", `type.matches("^a{300}$")`, "regex program size"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := CompileFilter(tc.src)
			if tc.name == "int" {
				// A dyn-typed arithmetic result is refused only when its type is known: int here.
				if err == nil {
					t.Fatalf("CompileFilter(%q) = %v, want error", tc.src, f)
				}
				return
			}
			if err == nil {
				t.Fatalf("CompileFilter(%q): no error", tc.src)
			}
			e := asError(t, err)
			if !strings.Contains(e.Message, tc.contains) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tc.contains)
			}
		})
	}
}

func TestTransform_Apply(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	cases := []struct {
		name, src, want string
	}{
		{
			"omit nested path",
			`omit(event, ["data.customer.email", "inbound"])`,
			`{"data":{"amount":1200,"card":"4242","currency":"EUR","customer":{"name":"Ada"},"id":"inv_1"},"id":"evt_1","source":"billing","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`,
		},
		{
			"brief: omit",
			`omit(event, ["data.customer.email"])`,
			`{"data":{"amount":1200,"card":"4242","currency":"EUR","customer":{"name":"Ada"},"id":"inv_1"},"id":"evt_1","inbound":{"provider_id":"prv_1","request_id":"req_1"},"source":"billing","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`,
		},
		{
			"brief: merge",
			`merge(event, {"environment": "production"})`,
			`{"data":{"amount":1200,"card":"4242","currency":"EUR","customer":{"email":"a@b.c","name":"Ada"},"id":"inv_1"},"environment":"production","id":"evt_1","inbound":{"provider_id":"prv_1","request_id":"req_1"},"source":"billing","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`,
		},
		{
			"brief: two-variable comprehension",
			`event.transformMap(k, v, k != "inbound", v)`,
			`{"data":{"amount":1200,"card":"4242","currency":"EUR","customer":{"email":"a@b.c","name":"Ada"},"id":"inv_1"},"id":"evt_1","source":"billing","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`,
		},
		{
			"omit missing path is a no-op",
			`omit(data, ["nope", "customer.nope.deeper", "card.x"])`,
			`{"amount":1200,"card":"4242","currency":"EUR","customer":{"email":"a@b.c","name":"Ada"},"id":"inv_1"}`,
		},
		{
			"restructure with static field",
			`{"kind": type, "invoice": data.id, "total": data.amount, "version": 2}`,
			`{"invoice":"inv_1","kind":"invoice.paid","total":1200,"version":2}`,
		},
		{
			"merge",
			`merge(omit(event, ["data", "inbound"]), {"environment": "production", "source": "b2"})`,
			`{"environment":"production","id":"evt_1","source":"b2","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`,
		},
		{
			"rename",
			`rename(data, {"amount": "total", "customer": "buyer", "absent": "x"})`,
			`{"buyer":{"email":"a@b.c","name":"Ada"},"card":"4242","currency":"EUR","id":"inv_1","total":1200}`,
		},
		{
			"rename swap",
			`rename({"a": 1, "b": 2}, {"a": "b", "b": "a"})`,
			`{"a":2,"b":1}`,
		},
		{
			"pick keeps nesting",
			`pick(event, ["id", "data.amount", "data.customer.email", "data.none", "resource.id"])`,
			`{"data":{"amount":1200,"customer":{"email":"a@b.c"}},"id":"evt_1"}`,
		},
		{
			"two-variable comprehension",
			`event.transformMap(k, v, k != "inbound" && k != "data", v)`,
			`{"id":"evt_1","source":"billing","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`,
		},
		{
			"list and scalars",
			`[data.amount / 7, double(data.amount) * 1.5, 1e-7, 1e21, -0.5, true, null, 3u]`,
			`[171,1800,1e-7,1e+21,-0.5,true,null,3]`,
		},
		{
			"strings escaped without HTML escaping",
			`{"s": "<a href=\"x\">&</a>\n\t\u2028\x01"}`,
			`{"s":"<a href=\"x\">&</a>\n\t\u2028\u0001"}`,
		},
		{"bytes are base64", `{"b": b"\xff\x00hi"}`, `{"b":"/wBoaQ=="}`},
		{"timestamp", `timestamp(timestamp) + duration("90s")`, `"2026-11-30T10:01:30Z"`},
		{"duration", `duration("1.5s")`, `"1.5s"`},
		{"int keys", `{1: "a"}`, `{"1":"a"}`},
		{"optional field", `{"email": data.?customer.?email.orValue("none"), "x": data.?x.orValue("none")}`, `{"email":"a@b.c","x":"none"}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, err := CompileTransform(tc.src)
			if err != nil {
				t.Fatalf("CompileTransform: %v", err)
			}
			got, err := tr.Apply(context.Background(), in)
			if err != nil {
				t.Fatalf("Apply: %v", err)
			}
			if string(got) != tc.want {
				t.Errorf("Apply =\n%s\nwant\n%s", got, tc.want)
			}
		})
	}
}

func TestTransform_ApplyErrors(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	cases := []struct {
		name, src, contains string
		is                  error
	}{
		{"runtime error", `{"x": data.nope}`, "no such key", nil},
		{"type value", `{"t": type(1)}`, "at $.t is a type", nil},
		{"bool map key", `{true: 1}`, "bool key", nil},
		{"nan", `{"n": [0.0 / 0.0]}`, "at $.n[0] is NaN", nil},
		{"infinity", `1.0 / 0.0`, "+Inf", nil},
		{"optional", `optional.of(1)`, "optional", nil},
		// Matching the 32,000-character string with a 1,000-character pattern (a small program)
		// costs about 800,000 though the match fails at once: the limit stops the second one.
		{"dynamic regex too large", `type.matches("^a{" + string(size(data)) + "00}$")`, "program size", nil},
		{"cost", `["` + strings.Repeat("a", 500) + `"].map(s, ((s+s)+(s+s))+((s+s)+(s+s))).map(s, ((s+s)+(s+s))+((s+s)+(s+s))).map(t, lists.range(10).all(i, !t.matches("^b[` + strings.Repeat("a", 1000) + `]")))`, "cost limit", ErrCostLimit},
		// Without a charge per element, these three steps would build a 524,288-element list
		// for a few hundred units; sort would then walk it.
		{"lazy list concatenation", `[lists.range(16)].map(a, ` + sum(32, "a") + `).map(a, ` + sum(32, "a") + `).map(a, ` + sum(32, "a") + `)[0].sort()`, "cost limit", ErrCostLimit},
		{"nested comprehensions", `lists.range(1000).map(x, lists.range(1000).filter(y, y > x).size())`, "limit", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tr, err := CompileTransform(tc.src)
			if err != nil {
				t.Fatalf("CompileTransform: %v", err)
			}
			got, err := tr.Apply(context.Background(), in)
			if err == nil {
				t.Fatalf("Apply = %.100s, want error", got)
			}
			e := asError(t, err)
			if !strings.Contains(e.Message, tc.contains) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tc.contains)
			}
			if tc.is != nil && !errors.Is(err, tc.is) {
				t.Errorf("errors.Is(%v, %v) = false", err, tc.is)
			}
		})
	}
}

func TestTransform_OutputTooLarge(t *testing.T) {
	t.Parallel()
	in := mustInput(t, `{"id":"e","data":{"big":"`+strings.Repeat("x", 300<<10)+`"}}`)
	for src, wantErr := range map[string]bool{
		`[data.big, data.big, data.big]`:                              false, // 900 KiB
		`[data.big, data.big, data.big, data.big]`:                    true,  // 1200 KiB
		`{"a": data.big, "b": [data.big, data.big, {"c": data.big}]}`: true,
	} {
		tr, err := CompileTransform(src)
		if err != nil {
			t.Fatal(err)
		}
		out, err := tr.Apply(context.Background(), in)
		if !wantErr {
			if err != nil || len(out) < 900<<10 || len(out) > MaxOutputBytes {
				t.Errorf("Apply(%s) = %d bytes, %v", src, len(out), err)
			}
			continue
		}
		if err == nil || !errors.Is(err, ErrOutputTooLarge) || out != nil {
			t.Errorf("Apply(%s) = %d bytes, %v; want ErrOutputTooLarge", src, len(out), err)
			continue
		}
		if e := asError(t, err); !strings.Contains(e.Message, "exceeds 1048576 bytes") {
			t.Errorf("Message = %q", e.Message)
		}
	}
}

func TestTransform_TimeLimit(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	// Cheap per iteration, so it would run for long under the cost limit if the deadline were not
	// checked inside the comprehension.
	tr, err := CompileTransform(`lists.range(10000).map(i, lists.range(10000).exists(j, j < 0)).size()`)
	if err != nil {
		t.Fatal(err)
	}
	_, err = tr.Apply(context.Background(), in)
	if err == nil {
		t.Fatal("no error")
	}
	e := asError(t, err)
	if !errors.Is(err, ErrTimeLimit) && !errors.Is(err, ErrCostLimit) {
		t.Errorf("error %q is neither a time nor a cost limit", e.Message)
	}
}

func TestFilter_TimeLimitAndCallerContext(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	f, err := CompileFilter(`lists.range(10000).all(i, lists.range(10000).all(j, j >= 0))`)
	if err != nil {
		t.Fatal(err)
	}
	// Cheap per iteration: the deadline or the cost limit stops it, whichever comes first.
	ok, err := f.Match(context.Background(), in)
	if ok || !errors.Is(err, ErrTimeLimit) && !errors.Is(err, ErrCostLimit) {
		t.Fatalf("Match = %v, %v; want false and a time or cost limit error", ok, err)
	}

	// A caller's deadline that has passed is a time limit, checked inside the comprehension.
	past, cancelPast := context.WithDeadline(context.Background(), time.Unix(0, 0))
	defer cancelPast()
	if ok, err := f.Match(past, in); ok || !errors.Is(err, ErrTimeLimit) {
		t.Fatalf("Match with a passed deadline = %v, %v; want false and a time limit error", ok, err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	ok, err = f.Match(ctx, in)
	if ok || err == nil || errors.Is(err, ErrTimeLimit) {
		t.Fatalf("Match with a canceled context = %v, %v; want false and a cancellation", ok, err)
	}
	asError(t, err)
}

func TestCompileTransform_Errors(t *testing.T) {
	t.Parallel()
	for src, contains := range map[string]string{
		`omit(event, "data")`:                     "found no matching overload for 'omit'",
		`{"a": 1`:                                 "Syntax error",
		`json.encode(event)`:                      "undeclared reference",
		`"a".replace("a", "b")`:                   "replace is not available",
		`[[1]].flatten()`:                         "flatten is not available",
		`"%s".format([1])`:                        "format is not available",
		strings.Repeat(" ", MaxSourceBytes) + "1": "at most 4096",
	} {
		_, err := CompileTransform(src)
		if err == nil {
			t.Errorf("CompileTransform(%.40q): no error", src)
			continue
		}
		if e := asError(t, err); !strings.Contains(e.Message, contains) {
			t.Errorf("CompileTransform(%.40q) = %q, want it to contain %q", src, e.Message, contains)
		}
	}
}

// sum returns a balanced sum of n copies of x, which stays within the parser's depth limit.
func sum(n int, x string) string {
	if n == 1 {
		return x
	}
	return "(" + sum(n/2, x) + "+" + sum(n-n/2, x) + ")"
}
