// Package oauth2test gives tests a real OAuth2 authorization server (go-oauth2's, with its
// in-memory stores) issuing client credentials tokens, and a webhook receiver that accepts only
// requests bearing a token that server issued and has not expired or revoked. Only tests import
// it.
package oauth2test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"net/url"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-oauth2/oauth2/v4/manage"
	"github.com/go-oauth2/oauth2/v4/models"
	"github.com/go-oauth2/oauth2/v4/server"
	"github.com/go-oauth2/oauth2/v4/store"
)

// Server is the authorization server and its receiver, both on 127.0.0.1, closed when the test
// ends.
type Server struct {
	// TokenURL is the token endpoint; ReceiverURL the webhook receiver's URL.
	TokenURL, ReceiverURL string
	// Fetches counts token requests, Received the requests that reached the receiver, Accepted
	// those with a valid token.
	Fetches, Received, Accepted atomic.Int64

	srv     *server.Server
	manager *manage.Manager
	clients *store.ClientStore

	mu         sync.Mutex
	forms      []url.Values
	styles     []string
	scopes     []string
	ids        []string // webhook-id of each accepted request
	lastAccess string
	delay      time.Duration
	refuse     bool
}

// New starts a server knowing one client, whose tokens live tokenLife (whole seconds).
func New(t testing.TB, clientID, clientSecret string, tokenLife time.Duration) *Server {
	t.Helper()
	a := &Server{}
	a.manager = manage.NewDefaultManager()
	a.manager.SetClientTokenCfg(&manage.Config{AccessTokenExp: tokenLife})
	a.manager.MustTokenStorage(store.NewMemoryTokenStore())
	a.clients = store.NewClientStore()
	a.SetClient(t, clientID, clientSecret)
	a.manager.MapClientStorage(a.clients)
	a.srv = server.NewDefaultServer(a.manager)
	// RFC 6749 §2.3.1: the client authenticates with HTTP Basic (its id and secret form-encoded)
	// or with form fields; the library's two handlers, one after the other.
	a.srv.SetClientInfoHandler(func(r *http.Request) (string, string, error) {
		if _, _, ok := r.BasicAuth(); ok {
			id, secret, err := server.ClientBasicHandler(r)
			if err != nil {
				return "", "", err
			}
			id, _ = url.QueryUnescape(id)
			secret, _ = url.QueryUnescape(secret)
			return id, secret, nil
		}
		return server.ClientFormHandler(r)
	})

	tokens := httptest.NewServer(http.HandlerFunc(a.token))
	t.Cleanup(tokens.Close)
	a.TokenURL = tokens.URL + "/oauth2/token"
	recv := httptest.NewServer(http.HandlerFunc(a.receive))
	t.Cleanup(recv.Close)
	a.ReceiverURL = recv.URL + "/hook"
	return a
}

func (a *Server) token(w http.ResponseWriter, r *http.Request) {
	a.Fetches.Add(1)
	_ = r.ParseForm()
	style := "body"
	if _, _, basic := r.BasicAuth(); basic {
		style = "basic"
	}
	a.mu.Lock()
	a.forms = append(a.forms, r.PostForm)
	a.styles = append(a.styles, style)
	delay := a.delay
	a.mu.Unlock()
	time.Sleep(delay)
	_ = a.srv.HandleTokenRequest(w, r)
}

func (a *Server) receive(w http.ResponseWriter, r *http.Request) {
	a.Received.Add(1)
	ti, err := a.srv.ValidationBearerToken(r)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil || a.refuse {
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	a.Accepted.Add(1)
	a.scopes = append(a.scopes, ti.GetScope())
	a.ids = append(a.ids, r.Header.Get("Webhook-Id"))
	a.lastAccess = ti.GetAccess()
	w.WriteHeader(http.StatusNoContent)
}

// SetClient adds the client, or replaces its secret (a rotation at the authorization server).
func (a *Server) SetClient(t testing.TB, id, secret string) {
	t.Helper()
	if err := a.clients.Set(id, &models.Client{ID: id, Secret: secret}); err != nil {
		t.Fatal(err)
	}
}

// Revoke removes the access token of the last accepted request.
func (a *Server) Revoke(t testing.TB) {
	t.Helper()
	a.mu.Lock()
	access := a.lastAccess
	a.mu.Unlock()
	if err := a.manager.RemoveAccessToken(context.Background(), access); err != nil {
		t.Fatal(err)
	}
}

// SetDelay makes the token URL answer after d.
func (a *Server) SetDelay(d time.Duration) {
	a.mu.Lock()
	a.delay = d
	a.mu.Unlock()
}

// RefuseAll makes the receiver answer 401 to every request, whatever the token.
func (a *Server) RefuseAll() {
	a.mu.Lock()
	a.refuse = true
	a.mu.Unlock()
}

// HandleTokenRequest answers a token request on another server (to test redirects).
func (a *Server) HandleTokenRequest(w http.ResponseWriter, r *http.Request) {
	_ = a.srv.HandleTokenRequest(w, r)
}

// Requests returns the form and the client authentication ("basic" or "body") of each token
// request.
func (a *Server) Requests() ([]url.Values, []string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]url.Values(nil), a.forms...), append([]string(nil), a.styles...)
}

// Scopes returns the scope of the token of each accepted request; IDs their webhook-id.
func (a *Server) Scopes() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.scopes...)
}

// IDs returns the webhook-id of each accepted request.
func (a *Server) IDs() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.ids...)
}
