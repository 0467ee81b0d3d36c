package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/api"
)

// The resource commands (tenants, endpoints, events, deliveries) are thin over the REST API: one
// request or one paged list each, the answer shown as a table or as the API's JSON.

// apiGroup holds the flags that every subcommand of a resource group shares, registered as
// persistent flags on the group.
type apiGroup struct {
	api    apiFlags
	output string
	tenant string
}

func newAPIGroup(cmd *cobra.Command, withTenant bool) *apiGroup {
	g := &apiGroup{}
	f := cmd.PersistentFlags()
	g.api.register(f)
	f.StringVarP(&g.output, "output", "o", "table", "table or json")
	if withTenant {
		f.StringVar(&g.tenant, "tenant", "", "the tenant (HERALD_TENANT)")
	}
	return g
}

// setup reads the environment and checks the shared flags; every RunE starts with it.
func (g *apiGroup) setup(cmd *cobra.Command, needTenant bool) (*apiClient, error) {
	if err := bindEnv(cmd.Flags()); err != nil {
		return nil, usageErrorf("%w", err)
	}
	if g.output != "table" && g.output != "json" {
		return nil, usageErrorf("--output %q: want table or json", g.output)
	}
	if needTenant && g.tenant == "" {
		return nil, usageErrorf("missing --tenant")
	}
	return g.api.client(cmd.ErrOrStderr())
}

// groupCmd is a command that only holds subcommands; flag errors are usage errors (exit 2).
func groupCmd(use, short string) *cobra.Command {
	cmd := &cobra.Command{
		Use: use, Short: short,
		// Runnable, so that a mistyped subcommand is an error (exit 2) rather than help and exit 0.
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("unknown command %q for %q", args[0], cmd.CommandPath())
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, _ []string) error { return cmd.Help() },
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	return cmd
}

func exactArgs(n int, what string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) != n {
			if n == 0 {
				return usageErrorf("%s takes no arguments, got %q", cmd.CommandPath(), args)
			}
			return usageErrorf("%s takes %s, got %d arguments", cmd.CommandPath(), what, len(args))
		}
		return nil
	}
}

// column is one column of a table: a field of the API's JSON object.
type column struct{ title, field string }

// The columns of each resource's table; functions rather than variables, so that no package
// state can be changed.
func tenantColumns() []column {
	return []column{{"ID", "id"}, {"NAME", "name"}, {"REDACT FIELDS", "redact_fields"}, {"CREATED", "created_at"}}
}

func endpointColumns() []column {
	return []column{{"ID", "id"}, {"URL", "url"}, {"ENABLED", "enabled"}, {"EVENT TYPES", "event_types"},
		{"SCHEME", "signature_scheme"}, {"DISABLED REASON", "disabled_reason"}, {"CREATED", "created_at"}}
}

func eventColumns() []column {
	return []column{{"ID", "id"}, {"TYPE", "type"}, {"SOURCE", "source"}, {"CREATED", "created_at"}}
}

func deliveryColumns() []column {
	return []column{{"ID", "id"}, {"EVENT", "event_id"}, {"TYPE", "event_type"}, {"ENDPOINT", "endpoint_id"},
		{"STATE", "state"}, {"ATTEMPTS", "attempt_count"}, {"LAST STATUS", "last_status"}, {"UPDATED", "updated_at"}}
}

// printItems writes a list: a JSON array, or a table with a header line.
func printItems(w io.Writer, format string, cols []column, items []json.RawMessage) error {
	if format == "json" {
		if items == nil {
			items = []json.RawMessage{}
		}
		return printJSON(w, items)
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	titles := make([]string, len(cols))
	for i, c := range cols {
		titles[i] = c.title
	}
	fmt.Fprintln(tw, strings.Join(titles, "\t"))
	for _, item := range items {
		obj, err := decodeObject(item)
		if err != nil {
			return err
		}
		cells := make([]string, len(cols))
		for i, c := range cols {
			cells[i] = cell(field(obj, c.field))
		}
		fmt.Fprintln(tw, strings.Join(cells, "\t"))
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write table: %w", err)
	}
	return nil
}

// field is obj's value at a dotted path (verification.scheme), nil when absent.
func field(obj map[string]any, path string) any {
	var v any = obj
	for part := range strings.SplitSeq(path, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		v = m[part]
	}
	return v
}

// printItem writes one object: as JSON, or as a one-row table.
func printItem(w io.Writer, format string, cols []column, item json.RawMessage) error {
	if format == "json" {
		return printJSON(w, item)
	}
	return printItems(w, format, cols, []json.RawMessage{item})
}

func printJSON(w io.Writer, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return fmt.Errorf("encode JSON: %w", err)
	}
	if _, err := fmt.Fprintf(w, "%s\n", b); err != nil {
		return fmt.Errorf("write JSON: %w", err)
	}
	return nil
}

