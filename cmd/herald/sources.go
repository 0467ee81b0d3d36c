package main

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/inbound/verify"
	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/webhook"
)

// The receiving side: sources (ingest URLs), the requests they received, and a signed test
// request. Like the other resource commands, each is thin over the REST API (docs/receiving.md).

func sourceColumns() []column {
	return []column{{"ID", "id"}, {"NAME", "name"}, {"ENABLED", "enabled"}, {"SCHEME", "verification.scheme"},
		{"PRESET", "verification.preset"}, {"INGEST URL", "ingest_url"}, {"CREATED", "created_at"}}
}

func receivedColumns() []column {
	return []column{{"ID", "id"}, {"SOURCE", "source_id"}, {"STATUS", "status"}, {"REASON", "reason"},
		{"EVENT", "event_id"}, {"TYPE", "event_type"}, {"DELIVERIES", "deliveries"}, {"RECEIVED", "received_at"}}
}

// sourceSettings are the flags of sources create.
type sourceSettings struct {
	scheme, preset, verification string
	secrets                      []string
	description                  string
	prefix, defaultType          string
}

// verificationBody builds the verification object: --verification (JSON or @file) with --scheme,
// --preset and --secret over it.
func (s *sourceSettings) verificationBody(stdin io.Reader) (map[string]any, error) {
	v := map[string]any{}
	if s.verification != "" {
		raw, err := readData(s.verification, stdin)
		if err != nil {
			return nil, usageErrorf("--verification: %w", err)
		}
		if err := json.Unmarshal(raw, &v); err != nil {
			return nil, usageErrorf("--verification: %w", err)
		}
	}
	if s.scheme != "" {
		v["scheme"] = s.scheme
	}
	if s.preset != "" {
		v["preset"] = s.preset
	}
	if len(s.secrets) > 0 {
		v["secrets"] = s.secrets
	}
	if v["scheme"] == nil && v["preset"] == nil {
		return nil, usageErrorf("missing --scheme (%s) or --preset (%s)", schemeNames(), strings.Join(verify.Presets(), ", "))
	}
	return v, nil
}

func schemeNames() string {
	var names []string
	for _, s := range verify.Schemes() {
		names = append(names, string(s))
	}
	return strings.Join(names, ", ")
}

