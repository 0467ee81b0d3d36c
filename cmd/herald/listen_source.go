package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/redact"
)

// herald listen --source forwards each request a source receives, as the provider sent it, to a
// handler on the developer's machine. It polls the received-requests list (newest first, by
// source, since a time) rather than holding a stream: the list is what Herald stores anyway, a
// poll survives a server restart or a dropped connection without any resume logic, and a second
// of delay does not matter for local development.

// pollOverlap is how far back each poll looks before the newest request seen: requests stored by
// another node, or committed late, with a slightly older received_at are still found. The ids
// seen within it are remembered so that none is forwarded twice.
const pollOverlap = 10 * time.Second

// sourceForwarder is one run of herald listen --source.
type sourceForwarder struct {
	api      *apiClient
	tenant   string
	src      sourceView
	cfg      verify.Config
	secret   string // signs each request again for cfg's scheme, when set
	statuses []string
	to       *url.URL
	http     *http.Client
	out      io.Writer
	interval time.Duration
	since    time.Time            // the next poll asks for requests received at or after this
	seen     map[string]time.Time // ids forwarded (or present at start) with their received_at
}

// receivedItem is one entry of the received-requests list.
type receivedItem struct {
	ID         string    `json:"id"`
	ReceivedAt time.Time `json:"received_at"`
}

