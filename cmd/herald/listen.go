package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/api"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/webhook"
)

// listenCmd forwards a tenant's events, as they are published, to a URL on the developer's
// machine, signed as Herald signs webhooks: the local app is tested against real events
// without a public URL or an endpoint.
func listenCmd() *cobra.Command {
	var o listenOptions
	cmd := &cobra.Command{
		Use:   "listen --forward-to URL --tenant TENANT [--events PATTERN]... | [--source src_… [--secret PROVIDER_SECRET]]",
		Short: "Forward a tenant's events, or a source's received requests, as they happen to a local URL",
		Long: `Connect to a running Herald's listen stream (GET /v1/tenants/{tenant}/listen) and forward every
event of the tenant published from now on to --forward-to, as a webhook signed with the Standard
Webhooks scheme: webhook-id is the event id, and the secret is printed at start. The secret is
kept in the user's configuration directory (herald/listen-secret), so it stays the same from one
run to the next; --secret sets another. One line is printed per event: time, event id, type, the
local answer and how long it took. A forward that fails is reported, not retried.

When the stream drops (Herald restarts, the network hiccups) herald listen reconnects, backing
off up to 10 s, and resumes after the last event it saw: within a run, no event is skipped and
none is forwarded twice. The server and key come from --api-url / HERALD_API_URL and --api-key /
HERALD_API_KEY, else the profile (see herald login); every flag can be set as HERALD_<FLAG>.

With --source src_…, herald listen forwards instead each request the source receives, as the
provider sent it: its method, query, headers and body, to --forward-to (as the Stripe and Hookdeck
CLIs do). It polls the received requests (GET /v1/tenants/{tenant}/received-requests?source_id=…)
every --poll-interval and forwards those received since it started, oldest first, each once; a
server restart or a dropped connection only delays them. Herald does not keep the headers that
carry a signature or a credential (they show as [REDACTED]): give --secret, the provider's secret
in the form the source's scheme takes, and each forwarded request is signed again for that scheme,
so the local handler verifies it with the same secret as in production. By default every request
but the rejected ones is forwarded; --status chooses. The X-Herald-Received-Request header names
the received request (herald received show).`,
		Example: `  herald listen --forward-to http://localhost:3000/webhooks --tenant acme --events 'invoice.*'
  HERALD_API_KEY=hk_tenant_... herald listen --forward-to http://localhost:3000/webhooks --tenant acme --api-url https://herald.example.com
  herald listen --forward-to http://localhost:3000/stripe --tenant acme --source src_2b8d --secret whsec_…`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			if err := o.check(cmd.ErrOrStderr()); err != nil {
				return err
			}
			if o.source != "" {
				return o.runSource(cmd.Context(), cmd.OutOrStdout())
			}
			secret, where, err := listenSecret(o.secret)
			if err != nil {
				return err
			}
			signer, err := webhook.NewSigner(secret)
			if err != nil {
				return usageErrorf("--secret: %w", err)
			}
			out := cmd.OutOrStdout()
			events := "every event type"
			if len(o.events) > 0 {
				events = strings.Join(o.events, ", ")
			}
			fmt.Fprintf(out, "forwarding the events of tenant %s (%s) from %s to %s\n", o.tenant, events, o.apiURL, o.forwardTo)
			fmt.Fprintf(out, "signing secret: %s (%s)\n", secret, where)
			l := &listener{o: o, signer: signer, out: out,
				api:     &http.Client{Transport: &http.Transport{Proxy: http.ProxyFromEnvironment, ResponseHeaderTimeout: 30 * time.Second}},
				forward: &http.Client{Timeout: o.timeout, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }},
			}
			return l.run(cmd.Context())
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	f := cmd.Flags()
	f.StringVar(&o.forwardTo, "forward-to", "", "the local URL to POST each event to, e.g. http://localhost:3000/webhooks")
	f.StringVar(&o.tenant, "tenant", "", "the tenant whose events to forward")
	f.StringSliceVar(&o.events, "events", nil, "event types to forward: names, prefix.* or *; repeatable or comma-separated (default every type)")
	o.api.register(f)
	f.StringVar(&o.source, "source", "", "forward the requests a source (src_…) receives, as they were sent, instead of events")
	f.StringVar(&o.secret, "secret", "", "the whsec_ secret to sign events with, instead of the one kept in the configuration directory; with --source, the provider's secret to sign each request again with")
	f.DurationVar(&o.timeout, "timeout", 10*time.Second, "how long the local URL has to answer")
	f.StringSliceVar(&o.statuses, "status", nil, "with --source: the outcomes of the requests to forward: accepted, duplicate, quarantined, rejected (default all but rejected)")
	f.DurationVar(&o.pollInterval, "poll-interval", time.Second, "with --source: how often to ask for new requests")
	return cmd
}

