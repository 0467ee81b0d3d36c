package rabbitmq

// The RabbitMQ source: a consumer of one existing queue, with manual acknowledgements and a
// prefetch limit (basic.qos), on a connection of its own (a consumer is long-lived; the
// destination's pooled connections come and go with attempts). amqp091's own connection
// recovery is not used: when the connection or channel is lost, Fetch fails and the runner
// opens a new consumer, so delivery tags never outlive the channel they belong to.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	amqp "github.com/rabbitmq/amqp091-go"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

const (
	// DefaultPrefetch is how many messages the broker hands a consumer unacknowledged when the
	// source does not say.
	DefaultPrefetch = 100
	// maxPrefetch is basic.qos's prefetch-count limit (a 16-bit field). 0 (no limit) is refused:
	// the broker would push the whole queue into Herald's memory.
	maxPrefetch = 65535
	// fetchLinger is how long Fetch waits for one more message once it has some: deliveries
	// arrive one by one, so a batch is what comes in a burst, up to max, within maxWait.
	fetchLinger = 5 * time.Millisecond
)

// sourceDecoding words the decoding errors of a source's settings.
var sourceDecoding = destination.Decoding{Required: "url and queue", Known: "url, username, password, queue, prefetch"}

var (
	errConsumerClosed = errors.New("rabbitmq consumer closed")
	errSettled        = errors.New("rabbitmq batch already acknowledged or given back")
	errNoSourceDialer = errors.New("rabbitmq: the node gave no dialer for this source")
)

// SourceSettings are a RabbitMQ source's settings: the destination's connection settings and
// the queue to consume.
type SourceSettings struct {
	Connection
	// Queue is the queue consumed. Required; Herald never declares it (the queue, its
	// durability and its bindings are the operator's).
	Queue string `json:"queue"`
	// Prefetch is basic.qos's prefetch count: how many messages the broker hands this consumer
	// before it acknowledges any. 1 to 65535, default 100.
	Prefetch *int `json:"prefetch"`
}

// SourceType is the RabbitMQ source type. Create it with NewSource.
type SourceType struct {
	env source.Env
	log *slog.Logger
}

var _ source.Type = (*SourceType)(nil)

// NewSource returns the RabbitMQ source type.
func NewSource(env source.Env) *SourceType {
	log := env.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &SourceType{env: env, log: log}
}

// Name implements source.Type.
func (t *SourceType) Name() string { return Name }

// Secrets implements source.Type: the password, as for the destination.
func (t *SourceType) Secrets() []string { return []string{"password"} }

// Check implements source.Type: every field validated, without I/O; the result has the user
// moved out of the URL and the default prefetch filled in.
func (t *SourceType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, u, errs := decodeSourceSettings(raw)
	if len(errs) > 0 {
		return nil, errs
	}
	n := *s
	n.URL = u.dialURL()
	return destination.EncodeSettings(&n, nil)
}

func decodeSourceSettings(raw json.RawMessage) (*SourceSettings, parsedURL, []*destination.FieldError) {
	var s SourceSettings
	if fe := destination.DecodeSettings(raw, &s, sourceDecoding); fe != nil {
		return nil, parsedURL{}, []*destination.FieldError{fe}
	}
	var errs destination.FieldErrors
	add := errs.Add
	u := s.Connection.check(add)
	switch {
	case s.Queue == "":
		add("queue", "required: the queue Herald consumes (it must exist: Herald never declares it)", nil)
	case len(s.Queue) > maxShortString:
		add("queue", fmt.Sprintf("at most %d bytes (it is %d)", maxShortString, len(s.Queue)), nil)
	case !validUTF8NoControl(s.Queue):
		add("queue", "must be UTF-8 without control characters", nil)
	}
	switch {
	case s.Prefetch == nil:
		p := DefaultPrefetch
		s.Prefetch = &p
	case *s.Prefetch < 1 || *s.Prefetch > maxPrefetch:
		add("prefetch", fmt.Sprintf("must be 1 to %d: how many messages the broker hands Herald unacknowledged (0, no limit, is not allowed)", maxPrefetch), *s.Prefetch)
	}
	if len(errs) > 0 {
		return nil, parsedURL{}, errs
	}
	return &s, u, nil
}

