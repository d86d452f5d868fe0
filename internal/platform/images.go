package platform

import (
	"bytes"
	"encoding/json"
)

// ImageInput is what a write says of an update's image. From JSON: absent
// keeps it; null or "" removes it; the update's current image (its URL, as
// a client that sends back what it read has it) keeps it; any other string
// is refused, since an image is uploaded, not linked. The API sets an
// uploaded file with UploadedImage.
type ImageInput struct {
	given    bool   // the field was present
	value    string // the string given ("" for null)
	uploaded string // the URL of a file the API stored
}

// UploadedImage is an image the API stored at url (/media/…).
func UploadedImage(url string) ImageInput { return ImageInput{given: true, uploaded: url} }

// GivenImage is the string a client gave as the image, as if in JSON
// (a multipart form's text field).
func GivenImage(s string) ImageInput { return ImageInput{given: true, value: s} }

// UnmarshalJSON takes null or a string.
func (in *ImageInput) UnmarshalJSON(b []byte) error {
	*in = ImageInput{given: true}
	if bytes.Equal(b, []byte("null")) {
		return nil
	}
	return json.Unmarshal(b, &in.value)
}

// apply sets current (nil for none) as in says, adding a field error for a
// string that is neither empty nor the current image.
func (in ImageInput) apply(f fieldErrors, current **string) {
	switch {
	case in.uploaded != "":
		u := in.uploaded
		*current = &u
	case !in.given:
	case in.value == "":
		*current = nil
	case *current != nil && in.value == **current:
	default:
		f.add("image", "upload the image as a file (multipart/form-data); a URL is not accepted")
	}
}

// imageColumn is an update's image as stored: "" for none.
func imageColumn(image *string) string {
	if image == nil {
		return ""
	}
	return *image
}

// imageOf is an update's stored image as served: nil for none, as Django
// REST framework serializes an empty ImageField.
func imageOf(column string) *string {
	if column == "" {
		return nil
	}
	return &column
}
