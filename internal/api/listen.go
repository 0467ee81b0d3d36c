package api

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
)

// A listen stream is Server-Sent Events rather than NDJSON: SSE has resumption built in (each
// event carries its cursor as the SSE id, and a client reconnecting sends the last one back as
// Last-Event-ID, which browsers' EventSource does by itself), comments for heartbeats that no
// parser mistakes for data, and proxies know not to buffer text/event-stream. A stream reads the
// tenant's feed (store.EventsAfter) every listenPoll, so it sees events published through any
// node of a cluster, and never misses one that commits late.
//
// What a stream holds is bounded: one page of the feed at a time (listenBatch events, and at most
// store.MaxFeedBytes of them plus one), each event let go once written, and each write must be
// taken by the client within the write timeout, or the stream is dropped. Streams are counted per
// API key and per server, so that nobody can hold many.

const (
	// listenPoll is how often a stream looks for new events.
	listenPoll = 200 * time.Millisecond
	// listenBatch is how many events a stream reads at a time, at most (a page also ends at
	// store.MaxFeedBytes).
	listenBatch = 100
	// DefaultListenWriteTimeout is how long the client has to take each write: the deadline
	// moves on with every write, so the server's WriteTimeout does not cut a stream, but a
	// client that stops reading is dropped.
	DefaultListenWriteTimeout = 30 * time.Second
	// DefaultListenHeartbeat is how often a quiet stream sends a heartbeat comment.
	DefaultListenHeartbeat = 15 * time.Second
	// DefaultMaxListenStreamsPerKey is how many listen streams one API key (or portal link) may
	// hold open at once: a developer's herald listen and a few browser tabs.
	DefaultMaxListenStreamsPerKey = 5
	// DefaultMaxListenStreams is how many listen streams one server holds open at once, over all
	// keys: with what each holds (about 1.5 MiB at most), under 1 GiB.
	DefaultMaxListenStreams = 500
	// listenRetry is the reconnection delay the stream suggests to EventSource clients.
	listenRetry = time.Second
	// listenBusyRetry is the Retry-After of a stream refused for a limit: streams end when their
	// clients go, or within the write timeout when they stop reading.
	listenBusyRetry = 5 * time.Second
)

// Reasons a stream ends, in the reason of its close or error event and in the logs and metrics.
const (
	ListenShutdown      = "shutdown"       // the server is shutting down (event close)
	ListenServerError   = "server_error"   // the server failed to read or encode events (event error)
	ListenSlowConsumer  = "slow_consumer"  // the client did not take a write within the write timeout
	ListenTenantDeleted = "tenant_deleted" // the tenant the stream was opened for was deleted (event close)
)

// streams counts open listen streams, and ends them when the server shuts down:
// http.Server.Shutdown waits for active requests, and a stream would otherwise never end.
type streams struct {
	stop chan struct{}
	once sync.Once
	// perKey and total are the limits.
	perKey, total int
	open          *holds // by key id; herald_listen_streams follows it
}

// acquire counts a new stream of key, or refuses it with a 429 naming the limit. release undoes
// it.
func (st *streams) acquire(keyID string) (func(), error) {
	release, full := st.open.take(keyID, st.perKey, st.total)
	var msg string
	switch full {
	case "key":
		msg = fmt.Sprintf("too many listen streams: this API key already has %d open, the most one key may hold at once; close one, or retry later", st.perKey)
	case "total":
		msg = fmt.Sprintf("too many listen streams: this server already holds %d, the most it holds at once; retry later", st.total)
	default:
		return release, nil
	}
	return nil, huma.ErrorWithHeaders(huma.NewError(http.StatusTooManyRequests, msg),
		http.Header{"Retry-After": []string{strconv.Itoa(int(listenBusyRetry / time.Second))}})
}

// StopStreams ends every listen stream, at once and for good: each sends a close event and
// returns. The node calls it when its HTTP server starts shutting down.
func (s *Server) StopStreams() {
	s.streams.once.Do(func() { close(s.streams.stop) })
}

