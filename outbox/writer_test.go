package outbox_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/outbox"
)

// recorder is an Execer that keeps what it was asked to run.
type recorder struct {
	sql  string
	args []any
}

func (r *recorder) Exec(_ context.Context, sql string, args ...any) (pgconn.CommandTag, error) {
	r.sql, r.args = sql, args
	return pgconn.NewCommandTag("INSERT 0 1"), nil
}

func TestWriter_ChecksEventsBeforeWriting(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		tenant string
		ev     outbox.Event
		want   string // in the error; empty: valid
	}{
		{name: "minimal", tenant: "acme", ev: outbox.Event{Type: "a.b"}},
		{name: "raw JSON", tenant: "acme", ev: outbox.Event{Type: "a.b", Data: json.RawMessage(` {"x": 1} `)}},
		{name: "no tenant", ev: outbox.Event{Type: "a.b"}, want: "tenant"},
		{name: "bad tenant", tenant: "a/b", ev: outbox.Event{Type: "a.b"}, want: "tenant"},
		{name: "no type", tenant: "acme", ev: outbox.Event{}, want: "type"},
		{name: "bad id", tenant: "acme", ev: outbox.Event{ID: "a b", Type: "a.b"}, want: "id"},
		{name: "array data", tenant: "acme", ev: outbox.Event{Type: "a.b", Data: []int{1}}, want: "JSON object"},
		{name: "bytes are not JSON", tenant: "acme", ev: outbox.Event{Type: "a.b", Data: []byte(`{}`)}, want: "JSON object"},
		{name: "unmarshalable", tenant: "acme", ev: outbox.Event{Type: "a.b", Data: map[string]any{"f": func() {}}}, want: "data"},
		{name: "priority", tenant: "acme", ev: outbox.Event{Type: "a.b", Priority: "urgent"}, want: "priority"},
		{name: "resource without id", tenant: "acme", ev: outbox.Event{Type: "a.b", Resource: &outbox.Resource{Type: "order"}}, want: "resource"},
		{name: "too large", tenant: "acme", ev: outbox.Event{Type: "a.b", Data: map[string]string{"x": strings.Repeat("x", 300<<10)}}, want: "limit"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var rec recorder
			id, err := outbox.New().Publish(context.Background(), &rec, tt.tenant, tt.ev)
			if tt.want == "" {
				if err != nil || !strings.HasPrefix(id, "evt_") || len(id) != 30 || rec.args[1] != id {
					t.Fatalf("Publish = %q, %v; want a generated id written", id, err)
				}
				return
			}
			if !errors.Is(err, outbox.ErrInvalid) || !strings.Contains(err.Error(), tt.want) || rec.sql != "" {
				t.Fatalf("Publish = %v, want ErrInvalid about %s and nothing written", err, tt.want)
			}
		})
	}
}

func TestWriter_WritesTheRow(t *testing.T) {
	t.Parallel()
	var rec recorder
	w := outbox.New(outbox.WithTable(`herald.outbox`))
	id, err := w.Publish(context.Background(), &rec, "acme", outbox.Event{ID: "ord_1.created", Type: "order.created",
		Data: json.RawMessage(`{ "total": 42 }`), Source: "shop", Resource: &outbox.Resource{ID: "ord_1"}, Priority: "high"})
	if err != nil || id != "ord_1.created" {
		t.Fatalf("Publish = %q, %v", id, err)
	}
	if !strings.HasPrefix(rec.sql, `INSERT INTO "herald"."outbox" `) {
		t.Fatalf("sql %q", rec.sql)
	}
	want := []any{"acme", "ord_1.created", "order.created", `{"total":42}`, "shop", `{"id":"ord_1"}`, "high"}
	for i := range want {
		if rec.args[i] != want[i] {
			t.Fatalf("arg %d = %#v, want %#v", i+1, rec.args[i], want[i])
		}
	}
}
