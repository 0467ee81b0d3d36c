package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/heraldhq/herald/webhook"
)

// source is the bench tenant's source: where to post, and how to sign.
type source struct {
	url    string
	signer *webhook.Signer
}

// createSource makes a Standard Webhooks source through the API, as a user would.
func (c *client) createSource(ctx context.Context) (*source, error) {
	secret, err := webhook.NewSecret()
	if err != nil {
		return nil, fmt.Errorf("source secret: %w", err)
	}
	signer, err := webhook.NewSigner(secret)
	if err != nil {
		return nil, fmt.Errorf("source signer: %w", err)
	}
	body, _ := json.Marshal(map[string]any{"name": "bench", "verification": map[string]any{"scheme": "standard_webhooks", "secrets": []string{secret}}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, c.base+"/v1/tenants/bench/sources", bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+benchKey)
	req.Header.Set("Content-Type", "application/json")
	resp, err := c.http.Do(req)
	if err != nil {
		return nil, fmt.Errorf("create source: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusCreated {
		return nil, fmt.Errorf("create source = %d: %s", resp.StatusCode, b)
	}
	var out struct {
		IngestURL string `json:"ingest_url"`
	}
	if err := json.Unmarshal(b, &out); err != nil || out.IngestURL == "" {
		return nil, fmt.Errorf("create source: no ingest_url in %s", b)
	}
	return &source{url: out.IngestURL, signer: signer}, nil
}

// postAll sends every event as a signed webhook to the source, one request each, from
// cfg.Publishers senders at cfg.Rate requests/s over all (0: as fast as they can), and returns
// how long each request took to be answered.
func postAll(ctx context.Context, c *client, src *source, cfg Config, data string, sent []time.Time) ([]time.Duration, error) {
	var next atomic.Int64
	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) / cfg.Rate)
	}
	// The data's fields, without its braces, follow the type and the bench's sequence number.
	fields := strings.TrimSuffix(strings.TrimPrefix(data, "{"), "}")
	acks := make([]time.Duration, cfg.Events)
	begin := time.Now()
	errs := make(chan error, cfg.Publishers)
	var wg sync.WaitGroup
	for range cfg.Publishers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= cfg.Events {
					return
				}
				if interval > 0 {
					if wait := time.Until(begin.Add(time.Duration(i) * interval)); wait > 0 {
						time.Sleep(wait)
					}
				}
				id := "b-" + strconv.Itoa(i)
				body := []byte(`{"type":"bench.happened","seq":"` + id + `",` + fields + `}`)
				req, err := http.NewRequestWithContext(ctx, http.MethodPost, src.url, bytes.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				req.Header.Set("Content-Type", "application/json")
				now := time.Now()
				src.signer.SetHeaders(req.Header, id, now, body)
				sent[i] = now
				resp, err := c.http.Do(req)
				if err != nil {
					errs <- fmt.Errorf("POST ingest URL: %w", err)
					return
				}
				b, _ := io.ReadAll(resp.Body)
				resp.Body.Close()
				acks[i] = time.Since(now)
				if resp.StatusCode != http.StatusOK {
					errs <- fmt.Errorf("POST ingest URL = %d: %s", resp.StatusCode, b)
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return acks, <-errs
}