func decodeObject(raw json.RawMessage) (map[string]any, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var obj map[string]any
	if err := dec.Decode(&obj); err != nil {
		return nil, fmt.Errorf("decode API object: %w", err)
	}
	return obj, nil
}

// cell is a JSON value as one table cell: times shortened to the second, lists joined with
// commas, and control characters replaced so that a value cannot break the table or the terminal.
func cell(v any) string {
	var s string
	switch v := v.(type) {
	case nil:
		return "-"
	case string:
		if t, err := time.Parse(time.RFC3339Nano, v); err == nil {
			return t.UTC().Format("2006-01-02 15:04:05")
		}
		s = v
	case json.Number:
		s = v.String()
	case bool:
		s = strconv.FormatBool(v)
	case []any:
		parts := make([]string, len(v))
		for i, e := range v {
			parts[i] = cell(e)
		}
		s = strings.Join(parts, ",")
	default:
		b, err := json.Marshal(v)
		if err != nil {
			return "?"
		}
		s = string(b)
	}
	if s == "" {
		return "-"
	}
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return ' '
		}
		return r
	}, s)
}

// listFlags are the paging flags of list commands.
type listFlags struct {
	limit int
	all   bool
}

func (l *listFlags) register(f *pflag.FlagSet) {
	f.IntVar(&l.limit, "limit", 50, "show at most this many items")
	f.BoolVar(&l.all, "all", false, "show every item (pages through the whole list)")
}

// runList pages through a list route and prints what it got; a note on standard error says when
// --limit cut the list short.
func runList(cmd *cobra.Command, c *apiClient, format, path string, query url.Values, l *listFlags, cols []column) error {
	if !l.all && l.limit < 1 {
		return usageErrorf("--limit %d: want at least 1 (or --all)", l.limit)
	}
	limit := l.limit
	if l.all {
		limit = 0
	}
	items, more, err := c.collect(cmd.Context(), path, query, limit)
	if err != nil {
		return err
	}
	if err := printItems(cmd.OutOrStdout(), format, cols, items); err != nil {
		return err
	}
	if more {
		fmt.Fprintf(cmd.ErrOrStderr(), "(showing the first %d; --limit N or --all for more)\n", len(items))
	}
	return nil
}

// timeFlag reads --since or --until: a duration back from now (24h, 30m, 7d) or an RFC 3339 time.
func timeFlag(name, v string, now time.Time) (string, error) {
	if v == "" {
		return "", nil
	}
	t, err := api.ParseSince(v, now)
	if err != nil {
		return "", usageErrorf("--%s %q: %w", name, v, err)
	}
	return t.UTC().Format(time.RFC3339Nano), nil
}

func tenantsCmd() *cobra.Command {
	cmd := groupCmd("tenants", "List, show, create and delete tenants (admin key)")
	g := newAPIGroup(cmd, false)

	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List tenants, in creation order", Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			return runList(cmd, c, g.output, "/v1/tenants", nil, &lf, tenantColumns())
		},
	}
	lf.register(list.Flags())

	get := &cobra.Command{
		Use: "get TENANT", Short: "Show a tenant", Args: exactArgs(1, "one argument, the tenant id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			var t json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, apiPath("v1", "tenants", args[0]), nil, nil, &t); err != nil {
				return err
			}
			return printItem(cmd.OutOrStdout(), g.output, tenantColumns(), t)
		},
	}

	var name string
	var redact []string
	create := &cobra.Command{
		Use: "create TENANT [--name NAME] [--redact-field PATH]...", Short: "Create a tenant",
		Args: exactArgs(1, "one argument, the new tenant's id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			if name == "" {
				name = args[0]
			}
			body := map[string]any{"id": args[0], "name": name}
			if len(redact) > 0 {
				body["redact_fields"] = redact
			}
			var t json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/v1/tenants", nil, body, &t); err != nil {
				return err
			}
			return printItem(cmd.OutOrStdout(), g.output, tenantColumns(), t)
		},
	}
	create.Flags().StringVar(&name, "name", "", "the tenant's display name (default: its id)")
	create.Flags().StringArrayVar(&redact, "redact-field", nil, "a JSON field path the API hides in event data and responses (repeatable)")

	var yes bool
	del := &cobra.Command{
		Use: "delete TENANT --yes", Short: "Delete a tenant with all its endpoints, events, deliveries and keys",
		Args: exactArgs(1, "one argument, the tenant id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			if !yes {
				return usageErrorf("deleting tenant %s removes all its data: add --yes to confirm", args[0])
			}
			var out json.RawMessage
			if err := c.do(cmd.Context(), http.MethodDelete, apiPath("v1", "tenants", args[0]), nil, nil, &out); err != nil {
				return err
			}
			if g.output == "json" {
				return printJSON(cmd.OutOrStdout(), out)
			}
			var d struct {
				Deleted map[string]int64 `json:"deleted"`
			}
			if err := json.Unmarshal(out, &d); err != nil {
				return fmt.Errorf("decode answer: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "tenant %s deleted:%s\n", args[0], deletionCounts(d.Deleted))
			return nil
		},
	}
	del.Flags().BoolVar(&yes, "yes", false, "confirm the deletion")

	cmd.AddCommand(list, get, create, del)
	return cmd
}

