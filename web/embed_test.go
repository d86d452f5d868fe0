package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
)

// buildInputs must list what scripts/source-hash.mjs lists.
var buildInputs = []string{"index.html", "package.json", "package-lock.json", "tsconfig.json", "vite.config.ts", "public", "src"}

// sourceHash is scripts/source-hash.mjs in Go: sha256 over
// (path NUL content NUL) of every build input, sorted by path.
func sourceHash(t *testing.T) string {
	t.Helper()
	var files []string
	for _, in := range buildInputs {
		st, err := os.Stat(in)
		if os.IsNotExist(err) {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		if !st.IsDir() {
			files = append(files, in)
			continue
		}
		err = filepath.WalkDir(in, func(p string, d fs.DirEntry, err error) error {
			if err == nil && d.Type().IsRegular() {
				files = append(files, filepath.ToSlash(p))
			}
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	sort.Strings(files)
	h := sha256.New()
	for _, f := range files {
		b, err := os.ReadFile(filepath.FromSlash(f))
		if err != nil {
			t.Fatal(err)
		}
		h.Write([]byte(f))
		h.Write([]byte{0})
		h.Write(b)
		h.Write([]byte{0})
	}
	return hex.EncodeToString(h.Sum(nil))
}

// The committed build must come from the committed sources: after changing
// anything under web/src (or the build's configuration), run
// `npm --prefix web run build` and commit web/dist.
func TestDistIsCurrent(t *testing.T) {
	built, err := fs.ReadFile(dist, "dist/source-hash.txt")
	if err != nil {
		t.Fatalf("web/dist has no source-hash.txt: run `npm --prefix web ci && npm --prefix web run build` and commit web/dist")
	}
	if got, want := strings.TrimSpace(string(built)), sourceHash(t); got != want {
		t.Fatalf("web/dist is stale: it was built from sources with hash %s, the sources now hash to %s.\n"+
			"Run `npm --prefix web run build` and commit web/dist.", got, want)
	}
}

func get(t *testing.T, h http.Handler, method, target string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	r := httptest.NewRequest(method, target, nil)
	for k, v := range hdr {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

func assetPath(t *testing.T, ext string) string {
	t.Helper()
	entries, err := fs.ReadDir(dist, "dist/assets")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if strings.HasSuffix(e.Name(), ext) {
			return "/assets/" + e.Name()
		}
	}
	t.Fatalf("no %s asset in dist/assets", ext)
	return ""
}

func TestHandler(t *testing.T) {
	h := Handler()
	index, err := fs.ReadFile(dist, "dist/index.html")
	if err != nil {
		t.Fatal(err)
	}

	// The app's pages, known to the browser router or not, are index.html.
	for _, p := range []string{"/", "/index.html", "/campaigns/", "/campaigns/42/", "/quests/7/", "/no/such/page"} {
		w := get(t, h, "GET", p, nil)
		if w.Code != 200 || !bytes.Equal(w.Body.Bytes(), index) {
			t.Errorf("GET %s: %d, index.html=%v", p, w.Code, bytes.Equal(w.Body.Bytes(), index))
		}
		if cc := w.Header().Get("Cache-Control"); cc != "no-cache" {
			t.Errorf("GET %s: Cache-Control %q, want no-cache", p, cc)
		}
		if ct := w.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
			t.Errorf("GET %s: Content-Type %q", p, ct)
		}
		if csp := w.Header().Get("Content-Security-Policy"); !strings.Contains(csp, "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", p, csp)
		}
	}

	// Hashed assets are cached for a year, compressed when asked.
	js := assetPath(t, ".js")
	w := get(t, h, "GET", js, map[string]string{"Accept-Encoding": "gzip, br"})
	if w.Code != 200 || !strings.Contains(w.Header().Get("Cache-Control"), "immutable") {
		t.Fatalf("GET %s: %d %q", js, w.Code, w.Header().Get("Cache-Control"))
	}
	if w.Header().Get("Content-Encoding") != "gzip" || !strings.HasPrefix(w.Header().Get("Content-Type"), "text/javascript") {
		t.Fatalf("GET %s: encoding %q type %q", js, w.Header().Get("Content-Encoding"), w.Header().Get("Content-Type"))
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	plain, _ := io.ReadAll(zr)
	want, _ := fs.ReadFile(dist, "dist"+js)
	if !bytes.Equal(plain, want) {
		t.Fatal("gzip body differs from the file")
	}
	if w := get(t, h, "GET", js, nil); w.Header().Get("Content-Encoding") != "" || !bytes.Equal(w.Body.Bytes(), want) {
		t.Fatal("an uncompressed request got a compressed body")
	}
	if w := get(t, h, "GET", js, map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" {
		t.Fatal("gzip;q=0 got gzip")
	}

	// Conditional requests.
	etag := w.Header().Get("ETag")
	if w := get(t, h, "GET", js, map[string]string{"If-None-Match": etag}); w.Code != http.StatusNotModified {
		t.Fatalf("If-None-Match: %d", w.Code)
	}

	// Missing files, other endpoints' prefixes and methods.
	for _, p := range []string{"/assets/index-00000000.js", "/favicon.ico", "/api/nothing/", "/ws/nothing/", "/sse/campaign/1/", "/source-hash.txt"} {
		if w := get(t, h, "GET", p, nil); w.Code != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, w.Code)
		}
	}
	if w := get(t, h, "POST", "/campaigns/", nil); w.Code != http.StatusMethodNotAllowed || w.Header().Get("Allow") == "" {
		t.Errorf("POST: %d", w.Code)
	}
	if w := get(t, h, "HEAD", "/", nil); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes", w.Code, w.Body.Len())
	}
	if w := get(t, h, "GET", "/favicon.svg", nil); w.Code != 200 || w.Header().Get("Content-Type") != "image/svg+xml" {
		t.Errorf("GET /favicon.svg: %d %q", w.Code, w.Header().Get("Content-Type"))
	}
}
