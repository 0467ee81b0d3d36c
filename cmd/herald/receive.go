package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/webhook"
)

// receiveCmd is a webhook receiver for local work: it prints what arrives and checks the
// signature the way a customer's endpoint would.
func receiveCmd() *cobra.Command {
	var (
		addr    string
		secrets []string
		status  int
	)
	cmd := &cobra.Command{
		Use:   "receive",
		Short: "Run a local webhook receiver that prints each webhook and checks its signature",
		Long: `Run a webhook receiver on a local address, for trying Herald out: it prints one line per
webhook (time, webhook-id, event type, signature check) and the body. With --secret it verifies the
Standard Webhooks signature and answers 401 when it does not match; --status sets the answer
otherwise (try 503 to watch Herald retry).`,
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return err
			}
			var v *webhook.Verifier
			if len(secrets) > 0 {
				var err error
				if v, err = webhook.NewVerifier(secrets...); err != nil {
					return fmt.Errorf("--secret: %w", err)
				}
			}
			if status < 100 || status > 599 {
				return fmt.Errorf("--status %d: want an HTTP status", status)
			}
			ln, err := net.Listen("tcp", addr)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			if v == nil {
				fmt.Fprintf(cmd.ErrOrStderr(), "herald receive: no --secret (HERALD_SECRET): signatures are NOT checked, every webhook is answered %d; "+
					"give the endpoint's whsec_ secret to check them\n", status)
			}
			fmt.Fprintf(out, "receiving webhooks on http://%s/ (answering %d)\n", ln.Addr(), status)
			srv := &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 8<<20))
				if err != nil {
					http.Error(w, "body too large", http.StatusRequestEntityTooLarge)
					return
				}
				var env struct {
					Type string `json:"type"`
				}
				_ = json.Unmarshal(body, &env)
				check, answer := "unsigned check (no --secret)", status
				if v != nil {
					if err := v.Verify(body, r.Header); err != nil {
						check, answer = "signature INVALID: "+err.Error(), http.StatusUnauthorized
					} else {
						check = "signature ok"
					}
				}
				fmt.Fprintf(out, "%s %s %s %s -> %d\n%s\n", time.Now().Format("15:04:05.000"), r.Header.Get(webhook.HeaderID), env.Type, check, answer, body)
				w.WriteHeader(answer)
			})}
			go func() {
				<-cmd.Context().Done()
				ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				defer cancel()
				_ = srv.Shutdown(ctx)
			}()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return err
			}
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&addr, "addr", "127.0.0.1:3000", "address to listen on")
	f.StringSliceVar(&secrets, "secret", nil, "endpoint secret(s) (whsec_…) to verify signatures with; repeatable")
	f.IntVar(&status, "status", http.StatusNoContent, "status to answer with when the signature is fine")
	return cmd
}
