package api

import (
	"context"
	"net/http"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/store"
)

// StatsBucket counts a tenant's traffic in [Start, Start+bucket_seconds).
type StatsBucket struct {
	Start          time.Time `json:"start"`
	Events         int       `json:"events" doc:"Events created in the bucket."`
	Deliveries     int       `json:"deliveries" doc:"Deliveries created in the bucket."`
	Succeeded      int       `json:"succeeded" doc:"Of those deliveries, how many are succeeded now."`
	Pending        int       `json:"pending"`
	Dead           int       `json:"dead"`
	Attempts       int       `json:"attempts" doc:"Attempts made in the bucket."`
	FailedAttempts int       `json:"failed_attempts" doc:"Of those attempts, how many failed."`
}

// StatsSeries is a tenant's traffic over a period, in equal buckets, oldest first.
type StatsSeries struct {
	Since         time.Time     `json:"since"`
	Until         time.Time     `json:"until"`
	BucketSeconds float64       `json:"bucket_seconds"`
	Buckets       []StatsBucket `json:"buckets"`
}

// Every Stats count is over a set of rows selected by "created (or made) at or after since", so the
// count of a bucket [a, b) is Stats(a) - Stats(b). That makes the series one Stats call per bucket
// on any store, without a store method of its own: at most maxBuckets small indexed counts.
const maxBuckets = 60

func (s *Server) registerTimeseries() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-stats-timeseries", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/stats/timeseries", Tags: []string{"Deliveries"},
		Summary:     "Count events, deliveries, attempts and failures over time, in buckets",
		Description: "since is a duration back from now (1h, 30m, 7d) or an RFC 3339 time; default 24h. The period up to now is cut into `buckets` equal buckets (default 24, 2-60), oldest first. Delivery counts are by creation time and current state; attempt counts by the attempt's time.",
	}, func(ctx context.Context, in *struct {
		TenantPath
		Since   string `query:"since" default:"24h" maxLength:"40"`
		Buckets int    `query:"buckets" default:"24" minimum:"2" maximum:"60"`
	}) (*Out[StatsSeries], error) {
		now := s.now()
		since, err := ParseSince(in.Since, now)
		if err != nil || !since.Before(now) {
			msg := "must be before now"
			if err != nil {
				msg = err.Error()
			}
			return nil, huma.Error422UnprocessableEntity("invalid since", &huma.ErrorDetail{Location: "query.since", Message: msg, Value: in.Since})
		}
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		n := min(max(in.Buckets, 2), maxBuckets)
		step := now.Sub(since) / time.Duration(n)
		out := StatsSeries{Since: since, Until: now, BucketSeconds: step.Seconds(), Buckets: make([]StatsBucket, n)}
		// Newest bucket first, so that each Stats call is subtracted from the one after it.
		var later store.Stats
		for i := n - 1; i >= 0; i-- {
			start := since.Add(time.Duration(i) * step)
			st, err := s.st.Stats(ctx, in.Tenant, start)
			if err != nil {
				return nil, s.fail(err, "stats")
			}
			// Rows written between two calls can make a difference negative by a few: clamp.
			d := func(a, b int) int { return max(a-b, 0) }
			out.Buckets[i] = StatsBucket{
				Start: start, Events: d(st.Events, later.Events), Deliveries: d(st.Deliveries, later.Deliveries),
				Succeeded: d(st.Succeeded, later.Succeeded), Pending: d(st.Pending, later.Pending), Dead: d(st.Dead, later.Dead),
				Attempts: d(st.Attempts, later.Attempts), FailedAttempts: d(st.FailedAttempts, later.FailedAttempts),
			}
			later = *st
		}
		return &Out[StatsSeries]{Body: out}, nil
	})
}
