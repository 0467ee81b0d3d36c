package main

// Broker sources under SIGKILL: herald consumes a broker at full speed while a producer keeps
// publishing, and is killed with SIGKILL again and again and restarted on the same store. A
// message is acknowledged to the broker only once its event is committed, so when the broker
// considers every message acknowledged, every message has its event, and a message delivered
// again after a kill (its acknowledgement never sent) fans out once: its event id is derived
// from the broker's identity of the message.

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"

	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/redis/go-redis/v9"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/heraldhq/herald/internal/broker/sqs"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
)

// feeder is one broker for the test: where the source reads, how to publish message n, and
// whether the broker considers every message of the source's group acknowledged.
type feeder interface {
	config() map[string]any
	publish(ctx context.Context, n int) error
	allAcked(ctx context.Context, sourceID string, published int) (bool, string)
	close()
}

func TestSourceCrash_SIGKILLLosesNothingAndFansOutOnce(t *testing.T) {
	needBinary(t)
	brokers := map[string]func(t *testing.T) feeder{
		"nats":     newNATSFeeder,
		"rabbitmq": newAMQPFeeder,
		"redis":    newRedisFeeder,
		"kafka":    newKafkaFeeder,
		"pubsub":   newPubSubFeeder,
		"sqs":      newSQSFeeder,
	}
	for _, typ := range []string{"nats", "rabbitmq", "redis", "kafka", "pubsub", "sqs"} {
		t.Run(typ, func(t *testing.T) {
			// Each broker's run is mostly waiting (for a restart, a redelivery, a rebalance).
			t.Parallel()
			f := brokers[typ](t)
			defer f.close()
			sourceCrashLoop(t, typ, f)
		})
	}
}

// eventReceiver records, for each event id delivered, the message number in its data.
type eventReceiver struct {
	mu   sync.Mutex
	byID map[string]int // event id → n
	ns   map[int]int    // n → distinct event ids carrying it
	srv  *httptest.Server
}

func newEventReceiver(t *testing.T) *eventReceiver {
	r := &eventReceiver{byID: map[string]int{}, ns: map[int]int{}}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, err := io.ReadAll(req.Body)
		if err != nil {
			return
		}
		var env struct {
			ID   string `json:"id"`
			Data struct {
				N *int `json:"n"`
			} `json:"data"`
		}
		if err := json.Unmarshal(body, &env); err != nil || env.Data.N == nil {
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.mu.Lock()
		if _, seen := r.byID[env.ID]; !seen {
			r.byID[env.ID] = *env.Data.N
			r.ns[*env.Data.N]++
		}
		r.mu.Unlock()
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

// counts is how many message numbers arrived, and how many of them under more than one event id.
func (r *eventReceiver) counts() (numbers, twice int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.ns {
		if c > 1 {
			twice++
		}
	}
	return len(r.ns), twice
}

func sourceCrashLoop(t *testing.T, typ string, f feeder) {
	const (
		kills = 6
		rate  = 400 // messages per second the producer publishes while herald is killed
	)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, seed>>1))
	t.Logf("seed %d", seed)
	rcv := newEventReceiver(t)
	dir := t.TempDir()
	addr := freeAddr(t)
	env := []string{"HERALD_API_KEY=" + testKey}
	start := func(name string) *proc {
		p := run(t, name, env, "serve", "--addr", addr, "--data-dir", dir, "--dev")
		p.addr = addr
		p.waitReady()
		return p
	}
	h := start(typ + "-0")
	h.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme"}, http.StatusCreated, nil)
	h.must("POST", "/v1/event-types", testKey, map[string]any{"name": "order.created"}, http.StatusCreated, nil)
	h.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{"url": rcv.srv.URL, "event_types": []string{"*"}}, http.StatusCreated, nil)
	var src struct {
		ID string `json:"id"`
	}
	h.must("POST", "/v1/tenants/acme/broker-sources", testKey, map[string]any{"name": typ, "type": typ, "config": f.config(),
		"mapping": map[string]any{"event_type": map[string]any{"from": "fixed", "value": "order.created"}}}, http.StatusCreated, &src)

	// The producer publishes until the kills are over. Each publish runs to its end (the broker
	// acknowledges it) so that the count is exact: stopping is checked between publishes.
	ctx, stop := context.WithCancel(context.Background())
	var published atomic.Int64
	prodDone := make(chan error, 1)
	go func() {
		tick := time.NewTicker(time.Second / rate)
		defer tick.Stop()
		for n := 0; ; n++ {
			select {
			case <-ctx.Done():
				prodDone <- nil
				return
			case <-tick.C:
			}
			pctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			err := f.publish(pctx, n)
			cancel()
			if err != nil {
				prodDone <- fmt.Errorf("publish %d: %w", n, err)
				return
			}
			published.Add(1)
		}
	}()
	for k := range kills {
		// Let herald consume for a while, then kill it in the middle of whatever it does.
		time.Sleep(time.Duration(300+rng.IntN(900)) * time.Millisecond)
		h.signal(syscall.SIGKILL)
		h.waitExit(10 * time.Second)
		h = start(fmt.Sprintf("%s-%d", typ, k+1))
	}
	stop()
	if err := <-prodDone; err != nil {
		t.Fatal(err)
	}
	total := int(published.Load())
	waitFor(t, 3*time.Minute, fmt.Sprintf("every one of the %d messages delivered as an event", total), func() bool {
		n, _ := rcv.counts()
		return n >= total
	}, h)
	// A broker that redelivers only after a timeout (SQS's visibility, Pub/Sub's ack deadline,
	// JetStream's ack wait, Redis's claim idle) hands the messages a killed process held to the
	// last one only then: they are duplicates, consumed and acknowledged once herald sees them
	// again.
	if s, ok := f.(interface{ settle() time.Duration }); ok {
		time.Sleep(s.settle())
	}
	// A graceful stop settles what the last process holds; the broker then considers every
	// message acknowledged.
	h.stop()
	bctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var why string
	deadline := time.Now().Add(30 * time.Second)
	for {
		ok, w := f.allAcked(bctx, src.ID, total)
		if ok {
			break
		}
		why = w
		if time.Now().After(deadline) {
			t.Fatalf("the broker does not consider every message acknowledged: %s", why)
		}
		time.Sleep(200 * time.Millisecond)
	}
	numbers, twice := rcv.counts()
	if numbers != total || twice != 0 {
		t.Fatalf("%d messages published, %d delivered as events, %d of them as more than one event (a redelivered message fanned out twice)", total, numbers, twice)
	}
	t.Logf("%s: %d messages over %d SIGKILLs, each delivered as exactly one event", typ, total, kills)
}