// counts formats {"events":3,"deliveries":6} as " deliveries 6, events 3" in a stable order.
func deletionCounts(m map[string]int64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		fmt.Fprintf(&b, " %s %d", strings.ReplaceAll(k, "_", " "), m[k])
	}
	return b.String()
}

// endpointSettings are the flags of endpoints create and update; update sends only those given.
type endpointSettings struct {
	url, description, scheme string
	eventTypes, headers      []string
	timeout, concurrency     int
	rateLimit                float64
	schedule                 []int
	disabled, internal       bool
	filter, transform        string
	format                   string
	batch                    int
	batchWait                time.Duration
	ordered                  bool
}

func (e *endpointSettings) register(f *pflag.FlagSet) {
	f.StringVar(&e.url, "url", "", "where the endpoint receives webhooks")
	f.StringArrayVar(&e.eventTypes, "event-type", nil, "an event type, prefix (invoice.*) or * it subscribes to (repeatable)")
	f.StringVar(&e.description, "description", "", "a description")
	f.IntVar(&e.timeout, "timeout", 0, "per-attempt timeout in seconds (1-30; default 10)")
	f.IntVar(&e.concurrency, "max-concurrency", 0, "requests in flight at once (default 10)")
	f.Float64Var(&e.rateLimit, "rate-limit", 0, "requests per second; 0 for no limit")
	f.IntSliceVar(&e.schedule, "retry-schedule", nil, "seconds before each attempt, e.g. 0,5,60,600")
	f.StringArrayVar(&e.headers, "header", nil, `an extra request header, "Name: value" (repeatable)`)
	f.StringVar(&e.scheme, "signature-scheme", "", "hmac-sha256 (default) or ed25519")
	f.BoolVar(&e.disabled, "disabled", false, "create it disabled, or disable it (--disabled=false enables)")
	f.BoolVar(&e.internal, "internal", false, "admin keys only: the endpoint is on the operator's network")
	f.StringVar(&e.filter, "filter", "", `a CEL filter over the envelope, e.g. 'data.amount > 1000'; "" removes it`)
	f.StringVar(&e.transform, "transform", "", `a CEL expression whose value is the body sent; "" removes it`)
	f.StringVar(&e.format, "signature-format", "", "standard-webhooks (default), github or stripe")
	f.IntVar(&e.batch, "batch", 0, "send up to this many events per request (0 turns batching off)")
	f.DurationVar(&e.batchWait, "batch-wait", 0, "how long the oldest event waits for a batch to fill (default 5s)")
	f.BoolVar(&e.ordered, "ordered", false, "deliver in publish order, one at a time")
}

