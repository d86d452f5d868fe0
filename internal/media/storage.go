package media

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"time"
)

// Storage keeps media files by name (a name ValidName accepts). Several
// herald processes serving one site must share one: each serves files the
// others stored.
type Storage interface {
	// Put stores r's bytes as name. Readers never see a partial file.
	Put(ctx context.Context, name string, r io.Reader) error
	// Open returns the file stored as name, or an error wrapping
	// ErrNotFound.
	Open(ctx context.Context, name string) (File, error)
	// Delete removes name; a name that is not there is no error.
	Delete(ctx context.Context, name string) error
}

// File is a stored file, read and served with ranges.
type File interface {
	io.ReadSeekCloser
	ModTime() time.Time
}

// ErrNotFound: no file has that name.
var ErrNotFound = errors.New("media: no such file")

// errBadName refuses a name NewName could not have made.
var errBadName = errors.New("media: invalid name")

// Dir is a Storage in a local directory (or a shared mount of one): each
// folder a subdirectory, each file written under a temporary name and
// renamed into place. Every access goes through an os.Root, so no path
// (or symbolic link) leads outside the directory.
type Dir struct {
	root *os.Root
}

// OpenDir opens dir as a Storage, creating it if needed.
func OpenDir(dir string) (*Dir, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("media directory: %w", err)
	}
	root, err := os.OpenRoot(dir)
	if err != nil {
		return nil, fmt.Errorf("media directory: %w", err)
	}
	return &Dir{root: root}, nil
}

// Close releases the directory.
func (d *Dir) Close() error { return d.root.Close() }

// tmpPrefix starts the names of files being written; ValidName refuses
// them, so they are never served. A crash mid-write may leave one behind.
const tmpPrefix = ".tmp-"

// Put writes r to a temporary file in name's folder, flushes it to disk and
// renames it to name.
func (d *Dir) Put(ctx context.Context, name string, r io.Reader) (err error) {
	if !ValidName(name) {
		return fmt.Errorf("store %q: %w", name, errBadName)
	}
	folder := path.Dir(name)
	if err := d.root.MkdirAll(folder, 0o755); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	tmp := folder + "/" + tmpPrefix + hex.EncodeToString(rnd[:])
	f, err := d.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	defer func() {
		if err != nil {
			_ = f.Close()
			_ = d.root.Remove(tmp)
		}
	}()
	if _, err = io.Copy(f, ctxReader{ctx, r}); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	if err = f.Sync(); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	if err = f.Close(); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	if err = d.root.Rename(tmp, name); err != nil {
		return fmt.Errorf("store %s: %w", name, err)
	}
	// The rename is durable once the folder is flushed too (best effort:
	// not every file system can sync a directory).
	if df, err := d.root.Open(folder); err == nil {
		_ = df.Sync()
		_ = df.Close()
	}
	return nil
}

// Open opens name for reading.
func (d *Dir) Open(_ context.Context, name string) (File, error) {
	if !ValidName(name) {
		return nil, fmt.Errorf("open %q: %w", name, ErrNotFound)
	}
	f, err := d.root.Open(name)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, fmt.Errorf("open %s: %w", name, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	st, err := f.Stat()
	if err != nil {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: %w", name, err)
	}
	if !st.Mode().IsRegular() {
		_ = f.Close()
		return nil, fmt.Errorf("open %s: %w", name, ErrNotFound)
	}
	return localFile{File: f, mod: st.ModTime()}, nil
}

// Delete removes name.
func (d *Dir) Delete(_ context.Context, name string) error {
	if !ValidName(name) {
		return fmt.Errorf("delete %q: %w", name, errBadName)
	}
	if err := d.root.Remove(name); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("delete %s: %w", name, err)
	}
	return nil
}

type localFile struct {
	*os.File
	mod time.Time
}

func (f localFile) ModTime() time.Time { return f.mod }

// ctxReader stops a copy once ctx ends.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}
