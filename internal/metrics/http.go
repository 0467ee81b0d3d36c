package metrics

import (
	"net/http"
	"strconv"
	"time"
)

// unmatchedRoute labels requests that matched no route, so that probing random paths cannot
// create series.
const unmatchedRoute = "unmatched"

// ServeMux serves r with mux and counts the request under the route pattern mux matched (such as
// "POST /v1/tenants/{tenant}/events"), never the raw path, which holds ids.
func (m *Metrics) ServeMux(mux *http.ServeMux, w http.ResponseWriter, r *http.Request) {
	if m == nil {
		mux.ServeHTTP(w, r)
		return
	}
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	// ServeMux sets r.Pattern on the request it is given, so it can be read once it returns.
	mux.ServeHTTP(sw, r)
	route := r.Pattern
	if route == "" {
		route = unmatchedRoute
	}
	code := sw.code
	if code == 0 {
		code = http.StatusOK
	}
	m.apiRequests.WithLabelValues(route, strconv.Itoa(code)).Inc()
	m.apiDuration.WithLabelValues(route).Observe(time.Since(start).Seconds())
}

// statusWriter remembers the status code written. Unwrap lets http.ResponseController reach the
// underlying writer's Flush and deadlines (the export streams).
type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	if w.code == 0 && code >= 200 { // 1xx are interim answers
		w.code = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.code == 0 {
		w.code = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

// Flush passes on to the underlying writer, for handlers that assert http.Flusher directly.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		if w.code == 0 {
			w.code = http.StatusOK
		}
		f.Flush()
	}
}
