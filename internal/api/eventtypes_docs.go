package api

import (
	"bytes"
	"context"
	"embed"
	"encoding/json"
	"errors"
	htmltemplate "html/template"
	"net/http"
	"slices"
	"strconv"
	"strings"
	texttemplate "text/template"
	"time"

	"github.com/danielgtaylor/huma/v2"

	"github.com/heraldhq/herald/event"
	"github.com/heraldhq/herald/internal/schemaexample"
	"github.com/heraldhq/herald/internal/store"
)

// The generated documentation is rendered from templates, never by string concatenation: the
// HTML one through html/template, so that every catalog value (a description is operator input)
// is escaped for where it appears.
//
//go:embed templates/eventtypes_docs.html.tmpl templates/eventtypes_docs.md.tmpl
var docsTemplates embed.FS

var (
	docsHTML = htmltemplate.Must(htmltemplate.New("eventtypes_docs.html.tmpl").
			ParseFS(docsTemplates, "templates/eventtypes_docs.html.tmpl"))
	docsMarkdown = texttemplate.Must(texttemplate.New("eventtypes_docs.md.tmpl").
			Funcs(texttemplate.FuncMap{"md": markdownText, "fence": markdownFence}).
			ParseFS(docsTemplates, "templates/eventtypes_docs.md.tmpl"))
)

// docsExampleTime is the timestamp of the example envelopes: fixed, so that the same catalog
// always renders the same document.
var docsExampleTime = time.Date(2026, time.March, 1, 12, 0, 0, 0, time.UTC)

// docsPolicy is the page's Content-Security-Policy: inline styles and nothing else, so that the
// page cannot run code even if something escaped the templates.
const docsPolicy = "default-src 'none'; style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

type eventTypeDocsInput struct {
	Format            string `query:"format" enum:"html,markdown" doc:"html (default) or markdown; without it, Accept: text/markdown selects markdown."`
	IncludeDeprecated bool   `query:"include_deprecated" default:"true" doc:"false leaves deprecated types out."`
	Accept            string `header:"Accept"`
}

type eventTypeDocsOutput struct {
	ContentType string `header:"Content-Type"`
	Vary        string `header:"Vary"`
	Policy      string `header:"Content-Security-Policy"`
	NoSniff     string `header:"X-Content-Type-Options"`
	Body        []byte
}

// docsPage is what both templates render.
type docsPage struct {
	Families []docsFamily
	// Retry is the server's default retry schedule: the delay before each attempt.
	Retry []string
	// Attempts is how many attempts the default schedule makes at most.
	Attempts int
}

type docsFamily struct {
	Name     string
	Versions []docsType
}

type docsType struct {
	Name        string
	Version     int
	Description string
	Trigger     string
	Deprecated  bool
	Sunset      string
	Schema      string // pretty JSON; "" when the type has none
	Envelope    string // pretty JSON of an example delivery body
	// ExampleSource says where the example data comes from: "stored", "generated" or "none".
	ExampleSource string
}

func (s *Server) registerEventTypeDocs() {
	huma.Register(s.api, huma.Operation{
		OperationID: "get-event-type-docs", Method: http.MethodGet, Path: "/v1/event-types/docs", Tags: []string{"Event types"},
		Summary: "Generated documentation of the event catalog",
		Description: "A self-contained HTML page (no scripts, no external resources), or Markdown with ?format=markdown or " +
			"Accept: text/markdown, documenting every event type for the people who build endpoints: grouped by family with " +
			"versions newest first, with description, trigger, deprecation and sunset, schema, an example delivery body, " +
			"the retry schedule and the signature schemes. Event type names always contain a dot, so no type is shadowed by this path.",
		Responses: map[string]*huma.Response{
			"200": {Description: "The documentation.", Content: map[string]*huma.MediaType{
				"text/html":     {Schema: &huma.Schema{Type: huma.TypeString}},
				"text/markdown": {Schema: &huma.Schema{Type: huma.TypeString}},
			}},
		},
	}, func(ctx context.Context, in *eventTypeDocsInput) (*eventTypeDocsOutput, error) {
		page, err := s.docsPage(ctx, in.IncludeDeprecated)
		if err != nil {
			return nil, err
		}
		var buf bytes.Buffer
		out := &eventTypeDocsOutput{Vary: "Accept", NoSniff: "nosniff"}
		if in.Format == "markdown" || (in.Format == "" && prefersMarkdown(in.Accept)) {
			err = docsMarkdown.Execute(&buf, page)
			out.ContentType = "text/markdown; charset=utf-8"
		} else {
			err = docsHTML.Execute(&buf, page)
			out.ContentType = "text/html; charset=utf-8"
			out.Policy = docsPolicy
		}
		if err != nil {
			return nil, s.fail(err, "event type documentation")
		}
		out.Body = buf.Bytes()
		return out, nil
	})
}

