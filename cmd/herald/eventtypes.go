package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/node"
)

// The event-types commands manage the event catalog (GET, POST, PATCH /v1/event-types) and print
// its generated documentation (GET /v1/event-types/docs).

func eventTypeColumns() []column {
	return []column{{"NAME", "name"}, {"VERSION", "version"}, {"DEPRECATED", "deprecated"}, {"SUNSET", "sunset"},
		{"DESCRIPTION", "description"}}
}

// eventTypeSettings are the flags of create and update; only the flags given are sent.
type eventTypeSettings struct {
	description, trigger, sunset string
	schemaFile                   string
	exampleFiles                 []string
	deprecated                   bool
}

func (e *eventTypeSettings) register(f *pflag.FlagSet) {
	f.StringVar(&e.description, "description", "", "what the event means")
	f.StringVar(&e.trigger, "trigger", "", "what makes the event happen")
	f.BoolVar(&e.deprecated, "deprecated", false, "mark the type deprecated (--deprecated=false to undo)")
	f.StringVar(&e.sunset, "sunset", "", `when a deprecated type stops being sent: 2027-03-01 or an RFC 3339 time ("" removes it)`)
	f.StringVar(&e.schemaFile, "schema-file", "", "a file holding the JSON Schema of the events' data (- for standard input)")
	f.StringArrayVar(&e.exampleFiles, "example-file", nil, "a file holding an example of the data (repeatable; replaces the examples)")
}

// body is the request body of the flags given; stdin serves a "-" file.
func (e *eventTypeSettings) body(f *pflag.FlagSet, stdin io.Reader) (map[string]any, error) {
	b := map[string]any{}
	set := func(flag, field string, v any) {
		if f.Changed(flag) {
			b[field] = v
		}
	}
	set("description", "description", e.description)
	set("trigger", "trigger", e.trigger)
	set("deprecated", "deprecated", e.deprecated)
	set("sunset", "sunset", e.sunset)
	if f.Changed("schema-file") {
		doc, err := readJSONFile("--schema-file", e.schemaFile, stdin)
		if err != nil {
			return nil, err
		}
		b["schema"] = doc
	}
	if f.Changed("example-file") {
		examples := make([]json.RawMessage, 0, len(e.exampleFiles))
		for _, name := range e.exampleFiles {
			doc, err := readJSONFile("--example-file", name, stdin)
			if err != nil {
				return nil, err
			}
			examples = append(examples, doc)
		}
		b["examples"] = examples
	}
	return b, nil
}

// readJSONFile reads a JSON document from a file, or from stdin for "-".
func readJSONFile(flag, name string, stdin io.Reader) (json.RawMessage, error) {
	var data []byte
	var err error
	if name == "-" {
		data, err = io.ReadAll(io.LimitReader(stdin, maxAnswer))
	} else {
		data, err = os.ReadFile(name)
	}
	if err != nil {
		return nil, usageErrorf("%s %s: %w", flag, name, err)
	}
	if !json.Valid(data) {
		return nil, usageErrorf("%s %s: not a JSON document", flag, name)
	}
	return json.RawMessage(data), nil
}

