// Package pubsub is the Google Cloud Pub/Sub destination type: an attempt publishes the message
// to a topic and succeeds when Pub/Sub returns the message's server id.
//
// Clients (each one gRPC connection) are pooled per (project, endpoint, credentials, internal)
// and shared by every endpoint that publishes through them; every connection is opened through
// the node's guarded dialer.
package pubsub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"cloud.google.com/go/auth/credentials"
	gpubsub "cloud.google.com/go/pubsub/v2"
	vkit "cloud.google.com/go/pubsub/v2/apiv1"
	gax "github.com/googleapis/gax-go/v2"
	"google.golang.org/api/option"
	gtransport "google.golang.org/api/transport/grpc"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	brokerpool "github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Name is the endpoint type.
const Name = "pubsub"

// scope is the OAuth scope a publisher needs.
const scope = "https://www.googleapis.com/auth/pubsub"

// publishDelay is how long a publisher waits to bundle messages before it sends them (the
// library's default is 10ms; concurrent attempts still share a request).
const publishDelay = time.Millisecond

// Type is the Pub/Sub destination type. Its clients are held by the shared broker pool
// (internal/broker/pool: one per key, shared, bounded, closed when idle); what stays here is
// Pub/Sub's own: a client's publishers, and a client taken out of the pool (its connection
// failed, or idle) is closed only once its last attempt ended, so that a publish in flight on
// it is not cut off.
type Type struct {
	env  destination.Env // with the defaults filled in
	pool *brokerpool.Pool[poolKey, *client]
}

// poolKey identifies a pooled client: its connection settings and the dialer (internal).
type poolKey struct {
	conn     Conn
	internal bool
}

// key is the pool key of a client for c.
func (c *Conn) key(internal bool) poolKey { return poolKey{conn: *c, internal: internal} }

// client is one pooled Pub/Sub client with its publishers (one per topic and ordering mode).
type client struct {
	key poolKey
	c   *gpubsub.Client

	mu         sync.Mutex
	publishers map[pubKey]*gpubsub.Publisher
	inUse      int   // attempts running on it
	retired    bool  // out of the pool: closed when inUse drops to 0
	dialErr    error // the last error of the guarded dialer, to classify a failed publish
}

type pubKey struct {
	topic   string
	ordered bool
}

// New returns the Pub/Sub type.
func New(env destination.Env) *Type {
	if env.MaxConnections <= 0 {
		env.MaxConnections = destination.DefaultMaxConnections
	}
	if env.IdleTimeout <= 0 {
		env.IdleTimeout = destination.DefaultIdleTimeout
	}
	if env.Logger == nil {
		env.Logger = slog.New(slog.DiscardHandler)
	}
	t := &Type{env: env}
	t.pool = brokerpool.New(brokerpool.Config[poolKey, *client]{
		Open:        t.newPooled,
		Close:       t.retire,
		Max:         env.MaxConnections,
		IdleTimeout: env.IdleTimeout,
	})
	return t
}

// Name implements destination.Type.
func (t *Type) Name() string { return Name }

// Secrets implements destination.Type.
func (t *Type) Secrets() []string { return []string{"credentials_json"} }

// Check implements destination.Type.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := check(raw)
	return destination.EncodeSettings(s, errs)
}

// Open implements destination.Type. It does not connect: the first attempt does.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	s, errs := check(target.Settings)
	if errs != nil {
		return nil, fmt.Errorf("pubsub settings of endpoint %s: %w", target.EndpointID, errs[0])
	}
	if t.env.DialerFor(target.Internal) == nil {
		return nil, fmt.Errorf("pubsub endpoint %s: no dialer configured", target.EndpointID)
	}
	return &Sender{
		t:          t,
		settings:   *s,
		key:        s.Conn.key(target.Internal),
		endpointID: target.EndpointID,
	}, nil
}

// Close implements destination.Type: it stops every publisher and closes every client (one in
// use once its attempt ends).
func (t *Type) Close() error {
	t.pool.Close()
	return nil
}

// errBusy is returned by acquire when the pool is full.
var errBusy = brokerpool.ErrFull

// errClosed is returned by acquire after Close.
var errClosed = brokerpool.ErrClosed

// newPooled creates the client of key (no I/O: gRPC connects at the first call).
func (t *Type) newPooled(ctx context.Context, key poolKey) (*client, error) {
	c := &client{key: key, publishers: make(map[pubKey]*gpubsub.Publisher)}
	gc, err := newClient(ctx, &key.conn, c.guard(t.env.DialerFor(key.internal)))
	if err != nil {
		return nil, err
	}
	c.c = gc
	return c, nil
}

