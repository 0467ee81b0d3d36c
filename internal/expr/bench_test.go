package expr

import (
	"context"
	"encoding/json"
	"fmt"
	"testing"
)

// envelope2K is an envelope of about 2 KiB, the size of a typical event.
func envelope2K(b *testing.B) []byte {
	items := make([]map[string]any, 0, 12)
	for i := range 12 {
		items = append(items, map[string]any{"sku": fmt.Sprintf("sku_%04d", i), "quantity": i + 1, "unit_price": 99.5, "description": "A line item on the invoice"})
	}
	env := map[string]any{
		"id": "evt_2f8c1a", "type": "invoice.paid", "timestamp": "2026-11-30T10:00:00Z", "source": "billing",
		"resource": map[string]any{"id": "inv_1", "type": "invoice"},
		"inbound":  map[string]any{"request_id": "req_1", "provider_id": "prv_1"},
		"data": map[string]any{
			"id": "inv_1", "amount": 1200, "currency": "EUR", "items": items,
			"customer": map[string]any{"email": "a@b.c", "name": "Ada Lovelace", "address": map[string]any{"city": "London", "country": "GB"}},
		},
	}
	p, err := json.Marshal(env)
	if err != nil {
		b.Fatal(err)
	}
	return p
}

func BenchmarkNewInput(b *testing.B) {
	p := envelope2K(b)
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := NewInput(p); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkFilterMatch(b *testing.B) {
	in := mustInput(b, string(envelope2K(b)))
	f, err := CompileFilter(`data.amount > 1000 && data.currency == "EUR"`)
	if err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		ok, err := f.Match(ctx, in)
		if err != nil || !ok {
			b.Fatal(ok, err)
		}
	}
}

func BenchmarkTransformApply(b *testing.B) {
	in := mustInput(b, string(envelope2K(b)))
	for name, src := range map[string]string{
		"omit":        `omit(event, ["data.customer.email"])`,
		"restructure": `{"kind": type, "invoice": data.id, "total": data.amount, "version": 2}`,
	} {
		b.Run(name, func(b *testing.B) {
			tr, err := CompileTransform(src)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := tr.Apply(ctx, in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkCompileFilter(b *testing.B) {
	if _, err := env(); err != nil { // the environment is built once per process, not per compile
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := CompileFilter(`data.amount > 1000 && data.currency == "EUR"`); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkNewEnv(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := newEnv(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkFilterMatch_Regex shows what a bounded match costs: a literal pattern compiled once
// per program, a dynamic one served by the program's cache, and the largest string a match of a
// small program may read (64 KiB against 4 instructions, MaxRegexWork).
func BenchmarkFilterMatch_Regex(b *testing.B) {
	in := mustInput(b, string(envelope2K(b)))
	large := largeInput(b, 60<<10)
	for _, bc := range []struct {
		name, src string
		in        *Input
	}{
		{"literal", `data.customer.email.matches("^[a-z]+@b\\.c$")`, in},
		{"dynamic", `data.customer.email.matches("^[a-z]+@" + data.customer.address.country.lowerAscii())`, in},
		{"64KiB", `data.s.matches("z")`, large},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f, err := CompileFilter(bc.src)
			if err != nil {
				b.Fatal(err)
			}
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if _, err := f.Match(ctx, bc.in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