// ListenReady is the data of the first event of a stream.
type ListenReady struct {
	HeartbeatSeconds int      `json:"heartbeat_seconds" doc:"How often a quiet stream sends a heartbeat comment; a client may reconnect when it hears nothing for a few of these."`
	Events           []string `json:"events" doc:"The event type patterns the stream sends."`
}

// ListenEnd is the data of the event (close or error) that ends a stream.
type ListenEnd struct {
	Reason  string `json:"reason" enum:"shutdown,server_error,tenant_deleted" doc:"Why the stream ends."`
	Message string `json:"message"`
}

type listenInput struct {
	TenantPath
	Events      []string `query:"events,explode" maxItems:"50" doc:"Event types to send: names, prefix.* or *; repeat the parameter or separate with commas. Default: every type."`
	After       string   `query:"after" maxLength:"200" doc:"Resume after this cursor (an SSE id of an earlier stream). Absent: only events published from now on."`
	LastEventID string   `header:"Last-Event-ID" maxLength:"200" doc:"As after; EventSource clients send it when they reconnect. Wins over after."`
}

func (s *Server) registerListen() {
	s.streams = &streams{stop: make(chan struct{}), open: newHolds(s.cfg.Metrics.ListenStreams),
		perKey: cmp.Or(max(s.cfg.MaxListenStreamsPerKey, 0), DefaultMaxListenStreamsPerKey),
		total:  cmp.Or(max(s.cfg.MaxListenStreams, 0), DefaultMaxListenStreams)}
	huma.Register(s.api, huma.Operation{
		OperationID: "listen-events", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/listen", Tags: []string{"Events"},
		Summary: "Stream a tenant's events as they are published (Server-Sent Events)",
		Description: "A text/event-stream that stays open. It starts with an event named ready, whose id is the cursor of where the " +
			"stream starts; then each event of the tenant matching events, oldest first, as an unnamed event whose id is its " +
			"cursor and whose data is the event as GET /events/{id} shows it (data redacted by the tenant's redact_fields); " +
			"a heartbeat comment when nothing happened for a while; and an event named close when the server shuts down. To " +
			"resume after a dropped connection without missing or repeating an event, reconnect with the last id seen as " +
			"Last-Event-ID (or after). A client that does not take a write within the write timeout (30 s by default) is " +
			"dropped. An API key may hold a few streams at once, and a server a few hundred: above either, 429 with " +
			"Retry-After. This stream is for development tools such as herald listen; endpoints remain the way to receive " +
			"events reliably.",
		Responses: map[string]*huma.Response{
			"200": {Description: "Server-Sent Events.", Content: map[string]*huma.MediaType{"text/event-stream": {
				Schema: &huma.Schema{Type: huma.TypeString},
			}}},
		},
	}, s.openListen)
}

