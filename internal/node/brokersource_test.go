package node_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/node"
	"github.com/heraldhq/herald/internal/ops"
	"github.com/heraldhq/herald/internal/pgtest"
	"github.com/heraldhq/herald/internal/source"
)

func natsURL(t *testing.T) string {
	t.Helper()
	u := os.Getenv("HERALD_TEST_NATS_URL")
	if u == "" {
		t.Skip("HERALD_TEST_NATS_URL is not set")
	}
	return u
}

func suffix(t *testing.T) string {
	t.Helper()
	var b [5]byte
	if _, err := rand.Read(b[:]); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b[:])
}

// jsStream creates a stream of subjects "<prefix>.>" on the server and deletes it at the end.
func jsStream(t *testing.T, url, name, prefix string) (jetstream.JetStream, jetstream.Stream) {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	st, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: name, Subjects: []string{prefix + ".>"}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = js.DeleteStream(context.Background(), name) })
	return js, st
}

func jsPublish(t *testing.T, js jetstream.JetStream, subject, eventID string, body string) {
	t.Helper()
	m := nats.NewMsg(subject)
	m.Data = []byte(body)
	if eventID != "" {
		m.Header.Set("Event-Id", eventID)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, m); err != nil {
		t.Fatal(err)
	}
}

// consumerState is how many messages the source's durable consumer has not yet had acknowledged
// (pending delivery plus delivered but unacknowledged), and how many were redelivered.
func consumerState(t *testing.T, st jetstream.Stream, sourceID string) (unacked uint64, redelivered int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, err := st.Consumer(ctx, "herald-"+sourceID)
	if err != nil {
		return ^uint64(0), 0
	}
	info, err := c.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	return info.NumPending + uint64(info.NumAckPending), info.NumRedelivered
}

type brokerSourceOut struct {
	ID         string          `json:"id"`
	Type       string          `json:"type"`
	Settings   map[string]any  `json:"config"`
	SecretsSet []string        `json:"config_secrets"`
	Schema     json.RawMessage `json:"schema"`
	Health     struct {
		State     string    `json:"state"`
		LastError string    `json:"last_error"`
		Since     time.Time `json:"since"`
	} `json:"health"`
}

func withJS(c *node.Config) {
	c.Sources = []func(source.Env) source.Type{func(source.Env) source.Type { return jsType{} }}
	c.BrokerSourcePoll = 500 * time.Millisecond
}

// eventIDs are the distinct event ids a receiver got, and how many deliveries it got in all.
func eventIDs(t *testing.T, rc *receiver) (map[string]json.RawMessage, int) {
	t.Helper()
	ids := map[string]json.RawMessage{}
	got := rc.got()
	for _, r := range got {
		var ev struct {
			ID   string          `json:"id"`
			Data json.RawMessage `json:"data"`
		}
		if err := json.Unmarshal(r.body, &ev); err != nil {
			t.Fatalf("receiver got %q: %v", r.body, err)
		}
		ids[ev.ID] = ev.Data
	}
	return ids, len(got)
}

