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
	if errs != nil {
		return nil, errs
	}
	out, err := json.Marshal(s)
	if err != nil {
		return nil, []*destination.FieldError{{Field: "", Message: "settings cannot be encoded: " + err.Error()}}
	}
	return out, nil
}

// Open returns a sender for the endpoint; it connects at the first attempt.
func (t *Type) Open(tg destination.Target) (destination.Sender, error) {
	s, errs := check(tg.Settings)
	if errs != nil {
		return nil, fmt.Errorf("redis endpoint %s: invalid settings: %w", tg.EndpointID, errs[0])
	}
	return &Sender{
		pool: t.pool,
		key: poolKey{
			address:  s.Address,
			username: s.Username,
			password: s.Password,
			db:       s.db(),
			tls:      s.TLS,
			internal: tg.Internal,
		},
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
	if o, ok := s.tooLarge(m, start); !ok {
		return o
	}
	e, err := s.pool.lease(s.key)
	if err != nil {
		return s.failed(err, start)
	}
	defer s.pool.release(e)
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
	for _, m := range ms {
		if o, ok := s.tooLarge(m, start); !ok {
			return o
		}
	}
	e, err := s.pool.lease(s.key)
	if err != nil {
		return s.failed(err, start)
	}
	defer s.pool.release(e)
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

func (s *Sender) tooLarge(m *destination.Message, start time.Time) (destination.Outcome, bool) {
	if len(m.Body) <= maxBodyBytes {
		return destination.Outcome{}, true
	}
	return destination.Outcome{
		Class:     destination.Permanent,
		ErrorKind: destination.KindTooLarge,
		Error:     fmt.Sprintf("the message (%d bytes) is larger than Redis's largest value (512 MiB)", len(m.Body)),
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