func eventTypesCmd() *cobra.Command {
	cmd := groupCmd("event-types", "List, show, register and change event types, and print their documentation")
	g := newAPIGroup(cmd, false)

	var lf listFlags
	list := &cobra.Command{
		Use: "list", Short: "List the event catalog", Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			return runList(cmd, c, g.output, "/v1/event-types", nil, &lf, eventTypeColumns())
		},
	}
	lf.register(list.Flags())

	get := &cobra.Command{
		Use: "get NAME", Short: "Show an event type with its trigger, schema and examples", Args: exactArgs(1, "one argument, the event type"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			var et json.RawMessage
			if err := c.do(cmd.Context(), http.MethodGet, apiPath("v1", "event-types", args[0]), nil, nil, &et); err != nil {
				return err
			}
			if err := printItem(cmd.OutOrStdout(), g.output, eventTypeColumns(), et); err != nil {
				return err
			}
			if g.output == "table" {
				return printEventTypeDetails(cmd.OutOrStdout(), et)
			}
			return nil
		},
	}

	var cs eventTypeSettings
	create := &cobra.Command{
		Use: "create NAME [--description …] [--trigger …] [--schema-file F] [--example-file F]... [--deprecated --sunset DATE]", Short: "Register an event type (admin key)",
		Args: exactArgs(1, "one argument, the new event type (resource.action, e.g. invoice.paid)"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			body, err := cs.body(cmd.Flags(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			body["name"] = args[0]
			var et json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPost, "/v1/event-types", nil, body, &et); err != nil {
				return err
			}
			return printItem(cmd.OutOrStdout(), g.output, eventTypeColumns(), et)
		},
	}
	cs.register(create.Flags())

	var us eventTypeSettings
	update := &cobra.Command{
		Use: "update NAME [flags]", Short: "Change an event type: only the flags given change (admin key)",
		Args: exactArgs(1, "one argument, the event type"),
		RunE: func(cmd *cobra.Command, args []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			body, err := us.body(cmd.Flags(), cmd.InOrStdin())
			if err != nil {
				return err
			}
			if len(body) == 0 {
				return usageErrorf("nothing to change: give at least one of --description, --trigger, --deprecated, --sunset, --schema-file, --example-file")
			}
			var et json.RawMessage
			if err := c.do(cmd.Context(), http.MethodPatch, apiPath("v1", "event-types", args[0]), nil, body, &et); err != nil {
				return err
			}
			return printItem(cmd.OutOrStdout(), g.output, eventTypeColumns(), et)
		},
	}
	us.register(update.Flags())

	var format string
	var includeDeprecated bool
	docs := &cobra.Command{
		Use: "docs [--format markdown|html] [--include-deprecated=false]", Short: "Print the generated documentation of the catalog",
		Long: `Print the documentation Herald generates for the people who build endpoints (GET
/v1/event-types/docs): every event type with its schema and an example delivery, the retry
schedule and the signature schemes. Markdown by default here; --format html gives a
self-contained page:

  herald event-types docs --format html > events.html`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, err := g.setup(cmd, false)
			if err != nil {
				return err
			}
			if format != "markdown" && format != "html" {
				return usageErrorf("--format %q: want markdown or html", format)
			}
			q := url.Values{"format": {format}, "include_deprecated": {strconv.FormatBool(includeDeprecated)}}
			text, err := fetchText(cmd.Context(), c, "/v1/event-types/docs", q)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(text)
			return err
		},
	}
	docs.Flags().StringVar(&format, "format", "markdown", "markdown or html")
	docs.Flags().BoolVar(&includeDeprecated, "include-deprecated", true, "include deprecated types")

	cmd.AddCommand(list, get, create, update, docs)
	return cmd
}

// printEventTypeDetails writes what the table leaves out: trigger, versions, schema, examples.
func printEventTypeDetails(w io.Writer, et json.RawMessage) error {
	var d struct {
		Trigger  string            `json:"trigger"`
		Family   string            `json:"family"`
		Versions []string          `json:"versions"`
		Schema   json.RawMessage   `json:"schema"`
		Examples []json.RawMessage `json:"examples"`
	}
	if err := json.Unmarshal(et, &d); err != nil {
		return fmt.Errorf("decode answer: %w", err)
	}
	if d.Trigger != "" {
		fmt.Fprintf(w, "\ntrigger: %s\n", cell(d.Trigger))
	}
	if len(d.Versions) > 0 {
		fmt.Fprintf(w, "other versions of %s: %s\n", d.Family, cell(anySlice(d.Versions)))
	}
	indent := func(title string, doc json.RawMessage) error {
		var pretty bytes.Buffer
		if err := json.Indent(&pretty, doc, "", "  "); err != nil {
			return fmt.Errorf("indent %s: %w", title, err)
		}
		_, err := fmt.Fprintf(w, "\n%s:\n%s\n", title, pretty.Bytes())
		return err
	}
	if len(d.Schema) > 0 {
		if err := indent("schema", d.Schema); err != nil {
			return err
		}
	}
	for i, ex := range d.Examples {
		if err := indent(fmt.Sprintf("example %d", i+1), ex); err != nil {
			return err
		}
	}
	return nil
}

func anySlice(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// fetchText GETs a route that answers text rather than JSON (the generated documentation);
// errors are the API's problem documents, as for every other command.
func fetchText(ctx context.Context, c *apiClient, path string, query url.Values) ([]byte, error) {
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	req.Header.Set("Authorization", "Bearer "+c.key)
	req.Header.Set("User-Agent", "herald-cli/"+node.Version)
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("GET %s: %w", path, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
	if err != nil {
		return nil, fmt.Errorf("GET %s: read answer: %w", path, err)
	}
	if resp.StatusCode/100 != 2 {
		return nil, newAPIError(http.MethodGet, path, resp.StatusCode, body)
	}
	return body, nil
}
