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
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// triggerCmd publishes one event through the API, so that a developer can fire a webhook at their
// endpoint without writing a curl command with the right headers and JSON.
func triggerCmd() *cobra.Command {
	var tenant, data, baseURL, apiKey, priority string
	cmd := &cobra.Command{
		Use:   "trigger EVENT_TYPE --tenant TENANT [--data JSON | --data @FILE]",
		Short: "Publish one event through the API and print its id and delivery count",
		Long: `Publish one event of type EVENT_TYPE for a tenant through a running Herald's API
(POST /v1/tenants/{tenant}/events) and print the event id and how many deliveries it created. The
payload is --data, a JSON object inline or @file to read it from a file (@- for standard input).
Without --data it is an example made from the event type's schema
(GET /v1/event-types/{name}/example), or {} for a type without one. The API key comes from
--api-key or HERALD_API_KEY.`,
		Example: `  herald trigger invoice.paid --tenant acme
  herald trigger invoice.paid --tenant acme --data '{"amount":1200}'
  HERALD_API_KEY=hk_... herald trigger invoice.paid --tenant acme --data @invoice.json --url http://herald:8080`,
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
			if tenant == "" {
				return usageErrorf("missing --tenant")
			}
			if apiKey == "" {
				return usageErrorf("missing --api-key (or HERALD_API_KEY)")
			}
			payload, err := readData(data, cmd.InOrStdin())
			if err != nil {
				return usageErrorf("--data: %w", err)
			}
			base, err := url.Parse(baseURL)
			if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
				return usageErrorf("--url %q: want http://host:port or https://host:port", baseURL)
			}
			if data == "" {
				if payload, err = exampleData(cmd.Context(), base, apiKey, args[0]); err != nil {
					return err
				}
			}
			ev := map[string]any{"type": args[0], "data": payload}
			if priority != "" {
				ev["priority"] = priority
			}
			body, err := json.Marshal(ev)
			if err != nil {
				return err
			}
			endpoint := base.JoinPath("v1", "tenants", tenant, "events").String()
			req, err := http.NewRequestWithContext(cmd.Context(), http.MethodPost, endpoint, bytes.NewReader(body))
			if err != nil {
				return err
			}
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Accept", "application/json, application/problem+json")
			req.Header.Set("Authorization", "Bearer "+apiKey)
			resp, err := (&http.Client{Timeout: 30 * time.Second}).Do(req)
			if err != nil {
				return fmt.Errorf("publish: %w", err)
			}
			defer resp.Body.Close()
			answer, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				return fmt.Errorf("publish: read answer: %w", err)
			}
			if resp.StatusCode/100 != 2 {
				return newAPIError(http.MethodPost, "/v1/tenants/"+tenant+"/events", resp.StatusCode, answer)
			}
			var pub struct {
				ID         string `json:"id"`
				Type       string `json:"type"`
				Deliveries int    `json:"deliveries"`
				Duplicate  bool   `json:"duplicate"`
			}
			if err := json.Unmarshal(answer, &pub); err != nil {
				return fmt.Errorf("publish: decode answer %q: %w", answer, err)
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
	f.StringVar(&baseURL, "url", "http://127.0.0.1:8080", "the Herald API's base URL")
	f.StringVar(&apiKey, "api-key", "", "an API key allowed to publish for the tenant")
	f.StringVar(&priority, "priority", "", "high, normal (default) or low")
	return cmd
}

// exampleData asks the API for an example of the event type's data, made from its schema. A 404
// gives {}: the type is unknown (the publish that follows says so, and how to register it) or the
// server predates examples.
func exampleData(ctx context.Context, base *url.URL, apiKey, eventType string) (json.RawMessage, error) {
	c := &apiClient{base: base, key: apiKey, http: &http.Client{Timeout: 30 * time.Second}}
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
