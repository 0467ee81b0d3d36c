package store

import (
	"encoding/json"
	"fmt"
	"time"
)

// TenantLimits is a set of limits on what a tenant may do: a plan's (TenantPlan), a tenant's
// own overrides (Tenant.Limits), the node's defaults, or the effective set resolved from the
// three (ResolveLimits). A nil field is not set at that level; in an effective set, nil means no
// limit. The store enforces MaxEndpoints and MaxSources when it creates endpoints and sources;
// the API enforces the rest.
type TenantLimits struct {
	EventsPerSecond *float64 `json:"events_per_second,omitempty" minimum:"0.001" maximum:"1000000" doc:"Events the tenant may publish per second (a token bucket holding one second's worth); past it a publish answers 429 with Retry-After."`
	MaxEndpoints    *int     `json:"max_endpoints,omitempty" minimum:"1" maximum:"1000000" doc:"Endpoints the tenant may have."`
	MaxSources      *int     `json:"max_sources,omitempty" minimum:"1" maximum:"100000" doc:"Sources the tenant may have, inbound and broker sources together."`
	MaxEventBytes   *int     `json:"max_event_bytes,omitempty" minimum:"1" maximum:"33554432" doc:"Largest event envelope the tenant may publish, in bytes (at most the node's --max-event-bytes)."`
	RetentionHours  *int     `json:"retention_hours,omitempty" minimum:"1" maximum:"876000" doc:"How long the tenant's events are kept, at most the node's --retention."`
	MaxAttempts     *int     `json:"max_attempts,omitempty" minimum:"1" maximum:"50" doc:"Attempts an endpoint's retry schedule may have; the default schedule is cut to fit."`
	MaxRetrySeconds *int     `json:"max_retry_seconds,omitempty" minimum:"0" maximum:"31536000" doc:"Total seconds an endpoint's retry schedule may span; the default schedule is cut to fit."`
	MaxEndpointRate *float64 `json:"max_endpoint_rate,omitempty" minimum:"0.001" maximum:"100000" doc:"Largest rate_limit (requests per second) an endpoint may have; an endpoint without one gets this."`
	Batching        *bool    `json:"batching,omitempty" doc:"Whether endpoints may batch events."`
	Transformations *bool    `json:"transformations,omitempty" doc:"Whether endpoints may transform payloads."`
	Filters         *bool    `json:"filters,omitempty" doc:"Whether endpoints may filter events."`
}

// Where an effective limit comes from (ResolveLimits).
const (
	LimitFromTenant = "tenant"
	LimitFromPlan   = "plan"
	LimitFromNode   = "node"
)

// ResolveLimits is the effective set of a tenant's limits: each field from the tenant's own
// overrides, else its plan, else the node's defaults; from names the level each came from by its
// JSON name ("node" too for a limit that is unset everywhere, that is none).
func ResolveLimits(node, plan, own TenantLimits) (eff TenantLimits, from map[string]string) {
	from = map[string]string{}
	eff.EventsPerSecond = pick(from, "events_per_second", own.EventsPerSecond, plan.EventsPerSecond, node.EventsPerSecond)
	eff.MaxEndpoints = pick(from, "max_endpoints", own.MaxEndpoints, plan.MaxEndpoints, node.MaxEndpoints)
	eff.MaxSources = pick(from, "max_sources", own.MaxSources, plan.MaxSources, node.MaxSources)
	eff.MaxEventBytes = pick(from, "max_event_bytes", own.MaxEventBytes, plan.MaxEventBytes, node.MaxEventBytes)
	eff.RetentionHours = pick(from, "retention_hours", own.RetentionHours, plan.RetentionHours, node.RetentionHours)
	eff.MaxAttempts = pick(from, "max_attempts", own.MaxAttempts, plan.MaxAttempts, node.MaxAttempts)
	eff.MaxRetrySeconds = pick(from, "max_retry_seconds", own.MaxRetrySeconds, plan.MaxRetrySeconds, node.MaxRetrySeconds)
	eff.MaxEndpointRate = pick(from, "max_endpoint_rate", own.MaxEndpointRate, plan.MaxEndpointRate, node.MaxEndpointRate)
	eff.Batching = pick(from, "batching", own.Batching, plan.Batching, node.Batching)
	eff.Transformations = pick(from, "transformations", own.Transformations, plan.Transformations, node.Transformations)
	eff.Filters = pick(from, "filters", own.Filters, plan.Filters, node.Filters)
	return eff, from
}

