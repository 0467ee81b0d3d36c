package main

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/heraldhq/herald/webhook"
)

// exitError carries the exit status a command wants; main exits with 1 for any other error.
type exitError struct {
	code int
	err  error
}

func (e *exitError) Error() string { return e.err.Error() }
func (e *exitError) Unwrap() error { return e.err }

// usageErrorf is a mistake in how a command was called: exit status 2, as is usual for CLIs, so a
// script can tell "the signature is wrong" (1) from "the check never ran" (2).
func usageErrorf(format string, args ...any) error {
	return &exitError{code: 2, err: fmt.Errorf(format, args...)}
}

// exitCode is the process exit status for an error returned by a command.
func exitCode(err error) int {
	if e, ok := errors.AsType[*exitError](err); ok {
		return e.code
	}
	return 1
}

// verifyCmd checks one webhook's signature offline, for a developer whose endpoint rejects
// deliveries: it says which part does not match rather than just "invalid".
func verifyCmd() *cobra.Command {
	var (
		secret, id, timestamp, signature string
		tolerance                        time.Duration
	)
	cmd := &cobra.Command{
		Use:   "verify --secret KEY --id MSG_ID --timestamp UNIX --signature SIG < body",
		Short: "Check a Standard Webhooks signature and say what does not match",
		Long: `Check the signature of one webhook: the body on standard input, the webhook-id,
webhook-timestamp and webhook-signature header values as flags, and the endpoint's whsec_ secret
(v1, HMAC) or whpk_ public key (v1a, Ed25519). It reports a malformed key, a timestamp outside the
tolerance, a signature header without an entry of the key's version, or a mismatch, in which case
it also prints the v1 signature it expected when the key is an HMAC secret.

Exit status: 0 when the signature is valid, 1 when it is not, 2 when the command was misused.`,
		Example: `  printf '%s' '{"type":"invoice.paid","data":{}}' | herald verify --secret whsec_... \
    --id msg_2b8d --timestamp 1767225600 --signature 'v1,K5oZ...='`,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) > 0 {
				return usageErrorf("verify takes no arguments (the body is read from standard input), got %q", args)
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := bindEnv(cmd.Flags()); err != nil {
				return usageErrorf("%w", err)
			}
			var missing []string
			for _, f := range []struct{ name, value string }{
				{"--secret", secret}, {"--id", id}, {"--timestamp", timestamp}, {"--signature", signature},
			} {
				if f.value == "" {
					missing = append(missing, f.name)
				}
			}
			if missing != nil {
				return usageErrorf("missing %s", strings.Join(missing, ", "))
			}
			if tolerance < 0 {
				return usageErrorf("--tolerance %s: must not be negative", tolerance)
			}
			v, err := webhook.NewVerifier(secret)
			if err != nil {
				return usageErrorf("--secret: bad key format: %w", err)
			}
			body, err := io.ReadAll(cmd.InOrStdin())
			if err != nil {
				return usageErrorf("read body from standard input: %w", err)
			}
			if err := checkSignature(v.WithTolerance(tolerance), secret, id, timestamp, signature, body, tolerance, time.Now()); err != nil {
				return &exitError{code: 1, err: err}
			}
			version := "v1"
			if strings.HasPrefix(secret, webhook.PublicKeyPrefix) {
				version = "v1a"
			}
			fmt.Fprintf(cmd.OutOrStdout(), "OK: %s signature matches (%d bytes of body, timestamp within %s)\n", version, len(body), tolerance)
			return nil
		},
	}
	cmd.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return usageErrorf("%w", err) })
	f := cmd.Flags()
	f.StringVar(&secret, "secret", "", "the endpoint's whsec_ secret (v1) or whpk_ public key (v1a)")
	f.StringVar(&id, "id", "", "the webhook-id header value")
	f.StringVar(&timestamp, "timestamp", "", "the webhook-timestamp header value (Unix seconds)")
	f.StringVar(&signature, "signature", "", `the webhook-signature header value, e.g. "v1,K5oZ...="`)
	f.DurationVar(&tolerance, "tolerance", webhook.DefaultTolerance, "how far the timestamp may be from now")
	return cmd
}