func (o *listenOptions) runSource(ctx context.Context, out io.Writer) error {
	c, err := newAPIClient(apiTarget{url: o.apiURL, key: o.apiKey})
	if err != nil {
		return err
	}
	statuses := o.statuses
	if len(statuses) == 0 {
		statuses = []string{"accepted", "duplicate", "quarantined"}
	}
	f := &sourceForwarder{api: c, tenant: o.tenant, secret: o.secret, statuses: statuses, out: out,
		interval: o.pollInterval, seen: map[string]time.Time{},
		http: &http.Client{Timeout: o.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	if f.to, err = url.Parse(o.forwardTo); err != nil {
		return usageErrorf("--forward-to: %w", err)
	}
	if err := c.do(ctx, http.MethodGet, apiPath("v1", "tenants", o.tenant, "sources", o.source), nil, nil, &f.src); err != nil {
		return err
	}
	if f.cfg, err = f.src.verifyConfig(); err != nil {
		return err
	}
	if f.secret != "" {
		// Checked once here, against a request that is never sent.
		if err := verify.Sign(f.cfg, f.secret, &verify.SignInput{URL: o.forwardTo, Header: http.Header{}, At: time.Now()}); err != nil {
			return usageErrorf("--secret: %w", err)
		}
	}
	if err := f.start(ctx); err != nil {
		return err
	}
	scheme := cmpOr(string(f.cfg.Scheme), f.cfg.Preset)
	fmt.Fprintf(out, "forwarding the requests source %s (%s, %s) receives at %s to %s\n", f.src.ID, f.src.Name, scheme, f.src.IngestURL, f.to.Redacted())
	if hs := f.cfg.SecretHeaders(); len(hs) > 0 && f.secret == "" {
		fmt.Fprintf(out, "Herald does not keep %s, so it is not forwarded: give --secret (the provider's secret) to sign each request again as %s would\n",
			strings.Join(hs, ", "), scheme)
	}
	fmt.Fprintf(out, "%s polling every %v; waiting for requests (ctrl-c to stop)\n", clock(), f.interval)
	return f.loop(ctx)
}

// start remembers the requests already received, so that only new ones are forwarded. The
// newest one sets the starting point, which is the server's clock, not this machine's.
func (f *sourceForwarder) start(ctx context.Context) error {
	q := url.Values{"source_id": {f.src.ID}, "limit": {"1"}}
	var page struct {
		Data []receivedItem `json:"data"`
	}
	if err := f.api.do(ctx, http.MethodGet, f.path(), q, nil, &page); err != nil {
		return err
	}
	if len(page.Data) == 0 {
		return nil // everything from now on is new
	}
	f.since = page.Data[0].ReceivedAt.Add(-pollOverlap)
	_, err := f.poll(ctx, func(receivedItem) {})
	return err
}

func (f *sourceForwarder) path(id ...string) string {
	return apiPath(append([]string{"v1", "tenants", f.tenant, "received-requests"}, id...)...)
}

// poll lists the requests since f.since that were not seen, oldest first, calls fn with each, and
// moves f.since on.
func (f *sourceForwarder) poll(ctx context.Context, fn func(receivedItem)) (int, error) {
	q := url.Values{"source_id": {f.src.ID}, "status": f.statuses}
	if !f.since.IsZero() {
		q.Set("since", f.since.UTC().Format(time.RFC3339Nano))
	}
	var fresh []receivedItem
	err := f.api.forEach(ctx, f.path(), q, func(raw json.RawMessage) error {
		var it receivedItem
		if err := json.Unmarshal(raw, &it); err != nil {
			return fmt.Errorf("decode received request: %w", err)
		}
		if _, ok := f.seen[it.ID]; !ok {
			fresh = append(fresh, it)
		}
		return nil
	})
	if err != nil {
		return 0, err
	}
	newest := f.since.Add(pollOverlap)
	for _, it := range slices.Backward(fresh) { // the list is newest first
		if ctx.Err() != nil {
			break
		}
		fn(it)
		f.seen[it.ID] = it.ReceivedAt
		if it.ReceivedAt.After(newest) {
			newest = it.ReceivedAt
		}
	}
	if len(fresh) > 0 || !f.since.IsZero() {
		f.since = newest.Add(-pollOverlap)
	}
	for id, at := range f.seen {
		if at.Before(f.since) {
			delete(f.seen, id)
		}
	}
	return len(fresh), nil
}

// loop polls until ctx ends or the API refuses for good, backing off while it fails.
func (f *sourceForwarder) loop(ctx context.Context) error {
	const maxBackoff = 10 * time.Second
	wait := f.interval
	failing := false
	for {
		if err := sleepCtx(ctx, wait); err != nil {
			return nil
		}
		_, err := f.poll(ctx, func(it receivedItem) { f.forward(ctx, it) })
		if ctx.Err() != nil {
			return nil
		}
		var ae *apiError
		switch {
		case err == nil:
			if failing {
				fmt.Fprintf(f.out, "%s the API answers again\n", clock())
			}
			failing, wait = false, f.interval
		case errors.As(err, &ae) && (ae.status == http.StatusUnauthorized || ae.status == http.StatusForbidden || ae.status == http.StatusNotFound):
			return err
		default:
			wait = min(2*max(wait, f.interval), maxBackoff)
			fmt.Fprintf(f.out, "%s polling failed (%v); trying again in %v\n", clock(), err, wait)
			failing = true
		}
	}
}

// forward sends one received request to --forward-to, and prints the line that tells how it went.
func (f *sourceForwarder) forward(ctx context.Context, it receivedItem) {
	var r receivedDetail
	if err := f.api.do(ctx, http.MethodGet, f.path(it.ID), nil, nil, &r); err != nil {
		fmt.Fprintf(f.out, "%s %s -> not forwarded: %v\n", clock(), it.ID, err)
		return
	}
	what := r.Status
	if r.EventID != "" {
		what += " as " + r.EventID
	}
	if r.EventType != "" {
		what += " " + r.EventType
	}
	start := time.Now()
	status, err := f.send(ctx, &r)
	took := time.Since(start).Round(100 * time.Microsecond)
	if err != nil {
		fmt.Fprintf(f.out, "%s %s %s (%s) -> error: %v (%v)\n", clock(), r.ID, r.Method, what, err, took)
		return
	}
	fmt.Fprintf(f.out, "%s %s %s (%s) -> %d (%v)\n", clock(), r.ID, r.Method, what, status, took)
}

// hopHeaders are not the sender's to forward: the connection's own, and what Go's client sets.
func hopHeaders() []string {
	return []string{"Host", "Content-Length", "Connection", "Keep-Alive", "Transfer-Encoding", "Te", "Trailer",
		"Upgrade", "Proxy-Connection", "Proxy-Authorization", "Accept-Encoding"}
}

func (f *sourceForwarder) send(ctx context.Context, r *receivedDetail) (int, error) {
	body, err := r.body()
	if err != nil {
		return 0, err
	}
	target := *f.to
	query := r.Query
	if f.secret != "" && f.cfg.Scheme == verify.SchemeTwilio {
		query = withoutParam(query, "bodySHA256") // Sign adds it again, for this body
	}
	if query != "" {
		if target.RawQuery != "" {
			target.RawQuery += "&" + query
		} else {
			target.RawQuery = query
		}
	}
	h := http.Header{}
	hop := hopHeaders()
	for name, vs := range r.Headers {
		if slices.ContainsFunc(hop, func(n string) bool { return strings.EqualFold(n, name) }) {
			continue
		}
		for _, v := range vs {
			if v != redact.Marker { // Herald does not keep signatures and credentials
				h.Add(name, v)
			}
		}
	}
	h.Set("X-Herald-Received-Request", r.ID)
	if h.Get("User-Agent") == "" {
		h.Set("User-Agent", "herald-listen/"+node.Version)
	}
	u := target.String()
	if f.secret != "" {
		in := &verify.SignInput{URL: u, Header: h, Body: body, ID: f.deliveryID(h, r.ID), At: time.Now()}
		if err := verify.Sign(f.cfg, f.secret, in); err != nil {
			return 0, fmt.Errorf("sign: %w", err)
		}
		u = in.URL
	}
	req, err := http.NewRequestWithContext(ctx, r.Method, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header = h
	resp, err := f.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// deliveryID is the id a scheme signs, taken from the request as received, so that the
// forwarded request keeps the provider's delivery id.
func (f *sourceForwarder) deliveryID(h http.Header, fallback string) string {
	for _, name := range []string{f.cfg.IDHeader, "webhook-id", "svix-id"} {
		if name != "" && h.Get(name) != "" {
			return h.Get(name)
		}
	}
	return fallback
}

// withoutParam drops one parameter from a raw query string.
func withoutParam(raw, name string) string {
	parts := strings.Split(raw, "&")
	kept := parts[:0]
	for _, p := range parts {
		if k, _, _ := strings.Cut(p, "="); k != name && p != "" {
			kept = append(kept, p)
		}
	}
	return strings.Join(kept, "&")
}
