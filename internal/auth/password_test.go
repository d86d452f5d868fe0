package auth

import (
	"errors"
	"strings"
	"testing"
)

// cheap keeps tests fast; the defaults are exercised once in TestHashDefaults.
var cheap = Hasher{Params: PasswordParams{Memory: 64, Time: 1, Threads: 1}}

func TestHashDefaults(t *testing.T) {
	var h Hasher
	enc, err := h.Hash("correct horse battery staple")
	if err != nil {
		t.Fatal(err)
	}
	if want := "$argon2id$v=19$m=19456,t=2,p=1$"; !strings.HasPrefix(enc, want) {
		t.Fatalf("Hash() = %q, want prefix %q", enc, want)
	}
	parts := strings.Split(enc, "$")
	if len(parts[4]) != 22 || len(parts[5]) != 43 { // 16 and 32 bytes, unpadded
		t.Errorf("salt %q / hash %q have unexpected lengths", parts[4], parts[5])
	}
	ok, err := h.Verify(enc, "correct horse battery staple")
	if err != nil || !ok {
		t.Fatalf("Verify(correct) = %v, %v; want true, nil", ok, err)
	}
	if h.NeedsRehash(enc) {
		t.Error("NeedsRehash of a fresh default hash = true")
	}
}

func TestVerify(t *testing.T) {
	enc, err := cheap.Hash("s3cret-password")
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		password string
		want     bool
	}{
		{"s3cret-password", true},
		{"s3cret-passwore", false},
		{"S3cret-password", false},
		{"", false},
		{"s3cret-password ", false},
	} {
		got, err := cheap.Verify(enc, tc.password)
		if err != nil || got != tc.want {
			t.Errorf("Verify(%q) = %v, %v; want %v, nil", tc.password, got, err, tc.want)
		}
	}

	again, err := cheap.Hash("s3cret-password")
	if err != nil {
		t.Fatal(err)
	}
	if again == enc {
		t.Error("two hashes of the same password are identical; salt is not random")
	}
}

func TestVerifyUsesParamsFromHash(t *testing.T) {
	strong := Hasher{Params: PasswordParams{Memory: 256, Time: 3, Threads: 2}}
	enc, err := strong.Hash("pass-phrase")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(enc, "$m=256,t=3,p=2$") {
		t.Fatalf("Hash() = %q, want params m=256,t=3,p=2", enc)
	}
	// A hasher configured differently must still verify it.
	for _, h := range []Hasher{{}, cheap} {
		ok, err := h.Verify(enc, "pass-phrase")
		if err != nil || !ok {
			t.Errorf("Hasher%+v.Verify = %v, %v; want true, nil", h.Params, ok, err)
		}
		if !h.NeedsRehash(enc) {
			t.Errorf("Hasher%+v.NeedsRehash = false, want true", h.Params)
		}
	}
	if strong.NeedsRehash(enc) {
		t.Error("NeedsRehash with matching params = true")
	}

	// Changing a stored parameter must change the result, proving it is used.
	tampered := strings.Replace(enc, "t=3", "t=2", 1)
	if ok, err := cheap.Verify(tampered, "pass-phrase"); err != nil || ok {
		t.Errorf("Verify with altered t = %v, %v; want false, nil", ok, err)
	}
}

func TestVerifyMalformed(t *testing.T) {
	valid, err := cheap.Hash("pass-phrase")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(valid, "$")
	salt, key := parts[4], parts[5]
	for _, enc := range []string{
		"",
		"$",
		"plain-text-password",
		"$argon2id$",
		"$argon2i$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2d$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"argon2$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=16$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$m=64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1$" + salt + "$" + key,
		"$argon2id$v=19$t=1,m=64,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1,k=2$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=0,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=0$" + salt + "$" + key,
		"$argon2id$v=19$m=0,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=7,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=256$" + salt + "$" + key,
		"$argon2id$v=19$m=-1,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=+64,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=4294967295,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=99999999999,t=1,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=4294967295,p=1$" + salt + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$",
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "=$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "==",
		"$argon2id$v=19$m=64,t=1,p=1$!!!!$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key[:10],
		"$argon2id$v=19$m=64,t=1,p=1$" + salt[:4] + "$" + key,
		"$argon2id$v=19$m=64,t=1,p=1$" + salt + "$" + key + "$",
		valid + "$extra",
		"pbkdf2_sha256$600000$c2FsdA$aGFzaA==",
	} {
		ok, err := cheap.Verify(enc, "pass-phrase")
		if ok || !errors.Is(err, ErrMalformedHash) {
			t.Errorf("Verify(%q) = %v, %v; want false, ErrMalformedHash", enc, ok, err)
		}
		if !cheap.NeedsRehash(enc) {
			t.Errorf("NeedsRehash(%q) = false, want true", enc)
		}
	}
}

func TestHashRejectsBadParams(t *testing.T) {
	for _, p := range []PasswordParams{
		{Memory: 64, Time: 0, Threads: 1},
		{Memory: 64, Time: 1, Threads: 0},
		{Memory: 7, Time: 1, Threads: 1},
		{Memory: 1 << 30, Time: 1, Threads: 1},
		{Memory: 64, Time: 1000, Threads: 1},
	} {
		if enc, err := (Hasher{Params: p}).Hash("pass-phrase"); err == nil {
			t.Errorf("Hash with %+v = %q, want error", p, enc)
		}
	}
}

func TestValidatePassword(t *testing.T) {
	for _, tc := range []struct {
		password string
		want     error
	}{
		{"abcdefgh", nil},
		{"abc defg", nil},
		{"1234567a", nil},
		{"pässwörd", nil}, // 8 runes, 10 bytes
		{strings.Repeat("x", 128), nil},
		{strings.Repeat("é", 128), nil},
		{"", ErrPasswordTooShort},
		{"abcdefg", ErrPasswordTooShort},
		{"ééééééé", ErrPasswordTooShort}, // 14 bytes but 7 runes
		{strings.Repeat("x", 129), ErrPasswordTooLong},
		{"12345678", ErrPasswordNumeric},
		{"١٢٣٤٥٦٧٨", ErrPasswordNumeric}, // Arabic-Indic digits
		{"abcdefg\xff", ErrPasswordEncoding},
	} {
		if got := ValidatePassword(tc.password); got != tc.want {
			t.Errorf("ValidatePassword(%q) = %v, want %v", tc.password, got, tc.want)
		}
	}
}

func FuzzVerify(f *testing.F) {
	valid, err := cheap.Hash("pass-phrase")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(valid)
	f.Add("")
	f.Add("$argon2id$v=19$m=64,t=1,p=1$$")
	f.Add("$argon2id$v=19$m=4294967295,t=4294967295,p=255$AAAAAAAAAAAAAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("$argon2id$v=19$m=8,t=1,p=1$AAAAAAAAAAA$AAAAAAAAAAAAAAAAAAAAAA")
	f.Add("pbkdf2_sha256$600000$salt$hash")
	f.Fuzz(func(t *testing.T, encoded string) {
		ok, err := cheap.Verify(encoded, "pass-phrase")
		if err != nil && ok {
			t.Fatalf("Verify(%q) = true with error %v", encoded, err)
		}
		if err != nil && !errors.Is(err, ErrMalformedHash) {
			t.Fatalf("Verify(%q) error %v does not wrap ErrMalformedHash", encoded, err)
		}
	})
}
