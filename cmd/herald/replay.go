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
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/webhook"
)

// replayOptions are the flags of herald replay.
type replayOptions struct {
	api                            apiFlags
	tenant, endpoint, since, until string
	states, types                  []string
	to, secret                     string
	timeout                        time.Duration
	dryRun                         bool
}

// replayCmd queues a tenant's failed deliveries again through the API, or sends their events to a
// URL of the developer's choosing, signed as Herald would sign them.
func replayCmd() *cobra.Command {
	var o replayOptions
	cmd := &cobra.Command{
		Use:   "replay --tenant TENANT [--endpoint ep_…] [--state dead]... [--since 24h] [--until …] [--event-type TYPE]... [--to URL] [--dry-run]",
		Short: "Queue matching deliveries again, or send their events to a URL",
		Long: `Select a tenant's deliveries (by default the dead ones) by endpoint, state, event type and
creation time, and replay them through a running Herald's API.

Without --to, Herald queues them again (POST /v1/tenants/{tenant}/replays): due now, with a fresh
retry schedule and the same webhook-id, to their own endpoints.

With --to URL, herald replay itself fetches the event of each matching delivery (each event once,
oldest first) and POSTs it to URL, signed with Standard Webhooks headers with --secret, or with a
new whsec_ secret that it prints. Herald's records do not change. The body is the event as the API
shows it: fields the tenant redacts arrive as [REDACTED].

--since and --until take a duration back from now (24h, 30m, 7d) or an RFC 3339 time.
Exit status: 0 when everything was queued or sent, 1 when the API refused or a send failed,
2 when the command was misused.`,
		Example: `  herald replay --tenant acme --since 24h --dry-run
  herald replay --tenant acme --endpoint ep_2b8d --state dead --event-type invoice.paid
  herald replay --tenant acme --state dead --state succeeded --to http://localhost:3000/webhooks --secret whsec_…`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error { return o.run(cmd) },
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	f := cmd.Flags()
	o.api.register(f)
	f.StringVar(&o.tenant, "tenant", "", "the tenant whose deliveries to replay")
	f.StringVar(&o.endpoint, "endpoint", "", "only this endpoint's deliveries")
	f.StringArrayVar(&o.states, "state", nil, "pending, succeeded or dead (repeatable; default dead)")
	f.StringArrayVar(&o.types, "event-type", nil, "only deliveries of this event type (repeatable)")
	f.StringVar(&o.since, "since", "", "only deliveries created since: 24h, 30m, 7d or an RFC 3339 time")
	f.StringVar(&o.until, "until", "", "only deliveries created before: a duration back from now or an RFC 3339 time")
	f.StringVar(&o.to, "to", "", "send the events to this URL instead of queuing the deliveries again")
	f.StringVar(&o.secret, "secret", "", "with --to: the whsec_ secret (or whsk_ signing key) to sign with; generated if absent")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "with --to: how long each request may take")
	f.BoolVar(&o.dryRun, "dry-run", false, "say how many would be replayed, and change nothing")
	return cmd
}

// replayFilter is the selection in both the forms the API takes: query parameters for the
// delivery list and the body of a bulk replay.
type replayFilter struct {
	query url.Values
	body  api.ReplayInput
}

func (o *replayOptions) filter(now time.Time) (*replayFilter, error) {
	states := o.states
	if len(states) == 0 {
		states = []string{"dead"}
	}
	for _, s := range states {
		if s != "pending" && s != "succeeded" && s != "dead" {
			return nil, usageErrorf("--state %q: want pending, succeeded or dead", s)
		}
	}
	f := &replayFilter{
		query: url.Values{"state": states, "event_type": o.types},
		body:  api.ReplayInput{EndpointID: o.endpoint, EventTypes: o.types, States: states},
	}
	if o.endpoint != "" {
		f.query.Set("endpoint_id", o.endpoint)
	}
	for _, t := range []struct {
		name, value string
		into        **time.Time
	}{{"since", o.since, &f.body.Since}, {"until", o.until, &f.body.Until}} {
		if t.value == "" {
			continue
		}
		at, err := api.ParseSince(t.value, now)
		if err != nil {
			return nil, usageErrorf("--%s %q: %w", t.name, t.value, err)
		}
		at = at.UTC()
		*t.into = &at
		f.query.Set(t.name, at.Format(time.RFC3339Nano))
	}
	return f, nil
}

