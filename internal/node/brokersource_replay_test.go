package node_test

import (
	"strings"
	"testing"
	"time"
)

type receivedOut struct {
	ID        string `json:"id"`
	Method    string `json:"method"`
	Status    string `json:"status"`
	Reason    string `json:"reason"`
	DedupKey  string `json:"dedup_key"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
}

type replayedOut struct {
	RequestID  string `json:"request_id"`
	EventID    string `json:"event_id"`
	Deliveries int    `json:"deliveries"`
	Accepted   bool   `json:"accepted"`
	Duplicate  bool   `json:"duplicate"`
}

// heldMessage waits for the broker source's one received message of the given status.
func heldMessage(t *testing.T, h *harness, srcID, status string) receivedOut {
	t.Helper()
	var got receivedOut
	eventually(t, 30*time.Second, "a "+status+" message of "+srcID, func() bool {
		var page struct {
			Data []receivedOut `json:"data"`
		}
		h.must(200, "GET", "/v1/tenants/acme/received-requests?source_id="+srcID+"&status="+status, nil, &page)
		if len(page.Data) == 0 {
			return false
		}
		if len(page.Data) > 1 {
			t.Fatalf("%d %s messages, want 1: %+v", len(page.Data), status, page.Data)
		}
		got = page.Data[0]
		return true
	})
	return got
}

// eventDeliveries is how many deliveries the tenant has of an event.
func eventDeliveries(t *testing.T, h *harness, eventID string) int {
	t.Helper()
	var page struct {
		Data []struct {
			ID string `json:"id"`
		} `json:"data"`
	}
	h.must(200, "GET", "/v1/tenants/acme/events/"+eventID+"/deliveries", nil, &page)
	return len(page.Data)
}

// A message quarantined by the broker source's schema is replayed, once the schema is fixed,
// through the received requests' replay route: it is re-mapped by the source's current settings
// and published with the event id it had (derived from the broker's message identity), once; a
// second replay is a duplicate. A message refused because its event type was not registered is
// replayed once the type is.
func TestBrokerSource_ReplayHeldMessages(t *testing.T) {
	t.Parallel()
	url := natsURL(t)
	sfx := suffix(t)
	prefix := "bsr" + sfx
	js, st := jsStream(t, url, "BSR_"+sfx, prefix)
	h := start(t, withJS)
	h.setup("acme", "order.created")
	rc := newReceiver(t, nil)
	h.endpoint("acme", map[string]any{"url": rc.URL, "event_types": []string{"*"}})
	var src brokerSourceOut
	h.must(201, "POST", "/v1/tenants/acme/broker-sources", map[string]any{
		"name": "orders", "type": "jstest", "config": map[string]any{"url": url, "stream": "BSR_" + sfx},
		"mapping": map[string]any{"event_type": map[string]any{"from": "subject", "prefix": prefix + "."}},
		"schema":  map[string]any{"type": "object", "required": []string{"amount"}},
	}, &src)

	// No event id in the message: the id is derived from the broker's identity of it.
	jsPublish(t, js, prefix+".order.created", "", `{"n":1}`)
	q := heldMessage(t, h, src.ID, "quarantined")
	if q.Method != "BROKER" || !strings.HasPrefix(q.Reason, "schema:") || !strings.HasPrefix(q.DedupKey, "bmsg_") {
		t.Fatalf("quarantined message = %+v", q)
	}
	eventually(t, 30*time.Second, "the quarantined message acknowledged", func() bool {
		n, _ := consumerState(t, st, src.ID)
		return n == 0
	})

	// Still failing the schema: 422, nothing changes.
	h.must(422, "POST", "/v1/tenants/acme/received-requests/"+q.ID+"/replay", nil, nil)

	// The schema fixed: the replay publishes the event with the id the message had.
	h.must(200, "PATCH", "/v1/tenants/acme/broker-sources/"+src.ID, map[string]any{"schema": map[string]any{"type": "object", "required": []string{"n"}}}, nil)
	var r1 replayedOut
	h.must(202, "POST", "/v1/tenants/acme/received-requests/"+q.ID+"/replay", nil, &r1)
	if r1.RequestID != q.ID || r1.EventID != q.DedupKey || !r1.Accepted || r1.Duplicate || r1.Deliveries != 1 {
		t.Fatalf("first replay = %+v, want the event %s accepted with 1 delivery", r1, q.DedupKey)
	}
	eventually(t, 30*time.Second, "the replayed event delivered", func() bool { return rc.count() >= 1 })
	ids, total := eventIDs(t, rc)
	if total != 1 || string(ids[q.DedupKey]) != `{"n":1}` {
		t.Fatalf("receiver got %d deliveries: %v", total, ids)
	}
	var after receivedOut
	h.must(200, "GET", "/v1/tenants/acme/received-requests/"+q.ID, nil, &after)
	if after.Status != "accepted" || after.EventID != q.DedupKey || after.EventType != "order.created" {
		t.Fatalf("replayed message = %+v", after)
	}

	// Again: a duplicate, no new delivery.
	var r2 replayedOut
	h.must(202, "POST", "/v1/tenants/acme/received-requests/"+q.ID+"/replay", nil, &r2)
	if r2.EventID != q.DedupKey || !r2.Duplicate || r2.Deliveries != 0 || r2.Accepted {
		t.Fatalf("second replay = %+v, want a duplicate of %s", r2, q.DedupKey)
	}
	if n := eventDeliveries(t, h, q.DedupKey); n != 1 {
		t.Fatalf("event %s has %d deliveries after two replays, want 1", q.DedupKey, n)
	}

	// An event type that is not registered: the message is rejected (refused); the replay is
	// refused too until the type exists, then publishes it.
	typ := "order.refused" + sfx
	jsPublish(t, js, prefix+"."+typ, "", `{"n":2}`)
	rj := heldMessage(t, h, src.ID, "rejected")
	if !strings.HasPrefix(rj.Reason, "refused:") || !strings.HasPrefix(rj.DedupKey, "bmsg_") {
		t.Fatalf("rejected message = %+v", rj)
	}
	h.must(422, "POST", "/v1/tenants/acme/received-requests/"+rj.ID+"/replay", nil, nil)
	h.must(201, "POST", "/v1/event-types", map[string]any{"name": typ, "description": "test type"}, nil)
	t.Cleanup(func() { h.call("DELETE", "/v1/event-types/"+typ, nil, nil) })
	var r3 replayedOut
	h.must(202, "POST", "/v1/tenants/acme/received-requests/"+rj.ID+"/replay", nil, &r3)
	if r3.EventID != rj.DedupKey || !r3.Accepted || r3.Duplicate || r3.Deliveries != 1 {
		t.Fatalf("replay of the rejected message = %+v", r3)
	}
	eventually(t, 30*time.Second, "the second replayed event delivered", func() bool { return rc.count() >= 2 })
	ids, total = eventIDs(t, rc)
	if total != 2 || string(ids[rj.DedupKey]) != `{"n":2}` {
		t.Fatalf("receiver got %d deliveries: %v", total, ids)
	}
}
