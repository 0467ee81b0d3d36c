// Package sqs is the Amazon SQS destination type: an attempt sends the message to a queue
// (standard or FIFO) and succeeds when SQS returns its message id.
//
// The client speaks SQS's AWS Query protocol (the SDK's default is AWS JSON 1.0; SQS serves both):
// it is the protocol the local SQS-compatible server the tests run against understands, so the
// code path tested is the one that runs. Connections go through the node's guarded dialer, are
// counted against env.MaxConnections, and are shared per (endpoint, region, credentials, internal).
package sqs

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sqs/schemas"
	"github.com/aws/aws-sdk-go-v2/service/sqs/types"
	"github.com/aws/smithy-go"
	"github.com/aws/smithy-go/transport/http/protocol/awsquery"

	brokerpool "github.com/heraldhq/herald/internal/broker/pool"
	"github.com/heraldhq/herald/internal/destination"
	"github.com/heraldhq/herald/internal/httpsend"
)

// Name is the endpoint type.
const Name = "sqs"

// SQS limits.
const (
	// MaxAttributes is the number of message attributes SQS accepts on one message.
	MaxAttributes = 10
	// MaxBatch is the number of messages one SendMessageBatch takes.
	MaxBatch = 10
	// HeadersAttribute holds, as a JSON object, the headers that do not fit in MaxAttributes or
	// whose names SQS does not accept as attribute names.
	HeadersAttribute = "herald-headers"
)

// Type is the SQS destination type.
type Type struct {
	env destination.Env
	// pool holds the clients (internal/broker/pool: one per key, shared, closed when idle,
	// closed all by Close). What is SQS's own stays here: a client is an HTTP transport with
	// several connections, counted together against env.MaxConnections (open) by the dialer,
	// which closes idle clients to make room, as the pool does at its own bound.
	pool *brokerpool.Pool[poolKey, *client]

	mu   sync.Mutex
	open int // connections open, over all clients
}

// poolKey identifies a client: the connection settings but the queue (a client serves every
// queue of the account), and the dialer.
type poolKey struct {
	endpoint string // the endpoint override, or "" for AWS's regional endpoint
	region   string
	keyID    string
	secret   string
	internal bool
}

// key is the pool key of a client for c.
func (c *Conn) key(internal bool) poolKey {
	return poolKey{endpoint: c.Endpoint, region: c.Region, keyID: c.AccessKeyID, secret: c.SecretAccessKey, internal: internal}
}

type client struct {
	api       *awssqs.Client
	transport *http.Transport
}

// New returns the SQS type.
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
		// Creating a client does no I/O: it dials at its first request.
		Open: func(_ context.Context, k poolKey) (*client, error) { return t.newClient(k), nil },
		// Closing its idle connections gives their slots back; one in use ends with its request.
		Close:       func(c *client) { c.transport.CloseIdleConnections() },
		Max:         env.MaxConnections,
		IdleTimeout: env.IdleTimeout,
	})
	return t
}

// Name implements destination.Type.
func (t *Type) Name() string { return Name }

// Secrets implements destination.Type.
func (t *Type) Secrets() []string { return []string{"access_key_id", "secret_access_key"} }

// Check implements destination.Type.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	s, errs := check(raw)
	return destination.EncodeSettings(s, errs)
}

// Open implements destination.Type. It does not connect.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	s, errs := check(target.Settings)
	if errs != nil {
		return nil, fmt.Errorf("sqs settings of endpoint %s: %w", target.EndpointID, errs[0])
	}
	if t.env.DialerFor(target.Internal) == nil {
		return nil, fmt.Errorf("sqs endpoint %s: no dialer configured", target.EndpointID)
	}
	return &Sender{t: t, s: *s, key: s.Conn.key(target.Internal)}, nil
}

// Close implements destination.Type.
func (t *Type) Close() error {
	t.pool.Close()
	return nil
}

var errBusy = errors.New("connection limit reached")

// countedConn releases its slot in the type's connection count when closed.
type countedConn struct {
	net.Conn
	once sync.Once
	t    *Type
}

func (c *countedConn) Close() error {
	c.once.Do(func() {
		c.t.mu.Lock()
		c.t.open--
		c.t.mu.Unlock()
	})
	return c.Conn.Close()
}

