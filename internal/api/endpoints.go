package api

import (
	"context"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/webhook"
)

// Endpoint is a URL of a tenant that receives the events it subscribes to.
type Endpoint struct {
	ID             string            `json:"id"`
	TenantID       string            `json:"tenant_id"`
	URL            string            `json:"url"`
	Description    string            `json:"description"`
	EventTypes     []string          `json:"event_types"`
	TimeoutSeconds int               `json:"timeout_seconds"`
	MaxConcurrency int               `json:"max_concurrency"`
	RateLimit      float64           `json:"rate_limit" doc:"Requests per second; 0 means no limit."`
	RetrySchedule  []int             `json:"retry_schedule" doc:"Seconds to wait before each attempt; the first is the delay of the first attempt."`
	Headers        map[string]string `json:"headers"`
	Enabled        bool              `json:"enabled"`
	DisabledReason string            `json:"disabled_reason,omitempty"`
	FailingSince   *time.Time        `json:"failing_since,omitempty" doc:"First failure since the last success."`
	Secret         string            `json:"secret,omitempty" doc:"The signing secret: in the answer that creates the endpoint."`
	CreatedAt      time.Time         `json:"created_at"`
	UpdatedAt      time.Time         `json:"updated_at"`
}

func endpointOut(e *store.Endpoint, defaultSchedule []time.Duration) Endpoint {
	sched := e.RetrySchedule
	if len(sched) == 0 {
		sched = defaultSchedule
	}
	secs := make([]int, len(sched))
	for i, d := range sched {
		secs[i] = int(d / time.Second)
	}
	h := e.Headers
	if h == nil {
		h = map[string]string{}
	}
	return Endpoint{
		ID: e.ID, TenantID: e.TenantID, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes,
		TimeoutSeconds: int(e.Timeout / time.Second), MaxConcurrency: e.MaxConcurrency, RateLimit: e.RateLimit,
		RetrySchedule: secs, Headers: h, Enabled: e.Enabled, DisabledReason: e.DisabledReason,
		FailingSince: e.FailingSince, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
	}
}

// EndpointFields are the settings shared by create and update; nil means "not given".
type EndpointFields struct {
	URL            *string           `json:"url,omitempty" maxLength:"2048" doc:"https URL (http and loopback only in --dev mode)." example:"https://example.com/webhooks"`
	Description    *string           `json:"description,omitempty" maxLength:"2000"`
	EventTypes     []string          `json:"event_types,omitempty" minItems:"1" maxItems:"200" doc:"Event type names, prefixes like invoice.*, or * for all." example:"[\"invoice.*\"]"`
	TimeoutSeconds *int              `json:"timeout_seconds,omitempty" minimum:"1" maximum:"30" doc:"Per-attempt timeout; default 10."`
	MaxConcurrency *int              `json:"max_concurrency,omitempty" minimum:"1" maximum:"1000" doc:"Requests in flight at once; default 10."`
	RateLimit      *float64          `json:"rate_limit,omitempty" minimum:"0" maximum:"100000" doc:"Requests per second; 0 for none."`
	RetrySchedule  []int             `json:"retry_schedule,omitempty" minItems:"1" maxItems:"50" doc:"Seconds before each attempt (each 0..604800); the default is about two days."`
	Headers        map[string]string `json:"headers,omitempty" doc:"Extra request headers."`
	Enabled        *bool             `json:"enabled,omitempty"`
}

type createEndpointInput struct {
	TenantPath
	Body struct {
		EndpointFields
		Secret string `json:"secret,omitempty" maxLength:"200" doc:"Your own whsec_ secret; one is generated if absent."`
	}
}

type EndpointPath struct {
	TenantPath
	ID string `path:"id" maxLength:"64"`
}

type updateEndpointInput struct {
	EndpointPath
	Body EndpointFields
}

