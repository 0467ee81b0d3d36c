// Package desttest is a destination type for tests of the engine's plumbing (API, store,
// dispatcher): it delivers into an in-memory list, so that a test can see exactly what the
// dispatcher handed a non-webhook destination. It is a test double of Herald's own interface,
// not of any broker: the broker types are tested against the real brokers. Only tests import it.
package desttest

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

// Name is the type's name.
const Name = "memory"

// Settings are the type's settings: a queue name (required), a priority (default 5, 1..9) and
// a password (a credential: Secrets names it).
type Settings struct {
	Queue    string `json:"queue"`
	Priority int    `json:"priority"`
	Password string `json:"password,omitempty"`
}

// Delivered is one message as a sender received it.
type Delivered struct {
	Target  destination.Target
	Message *destination.Message
	Batch   bool // it came through SendBatch
}

// Type records what its senders are given. Outcome, when set, decides each message's outcome
// (n counts the messages of that id so far, 1 for the first); otherwise every message succeeds.
type Type struct {
	Batching bool // its senders implement destination.BatchSender
	Outcome  func(m *destination.Message, n int) destination.Outcome

	mu        sync.Mutex
	delivered []Delivered
	seen      map[string]int
	opened    []destination.Target
	closed    bool
}

// New makes the type.
func New() *Type { return &Type{seen: map[string]int{}} }

// Name is "memory".
func (t *Type) Name() string { return Name }

// Check decodes strictly and validates each field.
func (t *Type) Check(raw json.RawMessage) (json.RawMessage, []*destination.FieldError) {
	var s Settings
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&s); err != nil {
		field := ""
		if _, name, ok := strings.Cut(err.Error(), "unknown field "); ok {
			field = strings.Trim(name, `"`)
			return nil, []*destination.FieldError{{Field: field, Message: "unknown setting"}}
		}
		return nil, []*destination.FieldError{{Field: field, Message: "must be a JSON object of the memory settings: " + err.Error()}}
	}
	var errs []*destination.FieldError
	if s.Queue == "" {
		errs = append(errs, &destination.FieldError{Field: "queue", Message: "required: the queue to deliver to"})
	} else if strings.ContainsAny(s.Queue, " \t\r\n") {
		errs = append(errs, &destination.FieldError{Field: "queue", Message: "must not contain spaces", Value: s.Queue})
	}
	if s.Priority == 0 {
		s.Priority = 5
	}
	if s.Priority < 1 || s.Priority > 9 {
		errs = append(errs, &destination.FieldError{Field: "priority", Message: "must be between 1 and 9", Value: s.Priority})
	}
	if len(errs) > 0 {
		return nil, errs
	}
	out, err := json.Marshal(s)
	if err != nil {
		return nil, []*destination.FieldError{{Message: err.Error()}}
	}
	return out, nil
}

// Secrets: the password.
func (t *Type) Secrets() []string { return []string{"password"} }

// Open returns a sender for the target.
func (t *Type) Open(target destination.Target) (destination.Sender, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		return nil, fmt.Errorf("memory destination closed")
	}
	t.opened = append(t.opened, target)
	s := &sender{t: t, target: target}
	if t.Batching {
		return &batchSender{s}, nil
	}
	return s, nil
}

// Close marks the type closed.
func (t *Type) Close() error {
	t.mu.Lock()
	t.closed = true
	t.mu.Unlock()
	return nil
}

// Delivered is what the senders were given, in order.
func (t *Type) Delivered() []Delivered {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]Delivered(nil), t.delivered...)
}

// Opened are the targets senders were opened for, in order.
func (t *Type) Opened() []destination.Target {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]destination.Target(nil), t.opened...)
}

func (t *Type) take(target destination.Target, m *destination.Message, batch bool) destination.Outcome {
	t.mu.Lock()
	t.seen[m.ID]++
	n := t.seen[m.ID]
	t.delivered = append(t.delivered, Delivered{Target: target, Message: m, Batch: batch})
	decide := t.Outcome
	t.mu.Unlock()
	if decide != nil {
		return decide(m, n)
	}
	return destination.Outcome{Class: destination.Success, Response: []byte("queued")}
}

type sender struct {
	t      *Type
	target destination.Target
}

func (s *sender) Send(ctx context.Context, m *destination.Message) destination.Outcome {
	start := time.Now()
	if err := ctx.Err(); err != nil {
		return destination.Outcome{Class: destination.Retryable, ErrorKind: destination.KindCanceled, Error: err.Error()}
	}
	out := s.t.take(s.target, m, false)
	out.Latency = time.Since(start)
	return out
}

type batchSender struct{ *sender }

// SendBatch takes every message; the outcome is the first one's that is not a success.
func (s *batchSender) SendBatch(ctx context.Context, ms []*destination.Message) destination.Outcome {
	start := time.Now()
	out := destination.Outcome{Class: destination.Success}
	for _, m := range ms {
		if o := s.t.take(s.target, m, true); o.Class != destination.Success && out.Class == destination.Success {
			out = o
		}
	}
	out.Latency = time.Since(start)
	return out
}

// Settings describes the settings (destination.Describer).
func (t *Type) Settings() []destination.Setting {
	return []destination.Setting{
		{Name: "queue", Kind: destination.SettingString, Required: true, Destination: true, Help: "The queue to deliver to."},
		{Name: "priority", Kind: destination.SettingInt, Default: 5, Help: "1 to 9."},
		{Name: "password", Kind: destination.SettingString, Secret: true, Help: "A credential."},
	}
}
