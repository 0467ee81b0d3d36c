package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// Consumer tuning. A consumer's client has at most one fetch in flight or buffered
// (MaxConcurrentFetches 1) of at most fetchMaxBytes (FetchMaxBytes and FetchMaxPartitionBytes;
// Kafka still returns a single record batch larger than that, so that consumption progresses):
// that, plus the batch Fetch returned, is all the memory a consumer holds; the cluster keeps
// the rest.
const (
	fetchMaxBytes = 1 << 20
	// fetchMaxWait is how long a broker may hold a fetch open waiting for records.
	fetchMaxWait = time.Second
	// sessionTimeout is how long the group waits for a member that stopped heartbeating.
	sessionTimeout = 10 * time.Second
)

// SourceType is the Kafka source type ("kafka"): every node of a source is a member of the
// consumer group Target.Group on the source's topics, so the cluster splits the partitions
// between them and hands a departed member's partitions to the others. Auto-commit is off: a
// batch's offsets are committed by Ack, after the runner stored its events (commit after
// store). Each consumer has its own client (a group member is a client); the connection
// settings, checks, SASL, TLS and guarded dialing are the destination's.
type SourceType struct {
	env source.Env
	log *slog.Logger
}

var (
	_ source.Type     = (*SourceType)(nil)
	_ source.Consumer = (*Consumer)(nil)
	_ source.Batch    = (*batch)(nil)
)

// NewSource returns the Kafka source type for a node.
func NewSource(env source.Env) *SourceType {
	t := &SourceType{env: env, log: env.Logger}
	if t.log == nil {
		t.log = slog.New(slog.DiscardHandler)
	}
	return t
}

// Name is "kafka".
func (t *SourceType) Name() string { return "kafka" }

// Secrets names the settings fields holding credentials.
func (t *SourceType) Secrets() []string { return []string{"password"} }

// Check validates the settings field by field and returns them with their defaults. No I/O.
func (t *SourceType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := checkSource(raw)
	return destination.EncodeSettings(s, errs)
}

// Open creates the consumer's client, a member of the consumer group tg.Group on the source's
// topics, and checks that the brokers answer and that every topic exists (Herald never creates
// one). The group itself is created by the cluster when the first member joins.
func (t *SourceType) Open(ctx context.Context, tg source.Target) (source.Consumer, error) {
	s, errs := checkSource(tg.Settings)
	if errs != nil {
		return nil, fmt.Errorf("kafka source %s: invalid settings: %w", tg.SourceID, errs[0])
	}
	if tg.Group == "" {
		return nil, fmt.Errorf("kafka source %s: a consumer group name is required", tg.SourceID)
	}
	dial := t.env.DialerFor(tg.Internal)
	c := &Consumer{sourceID: tg.SourceID, group: tg.Group, topics: s.Topics, log: t.log}
	reset := kgo.NewOffset().AtEnd()
	if s.Start == StartAll {
		reset = kgo.NewOffset().AtStart()
	}
	opts := connOpts(s.Brokers, mechanism(s.SASL, s.Username, s.Password), guardedDialer(dial, s.TLS, &c.connWatch))
	opts = append(opts,
		kgo.ConsumerGroup(tg.Group),
		kgo.ConsumeTopics(s.Topics...),
		kgo.ConsumeResetOffset(reset),
		kgo.DisableAutoCommit(),
		// A rebalance waits until the batch is settled (Ack, Nak, or the next Fetch): the
		// batch's commit happens while this member still owns its partitions, and a Nak's
		// seek back applies to partitions it still consumes.
		kgo.BlockRebalanceOnPoll(),
		// A node that dies holds its partitions until the group gives up on it: 10 s (Kafka's
		// default is 45 s), so that a crashed or killed node's share moves to the others soon.
		// The store commits a batch in far less, so no live member is dropped for it.
		kgo.SessionTimeout(sessionTimeout),
		kgo.MaxConcurrentFetches(1),
		kgo.FetchMaxBytes(fetchMaxBytes),
		kgo.FetchMaxPartitionBytes(fetchMaxBytes),
		kgo.FetchMaxWait(fetchMaxWait),
		kgo.WithHooks(&c.connWatch),
	)
	// Before joining: check the brokers and the topics, and pin where "new" starts, with a
	// short-lived client outside the group (same connection settings and dialer).
	admin, err := kgo.NewClient(connOpts(s.Brokers, mechanism(s.SASL, s.Username, s.Password), guardedDialer(dial, s.TLS, &c.connWatch))...)
	if err != nil {
		return nil, &source.Error{Source: "kafka", Op: "create the client", Kind: destination.KindBrokerError, Msg: "cannot create the Kafka client: " + err.Error(), Err: err}
	}
	c.cl = admin
	err = c.checkTopics(ctx)
	if err == nil && s.Start == StartNew {
		err = c.pinStart(ctx, tg.Created)
	}
	admin.Close()
	if err != nil {
		return nil, err
	}
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return nil, &source.Error{Source: "kafka", Op: "create the client", Kind: destination.KindBrokerError, Msg: "cannot create the Kafka client: " + err.Error(), Err: err}
	}
	c.cl = cl
	return c, nil
}

// pinStart commits, for a group that has no committed offset on a partition of the topics, the
// offset of the partition's first record since created (its current end when created is zero). Without it, start "new" would lose records: a member that fetched
// records and died before its first commit leaves no offset, and the next member would start
// at the (later) end again. It uses an admin commit, which Kafka accepts only while the group
// has no members; when it has some, one of them pinned the start when it was first (or a
// partition added since is read from its end, see docs/sources/kafka.md).
func (c *Consumer) pinStart(ctx context.Context, created time.Time) error {
	adm := kadm.NewClient(c.cl)
	committed, err := adm.FetchOffsets(ctx, c.group)
	if err != nil && !errors.Is(err, kerr.GroupIDNotFound) {
		return c.classify(fmt.Sprintf("read the committed offsets of group %q", c.group), err)
	}
	// The start is the first record produced since the source was created (record timestamps,
	// the producers' clocks), or the end when that time is unknown: a record produced once the
	// API answered is read even if no node had opened the consumer yet.
	var ends kadm.ListedOffsets
	if created.IsZero() {
		ends, err = adm.ListEndOffsets(ctx, c.topics...)
	} else {
		ends, err = adm.ListOffsetsAfterMilli(ctx, created.UnixMilli(), c.topics...)
	}
	if err != nil {
		return c.classify("list the topics' start offsets", err)
	}
	var pin kadm.Offsets
	var lerr error
	ends.Each(func(lo kadm.ListedOffset) {
		if lo.Err != nil {
			lerr = lo.Err
			return
		}
		if o, ok := committed.Lookup(lo.Topic, lo.Partition); ok && o.Err == nil && o.At >= 0 {
			return
		}
		pin.AddOffset(lo.Topic, lo.Partition, lo.Offset, -1)
	})
	if lerr != nil {
		return c.classify("list the topics' start offsets", lerr)
	}
	if len(pin) == 0 {
		return nil
	}
	resp, err := adm.CommitOffsets(ctx, c.group, pin)
	if err == nil {
		err = resp.Error()
	}
	switch {
	case err == nil:
		c.log.Debug("kafka source: start offsets pinned", "source", c.sourceID, "group", c.group)
		return nil
	case errors.Is(err, kerr.UnknownMemberID), errors.Is(err, kerr.IllegalGeneration),
		errors.Is(err, kerr.RebalanceInProgress), errors.Is(err, kerr.FencedInstanceID):
		// The group has members: not ours to pin.
		return nil
	}
	return c.classify(fmt.Sprintf("commit the start offsets of group %q", c.group), err)
}

// Consumer is one member of the source's consumer group. Fetch, Ack and Nak are called by one
// goroutine at a time (the runner's); Close may be called from another.
type Consumer struct {
	cl       *kgo.Client
	sourceID string
	group    string
	topics   []string
	log      *slog.Logger
	connWatch

	mu        sync.Mutex
	notBefore time.Time // a Nak's delay: Fetch returns nothing before it
	closed    bool
	closeOnce sync.Once
}

// checkTopics asks the cluster for the topics' metadata: the brokers must answer and every
// topic must exist.
func (c *Consumer) checkTopics(ctx context.Context) error {
	req := kmsg.NewPtrMetadataRequest()
	req.AllowAutoTopicCreation = false
	for _, tp := range c.topics {
		rt := kmsg.NewMetadataRequestTopic()
		rt.Topic = kmsg.StringPtr(tp)
		req.Topics = append(req.Topics, rt)
	}
	start := time.Now()
	resp, err := c.request(ctx, req)
	if err != nil {
		if cerr := c.recentConnFailure(start); cerr != nil {
			err = cerr
		}
		return c.classify("read the topics' metadata", err)
	}
	for _, rt := range resp.(*kmsg.MetadataResponse).Topics {
		name := ""
		if rt.Topic != nil {
			name = *rt.Topic
		}
		if err := kerr.ErrorForCode(rt.ErrorCode); err != nil {
			if errors.Is(err, kerr.UnknownTopicOrPartition) {
				return &source.Error{Source: "kafka", Op: "read the topics' metadata", Kind: destination.KindNoRoute, Err: err,
					Msg: fmt.Sprintf("topic %q does not exist on the Kafka cluster: Herald reads it, it never creates it", name)}
			}
			return c.classify(fmt.Sprintf("read topic %q's metadata", name), err)
		}
	}
	return nil
}

// request issues req, giving up early when the client's connections fail in a way no retry
// fixes (the address is blocked, the credentials are refused): franz-go would retry them
// until ctx ends.
func (c *Consumer) request(ctx context.Context, req kmsg.Request) (kmsg.Response, error) {
	rctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type result struct {
		resp kmsg.Response
		err  error
	}
	done := make(chan result, 1)
	start := time.Now()
	go func() {
		resp, err := c.cl.Request(rctx, req)
		done <- result{resp, err}
	}()
	tick := time.NewTicker(connPoll)
	defer tick.Stop()
	for {
		select {
		case r := <-done:
			return r.resp, r.err
		case <-tick.C:
			if err := c.recentConnFailure(start); err != nil && permanentConnErr(err) {
				cancel()
				<-done
				return nil, err
			}
		}
	}
}

// classify turns a failure into a source.Error naming its kind.
func (c *Consumer) classify(op string, err error) *source.Error {
	se := &source.Error{Source: "kafka", Op: op, Err: err}
	switch {
	case errors.Is(err, kerr.TopicAuthorizationFailed):
		se.Kind, se.Msg = destination.KindDenied, "the Kafka user is not allowed to read the topics"
	case errors.Is(err, kerr.GroupAuthorizationFailed):
		se.Kind, se.Msg = destination.KindDenied, fmt.Sprintf("the Kafka user is not allowed to use the consumer group %q", c.group)
	case errors.Is(err, kerr.SaslAuthenticationFailed), errors.Is(err, kerr.IllegalSaslState):
		se.Kind, se.Msg = destination.KindDenied, "the Kafka brokers refused the username or password"
	case errors.Is(err, kerr.UnsupportedSaslMechanism):
		se.Kind, se.Msg = destination.KindDenied, "the Kafka brokers do not support the SASL mechanism"
	case errors.Is(err, kgo.ErrClientClosed):
		se.Kind, se.Msg = destination.KindCanceled, "the consumer is closed"
	case errors.Is(err, context.Canceled):
		se.Kind, se.Msg = destination.KindCanceled, "canceled before the Kafka cluster answered"
	case errors.Is(err, context.DeadlineExceeded):
		se.Kind, se.Msg = destination.KindTimeout, "the Kafka cluster did not answer in time"
	default:
		var ke *kerr.Error
		if errors.As(err, &ke) {
			se.Kind, se.Msg = destination.KindBrokerError, fmt.Sprintf("the Kafka broker answered %s: %s", ke.Message, ke.Description)
			break
		}
		_, kind, msg := classifyDial(err)
		se.Kind, se.Msg = kind, msg
	}
	return se
}