// docsPage gathers the catalog for the templates.
func (s *Server) docsPage(ctx context.Context, includeDeprecated bool) (*docsPage, error) {
	all, err := s.allEventTypes(ctx)
	if err != nil {
		return nil, s.fail(err, "event types")
	}
	if !includeDeprecated {
		all = slices.DeleteFunc(all, func(et store.EventType) bool { return et.Deprecated })
	}
	fams := families(all)
	names := make([]string, 0, len(fams))
	for f := range fams {
		names = append(names, f)
	}
	slices.Sort(names)
	page := &docsPage{}
	for _, f := range names {
		fam := docsFamily{Name: f}
		for _, et := range fams[f] {
			d, err := s.docsType(et)
			if err != nil {
				return nil, err
			}
			fam.Versions = append(fam.Versions, d)
		}
		page.Families = append(page.Families, fam)
	}
	sched := s.defaultSchedule()
	page.Attempts = len(sched)
	for _, d := range sched {
		page.Retry = append(page.Retry, formatDelay(d))
	}
	return page, nil
}

func (s *Server) docsType(et *store.EventType) (docsType, error) {
	_, version := eventTypeVersion(et.Name)
	d := docsType{Name: et.Name, Version: version, Description: et.Description, Trigger: et.Docs.Trigger,
		Deprecated: et.Deprecated, Sunset: sunsetString(et.Docs.Sunset), Schema: prettyJSON(et.Schema)}
	data := json.RawMessage("{}")
	d.ExampleSource = "none"
	switch {
	case len(et.Docs.Examples) > 0:
		data, d.ExampleSource = et.Docs.Examples[0], "stored"
	case et.Schema != nil:
		ex, err := schemaexample.Generate(et.Schema)
		switch {
		case err == nil:
			data, d.ExampleSource = ex, "generated"
		case !errors.Is(err, schemaexample.ErrNoExample):
			return d, s.fail(err, "example of event type "+et.Name)
		}
	}
	env, err := json.MarshalIndent(event.Envelope{ID: "evt_01example0000000000000000", Type: et.Name, Timestamp: docsExampleTime, Data: data}, "", "  ")
	if err != nil {
		return d, s.fail(err, "example of event type "+et.Name)
	}
	d.Envelope = string(env)
	return d, nil
}

// prettyJSON indents a JSON document by two spaces; "" for none.
func prettyJSON(raw json.RawMessage) string {
	if len(raw) == 0 {
		return ""
	}
	var buf bytes.Buffer
	if err := json.Indent(&buf, raw, "", "  "); err != nil {
		return string(raw)
	}
	return buf.String()
}

// formatDelay writes a retry delay the way people say it: "at once", "5 s", "2 min", "12 h".
func formatDelay(d time.Duration) string {
	switch {
	case d <= 0:
		return "at once"
	case d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + " h"
	case d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + " min"
	case d%time.Second == 0:
		return strconv.FormatInt(int64(d/time.Second), 10) + " s"
	}
	return d.String()
}

// prefersMarkdown reports whether an Accept header asks for text/markdown more than for
// text/html; HTML is the default, so a tie or a plain */* gives HTML.
func prefersMarkdown(accept string) bool {
	qMarkdown, qHTML := 0.0, 0.0
	for _, part := range strings.Split(accept, ",") {
		mt, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		q := 1.0
		for _, p := range strings.Split(params, ";") {
			if v, ok := strings.CutPrefix(strings.TrimSpace(p), "q="); ok {
				if f, err := strconv.ParseFloat(v, 64); err == nil {
					q = f
				}
			}
		}
		switch strings.ToLower(strings.TrimSpace(mt)) {
		case "text/markdown", "text/x-markdown":
			qMarkdown = max(qMarkdown, q)
		case "text/html":
			qHTML = max(qHTML, q)
		}
	}
	return qMarkdown > 0 && qMarkdown > qHTML
}

// markdownEscaper keeps catalog text from becoming Markdown or raw HTML: many renderers pass
// HTML in Markdown through, so < and > become entities and the punctuation that starts
// emphasis, links, code, headings and tables is backslash-escaped.
var markdownEscaper = strings.NewReplacer(
	`\`, `\\`, "`", "\\`", `*`, `\*`, `_`, `\_`, `[`, `\[`, `]`, `\]`, `#`, `\#`, `|`, `\|`,
	`&`, `&amp;`, `<`, `&lt;`, `>`, `&gt;`, "\r\n", " ", "\n", " ", "\r", " ",
)

func markdownText(s string) string { return markdownEscaper.Replace(s) }

// markdownFence is a code fence longer than any run of backticks in s, so that s cannot close it.
func markdownFence(s string) string {
	longest, run := 0, 0
	for _, r := range s {
		if r == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	return strings.Repeat("`", max(3, longest+1))
}
