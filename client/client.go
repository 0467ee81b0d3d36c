// Package client publishes events to Herald over its REST API, for applications that do not
// share Herald's database (those that do can publish in their own transactions with the outbox
// package).
//
//	c := client.New("https://herald.internal:8080", os.Getenv("HERALD_API_KEY"))
//	p, err := c.Publish(ctx, "acme", client.Event{Type: "order.created", Data: order})
//
// Every event gets its id before the first try (generated when the caller sets none), so that
// retries, the client's and the caller's, are idempotent: Herald stores an id once per tenant and
// answers a repeated one with the original event, Duplicate set. The client retries what is worth
// retrying: a connection that failed, 429 and 503 (after their Retry-After), 408 (the body came
// too slowly), 502 and 504. A 422 or another 4xx is a refusal and is not tried again.
// Refusals come back as *APIError, with Herald's problem details.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/heraldhq/herald/event"
)

// Client calls one Herald's API with one key. It is safe for concurrent use.
type Client struct {
	base     string
	key      string
	http     *http.Client
	tries    int
	backoff  time.Duration
	maxPause time.Duration
}

// Option configures a Client.
type Option func(*Client)

// WithHTTPClient sets the HTTP client (default: one with a 30 s timeout per request).
func WithHTTPClient(hc *http.Client) Option { return func(c *Client) { c.http = hc } }

// WithRetries sets how many times a request is tried in all (default 4; 1 never retries) and the
// pause before the first retry (default 200 ms), which doubles each time; a Retry-After the
// server sends replaces it, capped at 30 s.
func WithRetries(tries int, backoff time.Duration) Option {
	return func(c *Client) { c.tries, c.backoff = max(tries, 1), backoff }
}

// New makes a client for the Herald at baseURL ("https://herald.example.com") with an API key.
func New(baseURL, apiKey string, opts ...Option) *Client {
	c := &Client{base: strings.TrimRight(baseURL, "/"), key: apiKey, http: &http.Client{Timeout: 30 * time.Second},
		tries: 4, backoff: 200 * time.Millisecond, maxPause: 30 * time.Second}
	for _, o := range opts {
		o(c)
	}
	return c
}

// Event is one event to publish.
type Event struct {
	// ID is the event's id; empty: the client generates one, before the first try.
	ID string `json:"id,omitempty"`
	// Type is a registered event type.
	Type string `json:"type"`
	// Data is the payload, marshalled with encoding/json: a JSON object. nil is an empty object.
	Data     any       `json:"data"`
	Source   string    `json:"source,omitempty"`
	Resource *Resource `json:"resource,omitempty"`
	// Priority is event.PriorityHigh, PriorityNormal or PriorityLow ("high", "normal", "low");
	// empty is normal.
	Priority string `json:"priority,omitempty"`
}

// Resource is the object an event is about (the event package's).
type Resource = event.Resource

// Published is Herald's answer to a publish.
type Published struct {
	ID        string    `json:"id"`
	Type      string    `json:"type"`
	Timestamp time.Time `json:"timestamp"`
	// Deliveries is how many deliveries the publish created (0 for a duplicate).
	Deliveries int `json:"deliveries"`
	// Duplicate is set when the tenant had the id already: the original event is returned.
	Duplicate bool `json:"duplicate"`
}

