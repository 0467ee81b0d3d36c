package ui_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

// tab drives one browser tab: each step bounded by its own timeout.
type tab struct {
	t   *testing.T
	ctx context.Context
}

func (b tab) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
}

// eval evaluates a JavaScript expression in the page and decodes its value into T.
func eval[T any](b tab, what, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// waitFor polls a JavaScript condition until it is true (pages render after their API calls).
func (b tab) waitFor(what, cond string) {
	b.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !eval[bool](b, what, "!!("+cond+")") {
		if time.Now().After(deadline) {
			b.t.Fatalf("%s: still false after 20 s: %s", what, cond)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

type endpointAnswer struct {
	ID            string         `json:"id"`
	Type          string         `json:"type"`
	Config        map[string]any `json:"config"`
	ConfigSecrets []string       `json:"config_secrets"`
}

// A NATS endpoint made through the dashboard's form, against the real NATS server: the form is
// built from the nats type's described settings; a wildcard subject gets the API's problem next
// to the subject field (and creates nothing); the fixed form creates the endpoint; its page shows
// the type, the subject and that a password is set, never the password, in the dashboard and in
// a tenant's portal link; a change of the destination made with the password left blank keeps
// it; and a published event is read back from the stream with its Standard Webhooks headers.
func TestBrowser_NATSEndpointThroughTheForm(t *testing.T) {
	t.Parallel()
	browser := chromium(t)
	natsURL := os.Getenv("HERALD_TEST_NATS_URL")
	if natsURL == "" {
		t.Skip("HERALD_TEST_NATS_URL is not set (e.g. nats://127.0.0.1:4222)")
	}
	shots := screenshots(t)

	var rnd [6]byte
	_, _ = rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	streamName, subject := "UI_"+strings.ToUpper(suffix), "ui."+suffix+".orders"
	const password = "nats-pw-7c1d9e0b5a"

	nc, err := nats.Connect(natsURL, nats.Name("herald ui test"))
	if err != nil {
		t.Fatalf("connect to NATS at %s: %v", natsURL, err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	bg := context.Background()
	sctx, cancel := context.WithTimeout(bg, 10*time.Second)
	defer cancel()
	if _, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{"ui." + suffix + ".>"}}); err != nil {
		t.Fatalf("create stream %s: %v", streamName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, streamName); err != nil {
			t.Errorf("delete stream %s: %v", streamName, err)
		}
	})

	n, err := node.Start(bg, node.Config{
		Addr: "127.0.0.1:0", DataDir: t.TempDir(), Dev: true, APIKey: adminKey, NoMetrics: true,
		Logger:   slog.New(slog.NewTextHandler(io.Discard, nil)),
		Dispatch: dispatch.Config{Rescan: time.Second},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 20*time.Second)
		defer cancel()
		if err := n.Close(ctx); err != nil {
			t.Errorf("close node: %v", err)
		}
	})
	apiCall(t, n, 201, "POST", "/v1/tenants", map[string]any{"id": "acme", "name": "Acme Inc"}, nil)
	apiCall(t, n, 201, "POST", "/v1/event-types", map[string]any{"name": "order.created", "description": "An order was placed."}, nil)

	alloc, cancelAlloc := chromedp.NewExecAllocator(bg,
		chromedp.ExecPath(browser),
		chromedp.Headless, chromedp.NoSandbox, chromedp.DisableGPU, chromedp.NoFirstRun,
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 1000),
	)
	defer cancelAlloc()
	ctx, cancelTab := chromedp.NewContext(alloc)
	defer cancelTab()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start Chromium: %v", err)
	}
	b := tab{t: t, ctx: ctx}
	shot := func(b tab, name string) {
		t.Helper()
		sctx, cancel := context.WithTimeout(b.ctx, 20*time.Second)
		defer cancel()
		img, err := chromedp.Run(sctx, chromedp.FullScreenshot(100))
		if err != nil {
			t.Fatalf("screenshot %s: %v", name, err)
		}
		if err := os.WriteFile(filepath.Join(shots, name+".png"), img, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// neverShown: the password is nowhere in the page's markup nor in any input's value.
	neverShown := func(b tab, where string) {
		t.Helper()
		leak := eval[bool](b, "look for the password", `document.documentElement.outerHTML.includes(`+jsString(password)+`) ||
			[...document.querySelectorAll("input, textarea")].some((i) => i.value.includes(`+jsString(password)+`))`)
		if leak {
			t.Fatalf("%s shows the password", where)
		}
	}

	b.do("sign in", chromedp.Navigate(n.URL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), adminKey), chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS(`a[data-nav="endpoints"]`)))
	eval[bool](b, "watch for problems", `window.problems = [];
		document.addEventListener("securitypolicyviolation", (e) => window.problems.push("CSP blocked " + e.violatedDirective + " " + e.blockedURI));
		window.addEventListener("error", (e) => window.problems.push("error: " + e.message));
		window.addEventListener("unhandledrejection", (e) => window.problems.push("unhandled: " + e.reason));
		true`)
	b.do("open the endpoints", chromedp.Click(chromedp.CSS(`a[data-nav="endpoints"]`)), chromedp.WaitVisible(chromedp.CSS("#new-endpoint-type")))

	// The type selector offers every type of the server; choosing nats shows its settings.
	types := eval[[]string](b, "read the types", `[...document.querySelectorAll("#new-endpoint-type option")].map((o) => o.value)`)
	for _, want := range []string{"webhook", "nats", "rabbitmq", "redis", "kafka", "pubsub", "sqs"} {
		if !slices.Contains(types, want) {
			t.Fatalf("the type selector offers %q, without %s", types, want)
		}
	}
	eval[bool](b, "choose nats", `(() => { const s = document.querySelector("#new-endpoint-type"); s.value = "nats"; s.dispatchEvent(new Event("change")); return true; })()`)
	b.do("the nats settings appear", chromedp.WaitVisible(chromedp.CSS("#new-cfg-subject")))
	if eval[bool](b, "url hidden", `!document.querySelector("#new-endpoint-url").closest(".field").hidden`) {
		t.Fatal("the webhook url field is still shown for a nats endpoint")
	}
	if typ := eval[string](b, "password input type", `document.querySelector("#new-cfg-password").type + "/" + document.querySelector("#new-cfg-token").type`); typ != "password/password" {
		t.Fatalf("the credentials' inputs are %s, want password inputs", typ)
	}
	eval[bool](b, "clear event types", `(() => { document.querySelector("#new-endpoint-event-types").value = ""; return true; })()`)
	b.do("fill the form with a wildcard subject",
		chromedp.SendKeys(chromedp.CSS("#new-cfg-url"), natsURL),
		chromedp.SendKeys(chromedp.CSS("#new-cfg-subject"), "ui."+suffix+".>"),
		chromedp.SendKeys(chromedp.CSS("#new-cfg-username"), "herald"),
		chromedp.SendKeys(chromedp.CSS("#new-cfg-password"), password),
		chromedp.SendKeys(chromedp.CSS("#new-endpoint-event-types"), "order.*"),
		chromedp.Click(chromedp.CSS("#new-endpoint-submit")))
	subjectErr := `document.querySelector('.field-error[data-field="config.subject"]').textContent`
	b.waitFor("the subject's problem shows next to it", subjectErr)
	if got := eval[string](b, "read the subject's problem", subjectErr); !strings.Contains(got, "wildcard") {
		t.Fatalf("the subject field's error is %q, want the API's reason (wildcards)", got)
	}
	if others := eval[string](b, "other errors", `[...document.querySelectorAll(".field-error")].filter((x) => x.dataset.field !== "config.subject").map((x) => x.textContent).join("")`); others != "" {
		t.Fatalf("other fields show errors: %q", others)
	}
	shot(b, "10-nats-field-error")
	var none struct {
		Data []endpointAnswer `json:"data"`
	}
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints", nil, &none)
	if len(none.Data) != 0 {
		t.Fatalf("a refused form created %d endpoints", len(none.Data))
	}

	// Fixed, the form creates the endpoint and opens its page.
	eval[bool](b, "clear the subject", `(() => { document.querySelector("#new-cfg-subject").value = ""; return true; })()`)
	b.do("fix the subject and submit", chromedp.SendKeys(chromedp.CSS("#new-cfg-subject"), subject),
		chromedp.Click(chromedp.CSS("#new-endpoint-submit")), chromedp.WaitVisible(chromedp.CSS("#credentials")))
	var eps struct {
		Data []endpointAnswer `json:"data"`
	}
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints", nil, &eps)
	if len(eps.Data) != 1 || eps.Data[0].Type != "nats" || eps.Data[0].Config["subject"] != subject || !slices.Equal(eps.Data[0].ConfigSecrets, []string{"password"}) {
		t.Fatalf("endpoints after the form: %+v", eps.Data)
	}
	ep := eps.Data[0]
	main := eval[string](b, "read the page", `document.querySelector("main").innerText`)
	for _, want := range []string{"nats", subject, "password: set", "token: not set", natsURL} {
		if !strings.Contains(main, want) {
			t.Fatalf("the endpoint page lacks %q:\n%s", want, main)
		}
	}
	neverShown(b, "the endpoint page")
	shot(b, "11-nats-endpoint")

	// The destination changed through the page's form, the password left blank: kept.
	b.do("open the destination form", chromedp.Click(chromedp.CSS("#edit-destination summary")), chromedp.WaitVisible(chromedp.CSS("#edit-cfg-stream")))
	if v := eval[string](b, "the password input", `document.querySelector("#edit-cfg-password").value + "|" + document.querySelector("#edit-cfg-password").placeholder`); !strings.HasPrefix(v, "|set") {
		t.Fatalf("the edit form's password input is %q, want empty, saying it is set", v)
	}
	b.do("expect the stream, save", chromedp.SendKeys(chromedp.CSS("#edit-cfg-stream"), streamName), chromedp.Click(chromedp.CSS("#edit-endpoint-submit")))
	var after endpointAnswer
	deadline := time.Now().Add(20 * time.Second)
	for {
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/endpoints/"+ep.ID, nil, &after)
		if after.Config["stream"] == streamName {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edit form did not save the stream: %+v", after)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !slices.Equal(after.ConfigSecrets, []string{"password"}) || after.Config["subject"] != subject || after.Config["username"] != "herald" {
		t.Fatalf("after an edit with the password blank: %+v, want the password kept and the other settings unchanged", after)
	}
	b.waitFor("the page shows the stream", `document.querySelector('[data-setting="stream"]') && document.querySelector('[data-setting="stream"]').innerText === `+jsString(streamName))
	neverShown(b, "the endpoint page after an edit")

	// The endpoint list shows the type and the destination.
	b.do("open the endpoints", chromedp.Click(chromedp.CSS(`a[data-nav="endpoints"]`)), chromedp.WaitVisible(chromedp.CSS(`tr[data-endpoint="`+ep.ID+`"]`)))
	row := eval[string](b, "read the row", `document.querySelector('tr[data-endpoint="`+ep.ID+`"]').innerText`)
	for _, want := range []string{"nats", "subject " + subject, "stream " + streamName, "credentials set: password"} {
		if !strings.Contains(row, want) {
			t.Fatalf("the endpoint's row %q lacks %q", row, want)
		}
	}
	neverShown(b, "the endpoint list")
	shot(b, "12-nats-endpoint-list")

	// An event published to the tenant lands in the stream, signed.
	var ev struct {
		ID string `json:"id"`
	}
	apiCall(t, n, 202, "POST", "/v1/tenants/acme/events", map[string]any{"type": "order.created", "data": map[string]any{"order": "o_1"}}, &ev)
	cctx, cancelC := context.WithTimeout(bg, 30*time.Second)
	defer cancelC()
	cons, err := js.OrderedConsumer(cctx, streamName, jetstream.OrderedConsumerConfig{})
	if err != nil {
		t.Fatal(err)
	}
	msg, err := cons.Next(jetstream.FetchMaxWait(25 * time.Second))
	if err != nil {
		t.Fatalf("read the stream: %v", err)
	}
	if msg.Subject() != subject || msg.Headers().Get("webhook-id") != ev.ID || msg.Headers().Get("herald-event-type") != "order.created" ||
		!strings.HasPrefix(msg.Headers().Get("webhook-signature"), "v1,") || !strings.Contains(string(msg.Data()), `"o_1"`) {
		t.Fatalf("message on %s with headers %v and body %s; want the event %s, signed", msg.Subject(), msg.Headers(), msg.Data(), ev.ID)
	}

	if problems := eval[[]string](b, "read problems", `window.problems`); len(problems) > 0 {
		t.Fatalf("the page had problems: %q", problems)
	}

	// The tenant's portal shows the same, and no more.
	var link struct {
		URL string `json:"url"`
	}
	apiCall(t, n, 201, "POST", "/v1/tenants/acme/portal-links", map[string]any{"expires_in_seconds": 600}, &link)
	portal, cancelPortal := chromedp.NewContext(ctx)
	defer cancelPortal()
	if err := chromedp.Do(portal); err != nil {
		t.Fatalf("open a tab: %v", err)
	}
	p := tab{t: t, ctx: portal}
	p.do("open the portal link", chromedp.Navigate(link.URL), chromedp.WaitVisible(chromedp.CSS(`a[data-nav="endpoints"]`)))
	p.do("open the endpoint in the portal", chromedp.Navigate(n.URL()+"/ui/#/endpoints/"+ep.ID), chromedp.WaitVisible(chromedp.CSS("#credentials")))
	pmain := eval[string](p, "read the portal's page", `document.querySelector("main").innerText`)
	for _, want := range []string{"nats", subject, "password: set"} {
		if !strings.Contains(pmain, want) {
			t.Fatalf("the portal's endpoint page lacks %q:\n%s", want, pmain)
		}
	}
	neverShown(p, "the portal's endpoint page")
	p.do("the portal's form offers the types", chromedp.Navigate(n.URL()+"/ui/#/endpoints"), chromedp.WaitVisible(chromedp.CSS("#new-endpoint-type")))
	if got := eval[string](p, "portal types", `[...document.querySelectorAll("#new-endpoint-type option")].map((o) => o.value).join(",")`); !strings.Contains(got, "nats") {
		t.Fatalf("the portal's type selector offers %q", got)
	}
	shot(p, "13-portal-nats-endpoint")
}
