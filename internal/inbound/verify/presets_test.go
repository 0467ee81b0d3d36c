package verify_test

import (
	"crypto/hmac"
	"crypto/sha1"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/inbound/verify"
)

// Each preset verifies its provider's requests as the provider's documentation describes the
// signature (the URLs are in presets.go), with the headers and payloads those pages show, and
// extracts the event's type and id; a request signed with another secret, or changed, is
// refused. No official Go library of these providers verifies webhooks (Square's Go SDK is not
// served by the module proxy here), so the signatures are made independently in the test, by
// the documented recipe, with the standard library.
func TestPresets_VerifyTheProvidersRequests(t *testing.T) {
	t.Parallel()
	mac := func(alg string, key, msg string) []byte {
		newHash := sha256.New
		if alg == "sha1" {
			newHash = sha1.New
		}
		m := hmac.New(newHash, []byte(key))
		m.Write([]byte(msg))
		return m.Sum(nil)
	}
	const squareURL = "https://hooks.example.com/in/src_square"
	tests := []struct {
		name, preset, secret string
		cfg                  verify.Config
		body                 string
		header               func(secret, body string) http.Header
		wantType, wantID     string
	}{
		{
			name: "gitlab", preset: verify.PresetGitLab, secret: "glsecret-token-1",
			// https://docs.gitlab.com/user/project/integrations/webhook_events/#push-events
			body: `{"object_kind":"push","event_name":"push","before":"95790bf891e76fee5e1747ab589903a6a1f80f22","ref":"refs/heads/master","project_id":15}`,
			header: func(secret, _ string) http.Header {
				return http.Header{"X-Gitlab-Token": {secret}, "X-Gitlab-Event": {"Push Hook"}, "X-Gitlab-Event-Uuid": {"13792a34-cac6-4fda-95a8-c58e00a3954e"}}
			},
			wantType: "push", wantID: "13792a34-cac6-4fda-95a8-c58e00a3954e",
		},
		{
			name: "linear", preset: verify.PresetLinear, secret: "lin_wh_9f2c1e7d3b",
			// https://linear.app/developers/webhooks#webhook-payload
			body: `{"action":"create","type":"Issue","data":{"id":"2174add1-f7c8-44e3-bbf3-2d60b5ea8bc9","title":"Bug"},"url":"https://linear.app/issue/LIN-1778","createdAt":"2020-01-23T12:53:18.084Z","webhookTimestamp":1676056940508}`,
			header: func(secret, body string) http.Header {
				return http.Header{"Linear-Signature": {hex.EncodeToString(mac("sha256", secret, body))}, "Linear-Delivery": {"234d1a4e-b617-4388-90fe-adc3633d6b72"}, "Linear-Event": {"Issue"}}
			},
			wantType: "Issue", wantID: "234d1a4e-b617-4388-90fe-adc3633d6b72",
		},
		{
			name: "intercom", preset: verify.PresetIntercom, secret: "intercom-client-secret",
			// https://developers.intercom.com/docs/references/webhooks/webhook-models
			body: `{"type":"notification_event","app_id":"a86dr8yl","data":{"type":"notification_event_data","item":{"type":"ping","message":"something something interzen"}},"links":{},"id":"notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3","topic":"ping","delivery_status":"pending","delivery_attempts":1,"created_at":1392731331}`,
			header: func(secret, body string) http.Header {
				return http.Header{"X-Hub-Signature": {"sha1=" + hex.EncodeToString(mac("sha1", secret, body))}}
			},
			wantType: "ping", wantID: "notif_ccd8a4d0-f965-11e3-a367-c779cae3e1b3",
		},
		{
			name: "square", preset: verify.PresetSquare, secret: "asdf1234", cfg: verify.Config{PublicURL: squareURL},
			// https://developer.squareup.com/docs/webhooks/step3validate
			body: `{"merchant_id":"MLEFBHHSJGVHD","type":"webhooks.test_notification","event_id":"ac3ac95b-f97d-458c-a6e6-18981597e05f","created_at":"2022-07-13T20:30:59.037339943Z","data":{"type":"webhooks","id":"bc368e64-01aa-407e-b46e-3231809b1129"}}`,
			header: func(secret, body string) http.Header {
				return http.Header{"X-Square-Hmacsha256-Signature": {base64.StdEncoding.EncodeToString(mac("sha256", secret, squareURL+body))}}
			},
			wantType: "webhooks.test_notification", wantID: "ac3ac95b-f97d-458c-a6e6-18981597e05f",
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cfg := tc.cfg
			cfg.Preset, cfg.Secrets = tc.preset, []string{tc.secret}
			v := mustNew(t, cfg)
			req := newRequest(http.MethodPost, sourceURL, tc.header(tc.secret, tc.body), []byte(tc.body))
			if _, err := v.VerifyAt(req, time.Now()); err != nil {
				t.Fatalf("the provider's request is refused: %v", err)
			}
			if ev := v.Event(req); ev.Type != tc.wantType || ev.ID != tc.wantID {
				t.Errorf("event %+v, want type %q id %q", ev, tc.wantType, tc.wantID)
			}
			forged := newRequest(http.MethodPost, sourceURL, tc.header("another-secret", tc.body), []byte(tc.body))
			if _, err := v.VerifyAt(forged, time.Now()); err == nil {
				t.Error("a request signed with another secret is accepted")
			}
			changed := tc.body[:len(tc.body)-1] + ` }`
			if tc.preset != verify.PresetGitLab { // GitLab's token signs nothing
				req := newRequest(http.MethodPost, sourceURL, tc.header(tc.secret, tc.body), []byte(changed))
				if _, err := v.VerifyAt(req, time.Now()); err == nil {
					t.Error("a changed body is accepted")
				}
			}
		})
	}
}

// A preset's Config is validated like any: an unknown preset, a scheme that is not the
// preset's, and square without its notification URL are refused at the field.
func TestPresets_Validation(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		cfg   verify.Config
		field string
	}{
		{verify.Config{Preset: "paypal", Secrets: []string{"x"}}, "verification.preset"},
		{verify.Config{Preset: verify.PresetLinear, Scheme: verify.SchemeStripe, Secrets: []string{"whsec_x"}}, "verification.scheme"},
		{verify.Config{Preset: verify.PresetSquare, Secrets: []string{"x"}}, "verification.public_url"},
		{verify.Config{Preset: verify.PresetSquare, Secrets: []string{"x"}, PublicURL: "ftp://x"}, "verification.public_url"},
		{verify.Config{Preset: verify.PresetLinear}, "verification.secrets"},
	} {
		err := tc.cfg.Validate()
		var ves verify.ValidationErrors
		if !errors.As(err, &ves) || !strings.Contains(ves.Error(), tc.field) {
			t.Errorf("%+v: %v, want an error at %s", tc.cfg.Preset, err, tc.field)
		}
	}
	ok := verify.Config{Preset: verify.PresetIntercom, Secrets: []string{"s"}, EventTypeHeader: "X-Topic"}
	if err := ok.Validate(); err != nil || ok.Scheme != verify.SchemeHMAC || ok.Prefix != "sha1=" || ok.EventTypeHeader != "X-Topic" {
		t.Errorf("intercom preset: %v %+v", err, ok)
	}
}
