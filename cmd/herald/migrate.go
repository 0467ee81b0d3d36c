package main

import (
	"fmt"
	"path/filepath"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/internal/store/postgres"
	"github.com/heraldhq/herald/internal/store/sqlite"
)

// migrateCmd applies the embedded schema migrations and exits. serve applies them too at start;
// this is for operators who migrate before rolling out new nodes.
func migrateCmd() *cobra.Command {
	var dataDir, databaseURL, schema string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the database schema migrations and exit",
		Long: `Apply Herald's embedded, versioned, forward-only schema migrations to the SQLite store in
--data-dir, or to PostgreSQL with --database-url. herald serve applies them at start as well;
several nodes starting at once take turns (a PostgreSQL advisory lock).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return err
			}
			ctx := cmd.Context()
			if databaseURL != "" {
				st, err := postgres.Open(ctx, databaseURL, postgres.Options{Schema: schema})
				if err != nil {
					return err
				}
				fmt.Fprintln(cmd.OutOrStdout(), "PostgreSQL schema is up to date")
				return st.Close()
			}
			st, err := sqlite.Open(ctx, filepath.Join(dataDir, "herald.db"), sqlite.Options{})
			if err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "SQLite store", filepath.Join(dataDir, "herald.db"), "is up to date")
			return st.Close()
		},
	}
	f := cmd.Flags()
	f.StringVar(&dataDir, "data-dir", "herald-data", "directory of the embedded SQLite store")
	f.StringVar(&databaseURL, "database-url", "", "PostgreSQL URL: migrate PostgreSQL instead of SQLite")
	f.StringVar(&schema, "database-schema", "", "PostgreSQL schema for Herald's tables (created if missing)")
	return cmd
}
