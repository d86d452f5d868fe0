// Package media keeps the files users upload, an update's image: it checks
// that an upload is an image herald can read within its bounds, names it,
// stores it behind a Storage (a local directory by default) and serves it
// at /media/.
package media

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"time"

	"golang.org/x/image/webp"
)

// Format is an image format herald accepts.
type Format struct {
	Name        string // "png", "jpeg", "gif", "webp"
	Ext         string // the stored file's extension, without the dot
	ContentType string

	magic        func([]byte) bool
	decodeConfig func(io.Reader) (image.Config, error)
	decode       func(io.Reader) (image.Image, error)
}

// formats are the accepted formats, each with its own decoder: the type of
// an upload is what its bytes are, whatever its name or header says, and no
// decoder another package registers with image.RegisterFormat is used.
var formats = []Format{
	{Name: "png", Ext: "png", ContentType: "image/png", decodeConfig: png.DecodeConfig, decode: png.Decode,
		magic: func(b []byte) bool { return bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n")) }},
	{Name: "jpeg", Ext: "jpg", ContentType: "image/jpeg", decodeConfig: jpeg.DecodeConfig, decode: jpeg.Decode,
		magic: func(b []byte) bool { return bytes.HasPrefix(b, []byte("\xff\xd8\xff")) }},
	{Name: "gif", Ext: "gif", ContentType: "image/gif", decodeConfig: gif.DecodeConfig, decode: gif.Decode,
		magic: func(b []byte) bool {
			return bytes.HasPrefix(b, []byte("GIF87a")) || bytes.HasPrefix(b, []byte("GIF89a"))
		}},
	{Name: "webp", Ext: "webp", ContentType: "image/webp", decodeConfig: webp.DecodeConfig, decode: webp.Decode,
		magic: func(b []byte) bool {
			return len(b) >= 15 && string(b[:4]) == "RIFF" && string(b[8:15]) == "WEBPVP8"
		}},
}

// formatByExt finds a format by its file extension.
func formatByExt(ext string) (Format, bool) {
	for _, f := range formats {
		if f.Ext == ext {
			return f, true
		}
	}
	return Format{}, false
}

// Bounds of an image, checked from its header before it is decoded: a
// decoded image takes up to 8 bytes a pixel (16-bit RGBA PNG), so 50
// megapixels is up to 400 MB while it is checked.
const (
	DefaultMaxPixels = 50_000_000
	DefaultMaxSide   = 20_000
	// DefaultDecodes is how many images are decoded at once.
	DefaultDecodes = 2
	// DefaultDecodeWait is how long a check waits for its turn to decode.
	DefaultDecodeWait = 5 * time.Second
	// DefaultMaxBytes bounds an upload's size.
	DefaultMaxBytes = 5 << 20
)

// Limits bound what Checker accepts and how much it decodes at once; a zero
// field takes its default.
type Limits struct {
	MaxPixels  int64
	MaxSide    int
	Decodes    int
	DecodeWait time.Duration
}

var (
	// ErrNotImage: the bytes are none of the accepted formats, or their
	// header cannot be read.
	ErrNotImage = errors.New("not a PNG, JPEG, GIF or WebP image")
	// ErrDamaged: the header reads, the image does not (truncated,
	// corrupt, or a variant the decoder does not support).
	ErrDamaged = errors.New("the image could not be decoded: it is damaged, truncated or of an unsupported kind")
	// ErrBusy: no decoding slot came free within the wait.
	ErrBusy = errors.New("too many images are being checked")
)

// SizeError is an image whose dimensions are out of bounds.
type SizeError struct {
	Width, Height int
	MaxSide       int
	MaxPixels     int64
}

func (e *SizeError) Error() string {
	return fmt.Sprintf("the image is %d×%d pixels; at most %d pixels a side and %d megapixels are accepted",
		e.Width, e.Height, e.MaxSide, e.MaxPixels/1_000_000)
}

// Checker checks uploads: the format from their content, their dimensions
// from their header, then a whole decode, of which only a few run at once.
type Checker struct {
	limits Limits
	slots  chan struct{}
}

// NewChecker returns a Checker with l's bounds.
func NewChecker(l Limits) *Checker {
	if l.MaxPixels <= 0 {
		l.MaxPixels = DefaultMaxPixels
	}
	if l.MaxSide <= 0 {
		l.MaxSide = DefaultMaxSide
	}
	if l.Decodes <= 0 {
		l.Decodes = DefaultDecodes
	}
	if l.DecodeWait <= 0 {
		l.DecodeWait = DefaultDecodeWait
	}
	return &Checker{limits: l, slots: make(chan struct{}, l.Decodes)}
}

// Check returns the format of data if it is a whole image within the
// bounds. Its errors are ErrNotImage, *SizeError, ErrDamaged, ErrBusy or
// ctx's.
func (c *Checker) Check(ctx context.Context, data []byte) (Format, error) {
	var f Format
	for _, cand := range formats {
		if cand.magic(data) {
			f = cand
			break
		}
	}
	if f.Name == "" {
		return Format{}, ErrNotImage
	}
	cfg, err := f.decodeConfig(bytes.NewReader(data))
	if err != nil {
		return Format{}, ErrNotImage
	}
	if cfg.Width < 1 || cfg.Height < 1 || cfg.Width > c.limits.MaxSide || cfg.Height > c.limits.MaxSide ||
		int64(cfg.Width)*int64(cfg.Height) > c.limits.MaxPixels {
		return Format{}, &SizeError{Width: cfg.Width, Height: cfg.Height, MaxSide: c.limits.MaxSide, MaxPixels: c.limits.MaxPixels}
	}
	release, err := c.acquire(ctx)
	if err != nil {
		return Format{}, err
	}
	defer release()
	img, err := f.decode(bytes.NewReader(data))
	if err != nil {
		return Format{}, ErrDamaged
	}
	// The pixels must lie within the header's size, or the bound above
	// meant nothing (a GIF's first frame may be smaller than its screen).
	if !img.Bounds().In(image.Rect(0, 0, cfg.Width, cfg.Height)) {
		return Format{}, ErrDamaged
	}
	return f, nil
}

// Limits are c's bounds, defaults filled in.
func (c *Checker) Limits() Limits { return c.limits }

// acquire takes a decoding slot, waiting at most the limits' DecodeWait.
func (c *Checker) acquire(ctx context.Context) (func(), error) {
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	default:
	}
	t := time.NewTimer(c.limits.DecodeWait)
	defer t.Stop()
	select {
	case c.slots <- struct{}{}:
		return func() { <-c.slots }, nil
	case <-t.C:
		return nil, ErrBusy
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}
