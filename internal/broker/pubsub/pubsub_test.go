package pubsub

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gpubsub "cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

const testProject = "herald-test"

func suffix(t testing.TB) string {
	t.Helper()
	b := make([]byte, 6)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// dialer is a destination.Dialer that counts the connections it opens.
type dialer struct {
	dials atomic.Int64
}

func (d *dialer) dial(ctx context.Context, network, addr string) (net.Conn, error) {
	d.dials.Add(1)
	var nd net.Dialer
	return nd.DialContext(ctx, network, addr)
}

func newType(t testing.TB, env destination.Env) *Type {
	t.Helper()
	typ := New(env)
	t.Cleanup(func() {
		if err := typ.Close(); err != nil {
			t.Errorf("close type: %v", err)
		}
	})
	return typ
}

// server starts Google's in-memory Pub/Sub server and returns it with an admin client.
func server(t testing.TB) (*pstest.Server, *gpubsub.Client) {
	t.Helper()
	srv := pstest.NewServer()
	t.Cleanup(func() { _ = srv.Close() })
	return srv, adminClient(t, srv.Addr)
}

func adminClient(t testing.TB, addr string) *gpubsub.Client {
	t.Helper()
	ctx := context.Background()
	c, err := newClient(ctx, &Conn{Project: testProject, Endpoint: addr}, func(ctx context.Context, a string) (net.Conn, error) {
		var nd net.Dialer
		return nd.DialContext(ctx, "tcp", a)
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func createTopic(t testing.TB, admin *gpubsub.Client, ordered bool) (topic, sub string) {
	t.Helper()
	ctx := context.Background()
	s := suffix(t)
	topic = "orders-" + s
	if _, err := admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/" + testProject + "/topics/" + topic}); err != nil {
		t.Fatalf("create topic: %v", err)
	}
	sub = "projects/" + testProject + "/subscriptions/reader-" + s
	if _, err := admin.SubscriptionAdminClient.CreateSubscription(ctx, &pubsubpb.Subscription{
		Name: sub, Topic: "projects/" + testProject + "/topics/" + topic, EnableMessageOrdering: ordered,
	}); err != nil {
		t.Fatalf("create subscription: %v", err)
	}
	return topic, sub
}

func settings(t testing.TB, v map[string]any) destination.Target {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return destination.Target{EndpointID: "ep_" + suffix(t), TenantID: "t1", Settings: b}
}

func open(t testing.TB, typ *Type, v map[string]any) destination.Sender {
	t.Helper()
	tg := settings(t, v)
	norm, errs := typ.Check(tg.Settings)
	if errs != nil {
		t.Fatalf("check %s: %v", tg.Settings, errs[0])
	}
	tg.Settings = norm
	s, err := typ.Open(tg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func ctxT(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// receive reads n messages from the subscription.
func receive(t testing.TB, admin *gpubsub.Client, sub string, n int) []*gpubsub.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var mu sync.Mutex
	var got []*gpubsub.Message
	err := admin.Subscriber(sub).Receive(ctx, func(_ context.Context, m *gpubsub.Message) {
		m.Ack()
		mu.Lock()
		defer mu.Unlock()
		got = append(got, m)
		if len(got) == n {
			cancel()
		}
	})
	if err != nil {
		t.Fatalf("receive: %v", err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(got) < n {
		t.Fatalf("received %d messages, want %d", len(got), n)
	}
	return got
}

func emulatorSettings(addr, topic string) map[string]any {
	return map[string]any{"project": testProject, "topic": topic, "endpoint": addr}
}

func TestDeliveryVerifiedByConsumer(t *testing.T) {
	srv, admin := server(t)
	topic, sub := createTopic(t, admin, false)
	d := &dialer{}
	typ := newType(t, destination.Env{Dial: d.dial, InternalDial: d.dial})
	s := open(t, typ, emulatorSettings(srv.Addr, topic))

	body := []byte(`{"type":"order.created","data":{"id":42}}`)
	m := brokertest.SignedMessage(t, "msg_"+suffix(t), "order.created", body)
	out := s.Send(ctxT(t), m)
	if out.Class != destination.Success {
		t.Fatalf("send: %+v", out)
	}
	if out.Latency <= 0 || !strings.HasPrefix(string(out.Response), "message id ") {
		t.Fatalf("outcome lacks latency or ack: %+v", out)
	}

	got := receive(t, admin, sub, 1)[0]
	if !bytes.Equal(got.Data, body) {
		t.Fatalf("body %q, want %q", got.Data, body)
	}
	if "message id "+got.ID != string(out.Response) {
		t.Fatalf("ack %q does not name the delivered message %s", out.Response, got.ID)
	}
	// The consumer verifies exactly as a webhook receiver does, from the attributes.
	h := http.Header{}
	for k, v := range got.Attributes {
		h.Set(k, v)
	}
	wh, err := standardwebhooks.NewWebhook(brokertest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	if err := wh.Verify(got.Data, h); err != nil {
		t.Fatalf("consumer could not verify the signature: %v (attributes %v)", err, got.Attributes)
	}
	want := map[string]string{
		"webhook-id":        m.ID,
		"content-type":      "application/json",
		"traceparent":       m.Header.Get("traceparent"),
		"herald-event-type": "order.created",
	}
	for k, v := range want {
		if got.Attributes[k] != v {
			t.Errorf("attribute %s = %q, want %q", k, got.Attributes[k], v)
		}
	}
	// A tampered body fails verification (the check above is meaningful).
	if err := wh.Verify(append([]byte(nil), append(got.Data, ' ')...), h); err == nil {
		t.Fatal("a tampered body verified")
	}
}

func TestOrderingKey(t *testing.T) {
	srv, admin := server(t)
	topic, sub := createTopic(t, admin, true)
	typ := newType(t, destination.Env{Dial: (&dialer{}).dial})
	st := emulatorSettings(srv.Addr, topic)
	st["ordering_key"] = "type"
	s := open(t, typ, st)
	const n = 20
	for i := range n {
		m := brokertest.SignedMessage(t, fmt.Sprintf("msg_%d_%s", i, suffix(t)), "order.updated", []byte(fmt.Sprintf(`{"seq":%d}`, i)))
		if out := s.Send(ctxT(t), m); out.Class != destination.Success {
			t.Fatalf("send %d: %+v", i, out)
		}
	}
	got := receive(t, admin, sub, n)
	for i, m := range got {
		if m.OrderingKey != "order.updated" {
			t.Fatalf("message %d ordering key %q, want the event type", i, m.OrderingKey)
		}
		if want := fmt.Sprintf(`{"seq":%d}`, i); string(m.Data) != want {
			t.Fatalf("message %d is %s, want %s (out of order)", i, m.Data, want)
		}
	}
}

func TestBatch(t *testing.T) {
	srv, admin := server(t)
	topic, sub := createTopic(t, admin, false)
	typ := newType(t, destination.Env{Dial: (&dialer{}).dial})
	s := open(t, typ, emulatorSettings(srv.Addr, topic))
	bs, ok := s.(destination.BatchSender)
	if !ok {
		t.Fatal("the pubsub sender is not a BatchSender")
	}
	const n = 25
	ms := make([]*destination.Message, n)
	ids := map[string]bool{}
	for i := range ms {
		ms[i] = brokertest.SignedMessage(t, fmt.Sprintf("msg_%d_%s", i, suffix(t)), "order.created", []byte(fmt.Sprintf(`{"n":%d}`, i)))
		ids[ms[i].ID] = true
	}
	out := bs.SendBatch(ctxT(t), ms)
	if out.Class != destination.Success {
		t.Fatalf("batch: %+v", out)
	}
	for _, m := range receive(t, admin, sub, n) {
		if !ids[m.Attributes["webhook-id"]] {
			t.Fatalf("unexpected or duplicate message %q", m.Attributes["webhook-id"])
		}
		delete(ids, m.Attributes["webhook-id"])
	}
	if len(ids) != 0 {
		t.Fatalf("%d messages of the batch not delivered", len(ids))
	}

	// A batch to a missing topic fails as a whole, permanently.
	missing := open(t, typ, emulatorSettings(srv.Addr, "missing-"+suffix(t))).(destination.BatchSender)
	if out := missing.SendBatch(ctxT(t), ms[:3]); out.Class != destination.Permanent || out.ErrorKind != destination.KindNoRoute {
		t.Fatalf("batch to a missing topic: %+v", out)
	}
}

func TestPermanentFailures(t *testing.T) {
	srv, admin := server(t)
	topic, _ := createTopic(t, admin, false)
	typ := newType(t, destination.Env{Dial: (&dialer{}).dial})
	msg := brokertest.SignedMessage(t, "msg_"+suffix(t), "order.created", []byte(`{}`))

	t.Run("no such topic", func(t *testing.T) {
		s := open(t, typ, emulatorSettings(srv.Addr, "nope-"+suffix(t)))
		out := s.Send(ctxT(t), msg)
		if out.Class != destination.Permanent || out.ErrorKind != destination.KindNoRoute || !strings.Contains(out.Error, "nope-") {
			t.Fatalf("%+v", out)
		}
	})
	t.Run("too large for Pub/Sub", func(t *testing.T) {
		s := open(t, typ, emulatorSettings(srv.Addr, topic))
		big := brokertest.SignedMessage(t, "msg_"+suffix(t), "order.created", bytes.Repeat([]byte("x"), int(gpubsub.MaxPublishRequestBytes)+1))
		out := s.Send(ctxT(t), big)
		if out.Class != destination.Permanent || out.ErrorKind != destination.KindTooLarge {
			t.Fatalf("%+v", out)
		}
	})
	// The server's own refusals, as Google's service answers them, programmed into pstest.
	refusals := []struct {
		name  string
		err   error
		class destination.Class
		kind  string
	}{
		{"size refused by the server", status.Error(codes.InvalidArgument, "Request payload size exceeds the limit: 10485760 bytes."), destination.Permanent, destination.KindTooLarge},
		{"permission denied", status.Error(codes.PermissionDenied, "User not authorized to perform this action."), destination.Permanent, destination.KindDenied},
		{"unauthenticated", status.Error(codes.Unauthenticated, "Request had invalid authentication credentials."), destination.Permanent, destination.KindDenied},
		{"quota", status.Error(codes.ResourceExhausted, "Quota exceeded"), destination.Retryable, destination.KindBrokerBusy},
		{"deadline", status.Error(codes.DeadlineExceeded, "deadline exceeded"), destination.Retryable, destination.KindTimeout},
	}
	for _, r := range refusals {
		t.Run(r.name, func(t *testing.T) {
			srv.SetAutoPublishResponse(false)
			srv.ResetPublishResponses(1)
			srv.AddPublishResponse(nil, r.err)
			defer srv.SetAutoPublishResponse(true)
			s := open(t, typ, emulatorSettings(srv.Addr, topic))
			out := s.Send(ctxT(t), msg)
			if out.Class != r.class || out.ErrorKind != r.kind {
				t.Fatalf("%+v, want %s %s", out, r.class, r.kind)
			}
		})
	}
}

func TestCheck(t *testing.T) {
	typ := newType(t, destination.Env{Dial: (&dialer{}).dial})
	key := `{"type":"service_account","client_email":"herald@p.iam.gserviceaccount.com","private_key":"-----BEGIN PRIVATE KEY-----\nx\n-----END PRIVATE KEY-----\n"}`

	norm, errs := typ.Check(json.RawMessage(`{"project":"my-project","topic":"projects/my-project/topics/orders","credentials_json":` + strconv.Quote(key) + `}`))
	if errs != nil {
		t.Fatalf("valid settings refused: %v", errs[0])
	}
	var s Settings
	if err := json.Unmarshal(norm, &s); err != nil {
		t.Fatal(err)
	}
	if s.Topic != "orders" || s.OrderingKey != "" || s.CredentialsJSON != key {
		t.Fatalf("normalised %+v", s)
	}
	if _, errs := typ.Check(json.RawMessage(`{"project":"my-project","topic":"orders","endpoint":"127.0.0.1:8085"}`)); errs != nil {
		t.Fatalf("emulator without credentials refused: %v", errs[0])
	}
	if got := typ.Secrets(); len(got) != 1 || got[0] != "credentials_json" {
		t.Fatalf("secrets %v", got)
	}

	cases := []struct {
		name, settings, field, contains string
	}{
		{"not an object", `[1]`, "", "JSON object"},
		{"unknown field", `{"project":"my-project","topic":"orders","endpoint":"h:1","subject":"x"}`, "subject", "unknown setting"},
		{"wrong type", `{"project":5,"topic":"orders","endpoint":"h:1"}`, "project", "must be a string"},
		{"project missing", `{"topic":"orders","endpoint":"h:1"}`, "project", "required"},
		{"project invalid", `{"project":"My Project","topic":"orders","endpoint":"h:1"}`, "project", "not a Google Cloud project id"},
		{"topic missing", `{"project":"my-project","endpoint":"h:1"}`, "topic", "required"},
		{"topic invalid", `{"project":"my-project","topic":"9x","endpoint":"h:1"}`, "topic", "not a topic id"},
		{"topic goog", `{"project":"my-project","topic":"google-x","endpoint":"h:1"}`, "topic", "goog"},
		{"topic of another project", `{"project":"my-project","topic":"projects/other-proj/topics/orders","endpoint":"h:1"}`, "topic", "other-proj"},
		{"ordering key", `{"project":"my-project","topic":"orders","endpoint":"h:1","ordering_key":"subject"}`, "ordering_key", `"id"`},
		{"endpoint with scheme", `{"project":"my-project","topic":"orders","endpoint":"http://h:1"}`, "endpoint", "host:port"},
		{"endpoint with password", `{"project":"my-project","topic":"orders","endpoint":"user:pw@h:1"}`, "endpoint", "credentials"},
		{"endpoint without port", `{"project":"my-project","topic":"orders","endpoint":"h"}`, "endpoint", "host:port"},
		{"endpoint bad port", `{"project":"my-project","topic":"orders","endpoint":"h:99999"}`, "endpoint", "port"},
		{"credentials missing", `{"project":"my-project","topic":"orders"}`, "credentials_json", "required"},
		{"credentials not json", `{"project":"my-project","topic":"orders","credentials_json":"secret-not-json"}`, "credentials_json", "not JSON"},
		{"credentials not a service account", `{"project":"my-project","topic":"orders","credentials_json":"{\"type\":\"external_account\",\"credential_source\":{\"url\":\"http://169.254.169.254/\"}}"}`, "credentials_json", "service account"},
		{"credentials incomplete", `{"project":"my-project","topic":"orders","credentials_json":"{\"type\":\"service_account\"}"}`, "credentials_json", "complete"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, errs := typ.Check(json.RawMessage(c.settings))
			var found *destination.FieldError
			for _, e := range errs {
				if e.Field == c.field {
					found = e
				}
			}
			if found == nil {
				t.Fatalf("no error at field %q: %v", c.field, errs)
			}
			if !strings.Contains(found.Message, c.contains) {
				t.Fatalf("error at %q is %q, want it to mention %q", c.field, found.Message, c.contains)
			}
			if c.field == "credentials_json" && found.Value != nil {
				t.Fatalf("a credentials error echoes the value")
			}
			if strings.Contains(found.Message, "secret-not-json") {
				t.Fatal("the secret appears in the message")
			}
		})
	}
}

func TestRefusingDialerIsBlocked(t *testing.T) {
	srv, admin := server(t)
	topic, _ := createTopic(t, admin, false)
	var attempts atomic.Int64
	refuse := func(_ context.Context, _, addr string) (net.Conn, error) {
		attempts.Add(1)
		return nil, &httpsend.BlockedError{Host: addr, Addr: netip.MustParseAddr("127.0.0.1"), Reason: "loopback"}
	}
	typ := newType(t, destination.Env{Dial: refuse, InternalDial: refuse})
	s := open(t, typ, emulatorSettings(srv.Addr, topic))
	out := s.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "order.created", []byte(`{}`)))
	if out.Class != destination.Permanent || out.ErrorKind != destination.KindBlocked {
		t.Fatalf("%+v", out)
	}
	if attempts.Load() == 0 {
		t.Fatal("the guarded dialer was not used")
	}
	if n := len(srv.Messages()); n != 0 {
		t.Fatalf("%d messages reached the server through a refused dialer", n)
	}
}

func TestInternalUsesInternalDialer(t *testing.T) {
	srv, admin := server(t)
	topic, _ := createTopic(t, admin, false)
	ordinary, internal := &dialer{}, &dialer{}
	typ := newType(t, destination.Env{Dial: ordinary.dial, InternalDial: internal.dial})
	tg := settings(t, emulatorSettings(srv.Addr, topic))
	tg.Internal = true
	s, err := typ.Open(tg)
	if err != nil {
		t.Fatal(err)
	}
	if out := s.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`))); out.Class != destination.Success {
		t.Fatalf("%+v", out)
	}
	if internal.dials.Load() == 0 || ordinary.dials.Load() != 0 {
		t.Fatalf("internal endpoint dialed %d internal, %d ordinary", internal.dials.Load(), ordinary.dials.Load())
	}
}

func TestPoolSharedBoundedAndIdle(t *testing.T) {
	srv, admin := server(t)
	topicA, _ := createTopic(t, admin, false)
	topicB, _ := createTopic(t, admin, false)
	d := &dialer{}
	typ := newType(t, destination.Env{Dial: d.dial, MaxConnections: 1, IdleTimeout: 300 * time.Millisecond})

	a := open(t, typ, emulatorSettings(srv.Addr, topicA))
	b := open(t, typ, emulatorSettings(srv.Addr, topicB))
	for _, s := range []destination.Sender{a, b, a, b} {
		if out := s.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`))); out.Class != destination.Success {
			t.Fatalf("%+v", out)
		}
	}
	pooled := typ.pool.Len()
	if pooled != 1 || d.dials.Load() != 1 {
		t.Fatalf("two senders to one server: %d pooled clients, %d connections; want 1, 1", pooled, d.dials.Load())
	}

	// Another project on the same server is another client: over the limit of 1 while the one
	// client is in use (as by an attempt in flight). (An idle client would be closed to make
	// room: the shared pool's own tests cover that.)
	inUse, put, err := typ.acquire(ctxT(t), a.(*Sender).key)
	if err != nil {
		t.Fatal(err)
	}
	other := emulatorSettings(srv.Addr, topicA)
	other["project"] = "other-project"
	c := open(t, typ, other)
	out := c.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`)))
	if out.Class != destination.Retryable || out.ErrorKind != destination.KindBrokerBusy || !strings.Contains(out.Error, "maximum of 1") {
		t.Fatalf("over the connection limit: %+v", out)
	}
	if n := d.dials.Load(); n != 1 {
		t.Fatalf("%d connections: the limit must refuse before dialling", n)
	}
	typ.release(inUse, put, false)

	// Unused, the client is closed after the idle timeout, and the next attempt reconnects.
	deadline := time.Now().Add(15 * time.Second)
	for {
		if typ.pool.Len() == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("idle client not closed")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if out := c.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`))); out.ErrorKind == destination.KindBrokerBusy {
		t.Fatalf("the limit still counts a closed client: %+v", out)
	}
}

