package platform

import (
	"encoding/json"
	"testing"
)

// An update's image from JSON: absent keeps it, null and "" remove it, the
// current URL keeps it, any other string is refused; only the API's
// UploadedImage sets a new one.
func TestImageInput(t *testing.T) {
	cur := "/media/campaign_updates/0123456789abcdef0123456789abcdef.png"
	for _, tc := range []struct {
		body      string
		upload    string
		start     *string
		want      *string
		wantError bool
	}{
		{body: `{}`, start: &cur, want: &cur},
		{body: `{}`, start: nil, want: nil},
		{body: `{"image":null}`, start: &cur, want: nil},
		{body: `{"image":""}`, start: &cur, want: nil},
		{body: `{"image":"` + cur + `"}`, start: &cur, want: &cur},
		{body: `{"image":"` + cur + `"}`, start: nil, wantError: true},
		{body: `{"image":"https://example.com/a.png"}`, start: &cur, wantError: true},
		{body: `{"image":"/media/campaign_updates/ffffffffffffffffffffffffffffffff.png"}`, start: &cur, wantError: true},
		{body: `{"image":null}`, upload: "/media/new.png", start: &cur, want: ptrTo("/media/new.png")},
	} {
		var in UpdateInput
		if err := json.Unmarshal([]byte(tc.body), &in); err != nil {
			t.Fatalf("%s: %v", tc.body, err)
		}
		if tc.upload != "" {
			in.Image = UploadedImage(tc.upload)
		}
		f := fieldErrors{}
		got := tc.start
		in.Image.apply(f, &got)
		if (f.err() != nil) != tc.wantError {
			t.Errorf("%s from %v: errors %v", tc.body, deref(tc.start), f)
			continue
		}
		if !tc.wantError && deref(got) != deref(tc.want) {
			t.Errorf("%s from %v: image %q, want %q", tc.body, deref(tc.start), deref(got), deref(tc.want))
		}
	}
	var in UpdateInput
	if err := json.Unmarshal([]byte(`{"image":1}`), &in); err == nil {
		t.Error("a number was taken for an image")
	}
}

func ptrTo(s string) *string { return &s }