// reservedHeaders are set by Herald and cannot be overridden by custom headers.
var reservedHeaders = map[string]bool{
	"webhook-id": true, "webhook-timestamp": true, "webhook-signature": true, "content-type": true,
	"content-length": true, "user-agent": true, "host": true, "transfer-encoding": true, "connection": true,
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
var (
	eventTypeRe = regexp.MustCompile(eventTypePattern)
	prefixRe    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
)

// apply validates the given fields and writes them into e.
func (s *Server) apply(ctx context.Context, f *EndpointFields, e *store.Endpoint) error {
	var errs []error
	if f.URL != nil {
		if err := s.cfg.URLCheck.ValidateURL(*f.URL); err != nil {
			errs = append(errs, &huma.ErrorDetail{Location: "body.url", Message: err.Error(), Value: *f.URL})
		}
		e.URL = *f.URL
	}
	if f.Description != nil {
		if strings.ContainsRune(*f.Description, 0) {
			errs = append(errs, &huma.ErrorDetail{Location: "body.description", Message: "must not contain NUL characters"})
		}
		e.Description = *f.Description
	}
	if f.EventTypes != nil {
		for i, p := range f.EventTypes {
			loc := fmt.Sprintf("body.event_types[%d]", i)
			switch {
			case p == "*":
			case strings.HasSuffix(p, ".*"):
				if prefix := strings.TrimSuffix(p, ".*"); !prefixRe.MatchString(prefix) {
					errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "not a valid prefix pattern (resource.*)", Value: p})
				}
			case !eventTypeRe.MatchString(p):
				errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "not a valid event type name (resource.action)", Value: p})
			default:
				if _, err := s.st.GetEventType(ctx, p); err != nil {
					errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "unknown event type; register it first", Value: p})
				}
			}
		}
		e.EventTypes = f.EventTypes
	}
	if f.TimeoutSeconds != nil {
		e.Timeout = time.Duration(*f.TimeoutSeconds) * time.Second
	}
	if f.MaxConcurrency != nil {
		e.MaxConcurrency = *f.MaxConcurrency
	}
	if f.RateLimit != nil {
		e.RateLimit = *f.RateLimit
	}
	if f.RetrySchedule != nil {
		e.RetrySchedule = make([]time.Duration, len(f.RetrySchedule))
		for i, sec := range f.RetrySchedule {
			if sec < 0 || sec > 7*24*3600 {
				errs = append(errs, &huma.ErrorDetail{Location: fmt.Sprintf("body.retry_schedule[%d]", i), Message: "must be between 0 and 604800 seconds", Value: sec})
			}
			e.RetrySchedule[i] = time.Duration(sec) * time.Second
		}
	}
	if f.Headers != nil {
		if len(f.Headers) > 50 {
			errs = append(errs, &huma.ErrorDetail{Location: "body.headers", Message: "at most 50 headers"})
		}
		for k, v := range f.Headers {
			loc := "body.headers." + k
			switch {
			case !headerName.MatchString(k):
				errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "not a valid header name"})
			case reservedHeaders[strings.ToLower(k)]:
				errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "set by Herald; cannot be overridden"})
			case len(v) > 4096 || strings.ContainsAny(v, "\r\n\x00"):
				errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "value too long or has control characters"})
			}
		}
		e.Headers = f.Headers
	}
	if f.Enabled != nil {
		if *f.Enabled && !e.Enabled {
			e.DisabledReason, e.FailingSince = "", nil
		} else if !*f.Enabled && e.Enabled {
			e.DisabledReason = "disabled through the API"
		}
		e.Enabled = *f.Enabled
	}
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("invalid endpoint", errs...)
	}
	return nil
}

// SecretInfo is an endpoint's signing secrets.
type SecretInfo struct {
	Key      string           `json:"key" doc:"The current secret (whsec_…)."`
	Previous []PreviousSecret `json:"previous" doc:"Rotated-out secrets still valid: deliveries are signed with these too until they expire."`
}

// PreviousSecret is a rotated-out secret in its overlap window.
type PreviousSecret struct {
	Key       string    `json:"key"`
	ExpiresAt time.Time `json:"expires_at"`
}

func secretOut(e *store.Endpoint, now time.Time) SecretInfo {
	out := SecretInfo{Previous: []PreviousSecret{}}
	for i, sec := range e.Secrets {
		if i == 0 {
			out.Key = sec.Key
			continue
		}
		if sec.ExpiresAt != nil && sec.ExpiresAt.After(now) {
			out.Previous = append(out.Previous, PreviousSecret{Key: sec.Key, ExpiresAt: *sec.ExpiresAt})
		}
	}
	return out
}

type rotateInput struct {
	EndpointPath
	Body *struct {
		Secret         string `json:"secret,omitempty" maxLength:"200" doc:"Your own new whsec_ secret; one is generated if absent."`
		OverlapSeconds *int   `json:"overlap_seconds,omitempty" minimum:"0" maximum:"604800" doc:"How long the old secret stays valid; default 86400."`
	}
}

