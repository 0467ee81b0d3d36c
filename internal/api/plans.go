package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"golang.org/x/time/rate"

	"github.com/heraldhq/herald/internal/store"
)

// Plans and tenant limits: a tenant's limits come from its own overrides, else its plan, else
// the node's defaults (store.ResolveLimits). The store enforces the endpoint and source counts
// when it creates them; the API enforces the rest: the publish rate and event size on the
// publish routes (effective limits cached for limitsTTL, so a publish reads nothing more), and
// the endpoint settings (rate, retry schedule, features) when an endpoint is saved.

// Plan is a named set of limits tenants may be put on.
type Plan struct {
	Name        string             `json:"name"`
	Description string             `json:"description"`
	Limits      store.TenantLimits `json:"limits" doc:"The plan's limits; one left out is the node's default."`
	CreatedAt   time.Time          `json:"created_at"`
	UpdatedAt   time.Time          `json:"updated_at"`
}

func planOut(p *store.TenantPlan) Plan {
	return Plan{Name: p.Name, Description: p.Description, Limits: p.Limits, CreatedAt: p.CreatedAt, UpdatedAt: p.UpdatedAt}
}

// Limit is one effective limit of a tenant.
type Limit struct {
	Value any    `json:"value" doc:"The limit; null: none."`
	From  string `json:"from" enum:"tenant,plan,node" doc:"Where it comes from: the tenant's own limits, its plan, or the node's defaults."`
}

// EffectiveLimits is a tenant's effective limits.
type EffectiveLimits struct {
	TenantID string           `json:"tenant_id"`
	Plan     string           `json:"plan" doc:"The tenant's plan; empty for none."`
	Limits   map[string]Limit `json:"limits" doc:"Each limit by name (see the plan's limits), with where it comes from."`
}

// PlanPath names a plan in a route.
type PlanPath struct {
	Plan string `path:"plan" maxLength:"64" doc:"Plan name."`
}

type createPlanInput struct {
	Body struct {
		Name        string             `json:"name" pattern:"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$" doc:"The plan's name: letters, digits, '_', '.', '-', at most 64." example:"pro"`
		Description string             `json:"description,omitempty" maxLength:"500"`
		Limits      store.TenantLimits `json:"limits"`
	}
}

type updatePlanInput struct {
	PlanPath
	Body struct {
		Description *string             `json:"description,omitempty" maxLength:"500"`
		Limits      *store.TenantLimits `json:"limits,omitempty" doc:"Replaces the plan's limits; {} leaves every limit to the node's defaults."`
	}
}