func pick[T any](from map[string]string, name string, own, plan, node *T) *T {
	switch {
	case own != nil:
		from[name] = LimitFromTenant
		return own
	case plan != nil:
		from[name] = LimitFromPlan
		return plan
	}
	from[name] = LimitFromNode
	return node
}

// NodeLimitDefaults are the limits a tenant has when neither it nor a plan sets them: today's
// behaviour (the store's endpoint and source bounds, the node's event size and retention, no
// publish or endpoint rate bound, no retry ceiling, every feature). A retention below zero is
// "keep everything".
func NodeLimitDefaults(l Limits, maxEventBytes int, retention time.Duration) TenantLimits {
	l = l.WithDefaults()
	yes := true
	d := TenantLimits{MaxEndpoints: &l.MaxEndpoints, MaxSources: &l.MaxSources, MaxEventBytes: &maxEventBytes,
		Batching: &yes, Transformations: &yes, Filters: &yes}
	if retention > 0 {
		h := int((retention + time.Hour - 1) / time.Hour)
		d.RetentionHours = &h
	}
	return d
}

// Allowed reports whether a feature flag allows its feature (nil: no limit).
func Allowed(flag *bool) bool { return flag == nil || *flag }

// TenantPlan is a named set of limits tenants may be put on.
type TenantPlan struct {
	Name        string
	Description string
	Limits      TenantLimits
	CreatedAt   time.Time
	UpdatedAt   time.Time
}

// EncodeTenantLimits and DecodeTenantLimits convert a set of limits to and from the JSON text
// drivers store. A tenant's MaxEndpoints has its own column (max_endpoints, older than plans):
// drivers clear it before encoding a tenant's limits and set it from the column after decoding.
func EncodeTenantLimits(l TenantLimits) (string, error) {
	b, err := json.Marshal(l)
	if err != nil {
		return "", fmt.Errorf("encode limits: %w", err)
	}
	return string(b), nil
}

// DecodeTenantLimits reads what EncodeTenantLimits wrote ("" is no limits).
func DecodeTenantLimits(s string) (TenantLimits, error) {
	var l TenantLimits
	if s == "" {
		return l, nil
	}
	if err := json.Unmarshal([]byte(s), &l); err != nil {
		return l, fmt.Errorf("decode limits: %w", err)
	}
	return l, nil
}

// CheckTenantSources refuses a new source (broker: a broker source) for a tenant that has
// sources inbound and brokers broker sources, given its own and its plan's limits: the node's
// bound on each kind (MaxSources, MaxBrokerSources) holds always; a MaxSources set by the plan or
// the tenant bounds the two kinds together.
func (l Limits) CheckTenantSources(own, plan TenantLimits, sources, brokers int, broker bool) error {
	if broker {
		if err := l.CheckBrokerSources(brokers); err != nil {
			return err
		}
	} else if err := l.CheckSources(sources); err != nil {
		return err
	}
	max := own.MaxSources
	if max == nil {
		max = plan.MaxSources
	}
	if max != nil && sources+brokers >= *max {
		return &LimitError{Limit: "max_sources", Max: *max, Got: sources + brokers}
	}
	return nil
}

// TenantMaxEndpoints is the bound on a tenant's endpoints its own max_endpoints column and its
// plan's limits give (0: the node's, Limits.MaxEndpoints), for CheckEndpoints.
func TenantMaxEndpoints(own int, plan TenantLimits) int {
	if own > 0 {
		return own
	}
	if plan.MaxEndpoints != nil {
		return *plan.MaxEndpoints
	}
	return 0
}