// openListen checks a listen request and counts the stream; the stream itself is listen.
func (s *Server) openListen(ctx context.Context, in *listenInput) (*huma.StreamResponse, error) {
	var patterns []string
	for _, e := range in.Events {
		for _, p := range strings.Split(e, ",") {
			if p = strings.TrimSpace(p); p != "" {
				patterns = append(patterns, p)
			}
		}
	}
	if errs := validPatterns("query.events", patterns); len(errs) > 0 {
		return nil, huma.Error422UnprocessableEntity("invalid event type pattern", errs...)
	}
	// The stream is bound to this instance of the tenant: it ends if the tenant is deleted.
	tn, err := s.st.GetTenant(ctx, in.Tenant)
	if err != nil {
		return nil, s.fail(err, "tenant "+in.Tenant) // 404 for a tenant that does not exist
	}
	var after int64
	switch {
	case in.LastEventID != "":
		if after, err = openCursor(s.cursorKeys, "listen", in.Tenant, "", in.LastEventID); err != nil {
			return nil, badCursor("header.Last-Event-ID", in.LastEventID, err)
		}
	case in.After != "":
		if after, err = openCursor(s.cursorKeys, "listen", in.Tenant, "", in.After); err != nil {
			return nil, badCursor("query.after", in.After, err)
		}
	default:
		if after, err = s.st.LatestPosition(ctx, in.Tenant); err != nil {
			return nil, s.fail(err, "events")
		}
	}
	if patterns == nil {
		patterns = []string{"*"}
	}
	keyID := ""
	if p, ok := ctx.Value(principalKey{}).(principal); ok {
		keyID = p.key.ID
	}
	// Counted last: huma calls Body as soon as this returns, and Body releases it.
	release, err := s.streams.acquire(keyID)
	if err != nil {
		return nil, err
	}
	l := &listenStream{s: s, tenant: in.Tenant, uid: tn.UID, keyID: keyID, patterns: patterns, after: after,
		heartbeat: cmp.Or(max(s.cfg.ListenHeartbeat, 0), DefaultListenHeartbeat), window: cmp.Or(max(s.cfg.ListenWriteTimeout, 0), DefaultListenWriteTimeout)}
	return &huma.StreamResponse{Body: func(hctx huma.Context) {
		defer release()
		l.run(hctx)
	}}, nil
}

// listenStream is one open stream.
type listenStream struct {
	s                 *Server
	tenant, keyID     string
	uid               string // the tenant instance the stream was opened for
	patterns          []string
	after             int64 // the position of the last event sent
	heartbeat, window time.Duration

	rc   *http.ResponseController
	body io.Writer
}

// errSlowConsumer is a write the client did not take within the write timeout.
var errSlowConsumer = errors.New("the client did not take a write in time")

// write sends msg, which the client must take within the write timeout. Flushing is apart
// (flush), so that a page of small events goes out in one packet.
func (l *listenStream) write(msg []byte) error {
	return l.withDeadline(func() error {
		_, err := l.body.Write(msg)
		return err
	})
}

// flush sends what is buffered, within the write timeout.
func (l *listenStream) flush() error {
	return l.withDeadline(l.rc.Flush)
}

// withDeadline runs a write that the client must take within the write timeout, and tells a
// client too slow (errSlowConsumer) from one that went.
func (l *listenStream) withDeadline(write func() error) error {
	start := time.Now()
	if err := l.rc.SetWriteDeadline(start.Add(l.window)); err != nil {
		return fmt.Errorf("set write deadline: %w", err)
	}
	err := write()
	if err != nil && (errors.Is(err, os.ErrDeadlineExceeded) || time.Since(start) >= l.window) {
		return fmt.Errorf("%w (%v): %w", errSlowConsumer, l.window, err)
	}
	return err
}

// end sends the event that ends the stream.
func (l *listenStream) end(name, reason, message string) error {
	data, err := json.Marshal(ListenEnd{Reason: reason, Message: message})
	if err != nil {
		return err
	}
	if err := l.write(fmt.Appendf(nil, "event: %s\ndata: %s\n\n", name, data)); err != nil {
		return err
	}
	return l.flush()
}

// run writes the stream until the client goes or falls behind, the server stops streams, or the
// store fails.
func (l *listenStream) run(hctx huma.Context) {
	ctx := hctx.Context()
	_, w := humago.Unwrap(hctx)
	l.rc = http.NewResponseController(w)
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetHeader("X-Accel-Buffering", "no") // nginx: pass each event on at once
	hctx.SetStatus(http.StatusOK)
	l.body = hctx.BodyWriter()
	log := l.s.log.With("tenant", l.tenant, "key", l.keyID, "events", l.patterns)
	err := l.loop(ctx)
	switch {
	case errors.Is(err, errSlowConsumer):
		// Nothing more can be written: the response keeps the failed write's error. The client,
		// if it reads again, sees the stream end without a close event, and reconnects.
		log.Warn("listen stream dropped: the client did not keep up", "reason", ListenSlowConsumer, "err", err)
		l.s.cfg.Metrics.ListenDropped(ListenSlowConsumer)
	case err == nil, ctx.Err() != nil:
	case errors.Is(err, errTenantGone):
		_ = l.end("close", ListenTenantDeleted, "the tenant was deleted")
	case isClientGone(err):
		log.Debug("listen stream ended: the client went", "err", err)
	default:
		log.Error("listen stream failed", "err", err)
		_ = l.end("error", ListenServerError, "the stream failed on the server; reconnect with the last id")
	}
}

