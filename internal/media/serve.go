package media

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
)

// cacheControl: a name is never reused for other bytes (a new upload gets
// a new name), so a response may be kept for a year without asking again.
const cacheControl = "public, max-age=31536000, immutable"

// Handler serves s's files at URLPrefix: GET and HEAD, with ranges and
// conditional requests (http.ServeContent), the Content-Type of the
// name's format, X-Content-Type-Options: nosniff and a year's cache
// lifetime. Only names ValidName accepts are looked up; anything else is
// 404.
func Handler(s Storage, log *slog.Logger) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			h.Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		name, ok := strings.CutPrefix(r.URL.Path, URLPrefix)
		if !ok || !ValidName(name) {
			http.NotFound(w, r)
			return
		}
		f, err := s.Open(r.Context(), name)
		if errors.Is(err, ErrNotFound) {
			http.NotFound(w, r)
			return
		}
		if err != nil {
			log.ErrorContext(r.Context(), "open a media file", "name", name, "err", err)
			http.Error(w, "internal error", http.StatusInternalServerError)
			return
		}
		defer f.Close()
		h.Set("Content-Type", ContentType(name))
		h.Set("Cache-Control", cacheControl)
		h.Set("ETag", `"`+name[strings.LastIndexByte(name, '/')+1:]+`"`)
		// Opened on its own (not in an <img>), the file is a sandboxed
		// document that may load nothing.
		h.Set("Content-Security-Policy", "default-src 'none'; sandbox")
		http.ServeContent(w, r, "", f.ModTime(), f)
	})
}