func sourcesCmd() *cobra.Command {
	cmd := groupCmd("sources", "Manage a tenant's sources: the ingest URLs that receive webhooks from providers")
	g := newAPIGroup(cmd, true)
	path := func(id ...string) string {
		return apiPath(append([]string{"v1", "tenants", g.tenant, "sources"}, id...)...)
	}

	var lf listFlags
	list := &cobra.Command{
		Use: "list --tenant TENANT", Short: "List a tenant's sources with their ingest URLs", Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			return runList(cmd, c, g.output, path(), nil, &lf, sourceColumns())
		},
	}
	lf.register(list.Flags())

	// one sends a request about one source and shows the source it answers.
	one := func(use, short, method, suffix string, body map[string]any, after string) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: exactArgs(1, "one argument, the source id (src_…)"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.setup(cmd, true)
				if err != nil {
					return err
				}
				p := path(args[0])
				if suffix != "" {
					p = path(args[0], suffix)
				}
				var b any
				if body != nil {
					b = body
				}
				var src json.RawMessage
				if err := c.do(cmd.Context(), method, p, nil, b, &src); err != nil {
					return err
				}
				if method == http.MethodDelete {
					if g.output == "table" {
						fmt.Fprintf(cmd.OutOrStdout(), "source %s deleted\n", args[0])
					}
					return nil
				}
				if err := printItem(cmd.OutOrStdout(), g.output, sourceColumns(), src); err != nil {
					return err
				}
				if after != "" && g.output == "table" {
					fmt.Fprintln(cmd.OutOrStdout(), "\n"+after)
				}
				return nil
			},
		}
	}

	var set sourceSettings
	create := &cobra.Command{
		Use:   "create NAME --tenant TENANT (--scheme SCHEME | --preset PRESET) [--secret S]... [--verification JSON]",
		Short: "Create a source and print its ingest URL",
		Long: `Create a source (POST /v1/tenants/{tenant}/sources): an ingest URL to give a provider. Requests
to it are verified as --scheme says, with the provider's secret(s) given as --secret (repeatable,
for a rotation). Fields of the verification object other than scheme, preset and secrets (header,
algorithm, template, public_url …; docs/receiving.md lists them per scheme) come from
--verification, a JSON object or @file.

For the standard_webhooks scheme without --secret, a new whsec_ secret is made, sent, and printed
once: give it to the sender, and to herald send-test. Herald never shows a source's secrets again.`,
		Example: `  herald sources create stripe-live --tenant acme --scheme stripe --secret whsec_… --event-type-prefix stripe.
  herald sources create github --tenant acme --scheme github --secret "$GITHUB_WEBHOOK_SECRET"
  herald sources create linear --tenant acme --preset linear --secret lin_wh_…
  herald sources create partner --tenant acme --scheme hmac --secret s3cret \
    --verification '{"header":"X-Signature","prefix":"sha256="}'`,
		Args: exactArgs(1, "one argument, the source's name"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			v, err := set.verificationBody(cmd.InOrStdin())
			if err != nil {
				return err
			}
			made := ""
			if v["scheme"] == string(verify.SchemeStandardWebhooks) && v["secrets"] == nil {
				if made, err = webhook.NewSecret(); err != nil {
					return err
				}
				v["secrets"] = []string{made}
			}
			body := map[string]any{"name": args[0], "verification": v}
			f := cmd.Flags()
			if f.Changed("description") {
				body["description"] = set.description
			}
			if f.Changed("event-type-prefix") {
				body["event_type_prefix"] = set.prefix
			}
			if f.Changed("default-event-type") {
				body["default_event_type"] = set.defaultType
			}
			var src json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, path(), nil, body, &src); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := printItem(out, g.output, sourceColumns(), src); err != nil {
				return err
			}
			if made != "" {
				// On standard error with -o json, so that the JSON stays one document.
				w := out
				if g.output == "json" {
					w = cmd.ErrOrStderr()
				}
				fmt.Fprintf(w, "\nthe sender's signing secret (shown once, Herald keeps it encrypted): %s\n", made)
			}
			return nil
		},
	}
	cf := create.Flags()
	cf.StringVar(&set.scheme, "scheme", "", "how requests are verified: "+schemeNames())
	cf.StringVar(&set.preset, "preset", "", "a provider over a generic scheme: "+strings.Join(verify.Presets(), ", "))
	cf.StringArrayVar(&set.secrets, "secret", nil, "the provider's secret for the scheme (repeatable, for a rotation)")
	cf.StringVar(&set.verification, "verification", "", "the other fields of the verification object: JSON, or @file")
	cf.StringVar(&set.description, "description", "", "a description")
	cf.StringVar(&set.prefix, "event-type-prefix", "", "put before the provider's event type (stripe. makes stripe.invoice.paid)")
	cf.StringVar(&set.defaultType, "default-event-type", "", "the event type of a request that carries none (default webhook.received)")

	var yes bool
	del := one("delete SOURCE --tenant TENANT --yes", "Delete a source with its received requests", http.MethodDelete, "", nil, "")
	inner := del.RunE
	del.RunE = func(cmd *cobra.Command, args []string) error {
		if !yes {
			return usageErrorf("deleting source %s stops its URL and removes its received requests: add --yes to confirm", args[0])
		}
		return inner(cmd, args)
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")

	cmd.AddCommand(list, create, del,
		one("get SOURCE --tenant TENANT", "Show a source", http.MethodGet, "", nil, ""),
		one("rotate SOURCE --tenant TENANT", "Give a source a new ingest URL; the old one stops working at once",
			http.MethodPost, "rotate-token", nil, "the old ingest URL answers 404 from now on: give the new one to the sender"),
		one("enable SOURCE --tenant TENANT", "Enable a source", http.MethodPatch, "", map[string]any{"enabled": true}, ""),
		one("disable SOURCE --tenant TENANT", "Disable a source: its URL answers 404 until enabled", http.MethodPatch, "", map[string]any{"enabled": false}, ""),
	)
	return cmd
}

