package api

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"reflect"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/heraldhq/herald/internal/store"
)

// Usage metering: the store keeps counters per tenant, hour and endpoint as the work happens
// (store/usage.go); these routes sum them into hours or UTC days.

// UsageBucket is the usage of one hour or day (and endpoint, when asked by endpoint).
type UsageBucket struct {
	TenantID   string    `json:"tenant_id,omitempty" doc:"In the export of all tenants."`
	Start      time.Time `json:"start" doc:"The bucket's first instant (UTC)."`
	EndpointID string    `json:"endpoint_id,omitempty" doc:"With by=endpoint or endpoint=…: the endpoint the figures are of."`
	store.UsageCounts
}

// Usage is a tenant's usage over a time range.
type Usage struct {
	TenantID    string            `json:"tenant_id"`
	Granularity string            `json:"granularity" enum:"hour,day"`
	From        time.Time         `json:"from" doc:"The first bucket's start."`
	To          time.Time         `json:"to" doc:"The end of the last bucket (exclusive)."`
	Totals      store.UsageCounts `json:"totals" doc:"The sums over the range."`
	Buckets     []UsageBucket     `json:"buckets" doc:"The buckets that counted something, in order of time (and endpoint)."`
}

// UsageRange are the query parameters of a usage read.
type UsageRange struct {
	From        string `query:"from" maxLength:"40" doc:"Start (RFC 3339 or YYYY-MM-DD, UTC), rounded down to the bucket; default: 30 days before to." example:"2026-11-01"`
	To          string `query:"to" maxLength:"40" doc:"End, exclusive (RFC 3339 or YYYY-MM-DD), rounded up to the bucket; default: now." example:"2026-12-01"`
	Granularity string `query:"granularity" enum:"hour,day" default:"day" doc:"Bucket size."`
}

// maxUsageBuckets bounds the buckets one read spans: 100 days of hours, 10 years of days.
const (
	maxUsageHours = 100 * 24
	maxUsageDays  = 3660
)

// parseUsageTime reads an RFC 3339 time or a YYYY-MM-DD date (UTC midnight).
func parseUsageTime(loc, v string) (time.Time, error) {
	if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
		return t.UTC(), nil
	}
	if t, err := time.Parse(time.DateOnly, v); err == nil {
		return t, nil
	}
	return time.Time{}, huma.Error422UnprocessableEntity("invalid time", &huma.ErrorDetail{Location: loc, Message: "not an RFC 3339 time or a YYYY-MM-DD date", Value: v})
}

// filter checks the range and makes the store's filter (buckets aligned to the granularity).
func (r UsageRange) filter(now time.Time) (store.UsageFilter, error) {
	f := store.UsageFilter{Daily: r.Granularity == "day"}
	size, most := time.Hour, maxUsageHours
	if f.Daily {
		size, most = 24*time.Hour, maxUsageDays
	}
	to := now
	if r.To != "" {
		var err error
		if to, err = parseUsageTime("query.to", r.To); err != nil {
			return f, err
		}
	}
	if t := to.Truncate(size); !t.Equal(to) {
		to = t.Add(size)
	}
	from := to.Add(-30 * 24 * time.Hour)
	if r.From != "" {
		var err error
		if from, err = parseUsageTime("query.from", r.From); err != nil {
			return f, err
		}
	}
	from = from.Truncate(size)
	if !to.After(from) {
		return f, huma.Error422UnprocessableEntity("invalid time range", &huma.ErrorDetail{Location: "query.to", Message: "must be after from", Value: r.To})
	}
	if to.Sub(from) > time.Duration(most)*size {
		return f, huma.Error422UnprocessableEntity("time range too long", &huma.ErrorDetail{Location: "query.from",
			Message: "at most " + strconv.Itoa(most) + " buckets of granularity " + r.Granularity + " at once", Value: r.From})
	}
	f.From, f.To = from, to
	return f, nil
}

type usageInput struct {
	TenantPath
	UsageRange
	Endpoint string `query:"endpoint" maxLength:"64" doc:"Only this endpoint's figures (deliveries, attempts, bytes sent)."`
	By       string `query:"by" enum:"endpoint" doc:"endpoint: one bucket per endpoint and time (endpoints' figures only) instead of the tenant's totals."`
}

type usageExportInput struct {
	UsageRange
	Format string `query:"format" enum:"jsonl,csv" default:"jsonl" doc:"JSON lines (one UsageBucket a line) or CSV with a header row."`
}

// usageCSVHeader is the CSV export's header row; usageCSVRow its rows.
var usageCSVHeader = []string{"tenant_id", "start", "events", "event_bytes", "requests_received", "bytes_received",
	"deliveries", "attempts_ok", "attempts_failed", "bytes_sent"}

