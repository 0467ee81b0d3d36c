package api

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/destination"
	webhookdest "github.com/heraldhq/herald/internal/destination/webhook"
	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/webhook"
)

// Endpoint is a URL of a tenant that receives the events it subscribes to.
type Endpoint struct {
	ID              string            `json:"id"`
	TenantID        string            `json:"tenant_id"`
	URL             string            `json:"url"`
	Description     string            `json:"description"`
	EventTypes      []string          `json:"event_types"`
	TimeoutSeconds  int               `json:"timeout_seconds"`
	MaxConcurrency  int               `json:"max_concurrency"`
	RateLimit       float64           `json:"rate_limit" doc:"Requests per second; 0 means no limit."`
	RetrySchedule   []int             `json:"retry_schedule" doc:"Seconds to wait before each attempt; the first is the delay of the first attempt."`
	Headers         map[string]string `json:"headers"`
	Enabled         bool              `json:"enabled"`
	Internal        bool              `json:"internal" doc:"On the operator's own network: may reach the private ranges the operator opened with --internal-cidr, over http or https. Set by admin keys only."`
	DisabledReason  string            `json:"disabled_reason,omitempty"`
	FailingSince    *time.Time        `json:"failing_since,omitempty" doc:"First failure since the last success."`
	BreakerState    string            `json:"breaker_state,omitempty" enum:"closed,half-open,open" doc:"The circuit breaker of the node that answers: open while it holds deliveries back after consecutive failures, half-open while one probe is let through. Each node keeps its own."`
	Secret          string            `json:"secret,omitempty" doc:"The whsec_ signing secret of an hmac-sha256 endpoint: in the answer that creates the endpoint."`
	SignatureScheme string            `json:"signature_scheme" enum:"hmac-sha256,ed25519" doc:"hmac-sha256 signs v1 signatures with a shared whsec_ secret; ed25519 signs v1a signatures with a private key only Herald holds."`
	PublicKey       string            `json:"public_key,omitempty" doc:"ed25519 endpoints: the whpk_ public key receivers verify v1a signatures with."`
	Type            string            `json:"type" doc:"The destination type: webhook (an HTTPS POST to url) or a message broker type."`
	Config          map[string]any    `json:"config,omitempty" doc:"The destination type's settings (for a webhook: how it authenticates to the receiver, its client certificate, its proxy), without its credentials."`
	ConfigSecrets   []string          `json:"config_secrets,omitempty" doc:"The credential fields of config that are set: sealed at rest, never shown."`
	// ClientCertificate describes a webhook endpoint's tls_client_certificate (read only).
	ClientCertificate *webhookdest.CertificateInfo `json:"client_certificate,omitempty" readOnly:"true" doc:"Webhook endpoints with mutual TLS: the client certificate in config.tls_client_certificate, with its expiry (read only)."`
	EndpointOptions
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at"`
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
	out := Endpoint{
		ID: e.ID, TenantID: e.TenantID, URL: e.URL, Description: e.Description, EventTypes: e.EventTypes,
		TimeoutSeconds: int(e.Timeout / time.Second), MaxConcurrency: e.MaxConcurrency, RateLimit: e.RateLimit,
		RetrySchedule: secs, Headers: h, Enabled: e.Enabled, Internal: e.Internal, DisabledReason: e.DisabledReason,
		FailingSince: e.FailingSince, CreatedAt: e.CreatedAt, UpdatedAt: e.UpdatedAt,
		SignatureScheme: e.SignatureScheme(), EndpointOptions: optionsOut(e.Options),
	}
	if out.SignatureScheme == store.SchemeEd25519 {
		out.PublicKey = shownKey(e.Secrets[0].Key)
	}
	out.Type = e.DestinationType()
	out.Config, out.ConfigSecrets = configOut(e)
	if out.Type == destination.TypeWebhook {
		out.ClientCertificate = webhookdest.ClientCertificate(e.Settings)
	}
	return out
}

// breakerStates is what the dispatcher tells of its circuit breakers.
type breakerStates interface {
	BreakerState(endpointID string) string
}

// withBreaker adds this node's breaker state to an endpoint answer (not to audit snapshots,
// where it would be noise).
func (s *Server) withBreaker(e Endpoint) Endpoint {
	if b, ok := s.cfg.Notifier.(breakerStates); ok {
		e.BreakerState = b.BreakerState(e.ID)
	}
	return e
}