func receivedCmd() *cobra.Command {
	cmd := groupCmd("received", "List, show and replay the requests a tenant's sources received")
	g := newAPIGroup(cmd, true)
	path := func(id ...string) string {
		return apiPath(append([]string{"v1", "tenants", g.tenant, "received-requests"}, id...)...)
	}

	var lf listFlags
	var source, since, until string
	var statuses []string
	list := &cobra.Command{
		Use:   "list --tenant TENANT [--source src_…] [--status rejected]... [--since 24h] [--until …]",
		Short: "List received requests, newest first", Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			q := url.Values{"status": statuses}
			if source != "" {
				q.Set("source_id", source)
			}
			if err := setTimes(q, since, until, time.Now()); err != nil {
				return err
			}
			return runList(cmd, c, g.output, path(), q, &lf, receivedColumns())
		},
	}
	lf.register(list.Flags())
	lfl := list.Flags()
	lfl.StringVar(&source, "source", "", "only this source's requests")
	lfl.StringArrayVar(&statuses, "status", nil, "accepted, duplicate, quarantined or rejected (repeatable)")
	lfl.StringVar(&since, "since", "", "only requests received since: 24h, 30m, 7d or an RFC 3339 time")
	lfl.StringVar(&until, "until", "", "only requests received before: a duration back from now or an RFC 3339 time")

	show := &cobra.Command{
		Use: "show REQUEST --tenant TENANT", Short: "Show a received request with its headers, body and forwarding",
		Args: exactArgs(1, "one argument, the request id (req_…)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, path(args[0]), nil, nil, &raw); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if err := printItem(out, g.output, receivedColumns(), raw); err != nil || g.output == "json" {
				return err
			}
			var r receivedDetail
			if err := json.Unmarshal(raw, &r); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			fmt.Fprintf(out, "\n%s %s", r.Method, r.Path)
			if r.Query != "" {
				fmt.Fprintf(out, "?%s", r.Query)
			}
			fmt.Fprintln(out)
			for _, k := range sortedKeys(r.Headers) {
				for _, v := range r.Headers[k] {
					fmt.Fprintf(out, "%s: %s\n", k, cell(v))
				}
			}
			body, err := r.body()
			if err != nil {
				return err
			}
			var pretty bytes.Buffer
			if json.Indent(&pretty, body, "", "  ") == nil {
				body = pretty.Bytes()
			}
			fmt.Fprintf(out, "\n%s\n", body)
			if len(r.Forwarding) > 0 {
				fmt.Fprintln(out, "\nforwarding:")
				if err := printItems(out, "table", deliveryColumns(), r.Forwarding); err != nil {
					return err
				}
			}
			return nil
		},
	}

	var force bool
	replay := &cobra.Command{
		Use: "replay REQUEST --tenant TENANT [--force]", Short: "Forward a received request again (a quarantined one becomes an event)",
		Args: exactArgs(1, "one argument, the request id (req_…)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			var body any
			if force {
				body = map[string]any{"force": true}
			}
			var res struct {
				RequestID  string `json:"request_id"`
				EventID    string `json:"event_id"`
				Deliveries int    `json:"deliveries"`
				Accepted   bool   `json:"accepted"`
				Duplicate  bool   `json:"duplicate"`
			}
			var raw json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, path(args[0], "replay"), nil, body, &raw); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), raw)
			}
			if err := json.Unmarshal(raw, &res); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			switch {
			case res.Duplicate:
				fmt.Fprintf(cmd.OutOrStdout(), "request %s: event %s existed already; nothing queued\n", res.RequestID, res.EventID)
			case res.Accepted:
				fmt.Fprintf(cmd.OutOrStdout(), "request %s accepted now as event %s: %d deliveries queued\n", res.RequestID, res.EventID, res.Deliveries)
			default:
				fmt.Fprintf(cmd.OutOrStdout(), "request %s replayed: event %s, %d deliveries queued\n", res.RequestID, res.EventID, res.Deliveries)
			}
			return nil
		},
	}
	replay.Flags().BoolVar(&force, "force", false, "forward a quarantined request even though its payload fails the source's schema")

	cmd.AddCommand(list, show, replay)
	return cmd
}