type listenOptions struct {
	api                               apiFlags
	forwardTo, tenant, secret, source string
	events, statuses                  []string
	timeout, pollInterval             time.Duration
	// Set by check:
	apiURL, apiKey string
	stream         *url.URL // the listen stream's URL
}

func (o *listenOptions) check(notes io.Writer) error {
	if o.forwardTo == "" {
		return usageErrorf("missing --forward-to")
	}
	if u, err := url.Parse(o.forwardTo); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return usageErrorf("--forward-to %q: want an http:// or https:// URL", o.forwardTo)
	}
	if o.tenant == "" {
		return usageErrorf("missing --tenant")
	}
	if o.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	t, err := o.api.resolve(notes)
	if err != nil {
		return err
	}
	o.apiURL, o.apiKey = t.url, t.key
	base, err := url.Parse(o.apiURL)
	if err != nil {
		return usageErrorf("--api-url %q: %w", o.apiURL, err)
	}
	if o.source != "" {
		if len(o.events) > 0 {
			return usageErrorf("--events selects events; with --source every request of the source is forwarded (--status selects by outcome)")
		}
		if o.pollInterval < 100*time.Millisecond {
			return usageErrorf("--poll-interval %v: want at least 100ms", o.pollInterval)
		}
		return nil
	}
	if len(o.statuses) > 0 {
		return usageErrorf("--status is for --source")
	}
	o.stream = base.JoinPath("v1", "tenants", o.tenant, "listen")
	if len(o.events) > 0 {
		o.stream.RawQuery = url.Values{"events": o.events}.Encode()
	}
	return nil
}

// listenSecret returns the secret to sign with and where it comes from: the flag, or the file in
// the user's configuration directory, created (0600) with a new secret on first use.
func listenSecret(flag string) (string, string, error) {
	if flag != "" {
		if _, err := webhook.DecodeSecret(flag); err != nil {
			return "", "", usageErrorf("--secret: %w", err)
		}
		return flag, "from --secret", nil
	}
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", "", fmt.Errorf("find the configuration directory for the listen secret (or pass --secret): %w", err)
	}
	path := filepath.Join(dir, "herald", "listen-secret")
	for range 2 {
		b, err := os.ReadFile(path)
		if err == nil {
			secret := strings.TrimSpace(string(b))
			if _, err := webhook.DecodeSecret(secret); err != nil {
				return "", "", fmt.Errorf("%s does not hold a whsec_ secret (delete it to make a new one): %w", path, err)
			}
			return secret, "kept in " + path, nil
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return "", "", fmt.Errorf("read the listen secret: %w", err)
		}
		secret, err := webhook.NewSecret()
		if err != nil {
			return "", "", err
		}
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			return "", "", fmt.Errorf("create %s: %w", filepath.Dir(path), err)
		}
		f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
		if errors.Is(err, fs.ErrExist) {
			continue // another herald listen made it first: use theirs
		}
		if err != nil {
			return "", "", fmt.Errorf("create the listen secret: %w", err)
		}
		_, werr := f.WriteString(secret + "\n")
		if err := errors.Join(werr, f.Sync(), f.Close()); err != nil {
			_ = os.Remove(path)
			return "", "", fmt.Errorf("write the listen secret: %w", err)
		}
		return secret, "new, kept in " + path, nil
	}
	return "", "", fmt.Errorf("the listen secret %s keeps appearing and vanishing", path)
}

