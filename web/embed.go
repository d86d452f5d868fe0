// Package web serves herald's web app: the production build of the
// TypeScript/React front end in this folder (npm run build → dist/),
// committed and embedded in the binary so herald serves it with no Node.js.
package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strconv"
	"strings"
	"sync"
)

//go:embed all:dist
var dist embed.FS

// contentSecurityPolicy allows the app's own scripts, styles and
// connections (WebSockets to the same host included) and nothing else.
const contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; " +
	"connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// reserved are the path prefixes of herald's other endpoints: an unknown
// path under them is a 404, never the app's page.
var reserved = []string{"/api/", "/ws/", "/sse/", "/debug/"}

type file struct {
	body     []byte
	gz       []byte // gzip of body, when that is worth it
	etag     string
	ctype    string
	cacheFor string
}

type spa struct {
	files map[string]*file // by URL path
	index *file
}

var (
	once    sync.Once
	handler *spa
)

// Handler serves the web app: the files of the build, with a year's cache
// for the content-hashed ones under /assets/; and the app's index.html for
// every other GET that names no file (the app routes in the browser).
func Handler() http.Handler {
	once.Do(func() {
		h, err := load(dist)
		if err != nil {
			panic("web: embedded build: " + err.Error())
		}
		handler = h
	})
	return handler
}

func load(fsys fs.FS) (*spa, error) {
	sub, err := fs.Sub(fsys, "dist")
	if err != nil {
		return nil, err
	}
	s := &spa{files: map[string]*file{}}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		if p == "source-hash.txt" { // build metadata, not part of the site
			return nil
		}
		body, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(body)
		f := &file{body: body, etag: `"` + hex.EncodeToString(sum[:12]) + `"`, ctype: contentType(p), cacheFor: "public, max-age=3600"}
		if strings.HasPrefix(p, "assets/") {
			f.cacheFor = "public, max-age=31536000, immutable"
		}
		if compressible(f.ctype) && len(body) > 512 {
			var b bytes.Buffer
			zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
			_, _ = zw.Write(body)
			_ = zw.Close()
			if b.Len() < len(body)*9/10 {
				f.gz = b.Bytes()
			}
		}
		s.files["/"+p] = f
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.index = s.files["/index.html"]
	if s.index == nil {
		return nil, fs.ErrNotExist
	}
	s.index.cacheFor = "no-cache"
	return s, nil
}

func contentType(p string) string {
	switch path.Ext(p) {
	case ".js", ".mjs":
		return "text/javascript; charset=utf-8"
	case ".css":
		return "text/css; charset=utf-8"
	case ".html":
		return "text/html; charset=utf-8"
	case ".svg":
		return "image/svg+xml"
	case ".json", ".map":
		return "application/json"
	case ".txt":
		return "text/plain; charset=utf-8"
	}
	if t := mime.TypeByExtension(path.Ext(p)); t != "" {
		return t
	}
	return "application/octet-stream"
}

func compressible(ctype string) bool {
	return strings.HasPrefix(ctype, "text/") || strings.Contains(ctype, "json") || strings.Contains(ctype, "svg")
}

func (s *spa) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := r.URL.Path
	if !strings.HasPrefix(p, "/") {
		p = "/" + p
	}
	for _, pre := range reserved {
		if strings.HasPrefix(p, pre) {
			http.NotFound(w, r)
			return
		}
	}
	f := s.files[path.Clean(p)]
	if f == nil || f == s.index && p != "/index.html" {
		// A missing file (a stale hashed asset, a typo) is a 404, not the
		// app's HTML under a script's URL; any other path is a page of the app.
		if strings.HasPrefix(p, "/assets/") || path.Ext(p) != "" {
			http.NotFound(w, r)
			return
		}
		f = s.index
	}
	h := w.Header()
	h.Set("Content-Type", f.ctype)
	h.Set("Cache-Control", f.cacheFor)
	h.Set("ETag", f.etag)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Add("Vary", "Accept-Encoding")
	if f == s.index {
		h.Set("Content-Security-Policy", contentSecurityPolicy)
		h.Set("Referrer-Policy", "same-origin")
		h.Set("X-Frame-Options", "DENY")
	}
	if match := r.Header.Get("If-None-Match"); match != "" && etagMatches(match, f.etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	body := f.body
	if f.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding")) {
		body = f.gz
		h.Set("Content-Encoding", "gzip")
	}
	h.Set("Content-Length", strconv.Itoa(len(body)))
	w.WriteHeader(http.StatusOK)
	if r.Method != http.MethodHead {
		_, _ = w.Write(body)
	}
}

func etagMatches(header, etag string) bool {
	for _, t := range strings.Split(header, ",") {
		t = strings.TrimSpace(t)
		if t == "*" || strings.TrimPrefix(t, "W/") == etag {
			return true
		}
	}
	return false
}

func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := 1.0
		if k, v, ok := strings.Cut(strings.TrimSpace(params), "="); ok && strings.TrimSpace(k) == "q" {
			if f, err := strconv.ParseFloat(strings.TrimSpace(v), 64); err == nil {
				q = f
			}
		}
		return q > 0
	}
	return false
}
