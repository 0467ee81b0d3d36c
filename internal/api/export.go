package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// An export is JSON lines in three sections, each newest first and each read a page at a time,
// so that memory stays bounded whatever the tenant's history: the events created in the range,
// then the deliveries created in it, then the attempts made in it. Every line names the ids that
// join it to the others. The last line says how many of each were written; a stream without it
// was cut short, and one that broke on the server ends with an error line instead.

// ExportLine is one line of an export: kind says which of the other fields it carries.
type ExportLine struct {
	Kind     string    `json:"kind" enum:"event,delivery,attempt,end,error"`
	Event    *Event    `json:"event,omitempty"`
	Delivery *Delivery `json:"delivery,omitempty"`
	Attempt  *Attempt  `json:"attempt,omitempty"`
	// Counts, in the end line.
	Events     *int `json:"events,omitempty"`
	Deliveries *int `json:"deliveries,omitempty"`
	Attempts   *int `json:"attempts,omitempty"`
	// Error, in an error line: the export stopped there.
	Error string `json:"error,omitempty"`
}

// exportWriteWindow is how long the server waits for the client to take one page of an export;
// the deadline moves with every page, so a long export is not cut by the server's write timeout.
const exportWriteWindow = time.Minute

const (
	// exportEventPage is how many events an export reads at once: events may be 256 KiB each, so
	// a page of the API's usual 250 would hold 62 MiB while a slow client reads it.
	exportEventPage = 16
	// maxExportsPerTenant bounds the exports of one tenant running at once: each holds a page and
	// a connection for as long as its client takes to read.
	maxExportsPerTenant = 2
)

// exportsBusy is the answer to an export past maxExportsPerTenant.
func exportsBusy() error {
	return huma.ErrorWithHeaders(huma.NewError(http.StatusTooManyRequests,
		fmt.Sprintf("too many exports: this tenant already has %d running, the most it may run at once; retry once one ends", maxExportsPerTenant)),
		http.Header{"Retry-After": []string{"10"}})
}

func (s *Server) registerExport() {
	huma.Register(s.api, huma.Operation{
		OperationID: "export-tenant", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/export", Tags: []string{"Tenants"},
		Summary: "Export a tenant's delivery history as JSON lines",
		Description: "Streams application/x-ndjson: the events created in [since, until), then the deliveries created in it, then the " +
			"attempts made in it, each section newest first, one object a line ({\"kind\":\"event\",\"event\":{…}}, \"delivery\", \"attempt\"). " +
			"The last line is {\"kind\":\"end\",\"events\":n,\"deliveries\":n,\"attempts\":n}; a stream without it is incomplete. " +
			"Event data and attempt responses are redacted by the tenant's redact_fields.",
		Responses: map[string]*huma.Response{
			"200": {
				Description: "One ExportLine per line.",
				Content: map[string]*huma.MediaType{"application/x-ndjson": {
					Schema: s.api.OpenAPI().Components.Schemas.Schema(reflect.TypeFor[ExportLine](), true, "ExportLine"),
				}},
			},
		},
	}, func(ctx context.Context, in *struct {
		TenantPath
		TimeRange
	}) (*huma.StreamResponse, error) {
		if !in.Since.IsZero() && !in.Until.IsZero() && !in.Until.After(in.Since) {
			return nil, huma.Error422UnprocessableEntity("invalid time range", &huma.ErrorDetail{Location: "query.until", Message: "must be after since", Value: in.Until})
		}
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		type rng struct {
			Since *time.Time `json:"since,omitempty"`
			Until *time.Time `json:"until,omitempty"`
		}
		var r rng
		if !in.Since.IsZero() {
			r.Since = &in.Since
		}
		if !in.Until.IsZero() {
			r.Until = &in.Until
		}
		release, full := s.exports.take(in.Tenant, maxExportsPerTenant, 0)
		if full != "" {
			return nil, exportsBusy()
		}
		s.recordAfter(ctx, s.audit(ctx, "tenant.export", "tenant", in.Tenant, in.Tenant, nil, r))
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			defer release()
			s.export(hctx, in.Tenant, in.Since, in.Until, paths)
		}}, nil
	})
}

// export writes the stream. The status is sent before the first page is read, so a failure
// later can only be told in the stream: an error line, and no end line.
func (s *Server) export(hctx huma.Context, tenant string, since, until time.Time, paths redact.Paths) {
	ctx := hctx.Context()
	_, w := humago.Unwrap(hctx)
	rc := http.NewResponseController(w)
	hctx.SetHeader("Content-Type", "application/x-ndjson")
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetStatus(http.StatusOK)
	enc := json.NewEncoder(hctx.BodyWriter())
	enc.SetEscapeHTML(false)
	var events, deliveries, attempts int
	// page moves the write deadline on, and flushes what the last page wrote.
	page := func() {
		_ = rc.SetWriteDeadline(time.Now().Add(exportWriteWindow))
		_ = rc.Flush()
	}
	err := func() error {
		page()
		for cursor := ""; ; {
			evs, next, err := s.st.ListEvents(ctx, store.EventFilter{TenantID: tenant, Since: since, Until: until, Page: store.Page{Limit: exportEventPage, Cursor: cursor}})
			if err != nil {
				return err
			}
			for i := range evs {
				ev, err := eventOut(&evs[i], paths)
				if err != nil {
					return err
				}
				if err := enc.Encode(ExportLine{Kind: "event", Event: &ev}); err != nil {
					return err
				}
				events++
			}
			page()
			if cursor = next; cursor == "" {
				break
			}
		}
		for cursor := ""; ; {
			ds, next, err := s.st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: tenant, Since: since, Until: until, Page: store.Page{Limit: store.MaxLimit, Cursor: cursor}})
			if err != nil {
				return err
			}
			for i := range ds {
				d := deliveryOut(&ds[i], nil, paths)
				if err := enc.Encode(ExportLine{Kind: "delivery", Delivery: &d}); err != nil {
					return err
				}
				deliveries++
			}
			page()
			if cursor = next; cursor == "" {
				break
			}
		}
		for cursor := ""; ; {
			as, next, err := s.st.ListAttempts(ctx, store.AttemptFilter{TenantID: tenant, Since: since, Until: until, Page: store.Page{Limit: store.MaxLimit, Cursor: cursor}})
			if err != nil {
				return err
			}
			for i := range as {
				a := attemptOut(&as[i], paths)
				if err := enc.Encode(ExportLine{Kind: "attempt", Attempt: &a}); err != nil {
					return err
				}
				attempts++
			}
			page()
			if cursor = next; cursor == "" {
				break
			}
		}
		return enc.Encode(ExportLine{Kind: "end", Events: &events, Deliveries: &deliveries, Attempts: &attempts})
	}()
	if err != nil {
		if ctx.Err() == nil && !errors.Is(err, context.Canceled) {
			s.log.Error("export failed", "tenant", tenant, "events", events, "deliveries", deliveries, "attempts", attempts, "err", err)
			_ = enc.Encode(ExportLine{Kind: "error", Error: "the export failed on the server; it is incomplete"})
		}
	}
	_ = rc.Flush()
}