func (s *Server) registerPlans() {
	admin := map[string]any{metaAdminOnly: true}
	tags := []string{"Plans"}
	huma.Register(s.api, huma.Operation{
		OperationID: "create-plan", Method: http.MethodPost, Path: "/v1/plans", Tags: tags,
		Summary: "Create a plan", DefaultStatus: http.StatusCreated, Metadata: admin,
	}, func(ctx context.Context, in *createPlanInput) (*Out[Plan], error) {
		if err := noNUL("body.description", in.Body.Description); err != nil {
			return nil, err
		}
		if err := s.checkLimits("body.limits", in.Body.Limits); err != nil {
			return nil, err
		}
		now := s.now()
		p := &store.TenantPlan{Name: in.Body.Name, Description: in.Body.Description, Limits: in.Body.Limits, CreatedAt: now, UpdatedAt: now}
		a := s.audit(ctx, "plan.create", "plan", p.Name, "", nil, planOut(p))
		if err := s.st.CreatePlan(store.WithAudit(ctx, a), p); err != nil {
			return nil, s.fail(err, "plan "+p.Name)
		}
		return &Out[Plan]{Body: planOut(p)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "list-plans", Method: http.MethodGet, Path: "/v1/plans", Tags: tags,
		Summary: "List plans", Metadata: admin,
	}, func(ctx context.Context, _ *struct{}) (*Out[ListBody[Plan]], error) {
		ps, err := s.st.ListPlans(ctx)
		if err != nil {
			return nil, s.fail(err, "plans")
		}
		out := make([]Plan, len(ps))
		for i := range ps {
			out[i] = planOut(&ps[i])
		}
		return &Out[ListBody[Plan]]{Body: list(out, "")}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-plan", Method: http.MethodGet, Path: "/v1/plans/{plan}", Tags: tags,
		Summary: "Get a plan", Metadata: admin,
	}, func(ctx context.Context, in *PlanPath) (*Out[Plan], error) {
		p, err := s.st.GetPlan(ctx, in.Plan)
		if err != nil {
			return nil, s.fail(err, "plan "+in.Plan)
		}
		return &Out[Plan]{Body: planOut(p)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "update-plan", Method: http.MethodPatch, Path: "/v1/plans/{plan}", Tags: tags,
		Summary: "Change a plan", Description: "Only the fields given change. The plan's tenants have its new limits within a few seconds on every node; " +
			"what they already have (endpoints, sources, endpoint settings) stays even if it is over a lowered limit.", Metadata: admin,
	}, func(ctx context.Context, in *updatePlanInput) (*Out[Plan], error) {
		p, err := s.st.GetPlan(ctx, in.Plan)
		if err != nil {
			return nil, s.fail(err, "plan "+in.Plan)
		}
		before := planOut(p)
		if in.Body.Description != nil {
			if err := noNUL("body.description", *in.Body.Description); err != nil {
				return nil, err
			}
			p.Description = *in.Body.Description
		}
		if in.Body.Limits != nil {
			if err := s.checkLimits("body.limits", *in.Body.Limits); err != nil {
				return nil, err
			}
			p.Limits = *in.Body.Limits
		}
		p.UpdatedAt = s.now()
		a := s.audit(ctx, "plan.update", "plan", p.Name, "", before, planOut(p))
		if err := s.st.UpdatePlan(store.WithAudit(ctx, a), p); err != nil {
			return nil, s.fail(err, "plan "+in.Plan)
		}
		s.tenantLimits.forgetAll()
		return &Out[Plan]{Body: planOut(p)}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "delete-plan", Method: http.MethodDelete, Path: "/v1/plans/{plan}", Tags: tags,
		Summary: "Delete a plan", Description: "409 while a tenant is on the plan.", DefaultStatus: http.StatusNoContent, Metadata: admin,
	}, func(ctx context.Context, in *PlanPath) (*struct{}, error) {
		p, err := s.st.GetPlan(ctx, in.Plan)
		if err != nil {
			return nil, s.fail(err, "plan "+in.Plan)
		}
		a := s.audit(ctx, "plan.delete", "plan", p.Name, "", planOut(p), nil)
		if err := s.st.DeletePlan(store.WithAudit(ctx, a), in.Plan); err != nil {
			if errors.Is(err, store.ErrConflict) {
				return nil, huma.Error409Conflict(err.Error())
			}
			return nil, s.fail(err, "plan "+in.Plan)
		}
		s.tenantLimits.forgetAll()
		return nil, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "get-tenant-limits", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/limits", Tags: []string{"Tenants"},
		Summary:     "Get a tenant's effective limits",
		Description: "Each limit with where it comes from: the tenant's own, its plan's, or the node's default. A tenant key or portal link reads its own tenant's.",
	}, func(ctx context.Context, in *tenantInput) (*Out[EffectiveLimits], error) {
		t, err := s.st.GetTenant(ctx, in.Tenant)
		if err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		eff, err := s.resolveLimits(ctx, t)
		if err != nil {
			return nil, s.fail(err, "plan "+t.Plan)
		}
		return &Out[EffectiveLimits]{Body: EffectiveLimits{TenantID: t.ID, Plan: t.Plan, Limits: eff.out()}}, nil
	})
}

// checkLimits refuses limits above what the node allows: a retention longer than the node's,
// events larger than it takes.
func (s *Server) checkLimits(loc string, l store.TenantLimits) error {
	var errs []error
	node := s.limitDefaults
	if l.RetentionHours != nil && node.RetentionHours != nil && *l.RetentionHours > *node.RetentionHours {
		errs = append(errs, &huma.ErrorDetail{Location: loc + ".retention_hours", Value: *l.RetentionHours,
			Message: fmt.Sprintf("at most the node's retention, %d hours", *node.RetentionHours)})
	}
	if l.MaxEventBytes != nil && *l.MaxEventBytes > s.cfg.MaxEventBytes {
		errs = append(errs, &huma.ErrorDetail{Location: loc + ".max_event_bytes", Value: *l.MaxEventBytes,
			Message: fmt.Sprintf("at most the node's --max-event-bytes, %d", s.cfg.MaxEventBytes)})
	}
	if len(errs) > 0 {
		return huma.Error422UnprocessableEntity("invalid limits", errs...)
	}
	return nil
}

// effectiveLimits are a tenant's limits resolved, with where each comes from.
type effectiveLimits struct {
	store.TenantLimits
	from map[string]string
}

// out shows the limits by name, as the API answers them.
func (e *effectiveLimits) out() map[string]Limit {
	b, _ := json.Marshal(e.TenantLimits) // a struct of numbers and booleans
	var values map[string]any
	_ = json.Unmarshal(b, &values)
	out := make(map[string]Limit, len(e.from))
	for name, from := range e.from {
		out[name] = Limit{Value: values[name], From: from}
	}
	return out
}

// resolveLimits is t's effective limits (its plan read from the store; a plan that is gone is none).
func (s *Server) resolveLimits(ctx context.Context, t *store.Tenant) (*effectiveLimits, error) {
	var plan store.TenantLimits
	if t.Plan != "" {
		p, err := s.st.GetPlan(ctx, t.Plan)
		switch {
		case err == nil:
			plan = p.Limits
		case !errors.Is(err, store.ErrNotFound):
			return nil, err
		}
	}
	eff, from := store.ResolveLimits(s.limitDefaults, plan, t.Limits)
	return &effectiveLimits{TenantLimits: eff, from: from}, nil
}

// limitsOf is tenant's effective limits, remembered for limitsTTL: the publish path's view.
// ErrNotFound when the tenant does not exist.
func (s *Server) limitsOf(ctx context.Context, tenant string) (*effectiveLimits, error) {
	now := s.cfg.Now()
	if e := s.tenantLimits.lookup(tenant, now); e != nil {
		return e, nil
	}
	t, err := s.st.GetTenant(ctx, tenant)
	if err != nil {
		return nil, err
	}
	e, err := s.resolveLimits(ctx, t)
	if err != nil {
		return nil, err
	}
	s.tenantLimits.remember(tenant, e, now)
	return e, nil
}

// limitsCache remembers tenants' effective limits for limitsTTL, so that a publish reads
// neither the tenant nor its plan (two round trips on PostgreSQL). A change made through this
// node applies at once; through another node, within limitsTTL.
type limitsCache struct {
	mu      sync.Mutex
	entries map[string]cachedLimits
}

type cachedLimits struct {
	limits *effectiveLimits
	until  time.Time
}

const (
	limitsTTL      = 5 * time.Second
	maxLimitsCache = 10000
)

func newLimitsCache() *limitsCache { return &limitsCache{entries: map[string]cachedLimits{}} }

func (c *limitsCache) lookup(tenant string, now time.Time) *effectiveLimits {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.entries[tenant]
	if !ok || !e.until.After(now) {
		return nil
	}
	return e.limits
}

func (c *limitsCache) remember(tenant string, l *effectiveLimits, now time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.entries) >= maxLimitsCache {
		clear(c.entries)
	}
	c.entries[tenant] = cachedLimits{limits: l, until: now.Add(limitsTTL)}
}

func (c *limitsCache) forget(tenant string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.entries, tenant)
}

