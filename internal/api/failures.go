package api

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strconv"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/store"
)

// "What is failing": a tenant's failed attempts of a recent window, grouped by endpoint and by
// the class of the failure (an HTTP status, or how the request failed: timeout, connection
// refused…), each group with its counts, when it was first and last seen, its newest attempt as an
// example, and how many of its deliveries are dead now. The groups are computed from existing
// queries, bounded: at most failureScanAttempts attempts (the newest of the window) and at most
// failureScanDead dead deliveries, so a tenant with a flood of failures gets an answer in time
// (marked truncated) rather than a scan of its whole history.

const (
	// failureScanAttempts bounds the attempts read for the groups (newest first).
	failureScanAttempts = 5000
	// failureScanDead bounds the dead deliveries matched to the groups (newest first).
	failureScanDead = 5000
	// failureMaxWindow is the longest window the groups may look back.
	failureMaxWindow = 7 * 24 * time.Hour
	// failureDeadLookback is how long before the window a dead delivery may have been created
	// and still be matched to a group by its failed attempts in the window.
	failureDeadLookback = 7 * 24 * time.Hour
)

// FailureGroup is the failures of one endpoint of one class.
type FailureGroup struct {
	EndpointID string    `json:"endpoint_id"`
	Class      string    `json:"class" doc:"http_<status> for an answer with a failing status (http_503), else the error kind (timeout, connection_refused, dns, tls…)."`
	StatusCode int       `json:"status_code,omitempty" doc:"The HTTP status of the class, when it has one."`
	ErrorKind  string    `json:"error_kind,omitempty"`
	Attempts   int       `json:"attempts" doc:"Failed attempts of the class in the window."`
	Deliveries int       `json:"deliveries" doc:"Distinct deliveries among them."`
	Dead       int       `json:"dead" doc:"Of those deliveries, how many are dead now (their last failure in the window is of this class): what replaying the group queues."`
	FirstSeen  time.Time `json:"first_seen"`
	LastSeen   time.Time `json:"last_seen"`
	Example    Attempt   `json:"example" doc:"The newest failed attempt of the group, with its response excerpt."`
}

// FailuresBody is the answer of the grouped failures.
type FailuresBody struct {
	Since     time.Time      `json:"since"`
	Groups    []FailureGroup `json:"groups" doc:"Most failed attempts first."`
	Truncated bool           `json:"truncated" doc:"More attempts or dead deliveries than the bounds were in the window: the counts cover the newest."`
}

// FailureReplayInput names one group to replay.
type FailureReplayInput struct {
	EndpointID string `json:"endpoint_id" minLength:"1" maxLength:"64"`
	Class      string `json:"class" minLength:"1" maxLength:"64" doc:"The group's class, as GET …/failures answers it."`
	Since      string `json:"since,omitempty" maxLength:"40" doc:"The window, as for GET …/failures (default 24h)."`
}

// failureClass is the class of a failed attempt.
func failureClass(a *store.Attempt) string {
	if a.StatusCode > 0 {
		return "http_" + strconv.Itoa(a.StatusCode)
	}
	if a.ErrorKind != "" {
		return a.ErrorKind
	}
	return "error"
}

type failureKey struct{ endpoint, class string }

// failureScan is the grouped failures of a window, with the dead deliveries of each group.
type failureScan struct {
	groups    map[failureKey]*FailureGroup
	dead      map[failureKey][]int64
	truncated bool
}

// scanFailures reads the window's failed attempts and the dead deliveries, bounded, and groups
// them. endpointID, when set, limits the scan to one endpoint.
func (s *Server) scanFailures(ctx context.Context, tenant, endpointID string, since time.Time) (*failureScan, error) {
	paths, err := s.redaction(ctx, tenant)
	if err != nil {
		return nil, err
	}
	sc := &failureScan{groups: map[failureKey]*FailureGroup{}, dead: map[failureKey][]int64{}}
	// A delivery's group is the class of its newest failed attempt (attempts come newest first).
	lastClass := map[int64]failureKey{}
	seen := map[failureKey]map[int64]bool{}
	read, cursor := 0, ""
	for {
		atts, next, err := s.st.ListAttempts(ctx, store.AttemptFilter{TenantID: tenant, EndpointID: endpointID, Since: since,
			Page: store.Page{Limit: store.MaxLimit, Cursor: cursor}})
		if err != nil {
			return nil, s.fail(err, "attempts")
		}
		for i := range atts {
			a := &atts[i]
			if a.Success {
				continue
			}
			k := failureKey{a.EndpointID, failureClass(a)}
			g := sc.groups[k]
			if g == nil {
				g = &FailureGroup{EndpointID: a.EndpointID, Class: k.class, StatusCode: a.StatusCode, LastSeen: a.At, Example: attemptOut(a, paths)}
				if a.StatusCode == 0 {
					g.ErrorKind = a.ErrorKind
				}
				sc.groups[k] = g
				seen[k] = map[int64]bool{}
			}
			g.Attempts++
			g.FirstSeen = a.At
			if !seen[k][a.DeliveryID] {
				seen[k][a.DeliveryID] = true
				g.Deliveries++
			}
			if _, ok := lastClass[a.DeliveryID]; !ok {
				lastClass[a.DeliveryID] = k
			}
		}
		read += len(atts)
		if next == "" {
			break
		}
		if read >= failureScanAttempts {
			sc.truncated = true
			break
		}
		cursor = next
	}
	if len(sc.groups) == 0 {
		return sc, nil
	}
	read, cursor = 0, ""
	for {
		ds, next, err := s.st.ListDeliveries(ctx, store.DeliveryFilter{TenantID: tenant, EndpointID: endpointID, States: []store.DeliveryState{store.StateDead},
			Since: since.Add(-failureDeadLookback), Page: store.Page{Limit: store.MaxLimit, Cursor: cursor}})
		if err != nil {
			return nil, s.fail(err, "deliveries")
		}
		for _, d := range ds {
			if k, ok := lastClass[d.ID]; ok {
				sc.groups[k].Dead++
				sc.dead[k] = append(sc.dead[k], d.ID)
			}
		}
		read += len(ds)
		if next == "" {
			break
		}
		if read >= failureScanDead {
			sc.truncated = true
			break
		}
		cursor = next
	}
	return sc, nil
}

