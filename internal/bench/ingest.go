package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/heraldhq/herald/event"
)

// ingestCeiling is the second ceiling, for ingest alone: a plain net/http server that reads a
// publish request, decodes its body with the same decoder Herald's publish API uses
// (event.Decode, event.DecodeBatch) and answers 202 with an answer of the same shape, storing
// nothing. The publishers post the same bodies to it, at the same concurrency, as to Herald, so
// ingest events/s over its rate is what Herald's publish path keeps of what HTTP and JSON allow on
// this machine.
type ingestCeiling struct {
	srv *http.Server
	url string
}

// published is the answer for one event, the shape of Herald's (internal/api's Published).
type published struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"`
	Timestamp  time.Time `json:"timestamp"`
	Deliveries int       `json:"deliveries"`
	Duplicate  bool      `json:"duplicate"`
}

func newIngestCeiling() (*ingestCeiling, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("ingest ceiling listen: %w", err)
	}
	ic := &ingestCeiling{url: "http://" + ln.Addr().String()}
	ic.srv = &http.Server{Handler: http.HandlerFunc(ic.publish), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = ic.srv.Serve(ln) }()
	return ic, nil
}

func (ic *ingestCeiling) close() { _ = ic.srv.Close() }

func (ic *ingestCeiling) publish(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 32<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusRequestEntityTooLarge)
		return
	}
	now := event.Timestamp(time.Now())
	answer := func(in *event.Input) published {
		return published{ID: in.ID, Type: in.Type, Timestamp: now, Deliveries: 1}
	}
	var out any
	if strings.HasSuffix(r.URL.Path, "/batch") {
		ins, ps := event.DecodeBatch(body, "body")
		if len(ps) > 0 {
			http.Error(w, ps[0].Error(), http.StatusUnprocessableEntity)
			return
		}
		evs := make([]published, len(ins))
		for i := range ins {
			evs[i] = answer(&ins[i])
		}
		out = struct {
			Events []published `json:"events"`
		}{evs}
	} else {
		in, ps := event.Decode(body, "body")
		if len(ps) > 0 {
			http.Error(w, ps[0].Error(), http.StatusUnprocessableEntity)
			return
		}
		out = answer(&in)
	}
	b, err := json.Marshal(out)
	if err != nil {
		http.Error(w, err.Error(), http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusAccepted)
	_, _ = w.Write(b)
}

// measureIngestCeiling publishes cfg's events to a fresh ingest ceiling with the publishers of a
// run and returns the events per second it took.
func measureIngestCeiling(ctx context.Context, cfg Config, data string) (float64, error) {
	ic, err := newIngestCeiling()
	if err != nil {
		return 0, err
	}
	defer ic.close()
	c := &client{base: ic.url, http: &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: cfg.Publishers * 2}}}
	defer c.http.CloseIdleConnections()
	start := time.Now()
	if err := publishAll(ctx, []*client{c}, cfg, data, make([]time.Time, cfg.Events)); err != nil {
		return 0, fmt.Errorf("ingest ceiling: %w", err)
	}
	return float64(cfg.Events) / time.Since(start).Seconds(), nil
}
