package redisstream

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/source"
)

// SourceType is the Redis Streams source type ("redis"): a consumer group on a stream, shared by
// every node of the source, each node a member of it. It owns its own pool of clients (the same
// pool, guarded dialer and connection bound as the destination's), closed by Close.
//
// Each Fetch takes, in this order: the entries pending for this member from before (a restart:
// XREADGROUP from id 0, once per consumer), then entries pending longer than claim_idle for any
// member, a dead one's or a Nak'd batch's (XAUTOCLAIM), then new entries (XREADGROUP >, blocking
// up to maxWait).
type SourceType struct {
	pool *pool
}

var (
	_ source.Type     = (*SourceType)(nil)
	_ source.Consumer = (*Consumer)(nil)
	_ source.Batch    = (*batch)(nil)
)

// NewSource returns the source type; Close releases its connections.
func NewSource(env source.Env) *SourceType {
	return &SourceType{pool: newPool(destination.Env{Dial: env.Dial, InternalDial: env.InternalDial, Logger: env.Logger})}
}

// Name is "redis".
func (t *SourceType) Name() string { return Name }

// Secrets names the password.
func (t *SourceType) Secrets() []string { return []string{"password"} }

// Check validates the settings field by field and returns them with their defaults.
func (t *SourceType) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := checkSource(raw)
	return destination.EncodeSettings(s, errs)
}

// Close closes every pooled connection; open consumers fail afterwards.
func (t *SourceType) Close() error { return t.pool.close() }

// Open connects, creates the consumer group Target.Group on the stream if it does not exist
// (never the stream: a missing stream is an error naming it), and returns the consumer of the
// member Target.Member.
func (t *SourceType) Open(ctx context.Context, tg source.Target) (source.Consumer, error) {
	s, errs := checkSource(tg.Settings)
	if errs != nil {
		return nil, fmt.Errorf("redis source %s: invalid settings: %w", tg.SourceID, errs[0])
	}
	if tg.Group == "" || tg.Member == "" {
		return nil, fmt.Errorf("redis source %s: a consumer group and a member name are required", tg.SourceID)
	}
	e, put, err := t.pool.lease(ctx, s.key(tg.Internal))
	if err != nil {
		return nil, fmt.Errorf("redis source %s: %w", tg.SourceID, err)
	}
	c := &Consumer{
		e:             e,
		put:           put,
		sourceID:      tg.SourceID,
		address:       s.Address,
		stream:        s.Stream,
		group:         tg.Group,
		member:        tg.Member,
		bodyField:     s.BodyField,
		claimIdle:     s.claimIdle,
		pendingCursor: "0",
		claimCursor:   "0-0",
		closed:        make(chan struct{}),
	}
	start := groupStart(s.Start, tg.Created)
	if err := e.client.XGroupCreate(ctx, s.Stream, tg.Group, start).Err(); err != nil && !strings.HasPrefix(err.Error(), "BUSYGROUP") {
		put()
		if strings.Contains(err.Error(), "requires the key to exist") {
			return nil, &source.Error{Source: "redis", Op: "create the consumer group", Kind: destination.KindNoRoute, Err: err,
				Msg: fmt.Sprintf("the stream %q does not exist on redis at %s (db %d): Herald creates its consumer group %q on it, never the stream itself", s.Stream, s.Address, s.db(), tg.Group)}
		}
		return nil, c.fail("create the consumer group", err)
	}
	return c, nil
}

// groupStart is the id the consumer group starts after: "0" for all entries; for new ones, the
// last id possible in the millisecond before the source was created (entry ids are the Redis
// server's milliseconds: a clock skew between it and Herald moves the start by as much), or "$"
// (the stream's last entry when the group is created) when that time is unknown.
func groupStart(start string, created time.Time) string {
	switch {
	case start == StartAll:
		return "0"
	case created.IsZero() || created.UnixMilli() <= 0:
		return "$"
	}
	return fmt.Sprintf("%d-%d", created.UnixMilli()-1, uint64(math.MaxUint64))
}

