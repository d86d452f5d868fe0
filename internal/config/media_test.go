package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// Uploaded images: in the data directory's media folder unless
// --media-dir says otherwise, 5 MiB by default, and a clear error for a
// size out of range.
func TestMediaFlags(t *testing.T) {
	c, err := parseArgs(t, nil, nil)
	if err != nil || c.MediaDir != "" || c.MediaPath() != filepath.Join("data", "media") || c.MaxImageBytes != 5<<20 {
		t.Fatalf("defaults: dir %q (%s), max %d, %v", c.MediaDir, c.MediaPath(), c.MaxImageBytes, err)
	}
	c, err = parseArgs(t, []string{"--data-dir", "/var/lib/herald"}, nil)
	if err != nil || c.MediaPath() != filepath.Join("/var/lib/herald", "media") {
		t.Fatalf("with --data-dir: %s, %v", c.MediaPath(), err)
	}
	c, err = parseArgs(t, []string{"--media-dir", "/srv/media", "--data-dir", "/var/lib/herald"},
		map[string]string{"HERALD_MEDIA_DIR": "/elsewhere", "HERALD_MAX_IMAGE_BYTES": "1024"})
	if err != nil || c.MediaPath() != "/srv/media" || c.MaxImageBytes != 1024 {
		t.Fatalf("flag and environment: %s, max %d, %v", c.MediaPath(), c.MaxImageBytes, err)
	}
	path := writeConfig(t, "media-dir = \"/mnt/shared/media\"\nmax-image-bytes = 52428800\n")
	c, err = parseArgs(t, []string{"--config", path}, nil)
	if err != nil || c.MediaPath() != "/mnt/shared/media" || c.MaxImageBytes != 50<<20 {
		t.Fatalf("config file: %s, max %d, %v", c.MediaPath(), c.MaxImageBytes, err)
	}
	for _, bad := range []string{"0", "1023", "52428801", "-1", "5MiB", "1e6", "99999999999999999999", ""} {
		args := []string{"--max-image-bytes", bad}
		if _, err := parseArgs(t, args, nil); err == nil || !strings.Contains(err.Error(), "--max-image-bytes") {
			t.Errorf("%v accepted (%v)", args, err)
		}
	}
}
