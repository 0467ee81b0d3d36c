// Package redisstream is the Redis Streams destination type ("redis"): each attempt is an XADD
// of the message to the endpoint's stream, with the body and the Standard Webhooks headers as the
// entry's fields, and the entry id the server returns as the acknowledgement.
package redisstream

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/destination"
)

// Name is the endpoint type.
const Name = "redis"

// FieldBody is the entry field holding the message body; every header of the message is a field
// of its own, its name in lower case, and destination.HeaderEventType holds the event type.
const FieldBody = "body"

// maxBodyBytes is Redis's largest bulk string (proto-max-bulk-len's default): a larger body can
// never be taken, so it is refused without being sent.
const maxBodyBytes = 512 << 20

// minMaxBulk is the smallest proto-max-bulk-len a server may be configured with: a smaller body
// fits whatever the server's limit.
const minMaxBulk = 1 << 20

// Type is the Redis Streams destination type. It owns the node's pooled Redis clients.
type Type struct {
	env  destination.Env
	pool *pool
}

var (
	_ destination.Type        = (*Type)(nil)
	_ destination.Sender      = (*Sender)(nil)
	_ destination.BatchSender = (*Sender)(nil)
)

// New returns the type; Close releases its connections.
func New(env destination.Env) *Type {
	return &Type{env: env, pool: newPool(env)}
}

// Name is "redis".
func (t *Type) Name() string { return Name }

// Secrets names the password.
func (t *Type) Secrets() []string { return []string{"password"} }

// Check validates the settings field by field and returns them with their defaults.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := check(raw)
	return destination.EncodeSettings(s, errs)
}

// Open returns a sender for the endpoint; it connects at the first attempt.
func (t *Type) Open(tg destination.Target) (destination.Sender, error) {
	s, errs := check(tg.Settings)
	if errs != nil {
		return nil, fmt.Errorf("redis endpoint %s: invalid settings: %w", tg.EndpointID, errs[0])
	}
	return &Sender{
		pool:   t.pool,
		key:    s.key(tg.Internal),
		stream: s.Stream,
		maxLen: s.maxLen(),
	}, nil
}

// Close closes every pooled connection.
func (t *Type) Close() error { return t.pool.close() }

// Sender adds an endpoint's messages to its stream.
type Sender struct {
	pool   *pool
	key    poolKey
	stream string
	maxLen int64
}

// Send XADDs one message and waits for the entry id.
func (s *Sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	start := time.Now()
	e, put, err := s.pool.lease(ctx, s.key)
	if err != nil {
		return s.failed(err, start)
	}
	defer put()
	if o, ok := s.tooLarge(ctx, e, m, start); !ok {
		return o
	}
	id, err := e.client.XAdd(ctx, s.args(m)).Result()
	if err != nil {
		return s.failed(err, start)
	}
	return destination.Outcome{
		Class:    destination.Success,
		Latency:  time.Since(start),
		Response: []byte("stream " + s.stream + " id " + id),
	}
}

// SendBatch XADDs the messages in one pipeline and waits for every entry id. Any failure fails
// the batch with the worst class among the failures (a consumer deduplicates the entries that
// were added by webhook-id when the batch is retried).
func (s *Sender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	if len(ms) == 0 {
		return destination.Outcome{Class: destination.Success, Latency: time.Since(start)}
	}
	e, put, err := s.pool.lease(ctx, s.key)
	if err != nil {
		return s.failed(err, start)
	}
	defer put()
	for i, m := range ms {
		if o, ok := s.tooLarge(ctx, e, m, start); !ok {
			o.Error = fmt.Sprintf("message %d of %d: %s", i+1, len(ms), o.Error)
			return o
		}
	}
	cmds := make([]*redis.StringCmd, len(ms))
	_, perr := e.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for i, m := range ms {
			cmds[i] = p.XAdd(ctx, s.args(m))
		}
		return nil
	})
	var worst *destination.Outcome
	worstAt := 0
	for i, c := range cmds {
		if c.Err() == nil {
			continue
		}
		o := s.failed(c.Err(), start)
		if worst == nil || severity(o.Class) > severity(worst.Class) {
			worst, worstAt = &o, i
		}
	}
	if worst == nil && perr != nil {
		o := s.failed(perr, start)
		worst = &o
	}
	if worst != nil {
		worst.Latency = time.Since(start)
		worst.Error = fmt.Sprintf("message %d of %d: %s", worstAt+1, len(ms), worst.Error)
		return *worst
	}
	first, last := cmds[0].Val(), cmds[len(cmds)-1].Val()
	return destination.Outcome{
		Class:    destination.Success,
		Latency:  time.Since(start),
		Response: fmt.Appendf(nil, "stream %s ids %s..%s (%d messages)", s.stream, first, last, len(ms)),
	}
}

func severity(c destination.Class) int {
	switch c {
	case destination.Success:
		return 0
	case destination.Retryable:
		return 1
	case destination.Gone:
		return 2
	}
	return 3
}

// tooLarge refuses a body larger than the server's largest value (its proto-max-bulk-len when
// the last connection could read it, else Redis's default of 512 MiB) without sending it.
func (s *Sender) tooLarge(ctx context.Context, e *entry, m *destination.Message, start time.Time) (destination.Outcome, bool) {
	if len(m.Body) > minMaxBulk && !e.asked.Load() {
		// No connection has asked yet, and the body may be over the server's limit: connect
		// first (a failure here is the XADD's to report).
		_ = e.client.Ping(ctx).Err()
	}
	limit, known := e.maxBulk.Load(), true
	if limit <= 0 {
		limit, known = maxBodyBytes, false
	}
	if int64(len(m.Body)) <= limit {
		return destination.Outcome{}, true
	}
	msg := fmt.Sprintf("the message (%d bytes) is larger than Redis's largest value (512 MiB)", len(m.Body))
	if known {
		msg = fmt.Sprintf("the message (%d bytes) is larger than the largest value redis at %s takes (proto-max-bulk-len %d bytes)", len(m.Body), s.key.address, limit)
	}
	return destination.Outcome{
		Class:     destination.Permanent,
		ErrorKind: destination.KindTooLarge,
		Error:     msg,
		Latency:   time.Since(start),
	}, false
}

// args builds the XADD: body first, then the headers by name, then the event type. A header that
// would take the body's or the event type's field is left out.
func (s *Sender) args(m *destination.Message) *redis.XAddArgs {
	names := make([]string, 0, len(m.Header))
	for k := range m.Header {
		names = append(names, k)
	}
	slices.Sort(names)
	values := make([]any, 0, 2*len(names)+4)
	values = append(values, FieldBody, m.Body)
	for _, k := range names {
		lk := strings.ToLower(k)
		if lk == FieldBody || lk == destination.HeaderEventType || len(m.Header[k]) == 0 {
			continue
		}
		values = append(values, lk, strings.Join(m.Header[k], ", "))
	}
	values = append(values, destination.HeaderEventType, m.EventType)
	a := &redis.XAddArgs{Stream: s.stream, Values: values}
	if s.maxLen > 0 {
		a.MaxLen, a.Approx = s.maxLen, true
	}
	return a
}

func (s *Sender) failed(err error, start time.Time) destination.Outcome {
	class, kind, msg := classify(err, s.key.address, s.stream)
	return destination.Outcome{Class: class, ErrorKind: kind, Error: msg, Latency: time.Since(start)}
}
