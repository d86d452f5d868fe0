package api_test

import (
	"encoding/json"
	"net/http"
	"regexp"
	"testing"

	"github.com/heraldhq/herald/internal/app"
	"github.com/heraldhq/herald/internal/media"
	"github.com/heraldhq/herald/internal/media/mediatest"
)

// FuzzUpdateForm sends arbitrary multipart/form-data bodies to post and
// edit an update. The answer is never a server error, an image it takes is
// a name herald made, and the update reads back.
func FuzzUpdateForm(f *testing.F) {
	// Small bounds keep each input cheap: at the default ones a mutated
	// header may claim 50 megapixels, 200 MB allocated before the decoder
	// finds the pixels missing.
	e := newFuzzAPI(f, app.WithImageLimits(media.Limits{MaxPixels: 1 << 16, MaxSide: 1024}))
	png := mediatest.PNG(f, 6, 4)
	for _, parts := range [][]mediatest.Part{
		{{Name: "title", Value: "T"}, {Name: "content", Value: "C"}, {Name: "image", File: true, Filename: "a.png", Data: png}},
		{{Name: "title", Value: "T"}, {Name: "content", Value: "C"}, {Name: "image", File: true, Filename: "../a.png", Data: mediatest.GIF(f, 3, 3, 2)}},
		{{Name: "image", File: true, Filename: "b.webp", Data: mediatest.WebP}},
		{{Name: "image", File: true, Filename: "bomb.png", Data: mediatest.PixelBomb(100000, 100000)}},
		{{Name: "image", File: true, Filename: "cut.png", Data: mediatest.Truncated(png, -9)}},
		{{Name: "image", Value: ""}},
		{{Name: "image", Value: "https://example.com/a.png"}},
		{{Name: "title", File: true, Filename: "t", Data: []byte("t")}},
		{{Name: "other", Value: "x"}},
		{{Name: "image", File: true, Filename: "", Data: nil}},
	} {
		body, _ := mediatest.Form(f, parts...)
		f.Add(uint8(0), body)
		f.Add(uint8(1), body)
	}
	f.Add(uint8(0), []byte("--x\r\n\r\n--x--"))
	named := regexp.MustCompile(`^/media/campaign_updates/[0-9a-f]{32}\.(png|jpg|gif|webp)$`)
	f.Fuzz(func(t *testing.T, at uint8, body []byte) {
		method, path := "POST", "/api/campaigns/1/updates/"
		if at%2 == 1 {
			method, path = "PATCH", "/api/campaigns/1/updates/1/"
		}
		// The boundary of mediatest.Form is random: take the body's own.
		boundary := "x"
		if m := regexp.MustCompile(`^--([^\r\n]{1,70})\r\n`).FindSubmatch(body); m != nil {
			boundary = string(m[1])
		}
		rec := e.do(method, path, e.owner, body, http.Header{"Content-Type": {`multipart/form-data; boundary="` + boundary + `"`}})
		checkAnswer(t, method+" "+path, rec)
		if rec.Code < 300 {
			var u struct{ Image *string }
			if err := json.Unmarshal(rec.Body.Bytes(), &u); err != nil {
				t.Fatal(err)
			}
			if u.Image != nil && !named.MatchString(*u.Image) {
				t.Fatalf("image %q is no name herald makes", *u.Image)
			}
		}
		checkAnswer(t, "read back", e.do("GET", "/api/campaigns/1/updates/1/", "", nil, nil))
	})
}