func (o *replayOptions) run(cmd *cobra.Command) error {
	if err := bindEnv(cmd.Flags()); err != nil {
		return usageErrorf("%w", err)
	}
	if o.tenant == "" {
		return usageErrorf("missing --tenant")
	}
	start := time.Now()
	filter, err := o.filter(start)
	if err != nil {
		return err
	}
	var target *url.URL
	if o.to != "" {
		target, err = url.Parse(o.to)
		if err != nil || (target.Scheme != "http" && target.Scheme != "https") || target.Host == "" {
			return usageErrorf("--to %q: want an http:// or https:// URL", o.to)
		}
		if o.timeout <= 0 {
			return usageErrorf("--timeout must be positive")
		}
	} else if o.secret != "" {
		return usageErrorf("--secret is for --to: queued deliveries are signed with their endpoint's secret")
	}
	c, err := o.api.client(cmd.ErrOrStderr())
	if err != nil {
		return err
	}
	deliveries, events, err := matching(cmd.Context(), c, o.tenant, filter.query)
	if err != nil {
		return err
	}
	if target == nil {
		return o.queueAgain(cmd, c, filter, deliveries, len(events), start)
	}
	return o.sendTo(cmd, c, target, deliveries, events, start)
}

// matching lists the deliveries the filter selects and returns how many there are and the ids
// of their events, each once and the oldest first, so that a receiver sees them in the order they
// happened.
func matching(ctx context.Context, c *apiClient, tenant string, query url.Values) (deliveries int, events []string, err error) {
	var newestFirst []string // the API lists deliveries newest first
	err = c.forEach(ctx, apiPath("v1", "tenants", tenant, "deliveries"), query, func(raw json.RawMessage) error {
		var d struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(raw, &d); err != nil {
			return fmt.Errorf("decode delivery: %w", err)
		}
		newestFirst = append(newestFirst, d.EventID)
		return nil
	})
	if err != nil {
		return 0, nil, fmt.Errorf("list matching deliveries: %w", err)
	}
	seen := map[string]bool{}
	for _, id := range slices.Backward(newestFirst) {
		if !seen[id] {
			seen[id] = true
			events = append(events, id)
		}
	}
	return len(newestFirst), events, nil
}

// queueAgain asks the API to queue the matching deliveries again.
func (o *replayOptions) queueAgain(cmd *cobra.Command, c *apiClient, filter *replayFilter, deliveries, events int, start time.Time) error {
	out := cmd.OutOrStdout()
	if o.dryRun {
		fmt.Fprintf(out, "dry run: %d deliveries match (%d events); herald replay without --dry-run would queue them again\n", deliveries, events)
		return nil
	}
	var answer struct {
		Queued int `json:"queued"`
	}
	if err := c.do(cmd.Context(), http.MethodPost, apiPath("v1", "tenants", o.tenant, "replays"), nil, filter.body, &answer); err != nil {
		return fmt.Errorf("replay: %w", err)
	}
	fmt.Fprintf(out, "replay: matched %d deliveries, queued %d, elapsed %v\n", deliveries, answer.Queued, time.Since(start).Round(time.Millisecond))
	if n := deliveries - answer.Queued; n > 0 {
		fmt.Fprintf(out, "%d not queued: an attempt was in flight (they are queued already) or they changed since they were listed\n", n)
	}
	return nil
}