// dialer returns a DialContext that goes through dial and counts connections.
func (t *Type) dialer(dial destination.Dialer) func(context.Context, string, string) (net.Conn, error) {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		if !t.take() {
			return nil, errBusy
		}
		conn, err := dial(ctx, network, addr)
		if err != nil {
			t.give()
			return nil, err
		}
		return &countedConn{Conn: conn, t: t}, nil
	}
}

// take reserves a connection slot; at the bound it first closes idle clients, least recently
// used first (never the caller's: it is in use).
func (t *Type) take() bool {
	for {
		t.mu.Lock()
		if t.open < t.env.MaxConnections {
			t.open++
			t.mu.Unlock()
			return true
		}
		t.mu.Unlock()
		if !t.pool.EvictIdle() {
			return false
		}
	}
}

func (t *Type) give() {
	t.mu.Lock()
	t.open--
	t.mu.Unlock()
}

// acquire returns the pooled client for key, creating it if needed; put gives it back.
func (t *Type) acquire(ctx context.Context, key poolKey) (*client, func(), error) {
	c, put, err := t.pool.Get(ctx, key)
	if errors.Is(err, brokerpool.ErrFull) {
		err = fmt.Errorf("%w: %w", errBusy, err)
	}
	return c, put, err
}

// newClient builds a client whose every connection goes through dial. No proxy from the
// environment (it would bypass the guard), no retry inside the SDK (the endpoint's schedule is
// the retry), the AWS Query protocol (see the package comment).
func (t *Type) newClient(s poolKey) *client {
	tr := &http.Transport{
		DialContext:         t.dialer(t.env.DialerFor(s.internal)),
		Proxy:               nil,
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		// Wait for a connection of the client's own to come back rather than dial past the
		// type's limit (a connection is returned to the idle pool a moment after its response).
		MaxConnsPerHost:       t.env.MaxConnections,
		IdleConnTimeout:       t.env.IdleTimeout,
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: 60 * time.Second,
	}
	opts := awssqs.Options{
		Region:      s.region,
		Credentials: credentials.NewStaticCredentialsProvider(s.keyID, s.secret, ""),
		HTTPClient:  &http.Client{Transport: keepAliveTransport{tr}},
		Retryer:     aws.NopRetryer{},
	}
	if s.endpoint != "" {
		opts.BaseEndpoint = aws.String(s.endpoint)
	}
	api := awssqs.New(opts, UseQueryProtocol)
	return &client{api: api, transport: tr}
}

// maxResponse bounds an SQS response read by keepAliveTransport (a send's answer is a few
// hundred bytes).
const maxResponse = 1 << 20

// keepAliveTransport keeps connections reusable. The SDK stops reading a response at the end of
// its XML document and cancels the attempt's context when it is done with it; a body closed
// before its end, or a request context canceled before the transport has taken the connection
// back, costs the connection, and attempts would dial anew (or find the connection limit
// reached). So the whole response is read here, under the caller's context, and the connection is
// released before the SDK sees the response; the caller's cancellation reaches the request only
// until then.
type keepAliveTransport struct{ rt http.RoundTripper }

func (d keepAliveTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	parent := req.Context()
	ctx, cancel := context.WithCancelCause(context.WithoutCancel(parent))
	stop := context.AfterFunc(parent, func() { cancel(context.Cause(parent)) })
	defer stop()
	resp, err := d.rt.RoundTrip(req.WithContext(ctx))
	if err != nil {
		return nil, err
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse+1))
	_ = resp.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("read the SQS response: %w", err)
	}
	if len(body) > maxResponse {
		return nil, fmt.Errorf("the SQS response is larger than %d bytes", maxResponse)
	}
	resp.Body = io.NopCloser(bytes.NewReader(body))
	return resp, nil
}

// UseQueryProtocol makes an SQS client speak the AWS Query protocol. Exported so that the
// benchmark's plain client uses the same protocol.
func UseQueryProtocol(o *awssqs.Options) { o.Protocol = awsquery.New(schemas.AmazonSQS) }

// Sender sends one endpoint's attempts.
type Sender struct {
	t   *Type
	s   Settings
	key poolKey
}

