package media

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/media/mediatest"
)

// Stored files are served with their format's type, nosniff, a year's
// cache lifetime, ranges and conditional requests; nothing else is.
func TestHandler(t *testing.T) {
	d, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	img := mediatest.PNG(t, 30, 20)
	png, _ := formatByExt("png")
	name := NewName(UpdateImages, png)
	if err := d.Put(context.Background(), name, bytes.NewReader(img)); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(Handler(d, slog.New(slog.DiscardHandler)))
	t.Cleanup(srv.Close)
	do := func(method, path string, header ...string) (*http.Response, []byte) {
		t.Helper()
		req, _ := http.NewRequest(method, srv.URL+path, nil)
		for i := 0; i+1 < len(header); i += 2 {
			req.Header.Set(header[i], header[i+1])
		}
		res, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		b, _ := io.ReadAll(res.Body)
		return res, b
	}

	res, body := do("GET", URL(name))
	if res.StatusCode != 200 || !bytes.Equal(body, img) {
		t.Fatalf("GET: %d, %d bytes", res.StatusCode, len(body))
	}
	for k, v := range map[string]string{
		"Content-Type": "image/png", "X-Content-Type-Options": "nosniff", "Cache-Control": "public, max-age=31536000, immutable",
		"Accept-Ranges": "bytes", "Content-Length": itoa(len(img)),
	} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}
	etag := res.Header.Get("ETag")
	if etag == "" || res.Header.Get("Last-Modified") == "" {
		t.Errorf("no validators: ETag %q, Last-Modified %q", etag, res.Header.Get("Last-Modified"))
	}

	res, body = do("GET", URL(name), "Range", "bytes=8-15")
	if res.StatusCode != http.StatusPartialContent || !bytes.Equal(body, img[8:16]) ||
		res.Header.Get("Content-Range") != "bytes 8-15/"+itoa(len(img)) {
		t.Errorf("range: %d %q %q", res.StatusCode, res.Header.Get("Content-Range"), body)
	}
	if res, _ = do("GET", URL(name), "Range", "bytes=100000-"); res.StatusCode != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("range past the end: %d", res.StatusCode)
	}
	if res, body = do("GET", URL(name), "If-None-Match", etag); res.StatusCode != http.StatusNotModified || len(body) != 0 {
		t.Errorf("If-None-Match: %d", res.StatusCode)
	}
	if res, body = do("HEAD", URL(name)); res.StatusCode != 200 || len(body) != 0 || res.Header.Get("Content-Type") != "image/png" {
		t.Errorf("HEAD: %d, %d bytes, %q", res.StatusCode, len(body), res.Header.Get("Content-Type"))
	}
	for _, m := range []string{"POST", "PUT", "DELETE"} {
		if res, _ = do(m, URL(name)); res.StatusCode != http.StatusMethodNotAllowed || res.Header.Get("Allow") != "GET, HEAD" {
			t.Errorf("%s: %d, Allow %q", m, res.StatusCode, res.Header.Get("Allow"))
		}
	}
	hex := strings.Repeat("ab", 16)
	for _, path := range []string{
		"/media/", "/media/campaign_updates/", "/media/campaign_updates/" + hex + ".png", // never stored
		"/media/campaign_updates/" + hex + ".svg", "/media/campaign_updates/../../etc/passwd",
		"/media/campaign_updates/%2e%2e%2f%2e%2e%2fetc%2fpasswd", "/media/" + strings.TrimPrefix(name, UpdateImages+"/"),
		"/media/campaign_updates/" + strings.ToUpper(strings.TrimPrefix(name, UpdateImages+"/")),
	} {
		if res, body = do("GET", path); res.StatusCode != http.StatusNotFound || bytes.Equal(body, img) {
			t.Errorf("GET %s: %d", path, res.StatusCode)
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }
