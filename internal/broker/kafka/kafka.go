// Package kafka is the Kafka destination type: each attempt produces one record to the
// endpoint's topic with franz-go's idempotent producer (acks=all), the message's body as the
// value and its Standard Webhooks headers as record headers, and the outcome is the partition
// leader's acknowledgement.
package kafka

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	brokerpool "github.com/heraldhq/herald/internal/broker/pool"
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
// credentials, TLS, compression, internal), shared by every endpoint that points there, in the
// shared broker pool (internal/broker/pool: bounded, closed when idle, closed all by Close).
// What is Kafka's own stays here: a client taken out of the pool (replaced, idle, or at Close)
// is closed once its last attempt ended, so that a produce in flight is not cut off.
type Type struct {
	env  destination.Env
	log  *slog.Logger
	max  int
	pool *brokerpool.Pool[poolKey, *entry]
}

// New returns the Kafka destination type for a node.
func New(env destination.Env) *Type {
	t := &Type{env: env, log: env.Logger, max: env.MaxConnections}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	if t.max <= 0 {
		t.max = destination.DefaultMaxConnections
	}
	idle := env.IdleTimeout
	if idle <= 0 {
		idle = destination.DefaultIdleTimeout
	}
	t.pool = brokerpool.New(brokerpool.Config[poolKey, *entry]{
		Open:        t.newEntry,
		Close:       (*entry).retire,
		Max:         t.max,
		IdleTimeout: idle,
	})
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
	key    poolKey
	client *kgo.Client
	close  sync.Once

	mu       sync.Mutex
	inflight int  // attempts running on it
	retired  bool // out of the pool: closed when inflight drops to 0
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

// Close closes every pooled client (one in use when its attempt ends); senders fail Retryable
// afterwards.
func (t *Type) Close() error {
	t.pool.Close()
	return nil
}

// shut closes e's client once.
func (e *entry) shut() { e.close.Do(e.client.Close) }

// retire is the pool's Close: e is closed now if no attempt runs on it, else by the last one.
func (e *entry) retire() {
	e.mu.Lock()
	e.retired = true
	now := e.inflight == 0
	e.mu.Unlock()
	if now {
		e.shut()
	}
}

// errBusy and errClosed are acquire's refusals.
var (
	errBusy   = brokerpool.ErrFull
	errClosed = brokerpool.ErrClosed
)

// newEntry creates the client of key (no I/O: franz-go connects at the first request).
func (t *Type) newEntry(_ context.Context, key poolKey) (*entry, error) {
	e := &entry{key: key}
	cl, err := kgo.NewClient(t.clientOpts(e)...)
	if err != nil {
		return nil, fmt.Errorf("create kafka client: %w", err)
	}
	e.client = cl
	t.log.Debug("kafka client opened", "brokers", key.brokers, "internal", key.internal)
	return e, nil
}

// acquire returns the shared client for key, creating it if there is room, and marks it in use
// until release.
func (t *Type) acquire(ctx context.Context, key poolKey) (*entry, func(), error) {
	e, put, err := t.pool.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	e.mu.Lock()
	e.inflight++
	e.mu.Unlock()
	return e, put, nil
}

// release marks one use of e finished (put is acquire's).
func (t *Type) release(e *entry, put func()) {
	e.mu.Lock()
	e.inflight--
	now := e.retired && e.inflight == 0
	e.mu.Unlock()
	put()
	if now {
		e.shut()
	}
}

// discard takes e out of the pool, so that the next attempt opens a fresh client; e is closed
// when its last attempt ends. It is for a client whose state no longer matches the cluster's.
func (t *Type) discard(e *entry) {
	t.pool.Discard(e.key, e)
	t.log.Info("kafka client replaced: the cluster's topic ids changed", "brokers", e.key.brokers)
}

// clientOpts are the producer's options for an entry.
func (t *Type) clientOpts(e *entry) []kgo.Opt {
	k := e.key
	dial := t.env.DialerFor(k.internal)
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
