package postgres_test

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/heraldhq/herald/internal/redact"
	"github.com/heraldhq/herald/internal/store"
	"github.com/heraldhq/herald/internal/store/postgres"
)

// Errors a method returns without wrapping them in store.ErrUnavailable (a read straight from the
// pool) are still recognised as the database being away, so the API answers 503, not 500; a
// constraint violation is not.
func TestUnavailable_RecognisesTheServerEndingOrRefusingSessions(t *testing.T) {
	var st postgres.Store
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"admin_shutdown", fmt.Errorf("list events: %w", &pgconn.PgError{Code: "57P01"}), true},
		{"cannot_connect_now", fmt.Errorf("get tenant: %w", &pgconn.PgError{Code: "57P03"}), true},
		{"connection_failure", &pgconn.PgError{Code: "08006"}, true},
		{"too_many_connections", &pgconn.PgError{Code: "53300"}, true},
		{"unique_violation", &pgconn.PgError{Code: "23505"}, false},
		{"syntax_error", &pgconn.PgError{Code: "42601"}, false},
		{"plain", errors.New("boom"), false},
	} {
		if got := store.Unavailable(&st, c.err); got != c.want {
			t.Errorf("%s: Unavailable = %v, want %v", c.name, got, c.want)
		}
	}
	// Through the wrapper the node puts around the driver (redaction), too: else the API answers
	// 500 where the database is away, and the dispatcher finds no heartbeats.
	wrapped := redact.NewStore(&st, time.Second)
	if !store.Unavailable(wrapped, &pgconn.PgError{Code: "57P01"}) {
		t.Error("a wrapped store does not recognise admin_shutdown as unavailable")
	}
	if store.HeartbeaterOf(wrapped) == nil {
		t.Error("no heartbeats through the wrapper")
	}
	if !store.Unavailable(&st, fmt.Errorf("x: %w", store.ErrUnavailable)) {
		t.Error("ErrUnavailable itself is not unavailable")
	}
}
