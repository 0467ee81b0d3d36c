package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"

	"github.com/heraldhq/herald/internal/redact"
)

// A listen stream is Server-Sent Events rather than NDJSON: SSE has resumption built in (each
// event carries its cursor as the SSE id, and a client reconnecting sends the last one back as
// Last-Event-ID, which browsers' EventSource does by itself), comments for heartbeats that no
// parser mistakes for data, and proxies know not to buffer text/event-stream. A stream reads the
// tenant's feed (store.EventsAfter) every listenPoll, so it sees events published through any
// node of a cluster, and never misses one that commits late.

const (
	// listenPoll is how often a stream looks for new events.
	listenPoll = 200 * time.Millisecond
	// listenBatch is how many events a stream reads at a time.
	listenBatch = 100
	// listenWriteWindow is how long the client has to take each write: the deadline moves on
	// with every write, so the server's WriteTimeout does not cut a stream, but a client that
	// stops reading is dropped.
	listenWriteWindow = 30 * time.Second
	// listenRetry is the reconnection delay the stream suggests to EventSource clients.
	listenRetry = time.Second
)

// streams ends listen streams when the server shuts down: http.Server.Shutdown waits for
// active requests, and a stream would otherwise never end.
type streams struct {
	stop chan struct{}
	once sync.Once
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

type listenInput struct {
	TenantPath
	Events      []string `query:"events,explode" maxItems:"50" doc:"Event types to send: names, prefix.* or *; repeat the parameter or separate with commas. Default: every type."`
	After       string   `query:"after" maxLength:"200" doc:"Resume after this cursor (an SSE id of an earlier stream). Absent: only events published from now on."`
	LastEventID string   `header:"Last-Event-ID" maxLength:"200" doc:"As after; EventSource clients send it when they reconnect. Wins over after."`
}

func (s *Server) registerListen() {
	s.streams = &streams{stop: make(chan struct{})}
	heartbeat := s.cfg.ListenHeartbeat
	if heartbeat <= 0 {
		heartbeat = 15 * time.Second
	}
	huma.Register(s.api, huma.Operation{
		OperationID: "listen-events", Method: http.MethodGet, Path: "/v1/tenants/{tenant}/listen", Tags: []string{"Events"},
		Summary: "Stream a tenant's events as they are published (Server-Sent Events)",
		Description: "A text/event-stream that stays open. It starts with an event named ready, whose id is the cursor of where the " +
			"stream starts; then each event of the tenant matching events, oldest first, as an unnamed event whose id is its " +
			"cursor and whose data is the event as GET /events/{id} shows it (data redacted by the tenant's redact_fields); " +
			"a heartbeat comment when nothing happened for a while; and an event named close when the server shuts down. To " +
			"resume after a dropped connection without missing or repeating an event, reconnect with the last id seen as " +
			"Last-Event-ID (or after). This stream is for development tools such as herald listen; endpoints remain the way " +
			"to receive events reliably.",
		Responses: map[string]*huma.Response{
			"200": {Description: "Server-Sent Events.", Content: map[string]*huma.MediaType{"text/event-stream": {
				Schema: &huma.Schema{Type: huma.TypeString},
			}}},
		},
	}, func(ctx context.Context, in *listenInput) (*huma.StreamResponse, error) {
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
		return &huma.StreamResponse{Body: func(hctx huma.Context) {
			s.listen(hctx, in.Tenant, tn.UID, patterns, after, heartbeat)
		}}, nil
	})
}

// listen writes a stream until the client goes, the server stops streams, or the store fails.
func (s *Server) listen(hctx huma.Context, tenant, uid string, patterns []string, after int64, heartbeat time.Duration) {
	ctx := hctx.Context()
	_, w := humago.Unwrap(hctx)
	rc := http.NewResponseController(w)
	hctx.SetHeader("Content-Type", "text/event-stream")
	hctx.SetHeader("Cache-Control", "no-store")
	hctx.SetHeader("X-Accel-Buffering", "no") // nginx: pass each event on at once
	hctx.SetStatus(http.StatusOK)
	body := hctx.BodyWriter()
	write := func(msg string) error {
		if err := rc.SetWriteDeadline(time.Now().Add(listenWriteWindow)); err != nil {
			return fmt.Errorf("set write deadline: %w", err)
		}
		if _, err := body.Write([]byte(msg)); err != nil {
			return err
		}
		return rc.Flush()
	}
	log := s.log.With("tenant", tenant, "events", patterns)
	err := func() error {
		cursor, err := sealCursor(s.cursorKeys, "listen", tenant, "", after)
		if err != nil {
			return err
		}
		ready, err := json.Marshal(ListenReady{HeartbeatSeconds: int(heartbeat / time.Second), Events: patterns})
		if err != nil {
			return err
		}
		if err := write(fmt.Sprintf("retry: %d\nevent: ready\nid: %s\ndata: %s\n\n", listenRetry.Milliseconds(), cursor, ready)); err != nil {
			return err
		}
		poll := time.NewTicker(listenPoll)
		defer poll.Stop()
		quiet := time.NewTimer(heartbeat)
		defer quiet.Stop()
		closing := "event: close\ndata: {\"reason\":\"the server is shutting down\"}\n\n"
		for {
			select { // also between full batches, which do not wait below
			case <-ctx.Done():
				return nil
			case <-s.streams.stop:
				return write(closing)
			default:
			}
			evs, err := s.st.EventsAfter(ctx, tenant, after, patterns, listenBatch)
			if err != nil {
				return fmt.Errorf("read events: %w", err)
			}
			if len(evs) > 0 {
				// Read each time: a tenant's redaction setting may change while it listens.
				t, err := s.tenantInstance(ctx, tenant, uid)
				if err != nil {
					return err
				}
				paths := redact.Compile(t.RedactFields)
				var msg strings.Builder
				for i := range evs {
					out, err := eventOut(&evs[i].Event, paths)
					if err != nil {
						return err
					}
					data, err := json.Marshal(out)
					if err != nil {
						return fmt.Errorf("encode event %s: %w", out.ID, err)
					}
					if cursor, err = sealCursor(s.cursorKeys, "listen", tenant, "", evs[i].Position); err != nil {
						return err
					}
					fmt.Fprintf(&msg, "id: %s\ndata: %s\n\n", cursor, data)
				}
				if err := write(msg.String()); err != nil {
					return err
				}
				after = evs[len(evs)-1].Position
				quiet.Reset(heartbeat)
				if len(evs) == listenBatch {
					continue // more are waiting
				}
			}
			select {
			case <-ctx.Done():
				return nil
			case <-s.streams.stop:
				return write(closing)
			case <-quiet.C:
				if _, err := s.tenantInstance(ctx, tenant, uid); err != nil {
					return err
				}
				if err := write(": heartbeat\n\n"); err != nil {
					return err
				}
				quiet.Reset(heartbeat)
			case <-poll.C:
			}
		}
	}()
	switch {
	case err == nil, ctx.Err() != nil:
	case errors.Is(err, errTenantGone):
		_ = write("event: close\ndata: {\"reason\":\"the tenant was deleted\"}\n\n")
	case isClientGone(err):
		log.Debug("listen stream ended: the client went", "err", err)
	default:
		log.Error("listen stream failed", "err", err)
		_ = write("event: error\ndata: {\"error\":\"the stream failed on the server; reconnect with the last id\"}\n\n")
	}
}

// isClientGone reports a write that failed because the client left or stopped reading.
func isClientGone(err error) bool {
	return errors.Is(err, os.ErrDeadlineExceeded) || errors.Is(err, syscall.EPIPE) || errors.Is(err, syscall.ECONNRESET) ||
		errors.Is(err, net.ErrClosed) || errors.Is(err, http.ErrHandlerTimeout)
}
