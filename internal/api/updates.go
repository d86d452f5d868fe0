package api

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/heraldhq/herald/internal/media"
	"github.com/heraldhq/herald/internal/platform"
)

// An update is posted and edited with JSON (platform.UpdateInput) or with
// multipart/form-data (UpdateForm), which alone can carry an image.

// UpdateForm is the multipart/form-data body of POST and PATCH
// …/updates/, for the OpenAPI document: text fields title and content, and
// image, a file or, as a text field, "" to remove the image.
type UpdateForm struct {
	Title   *string  `json:"title"`
	Content *string  `json:"content"`
	Image   formFile `json:"image"`
}

// formFile is a file part of a multipart form.
type formFile struct{}

// maxFormField bounds a text field of a form: content is at most 20,000
// characters, 80,000 bytes of UTF-8.
const maxFormField = 100 << 10

func (s *Server) postUpdate(w http.ResponseWriter, r *http.Request) error {
	id, err := pathID(r, "id")
	if err != nil {
		return err
	}
	in, stored, err := s.updateBody(w, r)
	if err != nil {
		return err
	}
	u, err := s.p.PostUpdate(r.Context(), userID(r), id, in)
	if err != nil {
		s.discardUnused(r.Context(), stored, err)
		return err
	}
	writeJSON(w, http.StatusCreated, u)
	return nil
}

func (s *Server) editUpdate(w http.ResponseWriter, r *http.Request) error {
	id, oid, err := pathIDs(r)
	if err != nil {
		return err
	}
	in, stored, err := s.updateBody(w, r)
	if err != nil {
		return err
	}
	u, previous, err := s.p.EditUpdate(r.Context(), userID(r), id, oid, in)
	if err != nil {
		s.discardUnused(r.Context(), stored, err)
		return err
	}
	// The edit is committed: the image it replaced or removed is no
	// longer anyone's.
	s.discard(r.Context(), previous)
	writeJSON(w, http.StatusOK, u)
	return nil
}

// updateBody reads an update's body, JSON or a multipart form. The image
// of a form is checked and stored before it returns; stored is its URL, to
// be discarded if the write does not take it.
func (s *Server) updateBody(w http.ResponseWriter, r *http.Request) (in platform.UpdateInput, stored string, err error) {
	ct := r.Header.Get("Content-Type")
	if !formContentType(ct) {
		err := decode(w, r, &in)
		if p := (*Problem)(nil); errors.As(err, &p) && p.Status == http.StatusUnsupportedMediaType {
			p.Detail = strings.TrimSuffix(p.Detail, "application/json") + "application/json, or multipart/form-data to upload an image"
		}
		return in, "", err
	}
	if s.media == nil {
		return in, "", problem(http.StatusUnsupportedMediaType, "unsupported_media_type", "this server takes no uploads; send application/json")
	}
	_, params, _ := mime.ParseMediaType(ct)
	boundary := params["boundary"]
	if boundary == "" {
		return in, "", problem(http.StatusBadRequest, "parse_error", "multipart/form-data needs a boundary parameter")
	}
	limit := s.uploadLimit()
	if r.ContentLength > limit {
		return in, "", tooLarge(fmt.Sprintf("the body is larger than %d bytes", limit))
	}
	image, err := s.readUpdateForm(multipart.NewReader(http.MaxBytesReader(w, r.Body, limit), boundary), &in)
	if err != nil || image == nil {
		return in, "", err
	}
	f, err := s.images.Check(r.Context(), image)
	if err != nil {
		return in, "", imageProblem(w, err)
	}
	name := media.NewName(media.UpdateImages, f)
	if err := s.media.Put(r.Context(), name, bytes.NewReader(image)); err != nil {
		return in, "", fmt.Errorf("store an update's image: %w", err)
	}
	stored = media.URL(name)
	in.Image = platform.UploadedImage(stored)
	return in, stored, nil
}

