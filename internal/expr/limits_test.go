package expr

import (
	"context"
	"errors"
	"fmt"
	"regexp/syntax"
	"strings"
	"testing"
	"time"

	"cel.dev/cel-go/common/types"
)

// largeInput is an envelope whose data.s is n bytes of "a", with data.email and data.pattern.
func largeInput(t testing.TB, n int) *Input {
	t.Helper()
	return mustInput(t, `{"id":"e","type":"t","data":{"email":"ada@example.com","pattern":"^[a-z]+@example\\.com$",`+
		`"t":"`+strings.Repeat("a", 1000)+`b","s":"`+strings.Repeat("a", n)+`"}}`)
}

// The filter from issue 14: ten matches of a 183-instruction pattern over a 250 KiB string ran
// for seconds as one publish; each match is now refused before it runs.
func TestFilter_RegexOverLargeStringIsRefused(t *testing.T) {
	t.Parallel()
	clauses := make([]string, 10)
	for i := range clauses {
		clauses[i] = `data.s.matches("(a{1,9}){1,9}z` + string(rune('0'+i)) + `")`
	}
	f, err := CompileFilter(strings.Join(clauses, " || "))
	if err != nil {
		t.Fatalf("CompileFilter: %v", err)
	}
	ok, err := f.Match(context.Background(), largeInput(t, 250<<10))
	if ok || !errors.Is(err, ErrCallLimit) {
		t.Fatalf("Match = %v, %v; want false and ErrCallLimit", ok, err)
	}
	if e := asError(t, err); !strings.Contains(e.Message, "at most 65536 are matched") {
		t.Errorf("Message = %q", e.Message)
	}

	// The same as a transformation, which burned seconds of CPU per attempt.
	tr, err := CompileTransform(`{"m": ` + strings.Join(clauses, " || ") + `}`)
	if err != nil {
		t.Fatalf("CompileTransform: %v", err)
	}
	if body, err := tr.Apply(context.Background(), largeInput(t, 250<<10)); !errors.Is(err, ErrCallLimit) {
		t.Fatalf("Apply = %.100s, %v; want ErrCallLimit", body, err)
	}
}

func TestFilter_RegexWorkIsBounded(t *testing.T) {
	t.Parallel()
	in := largeInput(t, 10<<10)
	cases := []struct {
		name, src string
		is        error
		contains  string
	}{
		// 10 KiB × 182 instructions is over MaxRegexWork though the string is under 64 KiB.
		{"one match over the work limit", `data.s.matches("(a{1,9}){1,9}z")`, ErrCallLimit, "182 instructions"},
		{"dynamic pattern, same check", `data.s.matches("(a{1,9}){1,9}" + data.email)`, ErrCallLimit, "units of work"},
		// Each match is under MaxRegexWork (10 KiB × 18 instructions), but every one is charged
		// before it runs, so the filter's cost limit stops the sequence.
		{"matches add up to the cost limit", strings.Repeat(`data.s.matches("a{1,8}z") || `, 3) + `false`, ErrCostLimit, "cost limit of 250000"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f, err := CompileFilter(tc.src)
			if err != nil {
				t.Fatalf("CompileFilter: %v", err)
			}
			ok, err := f.Match(context.Background(), in)
			if ok || !errors.Is(err, tc.is) {
				t.Fatalf("Match = %v, %v; want false and %v", ok, err, tc.is)
			}
			if e := asError(t, err); !strings.Contains(e.Message, tc.contains) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tc.contains)
			}
		})
	}
}

func TestCompileFilter_RegexRefusedAtSave(t *testing.T) {
	t.Parallel()
	for name, tc := range map[string]struct{ src, contains string }{
		"program too large":     {`data.s.matches("(a{1,9}){1,9}(b{1,9}){1,9}")`, "regex program size 360 exceeds limit of 256"},
		"global form":           {`matches(data.s, "(a{1,9}){1,9}(b{1,9}){1,9}")`, "exceeds limit of 256"},
		"pattern too long":      {`data.s.matches("[` + strings.Repeat("a-b", 400) + `]")`, "at most 1024 are allowed"},
		"too large to compile":  {`data.s.matches("` + strings.Repeat("(a{1,1000})", 80) + `")`, "exceeds limit of 256"},
		"invalid pattern":       {`data.s.matches("(a")`, "invalid regex"},
		"quadratic list method": {`data.items.distinct().size() > 1`, "distinct is not available"},
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			_, err := CompileFilter(tc.src)
			if err == nil {
				t.Fatal("CompileFilter: no error")
			}
			if e := asError(t, err); !strings.Contains(e.Message, tc.contains) {
				t.Errorf("Message = %q, want it to contain %q", e.Message, tc.contains)
			}
		})
	}
}

func TestFilter_OrdinaryRegexes(t *testing.T) {
	t.Parallel()
	in := largeInput(t, 100)
	for src, want := range map[string]bool{
		`data.email.matches("^[a-z]+@example\\.com$")`:       true,
		`data.email.matches("^[a-z]+@example\\.org$")`:       false,
		`matches(data.email, "@example")`:                    true,
		`data.email.matches(data.pattern)`:                   true,
		`!data.s.matches(data.pattern)`:                      true,
		`data.s.matches("^a{100}$") && data.s.matches("a+")`: true,
		`type.matches("^t$")`:                                true,
	} {
		f, err := CompileFilter(src)
		if err != nil {
			t.Fatalf("CompileFilter(%s): %v", src, err)
		}
		// Twice: the second run of a dynamic pattern is served by the program's cache.
		for range 2 {
			if got, err := f.Match(context.Background(), in); got != want || err != nil {
				t.Errorf("Match(%s) = %v, %v; want %v", src, got, err, want)
			}
		}
	}
}

