package main

import (
	"io"
	"log/slog"
	"strings"
	"testing"

	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/api"
)

func TestAPILimitFlags(t *testing.T) {
	t.Parallel()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	parse := func(args ...string) (api.RateLimits, error) {
		f := pflag.NewFlagSet("serve", pflag.ContinueOnError)
		var l api.RateLimits
		check := apiLimitFlags(f, &l)
		if err := f.Parse(args); err != nil {
			return l, err
		}
		return l, check(quiet)
	}
	if l, err := parse(); err != nil || l != api.DefaultRateLimits() {
		t.Errorf("no flags: %+v, %v; want api.DefaultRateLimits()", l, err)
	}
	l, err := parse("--publish-rate", "50", "--admin-burst", "7", "--auth-failure-rate", "0")
	want := api.DefaultRateLimits()
	want.Publish.PerSecond, want.AdminKey.Burst, want.AuthFailure.PerSecond = 50, 7, 0
	if err != nil || l != want {
		t.Errorf("flags set: %+v, %v; want %+v", l, err, want)
	}
	if l, err := parse("--api-rate", "0"); err != nil || l != (api.RateLimits{}) {
		t.Errorf("--api-rate 0: %+v, %v; want every limit off", l, err)
	}
	for _, c := range []struct{ args []string }{
		{[]string{"--publish-rate", "-1"}},
		{[]string{"--admin-rate", "NaN"}},
		{[]string{"--auth-failure-rate", "+Inf"}},
		{[]string{"--publish-burst", "-3"}},
	} {
		if _, err := parse(c.args...); err == nil || !strings.Contains(err.Error(), c.args[0]) {
			t.Errorf("%v: %v, want an error naming %s", c.args, err, c.args[0])
		}
	}
}