// Send implements destination.Sender.
func (s *Sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	start := time.Now()
	out := s.send(ctx, m)
	out.Latency = time.Since(start)
	return out
}

func (s *Sender) send(ctx context.Context, m *destination.Message) destination.Outcome {
	if out, bad := s.checkBody(m); bad {
		return out
	}
	c, put, err := s.t.acquire(ctx, s.key)
	if err != nil {
		return s.refused(ctx, err)
	}
	defer put()
	in := &awssqs.SendMessageInput{
		QueueUrl:          aws.String(s.s.QueueURL),
		MessageBody:       aws.String(string(m.Body)),
		MessageAttributes: Attributes(m),
	}
	if s.s.isFIFO() {
		in.MessageGroupId = aws.String(s.groupID(m))
		in.MessageDeduplicationId = aws.String(dedupID(m))
	}
	res, err := c.api.SendMessage(ctx, in)
	if err != nil {
		return s.classify(ctx, err)
	}
	resp := "message id " + aws.ToString(res.MessageId)
	if res.SequenceNumber != nil && *res.SequenceNumber != "" {
		resp += " sequence " + *res.SequenceNumber
	}
	return destination.Outcome{Class: destination.Success, Response: []byte(resp)}
}

// SendBatch implements destination.BatchSender: SendMessageBatch calls of up to 10 messages;
// the batch succeeds when SQS took every message.
func (s *Sender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	out := s.sendBatch(ctx, ms)
	out.Latency = time.Since(start)
	return out
}

func (s *Sender) sendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	for _, m := range ms {
		if out, bad := s.checkBody(m); bad {
			return out
		}
	}
	c, put, err := s.t.acquire(ctx, s.key)
	if err != nil {
		return s.refused(ctx, err)
	}
	defer put()
	sent := 0
	for len(ms) > 0 {
		chunk := ms[:min(MaxBatch, len(ms))]
		ms = ms[len(chunk):]
		entries := make([]types.SendMessageBatchRequestEntry, len(chunk))
		for i, m := range chunk {
			entries[i] = types.SendMessageBatchRequestEntry{
				Id:                aws.String("m" + strconv.Itoa(i)),
				MessageBody:       aws.String(string(m.Body)),
				MessageAttributes: Attributes(m),
			}
			if s.s.isFIFO() {
				entries[i].MessageGroupId = aws.String(s.groupID(m))
				entries[i].MessageDeduplicationId = aws.String(dedupID(m))
			}
		}
		res, err := c.api.SendMessageBatch(ctx, &awssqs.SendMessageBatchInput{QueueUrl: aws.String(s.s.QueueURL), Entries: entries})
		var tooLong *types.BatchRequestTooLong
		if errors.As(err, &tooLong) {
			// Each message may still fit alone: send them one by one.
			for _, m := range chunk {
				if out := s.send(ctx, m); out.Class != destination.Success {
					return out
				}
				sent++
			}
			continue
		}
		if err != nil {
			return s.classify(ctx, err)
		}
		if len(res.Failed) > 0 {
			return s.classifyEntry(res.Failed[0], len(res.Failed), sent+len(chunk))
		}
		sent += len(res.Successful)
	}
	return destination.Outcome{Class: destination.Success, Response: fmt.Appendf(nil, "%d messages sent", sent)}
}

// refused is the outcome when the pool gives no client.
func (s *Sender) refused(ctx context.Context, err error) destination.Outcome {
	if errors.Is(err, brokerpool.ErrClosed) {
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindCanceled,
			Error: "Herald is shutting down; the attempt will be retried"}
	}
	return s.classify(ctx, err)
}

// checkBody refuses a body SQS cannot carry (it takes Unicode text only).
func (s *Sender) checkBody(m *destination.Message) (destination.Outcome, bool) {
	if !utf8.Valid(m.Body) {
		return destination.Outcome{Class: destination.Permanent, ErrorKind: destination.KindBrokerError,
			Error: "the message body is not UTF-8 text, and SQS carries text only"}, true
	}
	return destination.Outcome{}, false
}

func (s *Sender) groupID(m *destination.Message) string {
	switch s.s.GroupID {
	case GroupByID:
		return m.ID
	case GroupByType:
		return m.EventType
	}
	return s.s.GroupID
}

