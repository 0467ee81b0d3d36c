// Package kafka is the Kafka destination type: each attempt produces one record to the
// endpoint's topic with franz-go's idempotent producer (acks=all), the message's body as the
// value and its Standard Webhooks headers as record headers, and the outcome is the partition
// leader's acknowledgement.
package kafka

import (
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/destination"
)

// Producer tuning. An unknown topic fails after unknownTopicRetries metadata loads that do not
// know it, spaced at least metadataMinAge apart (about 1.5 s), instead of franz-go's default of 4
// loads at most every 5 s; every other failure is retried inside the client until the attempt's
// context ends.
const (
	unknownTopicRetries = 3
	metadataMinAge      = 500 * time.Millisecond
	// recordDeliveryTimeout is a backstop for a context without a deadline.
	recordDeliveryTimeout = 5 * time.Minute
	// dialFailureWindow: a dial failure this recent explains an attempt that timed out.
	dialFailureWindow = 30 * time.Second
)

// Type is the "kafka" destination type. It holds one franz-go client per (brokers, SASL
// credentials, TLS, compression, internal), shared by every endpoint that points there.
type Type struct {
	env  destination.Env
	log  *slog.Logger
	max  int
	idle time.Duration

	mu     sync.Mutex
	pool   map[poolKey]*entry
	closed bool
}

// New returns the Kafka destination type for a node.
func New(env destination.Env) *Type {
	t := &Type{env: env, log: env.Logger, max: env.MaxConnections, idle: env.IdleTimeout, pool: map[poolKey]*entry{}}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.max <= 0 {
		t.max = destination.DefaultMaxConnections
	}
	if t.idle <= 0 {
		t.idle = destination.DefaultIdleTimeout
	}
	return t
}

var _ destination.Type = (*Type)(nil)

// Name is the endpoint type.
func (t *Type) Name() string { return "kafka" }

// Secrets names the settings fields holding credentials.
func (t *Type) Secrets() []string { return []string{"password"} }

// poolKey identifies a shared client. Compression is part of it because franz-go sets it per
// client, not per record.
type poolKey struct {
	brokers     string // comma-joined, in the endpoint's order
	mechanism   string
	username    string
	password    string
	tls         bool
	compression string
	internal    bool
}

// entry is one pooled client.
type entry struct {
	key      poolKey
	client   *kgo.Client
	close    sync.Once
	inflight int       // guarded by Type.mu
	lastUsed time.Time // guarded by Type.mu
	timer    *time.Timer
	// connWatch holds the client's last failed connection, to explain an attempt that could
	// not reach the brokers: franz-go retries connections inside the client, so the attempt
	// itself only sees its context end.
	connWatch
}

// Open returns a sender for an endpoint; it does not connect.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	s, errs := parseSettings(target.Settings)
	if errs != nil {
		return nil, fmt.Errorf("open kafka destination: invalid settings: %w", errs[0])
	}
	key := poolKey{
		brokers: strings.Join(s.Brokers, ","), tls: s.TLS, compression: s.Compression, internal: target.Internal,
	}
	if s.SASL != saslNone {
		key.mechanism, key.username, key.password = s.SASL, s.Username, s.Password
	}
	return &Sender{t: t, key: key, topic: s.Topic, keyPath: keyPath(s.Key), keyMode: s.Key}, nil
}

// Close closes every pooled client; senders fail Retryable afterwards.
func (t *Type) Close() error {
	t.mu.Lock()
	t.closed = true
	entries := make([]*entry, 0, len(t.pool))
	for k, e := range t.pool {
		entries = append(entries, e)
		if e.timer != nil {
			e.timer.Stop()
		}
		delete(t.pool, k)
	}
	t.mu.Unlock()
	for _, e := range entries {
		e.shut()
	}
	return nil
}

// shut closes e's client once.
func (e *entry) shut() { e.close.Do(e.client.Close) }

// errBusy and errClosed are acquire's refusals.
var (
	errBusy   = errors.New("kafka destination: connection limit reached")
	errClosed = errors.New("kafka destination: closed")
)

// acquire returns the shared client for key, creating it if there is room, and marks it in use.
func (t *Type) acquire(key poolKey) (*entry, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, errClosed
	}
	if e := t.pool[key]; e != nil {
		e.inflight++
		return e, nil
	}
	if len(t.pool) >= t.max {
		return nil, errBusy
	}
	e := &entry{key: key}
	cl, err := kgo.NewClient(t.clientOpts(e)...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	e.client = cl
	e.inflight = 1
	t.pool[key] = e
	t.log.Debug("kafka client opened", "brokers", key.brokers, "internal", key.internal)
	return e, nil
}

// release marks one use of e finished and arms its idle timer.
func (t *Type) release(e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	e.inflight--
	e.lastUsed = time.Now()
	if e.inflight > 0 {
		return
	}
	if t.pool[e.key] != e {
		// discarded (or the type closed): the last user closes it.
		go e.shut()
		return
	}
	if e.timer == nil {
		e.timer = time.AfterFunc(t.idle, func() { t.reap(e) })
	} else {
		e.timer.Reset(t.idle)
	}
}

// discard takes e out of the pool, so that the next attempt opens a fresh client; e is closed
// when its last attempt ends. It is for a client whose state no longer matches the cluster's.
func (t *Type) discard(e *entry) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.pool[e.key] == e {
		delete(t.pool, e.key)
		if e.timer != nil {
			e.timer.Stop()
		}
		t.log.Info("kafka client replaced: the cluster's topic ids changed", "brokers", e.key.brokers)
	}
}

// reap closes e if nobody used it for the idle timeout.
func (t *Type) reap(e *entry) {
	t.mu.Lock()
	if t.pool[e.key] != e || e.inflight > 0 {
		t.mu.Unlock()
		return
	}
	if rest := t.idle - time.Since(e.lastUsed); rest > 0 {
		e.timer.Reset(rest)
		t.mu.Unlock()
		return
	}
	delete(t.pool, e.key)
	t.mu.Unlock()
	t.log.Debug("kafka client closed after idling", "brokers", e.key.brokers)
	e.shut()
}

// clientOpts are the producer's options for an entry.
func (t *Type) clientOpts(e *entry) []kgo.Opt {
	k := e.key
	dial := t.env.Dial
	if k.internal {
		dial = t.env.InternalDial
	}
	opts := connOpts(strings.Split(k.brokers, ","), mechanism(k.mechanism, k.username, k.password), guardedDialer(dial, k.tls, &e.connWatch))
	return append(opts,
		kgo.RequiredAcks(kgo.AllISRAcks()), // the default, and what idempotence requires: stated
		kgo.ProducerLinger(0),
		kgo.UnknownTopicRetries(unknownTopicRetries),
		kgo.MetadataMinAge(metadataMinAge),
		kgo.RecordDeliveryTimeout(recordDeliveryTimeout),
		kgo.ProducerBatchCompression(codec(k.compression)),
		kgo.WithHooks(e),
	)
}

func codec(name string) kgo.CompressionCodec {
	switch name {
	case "gzip":
		return kgo.GzipCompression()
	case "snappy":
		return kgo.SnappyCompression()
	case "lz4":
		return kgo.Lz4Compression()
	case "zstd":
		return kgo.ZstdCompression()
	}
	return kgo.NoCompression()
}
