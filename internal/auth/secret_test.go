package auth

import (
	"bytes"
	"encoding/hex"
	"os"
	"path/filepath"
	"sync"
	"testing"
)

func TestLoadOrCreateSecret(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "state", "herald")
	path := filepath.Join(dir, "jwt-secret")

	secret, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if raw, err := hex.DecodeString(string(secret)); err != nil || len(raw) != 32 {
		t.Errorf("secret %q is not 32 hex-encoded bytes", secret)
	}
	if _, err := NewIssuer(secret, 0, 0); err != nil {
		t.Errorf("generated secret rejected by NewIssuer: %v", err)
	}

	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Errorf("secret file mode = %v, want 0600", perm)
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Errorf("secret directory mode = %v, want 0700", perm)
	}

	again, err := LoadOrCreateSecret(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(again, secret) {
		t.Errorf("second call returned %q, want the stored %q", again, secret)
	}

	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want only the secret (temporary files left behind?)", len(entries))
	}
}

func TestLoadOrCreateSecretExisting(t *testing.T) {
	dir := t.TempDir()

	path := filepath.Join(dir, "provisioned")
	want := "an-operator-provided-secret-of-sufficient-length"
	if err := os.WriteFile(path, []byte("  "+want+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := LoadOrCreateSecret(path)
	if err != nil || string(got) != want {
		t.Errorf("LoadOrCreateSecret = %q, %v; want %q", got, err, want)
	}

	for name, content := range map[string]string{
		"short": "too-short-secret\n",
		"empty": "",
		"blank": "   \n\n",
	} {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := LoadOrCreateSecret(path); err == nil {
			t.Errorf("%s file: LoadOrCreateSecret = %q, want error", name, s)
		}
		if b, _ := os.ReadFile(path); string(b) != content {
			t.Errorf("%s file was overwritten with %q", name, b)
		}
	}

	// A path whose parent is a regular file cannot be created.
	if _, err := LoadOrCreateSecret(filepath.Join(dir, "provisioned", "secret")); err == nil {
		t.Error("LoadOrCreateSecret below a regular file succeeded")
	}
}

func TestLoadOrCreateSecretConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), "jwt-secret")

	const n = 20
	secrets := make([][]byte, n)
	errs := make([]error, n)
	start := make(chan struct{})
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			<-start
			secrets[i], errs[i] = LoadOrCreateSecret(path)
		})
	}
	close(start)
	wg.Wait()

	stored, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	stored = bytes.TrimSpace(stored)
	for i := range n {
		if errs[i] != nil {
			t.Errorf("caller %d: %v", i, errs[i])
		} else if !bytes.Equal(secrets[i], stored) {
			t.Errorf("caller %d got %q, file holds %q", i, secrets[i], stored)
		}
	}
	entries, err := os.ReadDir(filepath.Dir(path))
	if err != nil {
		t.Fatal(err)
	}
	if len(entries) != 1 {
		t.Errorf("directory holds %d entries, want 1", len(entries))
	}
}