// acquire returns the pooled client for key, creating it if there is room. release must follow.
func (t *Type) acquire(ctx context.Context, key poolKey) (*client, func(), error) {
	c, put, err := t.pool.Get(ctx, key)
	if err != nil {
		return nil, nil, err
	}
	c.mu.Lock()
	c.inUse++
	c.mu.Unlock()
	return c, put, nil
}

// release ends an attempt on c (put is acquire's). broken takes c out of the pool (its
// connection failed), so the next attempt dials anew.
func (t *Type) release(c *client, put func(), broken bool) {
	if broken {
		t.pool.Discard(c.key, c)
	}
	c.mu.Lock()
	c.inUse--
	closeNow := c.retired && c.inUse == 0
	c.mu.Unlock()
	put()
	if closeNow {
		t.closeClient(c)
	}
}

// retire is the pool's Close: c is closed now if no attempt runs on it, else by the last one.
func (t *Type) retire(c *client) {
	c.mu.Lock()
	c.retired = true
	closeNow := c.inUse == 0
	c.mu.Unlock()
	if closeNow {
		t.closeClient(c)
	}
}

func (t *Type) closeClient(c *client) {
	if err := c.close(); err != nil {
		t.env.Logger.Debug("pubsub: close client", "project", c.key.conn.Project, "error", err)
	}
}

// guard wraps the node's dialer so that its last error is kept: gRPC turns a dial error into a
// bare Unavailable status, and a refused (blocked) destination must be told apart.
func (c *client) guard(dial destination.Dialer) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		conn, err := dial(ctx, "tcp", addr)
		c.mu.Lock()
		c.dialErr = err
		c.mu.Unlock()
		return conn, err
	}
}

func (c *client) lastDialErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.dialErr
}

// publisher returns c's publisher for a topic, creating it on first use.
func (c *client) publisher(topic string, ordered bool) *gpubsub.Publisher {
	c.mu.Lock()
	defer c.mu.Unlock()
	k := pubKey{topic, ordered}
	if p, ok := c.publishers[k]; ok {
		return p
	}
	p := c.c.Publisher(topic)
	ConfigurePublisher(p, ordered)
	c.publishers[k] = p
	return p
}

func (c *client) close() error {
	c.mu.Lock()
	pubs := c.publishers
	c.publishers = nil
	c.mu.Unlock()
	for _, p := range pubs {
		p.Stop()
	}
	if err := c.c.Close(); err != nil {
		return fmt.Errorf("close pubsub client of project %s: %w", c.key.conn.Project, err)
	}
	return nil
}

// ConfigurePublisher applies Herald's publish settings to p: a short bundling delay, message
// ordering when ordered. Exported so that the benchmark's plain client uses the same settings.
func ConfigurePublisher(p *gpubsub.Publisher, ordered bool) {
	p.PublishSettings.DelayThreshold = publishDelay
	p.EnableMessageOrdering = ordered
}

// ClientOptions are the options Herald gives the Pub/Sub library, beside the endpoint and the
// credentials: one gRPC connection per client, reconnection backoff capped at 5s, and no retry of
// a failed publish inside the library (the endpoint's retry schedule is the retry). Exported so
// that the benchmark's plain client uses the same settings.
func ClientOptions() (*gpubsub.ClientConfig, []option.ClientOption) {
	noRetry := gax.WithRetry(func() gax.Retryer { return gax.OnCodes(nil, gax.Backoff{}) })
	// The source's calls are not retried inside the library either: a failed pull is the
	// source's health, and the runner's backoff is the retry.
	cfg := &gpubsub.ClientConfig{
		TopicAdminCallOptions: &vkit.TopicAdminCallOptions{Publish: []gax.CallOption{noRetry}},
		SubscriptionAdminCallOptions: &vkit.SubscriptionAdminCallOptions{
			GetSubscription:   []gax.CallOption{noRetry},
			Pull:              []gax.CallOption{noRetry},
			Acknowledge:       []gax.CallOption{noRetry},
			ModifyAckDeadline: []gax.CallOption{noRetry},
		},
	}
	return cfg, []option.ClientOption{
		option.WithGRPCConnectionPool(1),
		option.WithGRPCDialOption(grpc.WithConnectParams(grpc.ConnectParams{
			Backoff:           backoff.Config{BaseDelay: 100 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 5 * time.Second},
			MinConnectTimeout: 5 * time.Second,
		})),
	}
}

// defaultEndpoint is Google's Pub/Sub endpoint.
const defaultEndpoint = "pubsub.googleapis.com:443"