func (s *Server) registerEndpoints() {
	tags := []string{"Endpoints"}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-endpoint", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/endpoints", Tags: tags,
		Summary: "Create an endpoint", Description: "The answer carries the endpoint's signing secret.", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createEndpointInput) (*Out[Endpoint], error) {
		now := s.now()
		e := &store.Endpoint{
			ID: newID("ep"), TenantID: in.Tenant, Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true,
			CreatedAt: now, UpdatedAt: now,
		}
		var errs []error
		if in.Body.URL == nil {
			errs = append(errs, &huma.ErrorDetail{Location: "body.url", Message: "required"})
		}
		if in.Body.EventTypes == nil {
			errs = append(errs, &huma.ErrorDetail{Location: "body.event_types", Message: "required: event type names, prefixes like invoice.*, or *"})
		}
		if len(errs) > 0 {
			return nil, huma.Error422UnprocessableEntity("invalid endpoint", errs...)
		}
		if err := s.apply(ctx, &in.Body.EndpointFields, e); err != nil {
			return nil, err
		}
		secret := in.Body.Secret
		if secret == "" {
			var err error
			if secret, err = webhook.NewSecret(); err != nil {
				return nil, s.fail(err, "secret")
			}
		} else if _, err := webhook.DecodeSecret(secret); err != nil || !strings.HasPrefix(secret, webhook.SecretPrefix) {
			return nil, huma.Error422UnprocessableEntity("invalid secret", &huma.ErrorDetail{Location: "body.secret", Message: "must be whsec_ followed by base64 of 24 to 64 bytes"})
		}
		e.Secrets = []store.Secret{{Key: secret}}
		if err := s.st.CreateEndpoint(ctx, e); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		out := endpointOut(e, s.defaultSchedule())
		out.Secret = secret
		return &Out[Endpoint]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-endpoints", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/endpoints", Tags: tags,
		Summary: "List a tenant's endpoints",
	}, func(ctx context.Context, in *struct {
		TenantPath
		ListParams
	}) (*Out[ListBody[Endpoint]], error) {
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		eps, next, err := s.st.ListEndpoints(ctx, in.Tenant, in.page())
		if err != nil {
			return nil, s.fail(err, "endpoints")
		}
		out := make([]Endpoint, len(eps))
		for i := range eps {
			out[i] = endpointOut(&eps[i], s.defaultSchedule())
		}
		return &Out[ListBody[Endpoint]]{Body: list(out, next)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-endpoint", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/endpoints/{id}", Tags: tags,
		Summary: "Get an endpoint",
	}, func(ctx context.Context, in *EndpointPath) (*Out[Endpoint], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		return &Out[Endpoint]{Body: endpointOut(e, s.defaultSchedule())}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-endpoint", Method: http.MethodPatch, Path: "/v1/tenants/{tenant}/endpoints/{id}", Tags: tags,
		Summary: "Change an endpoint", Description: "Only the fields given change. Setting enabled to true resumes the endpoint's pending deliveries.",
	}, func(ctx context.Context, in *updateEndpointInput) (*Out[Endpoint], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		if err := s.apply(ctx, &in.Body, e); err != nil {
			return nil, err
		}
		e.UpdatedAt = s.now()
		if err := s.st.UpdateEndpoint(ctx, e); err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.cfg.Notifier.EndpointChanged(e.ID)
		return &Out[Endpoint]{Body: endpointOut(e, s.defaultSchedule())}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-endpoint", Method: http.MethodDelete, Path: "/v1/tenants/{tenant}/endpoints/{id}", Tags: tags,
		Summary: "Delete an endpoint with its deliveries", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *EndpointPath) (*struct{}, error) {
		if err := s.st.DeleteEndpoint(ctx, in.Tenant, in.ID); err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.cfg.Notifier.EndpointChanged(in.ID)
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-endpoint-secret", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/endpoints/{id}/secret", Tags: tags,
		Summary: "Get an endpoint's signing secret",
	}, func(ctx context.Context, in *EndpointPath) (*Out[SecretInfo], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		return &Out[SecretInfo]{Body: secretOut(e, s.now())}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "rotate-endpoint-secret", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/endpoints/{id}/secret/rotate", Tags: tags,
		Summary:     "Rotate an endpoint's signing secret",
		Description: "The old secret stays valid for the overlap (default 24 h): every delivery in that window carries both signatures.",
	}, func(ctx context.Context, in *rotateInput) (*Out[SecretInfo], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		overlap, secret := s.cfg.SecretOverlap, ""
		if in.Body != nil {
			secret = in.Body.Secret
			if in.Body.OverlapSeconds != nil {
				overlap = time.Duration(*in.Body.OverlapSeconds) * time.Second
			}
		}
		if secret == "" {
			if secret, err = webhook.NewSecret(); err != nil {
				return nil, s.fail(err, "secret")
			}
		} else if _, err := webhook.DecodeSecret(secret); err != nil || !strings.HasPrefix(secret, webhook.SecretPrefix) {
			return nil, huma.Error422UnprocessableEntity("invalid secret", &huma.ErrorDetail{Location: "body.secret", Message: "must be whsec_ followed by base64 of 24 to 64 bytes"})
		}
		now := s.now()
		expires := now.Add(overlap)
		secrets := []store.Secret{{Key: secret}}
		for _, old := range e.Secrets {
			switch {
			case old.ExpiresAt == nil && overlap > 0:
				secrets = append(secrets, store.Secret{Key: old.Key, ExpiresAt: &expires})
			case old.ExpiresAt != nil && old.ExpiresAt.After(now):
				secrets = append(secrets, old)
			}
		}
		e.Secrets, e.UpdatedAt = secrets, now
		if err := s.st.UpdateEndpoint(ctx, e); err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.cfg.Notifier.EndpointChanged(e.ID)
		return &Out[SecretInfo]{Body: secretOut(e, now)}, nil
	})
}

func (s *Server) defaultSchedule() []time.Duration { return dispatch.DefaultSchedule }