// Messages on a JetStream stream become events of the tenant, fanned out to its webhook
// endpoint; a message repeated with the same event id fans out once; each message is
// acknowledged to the broker.
func TestBrokerSource_MessagesBecomeEventsOnce(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	sfx := suffix(t)
	prefix := "bs" + sfx
	js, st := jsStream(t, url, "BS_"+sfx, prefix)
	h := start(t, withJS)
	h.setup("acme", "order.created", "order.paid")
	rc := newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"order.*"}})
	var src brokerSourceOut
	h.must(201, "POST", "/v1/tenants/acme/broker-sources", map[string]any{
		"name": "orders", "type": "jstest", "config": map[string]any{"url": url, "stream": "BS_" + sfx},
		"mapping": map[string]any{"event_type": map[string]any{"from": "subject", "prefix": prefix + "."},
			"event_id": map[string]any{"from": "header", "name": "Event-Id"}},
	}, &src)
	if src.Health.State != "starting" {
		t.Fatalf("new source health = %+v", src.Health)
	}

	for i := 1; i <= 5; i++ {
		jsPublish(t, js, prefix+".order.created", fmt.Sprintf("ord_%d", i), fmt.Sprintf(`{"n":%d}`, i))
	}
	// The same events again (a producer retrying): stored by the broker, fanned out once.
	jsPublish(t, js, prefix+".order.created", "ord_2", `{"n":2}`)
	jsPublish(t, js, prefix+".order.created", "ord_4", `{"n":4}`)
	// No event id: derived from the broker's message identity. Not JSON: wrapped.
	jsPublish(t, js, prefix+".order.paid", "", `plain text`)

	eventually(t, 30*time.Second, "every message acknowledged", func() bool {
		n, _ := consumerState(t, st, src.ID)
		return n == 0
	})
	// Acknowledged means stored: the deliveries are all due, so the receiver gets them.
	eventually(t, 30*time.Second, "six events delivered", func() bool { return rc.count() >= 6 })
	ids, total := eventIDs(t, rc)
	if total != 6 || len(ids) != 6 {
		t.Fatalf("receiver got %d deliveries of %d events (%v), want 6 of 6", total, len(ids), ids)
	}
	for i := 1; i <= 5; i++ {
		if string(ids[fmt.Sprintf("ord_%d", i)]) != fmt.Sprintf(`{"n":%d}`, i) {
			t.Errorf("event ord_%d data = %s", i, ids[fmt.Sprintf("ord_%d", i)])
		}
	}
	var derived string
	for id := range ids {
		if strings.HasPrefix(id, "bmsg_") {
			derived = id
		}
	}
	if derived == "" || !strings.Contains(string(ids[derived]), `"body":"plain text"`) {
		t.Fatalf("the message without an event id: %q %s", derived, ids[derived])
	}
	var got brokerSourceOut
	eventually(t, 10*time.Second, "healthy", func() bool {
		h.must(200, "GET", "/v1/tenants/acme/broker-sources/"+src.ID, nil, &got)
		return got.Health.State == "healthy"
	})
	eventually(t, 10*time.Second, "metric up", func() bool {
		return strings.Contains(metricsText(t, h), fmt.Sprintf(`herald_broker_source_up{source=%q,tenant="acme"} 1`, src.ID))
	})
}

func metricsText(t *testing.T, h *harness) string {
	t.Helper()
	resp, err := http.Get(h.node.URL() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// With the store unavailable (PostgreSQL cut off), the source stops taking messages: the broker
// keeps them (given back, never acknowledged); once the store is back, every one becomes its
// event, nothing lost.
func TestBrokerSource_StoreUnavailablePausesThenResumes(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	dbURL, schema := pgtest.Schema(t, "herald_bsrc_")
	proxy, viaProxy := pgtest.Through(t, dbURL)
	sfx := suffix(t)
	prefix := "bp" + sfx
	js, st := jsStream(t, url, "BP_"+sfx, prefix)
	h := start(t, func(c *node.Config) {
		withJS(c)
		c.DatabaseURL, c.DatabaseSchema = viaProxy, schema
	})
	h.setup("acme", "order.created")
	rc := newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"order.*"}})
	var src brokerSourceOut
	h.must(201, "POST", "/v1/tenants/acme/broker-sources", map[string]any{
		"type": "jstest", "config": map[string]any{"url": url, "stream": "BP_" + sfx},
		"mapping": map[string]any{"event_type": map[string]any{"from": "fixed", "value": "order.created"},
			"event_id": map[string]any{"from": "field", "path": "id"}},
	}, &src)
	for i := 1; i <= 3; i++ {
		jsPublish(t, js, prefix+".x", "", fmt.Sprintf(`{"id":"a%d"}`, i))
	}
	eventually(t, 30*time.Second, "the first messages delivered", func() bool { return rc.count() >= 3 })

	proxy.Cut()
	for i := 1; i <= 10; i++ {
		jsPublish(t, js, prefix+".x", "", fmt.Sprintf(`{"id":"b%d"}`, i))
	}
	// The runner takes them, cannot store them, gives them back: the broker redelivers them
	// later, and none is acknowledged while the store is away.
	eventually(t, 30*time.Second, "messages given back to the broker", func() bool {
		_, redelivered := consumerState(t, st, src.ID)
		return redelivered > 0
	})
	if n, _ := consumerState(t, st, src.ID); n != 10 {
		t.Fatalf("%d messages unacknowledged while the store is away, want all 10", n)
	}
	proxy.Restore()
	eventually(t, 60*time.Second, "every message acknowledged after the store came back", func() bool {
		n, _ := consumerState(t, st, src.ID)
		return n == 0
	})
	eventually(t, 30*time.Second, "13 events delivered", func() bool { return rc.count() >= 13 })
	ids, _ := eventIDs(t, rc)
	for i := 1; i <= 10; i++ {
		if _, ok := ids[fmt.Sprintf("b%d", i)]; !ok {
			t.Errorf("event b%d lost", i)
		}
	}
	if len(ids) != 13 {
		t.Fatalf("%d distinct events, want 13", len(ids))
	}
}