func TestServerRestart(t *testing.T) {
	port := brokertest.FreePort(t)
	addr := "127.0.0.1:" + strconv.Itoa(port)
	srv := pstest.NewServerWithAddress(addr)
	admin := adminClient(t, addr)
	topic, _ := createTopic(t, admin, false)
	typ := newType(t, destination.Env{Dial: (&dialer{}).dial})
	s := open(t, typ, emulatorSettings(addr, topic))
	send := func() destination.Outcome {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		return s.Send(ctx, brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`)))
	}
	if out := send(); out.Class != destination.Success {
		t.Fatalf("before the restart: %+v", out)
	}
	if err := srv.Close(); err != nil {
		t.Fatal(err)
	}
	for i := range 3 {
		if out := send(); out.Class != destination.Retryable {
			t.Fatalf("attempt %d while the server is down: %+v", i, out)
		}
	}
	// The same port again; pstest keeps its topics in memory, so the new one is created anew.
	srv2 := pstest.NewServerWithAddress(addr)
	t.Cleanup(func() { _ = srv2.Close() })
	admin2 := adminClient(t, addr)
	if _, err := admin2.TopicAdminClient.CreateTopic(context.Background(), &pubsubpb.Topic{Name: "projects/" + testProject + "/topics/" + topic}); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		out := send()
		if out.Class == destination.Success {
			break
		}
		if out.Class != destination.Retryable {
			t.Fatalf("after the restart: %+v", out)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the sender did not recover after the restart: %+v", out)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if n := len(srv2.Messages()); n == 0 {
		t.Fatal("success reported, but the restarted server holds no message")
	}
}

func TestClosedTypeIsRetryable(t *testing.T) {
	srv, admin := server(t)
	topic, _ := createTopic(t, admin, false)
	typ := New(destination.Env{Dial: (&dialer{}).dial})
	s := open(t, typ, emulatorSettings(srv.Addr, topic))
	if out := s.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`))); out.Class != destination.Success {
		t.Fatalf("%+v", out)
	}
	if err := typ.Close(); err != nil {
		t.Fatal(err)
	}
	if out := s.Send(ctxT(t), brokertest.SignedMessage(t, "msg_"+suffix(t), "a.b", []byte(`{}`))); out.Class != destination.Retryable {
		t.Fatalf("after Close: %+v", out)
	}
}