func (c *limitsCache) forgetAll() {
	c.mu.Lock()
	defer c.mu.Unlock()
	clear(c.entries)
}

// eventRates are the tenants' events-per-second buckets (the events_per_second limit): one token
// bucket per tenant holding one second's worth of events (at least one), its rate following the
// tenant's limit as it changes. Like the request limits (ratelimit.go), they are per process.
type eventRates struct {
	mu      sync.Mutex
	buckets map[string]*rate.Limiter
}

func newEventRates() *eventRates { return &eventRates{buckets: map[string]*rate.Limiter{}} }

// allowN takes n events from tenant's bucket at perSecond; when they are not there it takes
// nothing and says how long until they will be. A batch larger than the bucket is taken as a
// full bucket, as the request limits do.
func (r *eventRates) allowN(tenant string, perSecond float64, n int, now time.Time) (bool, time.Duration) {
	burst := max(1, int(perSecond))
	n = min(max(n, 1), burst)
	r.mu.Lock()
	defer r.mu.Unlock()
	lim := r.buckets[tenant]
	if lim == nil {
		if len(r.buckets) >= maxLimiterBuckets {
			clear(r.buckets) // a full bucket for each: more lenient for a moment, never stricter
		}
		lim = rate.NewLimiter(rate.Limit(perSecond), burst)
		r.buckets[tenant] = lim
	} else if lim.Limit() != rate.Limit(perSecond) || lim.Burst() != burst {
		lim.SetLimitAt(now, rate.Limit(perSecond))
		lim.SetBurstAt(now, burst)
	}
	res := lim.ReserveN(now, n)
	if !res.OK() {
		return false, time.Second
	}
	if d := res.DelayFrom(now); d > 0 {
		res.CancelAt(now)
		return false, d
	}
	return true, 0
}

// errEventRate is a publish refused by the tenant's events_per_second limit.
type errEventRate struct {
	perSecond float64
	wait      time.Duration
}

func (e *errEventRate) Error() string {
	return fmt.Sprintf("the tenant may publish %g events per second (its events_per_second limit)", e.perSecond)
}

