package kafka

import (
	"bytes"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

func TestDeliveryVerifiedByConsumer(t *testing.T) {
	c := startCluster(t)
	topic := "orders-" + suffix()
	createTopic(t, c, topic, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})

	var msgs []*destination.Message
	for i := range 3 {
		id := fmt.Sprintf("evt_%d_%s", i, suffix())
		m := brokertest.SignedMessage(t, id, "order.created", envelope(id, "order.created", fmt.Sprintf(`{"n":%d}`, i)))
		msgs = append(msgs, m)
		o := snd.Send(ctxTimeout(t, 20*time.Second), m)
		if o.Class != destination.Success {
			t.Fatalf("Send %d: %+v", i, o)
		}
		want := fmt.Sprintf("topic %s partition 0 offset %d", topic, i)
		if string(o.Response) != want || o.Latency <= 0 {
			t.Fatalf("Send %d: response %q latency %v, want %q", i, o.Response, o.Latency, want)
		}
	}

	wh, err := standardwebhooks.NewWebhook(brokertest.Secret)
	if err != nil {
		t.Fatal(err)
	}
	recs := consume(t, c, topic, 3)
	for i, r := range recs {
		m := msgs[i]
		if !bytes.Equal(r.Value, m.Body) {
			t.Errorf("record %d value %s, want %s", i, r.Value, m.Body)
		}
		if string(r.Key) != m.ID {
			t.Errorf("record %d key %q, want the event id %q", i, r.Key, m.ID)
		}
		h := headers(r)
		if err := wh.Verify(r.Value, h); err != nil {
			t.Errorf("record %d: Standard Webhooks verification failed: %v", i, err)
		}
		for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-type", "traceparent"} {
			if got := h.Get(k); got != m.Header.Get(k) {
				t.Errorf("record %d header %s = %q, want %q", i, k, got, m.Header.Get(k))
			}
		}
		if got := h.Get(destination.HeaderEventType); got != "order.created" {
			t.Errorf("record %d herald-event-type = %q", i, got)
		}
		for _, rh := range r.Headers {
			if rh.Key != strings.ToLower(rh.Key) {
				t.Errorf("record %d header name %q is not lower case", i, rh.Key)
			}
		}
	}

	// A tampered body fails verification: the consumer's check is real.
	bad := append([]byte(nil), recs[0].Value...)
	bad[len(bad)-2] = '9'
	if err := wh.Verify(bad, headers(recs[0])); err == nil {
		t.Fatal("a tampered body verified")
	}
}

func TestRecordKey(t *testing.T) {
	c := startCluster(t)
	typ := newType(t, brokertest.NewDialer(), nil)
	cases := []struct {
		key, data, want string
	}{
		{"id", `{"customer":{"id":"c_1"}}`, "<id>"},
		{"type", `{"customer":{"id":"c_1"}}`, "invoice.paid"},
		{"data.customer.id", `{"customer":{"id":"c_1"}}`, "c_1"},
		{"data.customer.id", `{"customer":{"id":42}}`, "42"},
		{"data.customer.id", `{"customer":{"name":"x"}}`, "<id>"},   // missing: the event id
		{"data.customer.id", `{"customer":{"id":{"a":1}}}`, "<id>"}, // an object: the event id
		{"data.customer.id", `{"customer":{"id":null}}`, "<id>"},    // null: the event id
	}
	for i, tc := range cases {
		topic := "keys-" + suffix()
		createTopic(t, c, topic, nil)
		snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic, "key": tc.key})
		id := "evt_" + suffix()
		o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, id, "invoice.paid", envelope(id, "invoice.paid", tc.data)))
		if o.Class != destination.Success {
			t.Fatalf("case %d: %+v", i, o)
		}
		want := strings.ReplaceAll(tc.want, "<id>", id)
		if got := string(consume(t, c, topic, 1)[0].Key); got != want {
			t.Errorf("case %d (key %s, data %s): record key %q, want %q", i, tc.key, tc.data, got, want)
		}
	}
}

