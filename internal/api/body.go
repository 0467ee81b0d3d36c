package api

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/danielgtaylor/huma/v2"
	"github.com/danielgtaylor/huma/v2/adapters/humago"
)

const (
	// DefaultBodyGrace and DefaultBodyMinRate bound how long a request body may take to arrive:
	// BodyGrace, plus one second for every BodyMinRate bytes received. A client that sends at
	// least BodyMinRate on average is never cut off, whatever the size (the largest body, a
	// 32 MiB batch, may take 522 s at 64 KiB/s, a 512 kbit/s link), while one that stalls or
	// dribbles is answered 408 once it falls behind.
	DefaultBodyGrace   = 10 * time.Second
	DefaultBodyMinRate = 64 << 10
)

// readBody is a middleware that reads a route's request body before huma decodes it, so that
// a body that cannot be read is the client's mistake answered with a 4xx problem (huma answers
// any read error but a timeout with 500): a malformed chunked encoding or a body cut short 400,
// one that is not UTF-8 400, one too slow 408, one too large 413, a Content-Encoding Herald does not decode 415. It also
// gives the body its time by its size (DefaultBodyGrace, DefaultBodyMinRate) instead of huma's
// flat 5 s, and once the body is in, gives the answer the server's whole write window
// (Config.AnswerTimeout) however long the body took.
func (s *Server) readBody(ctx huma.Context, next func(huma.Context)) {
	op := ctx.Operation()
	if op == nil || op.RequestBody == nil {
		next(ctx)
		return
	}
	refuse := func(status int, msg string, errs ...error) {
		// The rest of the body is not read: the connection cannot carry another request.
		ctx.SetHeader("Connection", "close")
		_ = huma.WriteErr(s.api, ctx, status, msg, errs...)
	}
	if enc := ctx.Header("Content-Encoding"); enc != "" && !strings.EqualFold(enc, "identity") {
		ctx.SetHeader("Accept-Encoding", "identity")
		refuse(http.StatusUnsupportedMediaType, "unsupported content encoding",
			&huma.ErrorDetail{Location: "header.Content-Encoding", Message: "request bodies are not decoded; send them uncompressed", Value: enc})
		return
	}
	r, w := humago.Unwrap(ctx)
	limit := op.MaxBodyBytes
	tooLarge := func() {
		refuse(http.StatusRequestEntityTooLarge, "request body too large",
			&huma.ErrorDetail{Location: "body", Message: fmt.Sprintf("this route takes bodies of less than %d bytes", limit)})
	}
	var buf bytes.Buffer
	if n := r.ContentLength; n > 0 {
		if limit > 0 && n >= limit {
			tooLarge()
			return
		}
		buf.Grow(int(n))
	}
	var src io.Reader = &pacedBody{r: ctx.BodyReader(), setDeadline: ctx.SetReadDeadline, start: time.Now(),
		grace: s.cfg.BodyGrace, rate: int64(s.cfg.BodyMinRate)}
	if limit > 0 {
		// Huma's rule: a body that fills the limit is too large.
		src = io.LimitReader(src, limit)
	}
	n, err := buf.ReadFrom(src)
	if s.cfg.AnswerTimeout > 0 {
		// The server's WriteTimeout counts from the request's headers; a body that took minutes
		// would leave no time to answer, even to say it came too slowly.
		_ = http.NewResponseController(w).SetWriteDeadline(time.Now().Add(s.cfg.AnswerTimeout))
	}
	var ne net.Error
	switch {
	case errors.As(err, &ne) && ne.Timeout():
		refuse(http.StatusRequestTimeout, "request body too slow", &huma.ErrorDetail{Location: "body",
			Message: fmt.Sprintf("the body must arrive within %s plus 1 s per %d KiB; %d bytes came in time", s.cfg.BodyGrace, s.cfg.BodyMinRate>>10, n)})
		return
	case err != nil:
		// A chunked encoding that is malformed, a body shorter than its Content-Length, a
		// client gone mid-body: nothing Herald did, and nothing to log.
		refuse(http.StatusBadRequest, "request body could not be read",
			&huma.ErrorDetail{Location: "body", Message: "malformed or incomplete body after " + fmt.Sprint(n) + " bytes: " + err.Error()})
		return
	case limit > 0 && n >= limit:
		tooLarge()
		return
	case !utf8.Valid(buf.Bytes()):
		// JSON is UTF-8 (RFC 8259). The decoder would turn invalid bytes in a string into
		// U+FFFD without a word, and an event's data, kept raw, would reach the store and the
		// receivers as it came.
		refuse(http.StatusBadRequest, "request body is not UTF-8",
			&huma.ErrorDetail{Location: "body", Message: "JSON must be UTF-8; the body has invalid bytes"})
		return
	}
	if r.ContentLength < 0 && !s.chargePublishBytes(ctx, buf.Len()) {
		return // a body of unknown length is counted once read (bulk counts the others before)
	}
	if errs := s.nullFields(op, buf.Bytes()); len(errs) > 0 {
		_ = huma.WriteErr(s.api, ctx, http.StatusUnprocessableEntity, "validation failed", errs...)
		return
	}
	rc := readContext{humaContext: ctx, body: buf.Bytes()}
	if s.cfg.AnswerTimeout > 0 {
		// The work gets the write window less a margin, so that a store too slow to answer in
		// time (a huge batch on a loaded machine) ends in a 503 the client reads, not in a
		// connection the server cuts at its write deadline.
		actx, cancel := context.WithTimeout(ctx.Context(), s.cfg.AnswerTimeout-answerMargin(s.cfg.AnswerTimeout))
		defer cancel()
		rc.ctx = actx
	}
	next(rc)
}

