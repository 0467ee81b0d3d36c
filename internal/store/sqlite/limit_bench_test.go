package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"

	"github.com/heraldhq/herald/internal/store/sqlite"
)

// BenchmarkClaimLimit is why the claim statements bind their LIMIT as "(?3+0)" (see byPriority):
// the same prepared three-priority claim, executed with a limit that changes between executions
// as a claim's does, with the limit a bare parameter and as an expression.
func BenchmarkClaimLimit(b *testing.B) {
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "limit.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE d (id INTEGER PRIMARY KEY, endpoint_id TEXT, state INT, priority INT, next_attempt_at INT)`,
		`CREATE INDEX d_due ON d (endpoint_id, state, priority, next_attempt_at)`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	for i := range 1000 {
		if _, err := db.Exec(`INSERT INTO d (endpoint_id, state, priority, next_attempt_at) VALUES ('ep', 0, ?, ?)`, i%3, i); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct{ name, limit string }{{"bare-parameter", "?3"}, {"expression", "(?3+0)"}} {
		q := ""
		for p := range 3 {
			if p > 0 {
				q += " UNION ALL "
			}
			q += fmt.Sprintf(`SELECT id, next_attempt_at FROM (SELECT id, next_attempt_at FROM d
				WHERE endpoint_id = ?1 AND state = 0 AND priority = %d AND next_attempt_at <= ?2 ORDER BY next_attempt_at LIMIT %s)`, p, c.limit)
		}
		st, err := db.Prepare(q)
		if err != nil {
			b.Fatal(err)
		}
		b.Run(c.name, func(b *testing.B) {
			for i := 0; b.Loop(); i++ {
				rows, err := st.Query("ep", 500, 5+i%7)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Close(); err != nil || n == 0 {
					b.Fatalf("claimed %d rows: %v", n, err)
				}
			}
		})
		st.Close()
	}
}

// BenchmarkDueEndpoints is why DueEndpoints walks the index endpoint by endpoint: 500,000
// pending deliveries over 50 endpoints, read by the GROUP BY it replaced and by its statement.
func BenchmarkDueEndpoints(b *testing.B) {
	db, err := sql.Open("sqlite", filepath.Join(b.TempDir(), "due.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	db.SetMaxOpenConns(1)
	for _, q := range []string{
		`CREATE TABLE deliveries (id INTEGER PRIMARY KEY, endpoint_id TEXT NOT NULL, state INT NOT NULL, next_attempt_at INT NOT NULL)`,
		`CREATE INDEX deliveries_due ON deliveries (endpoint_id, next_attempt_at) WHERE state = 0`,
		`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i+1 FROM n WHERE i < 550000)
		 INSERT INTO deliveries (endpoint_id, state, next_attempt_at)
		 SELECT 'ep_' || (i % 50), CASE WHEN i % 11 = 0 THEN 1 ELSE 0 END, (i * 7919) % 1000003 FROM n`,
		`ANALYZE`,
	} {
		if _, err := db.Exec(q); err != nil {
			b.Fatal(err)
		}
	}
	for _, c := range []struct{ name, q string }{
		{"group-by", `SELECT endpoint_id, min(next_attempt_at) FROM deliveries WHERE state = 0 GROUP BY endpoint_id`},
		{"index-walk", sqlite.DueEndpointsQuery},
	} {
		b.Run(c.name, func(b *testing.B) {
			for b.Loop() {
				rows, err := db.Query(c.q)
				if err != nil {
					b.Fatal(err)
				}
				n := 0
				for rows.Next() {
					n++
				}
				if err := rows.Close(); err != nil || n != 50 {
					b.Fatalf("%d endpoints: %v", n, err)
				}
			}
		})
	}
}