// failureSince reads a failures window: a duration back from now or an RFC 3339 time, at most
// failureMaxWindow back.
func (s *Server) failureSince(v, loc string) (time.Time, error) {
	if v == "" {
		v = "24h"
	}
	now := s.now()
	since, err := ParseSince(v, now)
	if err == nil && now.Sub(since) > failureMaxWindow {
		return time.Time{}, huma.Error422UnprocessableEntity("invalid since", &huma.ErrorDetail{Location: loc, Message: "at most 7d back", Value: v})
	}
	if err != nil {
		return time.Time{}, huma.Error422UnprocessableEntity("invalid since", &huma.ErrorDetail{Location: loc, Message: err.Error(), Value: v})
	}
	return since, nil
}

func (s *Server) registerFailures() {
	tags := []string{"Deliveries"}
	huma.Register(s.api, huma.Operation{
		OperationID: "list-failures", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/failures", Tags: tags,
		Summary: "What is failing: failed attempts grouped by endpoint and failure class",
		Description: "Groups the failed attempts of a recent window (since: a duration like 1h or 24h, or an RFC 3339 time; default 24h, at most 7d) " +
			"by endpoint and class (http_503, timeout, connection_refused…), with counts, first and last seen, the newest attempt as an example, " +
			"and how many of the group's deliveries are dead now. Bounded: the newest 5000 attempts and 5000 dead deliveries; truncated says when there were more.",
	}, func(ctx context.Context, in *struct {
		TenantPath
		Since      string `query:"since" maxLength:"40" doc:"Default 24h; at most 7d."`
		EndpointID string `query:"endpoint_id" maxLength:"64" doc:"Only this endpoint's failures."`
	}) (*Out[FailuresBody], error) {
		since, err := s.failureSince(in.Since, "query.since")
		if err != nil {
			return nil, err
		}
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		sc, err := s.scanFailures(ctx, in.Tenant, in.EndpointID, since)
		if err != nil {
			return nil, err
		}
		out := FailuresBody{Since: since, Groups: []FailureGroup{}, Truncated: sc.truncated}
		for _, g := range sc.groups {
			out.Groups = append(out.Groups, *g)
		}
		sort.Slice(out.Groups, func(i, j int) bool {
			a, b := out.Groups[i], out.Groups[j]
			if a.Attempts != b.Attempts {
				return a.Attempts > b.Attempts
			}
			if a.EndpointID != b.EndpointID {
				return a.EndpointID < b.EndpointID
			}
			return a.Class < b.Class
		})
		return &Out[FailuresBody]{Body: out}, nil
	})
	huma.Register(s.api, huma.Operation{
		OperationID: "replay-failure-group", Method: http.MethodPost, Path: "/v1/tenants/{tenant}/failures/replay", Tags: tags,
		Summary:       "Replay the dead deliveries of one failure group",
		Description:   "Queues again, due now with a fresh retry schedule, the dead deliveries GET …/failures counts in the group's dead (same window and bounds). Answers how many were queued.",
		DefaultStatus: http.StatusAccepted,
	}, func(ctx context.Context, in *struct {
		TenantPath
		Body FailureReplayInput
	}) (*Out[ReplayQueued], error) {
		since, err := s.failureSince(in.Body.Since, "body.since")
		if err != nil {
			return nil, err
		}
		if _, err := s.st.GetTenant(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "tenant "+in.Tenant)
		}
		sc, err := s.scanFailures(ctx, in.Tenant, in.Body.EndpointID, since)
		if err != nil {
			return nil, err
		}
		queued := 0
		for _, id := range sc.dead[failureKey{in.Body.EndpointID, in.Body.Class}] {
			if _, err := s.st.Retry(ctx, in.Tenant, id); errors.Is(err, store.ErrNotFound) {
				continue // deleted with its endpoint since the scan
			} else if err != nil {
				return nil, s.fail(err, "delivery "+deliveryID(id))
			}
			queued++
		}
		if queued > 0 {
			s.cfg.Notifier.Notify(in.Body.EndpointID)
		}
		s.recordAfter(ctx, s.audit(ctx, "delivery.replay", "delivery", "", in.Tenant, nil, struct {
			FailureReplayInput
			Queued int `json:"queued"`
		}{in.Body, queued}))
		return &Out[ReplayQueued]{Body: ReplayQueued{Queued: queued}}, nil
	})
}
