package ui_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

type brokerSourceAnswer struct {
	ID      string         `json:"id"`
	Type    string         `json:"type"`
	Enabled bool           `json:"enabled"`
	Config  map[string]any `json:"config"`
	Health  struct {
		State     string `json:"state"`
		LastError string `json:"last_error"`
	} `json:"health"`
}

// A NATS broker source made through the dashboard's form, against the real NATS server: the form
// offers the six source types and is built from the nats type's described settings; a stream
// name JetStream refuses and a fixed event type left empty get the API's problems next to their
// fields (and create nothing); the fixed form creates the source; a message published to the
// stream becomes an event shown on the events page, a message failing the source's schema is
// listed on the source's page as quarantined with a link to replay it, and the source is shown
// healthy. A second source pointing at a port where nothing listens is shown unhealthy with its
// error, prominently (in the list, a banner there and on the overview); it is disabled and
// deleted from its page. The tenant's portal shows the broker sources too.
func TestBrowser_NATSBrokerSourceThroughTheForm(t *testing.T) {
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
	streamName, prefix := "UISRC_"+strings.ToUpper(suffix), "uisrc."+suffix+"."

	nc, err := nats.Connect(natsURL, nats.Name("herald ui broker source test"))
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
	if _, err := js.CreateStream(sctx, jetstream.StreamConfig{Name: streamName, Subjects: []string{prefix + ">"}}); err != nil {
		t.Fatalf("create stream %s: %v", streamName, err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(bg, 10*time.Second)
		defer cancel()
		if err := js.DeleteStream(ctx, streamName); err != nil {
			t.Errorf("delete stream %s: %v", streamName, err)
		}
	})

	// A port where nothing listens: taken from the system, then given back.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	deadURL := "nats://127.0.0.1:" + strconv.Itoa(l.Addr().(*net.TCPAddr).Port)
	_ = l.Close()

	// Dev mode: the NATS servers are on loopback, which the SSRF guard refuses otherwise.
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
	setValue := func(sel, v string) {
		t.Helper()
		eval[bool](b, "set "+sel, `(() => { const s = document.querySelector(`+jsString(sel)+`); s.value = `+jsString(v)+`; s.dispatchEvent(new Event("change")); return true; })()`)
	}
	listSources := func() []brokerSourceAnswer {
		t.Helper()
		var l struct {
			Data []brokerSourceAnswer `json:"data"`
		}
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/broker-sources", nil, &l)
		return l.Data
	}

	b.do("sign in", chromedp.Navigate(n.URL()+"/ui/"), chromedp.WaitVisible(chromedp.CSS("#api-key")),
		chromedp.SendKeys(chromedp.CSS("#api-key"), adminKey), chromedp.Click(chromedp.CSS("#sign-in-submit")),
		chromedp.WaitVisible(chromedp.CSS(`a[data-nav="broker-sources"]`)))
	eval[bool](b, "watch for problems", `window.problems = [];
		document.addEventListener("securitypolicyviolation", (e) => window.problems.push("CSP blocked " + e.violatedDirective + " " + e.blockedURI));
		window.addEventListener("error", (e) => window.problems.push("error: " + e.message));
		window.addEventListener("unhandledrejection", (e) => window.problems.push("unhandled: " + e.reason));
		true`)
	b.do("open the broker sources", chromedp.Click(chromedp.CSS(`a[data-nav="broker-sources"]`)), chromedp.WaitVisible(chromedp.CSS("#bsrc-type")))

	types := eval[[]string](b, "read the types", `[...document.querySelectorAll("#bsrc-type option")].map((o) => o.value)`)
	for _, want := range []string{"nats", "rabbitmq", "redis", "kafka", "pubsub", "sqs"} {
		if !slices.Contains(types, want) {
			t.Fatalf("the type selector offers %q, without %s", types, want)
		}
	}
	setValue("#bsrc-type", "nats")
	b.do("the nats settings appear", chromedp.WaitVisible(chromedp.CSS("#bsrc-cfg-stream")), chromedp.WaitVisible(chromedp.CSS("#bsrc-cfg-ack_wait")))
	if typ := eval[string](b, "credential inputs", `document.querySelector("#bsrc-cfg-password").type + "/" + document.querySelector("#bsrc-cfg-token").type`); typ != "password/password" {
		t.Fatalf("the credentials' inputs are %s, want password inputs", typ)
	}

	// A stream name JetStream refuses and a fixed event type left empty: both problems next to
	// their fields, nothing created.
	setValue("#bsrc-event_type-from", "fixed")
	b.do("fill the form wrongly",
		chromedp.SendKeys(chromedp.CSS("#bsrc-name"), "orders from NATS"),
		chromedp.SendKeys(chromedp.CSS("#bsrc-cfg-url"), natsURL),
		chromedp.SendKeys(chromedp.CSS("#bsrc-cfg-stream"), "orders.v1"),
		chromedp.Click(chromedp.CSS("#bsrc-submit")))
	streamErr := `document.querySelector('.field-error[data-field="config.stream"]').textContent`
	typeErr := `document.querySelector('.field-error[data-field="mapping.event_type"]').textContent`
	b.waitFor("the stream's problem shows next to it", streamErr)
	if got := eval[string](b, "read the stream's problem", streamErr); !strings.Contains(got, "must not contain .") {
		t.Fatalf("the stream field's error is %q, want the API's reason", got)
	}
	b.waitFor("the mapping's problem shows next to it", typeErr)
	if got := eval[string](b, "read the mapping's problem", typeErr); !strings.Contains(got, "fixed event type is required") {
		t.Fatalf("the event type mapping's error is %q, want the API's reason", got)
	}
	shot(b, "20-broker-source-field-errors")
	if l := listSources(); len(l) != 0 {
		t.Fatalf("a refused form created %d broker sources", len(l))
	}

	// Fixed: the event type from the subject without the prefix, a schema requiring "order".
	eval[bool](b, "clear the stream", `(() => { document.querySelector("#bsrc-cfg-stream").value = ""; return true; })()`)
	setValue("#bsrc-event_type-from", "subject")
	b.do("fix the form and submit",
		chromedp.SendKeys(chromedp.CSS("#bsrc-cfg-stream"), streamName),
		chromedp.SendKeys(chromedp.CSS("#bsrc-event_type-arg"), prefix),
		chromedp.SendKeys(chromedp.CSS("#bsrc-schema"), `{"type": "object", "required": ["order"]}`),
		chromedp.Click(chromedp.CSS("#bsrc-submit")), chromedp.WaitVisible(chromedp.CSS("#toggle-broker-source")))
	srcs := listSources()
	if len(srcs) != 1 || srcs[0].Type != "nats" || srcs[0].Config["stream"] != streamName || !srcs[0].Enabled {
		t.Fatalf("broker sources after the form: %+v", srcs)
	}
	good := srcs[0]
	main := eval[string](b, "read the page", `document.querySelector("main").innerText`)
	for _, want := range []string{"nats", "stream " + streamName, natsURL, "password: not set", "token: not set", "event type from subject without prefix " + prefix} {
		if !strings.Contains(main, want) {
			t.Fatalf("the broker source's page lacks %q:\n%s", want, main)
		}
	}

	// A message on the stream becomes an event; one failing the schema is quarantined.
	for _, body := range []string{`{"order":"o_42"}`, `{"note":"no order in it"}`} {
		pctx, cancel := context.WithTimeout(bg, 10*time.Second)
		_, err := js.Publish(pctx, prefix+"order.created", []byte(body))
		cancel()
		if err != nil {
			t.Fatalf("publish to the stream: %v", err)
		}
	}
	var evID string
	deadline := time.Now().Add(30 * time.Second)
	for evID == "" {
		var evs struct {
			Data []struct {
				ID     string `json:"id"`
				Type   string `json:"type"`
				Source string `json:"source"`
			} `json:"data"`
		}
		apiCall(t, n, 200, "GET", "/v1/tenants/acme/events", nil, &evs)
		for _, e := range evs.Data {
			if e.Source == good.ID && e.Type == "order.created" {
				evID = e.ID
			}
		}
		if evID == "" && time.Now().After(deadline) {
			t.Fatalf("no event from the broker source after 30 s: %+v", evs.Data)
		}
		time.Sleep(100 * time.Millisecond)
	}
	b.do("open the events", chromedp.Click(chromedp.CSS(`a[data-nav="events"]`)),
		chromedp.WaitVisible(chromedp.CSS(`a[href="#/events/`+evID+`"]`)))
	row := eval[string](b, "read the event's row", `document.querySelector('a[href="#/events/`+evID+`"]').closest("tr").innerText`)
	if !strings.Contains(row, "order.created") || !strings.Contains(row, good.ID) {
		t.Fatalf("the event's row %q, want its type and the broker source", row)
	}
	shot(b, "21-broker-source-event")

	// The list shows the source healthy (it has read the stream), where it reads, its type.
	b.do("open the broker sources", chromedp.Click(chromedp.CSS(`a[data-nav="broker-sources"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-broker-source="`+good.ID+`"]`)))
	b.waitFor("the source shown healthy", `document.querySelector('tr[data-broker-source="`+good.ID+`"] [data-health="healthy"]')`)
	row = eval[string](b, "read the source's row", `document.querySelector('tr[data-broker-source="`+good.ID+`"]').innerText`)
	for _, want := range []string{"orders from NATS", "nats", "stream " + streamName, "healthy", "enabled"} {
		if !strings.Contains(row, want) {
			t.Fatalf("the source's row %q lacks %q", row, want)
		}
	}

	// The source's page lists the quarantined message, with a link to replay it.
	b.do("open the source", chromedp.Click(chromedp.CSS(`tr[data-broker-source="`+good.ID+`"] a`)), chromedp.WaitVisible(chromedp.CSS("#toggle-broker-source")))
	held := `document.querySelector("tr[data-received]")`
	for deadline := time.Now().Add(30 * time.Second); !eval[bool](b, "look for the quarantined message", "!!"+held); {
		if time.Now().After(deadline) {
			t.Fatal("the source's page lists no quarantined message after 30 s")
		}
		eval[bool](b, "show the page again", `(() => { location.hash = "#/broker-sources/`+good.ID+`?status=quarantined&n=" + Date.now(); return true; })()`)
		time.Sleep(500 * time.Millisecond)
	}
	if got := eval[string](b, "read the quarantined message", held+`.innerText`); !strings.Contains(got, "quarantined") || !strings.Contains(got, "replay") {
		t.Fatalf("the held message's row %q, want quarantined with a link to replay it", got)
	}
	shot(b, "22-broker-source-healthy")
	b.do("follow the replay link", chromedp.Click(chromedp.CSS(`tr[data-received] td:last-child a`)), chromedp.WaitVisible(chromedp.CSS("#replay-received")))
	if got := eval[string](b, "read the received message", `document.querySelector("main").innerText`); !strings.Contains(got, good.ID) || !strings.Contains(got, "no order in it") {
		t.Fatalf("the quarantined message's page lacks its source or body:\n%s", got)
	}

	// A source pointing where nothing listens: shown unhealthy, with its error, prominently.
	b.do("open the broker sources", chromedp.Click(chromedp.CSS(`a[data-nav="broker-sources"]`)), chromedp.WaitVisible(chromedp.CSS("#bsrc-type")))
	setValue("#bsrc-type", "nats")
	b.do("create a source of a dead broker", chromedp.WaitVisible(chromedp.CSS("#bsrc-cfg-stream")),
		chromedp.SendKeys(chromedp.CSS("#bsrc-name"), "nothing listens"),
		chromedp.SendKeys(chromedp.CSS("#bsrc-cfg-url"), deadURL),
		chromedp.SendKeys(chromedp.CSS("#bsrc-cfg-stream"), streamName),
		chromedp.Click(chromedp.CSS("#bsrc-submit")), chromedp.WaitVisible(chromedp.CSS("#toggle-broker-source")))
	var dead brokerSourceAnswer
	for _, s := range listSources() {
		if s.ID != good.ID {
			dead = s
		}
	}
	if dead.ID == "" || dead.Config["url"] != deadURL {
		t.Fatalf("the second source was not created: %+v", listSources())
	}
	b.do("open the broker sources", chromedp.Click(chromedp.CSS(`a[data-nav="broker-sources"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-broker-source="`+dead.ID+`"]`)))
	b.waitFor("the dead broker's source shown unhealthy", `document.querySelector('tr[data-broker-source="`+dead.ID+`"] [data-health="unhealthy"]')`)
	lastErr := eval[string](b, "read its error", `document.querySelector('tr[data-broker-source="`+dead.ID+`"] .last-error').textContent`)
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/broker-sources/"+dead.ID, nil, &dead)
	if dead.Health.State != "unhealthy" || lastErr == "" || lastErr != dead.Health.LastError || !strings.Contains(lastErr, "refused") {
		t.Fatalf("the row shows the error %q; the API says %+v; want the connection refused", lastErr, dead.Health)
	}
	banner := eval[string](b, "read the banner", `document.querySelector("#unhealthy-sources") ? document.querySelector("#unhealthy-sources").textContent : ""`)
	if !strings.Contains(banner, "nothing listens") || strings.Contains(banner, "orders from NATS") {
		t.Fatalf("the unhealthy banner says %q, want the dead broker's source only", banner)
	}
	if !eval[bool](b, "the healthy one stays healthy", `!!document.querySelector('tr[data-broker-source="`+good.ID+`"] [data-health="healthy"]')`) {
		t.Fatal("the healthy source is not shown healthy next to the unhealthy one")
	}
	shot(b, "23-broker-source-unhealthy")
	b.do("open the overview", chromedp.Click(chromedp.CSS(`a[data-nav="home"]`)), chromedp.WaitVisible(chromedp.CSS("#failed-last-hour")))
	if got := eval[string](b, "read the overview's banner", `document.querySelector("#unhealthy-sources") ? document.querySelector("#unhealthy-sources").textContent : ""`); !strings.Contains(got, "nothing listens") {
		t.Fatalf("the overview's banner says %q, want the unhealthy source named", got)
	}
	b.do("follow the banner to the broker sources", chromedp.Click(chromedp.CSS("a.alert-link")),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-broker-source="`+dead.ID+`"] [data-health="unhealthy"]`)))

	// Its page: the error, then disable and delete.
	b.do("open the dead broker's source", chromedp.Click(chromedp.CSS(`tr[data-broker-source="`+dead.ID+`"] a`)), chromedp.WaitVisible(chromedp.CSS("#toggle-broker-source")))
	b.waitFor("the page says why", `document.querySelector(".alert") && document.querySelector(".alert").textContent.includes("refused")`)
	b.do("disable it", chromedp.Click(chromedp.CSS("#toggle-broker-source")), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.waitFor("the page shows it disabled", `document.querySelector("#toggle-broker-source") && document.querySelector("#toggle-broker-source").textContent === "Enable"`)
	apiCall(t, n, 200, "GET", "/v1/tenants/acme/broker-sources/"+dead.ID, nil, &dead)
	if dead.Enabled {
		t.Fatal("the Disable button did not disable the source")
	}
	b.do("delete it", chromedp.Click(chromedp.CSS("#delete-broker-source")), chromedp.WaitVisible(chromedp.CSS("#confirm-ok")), chromedp.Click(chromedp.CSS("#confirm-ok")),
		chromedp.WaitVisible(chromedp.CSS("#bsrc-type")))
	apiCall(t, n, 404, "GET", "/v1/tenants/acme/broker-sources/"+dead.ID, nil, nil)

	if problems := eval[[]string](b, "read problems", `window.problems`); len(problems) > 0 {
		t.Fatalf("the page had problems: %q", problems)
	}

	// The tenant's portal shows the broker sources and offers the form.
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
	p.do("open the portal link", chromedp.Navigate(link.URL), chromedp.WaitVisible(chromedp.CSS(`a[data-nav="broker-sources"]`)))
	p.do("open the broker sources in the portal", chromedp.Click(chromedp.CSS(`a[data-nav="broker-sources"]`)),
		chromedp.WaitVisible(chromedp.CSS(`tr[data-broker-source="`+good.ID+`"] [data-health="healthy"]`)), chromedp.WaitVisible(chromedp.CSS("#bsrc-type")))
	if eval[bool](p, "the deleted source", `!!document.querySelector('tr[data-broker-source="`+dead.ID+`"]')`) {
		t.Fatal("the portal lists the deleted source")
	}
	shot(p, "24-portal-broker-sources")
}
