package api

import (
	"slices"
	"testing"
	"time"
)

// The bulk lane admits one large publish at a time, and waiting tenants take turns: a tenant
// with a queue of large publishes does not keep another tenant's one waiting behind all of them.
func TestBulkLane_TenantsTakeTurns(t *testing.T) {
	t.Parallel()
	b := newBulkLane(0)
	never := make(chan struct{})
	release, ok, _ := b.enter("loud", never)
	if !ok {
		t.Fatal("the first large publish was not admitted into an empty lane")
	}
	admitted := make(chan string, 8)
	// Queue loud-2, loud-3, then calm-1, one at a time so that the order is known.
	for _, w := range []struct{ name, tenant string }{{"loud-2", "loud"}, {"loud-3", "loud"}, {"calm-1", "calm"}} {
		before := b.waiting()
		go func() {
			rel, ok, _ := b.enter(w.tenant, never)
			if ok {
				admitted <- w.name
				time.Sleep(10 * time.Millisecond)
				rel()
			}
		}()
		deadline := time.Now().Add(10 * time.Second)
		for b.waiting() == before {
			if time.Now().After(deadline) {
				t.Fatalf("%s never queued", w.name)
			}
			time.Sleep(time.Millisecond)
		}
	}
	release()
	var order []string
	for range 3 {
		select {
		case name := <-admitted:
			order = append(order, name)
		case <-time.After(10 * time.Second):
			t.Fatalf("admitted %v, then nothing", order)
		}
	}
	if want := []string{"loud-2", "calm-1", "loud-3"}; !slices.Equal(order, want) {
		t.Fatalf("admitted in the order %v, want %v (tenants in turn)", order, want)
	}
}

// A request that gives up while it waits leaves the lane; the next one is admitted.
func TestBulkLane_AWaiterThatGoesIsForgotten(t *testing.T) {
	t.Parallel()
	b := newBulkLane(0)
	release, _, _ := b.enter("a", nil)
	gone := make(chan struct{})
	result := make(chan bool, 1)
	go func() {
		_, ok, _ := b.enter("b", gone)
		result <- ok
	}()
	for b.waiting() == 0 {
		time.Sleep(time.Millisecond)
	}
	close(gone)
	if ok := <-result; ok {
		t.Fatal("a request whose client went was admitted")
	}
	if n := b.waiting(); n != 0 {
		t.Fatalf("%d requests still wait", n)
	}
	release()
	if _, ok, _ := b.enter("c", nil); !ok {
		t.Fatal("the lane is stuck after a waiter went")
	}
}

func (b *bulkLane) waiting() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	n := 0
	for _, q := range b.queues {
		n += len(q)
	}
	return n
}

// While small publishes flow, the lane is open only for its share of the time: after a large
// publish, the next one waits until the lane reopens (then it is admitted); with no small
// publish about, it is admitted at once.
func TestBulkLane_ShareWhileSmallPublishesFlow(t *testing.T) {
	t.Parallel()
	never := make(chan struct{})
	run := func(b *bulkLane, took time.Duration) {
		release, ok, _ := b.enter("bulky", never)
		if !ok {
			t.Fatal("the first large publish was not admitted into an empty lane")
		}
		time.Sleep(took)
		release()
	}

	b := newBulkLane(0.5)
	b.noteSmall(time.Now())
	run(b, 200*time.Millisecond) // closes the lane for about as long again
	b.mu.Lock()
	until := b.closedUntil
	closed := b.closed(time.Now())
	b.mu.Unlock()
	if !closed {
		t.Fatal("the lane is open right after a large publish while small publishes flow")
	}
	admitted := make(chan time.Time, 1)
	go func() {
		release, ok, _ := b.enter("bulky", never)
		if ok {
			admitted <- time.Now()
			release()
		}
	}()
	select {
	case at := <-admitted:
		if at.Before(until) {
			t.Fatalf("a large publish was admitted at %v while the lane was closed until %v", at, until)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the lane never reopened")
	}

	quiet := newBulkLane(0.5) // no small publish: always open
	run(quiet, 50*time.Millisecond)
	quiet.mu.Lock()
	closed = quiet.closed(time.Now())
	quiet.mu.Unlock()
	if closed {
		t.Fatal("the lane closed with no small publish about")
	}
	if _, ok, _ := quiet.enter("bulky", never); !ok {
		t.Fatal("a large publish waited with no small publish about")
	}
}
