package api_test

import (
	"bytes"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/heraldhq/herald/internal/media/mediatest"
	"github.com/heraldhq/herald/internal/testenv"
)

// imageEnv is herald with its media directory known to the test.
type imageEnv struct {
	*env
	dir string
}

func newImageEnv(t *testing.T, dsn string, maxBytes int64) *imageEnv {
	t.Helper()
	cfg := testConfig(t, dsn)
	cfg.MediaDir = filepath.Join(t.TempDir(), "media")
	cfg.MaxImageBytes = maxBytes
	return &imageEnv{env: newEnvConfig(t, cfg), dir: cfg.MediaDir}
}

// form sends a multipart/form-data request; header holds extra headers in
// pairs.
func (e *env) form(method, path, token string, parts []mediatest.Part, header ...string) resp {
	e.t.Helper()
	body, ct := mediatest.Form(e.t, parts...)
	return e.send(method, path, token, ct, body, header...)
}

// send sends body with Content-Type ct and header's pairs of headers.
func (e *env) send(method, path, token, ct string, body []byte, header ...string) resp {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, bytes.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	req.Header.Set("Content-Type", ct)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return decodeResp(res, b)
}

// files lists the files under the media directory.
func (e *imageEnv) files() []string {
	e.t.Helper()
	var out []string
	_ = filepath.WalkDir(e.dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(e.dir, p)
			out = append(out, filepath.ToSlash(rel))
		}
		return nil
	})
	return out
}