// Publish publishes one event to a tenant's endpoints (POST /v1/tenants/{tenant}/events).
func (c *Client) Publish(ctx context.Context, tenant string, ev Event) (*Published, error) {
	ev = withID(ev)
	var out Published
	if err := c.do(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(tenant)+"/events", ev, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// PublishBatch publishes up to 1000 events at once (POST /v1/tenants/{tenant}/events/batch):
// all or none, so an *APIError names each refused event (location body.events[i]...).
func (c *Client) PublishBatch(ctx context.Context, tenant string, events []Event) ([]Published, error) {
	body := struct {
		Events []Event `json:"events"`
	}{Events: make([]Event, len(events))}
	for i, ev := range events {
		body.Events[i] = withID(ev)
	}
	var out struct {
		Events []Published `json:"events"`
	}
	if err := c.do(ctx, http.MethodPost, "/v1/tenants/"+url.PathEscape(tenant)+"/events/batch", body, &out); err != nil {
		return nil, err
	}
	return out.Events, nil
}

func withID(ev Event) Event {
	if ev.ID == "" {
		ev.ID = NewID()
	}
	if ev.Data == nil {
		ev.Data = struct{}{}
	}
	return ev
}

// APIError is a refusal from Herald: an RFC 9457 problem.
type APIError struct {
	Status int    `json:"status"`
	Title  string `json:"title"`
	Detail string `json:"detail"`
	// Errors name each failing place, such as body.type or body.events[2].data.total.
	Errors []ErrorDetail `json:"errors"`
	// RetryAfter is the server's Retry-After, when it sent one.
	RetryAfter time.Duration `json:"-"`
}

// ErrorDetail is one failing place of a problem.
type ErrorDetail struct {
	Location string `json:"location"`
	Message  string `json:"message"`
	Value    any    `json:"value,omitempty"`
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "herald: %d %s", e.Status, e.Title)
	if e.Detail != "" {
		b.WriteString(": " + e.Detail)
	}
	for i, d := range e.Errors {
		sep := "; "
		if i == 0 {
			sep = ": "
		}
		b.WriteString(sep + d.Location + ": " + d.Message)
	}
	return b.String()
}

// Temporary reports whether trying again later may succeed.
func (e *APIError) Temporary() bool { return retryStatus(e.Status) }

func retryStatus(code int) bool {
	switch code {
	case http.StatusRequestTimeout, http.StatusTooManyRequests, http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return true
	}
	return false
}

// do sends a request with body as JSON, tries it again while that is worth it, and decodes a 2xx
// answer into out.
func (c *Client) do(ctx context.Context, method, path string, body, out any) error {
	buf, err := json.Marshal(body)
	if err != nil {
		return fmt.Errorf("herald: encode request: %w", err)
	}
	pause := c.backoff
	for try := 1; ; try++ {
		wait, err := c.try(ctx, method, path, buf, out)
		if err == nil || try >= c.tries || wait < 0 {
			return err
		}
		if wait == 0 {
			wait = pause
		}
		pause *= 2
		t := time.NewTimer(min(wait, c.maxPause))
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("%w (after %v)", ctx.Err(), err)
		case <-t.C:
		}
	}
}

// try makes one request. wait is negative when the error is final, else the pause the server
// asked for (0: none).
func (c *Client) try(ctx context.Context, method, path string, body []byte, out any) (wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, bytes.NewReader(body))
	if err != nil {
		return -1, fmt.Errorf("herald: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json, application/problem+json")
	if c.key != "" {
		req.Header.Set("Authorization", "Bearer "+c.key)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return -1, err
		}
		// The request may or may not have reached Herald: the event's fixed id makes trying
		// again safe.
		return 0, fmt.Errorf("herald: %w", err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return 0, fmt.Errorf("herald: read answer: %w", err)
	}
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		if out != nil {
			if err := json.Unmarshal(raw, out); err != nil {
				return -1, fmt.Errorf("herald: decode answer: %w", err)
			}
		}
		return 0, nil
	}
	apiErr := &APIError{}
	if json.Unmarshal(raw, apiErr) != nil || apiErr.Title == "" {
		apiErr = &APIError{Title: http.StatusText(resp.StatusCode), Detail: strings.TrimSpace(string(raw[:min(len(raw), 200)]))}
	}
	apiErr.Status = resp.StatusCode
	apiErr.RetryAfter = retryAfter(resp.Header.Get("Retry-After"), time.Now())
	if !retryStatus(resp.StatusCode) {
		return -1, apiErr
	}
	return apiErr.RetryAfter, apiErr
}

// retryAfter reads a Retry-After header: seconds or an HTTP date.
func retryAfter(v string, now time.Time) time.Duration {
	if v == "" {
		return 0
	}
	if s, err := strconv.Atoi(v); err == nil && s >= 0 {
		return time.Duration(s) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil && t.After(now) {
		return t.Sub(now)
	}
	return 0
}

// NewID makes an event id as Herald does (event.NewID): "evt_", then 48 bits of Unix
// milliseconds and 80 random bits in lowercase base32, so ids sort by creation time.
func NewID() string { return event.NewID(time.Now()) }

// StatusCode is the HTTP status of an *APIError in err's chain, or 0.
func StatusCode(err error) int {
	if e, ok := errors.AsType[*APIError](err); ok {
		return e.Status
	}
	return 0
}