// checkSignature runs the webhook package's Verifier and, when it refuses, works out which check
// failed in words a developer can act on. The Verifier stays the judge; the rest only explains.
func checkSignature(v *webhook.Verifier, key, id, timestamp, signature string, body []byte, tolerance time.Duration, now time.Time) error {
	h := http.Header{}
	h.Set(webhook.HeaderID, id)
	h.Set(webhook.HeaderTimestamp, timestamp)
	h.Set(webhook.HeaderSignature, signature)
	err := v.VerifyAt(body, h, now)
	if err == nil {
		return nil
	}
	if errors.Is(err, webhook.ErrTimestamp) {
		sec, perr := strconv.ParseInt(timestamp, 10, 64)
		if perr != nil || strings.TrimLeft(timestamp, "0123456789") != "" {
			return fmt.Errorf("timestamp %q is not a Unix time in decimal seconds", timestamp)
		}
		ts := time.Unix(sec, 0)
		if off := now.Sub(ts).Truncate(time.Second); off > 0 {
			return fmt.Errorf("timestamp outside tolerance: %s (%s) is %s old, %s more than the tolerance of %s",
				timestamp, ts.UTC().Format(time.RFC3339), off, off-tolerance, tolerance)
		}
		off := ts.Sub(now).Truncate(time.Second)
		return fmt.Errorf("timestamp outside tolerance: %s (%s) is %s in the future, %s more than the tolerance of %s",
			timestamp, ts.UTC().Format(time.RFC3339), off, off-tolerance, tolerance)
	}
	if !errors.Is(err, webhook.ErrNoMatchingSignature) {
		return err
	}

	want, other := "v1", "v1a"
	if strings.HasPrefix(key, webhook.PublicKeyPrefix) {
		want, other = "v1a", "v1"
	}
	var versions []string
	found := false
	for entry := range strings.FieldsSeq(signature) {
		version, _, ok := strings.Cut(entry, ",")
		if !ok {
			versions = append(versions, fmt.Sprintf("%q (no version)", entry))
			continue
		}
		versions = append(versions, version)
		found = found || version == want
	}
	if !found {
		hint := ""
		if strings.Contains(" "+strings.Join(versions, " ")+" ", " "+other+" ") {
			hint = fmt.Sprintf("; it has %s entries, so the sender signs with the other kind of key", other)
		}
		return fmt.Errorf("no %s signature in --signature (entries: %s)%s", want, strings.Join(versions, ", "), hint)
	}

	var b strings.Builder
	fmt.Fprintf(&b, "signature mismatch: no %s entry matches the key for webhook-id %q, timestamp %s and %d bytes of body", want, id, timestamp, len(body))
	if want == "v1" && strconv.FormatInt(mustParse(timestamp), 10) == timestamp {
		// The Signer writes the timestamp canonically; with leading zeros its answer would not be
		// what the sender signed, so the hint is only given when the two agree.
		if s, serr := webhook.NewSigner(key); serr == nil {
			fmt.Fprintf(&b, "\n  expected: %s\n  got:      %s", s.Sign(id, time.Unix(mustParse(timestamp), 0), body), signature)
		}
	}
	// The commonest cause when pasting a body into a shell: echo or a file editor added a newline.
	if trimmed, ok := strings.CutSuffix(string(body), "\n"); ok && v.VerifyAt([]byte(trimmed), h, now) == nil {
		b.WriteString("\n  the signature does match the body without its final newline: use printf '%s' or a file without one")
	}
	return errors.New(b.String())
}

// mustParse parses a timestamp that the Verifier already accepted as decimal.
func mustParse(s string) int64 {
	n, _ := strconv.ParseInt(s, 10, 64)
	return n
}
