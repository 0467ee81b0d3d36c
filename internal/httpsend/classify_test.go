package httpsend

import (
	"net/http"
	"net/url"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/destination"
)

func TestParseRetryAfter(t *testing.T) {
	t.Parallel()
	now := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		in   string
		want time.Duration
	}{
		{name: "empty", in: "", want: 0},
		{name: "seconds", in: "120", want: 120 * time.Second},
		{name: "zero seconds", in: "0", want: 0},
		{name: "seconds with spaces", in: " 5 ", want: 5 * time.Second},
		{name: "exactly a day", in: "86400", want: 24 * time.Hour},
		{name: "more than a day is capped", in: "90000", want: 24 * time.Hour},
		{name: "overflowing seconds are capped", in: "99999999999999999999", want: 24 * time.Hour},
		{name: "negative seconds", in: "-5", want: 0},
		{name: "fractional seconds", in: "1.5", want: 0},
		{name: "http date in the future", in: "Sat, 01 Mar 2025 12:01:30 GMT", want: 90 * time.Second},
		{name: "rfc 850 date", in: "Saturday, 01-Mar-25 12:00:10 GMT", want: 10 * time.Second},
		{name: "asctime date", in: "Sat Mar  1 12:00:20 2025", want: 20 * time.Second},
		{name: "http date in the past", in: "Sat, 01 Mar 2025 11:00:00 GMT", want: 0},
		{name: "http date far ahead is capped", in: "Sat, 01 Mar 2030 12:00:00 GMT", want: 24 * time.Hour},
		{name: "garbage", in: "soon", want: 0},
		{name: "very long value", in: "1" + string(make([]byte, 100)), want: 0},
	}
	for _, tt := range tests {
		if got := parseRetryAfter(tt.in, now); got != tt.want {
			t.Errorf("%s: parseRetryAfter(%q) = %v, want %v", tt.name, tt.in, got, tt.want)
		}
	}
}

func TestClassifyStatus(t *testing.T) {
	t.Parallel()
	reqURL, _ := url.Parse("https://example.com/hooks/1")
	tests := []struct {
		status    int
		location  string
		wantClass destination.Class
		wantKind  string
		wantError string
	}{
		{status: 200, wantClass: destination.Success},
		{status: 299, wantClass: destination.Success},
		{status: 301, location: "https://x.example/new", wantClass: destination.Permanent, wantKind: destination.KindRedirect,
			wantError: "status 301: redirect to https://x.example/new (redirects are not followed)"},
		{status: 303, location: "../other", wantClass: destination.Permanent, wantKind: destination.KindRedirect,
			wantError: "status 303: redirect to https://example.com/other (redirects are not followed)"},
		{status: 304, wantClass: destination.Permanent, wantKind: destination.KindRedirect, wantError: "status 304 (redirects are not followed)"},
		{status: 401, wantClass: destination.Permanent, wantKind: destination.KindHTTPStatus, wantError: "status 401"},
		{status: 410, wantClass: destination.Gone, wantKind: destination.KindHTTPStatus, wantError: "status 410"},
		{status: 413, wantClass: destination.Permanent, wantKind: destination.KindHTTPStatus, wantError: "status 413"},
		{status: 502, wantClass: destination.Retryable, wantKind: destination.KindHTTPStatus, wantError: "status 502"},
		{status: 599, wantClass: destination.Retryable, wantKind: destination.KindHTTPStatus, wantError: "status 599"},
		{status: 600, wantClass: destination.Retryable, wantKind: destination.KindInvalidResponse, wantError: "status 600"},
		{status: 199, wantClass: destination.Retryable, wantKind: destination.KindInvalidResponse, wantError: "status 199"},
	}
	for _, tt := range tests {
		resp := &http.Response{StatusCode: tt.status, Header: http.Header{}}
		if tt.location != "" {
			resp.Header.Set("Location", tt.location)
		}
		var o destination.Outcome
		classifyStatus(&o, resp, reqURL, time.Now())
		if o.Class != tt.wantClass || o.ErrorKind != tt.wantKind || o.Error != tt.wantError {
			t.Errorf("status %d: got %q %q %q, want %q %q %q",
				tt.status, o.Class, o.ErrorKind, o.Error, tt.wantClass, tt.wantKind, tt.wantError)
		}
	}
}
