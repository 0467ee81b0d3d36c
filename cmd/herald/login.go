package main

import (
	"bufio"
	"fmt"
	"net/http"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
)

// loginCmd checks a key against a server and saves both as a profile.
func loginCmd() *cobra.Command {
	var af apiFlags
	cmd := &cobra.Command{
		Use:   "login [--profile NAME] --api-url URL [--api-key KEY]",
		Short: "Check an API key against a server and save both as a profile",
		Long: `Check the API key against the server (GET /v1/me) and save the URL and the key as a profile in
the user's configuration directory (` + "`$XDG_CONFIG_HOME/herald/config.json`" + `, else
~/.config/herald/config.json; ~/Library/Application Support/herald on macOS), mode 0600. Every API
command then uses the profile named by --profile or HERALD_PROFILE, else the one named default.
A flag or variable still wins over the profile: --api-url / HERALD_API_URL, --api-key /
HERALD_API_KEY. A profile's key is never sent to another server than the profile's.

Without --api-key or HERALD_API_KEY, the key is read from standard input (one line), so that it
stays out of the shell history.`,
		Example: `  herald login --api-url http://127.0.0.1:8080 --api-key hk_admin_…
  printf '%s\n' "$PROD_KEY" | herald login --profile prod --api-url https://herald.example.com
  herald tenants list --profile prod`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			name := cmpOr(af.profile, defaultProfile)
			if err := checkProfileName(name); err != nil {
				return err
			}
			if af.url == "" {
				return usageErrorf("missing --api-url (or HERALD_API_URL): the server to log in to")
			}
			if af.key == "" {
				fmt.Fprintln(cmd.ErrOrStderr(), "API key (one line on standard input):")
				line, err := bufio.NewReader(cmd.InOrStdin()).ReadString('\n')
				if err != nil && line == "" {
					return usageErrorf("missing --api-key (or HERALD_API_KEY, or a line on standard input)")
				}
				af.key = strings.TrimSpace(line)
			}
			t := apiTarget{url: strings.TrimRight(af.url, "/"), key: af.key}
			if err := checkAPIURL(t.url); err != nil {
				return err
			}
			c, err := newAPIClient(t)
			if err != nil {
				return err
			}
			var me struct {
				Role     string `json:"role"`
				TenantID string `json:"tenant_id"`
			}
			if err := c.do(cmd.Context(), http.MethodGet, "/v1/me", nil, nil, &me); err != nil {
				return fmt.Errorf("check the key: %w", err)
			}
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			cfg.Profiles[name] = profile{APIURL: t.url, APIKey: t.key, Role: me.Role, Tenant: me.TenantID}
			if err := cfg.save(path); err != nil {
				return err
			}
			who := me.Role + " key"
			if me.TenantID != "" {
				who += " of tenant " + me.TenantID
			}
			fmt.Fprintf(cmd.OutOrStdout(), "logged in to %s with %s (%s); saved as profile %s in %s\n", t.url, maskKey(t.key), who, name, path)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	af.register(cmd.Flags())
	return cmd
}

// logoutCmd forgets a profile.
func logoutCmd() *cobra.Command {
	var name string
	cmd := &cobra.Command{
		Use:   "logout [--profile NAME]",
		Short: "Remove a saved profile (default: the profile named default)",
		Long: `Remove a profile from the user's configuration file. The key itself stays valid on the server:
revoke it there (DELETE /v1/api-keys/{id}) if it may have leaked.`,
		Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			name = cmpOr(name, defaultProfile)
			if err := checkProfileName(name); err != nil {
				return err
			}
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if _, ok := cfg.Profiles[name]; !ok {
				return fmt.Errorf("no profile %q in %s", name, path)
			}
			delete(cfg.Profiles, name)
			if err := cfg.save(path); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "profile %s removed from %s\n", name, path)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	cmd.Flags().StringVar(&name, "profile", "", "the profile to remove (HERALD_PROFILE; default: default)")
	return cmd
}

// profilesCmd lists the saved profiles, keys masked.
func profilesCmd() *cobra.Command {
	cmd := groupCmd("profiles", "List the profiles saved by herald login")
	list := &cobra.Command{
		Use: "list", Short: "List the saved profiles: name, URL, masked key, role and tenant", Args: exactArgs(0, ""),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, path, err := loadConfig()
			if err != nil {
				return err
			}
			if len(cfg.Profiles) == 0 {
				fmt.Fprintf(cmd.ErrOrStderr(), "no profiles in %s: create one with herald login\n", path)
				return nil
			}
			tw := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 0, 2, ' ', 0)
			fmt.Fprintln(tw, "NAME\tAPI URL\tAPI KEY\tROLE\tTENANT")
			for _, n := range cfg.names() {
				p := cfg.Profiles[n]
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", n, cell(p.APIURL), maskKey(p.APIKey), cell(p.Role), cell(p.Tenant))
			}
			return tw.Flush()
		},
	}
	cmd.AddCommand(list)
	return cmd
}