func crashSuffix() string { return strconv.FormatInt(time.Now().UnixNano(), 36) }

func messageBody(n int) []byte {
	return []byte(`{"n":` + strconv.Itoa(n) + `,"item":"sku-` + strconv.Itoa(n) + `"}`)
}

// --- NATS JetStream

type natsFeeder struct {
	url, stream, subject string
	nc                   *nats.Conn
	js                   jetstream.JetStream
}

func newNATSFeeder(t *testing.T) feeder {
	url := os.Getenv("HERALD_TEST_NATS_URL")
	if url == "" {
		t.Skip("HERALD_TEST_NATS_URL is not set")
	}
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	sfx := crashSuffix()
	f := &natsFeeder{url: url, stream: "HERALD_CRASH_" + strings.ToUpper(sfx), subject: "crash." + sfx + ".order", nc: nc, js: js}
	if _, err := js.CreateStream(context.Background(), jetstream.StreamConfig{Name: f.stream, Subjects: []string{"crash." + sfx + ".>"}}); err != nil {
		t.Fatal(err)
	}
	return f
}

// config: a killed node's unacknowledged messages come back after ack_wait; 5 s keeps the run
// short (the default is 30 s).
func (f *natsFeeder) config() map[string]any {
	return map[string]any{"url": f.url, "stream": f.stream, "ack_wait": "5s"}
}

func (f *natsFeeder) publish(ctx context.Context, n int) error {
	_, err := f.js.Publish(ctx, f.subject, messageBody(n))
	return err
}

func (f *natsFeeder) allAcked(ctx context.Context, _ string, published int) (bool, string) {
	st, err := f.js.Stream(ctx, f.stream)
	if err != nil {
		return false, err.Error()
	}
	lister := st.ListConsumers(ctx)
	var infos []string
	for ci := range lister.Info() {
		infos = append(infos, fmt.Sprintf("%s: ack floor %d, pending %d, ack pending %d", ci.Name, ci.AckFloor.Stream, ci.NumPending, ci.NumAckPending))
		if ci.NumPending == 0 && ci.NumAckPending == 0 && ci.AckFloor.Stream >= uint64(published) {
			return true, ""
		}
	}
	return false, strings.Join(infos, "; ")
}