// A broker that is down when the source starts: Herald serves (ready), the source is unhealthy
// with the reason, the metric says 0, source.broker_unreachable goes out; when the broker comes,
// the source recovers and its messages flow.
func TestBrokerSource_BrokerDownAtStartRecovers(t *testing.T) {
	t.Parallel()
	natsURL(t)
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		t.Skip("no nats-server binary")
	}
	port := freePort(t)
	url := fmt.Sprintf("nats://127.0.0.1:%d", port)
	h, opsRC := startOps(t, nil, withJS)
	h.setup("acme", "order.created")
	rc := newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"order.*"}})
	var src brokerSourceOut
	h.must(201, "POST", "/v1/tenants/acme/broker-sources", map[string]any{
		"type": "jstest", "config": map[string]any{"url": url, "stream": "DOWN"},
		"mapping": map[string]any{"event_type": map[string]any{"from": "fixed", "value": "order.created"}},
	}, &src)
	var got brokerSourceOut
	eventually(t, 30*time.Second, "unhealthy", func() bool {
		h.must(200, "GET", "/v1/tenants/acme/broker-sources/"+src.ID, nil, &got)
		return got.Health.State == "unhealthy"
	})
	if got.Health.LastError == "" {
		t.Fatal("unhealthy without a reason")
	}
	h.must(200, "GET", "/readyz", nil, nil)
	if !strings.Contains(metricsText(t, h), fmt.Sprintf(`herald_broker_source_up{source=%q,tenant="acme"} 0`, src.ID)) {
		t.Fatal("metric herald_broker_source_up is not 0")
	}
	eventually(t, 30*time.Second, "source.broker_unreachable", func() bool {
		return len(opsRC.opsEvents(t, ops.SourceBrokerUnreachable)) > 0
	})
	ev := opsRC.opsEvents(t, ops.SourceBrokerUnreachable)[0]
	if ev.Resource.ID != src.ID {
		t.Fatalf("ops event about %s, want %s", ev.Resource.ID, src.ID)
	}

	cmd := exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(port), "-js", "-sd", t.TempDir())
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var js jetstream.JetStream
	eventually(t, 20*time.Second, "private nats-server up", func() bool {
		nc, err := nats.Connect(url)
		if err != nil {
			return false
		}
		t.Cleanup(nc.Close)
		js, _ = jetstream.New(nc)
		_, err = js.CreateStream(context.Background(), jetstream.StreamConfig{Name: "DOWN", Subjects: []string{"down.>"}})
		return err == nil
	})
	jsPublish(t, js, "down.x", "", `{"after":"recovery"}`)
	eventually(t, 60*time.Second, "healthy again", func() bool {
		h.must(200, "GET", "/v1/tenants/acme/broker-sources/"+src.ID, nil, &got)
		return got.Health.State == "healthy"
	})
	eventually(t, 30*time.Second, "the message delivered", func() bool { return rc.count() >= 1 })
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// The API checks a broker source field by field (422 naming the field), never shows a secret,
// and keeps a secret an update omits.
func TestBrokerSource_APIValidatesAndHidesSecrets(t *testing.T) {
	t.Parallel()
	h := start(t, withJS)
	h.setup("acme")
	problem := func(body map[string]any, loc string) {
		t.Helper()
		var p struct {
			Errors []struct {
				Location string `json:"location"`
				Message  string `json:"message"`
			} `json:"errors"`
		}
		if s := h.call("POST", "/v1/tenants/acme/broker-sources", body, &p); s != 422 {
			t.Fatalf("%v: status %d, want 422", body, s)
		}
		for _, e := range p.Errors {
			if e.Location == loc && e.Message != "" {
				return
			}
		}
		t.Fatalf("%v: errors %+v, want one at %s", body, p.Errors, loc)
	}
	settings := map[string]any{"url": "nats://127.0.0.1:1", "stream": "S"}
	problem(map[string]any{"config": settings}, "body.type")
	problem(map[string]any{"type": "kafkaesque", "config": settings}, "body.type")
	problem(map[string]any{"type": "jstest", "config": map[string]any{"url": "nats://127.0.0.1:1"}}, "body.config.stream")
	problem(map[string]any{"type": "jstest"}, "body.config")
	problem(map[string]any{"type": "jstest", "config": settings, "mapping": map[string]any{"event_type": map[string]any{"from": "header"}}},
		"body.mapping.event_type.name")
	problem(map[string]any{"type": "jstest", "config": settings, "schema": map[string]any{"type": 12}}, "body.schema")
	// The settings' and the mapping's problems come in one answer, so a form shows them all.
	both := map[string]any{"type": "jstest", "config": map[string]any{"url": "nats://127.0.0.1:1"}, "mapping": map[string]any{"event_type": map[string]any{"from": "fixed"}}}
	problem(both, "body.config.stream")
	problem(both, "body.mapping.event_type.value")

	var src brokerSourceOut
	withPW := map[string]any{"url": "nats://127.0.0.1:1", "stream": "S", "password": "hunter2-secret"}
	h.must(201, "POST", "/v1/tenants/acme/broker-sources", map[string]any{"type": "jstest", "config": withPW, "enabled": false}, &src)
	if !strings.HasPrefix(src.ID, "bsrc_") || src.Settings["stream"] != "S" || src.Settings["password"] != nil ||
		len(src.SecretsSet) != 1 || src.SecretsSet[0] != "password" {
		t.Fatalf("created %+v", src)
	}
	// An update of the settings without the password keeps it.
	h.must(200, "PATCH", "/v1/tenants/acme/broker-sources/"+src.ID, map[string]any{"config": settings}, &src)
	if len(src.SecretsSet) != 1 || src.Settings["password"] != nil {
		t.Fatalf("after an update without the password: %+v", src)
	}
	// A schema is set, then removed with {} (null is refused, as for every declared field).
	h.must(200, "PATCH", "/v1/tenants/acme/broker-sources/"+src.ID, map[string]any{"schema": map[string]any{"required": []string{"id"}}}, &src)
	if !strings.Contains(string(src.Schema), "required") {
		t.Fatalf("schema not set: %s", src.Schema)
	}
	problem(map[string]any{"schema": nil}, "body.schema")
	var cleared brokerSourceOut
	h.must(200, "PATCH", "/v1/tenants/acme/broker-sources/"+src.ID, map[string]any{"schema": map[string]any{}}, &cleared)
	if len(cleared.Schema) != 0 {
		t.Fatalf("schema after {}: %s", cleared.Schema)
	}
	stored, err := h.node.Store.GetBrokerSource(context.Background(), "acme", src.ID)
	if err != nil || !strings.Contains(string(stored.Settings), "hunter2-secret") {
		t.Fatalf("stored settings lost the password: %v", err)
	}
	var audit json.RawMessage
	h.must(200, "GET", "/v1/audit", nil, &audit)
	if strings.Contains(string(audit), "hunter2") {
		t.Fatal("the audit log holds the password")
	}
	var list struct {
		Data []brokerSourceOut `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/broker-sources", nil, &list)
	if len(list.Data) != 1 || list.Data[0].ID != src.ID {
		t.Fatalf("list = %+v", list.Data)
	}
	h.must(200, "PATCH", "/v1/tenants/acme/broker-sources/"+src.ID, map[string]any{"name": "renamed"}, &src)
	h.must(204, "DELETE", "/v1/tenants/acme/broker-sources/"+src.ID, nil, nil)
	h.must(404, "GET", "/v1/tenants/acme/broker-sources/"+src.ID, nil, nil)
}
