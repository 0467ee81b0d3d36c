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
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/node"
)

// apiFlags are the flags of every command that talks to a running Herald's REST API. Each of the
// server and the key comes from, in this order: the flag, its environment variable, the profile
// (--profile / HERALD_PROFILE, else the profile named default, saved by herald login), and for the
// server only, defaultAPIURL, which is then named on standard error.
type apiFlags struct {
	url, key, profile string
	flags             *pflag.FlagSet
}

func (a *apiFlags) register(f *pflag.FlagSet) {
	a.flags = f
	f.StringVar(&a.url, "api-url", "", "the Herald API's base URL (HERALD_API_URL; default: the profile's, else "+defaultAPIURL+")")
	f.StringVar(&a.key, "api-key", "", "an API key (HERALD_API_KEY; default: the profile's)")
	f.StringVar(&a.profile, "profile", "", "the saved profile to use (HERALD_PROFILE; see herald login; default: the profile named default, if any)")
}

// apiTarget is where an API command sends its requests and with which key, once resolved.
type apiTarget struct {
	url, key string
	profile  string // the profile that gave the URL or the key, "" when none did
}

// resolve applies the precedence; call it after bindEnv, which has turned the variables into
// flag values. notes gets the line that says the default server is used.
func (a *apiFlags) resolve(notes io.Writer) (apiTarget, error) {
	t := apiTarget{url: a.url, key: a.key}
	name := a.profile
	if name != "" {
		if err := checkProfileName(name); err != nil {
			return t, err
		}
	}
	if t.url == "" || t.key == "" {
		cfg, path, err := loadConfig()
		if err != nil && name != "" {
			return t, err
		}
		p, found := profile{}, false
		if cfg != nil {
			want := name
			if want == "" {
				want = defaultProfile
			}
			p, found = cfg.Profiles[want]
		}
		switch {
		case name != "" && !found:
			return t, usageErrorf("no profile %q in %s: create it with herald login --profile %s", name, path, name)
		case found && t.url == "":
			t.url, t.profile = p.APIURL, cmpOr(name, defaultProfile)
			if t.key == "" {
				t.key = p.APIKey
			}
		case found && t.key == "" && sameServer(t.url, p.APIURL):
			t.key, t.profile = p.APIKey, cmpOr(name, defaultProfile)
		case found && t.key == "" && name != "":
			// The key of one server is never sent to another.
			return t, usageErrorf("profile %s is for %s, not %s: give --api-key, or drop --api-url / HERALD_API_URL", name, p.APIURL, t.url)
		}
	}
	if t.url == "" {
		t.url = defaultAPIURL
		fmt.Fprintf(notes, "herald: no --api-url, HERALD_API_URL or profile (herald login): using %s\n", defaultAPIURL)
	}
	if err := checkAPIURL(t.url); err != nil {
		return t, err
	}
	if t.key == "" {
		return t, usageErrorf("missing --api-key (or HERALD_API_KEY, or a profile saved by herald login)")
	}
	return t, nil
}

