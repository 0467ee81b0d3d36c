package natsdest

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/broker/brokertest"
	"github.com/heraldhq/herald/internal/destination"
)

// Tests on private nats-server instances: stopping a broker, or one with authentication.

func TestBrokerRestartedMidStream(t *testing.T) {
	sharedURL(t) // the gate for broker tests
	srv := startServer(t, "")
	_, js := admin(t, srv.url())
	stream, subject := newStream(t, js, nil)
	d := brokertest.NewDialer()
	typ := newType(t, d, nil)
	s := open(t, typ, map[string]any{"url": srv.url(), "subject": subject, "stream": stream})
	bs := s.(destination.BatchSender)

	var sent []string
	send := func() destination.Outcome {
		id := "msg_" + randSuffix(t)
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		o := s.Send(ctx, brokertest.SignedMessage(t, id, "order.created", []byte(`{"id":"`+id+`"}`)))
		if o.Class == destination.Success {
			sent = append(sent, id)
		}
		return o
	}
	for range 3 {
		if o := send(); o.Class != destination.Success {
			t.Fatalf("Send before the restart = %+v", o)
		}
	}

	srv.stop()
	// Every attempt while the broker is down is Retryable (the first may find the connection
	// just lost, the next ones fail to dial), never Permanent.
	for i := range 3 {
		o := send()
		if o.Class != destination.Retryable {
			t.Fatalf("Send %d with the broker down = %+v, want Retryable", i, o)
		}
		t.Logf("broker down, attempt %d: %s: %s", i, o.ErrorKind, o.Error)
		if o.Error == "" || o.ErrorKind == "" {
			t.Errorf("Retryable outcome without a reason: %+v", o)
		}
	}
	if o := bs.SendBatch(sendCtx(t), []*destination.Message{brokertest.SignedMessage(t, "msg_b", "a", []byte(`{}`))}); o.Class != destination.Retryable {
		t.Fatalf("SendBatch with the broker down = %+v, want Retryable", o)
	}

	srv.start() // same port, same store directory: the stream is still there
	deadline := time.Now().Add(30 * time.Second)
	var o destination.Outcome
	for {
		if o = send(); o.Class == destination.Success {
			break
		}
		if o.Class != destination.Retryable {
			t.Fatalf("Send after the restart = %+v, want Retryable until it succeeds", o)
		}
		if time.Now().After(deadline) {
			t.Fatalf("the same Sender still fails 30s after the broker came back: %+v", o)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for range 3 {
		if o := send(); o.Class != destination.Success {
			t.Fatalf("Send after the restart = %+v", o)
		}
	}
	if o := bs.SendBatch(sendCtx(t), []*destination.Message{brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`))}); o.Class != destination.Success {
		t.Fatalf("SendBatch after the restart = %+v", o)
	}
	sent = append(sent, "batch")

	_, js2 := admin(t, srv.url())
	if n := streamMsgs(t, js2, stream); n != uint64(len(sent)) {
		t.Errorf("stream holds %d messages, want the %d acknowledged ones", n, len(sent))
	}
	if n := typ.openConnections(); n != 1 {
		t.Errorf("pool holds %d connections after the restart, want 1", n)
	}
}

const authConfig = `
listen: 127.0.0.1:%PORT%
jetstream { store_dir: "%DIR%" }
authorization {
  users = [
    { user: herald, password: "pw-s3cret-Zq9",
      permissions: { publish: ["allowed.>", "$JS.API.>"], subscribe: ["_INBOX.>"] } }
    { user: admin, password: "admin-pw" }
  ]
}
`

func TestAuthentication(t *testing.T) {
	sharedURL(t)
	srv := startServer(t, authConfig)
	_, js := admin(t, srv.url(), nats.UserInfo("admin", "admin-pw"))
	// newStream's subjects are herald.test.*, which the user herald may not publish to.
	_, forbidden := newStream(t, js, nil)
	allowedSubject := "allowed." + randSuffix(t)
	if _, err := js.CreateStream(sendCtx(t), jetstream.StreamConfig{Name: "ALLOWED_" + randSuffix(t), Subjects: []string{allowedSubject}}); err != nil {
		t.Fatal(err)
	}
	typ := newType(t, brokertest.NewDialer(), nil)

	t.Run("wrong password", func(t *testing.T) {
		s := open(t, typ, map[string]any{"url": srv.url(), "subject": allowedSubject, "username": "herald", "password": "wrong-Pw-777"})
		o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied {
			t.Fatalf("Send = %+v, want Permanent access_denied", o)
		}
		if strings.Contains(o.Error, "wrong-Pw-777") {
			t.Errorf("the password leaked into the Error: %q", o.Error)
		}
	})

	t.Run("token where users are configured", func(t *testing.T) {
		s := open(t, typ, map[string]any{"url": srv.url(), "subject": allowedSubject, "token": "tok-Secret-42"})
		o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied || strings.Contains(o.Error, "tok-Secret-42") {
			t.Fatalf("Send = %+v, want Permanent access_denied without the token", o)
		}
	})

	good := map[string]any{"url": srv.url(), "username": "herald", "password": "pw-s3cret-Zq9"}
	with := func(subject string) map[string]any {
		m := map[string]any{"subject": subject}
		for k, v := range good {
			m[k] = v
		}
		return m
	}

	t.Run("allowed subject", func(t *testing.T) {
		o := open(t, typ, with(allowedSubject)).Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
		if o.Class != destination.Success {
			t.Fatalf("Send = %+v", o)
		}
	})

	t.Run("subject the user may not publish to", func(t *testing.T) {
		// The server reports a permission violation asynchronously; the attempt must not wait
		// for its whole timeout to learn it, and must say so.
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		o := open(t, typ, with(forbidden)).Send(ctx, brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
		if o.Class != destination.Permanent || o.ErrorKind != destination.KindDenied {
			t.Fatalf("Send = %+v, want Permanent access_denied", o)
		}
		t.Logf("denied: %s", o.Error)
		if !strings.Contains(strings.ToLower(o.Error), "permissions violation") || strings.Contains(o.Error, "pw-s3cret-Zq9") {
			t.Errorf("Error = %q", o.Error)
		}
		if ctx.Err() != nil {
			t.Errorf("the attempt waited for its whole timeout")
		}
	})
}

func TestTLSRequiredButNotOffered(t *testing.T) {
	sharedURL(t)
	srv := startServer(t, "")
	typ := newType(t, brokertest.NewDialer(), nil)
	s := open(t, typ, map[string]any{"url": srv.url(), "subject": "herald.tls", "tls": true})
	o := s.Send(sendCtx(t), brokertest.SignedMessage(t, "msg_"+randSuffix(t), "a", []byte(`{}`)))
	if o.Class != destination.Permanent || o.ErrorKind != destination.KindTLS {
		t.Fatalf("Send = %+v, want Permanent tls", o)
	}
	if !strings.Contains(o.Error, "tls") {
		t.Errorf("Error = %q, want it to name the tls setting", o.Error)
	}
}
