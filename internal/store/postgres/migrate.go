package postgres

import (
	"cmp"
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The migrations are plain SQL files named NNNNN_what.sql, applied in order of NNNNN. They are
// forward-only: a change is a new file, never an edit of an applied one.
//
//go:embed migrations/*.sql
var migrationFiles embed.FS

type migration struct {
	version int64
	name    string
	sql     string
}

func loadMigrations() ([]migration, error) {
	entries, err := fs.ReadDir(migrationFiles, "migrations")
	if err != nil {
		return nil, fmt.Errorf("migrations: %w", err)
	}
	var ms []migration
	for _, e := range entries {
		num, _, ok := strings.Cut(e.Name(), "_")
		v, err := strconv.ParseInt(num, 10, 64)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: the name must start with a positive version and _", e.Name())
		}
		b, err := migrationFiles.ReadFile(path.Join("migrations", e.Name()))
		if err != nil {
			return nil, fmt.Errorf("migration %s: %w", e.Name(), err)
		}
		ms = append(ms, migration{version: v, name: e.Name(), sql: string(b)})
	}
	slices.SortFunc(ms, func(a, b migration) int { return cmp.Compare(a.version, b.version) })
	for i := 1; i < len(ms); i++ {
		if ms[i].version == ms[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s have the same version", ms[i-1].name, ms[i].name)
		}
	}
	return ms, nil
}

// checkMigrated fails unless the database has every migration this build knows, and no other.
func checkMigrated(ctx context.Context, pool *pgxpool.Pool, _ string) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	var known bool
	if err := pool.QueryRow(ctx, `SELECT to_regclass('herald_migrations') IS NOT NULL`).Scan(&known); err != nil {
		return fmt.Errorf("look up migrations table: %w", err)
	}
	var applied []int64
	if known {
		rows, err := pool.Query(ctx, `SELECT version FROM herald_migrations`)
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		if applied, err = pgx.CollectRows(rows, pgx.RowTo[int64]); err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
	}
	for _, v := range applied {
		if !slices.ContainsFunc(ms, func(m migration) bool { return m.version == v }) {
			return fmt.Errorf("the database has migration %d, which this build of herald does not know: run a newer herald", v)
		}
	}
	for _, m := range ms {
		if !slices.Contains(applied, m.version) {
			return fmt.Errorf("the database lacks migration %s: run herald migrate with this build first", m.name)
		}
	}
	return nil
}

// migrationLock is the first key of the advisory lock that migrations hold; the second is a hash
// of the schema's name, so that stores in different schemas of one database (tests, say) migrate
// independently. ("hera" in ASCII.)
const migrationLock = 0x68657261

// migrate applies the migrations that the database has not seen, all in one transaction holding
// an advisory lock: processes that start together queue on the lock, and each one after the first
// finds nothing left to do. A failed migration leaves nothing half-applied.
func migrate(ctx context.Context, pool *pgxpool.Pool, schema string) error {
	return migrateTo(ctx, pool, schema, 0)
}

// migrateTo is migrate stopping after version upTo (0: the newest); tests use it to make a
// database as an older release left it.
func migrateTo(ctx context.Context, pool *pgxpool.Pool, schema string, upTo int64) error {
	ms, err := loadMigrations()
	if err != nil {
		return err
	}
	err = pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1, hashtext(coalesce(nullif($2, ''), current_schema(), '')))`,
			migrationLock, schema); err != nil {
			return fmt.Errorf("take the migration lock: %w", err)
		}
		if schema != "" {
			// Checked first, not CREATE SCHEMA IF NOT EXISTS: that needs the CREATE privilege on
			// the database even when the schema exists, which an operator may have withheld.
			var exists bool
			if err := tx.QueryRow(ctx, `SELECT EXISTS (SELECT 1 FROM pg_namespace WHERE nspname = $1)`, schema).Scan(&exists); err != nil {
				return fmt.Errorf("look up schema %s: %w", schema, err)
			}
			if !exists {
				if _, err := tx.Exec(ctx, `CREATE SCHEMA `+pgx.Identifier{schema}.Sanitize()); err != nil {
					return fmt.Errorf("create schema %s: %w", schema, err)
				}
			}
		}
		var known bool
		if err := tx.QueryRow(ctx, `SELECT to_regclass('herald_migrations') IS NOT NULL`).Scan(&known); err != nil {
			return fmt.Errorf("look up migrations table: %w", err)
		}
		if !known {
			if _, err := tx.Exec(ctx, `CREATE TABLE herald_migrations (
				version    BIGINT PRIMARY KEY,
				name       TEXT NOT NULL,
				applied_at TIMESTAMPTZ NOT NULL DEFAULT now()
			)`); err != nil {
				return fmt.Errorf("create migrations table: %w", err)
			}
		}
		rows, err := tx.Query(ctx, `SELECT version FROM herald_migrations`)
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		applied, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		if err != nil {
			return fmt.Errorf("read applied migrations: %w", err)
		}
		for _, v := range applied {
			if !slices.ContainsFunc(ms, func(m migration) bool { return m.version == v }) {
				// A newer Herald migrated this database: this one does not know what changed.
				return fmt.Errorf("the database has migration %d, which this build of herald does not know: run a newer herald", v)
			}
		}
		for _, m := range ms {
			if slices.Contains(applied, m.version) {
				continue
			}
			if upTo > 0 && m.version > upTo {
				break
			}
			// Without arguments pgx uses the simple protocol, which runs a file of several statements.
			if _, err := tx.Exec(ctx, m.sql); err != nil {
				return fmt.Errorf("apply migration %s: %w", m.name, err)
			}
			if _, err := tx.Exec(ctx, `INSERT INTO herald_migrations (version, name) VALUES ($1, $2)`, m.version, m.name); err != nil {
				return fmt.Errorf("record migration %s: %w", m.name, err)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("migrate: %w", err)
	}
	return nil
}