// answerMargin is how much of the write window an answer keeps for itself.
func answerMargin(window time.Duration) time.Duration { return min(5*time.Second, window/4) }

// pacedBody moves the connection's read deadline on as the body arrives: grace from the start,
// plus a second per rate bytes received.
type pacedBody struct {
	r           io.Reader
	setDeadline func(time.Time) error
	start       time.Time
	grace       time.Duration
	rate, n     int64
}

func (p *pacedBody) Read(b []byte) (int, error) {
	if err := p.setDeadline(p.start.Add(p.grace + time.Duration(p.n)*time.Second/time.Duration(p.rate))); err != nil {
		return 0, fmt.Errorf("set the body's read deadline: %w", err)
	}
	k, err := p.r.Read(b)
	p.n += int64(k)
	return k, err
}

// readContext is a request whose body has been read: huma decodes the bytes.
type readContext struct {
	humaContext
	body []byte
	ctx  context.Context // the request's, bounded by the answer's window; nil: the request's
}

// Context is the request's context, with the answer's deadline.
func (c readContext) Context() context.Context {
	if c.ctx != nil {
		return c.ctx
	}
	return c.humaContext.Context()
}

// humaContext names huma.Context for embedding: a field named Context would hide its Context
// method.
type humaContext = huma.Context

func (c readContext) BodyReader() io.Reader { return bytes.NewReader(c.body) }

// Unwrap lets humago.Unwrap reach the request and the response writer.
func (c readContext) Unwrap() huma.Context { return c.humaContext }

// nullFields finds the members of a request body that are null where the route's schema declares
// a field: huma lets null through for an optional field (and for a required list) as if the field
// were absent, so {"events": null} published nothing and {"event_types": null} looked like "keep".
// Herald gives null no meaning in a request (a PATCH changes the fields sent; to clear a list, send
// []), so it is refused like any other wrong value. Free-form values (an event's data, a JSON
// Schema, examples) may hold nulls. Only bodies that contain "null" at all are decoded for this.
func (s *Server) nullFields(op *huma.Operation, body []byte) []error {
	mt := op.RequestBody.Content["application/json"]
	if mt == nil || mt.Schema == nil || !bytes.Contains(body, []byte("null")) {
		return nil
	}
	var errs []error
	s.walkNulls(mt.Schema, body, "body", &errs)
	return errs
}

// walkNulls looks for null among the declared fields of raw, a value of schema sch. It decodes
// only the levels the schema declares fields or items for: free-form values (an event's data)
// are skipped unread, so a publish with nulls in its data is not decoded a third time.
func (s *Server) walkNulls(sch *huma.Schema, raw json.RawMessage, loc string, errs *[]error) {
	if sch = s.resolve(sch); sch == nil {
		return
	}
	switch {
	case len(sch.Properties) > 0:
		var fields map[string]json.RawMessage
		if json.Unmarshal(raw, &fields) != nil {
			return // not an object: huma answers what it cannot decode
		}
		for k, val := range fields {
			ps := sch.Properties[k]
			if ps == nil {
				continue // a property huma will refuse as unexpected
			}
			at := loc + "." + k
			if string(bytes.TrimSpace(val)) == "null" {
				// A required field that is not nullable is already refused by huma.
				if ps := s.resolve(ps); !slices.Contains(sch.Required, k) || ps != nil && ps.Nullable {
					*errs = append(*errs, &huma.ErrorDetail{Location: at, Message: "must not be null: omit the field, or send a value"})
				}
				continue
			}
			s.walkNulls(ps, val, at, errs)
		}
	case sch.Items != nil:
		var items []json.RawMessage
		if json.Unmarshal(raw, &items) != nil {
			return
		}
		for i, item := range items {
			s.walkNulls(sch.Items, item, fmt.Sprintf("%s[%d]", loc, i), errs)
		}
	}
}

// resolve follows a schema's $ref in the API's registry.
func (s *Server) resolve(sch *huma.Schema) *huma.Schema {
	if sch != nil && sch.Ref != "" {
		return s.api.OpenAPI().Components.Schemas.SchemaFromRef(sch.Ref)
	}
	return sch
}
