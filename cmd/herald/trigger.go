package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// triggerCmd publishes one event through the API, so that a developer can fire a webhook at their
// endpoint without writing a curl command with the right headers and JSON.
func triggerCmd() *cobra.Command {
	var (
		tenant, data, priority, oldURL string
		af                             apiFlags
	)
	cmd := &cobra.Command{
		Use:   "trigger EVENT_TYPE --tenant TENANT [--data JSON | --data @FILE]",
		Short: "Publish one event through the API and print its id and delivery count",
		Long: `Publish one event of type EVENT_TYPE for a tenant through a running Herald's API
(POST /v1/tenants/{tenant}/events) and print the event id and how many deliveries it created. The
payload is --data, a JSON object inline or @file to read it from a file (@- for standard input).
Without --data it is an example made from the event type's schema
(GET /v1/event-types/{name}/example), or {} for a type without one.

The server and the key come from --api-url / HERALD_API_URL and --api-key / HERALD_API_KEY, else
from the profile (--profile, HERALD_PROFILE, or the profile named default; see herald login). With
none of them the server is ` + defaultAPIURL + `, and a line on standard error says so.`,
		Example: `  herald trigger invoice.paid --tenant acme
  herald trigger invoice.paid --tenant acme --data '{"amount":1200}'
  HERALD_API_KEY=hk_... herald trigger invoice.paid --tenant acme --data @invoice.json --api-url http://herald:8080
  herald trigger invoice.paid --tenant acme --profile prod`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usageErrorf("trigger takes one argument, the event type; got %d", len(args))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			// --url was trigger's own name for the server: it still works, hidden.
			if oldURL != "" && af.url == "" {
				af.url = oldURL
			}
			if tenant == "" {
				return usageErrorf("missing --tenant")
			}
			payload, err := readData(data, cmd.InOrStdin())
			if err != nil {
				return usageErrorf("--data: %w", err)
			}
			c, err := af.client(cmd.ErrOrStderr())
			if err != nil {
				return err
			}
			c.http.Timeout = 30 * time.Second
			if data == "" {
				if payload, err = exampleData(cmd.Context(), c, args[0]); err != nil {
					return err
				}
			}
			ev := map[string]any{"type": args[0], "data": payload}
			if priority != "" {
				ev["priority"] = priority
			}
			var pub struct {
				ID         string `json:"id"`
				Type       string `json:"type"`
				Deliveries int    `json:"deliveries"`
				Duplicate  bool   `json:"duplicate"`
			}
			if err := c.do(cmd.Context(), http.MethodPost, apiPath("v1", "tenants", tenant, "events"), nil, ev, &pub); err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			fmt.Fprintf(out, "event %s (%s) published for tenant %s: %d deliveries\n", pub.ID, pub.Type, tenant, pub.Deliveries)
			if pub.Duplicate {
				fmt.Fprintln(out, "(an event with this id existed: nothing new was delivered)")
			}
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	f := cmd.Flags()
	f.StringVar(&tenant, "tenant", "", "the tenant to publish for")
	f.StringVar(&data, "data", "", "the event's payload: a JSON object, or @file to read it from (@- for standard input); default: an example made from the event type's schema")
	af.register(f)
	f.StringVar(&oldURL, "url", "", "the Herald API's base URL")
	_ = f.MarkDeprecated("url", "use --api-url")
	f.StringVar(&priority, "priority", "", "high, normal (default) or low")
	return cmd
}

// exampleData asks the API for an example of the event type's data, made from its schema. A 404
// gives {}: the type is unknown (the publish that follows says so, and how to register it) or the
// server predates examples.
func exampleData(ctx context.Context, c *apiClient, eventType string) (json.RawMessage, error) {
	var ex struct {
		Data json.RawMessage `json:"data"`
	}
	err := c.do(ctx, http.MethodGet, apiPath("v1", "event-types", eventType, "example"), nil, nil, &ex)
	var ae *apiError
	switch {
	case errors.As(err, &ae) && ae.status == http.StatusNotFound:
		return json.RawMessage("{}"), nil
	case errors.As(err, &ae) && ae.status == http.StatusUnprocessableEntity:
		return nil, fmt.Errorf("no example of %s can be made from its schema; pass --data: %w", eventType, err)
	case err != nil:
		return nil, fmt.Errorf("example of %s: %w", eventType, err)
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(ex.Data, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("the example of %s is not a JSON object (%s), which event data must be; pass --data", eventType, ex.Data)
	}
	return ex.Data, nil
}

// readData returns the --data payload as raw JSON, checked here so that a typo in a shell quote
// is reported against the flag rather than as an API validation error.
func readData(data string, stdin io.Reader) (json.RawMessage, error) {
	raw := []byte(data)
	switch {
	case data == "":
		return json.RawMessage("{}"), nil
	case data == "@-":
		b, err := io.ReadAll(stdin)
		if err != nil {
			return nil, fmt.Errorf("read standard input: %w", err)
		}
		raw = b
	case strings.HasPrefix(data, "@"):
		b, err := os.ReadFile(data[1:])
		if err != nil {
			return nil, err
		}
		raw = b
	}
	var obj map[string]json.RawMessage
	if err := json.Unmarshal(raw, &obj); err != nil || obj == nil {
		return nil, fmt.Errorf("want a JSON object: %s", describeJSONError(err))
	}
	return json.RawMessage(bytes.TrimSpace(raw)), nil
}

func describeJSONError(err error) string {
	if err == nil {
		return "got null"
	}
	return err.Error()
}
