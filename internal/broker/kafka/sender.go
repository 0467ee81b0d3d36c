package kafka

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Sender produces an endpoint's messages to its topic through the type's shared client.
type Sender struct {
	t       *Type
	key     poolKey
	topic   string
	keyMode string   // "id", "type" or "data.<path>"
	keyPath []string // for "data.<path>": "data" then the path's parts
}

var (
	_ destination.Sender      = (*Sender)(nil)
	_ destination.BatchSender = (*Sender)(nil)
)

func keyPath(k string) []string {
	if !strings.HasPrefix(k, keyData) {
		return nil
	}
	return strings.Split(k, ".")
}

// Send produces m and waits for the leader's acknowledgement (acks=all) within ctx.
func (s *Sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	start := time.Now()
	e, put, err := s.t.acquire(ctx, s.key)
	if err != nil {
		return s.refused(err, start)
	}
	defer s.t.release(e, put)
	res, connErr := s.produce(ctx, e, start, s.record(m))
	r, err := res.First()
	if err != nil {
		return s.failure(e, err, connErr, start, len(m.Body))
	}
	return destination.Outcome{
		Class:    destination.Success,
		Latency:  time.Since(start),
		Response: fmt.Appendf(nil, "topic %s partition %d offset %d", r.Topic, r.Partition, r.Offset),
	}
}

// SendBatch produces every message, then waits for every acknowledgement. The batch is a Success
// only if every record was acknowledged; otherwise the first failure is the outcome (records that
// were acknowledged are delivered again on retry: consumers deduplicate by webhook-id).
func (s *Sender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	if len(ms) == 0 {
		return destination.Outcome{Class: destination.Success}
	}
	e, put, err := s.t.acquire(ctx, s.key)
	if err != nil {
		return s.refused(err, start)
	}
	defer s.t.release(e, put)
	recs := make([]*kgo.Record, len(ms))
	for i, m := range ms {
		recs[i] = s.record(m)
	}
	res, connErr := s.produce(ctx, e, start, recs...)
	for i, r := range res {
		if r.Err != nil {
			return s.failure(e, r.Err, connErr, start, len(ms[i].Body))
		}
	}
	return destination.Outcome{
		Class:    destination.Success,
		Latency:  time.Since(start),
		Response: []byte(batchResponse(s.topic, res)),
	}
}

// batchResponse summarises a batch's acknowledgements: "topic t partition 0 offsets 5-14" when
// they went to one partition, else "topic t 10 messages in 3 partitions".
func batchResponse(topic string, res kgo.ProduceResults) string {
	parts := map[int32][2]int64{}
	for _, r := range res {
		p, ok := parts[r.Record.Partition]
		if !ok {
			p = [2]int64{r.Record.Offset, r.Record.Offset}
		}
		p[0], p[1] = min(p[0], r.Record.Offset), max(p[1], r.Record.Offset)
		parts[r.Record.Partition] = p
	}
	if len(parts) == 1 {
		for part, p := range parts {
			return fmt.Sprintf("topic %s partition %d offsets %d-%d", topic, part, p[0], p[1])
		}
	}
	return fmt.Sprintf("topic %s %d messages in %d partitions", topic, len(res), len(parts))
}

// record builds m's record: the body as is, every header of m (names lower-cased, as Standard
// Webhooks writes them) plus herald-event-type, and the key the endpoint chose.
func (s *Sender) record(m *destination.Message) *kgo.Record {
	n := 1
	for _, vs := range m.Header {
		n += len(vs)
	}
	hs := make([]kgo.RecordHeader, 0, n)
	for k, vs := range m.Header {
		lk := strings.ToLower(k)
		for _, v := range vs {
			hs = append(hs, kgo.RecordHeader{Key: lk, Value: []byte(v)})
		}
	}
	hs = append(hs, kgo.RecordHeader{Key: destination.HeaderEventType, Value: []byte(m.EventType)})
	return &kgo.Record{Topic: s.topic, Key: s.recordKey(m), Value: m.Body, Headers: hs}
}

// recordKey is the record key: the event id, its type, or a field of the envelope's data (the
// event id when the body has no such field, or it is an object, array or null).
func (s *Sender) recordKey(m *destination.Message) []byte {
	switch {
	case s.keyMode == keyType:
		return []byte(m.EventType)
	case s.keyPath != nil:
		if k := fieldAt(m.Body, s.keyPath); k != nil {
			return k
		}
	}
	return []byte(m.ID)
}

// fieldAt returns the JSON value at path in body as key bytes: a string's text, a number's or a
// boolean's JSON text; nil when absent or of another kind.
func fieldAt(body []byte, path []string) []byte {
	cur := json.RawMessage(body)
	for _, p := range path {
		var obj map[string]json.RawMessage
		if err := json.Unmarshal(cur, &obj); err != nil {
			return nil
		}
		v, ok := obj[p]
		if !ok {
			return nil
		}
		cur = v
	}
	cur = bytes.TrimSpace(cur)
	if len(cur) == 0 {
		return nil
	}
	switch cur[0] {
	case '"':
		var str string
		if err := json.Unmarshal(cur, &str); err != nil {
			return nil
		}
		return []byte(str)
	case '{', '[', 'n':
		return nil
	}
	return cur
}

