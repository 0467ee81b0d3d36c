package storetest

import (
	"encoding/json"
	"errors"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/store"
)

// testEventTypeCRUD checks the catalog's life cycle, and that a schema survives every read and
// update as the document its author wrote (key order included), and that none stays none.
func testEventTypeCRUD(t *testing.T, s store.Store) {
	n := now()
	// Keys out of alphabetical order: a driver that re-encodes the document would reorder them.
	doc := json.RawMessage(`{"type":"object","required":["id"],"properties":{"id":{"type":"string"},"amount":{"type":"integer"}}}`)
	with := &store.EventType{Name: "invoice.paid", Description: "Paid in full.", Schema: doc, CreatedAt: n, UpdatedAt: n}
	without := &store.EventType{Name: "invoice.voided", CreatedAt: n, UpdatedAt: n}
	must(t, s.CreateEventType(ctx, with))
	must(t, s.CreateEventType(ctx, without))
	if err := s.CreateEventType(ctx, &store.EventType{Name: "invoice.paid", CreatedAt: n, UpdatedAt: n}); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("duplicate event type: got %v, want ErrConflict", err)
	}

	check := func(when string, want ...*store.EventType) {
		t.Helper()
		same := func(how string, got, w *store.EventType) {
			t.Helper()
			if got.Name != w.Name || got.Description != w.Description || got.Deprecated != w.Deprecated ||
				!got.CreatedAt.Equal(w.CreatedAt) || !got.UpdatedAt.Equal(w.UpdatedAt) {
				t.Errorf("%s: %s(%s) = %+v, want %+v", when, how, w.Name, got, w)
			}
			if (got.Schema == nil) != (w.Schema == nil) || string(got.Schema) != string(w.Schema) {
				t.Errorf("%s: %s(%s).Schema = %q, want %q", when, how, w.Name, got.Schema, w.Schema)
			}
		}
		for _, w := range want {
			got, err := s.GetEventType(ctx, w.Name)
			must(t, err)
			same("GetEventType", got, w)
		}
		list, _, err := s.ListEventTypes(ctx, store.Page{})
		must(t, err)
		if len(list) != len(want) {
			t.Fatalf("%s: listed %d event types, want %d", when, len(list), len(want))
		}
		for i := range list {
			same("ListEventTypes", &list[i], want[i])
		}
	}
	check("after create", with, without)

	// The schema moves from one type to the other: set where there was none, removed where
	// there was one.
	later := n.Add(time.Second)
	with.Schema, with.Deprecated, with.UpdatedAt = nil, true, later
	without.Schema, without.Description, without.UpdatedAt = json.RawMessage(`{"type":"object"}`), "Voided.", later
	must(t, s.UpdateEventType(ctx, with))
	must(t, s.UpdateEventType(ctx, without))
	check("after update", with, without)

	if err := s.UpdateEventType(ctx, &store.EventType{Name: "missing.type", UpdatedAt: later}); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("update missing event type: got %v, want ErrNotFound", err)
	}
	must(t, s.DeleteEventType(ctx, with.Name))
	if _, err := s.GetEventType(ctx, with.Name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("deleted event type: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteEventType(ctx, with.Name); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("delete missing event type: got %v, want ErrNotFound", err)
	}
	check("after delete", without)
}
