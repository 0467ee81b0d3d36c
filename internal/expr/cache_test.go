package expr

import (
	"context"
	"fmt"
	"sync"
	"testing"
)

func TestCache_ReturnsSameCompiledExpression(t *testing.T) {
	t.Parallel()
	c := NewCache(4)
	f1, err := c.Filter(`type == "a"`)
	if err != nil {
		t.Fatal(err)
	}
	f2, err := c.Filter(`type == "a"`)
	if err != nil {
		t.Fatal(err)
	}
	if f1 != f2 {
		t.Error("second lookup compiled again")
	}
	// The same source as a transform is a different entry.
	tr, err := c.Transform(`type == "a"`)
	if err != nil {
		t.Fatal(err)
	}
	if tr.String() != f1.String() || c.Len() != 2 {
		t.Errorf("Len = %d, want 2", c.Len())
	}
}

func TestCache_EvictsLeastRecentlyUsed(t *testing.T) {
	t.Parallel()
	c := NewCache(2)
	a, _ := c.Filter(`id == "a"`)
	if _, err := c.Filter(`id == "b"`); err != nil {
		t.Fatal(err)
	}
	if again, _ := c.Filter(`id == "a"`); again != a { // a is now the most recent
		t.Fatal("a was recompiled before eviction")
	}
	if _, err := c.Filter(`id == "c"`); err != nil { // evicts b
		t.Fatal(err)
	}
	if c.Len() != 2 {
		t.Fatalf("Len = %d, want 2", c.Len())
	}
	if again, _ := c.Filter(`id == "a"`); again != a {
		t.Error("a was evicted, want b evicted")
	}
	c.mu.Lock()
	_, hasB := c.items[cacheKey{src: `id == "b"`}]
	c.mu.Unlock()
	if hasB {
		t.Error("b is still cached")
	}
}

func TestCache_DoesNotKeepErrors(t *testing.T) {
	t.Parallel()
	c := NewCache(2)
	if _, err := c.Filter(`1`); err == nil {
		t.Fatal("no error for a non-bool filter")
	}
	if _, err := c.Transform(`{`); err == nil {
		t.Fatal("no error for a syntax error")
	}
	if c.Len() != 0 {
		t.Errorf("Len = %d, want 0", c.Len())
	}
}

// TestConcurrentUse is meant for -race: one Input, one Filter, one Transform and one Cache shared
// by many goroutines.
func TestConcurrentUse(t *testing.T) {
	t.Parallel()
	in := mustInput(t, envelope)
	c := NewCache(8)
	const want = `{"data":{"amount":1200,"card":"4242","currency":"EUR","customer":{"name":"Ada"},"id":"inv_1"},"id":"evt_1","inbound":{"provider_id":"prv_1","request_id":"req_1"},"source":"billing","timestamp":"2026-11-30T10:00:00Z","type":"invoice.paid"}`

	var wg sync.WaitGroup
	errs := make(chan error, 64)
	for g := range 16 {
		wg.Go(func() {
			for i := range 50 {
				f, err := c.Filter(fmt.Sprintf(`data.amount > %d`, (g+i)%12*100))
				if err != nil {
					errs <- err
					return
				}
				ok, err := f.Match(context.Background(), in)
				if err != nil || !ok {
					errs <- fmt.Errorf("Match(%s) = %v, %v", f, ok, err)
					return
				}
				tr, err := c.Transform(`omit(event, ["data.customer.email"])`)
				if err != nil {
					errs <- err
					return
				}
				out, err := tr.Apply(context.Background(), in)
				if err != nil || string(out) != want {
					errs <- fmt.Errorf("Apply = %s, %v", out, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if c.Len() > 8 {
		t.Errorf("Len = %d, above the bound", c.Len())
	}
}