// stored checks that url is a stored image of ext holding data, served as
// such at url.
func (e *imageEnv) stored(url, ext string, data []byte) {
	e.t.Helper()
	if !regexp.MustCompile(`^/media/campaign_updates/[0-9a-f]{32}\.` + ext + `$`).MatchString(url) {
		e.t.Fatalf("image %q is not a name herald makes for a .%s", url, ext)
	}
	got, err := os.ReadFile(filepath.Join(e.dir, strings.TrimPrefix(url, "/media/")))
	if err != nil || !bytes.Equal(got, data) {
		e.t.Fatalf("stored %s: %d bytes, %v; want the %d uploaded", url, len(got), err, len(data))
	}
	res, err := e.srv.Client().Get(e.srv.URL + url)
	if err != nil {
		e.t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	want := map[string]string{"png": "image/png", "jpg": "image/jpeg", "gif": "image/gif", "webp": "image/webp"}[ext]
	if res.StatusCode != 200 || !bytes.Equal(b, data) || res.Header.Get("Content-Type") != want || res.Header.Get("X-Content-Type-Options") != "nosniff" {
		e.t.Fatalf("GET %s: %d, %d bytes, %q", url, res.StatusCode, len(b), res.Header.Get("Content-Type"))
	}
}

// gone checks that the file of url was deleted and is no longer served.
func (e *imageEnv) gone(url string) {
	e.t.Helper()
	if _, err := os.Stat(filepath.Join(e.dir, strings.TrimPrefix(url, "/media/"))); !os.IsNotExist(err) {
		e.t.Errorf("%s still stored (%v)", url, err)
	}
	if r := e.do("GET", url, "", nil); r.Status != http.StatusNotFound {
		e.t.Errorf("GET %s after its removal: %d", url, r.Status)
	}
}

func file(data []byte, filename string) mediatest.Part {
	return mediatest.Part{Name: "image", File: true, Filename: filename, Data: data}
}

func text(name, value string) mediatest.Part { return mediatest.Part{Name: name, Value: value} }

// An owner posts an update with an image as multipart/form-data: herald
// names the file (never after the client's name or type), stores it,
// answers its URL and serves it; edits replace, keep or remove it, and a
// replaced or removed file is deleted.
func TestUpdateImage(t *testing.T) {
	testenv.ForEachDB(t, func(t *testing.T, dsn string) {
		e := newImageEnv(t, dsn, 0)
		_, alice := e.user("alice")
		_, bob := e.user("bob")
		c := e.must(http.StatusCreated, "POST", "/api/campaigns/", alice, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"}).id()
		updates := fmt.Sprintf("/api/campaigns/%d/updates/", c)

		png := mediatest.PNG(t, 40, 30)
		r := e.form("POST", updates, alice, []mediatest.Part{text("title", "Week 1"), text("content", "The frame is up."),
			file(png, "../../../../etc/passwd.png")})
		if r.Status != http.StatusCreated {
			t.Fatalf("post: %d %s", r.Status, r.Body)
		}
		wantKeys(t, r.JSON, updateKeys...)
		want(t, "title", str(r.JSON, "title"), "Week 1")
		first := str(r.JSON, "image")
		e.stored(first, "png", png)
		if got := e.files(); len(got) != 1 {
			t.Fatalf("files %v; want the one upload, nowhere else", got)
		}
		if _, err := os.Stat(filepath.Join(filepath.Dir(e.dir), "etc", "passwd.png")); err == nil {
			t.Fatal("the client's file name was used as a path")
		}
		u := r.id()
		one := fmt.Sprintf("%s%d/", updates, u)
		want(t, "GET", str(e.must(http.StatusOK, "GET", one, "", nil).JSON, "image"), first)
		detail := e.must(http.StatusOK, "GET", fmt.Sprintf("/api/campaigns/%d/", c), "", nil)
		want(t, "nested", str(detail.JSON, "updates", 0, "image"), first)

		// The type is the content's: a JPEG called a.png and sent as
		// image/png is a .jpg; GIF and WebP are kept as they are.
		jpg := mediatest.JPEG(t, 20, 20)
		r = e.form("POST", updates, alice, []mediatest.Part{text("title", "t"), text("content", "c"),
			{Name: "image", File: true, Filename: "a.png", ContentType: "image/png", Data: jpg}})
		e.stored(str(r.JSON, "image"), "jpg", jpg)
		gif := mediatest.GIF(t, 10, 10, 3)
		r = e.form("POST", updates, alice, []mediatest.Part{text("title", "t"), text("content", "c"), file(gif, "a.gif")})
		e.stored(str(r.JSON, "image"), "gif", gif)
		r = e.form("POST", updates, alice, []mediatest.Part{text("title", "t"), text("content", "c"), file(mediatest.WebP, `C:\photos\a.webp`)})
		e.stored(str(r.JSON, "image"), "webp", mediatest.WebP)
		// A file input left empty (no name, no bytes) is no image.
		r = e.form("POST", updates, alice, []mediatest.Part{text("title", "t"), text("content", "c"), file(nil, "")})
		if r.Status != http.StatusCreated || r.JSON["image"] != nil {
			t.Errorf("an empty file input: %d, image %v", r.Status, r.JSON["image"])
		}

		// Edits: a form without an image keeps it, as does JSON without
		// one or with the current URL.
		r = e.form("PATCH", one, alice, []mediatest.Part{text("title", "Week one")})
		want(t, "title", str(r.JSON, "title"), "Week one")
		want(t, "kept by a form", str(r.JSON, "image"), first)
		want(t, "kept by JSON", str(e.must(http.StatusOK, "PATCH", one, alice, map[string]any{"content": "Up."}).JSON, "image"), first)
		want(t, "kept by its URL", str(e.must(http.StatusOK, "PATCH", one, alice, map[string]any{"image": first}).JSON, "image"), first)
		// A new image replaces it, and the old file goes.
		png2 := mediatest.PNG(t, 8, 8)
		r = e.form("PATCH", one, alice, []mediatest.Part{file(png2, "new.png")})
		second := str(r.JSON, "image")
		if r.Status != http.StatusOK || second == first {
			t.Fatalf("replace: %d %s", r.Status, r.Body)
		}
		want(t, "title kept", str(r.JSON, "title"), "Week one")
		e.stored(second, "png", png2)
		e.gone(first)
		// "" as a text field removes it, as null does in JSON.
		r = e.form("PATCH", one, alice, []mediatest.Part{text("image", "")})
		if r.Status != http.StatusOK || r.JSON["image"] != nil {
			t.Fatalf("remove: %d %s", r.Status, r.Body)
		}
		e.gone(second)
		r = e.form("PATCH", one, alice, []mediatest.Part{file(png, "again.png")})
		third := str(r.JSON, "image")
		e.stored(third, "png", png)
		if r := e.must(http.StatusOK, "PATCH", one, alice, map[string]any{"image": nil}); r.JSON["image"] != nil {
			t.Fatalf("remove with null: %s", r.Body)
		}
		e.gone(third)

		// Refused writes keep no file: not the owner, not signed in, a
		// blank title, another campaign's update.
		before := len(e.files())
		wantProblem(t, e.form("POST", updates, bob, []mediatest.Part{text("title", "t"), text("content", "c"), file(png, "a.png")}), http.StatusForbidden, "permission_denied")
		wantProblem(t, e.form("POST", updates, "", []mediatest.Part{text("title", "t"), text("content", "c"), file(png, "a.png")}), http.StatusUnauthorized, "not_authenticated")
		wantOnlyFieldError(t, e.form("POST", updates, alice, []mediatest.Part{text("title", " "), text("content", "c"), file(png, "a.png")}), "title", "blank")
		wantProblem(t, e.form("PATCH", one, bob, []mediatest.Part{file(png, "a.png")}), http.StatusForbidden, "permission_denied")
		wantProblem(t, e.form("PATCH", updates+"999999/", alice, []mediatest.Part{file(png, "a.png")}), http.StatusNotFound, "not_found")
		if got := e.files(); len(got) != before {
			t.Errorf("refused writes left files: %d, want %d", len(got), before)
		}
	})
}

// Every bad upload is refused with a clear problem, and none is stored.
func TestUpdateImageRefused(t *testing.T) {
	const max = 64 << 10
	e := newImageEnv(t, testenv.SQLite(t), max)
	_, alice := e.user("alice")
	c := e.must(http.StatusCreated, "POST", "/api/campaigns/", alice, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"}).id()
	updates := fmt.Sprintf("/api/campaigns/%d/updates/", c)
	u := e.must(http.StatusCreated, "POST", updates, alice, map[string]any{"title": "t", "content": "c"}).id()
	one := fmt.Sprintf("%s%d/", updates, u)
	good := mediatest.PNG(t, 16, 16)
	post := func(parts ...mediatest.Part) resp {
		t.Helper()
		return e.form("POST", updates, alice, append([]mediatest.Part{text("title", "t"), text("content", "c")}, parts...))
	}
	noise := make([]byte, max+1)
	for i := range noise {
		noise[i] = byte(rand.IntN(256))
	}
	oversized := append(append([]byte(nil), good...), noise...)

	for name, tc := range map[string]struct {
		r      resp
		status int
		code   string
		field  string
		msg    string
	}{
		"a text file called a.png":  {post(mediatest.Part{Name: "image", File: true, Filename: "a.png", ContentType: "image/png", Data: []byte("just text")}), 400, "invalid", "image", "not a PNG, JPEG, GIF or WebP"},
		"an SVG":                    {post(file([]byte(`<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>`), "a.svg")), 400, "invalid", "image", "not a PNG"},
		"an HTML page":              {post(file([]byte("<!doctype html><script>alert(1)</script>"), "a.gif")), 400, "invalid", "image", "not a PNG"},
		"a truncated PNG":           {post(file(mediatest.Truncated(good, -30), "a.png")), 400, "invalid", "image", "truncated"},
		"a truncated JPEG":          {post(file(mediatest.Truncated(mediatest.JPEG(t, 32, 32), -30), "a.jpg")), 400, "invalid", "image", "truncated"},
		"a PNG cut in its header":   {post(file(good[:16], "a.png")), 400, "invalid", "image", "not a PNG"},
		"an oversized image":        {post(file(oversized, "big.png")), 413, "too_large", "image", fmt.Sprint(max)},
		"a pixel bomb":              {post(file(mediatest.PixelBomb(100000, 100000), "bomb.png")), 400, "invalid", "image", "100000×100000"},
		"a side too long":           {post(file(mediatest.PixelBomb(20001, 2), "wide.png")), 400, "invalid", "image", "20001×2"},
		"an empty file":             {post(file(nil, "a.png")), 400, "invalid", "image", "empty"},
		"two images":                {post(file(good, "a.png"), file(good, "b.png")), 400, "invalid", "image", "more than once"},
		"an image URL as text":      {post(text("image", "https://example.com/a.png")), 400, "invalid", "image", "multipart/form-data"},
		"an unknown field":          {post(file(good, "a.png"), text("owner", "1")), 400, "invalid", "owner", "unknown field"},
		"a title as a file":         {e.form("POST", updates, alice, []mediatest.Part{{Name: "title", File: true, Filename: "t.txt", Data: []byte("t")}, text("content", "c")}), 400, "invalid", "title", "text field"},
		"a title twice":             {post(text("title", "again")), 400, "invalid", "title", "more than once"},
		"a content of 100 KiB":      {e.form("POST", updates, alice, []mediatest.Part{text("title", "t"), text("content", strings.Repeat("x", 100<<10+1))}), 400, "invalid", "content", "longer than"},
		"a part without a name":     {e.send("POST", updates, alice, "multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--\r\n")), 400, "parse_error", "", "no name"},
		"no boundary":               {e.send("POST", updates, alice, "multipart/form-data", []byte("--b\r\n")), 400, "parse_error", "", "boundary"},
		"a body that is no form":    {e.send("POST", updates, alice, "multipart/form-data; boundary=b", []byte("garbage")), 400, "parse_error", "", "multipart"},
		"a form that ends early":    {e.send("POST", updates, alice, "multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"image\"; filename=\"a.png\"\r\n\r\n"+string(good[:40]))), 400, "parse_error", "", "multipart"},
		"plain text":                {e.send("POST", updates, alice, "text/plain", []byte("title=t")), 415, "unsupported_media_type", "", "multipart/form-data"},
		"an oversized image (edit)": {e.form("PATCH", one, alice, []mediatest.Part{file(oversized, "big.png")}), 413, "too_large", "image", fmt.Sprint(max)},
		"a pixel bomb (edit)":       {e.form("PATCH", one, alice, []mediatest.Part{file(mediatest.PixelBomb(100000, 100000), "bomb.png")}), 400, "invalid", "image", "100000×100000"},
		"a non-image (edit)":        {e.form("PATCH", one, alice, []mediatest.Part{file([]byte("GIF89a"), "a.gif")}), 400, "invalid", "image", "not a PNG"},
		"plain text (edit)":         {e.send("PATCH", one, alice, "text/plain", []byte("x")), 415, "unsupported_media_type", "", "multipart/form-data"},
	} {
		t.Run(name, func(t *testing.T) {
			wantProblem(t, tc.r, tc.status, tc.code)
			if tc.field != "" {
				if msgs := tc.r.fieldErrors(tc.field); len(msgs) != 1 || !strings.Contains(fmt.Sprint(msgs[0]), tc.msg) {
					t.Errorf("errors of %s: %v; want one saying %q: %s", tc.field, msgs, tc.msg, tc.r.Body)
				}
			} else if !strings.Contains(str(tc.r.JSON, "detail"), tc.msg) {
				t.Errorf("detail %q does not say %q", str(tc.r.JSON, "detail"), tc.msg)
			}
		})
	}
	// A body larger than the bound is refused from its Content-Length,
	// before it is read.
	body, ct := mediatest.Form(t, text("title", "t"), text("content", "c"), file(append(oversized, make([]byte, 2<<20)...), "huge.png"))
	r := e.send("POST", updates, alice, ct, body)
	wantProblem(t, r, http.StatusRequestEntityTooLarge, "too_large")
	if got := e.files(); len(got) != 0 {
		t.Errorf("refused uploads left files: %v", got)
	}
	if r := e.must(http.StatusOK, "GET", one, "", nil); r.JSON["image"] != nil {
		t.Errorf("a refused edit changed the image: %s", r.Body)
	}
}

// An upload retried with its Idempotency-Key is applied once: the retry
// gets the first answer, and one file is stored, also when the client built
// the form again (another boundary). An image larger than a JSON body's
// bound is taken with a key too; another form with the key is refused.
func TestUpdateImageIdempotent(t *testing.T) {
	e := newImageEnv(t, testenv.SQLite(t), 0)
	_, alice := e.user("alice")
	c := e.must(http.StatusCreated, "POST", "/api/campaigns/", alice, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"}).id()
	updates := fmt.Sprintf("/api/campaigns/%d/updates/", c)
	big := noisyPNG(t, 800, 600) // more than 1 MiB
	if len(big) <= 1<<20 {
		t.Fatalf("the image is %d bytes; the test needs more than 1 MiB", len(big))
	}
	body, ct := mediatest.Form(t, text("title", "t"), text("content", "c"), file(big, "big.png"))
	first := e.send("POST", updates, alice, ct, body, "Idempotency-Key", "upload-1")
	if first.Status != http.StatusCreated {
		t.Fatalf("first: %d %s", first.Status, first.Body)
	}
	e.stored(str(first.JSON, "image"), "png", big)
	again := e.send("POST", updates, alice, ct, body, "Idempotency-Key", "upload-1")
	if again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("retry: %d %q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
	}
	rebuilt, ct2 := mediatest.Form(t, text("title", "t"), text("content", "c"), file(big, "big.png"))
	if ct2 == ct {
		t.Fatal("the same boundary twice")
	}
	again = e.send("POST", updates, alice, ct2, rebuilt, "Idempotency-Key", "upload-1")
	if again.Status != http.StatusCreated || again.Header.Get("Idempotent-Replayed") != "true" || !bytes.Equal(again.Body, first.Body) {
		t.Fatalf("retry with the form built again: %d %q %s", again.Status, again.Header.Get("Idempotent-Replayed"), again.Body)
	}
	other, ct3 := mediatest.Form(t, text("title", "another"), text("content", "c"), file(big, "big.png"))
	wantProblem(t, e.send("POST", updates, alice, ct3, other, "Idempotency-Key", "upload-1"), http.StatusUnprocessableEntity, "idempotency_key_reused")
	if got := e.files(); len(got) != 1 {
		t.Errorf("files after a retry: %v", got)
	}
	if l := e.must(http.StatusOK, "GET", updates, "", nil); num(l.JSON, "count") != 1 {
		t.Errorf("updates after a retry: %d", num(l.JSON, "count"))
	}
}

// noisyPNG is a w×h PNG of random pixels, which do not compress.
func noisyPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	return mediatest.Noise(t, w, h)
}

// With the session cookie, an upload is taken from the server's own page
// and refused from any other: a form is the one body a page of another
// origin can send without a preflight.
func TestUpdateImageCookieWrites(t *testing.T) {
	e := newImageEnv(t, testenv.SQLite(t), 0)
	_, tok := e.user("web")
	c := e.must(http.StatusCreated, "POST", "/api/campaigns/", tok, map[string]any{"title": "Kiosk", "goal_amount": "100.00", "status": "active"}).id()
	updates := fmt.Sprintf("/api/campaigns/%d/updates/", c)
	self := e.srv.URL
	otherPort := "http://" + strings.Split(strings.TrimPrefix(self, "http://"), ":")[0] + ":1"
	body, ct := mediatest.Form(t, text("title", "t"), text("content", "c"), file(mediatest.PNG(t, 4, 4), "a.png"))
	post := func(header map[string]string) resp {
		t.Helper()
		header["Content-Type"] = ct
		return e.browser(browserRequest{method: "POST", path: updates, cookie: tok, header: header, body: string(body)})
	}
	wantProblem(t, post(map[string]string{"Origin": otherPort}), http.StatusForbidden, "origin_not_allowed")
	wantProblem(t, post(map[string]string{"Sec-Fetch-Site": "cross-site"}), http.StatusForbidden, "origin_not_allowed")
	wantProblem(t, post(map[string]string{"Origin": "null"}), http.StatusForbidden, "origin_not_allowed")
	if got := e.files(); len(got) != 0 {
		t.Fatalf("forged uploads stored %v", got)
	}
	if r := post(map[string]string{"Origin": self}); r.Status != http.StatusCreated {
		t.Fatalf("from the own page: %d %s", r.Status, r.Body)
	}
	if r := post(map[string]string{"Sec-Fetch-Site": "same-origin"}); r.Status != http.StatusCreated {
		t.Fatalf("same-origin without Origin: %d %s", r.Status, r.Body)
	}
	// Other routes still take JSON only, forms included.
	wantProblem(t, e.browser(browserRequest{method: "POST", path: fmt.Sprintf("/api/campaigns/%d/comments/", c), cookie: tok,
		header: map[string]string{"Origin": self, "Content-Type": ct}, body: string(body)}), http.StatusUnsupportedMediaType, "unsupported_media_type")
}

// The OpenAPI document shows the form: its fields, the image a file of the
// accepted types, JSON's image a string or null.
func TestOpenAPIUpdateForm(t *testing.T) {
	e := newImageEnv(t, testenv.SQLite(t), 1<<20)
	doc := e.must(http.StatusOK, "GET", "/api/schema/", "", nil).JSON
	for _, method := range []string{"post", "patch"} {
		path := "/api/campaigns/{id}/updates/"
		if method == "patch" {
			path += "{oid}/"
		}
		content, _ := get(doc, "paths", path, method, "requestBody", "content").(map[string]any)
		form, _ := content["multipart/form-data"].(map[string]any)
		if form == nil || content["application/json"] == nil {
			t.Fatalf("%s %s: request content %v", method, path, content)
		}
		want(t, "form schema", str(form, "schema", "$ref"), "#/components/schemas/UpdateFormInput")
		want(t, "image types", str(form, "encoding", "image", "contentType"), "image/png, image/jpeg, image/gif, image/webp")
		for _, code := range []string{"413", "415", "503"} {
			if get(doc, "paths", path, method, "responses", code) == nil {
				t.Errorf("%s %s: %s not documented", method, path, code)
			}
		}
	}
	img, _ := get(doc, "components", "schemas", "UpdateFormInput", "properties", "image").(map[string]any)
	if img["type"] != "string" || img["contentMediaType"] != "application/octet-stream" || !strings.Contains(str(img, "description"), "1048576 bytes") {
		t.Errorf("the form's image: %v", img)
	}
	for _, f := range []string{"title", "content"} {
		if str(doc, "components", "schemas", "UpdateFormInput", "properties", f, "type") != "string" {
			t.Errorf("the form's %s: %v", f, get(doc, "components", "schemas", "UpdateFormInput", "properties", f))
		}
	}
	want(t, "JSON image", fmt.Sprint(get(doc, "components", "schemas", "UpdateInput", "properties", "image", "type")), "[string null]")
	want(t, "answered image", fmt.Sprint(get(doc, "components", "schemas", "Update", "properties", "image", "type")), "[string null]")
}