// newClient creates a client for s on one gRPC connection opened through dial.
func newClient(ctx context.Context, s *Conn, dial func(context.Context, string) (net.Conn, error)) (*gpubsub.Client, error) {
	cfg, opts := ClientOptions()
	opts = append(opts, option.WithGRPCDialOption(grpc.WithContextDialer(dial)))
	if s.Endpoint != "" {
		opts = append(opts, option.WithEndpoint(s.Endpoint))
	} else {
		opts = append(opts, option.WithEndpoint(defaultEndpoint))
	}
	if s.CredentialsJSON == "" {
		// An emulator: plaintext, no credentials (Check requires credentials for Google's endpoint).
		opts = append(opts,
			option.WithoutAuthentication(),
			option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials())))
	} else {
		// A token is never fetched from a URL named in the key (self-signed JWTs), and any
		// request the auth library would make goes through the guarded dialer too.
		httpClient := &http.Client{Transport: &http.Transport{
			DialContext: func(ctx context.Context, _, addr string) (net.Conn, error) { return dial(ctx, addr) },
		}, Timeout: 30 * time.Second}
		creds, err := credentials.NewCredentialsFromJSON(credentials.ServiceAccount, []byte(s.CredentialsJSON), &credentials.DetectOptions{
			Scopes:           []string{scope},
			UseSelfSignedJWT: true,
			Client:           httpClient,
		})
		if err != nil {
			// The library's message may quote the key: say only what is wrong.
			return nil, errors.New("the service account key (credentials_json) cannot be used")
		}
		opts = append(opts, option.WithAuthCredentials(creds))
	}
	// The library's client would open a connection for publishing and another for its
	// subscription admin: both share this one, so that a pooled client is one connection.
	conn, err := gtransport.Dial(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("set up the connection to Pub/Sub for project %s: %w", s.Project, err)
	}
	c, err := gpubsub.NewClientWithConfig(ctx, s.Project, cfg, option.WithGRPCConn(conn))
	if err != nil {
		_ = conn.Close()
		return nil, fmt.Errorf("create pubsub client for project %s: %w", s.Project, err)
	}
	return c, nil
}

// Sender publishes one endpoint's attempts.
type Sender struct {
	t          *Type
	settings   Settings
	key        poolKey
	endpointID string
}

// Send implements destination.Sender.
func (s *Sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	return s.SendBatch(ctx, []*destination.Message{m})
}

// SendBatch implements destination.BatchSender: every message is published, then every result
// awaited; the batch succeeds when Pub/Sub acknowledged them all.
func (s *Sender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	out := s.sendBatch(ctx, ms)
	out.Latency = time.Since(start)
	return out
}

func (s *Sender) sendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	if len(ms) == 0 {
		return destination.Outcome{Class: destination.Success}
	}
	c, put, err := s.t.acquire(ctx, s.key)
	switch {
	case errors.Is(err, errBusy):
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindBrokerBusy,
			Error: fmt.Sprintf("Herald holds its maximum of %d Pub/Sub connections; the attempt will be retried", s.t.env.MaxConnections)}
	case errors.Is(err, errClosed):
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindCanceled,
			Error: "Herald is shutting down; the attempt will be retried"}
	case err != nil:
		return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindDenied,
			Error: fmt.Sprintf("cannot set up a Pub/Sub client for project %s: %v", s.settings.Project, err)}
	}
	broken := false
	defer func() { s.t.release(c, put, broken) }()

	ordered := s.settings.OrderingKey != OrderingNone
	p := c.publisher(s.settings.Topic, ordered)
	results := make([]*gpubsub.PublishResult, len(ms))
	keys := make([]string, len(ms))
	for i, m := range ms {
		keys[i] = s.orderingKey(m)
		results[i] = p.Publish(ctx, &gpubsub.Message{
			Data:        m.Body,
			Attributes:  Attributes(m),
			OrderingKey: keys[i],
		})
	}
	var ids []string
	var firstErr error
	for i, r := range results {
		id, err := r.Get(ctx)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			if ordered && keys[i] != "" {
				// A failed publish pauses its ordering key; the endpoint's retry resumes it.
				p.ResumePublish(keys[i])
			}
			continue
		}
		ids = append(ids, id)
	}
	if firstErr == nil {
		resp := "message id " + strings.Join(ids, ", ")
		if len(ids) > 1 {
			resp = fmt.Sprintf("%d messages, ids %s", len(ids), strings.Join(ids, ", "))
		}
		if len(resp) > 200 {
			resp = resp[:200] + "…"
		}
		return destination.Outcome{Class: destination.Success, Response: []byte(resp)}
	}
	out := s.classify(ctx, c, firstErr)
	if out.Class == destination.Retryable && out.ErrorKind != destination.KindTimeout && out.ErrorKind != destination.KindCanceled && out.ErrorKind != destination.KindBrokerBusy {
		broken = true
	}
	if out.ErrorKind == destination.KindBlocked {
		broken = true
	}
	return out
}