func (f *natsFeeder) close() {
	_ = f.js.DeleteStream(context.Background(), f.stream)
	f.nc.Close()
}

// --- RabbitMQ

type amqpFeeder struct {
	url, queue string
	conn       *amqp.Connection
	ch         *amqp.Channel
	mu         sync.Mutex
}

func newAMQPFeeder(t *testing.T) feeder {
	url := os.Getenv("HERALD_TEST_AMQP_URL")
	if url == "" {
		t.Skip("HERALD_TEST_AMQP_URL is not set")
	}
	conn, err := amqp.Dial(url)
	if err != nil {
		t.Fatal(err)
	}
	ch, err := conn.Channel()
	if err != nil {
		t.Fatal(err)
	}
	if err := ch.Confirm(false); err != nil {
		t.Fatal(err)
	}
	f := &amqpFeeder{url: url, queue: "herald-crash-" + crashSuffix(), conn: conn, ch: ch}
	if _, err := ch.QueueDeclare(f.queue, true, false, false, false, nil); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *amqpFeeder) config() map[string]any {
	// The credentials go in their own settings.
	u, user, pass := f.url, "guest", "guest"
	if i := strings.Index(u, "://"); i >= 0 {
		if at := strings.Index(u[i+3:], "@"); at >= 0 {
			user, pass, _ = strings.Cut(u[i+3:i+3+at], ":")
			u = u[:i+3] + u[i+3+at+1:]
		}
	}
	return map[string]any{"url": u, "username": user, "password": pass, "queue": f.queue}
}

func (f *amqpFeeder) publish(ctx context.Context, n int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	conf, err := f.ch.PublishWithDeferredConfirmWithContext(ctx, "", f.queue, true, false, amqp.Publishing{
		ContentType: "application/json", DeliveryMode: amqp.Persistent, MessageId: "m-" + strconv.Itoa(n), Body: messageBody(n)})
	if err != nil {
		return err
	}
	if ok, err := conf.WaitContext(ctx); err != nil || !ok {
		return fmt.Errorf("not confirmed: %v", err)
	}
	return nil
}

func (f *amqpFeeder) allAcked(context.Context, string, int) (bool, string) {
	q, err := f.ch.QueueDeclarePassive(f.queue, true, false, false, false, nil)
	if err != nil {
		return false, err.Error()
	}
	return q.Messages == 0 && q.Consumers == 0, fmt.Sprintf("%d messages in the queue, %d consumers", q.Messages, q.Consumers)
}

func (f *amqpFeeder) close() {
	_, _ = f.ch.QueueDelete(f.queue, false, false, false)
	f.conn.Close()
}

// --- Redis Streams

type redisFeeder struct {
	addr, stream string
	rdb          *redis.Client
}

func newRedisFeeder(t *testing.T) feeder {
	raw := os.Getenv("HERALD_TEST_REDIS_URL")
	if raw == "" {
		t.Skip("HERALD_TEST_REDIS_URL is not set")
	}
	opts, err := redis.ParseURL(raw)
	if err != nil {
		t.Fatal(err)
	}
	f := &redisFeeder{addr: opts.Addr, stream: "herald-crash-" + crashSuffix(), rdb: redis.NewClient(opts)}
	// The source's group is created on the stream, which must exist.
	if err := f.rdb.XAdd(context.Background(), &redis.XAddArgs{Stream: f.stream, Values: []any{"body", `{"n":-1}`}}).Err(); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *redisFeeder) config() map[string]any {
	// A killed node's pending entries are claimed by the next after claim_idle: 5 s keeps the
	// run short (the default is 60 s).
	return map[string]any{"address": f.addr, "stream": f.stream, "start": "new", "claim_idle": "5s"}
}

func (f *redisFeeder) publish(ctx context.Context, n int) error {
	return f.rdb.XAdd(ctx, &redis.XAddArgs{Stream: f.stream, Values: []any{"body", messageBody(n)}}).Err()
}

func (f *redisFeeder) allAcked(ctx context.Context, _ string, published int) (bool, string) {
	groups, err := f.rdb.XInfoGroups(ctx, f.stream).Result()
	if err != nil {
		return false, err.Error()
	}
	last, err := f.rdb.XRevRangeN(ctx, f.stream, "+", "-", 1).Result()
	if err != nil || len(last) == 0 {
		return false, fmt.Sprintf("last entry: %v", err)
	}
	var infos []string
	for _, g := range groups {
		infos = append(infos, fmt.Sprintf("%s: pending %d, last delivered %s (stream's last %s)", g.Name, g.Pending, g.LastDeliveredID, last[0].ID))
		if g.Pending == 0 && g.LastDeliveredID == last[0].ID {
			return true, ""
		}
	}
	return false, strings.Join(infos, "; ")
}

