// Command herald runs the Herald webhook platform and its tools.
package main

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/heraldhq/herald/internal/node"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := root().ExecuteContext(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "herald:", err)
		os.Exit(exitCode(err))
	}
}

func root() *cobra.Command {
	cmd := &cobra.Command{
		Use:           "herald",
		Short:         "Herald sends and receives webhooks reliably",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       node.Version,
	}
	// herald --version prints what herald version prints.
	cmd.SetVersionTemplate(versionLine() + "\n")
	cmd.AddCommand(serveCmd(), migrateCmd(), rekeyCmd(), receiveCmd(), benchCmd(), versionCmd(),
		verifyCmd(), openapiCmd(),
		triggerCmd(),
		listenCmd(),
		healthcheckCmd(),
		replayCmd(), tenantsCmd(), endpointsCmd(), eventsCmd(), deliveriesCmd(), eventTypesCmd(),
		sourcesCmd(), receivedCmd(), sendTestCmd(),
		loginCmd(), logoutCmd(), profilesCmd(),
	)
	return cmd
}

// bindEnv lets HERALD_<FLAG_NAME> set any flag the command line did not set, except --yes.
func bindEnv(flags *pflag.FlagSet) error {
	var err error
	flags.VisitAll(func(f *pflag.Flag) {
		// A confirmation must be typed, never inherited from the environment.
		if err != nil || f.Changed || f.Name == "yes" {
			return
		}
		name := "HERALD_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		if v, ok := os.LookupEnv(name); ok {
			if e := flags.Set(f.Name, v); e != nil {
				err = fmt.Errorf("%s: %w", name, e)
			}
		}
	})
	return err
}
