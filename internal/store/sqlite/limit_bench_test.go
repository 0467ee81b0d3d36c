package sqlite_test

import (
	"database/sql"
	"fmt"
	"path/filepath"
	"testing"

	_ "modernc.org/sqlite"
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