// checkAPIURL accepts an http or https URL with a host.
func checkAPIURL(u string) error {
	base, err := url.Parse(u)
	if err != nil || (base.Scheme != "http" && base.Scheme != "https") || base.Host == "" {
		return usageErrorf("--api-url %q: want http://host:port or https://host:port", u)
	}
	return nil
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// sameServer compares two base URLs, ignoring a final slash.
func sameServer(a, b string) bool {
	return strings.TrimRight(a, "/") == strings.TrimRight(b, "/")
}

// client resolves the server and key and returns a client for them; call it after bindEnv.
func (a *apiFlags) client(notes io.Writer) (*apiClient, error) {
	t, err := a.resolve(notes)
	if err != nil {
		return nil, err
	}
	return newAPIClient(t)
}

func newAPIClient(t apiTarget) (*apiClient, error) {
	base, err := url.Parse(t.url)
	if err != nil {
		return nil, usageErrorf("--api-url %q: %w", t.url, err)
	}
	return &apiClient{base: base, key: t.key, http: &http.Client{Timeout: 60 * time.Second}}, nil
}

// apiClient makes JSON requests to the API. It is deliberately thin: the commands send what the
// API documents and show what it answers, so docs/api.md stays the reference for both.
type apiClient struct {
	base *url.URL
	key  string
	http *http.Client
}

// maxAnswer bounds what is read of one answer: a page of 250 deliveries with their attempts
// (up to 250 each, with 4 KiB responses) can be large, but not unbounded.
const maxAnswer = 256 << 20

// apiError is an answer outside 2xx, with the problem document's parts when it is one.
type apiError struct {
	method, path string
	status       int
	title        string
	detail       string
	fields       []problemField
	raw          string // the body, when it is not a problem document
}

type problemField struct {
	Location string `json:"location"`
	Message  string `json:"message"`
	Value    any    `json:"value"`
}

// Error is the status and detail on the first line, then one "location: message" line for each
// invalid field, so that a user sees at once what to change.
func (e *apiError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s %s: %d %s", e.method, e.path, e.status, http.StatusText(e.status))
	switch {
	case e.detail != "":
		fmt.Fprintf(&b, ": %s", e.detail)
	case e.title != "" && e.title != http.StatusText(e.status):
		fmt.Fprintf(&b, ": %s", e.title)
	case e.raw != "":
		fmt.Fprintf(&b, ": %s", e.raw)
	}
	for _, f := range e.fields {
		b.WriteString("\n  ")
		if f.Location != "" {
			b.WriteString(f.Location + ": ")
		}
		b.WriteString(f.Message)
		if f.Value != nil {
			fmt.Fprintf(&b, " (value: %v)", f.Value)
		}
	}
	return b.String()
}

func newAPIError(method, path string, status int, body []byte) *apiError {
	e := &apiError{method: method, path: path, status: status}
	var p struct {
		Title  string         `json:"title"`
		Detail string         `json:"detail"`
		Errors []problemField `json:"errors"`
	}
	if err := json.Unmarshal(body, &p); err != nil || (p.Title == "" && p.Detail == "") {
		raw := strings.TrimSpace(string(body))
		if len(raw) > 300 {
			raw = raw[:300] + "…"
		}
		e.raw = raw
		return e
	}
	e.title, e.detail, e.fields = p.Title, p.Detail, p.Errors
	return e
}

// maxRateLimitWaits is how many 429 answers one request waits out before giving up: a replay
// of many events makes many requests, and the API key's rate limit should slow it, not stop it.
const maxRateLimitWaits = 5

// do sends one request: body (if not nil) as JSON, and decodes a 2xx answer into out (if not nil).
// path is relative to the base URL, with its segments already escaped by the caller through
// apiPath.
func (c *apiClient) do(ctx context.Context, method, path string, query url.Values, body, out any) error {
	var payload []byte
	if body != nil {
		var err error
		if payload, err = json.Marshal(body); err != nil {
			return fmt.Errorf("%s %s: encode body: %w", method, path, err)
		}
	}
	u := c.base.JoinPath(path)
	u.RawQuery = query.Encode()
	for waits := 0; ; waits++ {
		req, err := http.NewRequestWithContext(ctx, method, u.String(), bytes.NewReader(payload))
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		if body != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		req.Header.Set("Accept", "application/json, application/problem+json")
		req.Header.Set("Authorization", "Bearer "+c.key)
		req.Header.Set("User-Agent", "herald-cli/"+node.Version)
		resp, err := c.http.Do(req)
		if err != nil {
			return fmt.Errorf("%s %s: %w", method, path, err)
		}
		answer, err := io.ReadAll(io.LimitReader(resp.Body, maxAnswer))
		_ = resp.Body.Close()
		if err != nil {
			return fmt.Errorf("%s %s: read answer: %w", method, path, err)
		}
		if resp.StatusCode == http.StatusTooManyRequests && waits < maxRateLimitWaits {
			if err := sleepCtx(ctx, retryAfter(resp.Header)); err != nil {
				return fmt.Errorf("%s %s: %w", method, path, err)
			}
			continue
		}
		if resp.StatusCode/100 != 2 {
			return newAPIError(method, path, resp.StatusCode, answer)
		}
		if out == nil || len(answer) == 0 {
			return nil
		}
		if err := json.Unmarshal(answer, out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
		return nil
	}
}

// retryAfter is the wait a 429 asks for, between 100 ms and 10 s.
func retryAfter(h http.Header) time.Duration {
	d := time.Second
	if s, err := strconv.Atoi(h.Get("Retry-After")); err == nil {
		d = time.Duration(s) * time.Second
	}
	return min(max(d, 100*time.Millisecond), 10*time.Second)
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// apiPath joins path segments, escaping each one, so that an id from the command line cannot
// reach another route.
func apiPath(segments ...string) string {
	esc := make([]string, len(segments))
	for i, s := range segments {
		esc[i] = url.PathEscape(s)
	}
	return "/" + strings.Join(esc, "/")
}

// listPage is the shape of every list answer of the API.
type listPage struct {
	Data       []json.RawMessage `json:"data"`
	NextCursor string            `json:"next_cursor"`
}

// errStopPaging ends a forEach early without an error.
var errStopPaging = errors.New("stop paging")

// forEach pages through a list route and calls fn with each item in the API's order. Unless query
// sets limit, it asks for pages of 250, the API's maximum, so that a replay of thousands of
// deliveries takes few requests.
func (c *apiClient) forEach(ctx context.Context, path string, query url.Values, fn func(json.RawMessage) error) error {
	q := url.Values{}
	for k, v := range query {
		q[k] = v
	}
	if q.Get("limit") == "" {
		q.Set("limit", "250")
	}
	for {
		var page listPage
		if err := c.do(ctx, http.MethodGet, path, q, nil, &page); err != nil {
			return err
		}
		for _, item := range page.Data {
			if err := fn(item); err != nil {
				if errors.Is(err, errStopPaging) {
					return nil
				}
				return err
			}
		}
		if page.NextCursor == "" {
			return nil
		}
		q.Set("cursor", page.NextCursor)
	}
}

// collect returns up to limit items of a list (all of them when limit is 0) and whether more
// were left.
func (c *apiClient) collect(ctx context.Context, path string, query url.Values, limit int) (items []json.RawMessage, more bool, err error) {
	if limit > 0 {
		q := url.Values{}
		for k, v := range query {
			q[k] = v
		}
		q.Set("limit", strconv.Itoa(min(limit+1, 250))) // one more tells whether more are left
		query = q
	}
	err = c.forEach(ctx, path, query, func(item json.RawMessage) error {
		if limit > 0 && len(items) == limit {
			more = true
			return errStopPaging
		}
		items = append(items, item)
		return nil
	})
	return items, more, err
}