// body is the JSON body with the fields whose flags were given.
func (e *endpointSettings) body(f *pflag.FlagSet) (map[string]any, error) {
	b := map[string]any{}
	set := func(flag, field string, v any) {
		if f.Changed(flag) {
			b[field] = v
		}
	}
	set("url", "url", e.url)
	set("event-type", "event_types", e.eventTypes)
	set("description", "description", e.description)
	set("timeout", "timeout_seconds", e.timeout)
	set("max-concurrency", "max_concurrency", e.concurrency)
	set("rate-limit", "rate_limit", e.rateLimit)
	set("retry-schedule", "retry_schedule", e.schedule)
	set("signature-scheme", "signature_scheme", e.scheme)
	set("disabled", "enabled", !e.disabled)
	set("internal", "internal", e.internal)
	set("filter", "filter", e.filter)
	set("transform", "transform", e.transform)
	set("signature-format", "signature_format", e.format)
	set("ordered", "ordered", e.ordered)
	if f.Changed("batch") || f.Changed("batch-wait") {
		batch := map[string]any{"enabled": e.batch > 0 || (!f.Changed("batch") && e.batchWait > 0)}
		if e.batch > 0 {
			batch["max_events"] = e.batch
		}
		if e.batchWait > 0 {
			batch["max_wait_ms"] = e.batchWait.Milliseconds()
		}
		b["batch"] = batch
	}
	if f.Changed("header") {
		h := map[string]string{}
		for _, kv := range e.headers {
			k, v, ok := strings.Cut(kv, ":")
			if !ok || strings.TrimSpace(k) == "" {
				return nil, usageErrorf(`--header %q: want "Name: value"`, kv)
			}
			h[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
		b["headers"] = h
	}
	return b, nil
}

func endpointsCmd() *cobra.Command {
	cmd := groupCmd("endpoints", "Manage a tenant's endpoints")
	g := newAPIGroup(cmd, true)
	path := func(id ...string) string {
		return apiPath(append([]string{"v1", "tenants", g.tenant, "endpoints"}, id...)...)
	}

	var lf listFlags
	list := &cobra.Command{
		Use: "list --tenant TENANT", Short: "List a tenant's endpoints, in creation order", Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			return runList(cmd, c, g.output, path(), nil, &lf, endpointColumns())
		},
	}
	lf.register(list.Flags())

	// one makes a command that sends one request about one endpoint and shows the endpoint.
	one := func(use, short, method string, body func(*cobra.Command) (map[string]any, error)) *cobra.Command {
		return &cobra.Command{
			Use: use, Short: short, Args: exactArgs(1, "one argument, the endpoint id (ep_…)"),
			RunE: func(cmd *cobra.Command, args []string) error {
				c, err := g.setup(cmd, true)
				if err != nil {
					return err
				}
				var b any
				if body != nil {
					m, err := body(cmd)
					if err != nil {
						return err
					}
					b = m
				}
				var e json.RawMessage
				if err := c.do(cmd.Context(), method, path(args[0]), nil, b, &e); err != nil {
					return err
				}
				if method == http.MethodDelete {
					if g.output == "table" {
						fmt.Fprintf(cmd.OutOrStdout(), "endpoint %s deleted\n", args[0])
					}
					return nil
				}
				return printItem(cmd.OutOrStdout(), g.output, endpointColumns(), e)
			},
		}
	}
	fixed := func(m map[string]any) func(*cobra.Command) (map[string]any, error) {
		return func(*cobra.Command) (map[string]any, error) { return m, nil }
	}

	var upd endpointSettings
	update := one("update ENDPOINT --tenant TENANT [flags]", "Change the settings given as flags", http.MethodPatch,
		func(cmd *cobra.Command) (map[string]any, error) {
			b, err := upd.body(cmd.Flags())
			if err == nil && len(b) == 0 {
				err = usageErrorf("nothing to change: give at least one setting flag")
			}
			return b, err
		})
	upd.register(update.Flags())

	var crt endpointSettings
	var secret string
	create := &cobra.Command{
		Use:   "create --tenant TENANT --url URL --event-type TYPE... [flags]",
		Short: "Create an endpoint and print its signing secret",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			b, err := crt.body(cmd.Flags())
			if err != nil {
				return err
			}
			if secret != "" {
				b["secret"] = secret
			}
			var e json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, path(), nil, b, &e); err != nil {
				return err
			}
			if err := printItem(cmd.OutOrStdout(), g.output, endpointColumns(), e); err != nil {
				return err
			}
			if g.output == "table" {
				var keys struct {
					Secret    string `json:"secret"`
					PublicKey string `json:"public_key"`
				}
				if err := json.Unmarshal(e, &keys); err != nil {
					return fmt.Errorf("decode answer: %w", err)
				}
				if keys.Secret != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "\nsigning secret: %s\n", keys.Secret)
				}
				if keys.PublicKey != "" {
					fmt.Fprintf(cmd.OutOrStdout(), "\npublic key: %s\n", keys.PublicKey)
				}
			}
			return nil
		},
	}
	crt.register(create.Flags())
	create.Flags().StringVar(&secret, "secret", "", "your own whsec_ secret; one is generated if absent")

	cmd.AddCommand(list,
		one("get ENDPOINT --tenant TENANT", "Show an endpoint", http.MethodGet, nil),
		create, update,
		one("delete ENDPOINT --tenant TENANT", "Delete an endpoint with its deliveries", http.MethodDelete, nil),
		one("enable ENDPOINT --tenant TENANT", "Enable an endpoint (also after Herald disabled it)", http.MethodPatch, fixed(map[string]any{"enabled": true})),
		one("disable ENDPOINT --tenant TENANT", "Disable an endpoint: its deliveries wait", http.MethodPatch, fixed(map[string]any{"enabled": false})),
	)
	return cmd
}