// Open implements source.Type: it connects through the node's guarded dialer, opens a channel,
// sets the prefetch and starts consuming the queue with manual acknowledgements. The queue must
// exist (a missing one is an error naming it).
func (t *SourceType) Open(ctx context.Context, target source.Target) (source.Consumer, error) {
	s, u, errs := decodeSourceSettings(target.Settings)
	if len(errs) > 0 {
		return nil, &settingsError{errs: errs}
	}
	dial := t.env.DialerFor(target.Internal)
	if dial == nil {
		return nil, errNoSourceDialer
	}
	dctx, cancel := context.WithTimeout(ctx, dialTimeout)
	defer cancel()
	name := "herald source"
	if target.SourceID != "" {
		name += " " + target.SourceID
	}
	conn, err := dialAMQP(dctx, dial, u, s.Username, s.Password, name)
	if err != nil {
		return nil, describeAMQP(err, u, s.Username, s.Queue)
	}
	c := &Consumer{
		conn:     conn,
		queue:    s.Queue,
		url:      u,
		user:     s.Username,
		prefetch: *s.Prefetch,
		log:      t.log.With("source", target.SourceID, "tenant", target.TenantID, "address", u.address(), "queue", s.Queue),
	}
	if err := c.start(consumerTag(target)); err != nil {
		_ = conn.Close()
		return nil, describeAMQP(err, u, s.Username, s.Queue)
	}
	c.log.Debug("rabbitmq source consuming", "prefetch", c.prefetch)
	return c, nil
}

// consumerTag names the consumer for the broker's listings: "herald:<source>:<member>", or ""
// (the broker makes one up) when the target names neither.
func consumerTag(t source.Target) string {
	if t.SourceID == "" && t.Member == "" {
		return ""
	}
	tag := "herald:" + t.SourceID + ":" + t.Member
	if len(tag) > maxShortString {
		tag = tag[:maxShortString]
		for !utf8.ValidString(tag) {
			tag = tag[:len(tag)-1]
		}
	}
	return tag
}

// Consumer consumes one queue on a connection of its own. Fetch is called by one goroutine at a
// time; Ack, Nak and Close may be called from any.
type Consumer struct {
	conn     *amqp.Connection
	queue    string
	url      parsedURL
	user     string
	prefetch int
	log      *slog.Logger

	ch         *amqp.Channel
	deliveries <-chan amqp.Delivery
	closes     chan *amqp.Error // the channel's close reason
	connCloses chan *amqp.Error // the connection's
	cancels    chan string      // the broker cancelled the consumer (queue deleted)

	fetchMu sync.Mutex

	// mu guards the settlement state and serialises every ack/nack frame, so that the choice
	// of "multiple" is made and written before any other settlement is.
	mu          sync.Mutex
	outstanding map[*batch]struct{} // batches fetched and not yet settled
	closed      bool
}

var _ source.Consumer = (*Consumer)(nil)

func (c *Consumer) start(tag string) error {
	c.connCloses = c.conn.NotifyClose(make(chan *amqp.Error, 1))
	ch, err := c.conn.Channel()
	if err != nil {
		return fmt.Errorf("open a channel: %w", err)
	}
	c.ch = ch
	c.closes = ch.NotifyClose(make(chan *amqp.Error, 1))
	c.cancels = ch.NotifyCancel(make(chan string, 1))
	// global=false: the limit is per consumer, and this channel has one.
	if err := ch.Qos(c.prefetch, 0, false); err != nil {
		return fmt.Errorf("set prefetch %d: %w", c.prefetch, err)
	}
	// Consume, not ConsumeWithContext: that one cancels the consumer when its context ends,
	// and Open's context ends when Open returns.
	d, err := ch.Consume(c.queue, tag, false, false, false, false, nil)
	if err != nil {
		return fmt.Errorf("consume: %w", err)
	}
	c.deliveries = d
	c.outstanding = make(map[*batch]struct{})
	return nil
}

// Fetch implements source.Consumer: it waits up to maxWait for a first message, then takes the
// ones that follow in the same burst, up to max. The broker never hands this consumer more than
// prefetch messages unacknowledged, so what Herald holds (fetched or not) is bounded by it.
func (c *Consumer) Fetch(ctx context.Context, max int, maxWait time.Duration) (source.Batch, error) {
	if max < 1 {
		max = 1
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.mu.Lock()
	closed := c.closed
	c.mu.Unlock()
	if closed {
		return nil, errConsumerClosed
	}

	wait := time.NewTimer(maxWait)
	defer wait.Stop()
	var linger *time.Timer
	var lingerC <-chan time.Time
	var got []amqp.Delivery
collect:
	for len(got) < max {
		select {
		case d, ok := <-c.deliveries:
			if !ok {
				// What was taken is unacknowledged: the broker delivers it again.
				return nil, c.lost()
			}
			got = append(got, d)
			if linger == nil {
				linger = time.NewTimer(fetchLinger)
				defer linger.Stop()
			} else {
				linger.Reset(fetchLinger)
			}
			lingerC = linger.C
		case <-lingerC:
			break collect
		case <-wait.C:
			break collect
		case <-ctx.Done():
			if len(got) > 0 {
				break collect // hand over what is held, so that it is settled
			}
			return nil, fmt.Errorf("fetch from RabbitMQ queue %q: %w", c.queue, ctx.Err())
		}
	}

	b := &batch{c: c, msgs: make([]source.Message, len(got))}
	if len(got) == 0 {
		b.settled = true
		return b, nil
	}
	for i, d := range got {
		b.msgs[i] = message(&d)
	}
	b.first, b.last, b.n = got[0].DeliveryTag, got[len(got)-1].DeliveryTag, len(got)
	b.tags = make([]uint64, len(got))
	for i, d := range got {
		b.tags[i] = d.DeliveryTag
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		// Closed meanwhile: the connection is gone and the broker delivers these again.
		return nil, errConsumerClosed
	}
	c.outstanding[b] = struct{}{}
	return b, nil
}

// lost says why the deliveries stopped: the channel or connection closed (broker restarted,
// connection lost, queue deleted…) or the broker cancelled the consumer.
func (c *Consumer) lost() error {
	addr := c.url.address()
	select {
	case e, ok := <-c.closes:
		if ok && e != nil {
			return describeAMQP(fmt.Errorf("consume: %w", e), c.url, c.user, c.queue)
		}
	default:
	}
	select {
	case e, ok := <-c.connCloses:
		if ok && e != nil {
			return describeAMQP(fmt.Errorf("consume: %w", e), c.url, c.user, c.queue)
		}
	default:
	}
	select {
	case <-c.cancels:
		return fmt.Errorf("RabbitMQ at %s cancelled the consumer of queue %q (was the queue deleted?)", addr, c.queue)
	default:
	}
	if c.conn.IsClosed() {
		return fmt.Errorf("the connection to RabbitMQ at %s was lost while consuming queue %q", addr, c.queue)
	}
	return fmt.Errorf("RabbitMQ at %s stopped delivering from queue %q (channel closed)", addr, c.queue)
}

// Close implements source.Consumer: the connection is closed, and with it the broker gives every
// message it handed this consumer and that was not acknowledged back to the queue, for another
// consumer (or the next one) to take.
func (c *Consumer) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.outstanding = nil
	c.mu.Unlock()
	err := c.conn.Close()
	if err != nil && !errors.Is(err, amqp.ErrClosed) {
		return fmt.Errorf("close the connection to RabbitMQ at %s: %w", c.url.address(), err)
	}
	return nil
}

// batch is the messages of one Fetch and their delivery tags on the consumer's channel.
type batch struct {
	c           *Consumer
	msgs        []source.Message
	tags        []uint64
	first, last uint64
	n           int
	settled     bool // guarded by c.mu
}

func (b *batch) Messages() []source.Message { return b.msgs }

// Ack implements source.Batch: basic.ack of the batch's deliveries, then a round trip on the
// channel (basic.qos, which the broker answers after it has processed every frame before it), so
// that a nil return means the broker has the acks. AMQP has no reply to an ack itself; without
// the round trip an ack written just before a connection loss could vanish unnoticed.
func (b *batch) Ack(ctx context.Context) error {
	if err := b.settle(ctx, true); err != nil {
		return err
	}
	if b.n == 0 {
		return nil
	}
	done := make(chan error, 1)
	go func() { done <- b.c.ch.Qos(b.c.prefetch, 0, false) }()
	select {
	case err := <-done:
		if err != nil {
			return b.c.settleError("acknowledge", err)
		}
		return nil
	case <-ctx.Done():
		return fmt.Errorf("acknowledge %d messages of RabbitMQ queue %q: %w", b.n, b.c.queue, ctx.Err())
	}
}

// Nak implements source.Batch: basic.nack with requeue, so the broker delivers the messages
// again (to this consumer or another). RabbitMQ has no delayed requeue: delay is ignored and the
// messages may come back at once; the runner's backoff paces the retry.
func (b *batch) Nak(ctx context.Context, _ time.Duration) error {
	return b.settle(ctx, false)
}

// settle writes the ack or nack frames. One frame with multiple=true when that covers exactly
// this batch: its tags are consecutive (nothing else was delivered between them) and no batch
// fetched earlier, whose tags are lower, is still unsettled; otherwise one frame per delivery.
// Settling twice is refused without writing anything: RabbitMQ closes the channel on an unknown
// delivery tag.
func (b *batch) settle(ctx context.Context, ack bool) error {
	verb := "give back"
	if ack {
		verb = "acknowledge"
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("%s %d messages of RabbitMQ queue %q: %w", verb, b.n, b.c.queue, err)
	}
	c := b.c
	c.mu.Lock()
	defer c.mu.Unlock()
	if b.n == 0 {
		return nil
	}
	if b.settled {
		return errSettled
	}
	if c.closed {
		return fmt.Errorf("%s %d messages of RabbitMQ queue %q: %w (the broker delivers them again)", verb, b.n, c.queue, errConsumerClosed)
	}
	b.settled = true
	delete(c.outstanding, b)
	multiple := b.last-b.first+1 == uint64(b.n)
	for o := range c.outstanding {
		if o.first < b.first {
			multiple = false
			break
		}
	}
	send := func(tag uint64, multiple bool) error {
		if ack {
			return c.ch.Ack(tag, multiple)
		}
		return c.ch.Nack(tag, multiple, true)
	}
	if multiple {
		if err := send(b.last, true); err != nil {
			return c.settleError(verb, err)
		}
		return nil
	}
	for _, tag := range b.tags {
		if err := send(tag, false); err != nil {
			return c.settleError(verb, err)
		}
	}
	return nil
}

func (c *Consumer) settleError(verb string, err error) error {
	return fmt.Errorf("%s messages of RabbitMQ queue %q at %s (the broker delivers them again): %w", verb, c.queue, c.url.address(), err)
}

// message maps a delivery: ID the message-id property, Subject the routing key, Header the
// headers table (values that have a string form) plus content-type, Time the timestamp property.
func message(d *amqp.Delivery) source.Message {
	m := source.Message{
		Body:    d.Body,
		Subject: d.RoutingKey,
		ID:      d.MessageId,
		Time:    d.Timestamp,
	}
	h := make(map[string][]string, len(d.Headers)+1)
	for k, v := range d.Headers {
		if vs, ok := headerStrings(v); ok {
			h[k] = vs
		}
	}
	if d.ContentType != "" {
		h["content-type"] = []string{d.ContentType}
	}
	m.Header = h
	return m
}

// headerStrings is the string form of an AMQP field value: strings as they are, byte arrays
// that are UTF-8, numbers, booleans, decimals, timestamps (RFC 3339, UTC), and arrays of these
// (one value each). Nested tables, void and binary data have none.
func headerStrings(v any) ([]string, bool) {
	if s, ok := scalarString(v); ok {
		return []string{s}, true
	}
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	out := make([]string, 0, len(arr))
	for _, e := range arr {
		if s, ok := scalarString(e); ok {
			out = append(out, s)
		}
	}
	return out, len(out) > 0
}

func scalarString(v any) (string, bool) {
	switch x := v.(type) {
	case string:
		return x, true
	case []byte:
		if utf8.Valid(x) {
			return string(x), true
		}
	case bool:
		return strconv.FormatBool(x), true
	case int8, int16, int32, int64, int, uint8, uint16, uint32, uint64, uint:
		return fmt.Sprint(x), true
	case float32:
		return strconv.FormatFloat(float64(x), 'g', -1, 32), true
	case float64:
		return strconv.FormatFloat(x, 'g', -1, 64), true
	case amqp.Decimal:
		return decimalString(x), true
	case time.Time:
		return x.UTC().Format(time.RFC3339), true
	}
	return "", false
}

// decimalString writes an AMQP decimal (Value × 10^-Scale) in plain notation.
func decimalString(d amqp.Decimal) string {
	neg := d.Value < 0
	v := int64(d.Value)
	if neg {
		v = -v
	}
	digits := strconv.FormatInt(v, 10)
	scale := int(d.Scale)
	if scale > 0 {
		if len(digits) <= scale {
			digits = strings.Repeat("0", scale-len(digits)+1) + digits
		}
		digits = digits[:len(digits)-scale] + "." + digits[len(digits)-scale:]
	}
	if neg {
		return "-" + digits
	}
	return digits
}

// describeAMQP turns a connection or consume error into a sentence an operator understands,
// without credentials (the URL never holds a password, and amqp091's errors do not repeat the
// one it was given). The error stays wrapped, so that errors.As finds an *httpsend.BlockedError
// or *amqp.Error.
func describeAMQP(err error, u parsedURL, user, queue string) error {
	addr := u.address()
	var ae *amqp.Error
	if errors.As(err, &ae) {
		switch ae.Code {
		case amqp.NotFound:
			return fmt.Errorf("RabbitMQ at %s has no queue %q on vhost %q (Herald never declares it: create it): %w", addr, queue, u.vhost, err)
		case amqp.AccessRefused, amqp.NotAllowed:
			return fmt.Errorf("RabbitMQ at %s refused user %q (credentials, vhost %q or permission to read queue %q): %w", addr, user, u.vhost, queue, err)
		case amqp.ResourceLocked:
			return fmt.Errorf("RabbitMQ at %s: queue %q is used exclusively by another consumer: %w", addr, queue, err)
		case amqp.ConnectionForced:
			return fmt.Errorf("RabbitMQ at %s closed the connection (stopping, or closed by an operator): %w", addr, err)
		}
	}
	return fmt.Errorf("rabbitmq source (%s, queue %q): %w", addr, queue, err)
}
