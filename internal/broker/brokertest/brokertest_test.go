package brokertest

import (
	"context"
	"errors"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/httpsend"
)

func TestDialerRecordsAndCounts(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			defer c.Close()
		}
	}()
	d := NewDialer()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	a, err := d.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	b, err := d.Dial(ctx, "tcp", l.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = a.Close()
	_ = a.Close() // counted once
	if dials, open := d.Counts(); dials != 2 || open != 1 || d.Peak() != 2 {
		t.Fatalf("dials %d, open %d, peak %d; want 2, 1, 2", dials, open, d.Peak())
	}
	_ = b.Close()

	r := Refusing()
	if _, err := r.Dial(ctx, "tcp", l.Addr().String()); err == nil {
		t.Fatal("Refusing dialled")
	} else {
		var be *httpsend.BlockedError
		if !errors.As(err, &be) || be.Addr.String() != "127.0.0.1" {
			t.Fatalf("Refusing: %v, want a BlockedError for 127.0.0.1", err)
		}
	}
	if got := r.Addrs(); len(got) != 1 || got[0] != l.Addr().String() || r.Open() != 0 {
		t.Fatalf("Refusing recorded %v, open %d", got, r.Open())
	}
}

func TestFreePortAndWaitListening(t *testing.T) {
	p := FreePort(t)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
	if err != nil {
		t.Fatalf("FreePort gave %d, not free: %v", p, err)
	}
	defer l.Close()
	WaitListening(t, p, 10*time.Second)
}