// Fetch waits up to maxWait for records of the member's partitions and returns at most max of
// them. It first allows a rebalance the previous batch held back: call it after settling that
// batch (a batch neither acked nor nak'd is then simply not committed, and comes back to
// whoever owns its partition after a restart or rebalance). An error means the brokers cannot
// be reached or refused the member.
func (c *Consumer) Fetch(ctx context.Context, max int, maxWait time.Duration) (source.Batch, error) {
	if max <= 0 {
		return nil, fmt.Errorf("kafka source %s: fetch: max must be positive, got %d", c.sourceID, max)
	}
	c.mu.Lock()
	closed, notBefore := c.closed, c.notBefore
	c.mu.Unlock()
	if closed {
		return nil, c.classify("fetch", kgo.ErrClientClosed)
	}
	c.cl.AllowRebalance()
	if wait := time.Until(notBefore); wait > 0 {
		// A Nak asked for a delay: nothing before it.
		t := time.NewTimer(min(wait, maxWait))
		defer t.Stop()
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-t.C:
		}
		if time.Now().Before(notBefore) {
			return &batch{c: c}, nil
		}
	}
	start := time.Now()
	pctx, cancel := context.WithTimeout(ctx, maxWait)
	fs := c.cl.PollRecords(pctx, max)
	cancel()
	var ferr error
	fs.EachError(func(topic string, p int32, err error) {
		if ferr == nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) {
			ferr = fmt.Errorf("topic %q partition %d: %w", topic, p, err)
		}
	})
	recs := fs.Records()
	if len(recs) == 0 {
		c.cl.AllowRebalance()
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		if ferr == nil {
			// franz-go retries connections inside the client: a poll that found nothing
			// while the brokers cannot be reached is the outage, reported.
			ferr = c.recentConnFailure(start)
		}
		if ferr != nil {
			return nil, c.classify("fetch", ferr)
		}
		return &batch{c: c}, nil
	}
	msgs := make([]source.Message, len(recs))
	for i, r := range recs {
		msgs[i] = recordMessage(r)
	}
	return &batch{c: c, recs: recs, msgs: msgs}, nil
}

// recordMessage is a record as a source.Message.
func recordMessage(r *kgo.Record) source.Message {
	m := source.Message{
		Body:    r.Value,
		Subject: r.Topic,
		ID:      r.Topic + ":" + strconv.FormatInt(int64(r.Partition), 10) + ":" + strconv.FormatInt(r.Offset, 10),
		Time:    r.Timestamp,
	}
	if len(r.Headers) > 0 {
		m.Header = make(map[string][]string, len(r.Headers))
		for _, h := range r.Headers {
			m.Header[h.Key] = append(m.Header[h.Key], string(h.Value))
		}
	}
	return m
}

// Close leaves the group without committing anything: the member's partitions, with their
// unacknowledged records, go to the other members.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.cl.CloseAllowingRebalance()
	})
	return nil
}

// batch is the records of one Fetch.
type batch struct {
	c    *Consumer
	recs []*kgo.Record
	msgs []source.Message
}

func (b *batch) Messages() []source.Message { return b.msgs }

// Ack commits, for each partition of the batch, the batch's highest offset + 1, synchronously:
// when it returns nil the group's committed offsets are past every record of the batch. It runs
// before the rebalance the batch holds back, so the member still owns the partitions.
func (b *batch) Ack(ctx context.Context) error {
	if len(b.recs) == 0 {
		return nil
	}
	defer b.c.cl.AllowRebalance()
	if err := b.c.cl.CommitRecords(ctx, b.recs...); err != nil {
		return b.c.classify(fmt.Sprintf("commit the offsets of %d records", len(b.recs)), err)
	}
	return nil
}

// Nak commits nothing and moves the member's position on each partition of the batch back to
// the batch's lowest offset there (records the client buffered after them are dropped), so
// that the next Fetch reads them again, not before delay.
func (b *batch) Nak(_ context.Context, delay time.Duration) error {
	if len(b.recs) == 0 {
		return nil
	}
	defer b.c.cl.AllowRebalance()
	back := map[string]map[int32]kgo.EpochOffset{}
	for _, r := range b.recs {
		ps := back[r.Topic]
		if ps == nil {
			ps = map[int32]kgo.EpochOffset{}
			back[r.Topic] = ps
		}
		if at, ok := ps[r.Partition]; !ok || r.Offset < at.Offset {
			ps[r.Partition] = kgo.EpochOffset{Epoch: -1, Offset: r.Offset}
		}
	}
	b.c.cl.SetOffsets(back)
	if delay > 0 {
		b.c.mu.Lock()
		b.c.notBefore = time.Now().Add(delay)
		b.c.mu.Unlock()
	}
	return nil
}
