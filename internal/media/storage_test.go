package media

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// Names are herald's own: random, lowercase hex, a known folder and
// extension; no other string passes, so none can point elsewhere.
func TestNames(t *testing.T) {
	png, _ := formatByExt("png")
	a, b := NewName(UpdateImages, png), NewName(UpdateImages, png)
	if a == b || !ValidName(a) || !strings.HasPrefix(a, "campaign_updates/") || !strings.HasSuffix(a, ".png") {
		t.Fatalf("new names %q, %q", a, b)
	}
	if n, ok := NameOf(URL(a)); !ok || n != a {
		t.Errorf("NameOf(URL(%q)) = %q, %v", a, n, ok)
	}
	hex := strings.Repeat("0a", 16)
	for _, name := range []string{
		"", "campaign_updates", "campaign_updates/", hex + ".png", "/campaign_updates/" + hex + ".png",
		"campaign_updates/" + hex, "campaign_updates/" + hex + ".", "campaign_updates/" + hex + ".PNG",
		"campaign_updates/" + hex + ".svg", "campaign_updates/" + hex + ".html", "campaign_updates/" + hex + ".png.html",
		"campaign_updates/" + strings.ToUpper(hex) + ".png", "campaign_updates/" + hex[1:] + ".png",
		"campaign_updates/" + hex + "0.png", "campaign_updates/" + hex[2:] + "zz.png", "other/" + hex + ".png",
		"campaign_updates/../" + hex + ".png", "../campaign_updates/" + hex + ".png", "campaign_updates/./" + hex + ".png",
		"campaign_updates//" + hex + ".png", `campaign_updates\` + hex + ".png", "campaign_updates/" + hex + ".png\x00",
		"campaign_updates/" + hex + ".png/..", "campaign_updates/" + tmpPrefix + hex + ".png",
	} {
		if ValidName(name) {
			t.Errorf("ValidName(%q) = true", name)
		}
	}
	for _, url := range []string{"https://example.com/media/campaign_updates/" + hex + ".png", "/media/../" + hex + ".png", "/media/campaign_updates/x.png", "media/campaign_updates/" + hex + ".png"} {
		if _, ok := NameOf(url); ok {
			t.Errorf("NameOf(%q) accepted", url)
		}
	}
	if _, ok := NameOf("/media/campaign_updates/" + hex + ".jpg"); !ok {
		t.Error("a .jpg name refused")
	}
}

// A directory stores, opens and deletes files by name; a failed write
// leaves nothing behind, and nothing outside the directory is reachable,
// not even through a symbolic link inside it.
func TestDir(t *testing.T) {
	ctx := context.Background()
	base := t.TempDir()
	d, err := OpenDir(filepath.Join(base, "media"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	png, _ := formatByExt("png")
	name := NewName(UpdateImages, png)
	if err := d.Put(ctx, name, strings.NewReader("pixels")); err != nil {
		t.Fatal(err)
	}
	f, err := d.Open(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(f)
	f.Close()
	if string(got) != "pixels" || f.ModTime().IsZero() {
		t.Errorf("read back %q, modified %v", got, f.ModTime())
	}
	if _, err := os.Stat(filepath.Join(base, "media", filepath.FromSlash(name))); err != nil {
		t.Errorf("not in the directory: %v", err)
	}

	failed := NewName(UpdateImages, png)
	if err := d.Put(ctx, failed, io.MultiReader(strings.NewReader("half"), errReader{})); err == nil {
		t.Error("a failed read was stored")
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if err := d.Put(cancelled, failed, strings.NewReader("late")); !errors.Is(err, context.Canceled) {
		t.Errorf("a write after its request ended: %v", err)
	}
	entries, _ := os.ReadDir(filepath.Join(base, "media", UpdateImages))
	if len(entries) != 1 {
		t.Errorf("failed writes left files behind: %v", entries)
	}
	if _, err := d.Open(ctx, failed); !errors.Is(err, ErrNotFound) {
		t.Errorf("open a file never stored: %v, want ErrNotFound", err)
	}

	for _, bad := range []string{"../escape.png", "campaign_updates/../../escape.png", "/etc/passwd"} {
		if err := d.Put(ctx, bad, strings.NewReader("x")); err == nil {
			t.Errorf("Put(%q) accepted", bad)
		}
		if _, err := d.Open(ctx, bad); !errors.Is(err, ErrNotFound) {
			t.Errorf("Open(%q): %v", bad, err)
		}
		if err := d.Delete(ctx, bad); err == nil {
			t.Errorf("Delete(%q) accepted", bad)
		}
	}
	if _, err := os.Stat(filepath.Join(base, "escape.png")); err == nil {
		t.Error("a file was written outside the directory")
	}

	secret := filepath.Join(base, "secret.png")
	if err := os.WriteFile(secret, []byte("secret"), 0o600); err != nil {
		t.Fatal(err)
	}
	link := NewName(UpdateImages, png)
	if err := os.Symlink(secret, filepath.Join(base, "media", filepath.FromSlash(link))); err != nil {
		t.Fatal(err)
	}
	if f, err := d.Open(ctx, link); err == nil {
		b, _ := io.ReadAll(f)
		f.Close()
		t.Errorf("a link out of the directory was followed: read %q", b)
	}

	if err := d.Delete(ctx, name); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Open(ctx, name); !errors.Is(err, ErrNotFound) {
		t.Errorf("open after delete: %v", err)
	}
	if err := d.Delete(ctx, name); err != nil {
		t.Errorf("deleting twice: %v", err)
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }
