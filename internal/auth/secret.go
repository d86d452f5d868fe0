package auth

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
)

// LoadOrCreateSecret returns the JWT signing secret stored at path. If the
// file does not exist it is created, along with missing parent directories
// (mode 0700), holding 32 random bytes hex-encoded (mode 0600), so that
// tokens survive restarts when no secret is configured explicitly.
//
// The secret is the file's content with surrounding whitespace removed, so
// operators may also provision the file themselves. Files holding fewer
// than MinSecretLen bytes are rejected.
//
// Concurrent callers, in one process or several, all get the same secret:
// the file is written under a temporary name and then hard-linked into
// place, which, unlike rename, fails if another caller got there first;
// the loser then reads the winner's file. Readers never see a partial file.
func LoadOrCreateSecret(path string) ([]byte, error) {
	secret, err := readSecret(path)
	if !errors.Is(err, fs.ErrNotExist) {
		return secret, err
	}

	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create JWT secret directory: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".jwt-secret-*") // created with mode 0600
	if err != nil {
		return nil, fmt.Errorf("create JWT secret: %w", err)
	}
	defer os.Remove(tmp.Name())

	raw := make([]byte, 32)
	rand.Read(raw) // never returns an error
	secret = []byte(hex.EncodeToString(raw))

	_, err = tmp.Write(append(secret, '\n'))
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, fmt.Errorf("write JWT secret: %w", err)
	}

	if err := os.Link(tmp.Name(), path); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return readSecret(path)
		}
		return nil, fmt.Errorf("install JWT secret: %w", err)
	}
	// Persist the new directory entry; without this a crash could lose the
	// file after tokens signed with it were handed out.
	if d, err := os.Open(dir); err == nil {
		d.Sync()
		d.Close()
	}
	return secret, nil
}

func readSecret(path string) ([]byte, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWT secret: %w", err)
	}
	secret := bytes.TrimSpace(data)
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("JWT secret in %s is %d bytes, need at least %d", path, len(secret), MinSecretLen)
	}
	return secret, nil
}