func TestTransform_IndexOfIsLinearAndKeepsCELResults(t *testing.T) {
	t.Parallel()
	in := mustInput(t, `{"data":{"s":"héllo wörld, héllo","big":"`+strings.Repeat("a", 100<<10)+`","needle":"`+strings.Repeat("a", 4000)+`b"}}`)
	tr, err := CompileTransform(`[data.s.indexOf("héllo"), data.s.indexOf("héllo", 1), data.s.indexOf("llo", 14), data.s.indexOf(""),
		data.s.indexOf("", 99), data.s.indexOf("x"), data.s.indexOf("o", 99), data.s.lastIndexOf("héllo"), data.s.lastIndexOf("héllo", 12),
		data.s.lastIndexOf("héllo", 13), data.s.lastIndexOf(""), data.s.lastIndexOf("", 3), data.s.lastIndexOf("d", 99), "".lastIndexOf("a"),
		"ab".lastIndexOf("abc"), data.big.indexOf(data.needle), data.big.lastIndexOf(data.needle)]`)
	if err != nil {
		t.Fatal(err)
	}
	got, err := tr.Apply(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if want := `[0,13,15,0,18,-1,-1,13,0,13,18,3,-1,-1,-1,-1,-1]`; string(got) != want {
		t.Errorf("Apply = %s, want %s", got, want)
	}
	for _, src := range []string{`data.s.indexOf("a", -1)`, `data.s.lastIndexOf("a", -1)`} {
		tr, err := CompileTransform(src)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tr.Apply(context.Background(), in); err == nil || !strings.Contains(err.Error(), "index out of range") {
			t.Errorf("Apply(%s) = %v, want index out of range", src, err)
		}
	}
}

// FuzzCompileRegex checks that a compiled pattern's program is within the limit and that the
// estimate used to refuse huge patterns early never undercounts.
func FuzzCompileRegex(f *testing.F) {
	for _, p := range []string{`(a{1,9}){1,9}zN`, `^[a-z]+@example\.com$`, `(?i)x*y+z?`, `a{2,5}|b{3,}|(c)`, `\bfoo\B$`, `[^a-z]{0,7}`, `(a|b|c)*?`, `.{10}`} {
		f.Add(p)
	}
	f.Fuzz(func(t *testing.T, pattern string) {
		r, err := compileRegex(pattern)
		if err != nil {
			return
		}
		if r.size > MaxRegexProgramSize {
			t.Fatalf("compileRegex(%q): %d instructions", pattern, r.size)
		}
		parsed, err := syntax.Parse(pattern, syntax.Perl)
		if err != nil {
			t.Fatal(err)
		}
		if est := estimateProgram(parsed); est < r.size {
			t.Fatalf("estimateProgram(%q) = %d < %d instructions", pattern, est, r.size)
		}
	})
}

// sort and split do their work before CEL charges for it (sorting 60,000 numbers from one
// event took half a second); a call over the limit is refused before it runs.
func TestFilter_SortAndSplitAreBoundedBeforeTheyRun(t *testing.T) {
	t.Parallel()
	nums := make([]string, MaxSortElements+1)
	for i := range nums {
		nums[i] = fmt.Sprint(len(nums) - i)
	}
	in := mustInput(t, `{"data":{"l":[`+strings.Join(nums, ",")+`],"small":[3,1,2],"csv":"a,b,c",`+
		`"s":"`+strings.Repeat("a", MaxListElements+1)+`"}}`)
	cases := []struct {
		src  string
		want bool
		is   error // nil: no error expected
	}{
		{`data.l.sort()[0] == 1`, false, ErrCallLimit},
		{`data.l.sortBy(x, -x)[0] == 1`, false, ErrCallLimit},
		{`data.s.split("").size() > 0`, false, ErrCallLimit},
		{`data.s.split("a").size() > 0`, false, ErrCallLimit}, // MaxListElements+2 pieces
		{`data.s.split("", 5).size() == 5`, true, nil},
		{`data.l.slice(0, 100).sort()[0] == 902`, true, nil},
		{`data.small.sort() == [1, 2, 3]`, true, nil},
		{`data.small.sortBy(x, -x) == [3, 2, 1]`, true, nil},
		{`data.csv.split(",") == ["a", "b", "c"]`, true, nil},
		{`data.csv.split(",", 2) == ["a", "b,c"]`, true, nil},
	}
	for _, tc := range cases {
		f, err := CompileFilter(tc.src)
		if err != nil {
			t.Fatalf("CompileFilter(%s): %v", tc.src, err)
		}
		// sortBy builds its keys in a comprehension: evaluated without the 5 ms deadline, so
		// that a loaded machine does not stop it before the guard is reached.
		out, err := eval(context.Background(), f.prg, in, time.Hour)
		ok := err == nil && out == types.True
		if ok != tc.want || (tc.is == nil) != (err == nil) || (tc.is != nil && !errors.Is(err, tc.is)) {
			t.Errorf("eval(%s) = %v, %v; want %v, %v", tc.src, out, err, tc.want, tc.is)
		}
	}
	// A string is not a list: the guarded call still reports a missing overload.
	f, err := CompileFilter(`dyn(data.csv).sort() == []`)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := f.Match(context.Background(), in); ok || err == nil || errors.Is(err, ErrCallLimit) {
		t.Errorf("Match(sort of a string) = %v, %v; want no such overload", ok, err)
	}
}
