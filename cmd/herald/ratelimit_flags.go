package main

import (
	"fmt"
	"log/slog"
	"math"

	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/api"
)

// apiLimitFlags registers the API's rate limit flags into l, defaulting to api.DefaultRateLimits
// (internal/api/ratelimit.go says why those values), and returns the check to run once the flags
// are parsed.
func apiLimitFlags(f *pflag.FlagSet, l *api.RateLimits) func(log *slog.Logger) error {
	type limit struct {
		rate, burst string
		r           *api.Rate
	}
	limits := []limit{
		{"api-rate", "api-burst", &l.TenantKey},
		{"publish-rate", "publish-burst", &l.Publish},
		{"admin-rate", "admin-burst", &l.AdminKey},
		{"auth-failure-rate", "auth-failure-burst", &l.AuthFailure},
		{"publish-bytes-rate", "publish-bytes-burst", &l.PublishBytes},
	}
	d := api.DefaultRateLimits()
	f.Float64Var(&l.TenantKey.PerSecond, "api-rate", d.TenantKey.PerSecond, "API requests per second each tenant key or portal link may make, publishing aside (0: turns every API rate limit off)")
	f.IntVar(&l.TenantKey.Burst, "api-burst", d.TenantKey.Burst, "requests a tenant key or portal link may make at once above --api-rate (0: twice --api-rate)")
	f.Float64Var(&l.Publish.PerSecond, "publish-rate", d.Publish.PerSecond, "publish requests per second (single and batch) to each tenant, whatever key publishes (0: no limit)")
	f.IntVar(&l.Publish.Burst, "publish-burst", d.Publish.Burst, "publish requests to a tenant at once above --publish-rate (0: twice --publish-rate)")
	f.Float64Var(&l.AdminKey.PerSecond, "admin-rate", d.AdminKey.PerSecond, "API requests per second each admin key may make, publishing aside (0: no limit)")
	f.IntVar(&l.AdminKey.Burst, "admin-burst", d.AdminKey.Burst, "requests an admin key may make at once above --admin-rate (0: twice --admin-rate)")
	f.Float64Var(&l.AuthFailure.PerSecond, "auth-failure-rate", d.AuthFailure.PerSecond, "failed authentications per second from one client address (an IPv6 /64) before Herald answers 429 (0: no limit)")
	f.IntVar(&l.AuthFailure.Burst, "auth-failure-burst", d.AuthFailure.Burst, "failed authentications from one address at once above --auth-failure-rate (0: twice --auth-failure-rate)")
	f.Float64Var(&l.PublishBytes.PerSecond, "publish-bytes-rate", d.PublishBytes.PerSecond, "bytes of publish bodies per second each tenant may send, whatever key publishes (0: no limit)")
	f.IntVar(&l.PublishBytes.Burst, "publish-bytes-burst", d.PublishBytes.Burst, "bytes of publish bodies a tenant may send at once above --publish-bytes-rate (0: twice --publish-bytes-rate)")
	return func(log *slog.Logger) error {
		for _, c := range limits {
			if !(c.r.PerSecond >= 0) || math.IsInf(c.r.PerSecond, 0) {
				return fmt.Errorf("--%s %v: want a finite number, not negative (0 turns the limit off)", c.rate, c.r.PerSecond)
			}
			if c.r.Burst < 0 {
				return fmt.Errorf("--%s %d: want a number, not negative (0: twice --%s)", c.burst, c.r.Burst, c.rate)
			}
		}
		if l.TenantKey.PerSecond == 0 {
			// As before there were several limits: --api-rate 0 turns them all off.
			*l = api.RateLimits{}
			log.Warn("API rate limits off (--api-rate 0): one API key can use all of the server")
		}
		return nil
	}
}
