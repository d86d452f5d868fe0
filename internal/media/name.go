package media

import (
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
)

// URLPrefix is the path media files are served under.
const URLPrefix = "/media/"

// UpdateImages is the folder of updates' images, as Django's
// upload_to='campaign_updates/'.
const UpdateImages = "campaign_updates"

// folders are the folders herald stores files in.
var folders = []string{UpdateImages}

// idLen is the length of a name's random part: 16 bytes in hex.
const idLen = 32

// NewName names a new file of format f in folder: 128 random bits and the
// format's extension ("campaign_updates/3f…9a.jpg"). The client's file name
// is never used.
func NewName(folder string, f Format) string {
	var b [idLen / 2]byte
	_, _ = rand.Read(b[:]) // never fails (crypto/rand)
	return folder + "/" + hex.EncodeToString(b[:]) + "." + f.Ext
}

// ValidName reports whether name is one NewName could have made: a known
// folder, 32 lowercase hex digits, a known extension. Nothing else is ever
// opened, stored or deleted, so no name can reach outside the storage.
func ValidName(name string) bool {
	folder, file, ok := strings.Cut(name, "/")
	if !ok || !slices.Contains(folders, folder) {
		return false
	}
	id, ext, ok := strings.Cut(file, ".")
	if !ok || len(id) != idLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		if c := id[i]; (c < '0' || c > '9') && (c < 'a' || c > 'f') {
			return false
		}
	}
	_, ok = formatByExt(ext)
	return ok
}

// URL is the path name is served at.
func URL(name string) string { return URLPrefix + name }

// NameOf returns the stored name a media URL path points to, and false for
// anything else (another site's URL, a path herald did not make).
func NameOf(url string) (string, bool) {
	name, ok := strings.CutPrefix(url, URLPrefix)
	if !ok || !ValidName(name) {
		return "", false
	}
	return name, true
}

// ContentType is the Content-Type a valid name is served with.
func ContentType(name string) string {
	ext := name[strings.LastIndexByte(name, '.')+1:]
	f, _ := formatByExt(ext)
	return f.ContentType
}
