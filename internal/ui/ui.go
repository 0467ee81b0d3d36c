// Package ui is Herald's dashboard, served at /ui/ and embedded in the binary: one server-rendered
// page (html/template) and a small vanilla JavaScript application that calls the REST API from the
// browser. The API key (or a portal link's token) lives in the tab's sessionStorage and is sent as
// a Bearer credential, so the UI has no cookies, no session on the server and no powers of its own:
// a page can do exactly what the key can do through the API, and cross-site requests cannot carry
// the credential (no CSRF). See docs/dashboard.md and docs/architecture.md.
package ui

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
	"strings"
)

//go:embed templates/*.html static
var files embed.FS

// ContentSecurityPolicy is served with every dashboard response: scripts and styles only from this
// origin (no inline code, so injected markup cannot run), requests only to this origin (the API),
// and no framing (clickjacking).
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

// Config is what the dashboard shows about the server.
type Config struct {
	Version string
}

// Handler serves the dashboard under /ui/.
type Handler struct {
	index  []byte
	static http.Handler
}

// New renders the page once and prepares the static files.
func New(cfg Config) (*Handler, error) {
	staticFS, err := fs.Sub(files, "static")
	if err != nil {
		return nil, fmt.Errorf("ui static files: %w", err)
	}
	// Asset URLs carry a hash of the assets, so that a new version is never served from a stale
	// cache while the assets themselves may be cached for long.
	h := sha256.New()
	for _, name := range []string{"app.js", "app.css"} {
		b, err := fs.ReadFile(staticFS, name)
		if err != nil {
			return nil, fmt.Errorf("ui asset %s: %w", name, err)
		}
		h.Write(b)
	}
	tmpl, err := template.ParseFS(files, "templates/index.html")
	if err != nil {
		return nil, fmt.Errorf("ui template: %w", err)
	}
	var buf bytes.Buffer
	if err := tmpl.Execute(&buf, struct{ Version, AssetHash string }{cfg.Version, hex.EncodeToString(h.Sum(nil))[:12]}); err != nil {
		return nil, fmt.Errorf("render ui page: %w", err)
	}
	return &Handler{index: buf.Bytes(), static: http.StripPrefix("/ui/static/", http.FileServerFS(staticFS))}, nil
}

// ServeHTTP serves the page at /ui/ and the assets under /ui/static/.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", ContentSecurityPolicy)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	switch {
	case r.URL.Path == "/ui/":
		hd.Set("Content-Type", "text/html; charset=utf-8")
		hd.Set("Cache-Control", "no-store")
		_, _ = w.Write(h.index)
	case strings.HasPrefix(r.URL.Path, "/ui/static/") && !strings.HasSuffix(r.URL.Path, "/"):
		if r.URL.RawQuery != "" {
			hd.Set("Cache-Control", "public, max-age=31536000, immutable")
		} else {
			hd.Set("Cache-Control", "no-cache")
		}
		h.static.ServeHTTP(w, r)
	default:
		http.NotFound(w, r)
	}
}