func (f *redisFeeder) close() {
	_ = f.rdb.Del(context.Background(), f.stream).Err()
	_ = f.rdb.Close()
}

// --- Kafka: franz-go's in-process cluster (no Kafka broker can be installed here)

type kafkaFeeder struct {
	cluster *kfake.Cluster
	topic   string
	cl      *kgo.Client
}

func newKafkaFeeder(t *testing.T) feeder {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, "orders")) // listens on 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.DefaultProduceTopic("orders"))
	if err != nil {
		t.Fatal(err)
	}
	return &kafkaFeeder{cluster: c, topic: "orders", cl: cl}
}

func (f *kafkaFeeder) config() map[string]any {
	return map[string]any{"brokers": f.cluster.ListenAddrs(), "topics": []string{f.topic}, "start": "all"}
}

func (f *kafkaFeeder) publish(ctx context.Context, n int) error {
	return f.cl.ProduceSync(ctx, &kgo.Record{Key: []byte(strconv.Itoa(n)), Value: messageBody(n)}).FirstErr()
}

func (f *kafkaFeeder) allAcked(ctx context.Context, sourceID string, _ int) (bool, string) {
	adm := kadm.NewClient(f.cl)
	groups, err := adm.ListGroups(ctx)
	if err != nil {
		return false, err.Error()
	}
	ends, err := adm.ListEndOffsets(ctx, f.topic)
	if err != nil {
		return false, err.Error()
	}
	var infos []string
	for _, g := range groups.Groups() {
		offs, err := adm.FetchOffsets(ctx, g)
		if err != nil {
			return false, err.Error()
		}
		caught := true
		ends.Each(func(e kadm.ListedOffset) {
			o, ok := offs.Lookup(e.Topic, e.Partition)
			if !ok || o.At < e.Offset {
				caught = false
				infos = append(infos, fmt.Sprintf("%s %s/%d: committed %d of %d", g, e.Topic, e.Partition, o.At, e.Offset))
			}
		})
		if caught && strings.Contains(g, sourceID) {
			return true, ""
		}
	}
	return false, strings.Join(infos, "; ")
}

func (f *kafkaFeeder) close() {
	f.cl.Close()
	f.cluster.Close()
}

// --- Google Pub/Sub: Google's in-memory server from its Go library

type pubsubFeeder struct {
	srv   *pstest.Server
	conn  *grpc.ClientConn
	pub   pubsubpb.PublisherClient
	topic string
	sub   string
}