// refused is the outcome when the pool gives no client.
func (s *Sender) refused(err error, start time.Time) destination.Outcome {
	o := destination.Outcome{Class: destination.Retryable, Latency: time.Since(start)}
	switch {
	case errors.Is(err, errBusy):
		o.ErrorKind = destination.KindBrokerBusy
		o.Error = fmt.Sprintf("Herald already holds its limit of %d Kafka clients; the attempt will be retried when one is free", s.t.max)
	case errors.Is(err, errClosed):
		o.ErrorKind = destination.KindCanceled
		o.Error = "the Kafka destination is shutting down; the attempt will be retried"
	case errors.Is(err, context.DeadlineExceeded):
		o.ErrorKind = destination.KindTimeout
		o.Error = "the attempt's time ran out before a Kafka client was ready"
	case errors.Is(err, context.Canceled):
		o.ErrorKind = destination.KindCanceled
		o.Error = "the attempt was canceled before a Kafka client was ready"
	default:
		o.Class = destination.Permanent
		o.ErrorKind = destination.KindBrokerError
		o.Error = "cannot create the Kafka client: " + err.Error()
	}
	return o
}

// connPoll is how often a waiting attempt looks for a connection failure that no retry fixes.
const connPoll = 50 * time.Millisecond

// produce produces recs and waits for every result, or for ctx to end. franz-go retries
// connections inside the client until the attempt's context ends; when the client's
// connections fail in a way no retry fixes (the address is blocked, the credentials are
// refused), the records are withdrawn (their context canceled) and that failure returned,
// instead of waiting out the attempt's timeout. Otherwise connErr is the recent connection
// failure, if any, that explains a timeout.
//
// When ctx ends first, the records without a result get ctx's error. A record the idempotent
// producer already wrote to a broker whose answer was lost cannot be withdrawn (franz-go must
// learn whether it was written to keep the sequence numbers right): it stays in the client
// and is produced when the broker is back, so the retried attempt may deliver a second copy,
// which consumers deduplicate by webhook-id.
func (s *Sender) produce(ctx context.Context, e *entry, start time.Time, recs ...*kgo.Record) (res kgo.ProduceResults, connErr error) {
	pctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var mu sync.Mutex
	res = make(kgo.ProduceResults, len(recs))
	at := make(map[*kgo.Record]int, len(recs))
	for i, r := range recs {
		at[r] = i
		res[i].Record = r
	}
	done := make(chan struct{})
	left := len(recs)
	for _, r := range recs {
		e.client.Produce(pctx, r, func(r *kgo.Record, err error) {
			mu.Lock()
			defer mu.Unlock()
			if i, ok := at[r]; ok {
				res[i].Err = err
			}
			if left--; left == 0 {
				close(done)
			}
		})
	}
	snapshot := func(fill error) kgo.ProduceResults {
		mu.Lock()
		defer mu.Unlock()
		out := make(kgo.ProduceResults, len(res))
		copy(out, res)
		if left > 0 {
			// Results still pending: the attempt is incomplete, so every record counts as
			// failed (a batch is retried as a whole).
			for i := range out {
				if out[i].Err == nil && fill != nil {
					out[i].Err = fill
				}
			}
		}
		at = nil // late promises no longer write
		return out
	}
	tick := time.NewTicker(connPoll)
	defer tick.Stop()
	for {
		select {
		case <-done:
			return snapshot(nil), e.recentConnFailure(start)
		case <-ctx.Done():
			return snapshot(ctx.Err()), e.recentConnFailure(start)
		case <-tick.C:
			if err := e.recentConnFailure(start); err != nil && permanentConnErr(err) {
				cancel()
				select {
				case <-done:
				case <-ctx.Done():
				}
				return snapshot(context.Canceled), err
			}
		}
	}
}

// permanentConnErr reports a connection failure that retrying with the same settings cannot fix.
func permanentConnErr(err error) bool {
	var be *httpsend.BlockedError
	return errors.As(err, &be) || errors.Is(err, kerr.SaslAuthenticationFailed) ||
		errors.Is(err, kerr.UnsupportedSaslMechanism) || errors.Is(err, kerr.IllegalSaslState)
}

// failure classifies a failed produce.
func (s *Sender) failure(e *entry, err, connErr error, start time.Time, size int) destination.Outcome {
	o := destination.Outcome{Latency: time.Since(start)}
	if errors.Is(err, kerr.UnknownTopicID) {
		// franz-go keeps the topic id it knew; a topic deleted and created again (or a cluster
		// replaced behind the same address) needs a fresh client.
		s.t.discard(e)
	}
	o.Class, o.ErrorKind, o.Error = s.classify(err, connErr, size)
	return o
}