func usageCSVRow(r store.UsageRow) []string {
	c := r.UsageCounts
	row := []string{r.TenantID, r.Start.Format(time.RFC3339)}
	for _, v := range []int64{c.Events, c.EventBytes, c.RequestsReceived, c.BytesReceived, c.Deliveries, c.AttemptsOK, c.AttemptsFailed, c.BytesSent} {
		row = append(row, strconv.FormatInt(v, 10))
	}
	return row
}

func (s *Server) registerUsage() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-tenant-usage", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/usage", Tags: []string{"Tenants"},
		Summary: "Read a tenant's usage",
		Description: "Events published and received, deliveries, attempts (succeeded and failed) and bytes, by hour or UTC day, counted exactly " +
			"as the work is done (not sampled). Retention does not remove them; deleting the tenant does.",
	}, func(ctx context.Context, in *usageInput) (*Out[Usage], error) {
		f, err := in.filter(s.now())
		if err != nil {
			return nil, err
		}
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		f.TenantID, f.EndpointID, f.ByEndpoint = in.Tenant, in.Endpoint, in.By == "endpoint"
		rows, err := s.st.Usage(ctx, f)
		if err != nil {
			return nil, s.fail(err, "usage")
		}
		out := Usage{TenantID: in.Tenant, Granularity: in.Granularity, From: f.From, To: f.To, Buckets: make([]UsageBucket, len(rows))}
		for i, r := range rows {
			out.Buckets[i] = UsageBucket{Start: r.Start, EndpointID: r.EndpointID, UsageCounts: r.UsageCounts}
			out.Totals.Add(r.UsageCounts)
		}
		return &Out[Usage]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "export-usage", Method: http.MethodGet, Path: "/v1/usage", Tags: []string{"Tenants"},
		Summary:     "Export every tenant's usage",
		Description: "Streams each tenant's usage buckets (tenants in creation order, buckets in time order) as JSON lines (application/x-ndjson, one UsageBucket a line) or CSV (text/csv with a header row). A stream that breaks on the server ends with a line {\"error\":…} (JSON lines) or a row starting with #error (CSV).",
		Metadata:    map[string]any{metaAdminOnly: true},
		Responses: map[string]*huma.Response{
			"200": {
				Description: "One UsageBucket per line, or CSV.",
				Content: map[string]*huma.MediaType{
					"application/x-ndjson": {Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[UsageBucket](), true, "UsageBucket")},
					"text/csv":             {},
				},
			},
		},
	}, func(ctx context.Context, in *usageExportInput) (*huma.StreamResponse, error) {
		f, err := in.filter(s.now())
		if err != nil {
			return nil, err
		}
		return &huma.StreamResponse{Body: func(hctx huma.Context) { s.exportUsage(hctx, f, in.Format == "csv") }}, nil
	})
}

// exportUsage writes every tenant's usage, a tenant at a time, so that memory holds one tenant's
// buckets whatever the number of tenants.
func (s *Server) exportUsage(hctx huma.Context, f store.UsageFilter, asCSV bool) {
	ctx := hctx.Context()
	_, w := humago.Unwrap(hctx)
	rc := http.NewResponseController(w)
	if asCSV {
		hctx.SetHeader("Content-Type", "text/csv; charset=utf-8")
	} else {
		hctx.SetHeader("Content-Type", "application/x-ndjson")
	}
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetStatus(http.StatusOK)
	cw := csv.NewWriter(hctx.BodyWriter())
	enc := json.NewEncoder(hctx.BodyWriter())
	if asCSV {
		_ = cw.Write(usageCSVHeader)
	}
	err := func() error {
		for cursor := ""; ; {
			_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
			ts, next, err := s.st.ListTenants(ctx, store.Page{Limit: store.MaxLimit, Cursor: cursor})
			if err != nil {
				return err
			}
			for _, t := range ts {
				tf := f
				tf.TenantID = t.ID
				rows, err := s.st.Usage(ctx, tf)
				if err != nil {
					return err
				}
				for _, r := range rows {
					if asCSV {
						err = cw.Write(usageCSVRow(r))
					} else {
						err = enc.Encode(UsageBucket{TenantID: r.TenantID, Start: r.Start, UsageCounts: r.UsageCounts})
					}
					if err != nil {
						return err
					}
				}
			}
			if asCSV {
				cw.Flush()
			}
			_ = rc.Flush()
			if next == "" {
				return nil
			}
			cursor = next
		}
	}()
	if err != nil && ctx.Err() == nil {
		s.log.Error("usage export failed", "err", err)
		if asCSV {
			_ = cw.Write([]string{"#error", "the export stopped on a server error"})
		} else {
			_ = enc.Encode(map[string]string{"error": "the export stopped on a server error"})
		}
	}
	if asCSV {
		cw.Flush()
	}
}
