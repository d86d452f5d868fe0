package media

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/heraldhq/herald/internal/media/mediatest"
)

// Each accepted format is recognised by its bytes.
func TestCheckAcceptsEachFormat(t *testing.T) {
	c := NewChecker(Limits{})
	for _, tc := range []struct {
		name, want string
		data       []byte
	}{
		{"png", "png", mediatest.PNG(t, 40, 30)},
		{"jpeg", "jpeg", mediatest.JPEG(t, 40, 30)},
		{"gif", "gif", mediatest.GIF(t, 40, 30, 1)},
		{"animated gif", "gif", mediatest.GIF(t, 40, 30, 5)},
		{"webp", "webp", mediatest.WebP},
		{"a side at the limit", "png", mediatest.PNG(t, DefaultMaxSide, 1)},
	} {
		f, err := c.Check(context.Background(), tc.data)
		if err != nil || f.Name != tc.want {
			t.Errorf("%s: format %q, error %v; want %s", tc.name, f.Name, err, tc.want)
		}
	}
}

// What is not a whole image within the bounds is refused, with the reason.
func TestCheckRefuses(t *testing.T) {
	c := NewChecker(Limits{})
	png := mediatest.PNG(t, 64, 64)
	jpg := mediatest.JPEG(t, 64, 64)
	var size *SizeError
	for _, tc := range []struct {
		name string
		data []byte
		want func(error) bool
	}{
		{"empty", nil, is(ErrNotImage)},
		{"text", []byte("hello, this is not an image"), is(ErrNotImage)},
		{"svg", []byte(`<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>`), is(ErrNotImage)},
		{"html", []byte("<!doctype html><script>alert(1)</script>"), is(ErrNotImage)},
		{"bmp", append([]byte("BM"), make([]byte, 64)...), is(ErrNotImage)},
		{"png signature only", png[:8], is(ErrNotImage)},
		{"png cut in its header", png[:20], is(ErrNotImage)},
		{"png with a bad header checksum", corrupt(png, 29), is(ErrNotImage)},
		{"truncated png", mediatest.Truncated(png, -40), is(ErrDamaged)},
		{"truncated jpeg", mediatest.Truncated(jpg, -40), is(ErrDamaged)},
		{"truncated gif", mediatest.Truncated(mediatest.GIF(t, 40, 30, 1), -10), is(ErrDamaged)},
		{"truncated webp", mediatest.Truncated(mediatest.WebP, -100), is(ErrDamaged)},
		{"pixel bomb 100000×100000", mediatest.PixelBomb(100000, 100000), as(&size)},
		{"a side too long", mediatest.PixelBomb(DefaultMaxSide+1, 1), as(&size)},
		{"too many pixels", mediatest.PixelBomb(10000, 5001), as(&size)},
		{"no pixels", mediatest.PixelBomb(0, 10), func(err error) bool { return err != nil }},
		{"the largest header", mediatest.PixelBomb(1<<31-1, 1<<31-1), func(err error) bool { return err != nil }},
	} {
		f, err := c.Check(context.Background(), tc.data)
		if !tc.want(err) {
			t.Errorf("%s: format %q, error %v", tc.name, f.Name, err)
		}
	}
	_, err := c.Check(context.Background(), mediatest.PixelBomb(100000, 100000))
	if !errors.As(err, &size) || size.Width != 100000 || size.Height != 100000 || !strings.Contains(err.Error(), "100000×100000") {
		t.Errorf("the bomb's error %v does not say its size", err)
	}
}

// A decode waits for one of the few slots, and gives up after the wait or
// when its request ends.
func TestCheckBoundsDecodes(t *testing.T) {
	c := NewChecker(Limits{Decodes: 1, DecodeWait: 20 * time.Millisecond})
	release, err := c.acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	img := mediatest.PNG(t, 8, 8)
	if _, err := c.Check(context.Background(), img); !errors.Is(err, ErrBusy) {
		t.Errorf("with every slot taken: %v, want ErrBusy", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	c.limits.DecodeWait = time.Hour
	if _, err := c.Check(ctx, img); !errors.Is(err, context.Canceled) {
		t.Errorf("a request that ended: %v, want context.Canceled", err)
	}
	// A refusal from the header takes no slot.
	var size *SizeError
	if _, err := c.Check(context.Background(), mediatest.PixelBomb(100000, 100000)); !errors.As(err, &size) {
		t.Errorf("bomb with every slot taken: %v", err)
	}
	release()
	if _, err := c.Check(context.Background(), img); err != nil {
		t.Errorf("slot free again: %v", err)
	}
}

func is(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }

func as(target **SizeError) func(error) bool {
	return func(err error) bool { return errors.As(err, target) }
}

func corrupt(b []byte, i int) []byte {
	c := append([]byte(nil), b...)
	c[i] ^= 0xff
	return c
}