// readUpdateForm reads the form's parts into in, returning the image file's
// bytes (nil if none). Every part is read before the image is looked at,
// so a bad field costs no decode. A part that is unknown or repeated ends
// the form, so it has three parts at most.
func (s *Server) readUpdateForm(mr *multipart.Reader, in *platform.UpdateInput) ([]byte, error) {
	var image []byte
	seen := map[string]bool{}
	for {
		part, err := mr.NextRawPart()
		if err == io.EOF {
			return image, nil
		}
		if err != nil {
			return nil, formProblem(err)
		}
		name := part.FormName()
		if name == "" {
			return nil, problem(http.StatusBadRequest, "parse_error", "a part of the form has no name (Content-Disposition: form-data; name=…)")
		}
		if !utf8.ValidString(name) || len(name) > 100 {
			return nil, problem(http.StatusBadRequest, "parse_error", "a part of the form has an invalid name")
		}
		if seen[name] {
			return nil, fieldProblem(name, "given more than once")
		}
		seen[name] = true
		file, filename := isFile(part)
		switch {
		case name == "image" && file:
			if image, err = readPart(part, s.maxImageBytes); errors.Is(err, errPartTooLong) {
				return nil, imageTooLarge(s.maxImageBytes)
			} else if err != nil {
				return nil, err
			}
			if len(image) == 0 {
				if filename != "" {
					return nil, fieldProblem("image", "the submitted file is empty")
				}
				image = nil // a file input left empty: no image given
			}
		case name == "title", name == "content", name == "image":
			if file {
				return nil, fieldProblem(name, "must be a text field, not a file")
			}
			b, err := readPart(part, maxFormField)
			if errors.Is(err, errPartTooLong) {
				return nil, fieldProblem(name, fmt.Sprintf("is longer than %d bytes", maxFormField))
			} else if err != nil {
				return nil, err
			}
			v := string(b)
			switch name {
			case "title":
				in.Title = &v
			case "content":
				in.Content = &v
			default:
				in.Image = platform.GivenImage(v)
			}
		default:
			return nil, fieldProblem(name, "unknown field")
		}
	}
}

// isFile says whether a part is a file (its Content-Disposition has a
// filename parameter, empty or not), and its file name, which herald
// never uses.
func isFile(p *multipart.Part) (bool, string) {
	_, params, err := mime.ParseMediaType(p.Header.Get("Content-Disposition"))
	if err != nil {
		return false, ""
	}
	name, ok := params["filename"]
	return ok, name
}

// errPartTooLong: a part is longer than its bound.
var errPartTooLong = errors.New("part too long")

// readPart reads a whole part of at most max bytes, reading max+1 at most.
func readPart(p *multipart.Part, max int64) ([]byte, error) {
	b, err := io.ReadAll(io.LimitReader(p, max+1))
	if err != nil {
		return nil, formProblem(err)
	}
	if int64(len(b)) > max {
		return nil, errPartTooLong
	}
	return b, nil
}

// formProblem answers a form that could not be read.
func formProblem(err error) error {
	var big *http.MaxBytesError
	if errors.As(err, &big) {
		return tooLarge(fmt.Sprintf("the body is larger than %d bytes", big.Limit))
	}
	return problem(http.StatusBadRequest, "parse_error", "malformed multipart/form-data: "+err.Error())
}

func tooLarge(detail string) *Problem {
	return problem(http.StatusRequestEntityTooLarge, "too_large", detail)
}

func imageTooLarge(max int64) *Problem {
	msg := fmt.Sprintf("the file is larger than %d bytes", max)
	p := tooLarge("the image is too large: " + msg)
	p.Errors = map[string][]string{"image": {msg}}
	return p
}

// imageProblem answers an image the checker refused.
func imageProblem(w http.ResponseWriter, err error) error {
	var size *media.SizeError
	switch {
	case errors.Is(err, media.ErrNotImage):
		return fieldProblem("image", "is not a PNG, JPEG, GIF or WebP image (the type is read from the file's content)")
	case errors.Is(err, media.ErrDamaged):
		return fieldProblem("image", "could not be decoded: the file is damaged, truncated or of an unsupported kind")
	case errors.As(err, &size):
		return fieldProblem("image", size.Error())
	case errors.Is(err, media.ErrBusy):
		w.Header().Set("Retry-After", "1")
		return problem(http.StatusServiceUnavailable, "busy", "the server is busy checking other images; try again in a moment")
	}
	return err
}

// uploadLimit bounds a multipart body: the image and the text fields.
func (s *Server) uploadLimit() int64 { return s.maxImageBytes + maxBody }

// bodyLimit bounds the body of a request to rt, for the Idempotency-Key's
// hash as for its handler.
func (s *Server) bodyLimit(rt Route, r *http.Request) int64 {
	if rt.Form != nil && formContentType(r.Header.Get("Content-Type")) {
		return s.uploadLimit()
	}
	return maxBody
}

// discardUnused deletes the image a failed write stored, when the write
// surely did not commit (an answer of the platform's, or a key another
// request used): after an error that could hide a commit, the file stays.
func (s *Server) discardUnused(ctx context.Context, url string, err error) {
	var used *platform.KeyUsedError
	if platform.KindOf(err) != 0 || errors.As(err, &used) {
		s.discard(ctx, url)
	}
}

// discard deletes the stored file at url, if it is one of herald's, best
// effort: a file left behind is only disk space.
func (s *Server) discard(ctx context.Context, url string) {
	name, ok := media.NameOf(url)
	if !ok || s.media == nil {
		return
	}
	if err := s.media.Delete(context.WithoutCancel(ctx), name); err != nil {
		s.log.WarnContext(ctx, "delete an image no longer used", "name", name, "err", err)
	}
}