func newPubSubFeeder(t *testing.T) feeder {
	srv := pstest.NewServer() // listens on 127.0.0.1
	conn, err := grpc.NewClient(srv.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	f := &pubsubFeeder{srv: srv, conn: conn, pub: pubsubpb.NewPublisherClient(conn),
		topic: "projects/herald/topics/orders", sub: "projects/herald/subscriptions/herald-orders"}
	ctx := context.Background()
	if _, err := f.pub.CreateTopic(ctx, &pubsubpb.Topic{Name: f.topic}); err != nil {
		t.Fatal(err)
	}
	if _, err := pubsubpb.NewSubscriberClient(conn).CreateSubscription(ctx, &pubsubpb.Subscription{Name: f.sub, Topic: f.topic, AckDeadlineSeconds: 10}); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *pubsubFeeder) config() map[string]any {
	return map[string]any{"project": "herald", "endpoint": f.srv.Addr, "subscription": "herald-orders"}
}

func (f *pubsubFeeder) publish(ctx context.Context, n int) error {
	_, err := f.pub.Publish(ctx, &pubsubpb.PublishRequest{Topic: f.topic, Messages: []*pubsubpb.PubsubMessage{{Data: messageBody(n)}}})
	return err
}

func (f *pubsubFeeder) allAcked(context.Context, string, int) (bool, string) {
	unacked := 0
	for _, m := range f.srv.Messages() {
		if m.Acks == 0 {
			unacked++
		}
	}
	return unacked == 0, fmt.Sprintf("%d messages not acknowledged", unacked)
}

func (f *pubsubFeeder) close() {
	f.conn.Close()
	f.srv.Close()
}

// Two nodes on one PostgreSQL database share a broker source: both consume it (competing
// consumers of one durable consumer), and when one is killed with SIGKILL the other takes its
// share: every message becomes one event, delivered once.
func TestSourceShare_TwoNodesOnPostgresShareAndTakeOver(t *testing.T) {
	needBinary(t)
	if os.Getenv("HERALD_TEST_DATABASE_URL") == "" {
		t.Skip("HERALD_TEST_DATABASE_URL is not set")
	}
	f := newNATSFeeder(t)
	defer f.close()
	dbURL, schema := pgSchema(t)
	encKey := make([]byte, 32)
	for i := range encKey {
		encKey[i] = byte(i * 7)
	}
	env := []string{"HERALD_API_KEY=" + testKey, "HERALD_ENCRYPTION_KEY=" + base64.StdEncoding.EncodeToString(encKey)}
	startNode := func(name string) *proc {
		addr := freeAddr(t)
		p := run(t, name, env, "serve", "--addr", addr, "--data-dir", t.TempDir(),
			"--database-url", dbURL, "--database-schema", schema, "--dev")
		p.addr = addr
		p.waitReady()
		return p
	}
	a := startNode("node a")
	rcv := newEventReceiver(t)
	a.must("POST", "/v1/tenants", testKey, map[string]any{"id": "acme", "name": "Acme"}, http.StatusCreated, nil)
	a.must("POST", "/v1/event-types", testKey, map[string]any{"name": "order.created"}, http.StatusCreated, nil)
	a.must("POST", "/v1/tenants/acme/endpoints", testKey, map[string]any{"url": rcv.srv.URL, "event_types": []string{"*"}}, http.StatusCreated, nil)
	a.must("POST", "/v1/tenants/acme/broker-sources", testKey, map[string]any{"name": "orders", "type": "nats", "config": f.config(),
		"mapping": map[string]any{"event_type": map[string]any{"from": "fixed", "value": "order.created"}}}, http.StatusCreated, nil)
	b := startNode("node b")

	// Both nodes consume while messages keep coming; each node's count of the events it stored
	// shows it took a share.
	ctx := context.Background()
	var published atomic.Int64
	publish := func(n int, over time.Duration) error {
		tick := time.NewTicker(over / time.Duration(n))
		defer tick.Stop()
		for range n {
			<-tick.C
			if err := f.publish(ctx, int(published.Load())); err != nil {
				return err
			}
			published.Add(1)
		}
		return nil
	}
	if err := publish(1500, 5*time.Second); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Minute, "the first messages delivered", func() bool { n, _ := rcv.counts(); return n >= 1500 }, b)
	storedBy := func(p *proc) float64 { return scrapeCounter(t, p, "herald_events_published_total") }
	if sa, sb := storedBy(a), storedBy(b); sa == 0 || sb == 0 {
		t.Fatalf("events stored by node a: %v, by node b: %v: the nodes do not share the source", sa, sb)
	}
	// Node b dies in the middle of consuming; node a takes its share, including what b held
	// unacknowledged.
	pubErr := make(chan error, 1)
	go func() { pubErr <- publish(1500, 5*time.Second) }()
	time.Sleep(2 * time.Second)
	b.signal(syscall.SIGKILL)
	b.waitExit(10 * time.Second)
	if err := <-pubErr; err != nil {
		t.Fatal(err)
	}
	total := int(published.Load())
	waitFor(t, 3*time.Minute, "every message delivered by node a after node b died", func() bool {
		n, _ := rcv.counts()
		return n >= total
	}, a)
	a.stop()
	numbers, twice := rcv.counts()
	if numbers != total || twice != 0 {
		t.Fatalf("%d messages, %d delivered as events, %d as more than one event", total, numbers, twice)
	}
	if ok, why := f.allAcked(ctx, "", total); !ok {
		t.Fatalf("the broker does not consider every message acknowledged: %s", why)
	}
}

// scrapeCounter sums the samples of a counter on a node's /metrics.
func scrapeCounter(t *testing.T, p *proc, name string) float64 {
	t.Helper()
	resp, err := client.Get("http://" + p.addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(line, name+"{") && !strings.HasPrefix(line, name+" ") {
			continue
		}
		fields := strings.Fields(line)
		v, err := strconv.ParseFloat(fields[len(fields)-1], 64)
		if err == nil {
			sum += v
		}
	}
	return sum
}

// --- Amazon SQS: goaws, an SQS-compatible server written in Go, built from the module the go.mod
// tool line names (the SQS type talks the AWS Query protocol, which goaws speaks).