// Consumer reads one stream as one member of a consumer group.
type Consumer struct {
	e         *entry
	put       func() // gives e back to the pool
	sourceID  string
	address   string
	stream    string
	group     string
	member    string
	bodyField string
	claimIdle time.Duration

	// Fetch is called by one goroutine at a time: the cursors are its own.
	// pendingCursor is the last id of this member's own pending entries read back after a
	// (re)start; "" once they are all read.
	pendingCursor string
	// claimCursor is where the XAUTOCLAIM scan of the group's pending entries resumes; nextClaim
	// is when the next scan starts after one that found nothing.
	claimCursor string
	nextClaim   time.Time

	closeOnce sync.Once
	closed    chan struct{}
}

func (c *Consumer) fail(op string, err error) error {
	var already *source.Error
	if errors.As(err, &already) {
		return err
	}
	_, kind, msg := classify(err, c.address, c.stream)
	var rerr redis.Error
	if errors.As(err, &rerr) && strings.HasPrefix(rerr.Error(), "NOGROUP") {
		kind = destination.KindNoRoute
		msg = fmt.Sprintf("the stream %q or its consumer group %q no longer exists on redis at %s (the next consumer recreates the group if the stream is there)", c.stream, c.group, c.address)
	}
	return &source.Error{Source: "redis", Op: op, Kind: kind, Msg: msg, Err: err}
}

var errConsumerClosed = errors.New("the consumer is closed")

// Fetch returns at most limit entries, waiting up to maxWait for new ones.
func (c *Consumer) Fetch(ctx context.Context, limit int, maxWait time.Duration) (source.Batch, error) {
	if c.isClosed() {
		return nil, &source.Error{Source: "redis", Op: "fetch", Kind: destination.KindCanceled, Msg: errConsumerClosed.Error(), Err: errConsumerClosed}
	}
	limit = max(limit, 1)
	cl := c.e.client

	// This member's own pending entries, from before a restart or a failed ack.
	for c.pendingCursor != "" {
		res, err := cl.XReadGroup(ctx, &redis.XReadGroupArgs{
			Group: c.group, Consumer: c.member, Streams: []string{c.stream, c.pendingCursor},
			Count: int64(limit), Block: -1,
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, c.fail("read this member's pending entries", err)
		}
		xs := entries(res)
		if len(xs) == 0 {
			c.pendingCursor = ""
			break
		}
		c.pendingCursor = xs[len(xs)-1].ID
		b, err := c.batch(ctx, xs)
		if err != nil || len(b.msgs) > 0 {
			return b, err
		}
	}

	// Entries pending too long: a dead member's, or a batch given back by Nak.
	if now := time.Now(); !now.Before(c.nextClaim) {
		xs, next, err := cl.XAutoClaim(ctx, &redis.XAutoClaimArgs{
			Stream: c.stream, Group: c.group, Consumer: c.member,
			MinIdle: c.claimIdle, Start: c.claimCursor, Count: int64(limit),
		}).Result()
		if err != nil && !errors.Is(err, redis.Nil) {
			return nil, c.fail("reclaim entries pending longer than claim_idle", err)
		}
		c.claimCursor = next
		if next == "" || next == "0-0" {
			c.claimCursor = "0-0"
			if len(xs) == 0 {
				// The whole pending list is scanned: look again in half the claim time.
				c.nextClaim = now.Add(c.claimIdle / 2)
			}
		}
		if len(xs) > 0 {
			b, err := c.batch(ctx, xs)
			if err != nil || len(b.msgs) > 0 {
				return b, err
			}
		}
	}

	// New entries.
	block := time.Duration(-1) // go-redis: no BLOCK
	if maxWait > 0 {
		block = max(maxWait, time.Millisecond) // BLOCK 0 would wait forever
	}
	res, err := cl.XReadGroup(ctx, &redis.XReadGroupArgs{
		Group: c.group, Consumer: c.member, Streams: []string{c.stream, ">"},
		Count: int64(limit), Block: block,
	}).Result()
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, c.fail("read new entries", err)
	}
	return c.batch(ctx, entries(res))
}

func entries(res []redis.XStream) []redis.XMessage {
	if len(res) == 0 {
		return nil
	}
	return res[0].Messages
}