// listener is one run of herald listen.
type listener struct {
	o       listenOptions
	signer  *webhook.Signer
	out     io.Writer
	api     *http.Client
	forward *http.Client
	// last is the id (cursor) of the last event seen, ready events included: a reconnection
	// resumes after it.
	last string
}

// listenEvent is one Server-Sent Event of the stream.
type listenEvent struct {
	name, id, data string
}

// errStreamRefused is an answer that reconnecting will not change (a wrong key, tenant or cursor).
type errStreamRefused struct{ msg string }

func (e *errStreamRefused) Error() string { return e.msg }

// errStreamBusy is a 429: too many streams for the key or the server, for now; the next try
// waits at least its Retry-After.
type errStreamBusy struct {
	msg        string
	retryAfter time.Duration
}

func (e *errStreamBusy) Error() string { return e.msg }

// errStreamCut is a stream that ended without a close or error event.
var errStreamCut = fmt.Errorf("the stream ended without a reason: the connection broke, or the server dropped it because "+
	"this side did not read in time (the server waits %v for each write by default; a slow --forward-to delays reading)", api.DefaultListenWriteTimeout)

// run connects, forwards, and reconnects with backoff until ctx ends or the API refuses.
func (l *listener) run(ctx context.Context) error {
	const minBackoff, maxBackoff = 250 * time.Millisecond, 10 * time.Second
	backoff := minBackoff
	for {
		connected, err := l.stream(ctx)
		if ctx.Err() != nil {
			return nil
		}
		var refused *errStreamRefused
		if errors.As(err, &refused) {
			return err
		}
		if connected {
			backoff = minBackoff
		}
		wait := backoff
		if busy := (*errStreamBusy)(nil); errors.As(err, &busy) {
			wait = max(wait, busy.retryAfter)
		}
		fmt.Fprintf(l.out, "%s stream dropped (%v); reconnecting in %v\n", clock(), err, wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, maxBackoff)
	}
}

// describeEnd is the data of a close or error event (api.ListenEnd) as one line.
func describeEnd(data string) string {
	var end api.ListenEnd
	if json.Unmarshal([]byte(data), &end) != nil || end.Message == "" {
		return data
	}
	return end.Message + " (" + end.Reason + ")"
}