var goaws struct {
	once sync.Once
	bin  string
	err  error
}

type sqsFeeder struct {
	checkAt  time.Time
	leftover string
	cmd      *exec.Cmd
	endpoint string
	queueURL string
	cl       *awssqs.Client
}

func newSQSFeeder(t *testing.T) feeder {
	goaws.once.Do(func() {
		dir, err := os.MkdirTemp("", "herald-goaws-")
		if err != nil {
			goaws.err = err
			return
		}
		goaws.bin = filepath.Join(dir, "goaws")
		out, err := exec.Command("go", "build", "-o", goaws.bin, "github.com/Admiral-Piett/goaws/app/cmd").CombinedOutput()
		if err != nil {
			goaws.err = fmt.Errorf("build goaws: %v: %s", err, out)
		}
	})
	if goaws.err != nil {
		t.Fatal(goaws.err)
	}
	port := strings.TrimPrefix(freeAddr(t), "127.0.0.1:")
	dir := t.TempDir()
	conf := "Local:\n  Host: 127.0.0.1\n  Port: " + port + "\n  Region: us-east-1\n  AccountId: \"100010001000\"\n" +
		"  QueueAttributeDefaults:\n    VisibilityTimeout: 10\n    ReceiveMessageWaitTimeSeconds: 0\n"
	path := filepath.Join(dir, "goaws.yaml")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(goaws.bin, "-config", path)
	cmd.Dir = dir
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	f := &sqsFeeder{cmd: cmd, endpoint: "http://127.0.0.1:" + port}
	f.cl = awssqs.New(awssqs.Options{Region: "us-east-1", BaseEndpoint: aws.String(f.endpoint),
		Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}, sqs.UseQueryProtocol)
	deadline := time.Now().Add(20 * time.Second)
	for {
		out, err := f.cl.CreateQueue(context.Background(), &awssqs.CreateQueueInput{QueueName: aws.String("orders")})
		if err == nil {
			f.queueURL = aws.ToString(out.QueueUrl)
			return f
		}
		if time.Now().After(deadline) {
			f.close()
			t.Fatalf("goaws: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// settle is the queue's visibility timeout and a margin.
func (f *sqsFeeder) settle() time.Duration { return 12 * time.Second }

// settle is the subscription's ack deadline and a margin.
func (f *pubsubFeeder) settle() time.Duration { return 12 * time.Second }

// settle is the source's ack_wait and a margin.
func (f *natsFeeder) settle() time.Duration { return 7 * time.Second }

// settle is the source's claim_idle and a margin.
func (f *redisFeeder) settle() time.Duration { return 7 * time.Second }

func (f *sqsFeeder) config() map[string]any {
	return map[string]any{"queue_url": f.queueURL, "region": "us-east-1", "endpoint": f.endpoint,
		"access_key_id": "AKIDTEST", "secret_access_key": "test-secret"}
}

func (f *sqsFeeder) publish(ctx context.Context, n int) error {
	_, err := f.cl.SendMessage(ctx, &awssqs.SendMessageInput{QueueUrl: aws.String(f.queueURL), MessageBody: aws.String(string(messageBody(n)))})
	return err
}

// allAcked receives from the queue once the visibility timeout (10 s) has passed since herald
// stopped: a message herald took and did not delete would be visible again. (goaws answers no
// queue counts through the Query protocol.) Any message seen fails every later call too.
func (f *sqsFeeder) allAcked(ctx context.Context, _ string, _ int) (bool, string) {
	if f.leftover != "" {
		return false, f.leftover
	}
	if f.checkAt.IsZero() {
		f.checkAt = time.Now().Add(11 * time.Second)
	}
	if wait := time.Until(f.checkAt); wait > 0 {
		time.Sleep(wait)
	}
	rctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	out, err := f.cl.ReceiveMessage(rctx, &awssqs.ReceiveMessageInput{QueueUrl: aws.String(f.queueURL), MaxNumberOfMessages: 10, WaitTimeSeconds: 1})
	if err != nil {
		return false, err.Error()
	}
	if len(out.Messages) > 0 {
		f.leftover = fmt.Sprintf("%d messages still in the queue after herald stopped, e.g. %s", len(out.Messages), aws.ToString(out.Messages[0].Body))
		return false, f.leftover
	}
	return true, ""
}

func (f *sqsFeeder) close() {
	_ = f.cmd.Process.Kill()
	_ = f.cmd.Wait()
}