// dedupID is the FIFO deduplication id: the event id (SQS allows 128 characters; a longer id is
// hashed).
func dedupID(m *destination.Message) string {
	if len(m.ID) <= 128 {
		return m.ID
	}
	return fmt.Sprintf("%x", sha256.Sum256([]byte(m.ID)))
}

// Attributes are the SQS message attributes of m. SQS takes at most 10 per message, with names
// of letters, digits, '-', '_' and '.': the headers go in this order — webhook-id,
// webhook-timestamp, webhook-signature, content-type, herald-event-type, traceparent,
// tracestate, then the others by name — each as a String attribute (lower-case name; several
// values joined by ", ") while there is room; when they do not all fit, the last attribute is
// "herald-headers", a JSON object holding every header that did not get its own.
func Attributes(m *destination.Message) map[string]types.MessageAttributeValue {
	type kv struct{ k, v string }
	var all []kv
	seen := map[string]bool{}
	for _, k := range []string{"webhook-id", "webhook-timestamp", "webhook-signature", "content-type"} {
		if v := strings.Join(m.Header.Values(k), ", "); v != "" {
			all = append(all, kv{k, v})
		}
		seen[k] = true
	}
	all = append(all, kv{destination.HeaderEventType, m.EventType})
	seen[destination.HeaderEventType] = true
	for _, k := range []string{"traceparent", "tracestate"} {
		if v := strings.Join(m.Header.Values(k), ", "); v != "" {
			all = append(all, kv{k, v})
		}
		seen[k] = true
	}
	var rest []string
	for k := range m.Header {
		if lk := strings.ToLower(k); !seen[lk] {
			rest = append(rest, k)
		}
	}
	sort.Strings(rest)
	for _, k := range rest {
		all = append(all, kv{strings.ToLower(k), strings.Join(m.Header[k], ", ")})
	}

	var ok, other []kv
	for _, a := range all {
		if validAttrName(a.k) && a.v != "" {
			ok = append(ok, a)
		} else {
			other = append(other, a)
		}
	}
	if len(other) > 0 || len(ok) > MaxAttributes {
		// Keep room for herald-headers.
		n := min(len(ok), MaxAttributes-1)
		other = append(other, ok[n:]...)
		ok = ok[:n]
	}
	attrs := make(map[string]types.MessageAttributeValue, len(ok)+1)
	for _, a := range ok {
		attrs[a.k] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(a.v)}
	}
	if len(other) > 0 {
		packed := make(map[string]string, len(other))
		for _, a := range other {
			packed[a.k] = a.v
		}
		b, _ := json.Marshal(packed) // a map of strings always encodes
		attrs[HeadersAttribute] = types.MessageAttributeValue{DataType: aws.String("String"), StringValue: aws.String(string(b))}
	}
	return attrs
}

// validAttrName reports whether SQS accepts name as a message attribute name.
func validAttrName(name string) bool {
	if name == "" || len(name) > 256 || name == HeadersAttribute || strings.HasPrefix(name, ".") || strings.HasSuffix(name, ".") || strings.Contains(name, "..") {
		return false
	}
	if l := strings.ToLower(name); strings.HasPrefix(l, "aws.") || strings.HasPrefix(l, "amazon.") {
		return false
	}
	for _, r := range name {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.') {
			return false
		}
	}
	return true
}

// queue names the queue in messages.
func (s *Sender) queue() string { return fmt.Sprintf("queue %q", s.s.queueName()) }

// queueName is the last segment of the queue URL.
func (c *Conn) queueName() string {
	i := strings.LastIndex(c.QueueURL, "/")
	return c.QueueURL[i+1:]
}

// classify turns a failed call into an Outcome.
func (s *Sender) classify(ctx context.Context, err error) destination.Outcome {
	return classify(ctx, err, s.queue(), "sending to", s.t.env.MaxConnections)
}