// stream reads one connection of the stream until it ends; connected says whether it got as far
// as the ready event.
func (l *listener) stream(ctx context.Context) (connected bool, err error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, l.o.stream.String(), nil)
	if err != nil {
		return false, err
	}
	req.Header.Set("Authorization", "Bearer "+l.o.apiKey)
	req.Header.Set("Accept", "text/event-stream")
	req.Header.Set("User-Agent", "herald-listen/"+node.Version)
	if l.last != "" {
		req.Header.Set("Last-Event-ID", l.last)
	}
	resp, err := l.api.Do(req)
	if err != nil {
		return false, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		body, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
		msg := fmt.Sprintf("the API answered %s: %s", resp.Status, describeProblem(body))
		switch resp.StatusCode {
		case http.StatusUnauthorized, http.StatusForbidden, http.StatusNotFound, http.StatusUnprocessableEntity:
			return false, &errStreamRefused{msg: msg}
		case http.StatusTooManyRequests:
			return false, &errStreamBusy{msg: msg, retryAfter: retryAfter(resp.Header)}
		}
		return false, errors.New(msg)
	}
	// A stream that says nothing for three heartbeats is dead, though no error says so (a
	// half-open connection): end it and reconnect.
	idle := 45 * time.Second
	watchdog := time.AfterFunc(idle, cancel)
	defer watchdog.Stop()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	var ev listenEvent
	for sc.Scan() {
		watchdog.Reset(idle)
		line := sc.Text()
		if line != "" {
			if !strings.HasPrefix(line, ":") { // comments are heartbeats
				field, value, _ := strings.Cut(line, ":")
				value = strings.TrimPrefix(value, " ")
				switch field {
				case "event":
					ev.name = value
				case "id":
					ev.id = value
				case "data":
					ev.data = value
				}
			}
			continue
		}
		switch ev.name {
		case "ready":
			var r struct {
				HeartbeatSeconds int `json:"heartbeat_seconds"`
			}
			if json.Unmarshal([]byte(ev.data), &r) == nil && r.HeartbeatSeconds > 0 {
				idle = 3 * time.Duration(r.HeartbeatSeconds) * time.Second
				watchdog.Reset(idle)
			}
			if !connected {
				fmt.Fprintf(l.out, "%s connected; waiting for events (ctrl-c to stop)\n", clock())
			}
			connected = true
		case "close":
			return connected, fmt.Errorf("the server closed the stream: %s", describeEnd(ev.data))
		case "error":
			return connected, fmt.Errorf("the server reported: %s", describeEnd(ev.data))
		case "":
			if ev.data != "" {
				l.deliver(ctx, ev.data)
			}
		}
		if ev.id != "" {
			l.last = ev.id
		}
		ev = listenEvent{}
	}
	if err := sc.Err(); err != nil {
		if ctx.Err() != nil && context.Cause(ctx) == context.Canceled {
			return connected, fmt.Errorf("no heartbeat for %v", idle)
		}
		return connected, err
	}
	return connected, errStreamCut
}

// deliver forwards one event, signed, and prints the line that tells what happened.
func (l *listener) deliver(ctx context.Context, data string) {
	var ev event.Envelope
	if err := json.Unmarshal([]byte(data), &ev); err != nil || ev.ID == "" {
		fmt.Fprintf(l.out, "%s skipped an event the stream sent garbled: %.100s\n", clock(), data)
		return
	}
	// The body an endpoint would get: the same envelope, in the same order.
	body, err := ev.Encode()
	if err != nil {
		fmt.Fprintf(l.out, "%s skipped an event the stream sent garbled: %.100s\n", clock(), data)
		return
	}
	start := time.Now()
	status, err := l.post(ctx, ev.ID, body)
	took := time.Since(start).Round(100 * time.Microsecond)
	if err != nil {
		fmt.Fprintf(l.out, "%s %s %s -> error: %v (%v)\n", clock(), ev.ID, ev.Type, err, took)
		return
	}
	fmt.Fprintf(l.out, "%s %s %s -> %d (%v)\n", clock(), ev.ID, ev.Type, status, took)
}

func (l *listener) post(ctx context.Context, id string, body []byte) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, l.o.forwardTo, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "Herald-Webhooks/"+node.Version+" (+https://github.com/heraldhq/herald; herald listen)")
	l.signer.SetHeaders(req.Header, id, time.Now(), body)
	resp, err := l.forward.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 1<<20))
	_ = resp.Body.Close()
	return resp.StatusCode, nil
}

// describeProblem is a problem document's title, detail and errors on one line.
func describeProblem(body []byte) string {
	var p struct {
		Title  string `json:"title"`
		Detail string `json:"detail"`
		Errors []struct {
			Location string `json:"location"`
			Message  string `json:"message"`
		} `json:"errors"`
	}
	if json.Unmarshal(body, &p) != nil || (p.Title == "" && p.Detail == "") {
		return strings.TrimSpace(string(body))
	}
	parts := []string{p.Title}
	if p.Detail != "" && p.Detail != p.Title {
		parts = append(parts, p.Detail)
	}
	for _, e := range p.Errors {
		parts = append(parts, e.Location+": "+e.Message)
	}
	return strings.Join(parts, "; ")
}

func clock() string { return time.Now().Format("15:04:05.000") }