func eventsCmd() *cobra.Command {
	cmd := groupCmd("events", "List and show a tenant's events")
	g := newAPIGroup(cmd, true)

	var lf listFlags
	var types []string
	var since, until string
	list := &cobra.Command{
		Use: "list --tenant TENANT [--type TYPE]... [--since 24h] [--until …]", Short: "List events, newest first",
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			q := url.Values{"event_type": types}
			if err := setTimes(q, since, until, time.Now()); err != nil {
				return err
			}
			return runList(cmd, c, g.output, apiPath("v1", "tenants", g.tenant, "events"), q, &lf, eventColumns())
		},
	}
	lf.register(list.Flags())
	list.Flags().StringArrayVar(&types, "type", nil, "only events of this type (repeatable)")
	list.Flags().StringVar(&since, "since", "", "only events created since: 24h, 30m, 7d or an RFC 3339 time")
	list.Flags().StringVar(&until, "until", "", "only events created before: a duration back from now or an RFC 3339 time")

	get := &cobra.Command{
		Use: "get EVENT --tenant TENANT", Short: "Show an event with its data", Args: exactArgs(1, "one argument, the event id"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			var ev json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, apiPath("v1", "tenants", g.tenant, "events", args[0]), nil, nil, &ev); err != nil {
				return err
			}
			if err := printItem(cmd.OutOrStdout(), g.output, eventColumns(), ev); err != nil {
				return err
			}
			if g.output == "table" {
				var d struct {
					Data json.RawMessage `json:"data"`
				}
				if err := json.Unmarshal(ev, &d); err != nil {
					return fmt.Errorf("decode answer: %w", err)
				}
				var pretty bytes.Buffer
				if err := json.Indent(&pretty, d.Data, "", "  "); err != nil {
					return fmt.Errorf("indent data: %w", err)
				}
				fmt.Fprintf(cmd.OutOrStdout(), "\ndata:\n%s\n", pretty.Bytes())
			}
			return nil
		},
	}
	cmd.AddCommand(list, get)
	return cmd
}

func setTimes(q url.Values, since, until string, now time.Time) error {
	s, err := timeFlag("since", since, now)
	if err != nil {
		return err
	}
	u, err := timeFlag("until", until, now)
	if err != nil {
		return err
	}
	if s != "" {
		q.Set("since", s)
	}
	if u != "" {
		q.Set("until", u)
	}
	return nil
}

func deliveriesCmd() *cobra.Command {
	cmd := groupCmd("deliveries", "List a tenant's deliveries (herald replay queues them again)")
	g := newAPIGroup(cmd, true)

	var lf listFlags
	var states, types []string
	var endpoint, since, until string
	list := &cobra.Command{
		Use:   "list --tenant TENANT [--state dead]... [--endpoint ep_…] [--event-type TYPE]... [--since 24h]",
		Short: "List deliveries, newest first (--state dead is the dead-letter queue)",
		Args:  exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, true)
			if err != nil {
				return err
			}
			q := url.Values{"state": states, "event_type": types}
			if endpoint != "" {
				q.Set("endpoint_id", endpoint)
			}
			if err := setTimes(q, since, until, time.Now()); err != nil {
				return err
			}
			return runList(cmd, c, g.output, apiPath("v1", "tenants", g.tenant, "deliveries"), q, &lf, deliveryColumns())
		},
	}
	lf.register(list.Flags())
	f := list.Flags()
	f.StringArrayVar(&states, "state", nil, "pending, succeeded or dead (repeatable)")
	f.StringVar(&endpoint, "endpoint", "", "only this endpoint's deliveries")
	f.StringArrayVar(&types, "event-type", nil, "only deliveries of this event type (repeatable)")
	f.StringVar(&since, "since", "", "only deliveries created since: 24h, 30m, 7d or an RFC 3339 time")
	f.StringVar(&until, "until", "", "only deliveries created before: a duration back from now or an RFC 3339 time")
	cmd.AddCommand(list)
	return cmd
}