// receivedDetail is the part of GET …/received-requests/{id} that show and listen --source use.
type receivedDetail struct {
	ID         string              `json:"id"`
	Method     string              `json:"method"`
	Path       string              `json:"path"`
	Query      string              `json:"query"`
	Status     string              `json:"status"`
	EventID    string              `json:"event_id"`
	EventType  string              `json:"event_type"`
	ReceivedAt time.Time           `json:"received_at"`
	Headers    map[string][]string `json:"headers"`
	Body       *string             `json:"body"`
	BodyBase64 string              `json:"body_base64"`
	Forwarding []json.RawMessage   `json:"forwarding"`
}

func (r *receivedDetail) body() ([]byte, error) {
	if r.Body != nil {
		return []byte(*r.Body), nil
	}
	b, err := base64.StdEncoding.DecodeString(r.BodyBase64)
	if err != nil {
		return nil, fmt.Errorf("request %s: body_base64: %w", r.ID, err)
	}
	return b, nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// sourceView is the part of a source that send-test and listen --source need.
type sourceView struct {
	ID           string          `json:"id"`
	Name         string          `json:"name"`
	Enabled      bool            `json:"enabled"`
	IngestURL    string          `json:"ingest_url"`
	Verification json.RawMessage `json:"verification"`
}

// verifyConfig is the source's verification settings without secrets, as verify.Sign takes them.
func (s *sourceView) verifyConfig() (verify.Config, error) {
	var m map[string]any
	if err := json.Unmarshal(s.Verification, &m); err != nil {
		return verify.Config{}, fmt.Errorf("source %s: verification: %w", s.ID, err)
	}
	delete(m, "secrets_count")
	b, err := json.Marshal(m)
	if err != nil {
		return verify.Config{}, err
	}
	var c verify.Config
	if err := json.Unmarshal(b, &c); err != nil {
		return verify.Config{}, fmt.Errorf("source %s: verification: %w", s.ID, err)
	}
	return c, nil
}

// secretHelp says, per scheme, what --secret is for send-test and listen --source.
const secretHelp = `what the provider signs with, in the form the source's scheme takes: the whsec_ secret
(standard_webhooks; or the whsk_ signing key of a whpk_ public key), the whsec_ signing secret
(stripe), the webhook secret (github, hmac), the client secret (shopify), the signing secret
(slack), the auth token (twilio), user:password (basic), the token (bearer). Herald keeps a
source's secrets write-only, so it cannot give them back: pass the one you gave at creation
(herald sources create prints the one it makes for standard_webhooks). The none scheme needs none.`

func sendTestCmd() *cobra.Command {
	var (
		af                                   apiFlags
		tenant, source, secret, data, evType string
		contentType                          string
		headers                              []string
	)
	cmd := &cobra.Command{
		Use:   "send-test --tenant TENANT --source SOURCE [--secret SECRET] [--data JSON|@file] [--event-type TYPE]",
		Short: "Send a correctly signed test request to a source's ingest URL, as its provider would",
		Long: `Fetch the source (GET /v1/tenants/{tenant}/sources/{id}), build a test request and sign it for the
source's scheme (and preset) with --secret, then POST it to the source's ingest URL and print
Herald's answer: accepted as an event, duplicate, quarantined (the source's schema) or rejected
(with the reason, e.g. bad_signature when --secret is not the source's).

--secret is ` + secretHelp + `

The body is --data (a JSON object, or @file), else a small JSON object with a fresh id, the event
type (--event-type, default herald.test) and the time. The provider headers that carry the event
type and delivery id are set too (X-GitHub-Event, X-Shopify-Topic, the source's event_type_header
…), with a fresh delivery id, so that each test is a new delivery rather than a duplicate.`,
		Example: `  herald send-test --tenant acme --source src_2b8d --secret whsec_…
  herald send-test --tenant acme --source src_2b8d --secret "$GITHUB_WEBHOOK_SECRET" --event-type push --data @push.json`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			if tenant == "" {
				return usageErrorf("missing --tenant")
			}
			if source == "" {
				return usageErrorf("missing --source")
			}
			c, err := af.client(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			var src sourceView
			if err := c.do(cmd.Context(), http.MethodGet, apiPath("v1", "tenants", tenant, "sources", source), nil, nil, &src); err != nil {
				return err
			}
			cfg, err := src.verifyConfig()
			if err != nil {
				return err
			}
			if secret == "" && cfg.Scheme != verify.SchemeNone {
				return usageErrorf("missing --secret: source %s verifies with %s, and Herald never gives a source's secrets back; --secret is %s",
					src.ID, cmpOr(string(cfg.Scheme), cfg.Preset), "the one the provider signs with (see herald send-test --help)")
			}
			id := event.NewPrefixedID("msg", time.Now())
			var body []byte
			if data != "" {
				raw, err := readData(data, cmd.InOrStdin())
				if err != nil {
					return usageErrorf("--data: %w", err)
				}
				body = raw
			} else if body, err = json.Marshal(map[string]any{"id": id, "type": evType, "created": time.Now().Unix(),
				"data": map[string]any{"message": "a test request from herald send-test"}}); err != nil {
				return err
			}
			h := http.Header{"Content-Type": {contentType}, "User-Agent": {"herald-send-test/" + node.Version}}
			for _, kv := range headers {
				k, v, ok := strings.Cut(kv, ":")
				if !ok || strings.TrimSpace(k) == "" {
					return usageErrorf(`--header %q: want "Name: value"`, kv)
				}
				h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
			}
			providerHeaders(h, &cfg, id, evType)
			in := &verify.SignInput{URL: src.IngestURL, Header: h, Body: body, ID: id, At: time.Now()}
			if err := verify.Sign(cfg, secret, in); err != nil {
				return usageErrorf("--secret: %w", err)
			}
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, in.URL, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header = in.Header
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				return fmt.Errorf("send to the ingest URL: %w", err)
			}
			defer resp.Body.Close()
			answer, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "sent a %s request (delivery %s) to source %s: %s\n", cmpOr(string(cfg.Scheme), cfg.Preset), id, src.ID, resp.Status)
			fmt.Fprintf(out, "%s\n", bytes.TrimSpace(answer))
			var a struct {
				Status string `json:"status"`
				Reason string `json:"reason"`
			}
			_ = json.Unmarshal(answer, &a)
			if resp.StatusCode/100 != 2 || a.Status == "rejected" {
				return fmt.Errorf("the source did not accept the test request (%s %s)", resp.Status, cmpOr(a.Reason, describeProblem(answer)))
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	f := cmd.Flags()
	af.register(f)
	f.StringVar(&tenant, "tenant", "", "the tenant (HERALD_TENANT)")
	f.StringVar(&source, "source", "", "the source to send to (src_…)")
	f.StringVar(&secret, "secret", "", "the provider's secret to sign with (HERALD_SECRET); see the help")
	f.StringVar(&data, "data", "", "the body: a JSON object, or @file (@- for standard input); default: a small test object")
	f.StringVar(&evType, "event-type", "herald.test", "the event type put in the test body and provider headers")
	f.StringVar(&contentType, "content-type", "application/json", "the request's Content-Type (application/x-www-form-urlencoded for a Twilio form)")
	f.StringArrayVar(&headers, "header", nil, `an extra header, "Name: value" (repeatable)`)
	return cmd
}

// providerHeaders sets the headers the source's scheme reads the event type and delivery id
// from, as its provider would send them.
func providerHeaders(h http.Header, c *verify.Config, id, evType string) {
	switch c.Scheme {
	case verify.SchemeGitHub:
		h.Set("X-GitHub-Event", evType)
		h.Set("X-GitHub-Delivery", id)
	case verify.SchemeShopify:
		h.Set("X-Shopify-Topic", evType)
		h.Set("X-Shopify-Webhook-Id", id)
	case verify.SchemeTwilio:
		h.Set("I-Twilio-Idempotency-Token", id)
	}
	if c.EventTypeHeader != "" {
		h.Set(c.EventTypeHeader, evType)
	}
	if c.EventIDHeader != "" {
		h.Set(c.EventIDHeader, id)
	}
}