func TestCompressionAndSASL(t *testing.T) {
	c := startCluster(t, kfake.EnableSASL(), kfake.Superuser("SCRAM-SHA-512", "herald", "s3cret-pw"))
	typ := newType(t, brokertest.NewDialer(), nil)
	auth := kgo.SASL(scram.Auth{User: "herald", Pass: "s3cret-pw"}.AsSha512Mechanism())
	for _, comp := range []string{"gzip", "snappy", "lz4", "zstd"} {
		topic := "compressed-" + comp + "-" + suffix()
		createTopic(t, c, topic, nil, auth)
		snd := open(t, typ, map[string]any{
			"brokers": c.ListenAddrs(), "topic": topic, "compression": comp,
			"sasl": "scram-sha-512", "username": "herald", "password": "s3cret-pw",
		})
		id := "evt_" + suffix()
		body := envelope(id, "a.b", `{"text":"`+strings.Repeat("compress me ", 100)+`"}`)
		if o := snd.Send(ctxTimeout(t, 20*time.Second), brokertest.SignedMessage(t, id, "a.b", body)); o.Class != destination.Success {
			t.Fatalf("%s: %+v", comp, o)
		}
		r := consume(t, c, topic, 1, auth)[0]
		if !bytes.Equal(r.Value, body) {
			t.Fatalf("%s: value differs", comp)
		}
	}
}

func TestPermanentFailures(t *testing.T) {
	c := startCluster(t, kfake.BrokerConfigs(map[string]string{"message.max.bytes": "4096"}))
	typ := newType(t, brokertest.NewDialer(), nil)

	t.Run("no such topic", func(t *testing.T) {
		snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": "missing-" + suffix()})
		o := snd.Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_1", "a.b", []byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute || !strings.Contains(o.Error, "does not exist") {
			t.Fatalf("outcome %+v, want permanent no_route", o)
		}
	})
	t.Run("too large for the broker", func(t *testing.T) {
		topic := "large-" + suffix()
		createTopic(t, c, topic, nil)
		snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
		o := snd.Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_2", "a.b", bytes.Repeat([]byte("x"), 10_000)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindTooLarge {
			t.Fatalf("outcome %+v, want permanent message_too_large", o)
		}
		// A small message to the same topic still goes.
		if o := snd.Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_3", "a.b", []byte(`{}`))); o.Class != destination.Success {
			t.Fatalf("small message after a large one: %+v", o)
		}
	})
	t.Run("too large for the client", func(t *testing.T) {
		topic := "huge-" + suffix()
		createTopic(t, c, topic, nil)
		snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
		o := snd.Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_4", "a.b", bytes.Repeat([]byte("x"), 2<<20)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindTooLarge {
			t.Fatalf("outcome %+v, want permanent message_too_large", o)
		}
	})
}