// sendTo posts each event to target, signed, and sums up what the receiver answered.
func (o *replayOptions) sendTo(cmd *cobra.Command, c *apiClient, target *url.URL, deliveries int, events []string, start time.Time) error {
	ctx, out, errw := cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr()
	if o.dryRun {
		fmt.Fprintf(out, "dry run: %d deliveries match (%d events); herald replay without --dry-run would send %d events to %s\n", deliveries, len(events), len(events), target.Redacted())
		return nil
	}
	secret := o.secret
	if secret == "" {
		var err error
		if secret, err = webhook.NewSecret(); err != nil {
			return fmt.Errorf("generate a secret: %w", err)
		}
		fmt.Fprintf(errw, "signing with a new secret (give --secret to choose one): %s\n", secret)
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		return usageErrorf("--secret: %w", err)
	}
	s := &replaySender{api: c, tenant: o.tenant, to: target.String(), signer: signer,
		http: &http.Client{Timeout: o.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
	bar := newReplayProgress(errw, len(events), start)
	var sent, failed int
	outcomes := map[string]int{}
	for _, id := range events {
		if ctx.Err() != nil {
			break
		}
		outcome, err := s.send(ctx, id)
		if err == nil {
			sent++
		} else {
			failed++
			outcomes[outcome]++
			bar.note(fmt.Sprintf("event %s: %v", id, err))
		}
		bar.update(sent+failed, failed)
	}
	bar.done()
	fmt.Fprintf(out, "replay: matched %d deliveries (%d events), sent %d to %s, failed %d%s, elapsed %v\n",
		deliveries, len(events), sent, target.Redacted(), failed, outcomeList(outcomes), time.Since(start).Round(time.Millisecond))
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("replay interrupted after %d of %d events: %w", sent+failed, len(events), err)
	}
	if failed > 0 {
		return fmt.Errorf("%d of %d events were not accepted by %s", failed, len(events), target.Redacted())
	}
	return nil
}

// outcomeList formats failure counts as " (503: 2, connection: 1)", most frequent first.
func outcomeList(m map[string]int) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.SortFunc(keys, func(a, b string) int {
		if m[a] != m[b] {
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s: %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}

// replaySender posts stored events to a URL as Herald would deliver them.
type replaySender struct {
	api    *apiClient
	tenant string
	to     string
	signer *webhook.Signer
	http   *http.Client
}

// send fetches one event and posts it. On failure, outcome names the kind for the summary: the
// HTTP status of the receiver's answer, "connection" or "timeout" when none came, or
// "event <status>" when the API could not give the event.
func (s *replaySender) send(ctx context.Context, eventID string) (outcome string, err error) {
	// The API's event holds the envelope's fields: sent again as the envelope Herald sends.
	var ev event.Envelope
	if err := s.api.do(ctx, http.MethodGet, apiPath("v1", "tenants", s.tenant, "events", eventID), nil, nil, &ev); err != nil {
		if ae, ok := errors.AsType[*apiError](err); ok {
			return "event " + strconv.Itoa(ae.status), err
		}
		return "event", err
	}
	payload, err := ev.Encode() // data as it was published (the API shows it so)
	if err != nil {
		return "encode", fmt.Errorf("encode event: %w", err)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, s.to, bytes.NewReader(payload))
	if err != nil {
		return "request", fmt.Errorf("build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Herald-Webhooks/"+node.Version+" (+https://github.com/heraldhq/herald; herald replay)")
	s.signer.SetHeaders(req.Header, ev.ID, time.Now(), payload)
	resp, err := s.http.Do(req)
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) || isTimeout(err) {
			return "timeout", fmt.Errorf("post: %w", err)
		}
		return "connection", fmt.Errorf("post: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		return strconv.Itoa(resp.StatusCode), fmt.Errorf("post: answered %s", resp.Status)
	}
	return "", nil
}

func isTimeout(err error) bool {
	var t interface{ Timeout() bool }
	return errors.As(err, &t) && t.Timeout()
}

// replayProgress shows how far a replay is on standard error: a bar redrawn in place on a terminal, a
// plain line every few seconds otherwise (a log file or CI output would fill with bars).
type replayProgress struct {
	w         io.Writer
	tty       bool
	total     int
	start     time.Time
	last      time.Time
	every     time.Duration
	drawn     bool
	count     int
	failed    int
	lastNotes int
}

// maxNotes bounds the failure lines printed during a replay; the summary counts all of them.
const maxNotes = 10

func newReplayProgress(w io.Writer, total int, start time.Time) *replayProgress {
	p := &replayProgress{w: w, tty: isTerminal(w), total: total, start: start, every: 2 * time.Second}
	if p.tty {
		p.every = 100 * time.Millisecond
		p.draw()
	} else {
		fmt.Fprintf(w, "replay: sending %d events\n", total)
		p.last = start // the next line when every has passed
	}
	return p
}

func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

func (p *replayProgress) update(done, failed int) {
	p.count, p.failed = done, failed
	if now := time.Now(); now.Sub(p.last) >= p.every || done == p.total {
		p.last = now
		p.draw()
	}
}

// note prints a failure above the bar, the first few only.
func (p *replayProgress) note(msg string) {
	p.lastNotes++
	if p.lastNotes > maxNotes {
		return
	}
	if p.tty && p.drawn {
		fmt.Fprint(p.w, "\r\033[K")
	}
	if p.lastNotes == maxNotes {
		msg += " (further failures are only counted)"
	}
	fmt.Fprintln(p.w, "replay:", msg)
	if p.tty && p.drawn {
		p.draw()
	}
}

func (p *replayProgress) draw() {
	elapsed := time.Since(p.start).Round(100 * time.Millisecond)
	if !p.tty {
		fmt.Fprintf(p.w, "replay: %d/%d events, %d failed, %v\n", p.count, p.total, p.failed, elapsed)
		return
	}
	const width = 30
	filled, pct := width, 100
	if p.total > 0 {
		filled, pct = width*p.count/p.total, 100*p.count/p.total
	}
	bar := strings.Repeat("=", filled) + strings.Repeat(" ", width-filled)
	fmt.Fprintf(p.w, "\r\033[K[%s] %d/%d %3d%% %d failed %v", bar, p.count, p.total, pct, p.failed, elapsed)
	p.drawn = true
}

func (p *replayProgress) done() {
	if p.tty && p.drawn {
		fmt.Fprintln(p.w)
	}
}