// checkPublish applies the tenant's publish limits to events (loc: where the request holds them,
// "body" for one event): its events_per_second (a refusal is an *errEventRate) and its
// max_event_bytes (a refusal is 413 naming each event too large).
func (s *Server) checkPublish(ctx context.Context, tenant, loc string, events []*store.Event) error {
	l, err := s.limitsOf(ctx, tenant)
	if err != nil {
		return err
	}
	if l.MaxEventBytes != nil && *l.MaxEventBytes < s.cfg.MaxEventBytes {
		var errs []error
		for i, ev := range events {
			if len(ev.Payload) > *l.MaxEventBytes {
				at := loc + ".data"
				if loc != "body" {
					at = fmt.Sprintf("%s[%d].data", loc, i)
				}
				errs = append(errs, &tooLarge{loc: at, size: len(ev.Payload), limit: *l.MaxEventBytes})
			}
		}
		if len(errs) > 0 {
			return invalid(errs)
		}
	}
	if l.EventsPerSecond != nil {
		if ok, wait := s.eventRates.allowN(tenant, *l.EventsPerSecond, len(events), s.cfg.Now()); !ok {
			return &errEventRate{perSecond: *l.EventsPerSecond, wait: wait}
		}
	}
	return nil
}

// checkEndpointLimits applies the tenant's limits to an endpoint about to be saved: the features
// it uses (filters, transformations, batching), its rate limit (none becomes the tenant's
// max_endpoint_rate) and its retry schedule (the default one is cut to the tenant's ceiling, one
// of its own must fit). Each refusal names the field.
func (s *Server) checkEndpointLimits(ctx context.Context, e *store.Endpoint) ([]error, error) {
	l, err := s.limitsOf(ctx, e.TenantID)
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil // the store answers for a missing tenant
	}
	if err != nil {
		return nil, err
	}
	var errs []error
	refuse := func(field, feature string) {
		errs = append(errs, &huma.ErrorDetail{Location: "body." + field,
			Message: "the tenant's plan does not allow " + feature + " (limit " + feature + ": false)"})
	}
	if e.Options.Filter != "" && !store.Allowed(l.Filters) {
		refuse("filter", "filters")
	}
	if e.Options.Transform != "" && !store.Allowed(l.Transformations) {
		refuse("transform", "transformations")
	}
	if e.Options.Batch != nil && !store.Allowed(l.Batching) {
		refuse("batch", "batching")
	}
	if max := l.MaxEndpointRate; max != nil {
		switch {
		case e.RateLimit == 0:
			e.RateLimit = *max
		case e.RateLimit > *max:
			errs = append(errs, &huma.ErrorDetail{Location: "body.rate_limit", Value: e.RateLimit,
				Message: fmt.Sprintf("at most %g requests per second (the tenant's max_endpoint_rate)", *max)})
		}
	}
	if l.MaxAttempts != nil || l.MaxRetrySeconds != nil {
		if e.RetrySchedule == nil {
			e.RetrySchedule = fitSchedule(s.defaultSchedule(), l.MaxAttempts, l.MaxRetrySeconds)
		} else if msg := scheduleOver(e.RetrySchedule, l.MaxAttempts, l.MaxRetrySeconds); msg != "" {
			errs = append(errs, &huma.ErrorDetail{Location: "body.retry_schedule", Message: msg})
		}
	}
	return errs, nil
}

// fitSchedule is the longest start of sched within the ceilings (at least its first attempt).
func fitSchedule(sched []time.Duration, maxAttempts, maxSeconds *int) []time.Duration {
	var out []time.Duration
	var total time.Duration
	for i, d := range sched {
		if maxAttempts != nil && i >= *maxAttempts {
			break
		}
		if maxSeconds != nil && i > 0 && total+d > time.Duration(*maxSeconds)*time.Second {
			break
		}
		total += d
		out = append(out, d)
	}
	return out
}

// scheduleOver says how sched passes the ceilings, "" when it does not.
func scheduleOver(sched []time.Duration, maxAttempts, maxSeconds *int) string {
	if maxAttempts != nil && len(sched) > *maxAttempts {
		return fmt.Sprintf("%d attempts; the tenant's max_attempts is %d", len(sched), *maxAttempts)
	}
	var total time.Duration
	for _, d := range sched {
		total += d
	}
	if maxSeconds != nil && total > time.Duration(*maxSeconds)*time.Second {
		return fmt.Sprintf("spans %d seconds; the tenant's max_retry_seconds is %d", int(total/time.Second), *maxSeconds)
	}
	return ""
}
