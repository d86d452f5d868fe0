package media

import (
	"bytes"
	"context"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/media/mediatest"
)

// FuzzCheck gives the checker any bytes. It never panics, and what it
// accepts is an image of the format its bytes say, within the bounds.
func FuzzCheck(f *testing.F) {
	png := mediatest.PNG(f, 12, 9)
	for _, seed := range [][]byte{
		png, mediatest.JPEG(f, 12, 9), mediatest.GIF(f, 12, 9, 2), mediatest.WebP,
		mediatest.PixelBomb(100000, 100000), mediatest.PixelBomb(3, 3), mediatest.Truncated(png, -10),
		[]byte("GIF89a"), []byte("RIFF\x00\x00\x00\x00WEBPVP8L"), []byte("\xff\xd8\xff\xe0"), nil,
	} {
		f.Add(seed)
	}
	c := NewChecker(Limits{MaxPixels: 1 << 20, MaxSide: 4096, DecodeWait: time.Minute})
	f.Fuzz(func(t *testing.T, data []byte) {
		format, err := c.Check(context.Background(), data)
		if err != nil {
			return
		}
		if !format.magic(data) {
			t.Fatalf("accepted as %s without its signature: %.16q", format.Name, data)
		}
		cfg, err := format.decodeConfig(bytes.NewReader(data))
		if err != nil || cfg.Width < 1 || cfg.Height < 1 || cfg.Width > 4096 || cfg.Height > 4096 || cfg.Width*cfg.Height > 1<<20 {
			t.Fatalf("accepted a %s of %d×%d (%v)", format.Name, cfg.Width, cfg.Height, err)
		}
	})
}
