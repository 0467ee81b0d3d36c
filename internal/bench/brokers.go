package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"

	"github.com/heraldhq/herald/internal/dispatch"
	"github.com/heraldhq/herald/internal/node"
)

// BrokerTarget is issue 15's bound for broker destinations: Herald delivers from a backlog at
// least half as fast as a plain client of the same library publishes the same messages with the
// same acknowledgement settings, and its publish-to-consume p99 at a steady rate is at most twice
// the plain client's (a ratio ≥ 0.5 both ways).
const BrokerTarget = 0.5

// BrokerConfig is the broker destinations scenario: for each broker given an address, one
// endpoint of that type, a backlog drained, then a steady rate, each against a plain client.
type BrokerConfig struct {
	NATSURL   string // nats://127.0.0.1:4222 (JetStream on)
	AMQPURL   string // amqp://guest:guest@127.0.0.1:5672/
	RedisAddr string // 127.0.0.1:6379
	// Backlog is how many events the drain delivers (default 20,000); Rate the steady rate in
	// events per second (default 1,000) for Duration (default 10 s).
	Backlog  int
	Rate     float64
	Duration time.Duration
	// Concurrency is the endpoint's max_concurrency and the plain client's publishers (default 10).
	Concurrency int
	PayloadSize int // bytes of each event's data (default 1,024)
	DatabaseURL string
	Synchronous string
	Logger      *slog.Logger
}