// loop is the stream's life: the ready event, then pages of events and heartbeats.
func (l *listenStream) loop(ctx context.Context) error {
	cursor, err := sealCursor(l.s.cursorKeys, "listen", l.tenant, "", l.after)
	if err != nil {
		return err
	}
	ready, err := json.Marshal(ListenReady{HeartbeatSeconds: int(l.heartbeat / time.Second), Events: l.patterns})
	if err != nil {
		return err
	}
	if err := l.write(fmt.Appendf(nil, "retry: %d\nevent: ready\nid: %s\ndata: %s\n\n", listenRetry.Milliseconds(), cursor, ready)); err != nil {
		return err
	}
	if err := l.flush(); err != nil {
		return err
	}
	poll := time.NewTicker(listenPoll)
	defer poll.Stop()
	quiet := time.NewTimer(l.heartbeat)
	defer quiet.Stop()
	const closing = "the server is shutting down"
	for {
		select { // also between full pages, which do not wait below
		case <-ctx.Done():
			return nil
		case <-l.s.streams.stop:
			return l.end("close", ListenShutdown, closing)
		default:
		}
		full, err := l.page(ctx)
		if err != nil {
			return err
		}
		if full {
			quiet.Reset(l.heartbeat)
			continue // more are waiting
		}
		select {
		case <-ctx.Done():
			return nil
		case <-l.s.streams.stop:
			return l.end("close", ListenShutdown, closing)
		case <-quiet.C:
			if _, err := l.s.tenantInstance(ctx, l.tenant, l.uid); err != nil {
				return err
			}
			if err := l.write([]byte(": heartbeat\n\n")); err != nil {
				return err
			}
			if err := l.flush(); err != nil {
				return err
			}
			quiet.Reset(l.heartbeat)
		case <-poll.C:
		}
	}
}

// page reads one page of events and writes it, one event at a time, letting each go once it is
// written; full says more may be waiting.
func (l *listenStream) page(ctx context.Context) (full bool, err error) {
	evs, err := l.s.st.EventsAfter(ctx, l.tenant, l.after, l.patterns, listenBatch)
	if err != nil {
		return false, fmt.Errorf("read events: %w", err)
	}
	if len(evs) == 0 {
		return false, nil
	}
	full = store.FeedPageFull(evs, listenBatch)
	// Read each time: a tenant's redaction setting may change while it listens, and the tenant
	// may be deleted (and another created with its id).
	t, err := l.s.tenantInstance(ctx, l.tenant, l.uid)
	if err != nil {
		return false, err
	}
	paths := redact.Compile(t.RedactFields)
	for i := range evs {
		out, err := eventOut(&evs[i].Event, paths)
		if err != nil {
			return false, err
		}
		data, err := json.Marshal(out)
		if err != nil {
			return false, fmt.Errorf("encode event %s: %w", out.ID, err)
		}
		cursor, err := sealCursor(l.s.cursorKeys, "listen", l.tenant, "", evs[i].Position)
		if err != nil {
			return false, err
		}
		pos := evs[i].Position
		evs[i] = store.FeedEvent{} // its payload is no longer needed
		if err := l.write(fmt.Appendf(nil, "id: %s\ndata: %s\n\n", cursor, data)); err != nil {
			return false, err
		}
		l.after = pos
	}
	return full, l.flush()
}

// isClientGone reports a write that failed because the client left or stopped reading.
func isClientGone(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrHandlerTimeout)
}