// classify turns a failed call on queue q into an Outcome; op says what failed ("sending to").
func classify(ctx context.Context, err error, q, op string, maxConns int) destination.Outcome {
	if errors.Is(err, errBusy) {
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindBrokerBusy,
			Error: fmt.Sprintf("Herald holds its maximum of %d SQS connections; the attempt will be retried", maxConns)}
	}
	var api smithy.APIError
	if errors.As(err, &api) {
		return classifyCode(q, api.ErrorCode(), api.ErrorMessage(), api.ErrorFault() == smithy.FaultServer)
	}
	if ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindTimeout,
				Error: fmt.Sprintf("SQS did not acknowledge the message to %s within the endpoint's timeout", q)}
		}
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindCanceled,
			Error: "the attempt was canceled before SQS acknowledged it"}
	}
	class, kind := httpsend.ClassifyDialError(err)
	return destination.Outcome{Class: class, ErrorKind: kind, Error: fmt.Sprintf("%s SQS %s failed: %s", op, q, rootCause(err))}
}

// rootCause is the innermost error's text (the SDK's wrapping repeats the operation).
func rootCause(err error) string {
	for {
		u := errors.Unwrap(err)
		if u == nil {
			return err.Error()
		}
		err = u
	}
}

func (s *Sender) classifyEntry(e types.BatchResultErrorEntry, failed, total int) destination.Outcome {
	out := classifyCode(s.queue(), aws.ToString(e.Code), aws.ToString(e.Message), !e.SenderFault)
	out.Error = fmt.Sprintf("%d of %d messages refused: %s", failed, total, out.Error)
	return out
}

// classifyCode classifies an SQS error code (AWS Query codes and their AWS JSON names).
func classifyCode(q, code, msg string, serverFault bool) destination.Outcome {
	perm := func(kind, text string) destination.Outcome {
		return destination.Outcome{Class: destination.Permanent, ErrorKind: kind, Error: text}
	}
	retry := func(kind, text string) destination.Outcome {
		return destination.Outcome{Class: destination.Retryable, ErrorKind: kind, Error: text}
	}
	lmsg := strings.ToLower(msg)
	sizeMsg := strings.Contains(lmsg, "size") || strings.Contains(lmsg, "shorter than") || strings.Contains(lmsg, "too long")
	switch code {
	case "AWS.SimpleQueueService.NonExistentQueue", "QueueDoesNotExist", "QueueDeletedRecently":
		return perm(destination.KindNoRoute, fmt.Sprintf("SQS has no %s", q))
	case "AccessDenied", "AccessDeniedException", "InvalidClientTokenId", "SignatureDoesNotMatch",
		"InvalidSecurity", "UnrecognizedClientException", "MissingAuthenticationToken", "IncompleteSignature",
		"ExpiredToken", "KmsAccessDenied", "KMS.AccessDeniedException", "KmsDisabled", "KMS.DisabledException",
		"KmsInvalidKeyUsage", "KmsInvalidState", "KmsNotFound", "OptInRequired":
		return perm(destination.KindDenied, fmt.Sprintf("SQS refused the credentials or the operation on %s (%s): the IAM identity needs sqs:SendMessage on it", q, code))
	case "BatchRequestTooLong", "MessageTooLong":
		return perm(destination.KindTooLarge, fmt.Sprintf("the message is larger than %s accepts: %s", q, msg))
	case "InvalidParameterValue", "InvalidMessageContents", "InvalidParameterValueException":
		if sizeMsg {
			return perm(destination.KindTooLarge, fmt.Sprintf("the message is larger than %s accepts: %s", q, msg))
		}
		return perm(destination.KindBrokerError, fmt.Sprintf("SQS refused the message to %s: %s", q, msg))
	case "RequestThrottled", "ThrottlingException", "Throttling", "OverLimit", "KmsThrottled", "KMS.ThrottlingException", "RequestLimitExceeded":
		return retry(destination.KindBrokerBusy, fmt.Sprintf("SQS is throttling sends to %s (%s)", q, code))
	case "ServiceUnavailable", "InternalError", "InternalFailure", "AWS.SimpleQueueService.InternalError":
		return retry(destination.KindBrokerError, fmt.Sprintf("SQS failed on its side for %s (%s)", q, code))
	}
	if serverFault {
		return retry(destination.KindBrokerError, fmt.Sprintf("SQS failed on its side for %s: %s %s", q, code, msg))
	}
	return perm(destination.KindBrokerError, fmt.Sprintf("SQS refused the message to %s: %s %s", q, code, msg))
}
