package node_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// jsType is a small broker source type for the runner's tests, reading a JetStream stream with
// nats.go directly (the NATS source type of internal/broker/nats is built separately).
type jsType struct{}

type jsSettings struct {
	URL    string `json:"url"`
	Stream string `json:"stream"`
	// Password is only stored and shown (or not): the test servers need none.
	Password string `json:"password,omitempty"`
}

func (jsType) Name() string      { return "jstest" }
func (jsType) Secrets() []string { return []string{"password"} }

func (jsType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	var s jsSettings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		return nil, []*destination.FieldError{{Field: "url", Message: err.Error()}}
	}
	var errs []*destination.FieldError
	if s.URL == "" {
		errs = append(errs, &destination.FieldError{Field: "url", Message: "the NATS server URL is required"})
	}
	if s.Stream == "" {
		errs = append(errs, &destination.FieldError{Field: "stream", Message: "the stream is required"})
	}
	out, _ := json.Marshal(s)
	return out, errs
}

func (jsType) Open(ctx context.Context, t source.Target) (source.Consumer, error) {
	var s jsSettings
	if err := json.Unmarshal(t.Settings, &s); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(s.URL, nats.NoReconnect(), nats.Timeout(2*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, err
	}
	c, err := js.CreateOrUpdateConsumer(ctx, s.Stream, jetstream.ConsumerConfig{Durable: t.Group, AckPolicy: jetstream.AckExplicitPolicy,
		AckWait: 30 * time.Second, MaxAckPending: 1000})
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("consumer on stream %s: %w", s.Stream, err)
	}
	return &jsConsumer{nc: nc, c: c}, nil
}

type jsConsumer struct {
	nc *nats.Conn
	c  jetstream.Consumer
}

func (c *jsConsumer) Fetch(ctx context.Context, max int, wait time.Duration) (source.Batch, error) {
	if c.nc.IsClosed() {
		return nil, errors.New("connection closed")
	}
	msgs, err := c.c.Fetch(max, jetstream.FetchMaxWait(wait))
	if err != nil {
		return nil, err
	}
	b := &jsBatch{}
	limit := time.NewTimer(wait + 5*time.Second)
	defer limit.Stop()
	ch := msgs.Messages()
	for {
		var m jetstream.Msg
		var ok bool
		select {
		case m, ok = <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-limit.C:
			return nil, errors.New("fetch did not end")
		}
		if !ok {
			break
		}
		meta, err := m.Metadata()
		if err != nil {
			return nil, err
		}
		b.raw = append(b.raw, m)
		b.msgs = append(b.msgs, source.Message{Body: m.Data(), Header: m.Headers(), Subject: m.Subject(),
			ID: fmt.Sprintf("%s:%d", meta.Stream, meta.Sequence.Stream), Time: meta.Timestamp})
	}
	if err := msgs.Error(); err != nil && !errors.Is(err, nats.ErrTimeout) && !errors.Is(err, jetstream.ErrNoMessages) {
		return nil, err
	}
	if c.nc.IsClosed() && len(b.msgs) == 0 {
		return nil, errors.New("connection lost")
	}
	return b, nil
}

func (c *jsConsumer) Close() error { c.nc.Close(); return nil }

type jsBatch struct {
	raw  []jetstream.Msg
	msgs []source.Message
}

func (b *jsBatch) Messages() []source.Message { return b.msgs }

func (b *jsBatch) Ack(ctx context.Context) error {
	for _, m := range b.raw {
		if err := m.DoubleAck(ctx); err != nil {
			return err
		}
	}
	return nil
}

func (b *jsBatch) Nak(_ context.Context, delay time.Duration) error {
	for _, m := range b.raw {
		if err := m.NakWithDelay(delay); err != nil {
			return err
		}
	}
	return nil
}