// orderingKey is m's ordering key per the settings.
func (s *Sender) orderingKey(m *destination.Message) string {
	switch s.settings.OrderingKey {
	case OrderingID:
		return m.ID
	case OrderingType:
		return m.EventType
	}
	return ""
}

// Attributes are the Pub/Sub attributes of m: every header (lower-case name; several values
// joined by ", ") and herald-event-type.
func Attributes(m *destination.Message) map[string]string {
	a := make(map[string]string, len(m.Header)+1)
	for k, vs := range m.Header {
		if len(vs) == 0 {
			continue
		}
		a[strings.ToLower(k)] = strings.Join(vs, ", ")
	}
	a[destination.HeaderEventType] = m.EventType
	return a
}

// classify turns a failed publish into an Outcome.
func (s *Sender) classify(ctx context.Context, c *client, err error) destination.Outcome {
	topic := fmt.Sprintf("topic %q of project %s", s.settings.Topic, s.settings.Project)
	retry := func(kind, msg string) destination.Outcome {
		return destination.Outcome{Class: destination.Retryable, ErrorKind: kind, Error: msg}
	}
	perm := func(kind, msg string) destination.Outcome {
		return destination.Outcome{Class: destination.Permanent, ErrorKind: kind, Error: msg}
	}
	if errors.Is(err, gpubsub.ErrOversizedMessage) {
		return perm(destination.KindTooLarge, fmt.Sprintf("the message is larger than Pub/Sub accepts (%d bytes per publish request)", int(gpubsub.MaxPublishRequestBytes)))
	}
	if ctxErr := ctx.Err(); ctxErr != nil && (errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) || status.Code(err) == codes.DeadlineExceeded || status.Code(err) == codes.Canceled) {
		if errors.Is(ctxErr, context.DeadlineExceeded) {
			return retry(destination.KindTimeout, fmt.Sprintf("Pub/Sub did not acknowledge the message to %s within the endpoint's timeout", topic))
		}
		return retry(destination.KindCanceled, "the attempt was canceled before Pub/Sub acknowledged it")
	}
	st, _ := status.FromError(err)
	switch st.Code() {
	case codes.NotFound:
		return perm(destination.KindNoRoute, fmt.Sprintf("Pub/Sub has no %s", topic))
	case codes.PermissionDenied:
		return perm(destination.KindDenied, fmt.Sprintf("Pub/Sub denied publishing to %s: the service account needs the Pub/Sub Publisher role on it", topic))
	case codes.Unauthenticated:
		return perm(destination.KindDenied, fmt.Sprintf("Pub/Sub did not accept the credentials for %s (is the service account key revoked?)", topic))
	case codes.InvalidArgument:
		msg := strings.ToLower(st.Message())
		if strings.Contains(msg, "size") || strings.Contains(msg, "too large") || strings.Contains(msg, "exceed") {
			return perm(destination.KindTooLarge, fmt.Sprintf("Pub/Sub refused the message to %s for its size: %s", topic, st.Message()))
		}
		return perm(destination.KindBrokerError, fmt.Sprintf("Pub/Sub refused the message to %s: %s", topic, st.Message()))
	case codes.FailedPrecondition:
		return perm(destination.KindBrokerError, fmt.Sprintf("Pub/Sub refused the message to %s: %s", topic, st.Message()))
	case codes.ResourceExhausted:
		return retry(destination.KindBrokerBusy, fmt.Sprintf("Pub/Sub is throttling publishes to %s (quota or flow control)", topic))
	case codes.DeadlineExceeded:
		return retry(destination.KindTimeout, fmt.Sprintf("Pub/Sub did not answer the publish to %s in time", topic))
	case codes.Unavailable:
		if derr := c.lastDialErr(); derr != nil {
			class, kind := httpsend.ClassifyDialError(derr)
			return destination.Outcome{Class: class, ErrorKind: kind,
				Error: fmt.Sprintf("cannot connect to Pub/Sub (%s) for %s: %v", s.addr(), topic, derr)}
		}
		return retry(destination.KindConnFailed, fmt.Sprintf("Pub/Sub (%s) is unavailable for %s: %s", s.addr(), topic, st.Message()))
	case codes.Canceled:
		return retry(destination.KindConnReset, fmt.Sprintf("the publish to %s was cut off: %s", topic, st.Message()))
	}
	if errors.Is(err, gpubsub.ErrPublisherStopped) {
		return retry(destination.KindCanceled, "the Pub/Sub publisher was stopped (Herald is shutting down or the connection was idle-closed); the attempt will be retried")
	}
	return retry(destination.KindBrokerError, fmt.Sprintf("publishing to %s failed: %v", topic, err))
}

// addr is where the sender publishes, for messages.
func (s *Sender) addr() string {
	if s.settings.Endpoint != "" {
		return s.settings.Endpoint
	}
	return "pubsub.googleapis.com:443"
}
