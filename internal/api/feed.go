package api

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/internal/seal"
	"github.com/heraldhq/herald/internal/store"
)

// Feeds let a consumer pull what an endpoint would be pushed: the events it subscribes to, in
// publish order, from a cursor. A cursor is a position in the tenant's events sealed with the
// node's encryption keyring (AES-256-GCM, whose tag authenticates it as an HMAC would), with the
// tenant and the endpoint (or the listen stream) as additional data: a cursor altered, made up,
// or taken from another endpoint or tenant fails to open. Every node of a cluster shares the
// keyring, so any node opens any node's cursors, and a cursor outlives a key rotation for as long
// as the old key stays in the ring.

// cursorPrefix is what seal puts before a sealed value; a cursor drops it and writes the key
// id's colon as a dot, so that it needs no escaping in a URL.
const cursorPrefix = "enc:v1:"

// cursorAAD binds a cursor to what it reads.
func cursorAAD(scope, tenant, endpoint string) []byte {
	return []byte("herald feed cursor\x00" + scope + "\x00" + tenant + "\x00" + endpoint)
}

// sealCursor makes the cursor of position pos in the feed of scope ("endpoint" or "listen").
func sealCursor(keys *seal.Keyring, scope, tenant, endpoint string, pos int64) (string, error) {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], uint64(pos))
	sealed, err := keys.Seal(b[:], cursorAAD(scope, tenant, endpoint))
	if err != nil {
		return "", fmt.Errorf("seal cursor: %w", err)
	}
	id, body, _ := strings.Cut(strings.TrimPrefix(sealed, cursorPrefix), ":")
	return id + "." + body, nil
}

// errCursor is a cursor that does not open for this feed.
var errCursor = errors.New("not a cursor this feed returned")

// openCursor reads a cursor sealCursor made for the same feed; "" is position 0.
func openCursor(keys *seal.Keyring, scope, tenant, endpoint, cursor string) (int64, error) {
	if cursor == "" {
		return 0, nil
	}
	id, body, ok := strings.Cut(cursor, ".")
	if !ok {
		return 0, errCursor
	}
	b, err := keys.Open(cursorPrefix+id+":"+body, cursorAAD(scope, tenant, endpoint))
	if err != nil {
		if errors.Is(err, seal.ErrUnknownKey) {
			return 0, fmt.Errorf("%w (sealed with a key this node does not hold)", errCursor)
		}
		return 0, errCursor
	}
	if len(b) != 8 {
		return 0, errCursor
	}
	pos := int64(binary.BigEndian.Uint64(b))
	if pos < 0 {
		return 0, errCursor
	}
	return pos, nil
}

// badCursor is the problem for a cursor that does not open, at the location it came from.
func badCursor(location, value string, err error) error {
	return huma.Error422UnprocessableEntity("invalid cursor", &huma.ErrorDetail{Location: location, Message: err.Error(), Value: value})
}

// FeedBody is one page of an endpoint's feed.
type FeedBody struct {
	Data    []Event `json:"data"`
	Next    string  `json:"next" doc:"Pass as after to get the events that follow. Always present: with no new event it is a cursor at the same place."`
	HasMore bool    `json:"has_more" doc:"True when the page is full: more events may follow at once."`
}

func (s *Server) registerFeed() {
	s.cursorKeys = newCursorKeys(s.cfg.CursorKeys)
	huma.Register(s.api, huma.Operation{
		OperationID: "get-endpoint-feed", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/endpoints/{id}/feed", Tags: []string{"Endpoints"},
		Summary: "Pull the events an endpoint subscribes to",
		Description: "The tenant's events whose types match the endpoint's event_types (and its filter, if it has one), oldest first, after the cursor `after` " +
			"(absent: from the oldest event kept), with `next` to continue from. Pulling changes nothing: the endpoint's " +
			"deliveries go on as before, and several consumers may read one feed. A cursor works only for the endpoint that " +
			"returned it. Event data is redacted by the tenant's redact_fields. On PostgreSQL, an event appears once no " +
			"event before it can still commit, so a consumer that always passes next never misses one.",
	}, func(ctx context.Context, in *struct {
		EndpointPath
		After string `query:"after" maxLength:"200" doc:"The next cursor of the previous page; absent for the start of the feed."`
		Limit int    `query:"limit" minimum:"1" maximum:"1000" default:"100" doc:"Events per page; a page also ends once it holds 1 MiB of events (with has_more true)."`
	}) (*Out[FeedBody], error) {
		ep, err := s.st.GetEndpoint(ctx, in.Tenant, in.ID)
		if err != nil {
			return nil, s.fail(err, "endpoint "+in.ID)
		}
		after, err := openCursor(s.cursorKeys, "endpoint", in.Tenant, ep.ID, in.After)
		if err != nil {
			return nil, badCursor("query.after", in.After, err)
		}
		paths, err := s.redaction(ctx, in.Tenant)
		if err != nil {
			return nil, err
		}
		evs, err := s.st.EventsAfter(ctx, in.Tenant, after, ep.EventTypes, in.Limit)
		if err != nil {
			return nil, s.fail(err, "feed")
		}
		// The feed holds what the endpoint receives: events its filter refuses are passed over
		// (the cursor moves past them), so a page may hold fewer than it read.
		filter := store.Subscriber{ID: ep.ID, Patterns: ep.EventTypes}
		if ep.Options.Filter != "" {
			if filter.Filter, err = s.exprs.Filter(ep.Options.Filter); err != nil {
				return nil, s.fail(err, "endpoint "+ep.ID+" filter")
			}
		}
		// A page is also cut at store.MaxFeedBytes of events, so that one answer stays small.
		out := &Out[FeedBody]{Body: FeedBody{Data: make([]Event, 0, len(evs)), HasMore: store.FeedPageFull(evs, in.Limit)}}
		for i := range evs {
			after = evs[i].Position
			if filter.Filter != nil {
				m := store.NewMatcher(&evs[i].Event)
				if !m.Wants(ctx, filter) {
					continue
				}
			}
			ev, err := eventOut(&evs[i].Event, paths)
			if err != nil {
				return nil, s.fail(err, "feed")
			}
			out.Body.Data = append(out.Body.Data, ev)
		}
		if out.Body.Next, err = sealCursor(s.cursorKeys, "endpoint", in.Tenant, ep.ID, after); err != nil {
			return nil, s.fail(err, "feed")
		}
		return out, nil
	})
}

// newCursorKeys is the keyring that seals cursors: the node's, or, when none is configured
// (tests), a key of this process's own, whose cursors die with it.
func newCursorKeys(keys *seal.Keyring) *seal.Keyring {
	if keys != nil {
		return keys
	}
	k := make([]byte, seal.KeySize)
	_, _ = rand.Read(k) // crypto/rand never fails (Go 1.24 and later)
	ring, err := seal.NewKeyring(k)
	if err != nil {
		panic(fmt.Sprintf("cursor keyring: %v", err)) // only a key of the wrong size fails
	}
	return ring
}

// validPatterns checks event type patterns as endpoints take them (without asking that the types
// exist: a listener may wait for a type registered later).
func validPatterns(loc string, patterns []string) []error {
	var errs []error
	for i, p := range patterns {
		ok := p == "*" || eventTypeRe.MatchString(p)
		if prefix, cut := strings.CutSuffix(p, ".*"); cut {
			ok = prefixRe.MatchString(prefix)
		}
		if !ok {
			errs = append(errs, &huma.ErrorDetail{Location: fmt.Sprintf("%s[%d]", loc, i), Message: "not an event type, prefix.* or *", Value: p})
		}
	}
	return errs
}