// classify maps a produce error to a class, kind and sentence. dialErr is the client's recent
// dial failure, which explains a produce that never reached a broker.
func (s *Sender) classify(err, connErr error, size int) (destination.Class, string, string) {
	topic := s.topic
	if connErr != nil && (errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout)) {
		// The records never reached a broker: the connection failure is the reason.
		if class, kind, msg := s.classify(connErr, nil, size); kind != destination.KindBrokerError || class == destination.Permanent {
			return class, kind, msg
		}
		return classifyDial(connErr)
	}
	var ke *kerr.Error
	switch {
	case errors.Is(err, kerr.UnknownTopicID):
		// The topic id the client knew is gone: the topic was deleted, or deleted and created
		// again. The next attempt's metadata tells which (no_route if it is gone for good).
		return destination.Retryable, destination.KindBrokerError, fmt.Sprintf("topic %q was deleted or re-created on the Kafka cluster while producing", topic)
	case errors.Is(err, kerr.UnknownTopicOrPartition):
		return destination.Permanent, destination.KindNoRoute, fmt.Sprintf("topic %q does not exist on the Kafka cluster", topic)
	case errors.Is(err, kerr.InvalidTopicException):
		return destination.Permanent, destination.KindNoRoute, fmt.Sprintf("the Kafka cluster refuses topic %q as invalid", topic)
	case errors.Is(err, kerr.MessageTooLarge), errors.Is(err, kerr.RecordListTooLarge):
		return destination.Permanent, destination.KindTooLarge, fmt.Sprintf("the message (%d bytes) is larger than topic %q accepts (the broker's message.max.bytes or the topic's max.message.bytes)", size, topic)
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		return destination.Permanent, destination.KindDenied, fmt.Sprintf("the Kafka user is not allowed to write to topic %q", topic)
	case errors.Is(err, kerr.ClusterAuthorizationFailed), errors.Is(err, kerr.TransactionalIDAuthorizationFailed):
		return destination.Permanent, destination.KindDenied, "the Kafka user is not allowed to produce idempotently (it needs the IDEMPOTENT_WRITE permission on the cluster)"
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		return destination.Permanent, destination.KindDenied, "the Kafka brokers refused the username or password"
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		return destination.Permanent, destination.KindDenied, "the Kafka brokers do not support the SASL mechanism " + s.key.mechanism
	case errors.Is(err, kerr.InvalidRecord):
		return destination.Permanent, destination.KindBrokerError, fmt.Sprintf("the Kafka broker rejected the record as invalid for topic %q", topic)
	case errors.Is(err, kerr.NotEnoughReplicas), errors.Is(err, kerr.NotEnoughReplicasAfterAppend),
		errors.Is(err, kerr.LeaderNotAvailable), errors.Is(err, kerr.NotLeaderForPartition),
		errors.Is(err, kerr.BrokerNotAvailable), errors.Is(err, kerr.KafkaStorageError),
		errors.Is(err, kerr.ThrottlingQuotaExceeded), errors.Is(err, kerr.RequestTimedOut):
		errors.As(err, &ke)
		return destination.Retryable, destination.KindBrokerBusy, fmt.Sprintf("the Kafka cluster could not take the message now (%s)", ke.Message)
	case errors.Is(err, kgo.ErrClientClosed):
		return destination.Retryable, destination.KindCanceled, "the Kafka destination is shutting down; the attempt will be retried"
	}
	var be *httpsend.BlockedError
	if errors.As(err, &be) {
		return classifyDial(err)
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) || errors.Is(err, kgo.ErrRecordTimeout) {
		if errors.Is(err, context.Canceled) {
			return destination.Retryable, destination.KindCanceled, "the attempt was canceled before the Kafka cluster acknowledged the message"
		}
		return destination.Retryable, destination.KindTimeout, "the Kafka cluster did not acknowledge the message within the attempt's timeout"
	}
	if errors.As(err, &ke) {
		return destination.Retryable, destination.KindBrokerError, fmt.Sprintf("the Kafka broker answered %s: %s", ke.Message, ke.Description)
	}
	class, kind := httpsend.ClassifyDialError(err)
	if kind == destination.KindInvalidResponse {
		kind = destination.KindBrokerError
	}
	return class, kind, "producing to Kafka failed: " + err.Error()
}

// classifyDial explains an attempt that could not reach any broker.
func classifyDial(err error) (destination.Class, string, string) {
	class, kind := httpsend.ClassifyDialError(err)
	switch kind {
	case destination.KindBlocked:
		return class, kind, "the Kafka broker address is not allowed: " + err.Error()
	case destination.KindInvalidResponse:
		kind = destination.KindConnFailed
	}
	return class, kind, "cannot reach the Kafka brokers: " + err.Error()
}