// batch turns entries into messages. An entry pending for the group but deleted from the stream
// (XDEL, MAXLEN trimming) has no fields and nothing to deliver: it is acknowledged at once, so
// that it does not stay pending forever.
func (c *Consumer) batch(ctx context.Context, xs []redis.XMessage) (*batch, error) {
	b := &batch{c: c, msgs: make([]source.Message, 0, len(xs)), ids: make([]string, 0, len(xs))}
	var gone []string
	for _, x := range xs {
		if x.Values == nil {
			gone = append(gone, x.ID)
			continue
		}
		b.msgs = append(b.msgs, c.message(x))
		b.ids = append(b.ids, x.ID)
	}
	if len(gone) > 0 {
		if err := c.ack(ctx, gone); err != nil {
			return nil, c.fail("acknowledge entries deleted from the stream", err)
		}
	}
	return b, nil
}

// message maps an entry: the body field is the body, every other field a header; an entry
// without the body field has as body the JSON object of all its fields.
func (c *Consumer) message(x redis.XMessage) source.Message {
	m := source.Message{ID: x.ID, Subject: c.stream, Time: idTime(x.ID), Header: make(map[string][]string, len(x.Values))}
	all := make(map[string]string, len(x.Values))
	for k, v := range x.Values {
		s := fieldString(v)
		all[k] = s
		if k == c.bodyField {
			m.Body = []byte(s)
			continue
		}
		m.Header[k] = []string{s}
	}
	if _, ok := x.Values[c.bodyField]; !ok {
		m.Body, _ = json.Marshal(all) // a map of strings always encodes
	}
	return m
}

func fieldString(v any) string {
	switch v := v.(type) {
	case string:
		return v
	case []byte:
		return string(v)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// idTime is the time in an entry id ("<unix ms>-<seq>"): when the entry was added.
func idTime(id string) time.Time {
	ms, _, _ := strings.Cut(id, "-")
	n, err := strconv.ParseInt(ms, 10, 64)
	if err != nil {
		return time.Time{}
	}
	return time.UnixMilli(n)
}

// ackChunk bounds the ids of one XACK.
const ackChunk = 1000

// ack XACKs ids in one pipeline.
func (c *Consumer) ack(ctx context.Context, ids []string) error {
	cmds := make([]*redis.IntCmd, 0, (len(ids)+ackChunk-1)/ackChunk)
	_, err := c.e.client.Pipelined(ctx, func(p redis.Pipeliner) error {
		for chunk := range slicesChunk(ids, ackChunk) {
			cmds = append(cmds, p.XAck(ctx, c.stream, c.group, chunk...))
		}
		return nil
	})
	if err != nil {
		return err
	}
	for _, cmd := range cmds {
		if err := cmd.Err(); err != nil {
			return err
		}
	}
	return nil
}

func slicesChunk(ids []string, n int) func(func([]string) bool) {
	return func(yield func([]string) bool) {
		for len(ids) > 0 {
			k := min(n, len(ids))
			if !yield(ids[:k]) {
				return
			}
			ids = ids[k:]
		}
	}
}

func (c *Consumer) isClosed() bool {
	select {
	case <-c.closed:
		return true
	default:
		return false
	}
}

// Close leaves the group's pending entries of this member as they are (another member takes
// them over after claim_idle, or this member after a restart) and gives the client back to the
// pool.
func (c *Consumer) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.put()
	})
	return nil
}

// batch is entries taken together.
type batch struct {
	c    *Consumer
	msgs []source.Message
	ids  []string
}

func (b *batch) Messages() []source.Message { return b.msgs }

// Ack XACKs the batch's entries: the group never delivers them again.
func (b *batch) Ack(ctx context.Context) error {
	if len(b.ids) == 0 {
		return nil
	}
	if err := b.c.ack(ctx, b.ids); err != nil {
		return b.c.fail("acknowledge", err)
	}
	return nil
}

// Nak leaves the entries pending: Redis has no way to give an entry back to the group. They are
// delivered again once pending longer than claim_idle (XAUTOCLAIM by any member, this one
// included), or at once to this member when its consumer is opened again. delay is not used:
// claim_idle is the delay.
func (b *batch) Nak(context.Context, time.Duration) error { return nil }