// shownKey is what the API may show of a signing key: an HMAC secret as it is (the receiver
// needs it), an Ed25519 private key only as its public key.
func shownKey(key string) string {
	if store.KeyScheme(key) == store.SchemeEd25519 {
		pub, err := webhook.PublicKey(key)
		if err != nil {
			return "" // never the private key, whatever is wrong with it
		}
		return pub
	}
	return key
}

// EndpointFields are the settings shared by create and update; nil means "not given".
type EndpointFields struct {
	Type            *string           `json:"type,omitempty" maxLength:"64" doc:"The destination type: webhook (default: an HTTPS POST to url) or one of the message broker types this server has. Messages to a broker carry the same body and Standard Webhooks headers as a webhook."`
	Config          map[string]any    `json:"config,omitempty" doc:"The destination type's settings (for a webhook: how it authenticates to the receiver, its client certificate, its proxy; GET /v1/destination-types lists them), checked field by field. Its credentials are sealed at rest and never shown; an update's config replaces the whole config, except that a credential it omits keeps its stored value (null removes it)."`
	URL             *string           `json:"url,omitempty" maxLength:"2048" doc:"Webhook endpoints only (required for them): https URL (http and loopback only in --dev mode; http for internal endpoints). Only an admin key may change the URL of an internal endpoint." example:"https://example.com/webhooks"`
	Description     *string           `json:"description,omitempty" maxLength:"2000"`
	EventTypes      []string          `json:"event_types,omitempty" minItems:"1" maxItems:"200" doc:"Event type names, prefixes like invoice.*, or * for all." example:"[\"invoice.*\"]"`
	TimeoutSeconds  *int              `json:"timeout_seconds,omitempty" minimum:"1" maximum:"30" doc:"Per-attempt timeout; default 10."`
	MaxConcurrency  *int              `json:"max_concurrency,omitempty" minimum:"1" maximum:"1000" doc:"Requests in flight at once; default 10."`
	RateLimit       *float64          `json:"rate_limit,omitempty" minimum:"0" maximum:"100000" doc:"Requests per second; 0 for none."`
	RetrySchedule   []int             `json:"retry_schedule,omitempty" minItems:"1" maxItems:"50" doc:"Seconds before each attempt (each 0..604800); the default is about two days."`
	Headers         map[string]string `json:"headers,omitempty" doc:"Extra request headers."`
	Enabled         *bool             `json:"enabled,omitempty"`
	Internal        *bool             `json:"internal,omitempty" doc:"Admin keys only: mark the endpoint as on the operator's network, so it may reach the ranges the operator opened with --internal-cidr (and use http). Default false. A tenant key may turn it off, not on."`
	SignatureScheme *string           `json:"signature_scheme,omitempty" enum:"hmac-sha256,ed25519" doc:"Default hmac-sha256. ed25519: Herald generates a key pair and shows only the public key. Changing it rotates to a new key of that scheme, with the default overlap."`
	EndpointOptionFields
}

