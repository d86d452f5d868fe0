// Package mediatest makes images for tests: good ones of every accepted
// format and the bad ones an upload must be refused for.
package mediatest

import (
	"bytes"
	_ "embed"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/gif"
	"image/jpeg"
	"image/png"
	"math/rand/v2"
	"mime/multipart"
	"net/textproto"
	"testing"
)

// WebP is a 1-bit lossless WebP of a gopher (golang.org/x/image's
// testdata/gopher-doc.1bpp.lossless.webp, BSD-licensed by the Go Authors):
// Go has no WebP encoder.
//
//go:embed testdata/gopher.webp
var WebP []byte

// picture is a w×h image with a gradient, so encoders have work to do.
func picture(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			m.Set(x, y, color.RGBA{uint8(x * 255 / w), uint8(y * 255 / h), 128, 255})
		}
	}
	return m
}

// PNG is a w×h PNG.
func PNG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, picture(w, h)); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// Noise is a w×h PNG of random pixels, which do not compress: about 4
// bytes a pixel.
func Noise(t testing.TB, w, h int) []byte {
	t.Helper()
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for i := range m.Pix {
		m.Pix[i] = byte(rand.IntN(256))
	}
	var b bytes.Buffer
	if err := png.Encode(&b, m); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// JPEG is a w×h JPEG.
func JPEG(t testing.TB, w, h int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, picture(w, h), nil); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// GIF is a w×h GIF of frames frames.
func GIF(t testing.TB, w, h, frames int) []byte {
	t.Helper()
	pal := color.Palette{color.Black, color.White, color.RGBA{255, 0, 0, 255}}
	var g gif.GIF
	for i := 0; i < frames; i++ {
		m := image.NewPaletted(image.Rect(0, 0, w, h), pal)
		m.SetColorIndex(i%w, 0, uint8(1+i%2))
		g.Image = append(g.Image, m)
		g.Delay = append(g.Delay, 10)
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &g); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// PixelBomb is a PNG of a few dozen bytes whose header claims w×h RGBA
// pixels (100000×100000 would take 40 GB decoded).
func PixelBomb(w, h uint32) []byte {
	var b bytes.Buffer
	b.WriteString("\x89PNG\r\n\x1a\n")
	ihdr := make([]byte, 13)
	binary.BigEndian.PutUint32(ihdr[0:], w)
	binary.BigEndian.PutUint32(ihdr[4:], h)
	ihdr[8], ihdr[9] = 8, 6 // 8-bit RGBA
	chunk(&b, "IHDR", ihdr)
	chunk(&b, "IDAT", []byte{0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01})
	chunk(&b, "IEND", nil)
	return b.Bytes()
}

func chunk(b *bytes.Buffer, typ string, data []byte) {
	_ = binary.Write(b, binary.BigEndian, uint32(len(data)))
	crc := crc32.NewIEEE()
	crc.Write([]byte(typ))
	crc.Write(data)
	b.WriteString(typ)
	b.Write(data)
	_ = binary.Write(b, binary.BigEndian, crc.Sum32())
}

// Truncated is img cut to its first n bytes (n < 0: without its last -n).
func Truncated(img []byte, n int) []byte {
	if n < 0 {
		n += len(img)
	}
	return append([]byte(nil), img[:n]...)
}

// Part is one part of a multipart/form-data body: a text field, or a file
// when File is set (Filename may then be empty, as a browser sends an
// empty file input).
type Part struct {
	Name, Value string
	File        bool
	Filename    string
	Data        []byte
	ContentType string
}

// Form builds a multipart/form-data body, returning it and its
// Content-Type.
func Form(t testing.TB, parts ...Part) ([]byte, string) {
	t.Helper()
	var b bytes.Buffer
	mw := multipart.NewWriter(&b)
	for _, p := range parts {
		if !p.File {
			if err := mw.WriteField(p.Name, p.Value); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="`+p.Name+`"; filename="`+p.Filename+`"`)
		ct := p.ContentType
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.Set("Content-Type", ct)
		w, err := mw.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = w.Write(p.Data)
	}
	if err := mw.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), mw.FormDataContentType()
}