func TestDenied(t *testing.T) {
	topic := "secured-" + suffix()
	c := startCluster(t, kfake.EnableSASL(), kfake.EnableACLs(), kfake.SeedTopics(1, topic),
		kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"),
		kfake.User("SCRAM-SHA-256", "reader", "reader-pw",
			kfake.ACL{Resource: kmsg.ACLResourceTypeCluster, Name: "kafka-cluster", Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationIdempotentWrite, Allow: true},
			kfake.ACL{Resource: kmsg.ACLResourceTypeTopic, Name: topic, Pattern: kmsg.ACLResourcePatternTypeLiteral, Operation: kmsg.ACLOperationDescribe, Allow: true},
		),
	)
	typ := newType(t, brokertest.NewDialer(), nil)
	base := map[string]any{"brokers": c.ListenAddrs(), "topic": topic, "sasl": "scram-sha-256"}
	with := func(user, pw string) map[string]any {
		m := map[string]any{"username": user, "password": pw}
		for k, v := range base {
			m[k] = v
		}
		return m
	}

	t.Run("allowed", func(t *testing.T) {
		o := open(t, typ, with("admin", "admin-pw")).Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_1", "a.b", []byte(`{}`)))
		if o.Class != destination.Success {
			t.Fatalf("superuser: %+v", o)
		}
	})
	t.Run("no write permission", func(t *testing.T) {
		o := open(t, typ, with("reader", "reader-pw")).Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_2", "a.b", []byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied {
			t.Fatalf("outcome %+v, want permanent access_denied", o)
		}
	})
	t.Run("wrong password", func(t *testing.T) {
		// Kafka answers a failed SASL exchange with SASL_AUTHENTICATION_FAILED; kfake closes the
		// connection instead, so a cluster of this test answers as Kafka does.
		c2 := startCluster(t, kfake.EnableSASL(), kfake.SeedTopics(1, topic), kfake.Superuser("SCRAM-SHA-256", "admin", "admin-pw"))
		c2.ControlKey(int16(kmsg.SASLAuthenticate), func(req kmsg.Request) (kmsg.Response, error, bool) {
			c2.KeepControl()
			resp := req.(*kmsg.SASLAuthenticateRequest).ResponseKind().(*kmsg.SASLAuthenticateResponse)
			resp.ErrorCode = kerr.SaslAuthenticationFailed.Code
			resp.ErrorMessage = kmsg.StringPtr("Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-256")
			return resp, nil, true
		})
		s := with("admin", "wrong-pw")
		s["brokers"] = c2.ListenAddrs()
		o := open(t, typ, s).Send(ctxTimeout(t, 30*time.Second), brokertest.SignedMessage(t, "evt_3", "a.b", []byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied {
			t.Fatalf("outcome %+v, want permanent access_denied", o)
		}
		if strings.Contains(o.Error, "wrong-pw") {
			t.Fatalf("the password is in the error: %q", o.Error)
		}
	})
}

func TestRefusingDialer(t *testing.T) {
	c := startCluster(t)
	topic := "blocked-" + suffix()
	createTopic(t, c, topic, nil)
	var mu sync.Mutex
	produced := 0
	c.ControlKey(int16(kmsg.Produce), func(kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		mu.Lock()
		produced++
		mu.Unlock()
		return nil, nil, false
	})
	d := brokertest.Refusing()
	typ := newType(t, d, nil)
	snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
	o := snd.Send(ctxTimeout(t, 10*time.Second), brokertest.SignedMessage(t, "evt_1", "a.b", []byte(`{}`)))
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindBlocked {
		t.Fatalf("outcome %+v, want permanent blocked_destination", o)
	}
	if d.Dials() == 0 {
		t.Fatal("the dialer was never called")
	}
	mu.Lock()
	defer mu.Unlock()
	if produced != 0 {
		t.Fatalf("the cluster received %d produce requests", produced)
	}
	if n := topicEnd(t, c, topic); n != 0 {
		t.Fatalf("topic holds %d records", n)
	}
}

func TestBatch(t *testing.T) {
	c := startCluster(t)
	topic := "batch-" + suffix()
	createTopic(t, c, topic, nil)
	typ := newType(t, brokertest.NewDialer(), nil)
	snd := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": topic})
	var ms []*destination.Message
	for i := range 10 {
		id := fmt.Sprintf("evt_%d", i)
		ms = append(ms, brokertest.SignedMessage(t, id, "a.b", envelope(id, "a.b", fmt.Sprintf(`{"i":%d}`, i))))
	}
	o := snd.SendBatch(ctxTimeout(t, 30*time.Second), ms)
	if o.Class != destination.Success || string(o.Response) != "topic "+topic+" partition 0 offsets 0-9" {
		t.Fatalf("batch: %+v (%s)", o, o.Response)
	}
	wh, _ := standardwebhooks.NewWebhook(brokertest.Secret)
	for i, r := range consume(t, c, topic, 10) {
		if !bytes.Equal(r.Value, ms[i].Body) {
			t.Fatalf("record %d out of order or altered: %s", i, r.Value)
		}
		if err := wh.Verify(r.Value, headers(r)); err != nil {
			t.Fatalf("record %d: %v", i, err)
		}
	}

	// A batch to a missing topic fails as a whole, permanently.
	bad := open(t, typ, map[string]any{"brokers": c.ListenAddrs(), "topic": "missing-" + suffix()})
	if o := bad.SendBatch(ctxTimeout(t, 30*time.Second), ms[:2]); o.Class != destination.Permanent || o.ErrorKind != destination.KindNoRoute {
		t.Fatalf("batch to a missing topic: %+v", o)
	}
}