type createEndpointInput struct {
	TenantPath
	Body struct {
		EndpointFields
		Secret string `json:"secret,omitempty" maxLength:"200" doc:"Your own whsec_ secret (hmac-sha256 only); one is generated if absent."`
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
	"x-hub-signature-256": true, "stripe-signature": true, "x-herald-delivery": true,
	"content-length": true, "user-agent": true, "host": true, "transfer-encoding": true, "connection": true,
}

var headerName = regexp.MustCompile("^[!#$%&'*+.^_`|~0-9A-Za-z-]{1,100}$")
var (
	eventTypeRe = regexp.MustCompile(eventTypePattern)
	prefixRe    = regexp.MustCompile(`^[a-z][a-z0-9_]*(\.[a-z][a-z0-9_]*)*$`)
)

// apply validates the given fields and writes them into e.
func (s *Server) apply(ctx context.Context, f *EndpointFields, e *store.Endpoint) error {
	if err := s.applyInternal(ctx, f, e); err != nil {
		return err
	}
	wasType, wasConfig := e.DestinationType(), destinationOut(e)
	errs := s.applyDestination(f, e)
	if e.Internal && !isAdmin(ctx) && (e.DestinationType() != wasType || !reflect.DeepEqual(destinationOut(e), wasConfig)) {
		// A broker endpoint's destination is its config: as for a URL, a tenant key may not move
		// an internal endpoint elsewhere (its credentials it may change).
		return huma.Error403Forbidden("only an admin key may change the destination of an internal endpoint",
			&huma.ErrorDetail{Location: "body.config", Message: "the endpoint is internal: needs an admin key"})
	}
	if f.URL != nil && e.DestinationType() == destination.TypeWebhook {
		if err := s.checkURL(ctx, e.Internal, *f.URL); err != nil {
			errs = append(errs, &huma.ErrorDetail{Location: "body.url", Message: err.Error(), Value: *f.URL})
		}
		e.URL = *f.URL
	} else if f.Internal != nil && !e.Internal && e.URL != "" {
		// Turned off: the URL it has must now pass the ordinary check.
		if err := s.checkURL(ctx, false, e.URL); err != nil {
			errs = append(errs, &huma.ErrorDetail{Location: "body.internal", Message: "the endpoint's URL needs internal: " + err.Error(), Value: false})
		}
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
				if _, err := s.st.GetEventType(ctx, p); errors.Is(err, store.ErrNotFound) {
					errs = append(errs, &huma.ErrorDetail{Location: loc, Message: "unknown event type; register it first", Value: p})
				} else if err != nil {
					return s.fail(err, "event type "+p)
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
	errs = append(errs, s.applyOptions(ctx, f, e)...)
	errs = append(errs, checkSignatureForType(e)...)
	over, err := s.checkEndpointLimits(ctx, e)
	if err != nil {
		return s.fail(err, "tenant "+e.TenantID)
	}
	errs = append(errs, over...)
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("invalid endpoint", errs...)
	}
	return nil
}

// applyInternal writes the internal flag into e. The flag opens the operator's --internal-cidr
// ranges to the endpoint, so it is the operator's decision: a tenant key may turn it off but not
// on, and may not move an internal endpoint to another URL, which would take the opening along.
func (s *Server) applyInternal(ctx context.Context, f *EndpointFields, e *store.Endpoint) error {
	if isAdmin(ctx) {
		if f.Internal != nil {
			e.Internal = *f.Internal
		}
		return nil
	}
	if f.Internal != nil && *f.Internal && !e.Internal {
		return huma.Error403Forbidden("only an admin key may mark an endpoint internal",
			&huma.ErrorDetail{Location: "body.internal", Message: "needs an admin key", Value: true})
	}
	if f.URL != nil && *f.URL != e.URL && e.Internal && (f.Internal == nil || *f.Internal) {
		return huma.Error403Forbidden("only an admin key may change the URL of an internal endpoint",
			&huma.ErrorDetail{Location: "body.url", Message: "the endpoint is internal: needs an admin key", Value: *f.URL})
	}
	if f.Internal != nil {
		e.Internal = *f.Internal
	}
	return nil
}

// checkURL is the registration check of an endpoint URL, by the client that will send to it.
func (s *Server) checkURL(ctx context.Context, internal bool, raw string) error {
	if internal && s.cfg.InternalURLCheck != nil {
		return s.cfg.InternalURLCheck.ValidateURL(raw)
	}
	err := s.cfg.URLCheck.ValidateURL(raw)
	if err != nil && isAdmin(ctx) && s.cfg.InternalURLCheck != nil && s.cfg.InternalURLCheck.ValidateURL(raw) == nil {
		// Only admins learn which ranges --internal-cidr opens.
		return fmt.Errorf("%w; it is reachable by internal endpoints: set internal to true", err)
	}
	return err
}

func isAdmin(ctx context.Context) bool {
	p, ok := ctx.Value(principalKey{}).(principal)
	return ok && p.admin()
}

// SecretInfo is what receivers verify an endpoint's signatures with. Ed25519 private keys never
// leave Herald: for them the answer carries the public key.
type SecretInfo struct {
	Key             string           `json:"key" doc:"The current key: the whsec_ secret (hmac-sha256) or the whpk_ public key (ed25519)."`
	SignatureScheme string           `json:"signature_scheme" enum:"hmac-sha256,ed25519"`
	Previous        []PreviousSecret `json:"previous" doc:"Rotated-out keys still valid: deliveries are signed with these too until they expire."`
}

// PreviousSecret is a rotated-out key in its overlap window.
type PreviousSecret struct {
	Key             string    `json:"key" doc:"whsec_ secret or whpk_ public key."`
	SignatureScheme string    `json:"signature_scheme" enum:"hmac-sha256,ed25519"`
	ExpiresAt       time.Time `json:"expires_at"`
}

func secretOut(e *store.Endpoint, now time.Time) SecretInfo {
	out := SecretInfo{Previous: []PreviousSecret{}, SignatureScheme: e.SignatureScheme()}
	for i, sec := range e.Secrets {
		if i == 0 {
			out.Key = shownKey(sec.Key)
			continue
		}
		if sec.ExpiresAt != nil && sec.ExpiresAt.After(now) {
			out.Previous = append(out.Previous, PreviousSecret{Key: shownKey(sec.Key), SignatureScheme: store.KeyScheme(sec.Key), ExpiresAt: *sec.ExpiresAt})
		}
	}
	return out
}

// newKey makes an endpoint's next signing key in the scheme: the given whsec_ secret, or a
// generated secret or Ed25519 key. It returns a problem naming the field for a bad secret.
func (s *Server) newKey(scheme, secret string) (string, error) {
	switch {
	case scheme == store.SchemeEd25519 && secret != "":
		return "", huma.Error422UnprocessableEntity("invalid secret", &huma.ErrorDetail{Location: "body.secret",
			Message: "only for hmac-sha256 endpoints: Herald generates ed25519 keys, and only their public key leaves it"})
	case scheme == store.SchemeEd25519:
		private, _, err := webhook.NewSigningKey()
		if err != nil {
			return "", s.fail(err, "signing key")
		}
		return private, nil
	case secret == "":
		key, err := webhook.NewSecret()
		if err != nil {
			return "", s.fail(err, "secret")
		}
		return key, nil
	}
	if _, err := webhook.DecodeSecret(secret); err != nil || !strings.HasPrefix(secret, webhook.SecretPrefix) {
		return "", huma.Error422UnprocessableEntity("invalid secret", &huma.ErrorDetail{Location: "body.secret", Message: "must be whsec_ followed by base64 of 24 to 64 bytes"})
	}
	return secret, nil
}

// rotate makes key the endpoint's current key; the current one stays valid for overlap (none
// if 0), and earlier ones until they expire. Deliveries meanwhile carry a signature per key.
func rotate(e *store.Endpoint, key string, overlap time.Duration, now time.Time) {
	expires := now.Add(overlap)
	secrets := []store.Secret{{Key: key}}
	for _, old := range e.Secrets {
		switch {
		case old.ExpiresAt == nil && overlap > 0:
			secrets = append(secrets, store.Secret{Key: old.Key, ExpiresAt: &expires})
		case old.ExpiresAt != nil && old.ExpiresAt.After(now):
			secrets = append(secrets, old)
		}
	}
	e.Secrets = secrets
}

type rotateInput struct {
	EndpointPath
	Body *struct {
		Secret          string `json:"secret,omitempty" maxLength:"200" doc:"Your own new whsec_ secret; one is generated if absent."`
		OverlapSeconds  *int   `json:"overlap_seconds,omitempty" minimum:"0" maximum:"604800" doc:"How long the old secret stays valid; default 86400."`
		SignatureScheme string `json:"signature_scheme,omitempty" enum:"hmac-sha256,ed25519" doc:"The new key's scheme; default the endpoint's current one."`
	}
}

func (s *Server) registerEndpoints() {
	tags := []string{"Endpoints"}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-endpoint", Metadata: map[string]any{metaSecretBody: true, metaMayForbid: true}, Method: http.MethodPost, Path: "/v1/tenants/{tenant}/endpoints", Tags: tags,
		Summary: "Create an endpoint", Description: "The answer carries the endpoint's signing secret.", DefaultStatus: http.StatusCreated,
	}, func(ctx context.Context, in *createEndpointInput) (*Out[Endpoint], error) {
		now := s.now()
		e := &store.Endpoint{
			ID: newID("ep"), TenantID: in.Tenant, Timeout: 10 * time.Second, MaxConcurrency: 10, Enabled: true,
			CreatedAt: now, UpdatedAt: now,
		}
		var errs []error
		if in.Body.URL == nil && (in.Body.Type == nil || *in.Body.Type == destination.TypeWebhook) {
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
		scheme := store.SchemeHMAC
		if in.Body.SignatureScheme != nil {
			scheme = *in.Body.SignatureScheme
		}
		key, err := s.newKey(scheme, in.Body.Secret)
		if err != nil {
			return nil, err
		}
		e.Secrets = []store.Secret{{Key: key}}
		if err := s.st.CreateEndpoint(s.auditEndpoint(ctx, "endpoint.create", nil, e), e); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		out := s.withBreaker(endpointOut(e, s.defaultSchedule()))
		if scheme == store.SchemeHMAC {
			out.Secret = key
		}
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
			out[i] = s.withBreaker(endpointOut(&eps[i], s.defaultSchedule()))
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
		return &Out[Endpoint]{Body: s.withBreaker(endpointOut(e, s.defaultSchedule()))}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-endpoint", Metadata: map[string]any{metaSecretBody: true, metaMayForbid: true}, Method: http.MethodPatch, Path: "/v1/tenants/{tenant}/endpoints/{id}", Tags: tags,
		Summary: "Change an endpoint", Description: "Only the fields given change. Setting enabled to true resumes the endpoint's pending deliveries.",
	}, func(ctx context.Context, in *updateEndpointInput) (*Out[Endpoint], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		before := s.endpointSnapshot(e)
		if err := s.apply(ctx, &in.Body, e); err != nil {
			return nil, err
		}
		e.UpdatedAt = s.now()
		if sc := in.Body.SignatureScheme; sc != nil && *sc != e.SignatureScheme() {
			key, err := s.newKey(*sc, "")
			if err != nil {
				return nil, err
			}
			rotate(e, key, s.cfg.SecretOverlap, e.UpdatedAt)
		}
		if err := s.st.UpdateEndpoint(s.auditEndpoint(ctx, endpointUpdateAction(before.Enabled, e), &before, e), e); err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.cfg.Notifier.EndpointChanged(e.ID)
		return &Out[Endpoint]{Body: s.withBreaker(endpointOut(e, s.defaultSchedule()))}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-endpoint", Method: http.MethodDelete, Path: "/v1/tenants/{tenant}/endpoints/{id}", Tags: tags,
		Summary: "Delete an endpoint with its deliveries", DefaultStatus: http.StatusNoContent,
	}, func(ctx context.Context, in *EndpointPath) (*struct{}, error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		before := s.endpointSnapshot(e)
		if err := s.st.DeleteEndpoint(s.auditEndpoint(ctx, "endpoint.delete", &before, nil), in.Tenant, in.ID); err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.cfg.Notifier.EndpointChanged(in.ID)
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-endpoint-secret", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/endpoints/{id}/secret", Tags: tags,
		Summary:     "Get an endpoint's signing secret",
		Description: "For an ed25519 endpoint, its public key: the private key never leaves Herald.",
	}, func(ctx context.Context, in *EndpointPath) (*Out[SecretInfo], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.recordAfter(ctx, s.audit(ctx, "endpoint.secret_read", "endpoint", e.ID, e.TenantID, nil, nil))
		return &Out[SecretInfo]{Body: secretOut(e, s.now())}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "rotate-endpoint-secret", Metadata: map[string]any{metaSecretBody: true}, Method: http.MethodPost, Path: "/v1/tenants/{tenant}/endpoints/{id}/secret/rotate", Tags: tags,
		Summary: "Rotate an endpoint's signing secret",
		Description: "The old secret stays valid for the overlap (default 24 h): every delivery in that window carries both signatures. " +
			"signature_scheme switches between hmac-sha256 and ed25519 the same way.",
	}, func(ctx context.Context, in *rotateInput) (*Out[SecretInfo], error) {
		e, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		before := s.endpointSnapshot(e)
		overlap, secret, scheme := s.cfg.SecretOverlap, "", e.SignatureScheme()
		if in.Body != nil {
			secret = in.Body.Secret
			if in.Body.OverlapSeconds != nil {
				overlap = time.Duration(*in.Body.OverlapSeconds) * time.Second
			}
			if in.Body.SignatureScheme != "" {
				scheme = in.Body.SignatureScheme
			}
		}
		key, err := s.newKey(scheme, secret)
		if err != nil {
			return nil, err
		}
		now := s.now()
		rotate(e, key, overlap, now)
		e.UpdatedAt = now
		if err := s.st.UpdateEndpoint(s.auditEndpoint(ctx, "endpoint.secret_rotate", &before, e), e); err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		s.cfg.Notifier.EndpointChanged(e.ID)
		return &Out[SecretInfo]{Body: secretOut(e, now)}, nil
	})
}

func (s *Server) defaultSchedule() []time.Duration { return dispatch.DefaultSchedule }