func (c *BrokerConfig) defaults() {
	if c.Backlog <= 0 {
		c.Backlog = 20000
	}
	if c.Rate <= 0 {
		c.Rate = 1000
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 10
	}
	if c.PayloadSize <= 0 {
		c.PayloadSize = 1024
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// BrokerRun is what one broker type did.
type BrokerRun struct {
	Type string
	// DrainRate is Herald's messages per second consumed from the broker while it drained the
	// backlog; CeilingRate the plain client's publishing the same number of messages.
	DrainRate, CeilingRate float64
	// DrainCPU is the CPU time (user + system) of this whole process (the node and the
	// consumer; not the broker) per message drained, in µs.
	DrainCPU float64
	// P50/P99 are publish (HTTP request sent) to consume at Rate through Herald; CeilP50/CeilP99
	// the plain client's publish to consume at the same rate.
	P50, P99, CeilP50, CeilP99 time.Duration
	// Missing counts events (of both phases) not consumed within a minute; Duplicates, those
	// consumed more than once.
	Missing, Duplicates int
}

// RateRatio is Herald's drain rate over the ceiling's.
func (r *BrokerRun) RateRatio() float64 {
	if r.CeilingRate <= 0 {
		return 0
	}
	return r.DrainRate / r.CeilingRate
}

// LatencyRatio is the plain client's p99 over Herald's (≥ 0.5: Herald at most twice as slow).
func (r *BrokerRun) LatencyRatio() float64 { return ratio(r.CeilP99, r.P99) }

// rig is one broker: the endpoint's settings, a consumer that reports each message's webhook-id
// as it arrives, and a plain publisher with the acknowledgement settings Herald's type uses.
type rig interface {
	name() string
	settings() map[string]any
	// sourceConfig is a broker source's config reading what publish puts on the broker.
	sourceConfig() map[string]any
	consume(ctx context.Context, seen func(id string)) error
	// publish sends one message and waits for the broker's acknowledgement.
	publish(ctx context.Context, id string, body []byte) error
	close()
}

// RunBrokers runs the scenario for each broker with an address.
func RunBrokers(ctx context.Context, cfg BrokerConfig) ([]*BrokerRun, error) {
	cfg.defaults()
	return eachRig(ctx, cfg, "", runBroker)
}

// eachRig runs fn on a rig of each broker cfg gives an address, one after the other; suffix
// makes the rigs' names (streams, queues) the scenario's own.
func eachRig[R any](ctx context.Context, cfg BrokerConfig, suffix string, fn func(context.Context, BrokerConfig, rig) (R, error)) ([]R, error) {
	suffix = strconv.FormatInt(time.Now().UnixNano(), 36) + suffix
	var rigs []func() (rig, error)
	if cfg.NATSURL != "" {
		rigs = append(rigs, func() (rig, error) { return newNATSRig(ctx, cfg.NATSURL, suffix) })
	}
	if cfg.AMQPURL != "" {
		rigs = append(rigs, func() (rig, error) { return newAMQPRig(cfg.AMQPURL, suffix) })
	}
	if cfg.RedisAddr != "" {
		rigs = append(rigs, func() (rig, error) { return newRedisRig(cfg.RedisAddr, suffix), nil })
	}
	if len(rigs) == 0 {
		return nil, errors.New("no broker address given (--nats-url, --amqp-url, --redis-addr)")
	}
	var out []R
	for _, mk := range rigs {
		rg, err := mk()
		if err != nil {
			return nil, err
		}
		r, err := fn(ctx, cfg, rg)
		rg.close()
		if err != nil {
			return nil, fmt.Errorf("%s: %w", rg.name(), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// arrivals records the first time each id was consumed.
type arrivals struct {
	mu    sync.Mutex
	first map[string]time.Time
	dups  int
	n     atomic.Int64
}

func (a *arrivals) seen(id string) {
	now := time.Now()
	a.mu.Lock()
	if _, ok := a.first[id]; ok {
		a.dups++
	} else {
		a.first[id] = now
		a.n.Add(1)
	}
	a.mu.Unlock()
}

func (a *arrivals) at(id string) (time.Time, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	t, ok := a.first[id]
	return t, ok
}

// waitFor waits until n ids were consumed, or a minute without progress.
func (a *arrivals) waitFor(ctx context.Context, n int64) error {
	last, lastAt := a.n.Load(), time.Now()
	for a.n.Load() < n {
		if cur := a.n.Load(); cur != last {
			last, lastAt = cur, time.Now()
		} else if time.Since(lastAt) > time.Minute {
			return nil // the missing ones are counted by the caller
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(5 * time.Millisecond):
		}
	}
	return nil
}

func runBroker(ctx context.Context, cfg BrokerConfig, rg rig) (*BrokerRun, error) {
	run := &BrokerRun{Type: rg.name()}
	seen := &arrivals{first: map[string]time.Time{}}
	cctx, stopConsume := context.WithCancel(ctx)
	defer stopConsume()
	consumeErr := make(chan error, 1)
	go func() { consumeErr <- rg.consume(cctx, seen.seen) }()

	dir, err := os.MkdirTemp("", "herald-bench-")
	if err != nil {
		return nil, fmt.Errorf("temp dir: %w", err)
	}
	defer os.RemoveAll(dir)
	schema := ""
	if cfg.DatabaseURL != "" {
		schema = fmt.Sprintf("herald_bench_%d", time.Now().UnixNano())
		defer dropSchema(cfg.DatabaseURL, schema)
	}
	n, err := node.Start(ctx, node.Config{
		Addr: "127.0.0.1:0", DataDir: dir, Dev: true, APIKey: benchKey, Logger: cfg.Logger,
		DatabaseURL: cfg.DatabaseURL, DatabaseSchema: schema, SQLiteSynchronous: cfg.Synchronous, Retention: -1,
		Dispatch: dispatch.Config{Logger: cfg.Logger},
	})
	if err != nil {
		return nil, fmt.Errorf("node: %w", err)
	}
	defer func() {
		c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		_ = n.Close(c)
	}()
	api := &client{base: n.URL(), http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}}
	if err := api.post(ctx, "/v1/event-types", `{"name":"bench.happened"}`, http.StatusCreated); err != nil {
		return nil, err
	}
	if _, err := api.must(ctx, "POST", "/v1/tenants", map[string]any{"id": "bench", "name": "Bench"}, http.StatusCreated); err != nil {
		return nil, err
	}
	// The backlog builds while the endpoint may send one message every 100 s, then drains at
	// full speed once the limit is lifted.
	ans, err := api.must(ctx, "POST", "/v1/tenants/bench/endpoints", map[string]any{"type": rg.name(), "config": rg.settings(),
		"event_types": []string{"*"}, "max_concurrency": cfg.Concurrency, "rate_limit": 0.01}, http.StatusCreated)
	if err != nil {
		return nil, err
	}
	var ep struct {
		ID string `json:"id"`
	}
	if err := json.Unmarshal(ans, &ep); err != nil || ep.ID == "" {
		return nil, fmt.Errorf("endpoint: no id in %s", ans)
	}
	data := `{"s":"` + strings.Repeat("x", max(cfg.PayloadSize-8, 1)) + `"}`
	for start := 0; start < cfg.Backlog; start += 100 {
		var b strings.Builder
		b.WriteString(`{"events":[`)
		for i := start; i < min(start+100, cfg.Backlog); i++ {
			if i > start {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"id":"drain-%d","type":"bench.happened","data":%s}`, i, data)
		}
		b.WriteString(`]}`)
		if err := api.post(ctx, "/v1/tenants/bench/events/batch", b.String(), http.StatusAccepted); err != nil {
			return nil, fmt.Errorf("backlog: %w", err)
		}
	}
	before := seen.n.Load() // the one or two the rate limit let through
	start, cpu := time.Now(), selfCPU()
	if _, err := api.must(ctx, "PATCH", "/v1/tenants/bench/endpoints/"+ep.ID, map[string]any{"rate_limit": 0}, http.StatusOK); err != nil {
		return nil, err
	}
	if err := seen.waitFor(ctx, int64(cfg.Backlog)); err != nil {
		return nil, err
	}
	run.DrainRate = float64(seen.n.Load()-before) / time.Since(start).Seconds()
	run.DrainCPU = float64((selfCPU() - cpu).Microseconds()) / float64(max(seen.n.Load()-before, 1))

	// The steady rate: single publishes, each sent at its time whatever the answers take.
	total := int(cfg.Rate * cfg.Duration.Seconds())
	sent := make([]time.Time, total)
	var wg sync.WaitGroup
	t0 := time.Now()
	for i := range total {
		if wait := time.Until(t0.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			body := `{"id":"rate-` + strconv.Itoa(i) + `","type":"bench.happened","data":` + data + `}`
			sent[i] = time.Now()
			_, _, _ = api.do(ctx, "POST", "/v1/tenants/bench/events", body)
		}()
	}
	wg.Wait()
	if err := seen.waitFor(ctx, int64(cfg.Backlog+total)); err != nil {
		return nil, err
	}
	var lat []time.Duration
	for i := range total {
		if at, ok := seen.at("rate-" + strconv.Itoa(i)); ok {
			lat = append(lat, at.Sub(sent[i]))
		} else {
			run.Missing++
		}
	}
	for i := range cfg.Backlog {
		if _, ok := seen.at("drain-" + strconv.Itoa(i)); !ok {
			run.Missing++
		}
	}
	if len(lat) > 0 {
		slices.Sort(lat)
		run.P50, run.P99 = percentile(lat, 0.5), percentile(lat, 0.99)
	}

	// The ceiling: the plain client publishes the same envelope, first as fast as Concurrency
	// publishers can (the drain's ceiling), then at Rate (the latency's).
	envelope := []byte(`{"id":"x","type":"bench.happened","timestamp":"2026-01-01T00:00:00Z","data":` + data + `}`)
	var next atomic.Int64
	var failed atomic.Int64
	start = time.Now()
	for range cfg.Concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1); i <= int64(cfg.Backlog); i = next.Add(1) {
				if err := rg.publish(ctx, "ceil-"+strconv.FormatInt(i, 10), envelope); err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	run.CeilingRate = float64(cfg.Backlog) / time.Since(start).Seconds()
	csent := make([]time.Time, total)
	t0 = time.Now()
	for i := range total {
		if wait := time.Until(t0.Add(time.Duration(float64(i) / cfg.Rate * float64(time.Second)))); wait > 0 {
			time.Sleep(wait)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			csent[i] = time.Now()
			if err := rg.publish(ctx, "crate-"+strconv.Itoa(i), envelope); err != nil {
				failed.Add(1)
			}
		}()
	}
	wg.Wait()
	if f := failed.Load(); f > 0 {
		return nil, fmt.Errorf("plain client: %d publishes failed", f)
	}
	if err := seen.waitFor(ctx, int64(2*cfg.Backlog+2*total)); err != nil {
		return nil, err
	}
	var clat []time.Duration
	for i := range total {
		if at, ok := seen.at("crate-" + strconv.Itoa(i)); ok {
			clat = append(clat, at.Sub(csent[i]))
		}
	}
	if len(clat) > 0 {
		slices.Sort(clat)
		run.CeilP50, run.CeilP99 = percentile(clat, 0.5), percentile(clat, 0.99)
	}
	seen.mu.Lock()
	run.Duplicates = seen.dups
	seen.mu.Unlock()
	stopConsume()
	if err := <-consumeErr; err != nil && !errors.Is(err, context.Canceled) {
		return nil, fmt.Errorf("consumer: %w", err)
	}
	return run, nil
}

// PrintBrokers writes the scenario's table and verdicts.
func PrintBrokers(w io.Writer, cfg BrokerConfig, runs []*BrokerRun) {
	cfg.defaults()
	fmt.Fprintf(w, "backlog of %d events of %d B, then %.0f ev/s for %s; endpoint max_concurrency %d; plain client: %d publishers, same library and acknowledgements\n\n",
		cfg.Backlog, cfg.PayloadSize, cfg.Rate, cfg.Duration, cfg.Concurrency, cfg.Concurrency)
	fmt.Fprintln(w, "| type | drain (msg/s) | plain client (msg/s) | ratio | publish→consume p50 / p99 | plain client p50 / p99 | ratio (plain p99 / Herald p99) | missing | duplicates | drain CPU µs/msg (bench process) |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|---|---|")
	for _, r := range runs {
		fmt.Fprintf(w, "| %s | %.0f | %.0f | %.2f | %s / %s | %s / %s | %.2f | %d | %d | %.0f |\n", r.Type, r.DrainRate, r.CeilingRate, r.RateRatio(),
			ms(r.P50), ms(r.P99), ms(r.CeilP50), ms(r.CeilP99), r.LatencyRatio(), r.Missing, r.Duplicates, r.DrainCPU)
	}
	fmt.Fprintln(w)
	for _, r := range runs {
		verdict := func(x float64) string {
			if r.Missing > 0 {
				return "NOT met: events missing"
			}
			if x >= BrokerTarget {
				return "met"
			}
			return "NOT met"
		}
		fmt.Fprintf(w, "%s: drain %.2f of the ceiling (target ≥ %.1f: %s); p99 %.2f of the ceiling's (target ≥ %.1f: %s)\n",
			r.Type, r.RateRatio(), BrokerTarget, verdict(r.RateRatio()), r.LatencyRatio(), BrokerTarget, verdict(r.LatencyRatio()))
	}
}

// --- NATS JetStream: a stream of its own; the consumer is a core subscription on its subject.

type natsRig struct {
	url, subject, stream string
	nc                   *nats.Conn
	js                   jetstream.JetStream
}

func newNATSRig(ctx context.Context, url, suffix string) (*natsRig, error) {
	nc, err := nats.Connect(url)
	if err != nil {
		return nil, fmt.Errorf("nats: %w", err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		nc.Close()
		return nil, fmt.Errorf("jetstream: %w", err)
	}
	r := &natsRig{url: url, subject: "herald.bench." + suffix, stream: "HERALD_BENCH_" + strings.ToUpper(suffix), nc: nc, js: js}
	if _, err := js.CreateStream(ctx, jetstream.StreamConfig{Name: r.stream, Subjects: []string{r.subject}, Storage: jetstream.FileStorage}); err != nil {
		nc.Close()
		return nil, fmt.Errorf("create stream: %w", err)
	}
	return r, nil
}

func (r *natsRig) name() string { return "nats" }
func (r *natsRig) settings() map[string]any {
	return map[string]any{"url": r.url, "subject": r.subject, "stream": r.stream}
}

func (r *natsRig) consume(ctx context.Context, seen func(string)) error {
	sub, err := r.nc.Subscribe(r.subject, func(m *nats.Msg) { seen(m.Header.Get("webhook-id")) })
	if err != nil {
		return err
	}
	if err := sub.SetPendingLimits(-1, -1); err != nil {
		return err
	}
	<-ctx.Done()
	return sub.Unsubscribe()
}

func (r *natsRig) publish(ctx context.Context, id string, body []byte) error {
	m := nats.NewMsg(r.subject)
	m.Data = body
	m.Header.Set("webhook-id", id)
	m.Header.Set("content-type", "application/json")
	m.Header.Set("Nats-Msg-Id", id)
	_, err := r.js.PublishMsg(ctx, m, jetstream.WithExpectStream(r.stream))
	return err
}

func (r *natsRig) close() {
	_ = r.js.DeleteStream(context.Background(), r.stream)
	r.nc.Close()
}

// --- RabbitMQ: a queue of its own on the default exchange; publisher confirms and mandatory.

type amqpRig struct {
	url, queue string
	conn       *amqp.Connection
	chans      chan *amqp.Channel // confirm channels for the plain publishers
}

func newAMQPRig(url, suffix string) (*amqpRig, error) {
	conn, err := amqp.Dial(url)
	if err != nil {
		return nil, fmt.Errorf("amqp: %w", err)
	}
	r := &amqpRig{url: url, queue: "herald-bench-" + suffix, conn: conn, chans: make(chan *amqp.Channel, 64)}
	ch, err := conn.Channel()
	if err != nil {
		conn.Close()
		return nil, err
	}
	defer ch.Close()
	if _, err := ch.QueueDeclare(r.queue, true, false, false, false, nil); err != nil {
		conn.Close()
		return nil, fmt.Errorf("declare queue: %w", err)
	}
	return r, nil
}

func (r *amqpRig) name() string { return "rabbitmq" }

// settings are the URL without its credentials, which go in their own settings.
func (r *amqpRig) settings() map[string]any {
	u := r.url
	user, pass := "guest", "guest"
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.Index(u[i+3:], "@"); at >= 0 {
			cred := u[i+3 : i+3+at]
			user, pass, _ = strings.Cut(cred, ":")
			u = u[:i+3] + u[i+3+at+1:]
		}
	}
	return map[string]any{"url": u, "username": user, "password": pass, "exchange": "", "routing_key": r.queue}
}

func (r *amqpRig) consume(ctx context.Context, seen func(string)) error {
	// The channel is not closed here: amqp091's Close waits on deliveries in flight; closing the
	// connection (close) ends it.
	ch, err := r.conn.Channel()
	if err != nil {
		return err
	}
	msgs, err := ch.ConsumeWithContext(ctx, r.queue, "", true, false, false, false, nil)
	if err != nil {
		return err
	}
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case m, ok := <-msgs:
			if !ok {
				return errors.New("consumer channel closed")
			}
			id, _ := m.Headers["webhook-id"].(string)
			if id == "" {
				id = m.MessageId
			}
			seen(id)
		}
	}
}

func (r *amqpRig) publish(ctx context.Context, id string, body []byte) error {
	var ch *amqp.Channel
	select {
	case ch = <-r.chans:
	default:
		c, err := r.conn.Channel()
		if err != nil {
			return err
		}
		if err := c.Confirm(false); err != nil {
			return err
		}
		ch = c
	}
	conf, err := ch.PublishWithDeferredConfirmWithContext(ctx, "", r.queue, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: id, Body: body,
		Headers: amqp.Table{"webhook-id": id},
	})
	if err != nil {
		ch.Close()
		return err
	}
	ok, err := conf.WaitContext(ctx)
	if err != nil || !ok {
		ch.Close()
		return fmt.Errorf("not confirmed: %v", err)
	}
	select {
	case r.chans <- ch:
	default:
		ch.Close()
	}
	return nil
}

func (r *amqpRig) close() {
	// A connection of its own deletes the queue: the rig's may be held up by the consumer's
	// undelivered messages, and its Close then waits for them; it is left to end in the
	// background.
	if conn, err := amqp.Dial(r.url); err == nil {
		if ch, err := conn.Channel(); err == nil {
			_, _ = ch.QueueDelete(r.queue, false, false, false)
		}
		_ = conn.Close()
	}
	go func() { _ = r.conn.Close() }()
}

// --- Redis Streams: a stream key of its own; XADD with the body and header fields.

type redisRig struct {
	addr, stream string
	rdb          *redis.Client
}

func newRedisRig(addr, suffix string) *redisRig {
	return &redisRig{addr: addr, stream: "herald-bench-" + suffix, rdb: redis.NewClient(&redis.Options{Addr: addr, PoolSize: 64})}
}

func (r *redisRig) name() string { return "redis" }
func (r *redisRig) settings() map[string]any {
	return map[string]any{"address": r.addr, "stream": r.stream}
}

func (r *redisRig) consume(ctx context.Context, seen func(string)) error {
	last := "0-0" // the key is new: every entry is the scenario's
	for {
		res, err := r.rdb.XRead(ctx, &redis.XReadArgs{Streams: []string{r.stream, last}, Count: 1000, Block: 500 * time.Millisecond}).Result()
		switch {
		case ctx.Err() != nil:
			return ctx.Err()
		case errors.Is(err, redis.Nil):
			continue
		case err != nil:
			return err
		}
		for _, s := range res {
			for _, m := range s.Messages {
				id, _ := m.Values["webhook-id"].(string)
				seen(id)
				last = m.ID
			}
		}
	}
}

func (r *redisRig) publish(ctx context.Context, id string, body []byte) error {
	return r.rdb.XAdd(ctx, &redis.XAddArgs{Stream: r.stream, Values: []any{"body", body, "webhook-id", id, "content-type", "application/json"}}).Err()
}

func (r *redisRig) close() {
	_ = r.rdb.Del(context.Background(), r.stream).Err()
	_ = r.rdb.Close()
}
