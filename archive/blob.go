package archive

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"unicode/utf8"
)

// ErrNotFound is returned for a key that holds no object.
var ErrNotFound = errors.New("blob not found")

// ErrInvalidKey is wrapped by the errors for keys that cannot name an object.
var ErrInvalidKey = errors.New("invalid blob key")

// maxKeyLen is S3's limit on an object key, in bytes.
const maxKeyLen = 1024

// Blobs stores immutable objects by key: uploaded images and files, and cold segments.
// Implementations: LocalDir (the embedded default) and S3; both pass one conformance suite.
type Blobs interface {
	// Put stores r under key. Keys are made so that a key is written once or, on a retry, with the
	// same bytes; an object already at key is replaced whole, never seen half-written.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get opens the object at key; ErrNotFound if there is none, including for a key that cannot
	// name an object.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Stat returns the key and size of the object at key; ErrNotFound if there is none.
	Stat(ctx context.Context, key string) (BlobInfo, error)
	// List returns every object whose key starts with prefix, in key order.
	List(ctx context.Context, prefix string) ([]BlobInfo, error)
	// Delete removes the object at key; deleting a missing key is not an error.
	Delete(ctx context.Context, key string) error
}

// BlobInfo describes one stored object.
type BlobInfo struct {
	Key  string `json:"key"`
	Size int64  `json:"size"`
}

// CheckKey says why key cannot name an object, or nil if it can: a key is 1 to 1024 bytes of UTF-8
// without control characters or backslashes, made of non-empty '/'-separated segments none of which
// is "." or "..".
func CheckKey(key string) error {
	if key == "" {
		return fmt.Errorf("%w: empty", ErrInvalidKey)
	}
	if err := checkPrefix(key); err != nil {
		return err
	}
	if strings.HasSuffix(key, "/") {
		return fmt.Errorf("%w %q: ends with '/'", ErrInvalidKey, key)
	}
	return nil
}

// checkPrefix is CheckKey for a List prefix, which may be empty or end with '/'.
func checkPrefix(p string) error {
	if len(p) > maxKeyLen {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrInvalidKey, len(p), maxKeyLen)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w %q: not UTF-8", ErrInvalidKey, p)
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f || r == '\\' {
			return fmt.Errorf("%w %q: control character or backslash", ErrInvalidKey, p)
		}
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w %q: starts with '/'", ErrInvalidKey, p)
	}
	segs := strings.Split(p, "/")
	for i, s := range segs {
		last := i == len(segs)-1
		if (s == "" && !last) || s == "." || s == ".." {
			return fmt.Errorf("%w %q: empty, '.' or '..' segment", ErrInvalidKey, p)
		}
	}
	return nil
}

// LocalDir keeps blobs as files under a directory; a cluster must share the directory.
type LocalDir struct {
	root string
}

// NewLocalDir returns blobs under root, creating it.
func NewLocalDir(root string) (*LocalDir, error) {
	if root == "" {
		return nil, errors.New("blob directory: empty path")
	}
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	return &LocalDir{root: root}, nil
}

// tempPrefix marks files being written; List never shows them.
const tempPrefix = ".put-"

func (d *LocalDir) path(key string) (string, error) {
	if err := CheckKey(key); err != nil {
		return "", err
	}
	return filepath.Join(d.root, filepath.FromSlash(key)), nil
}

// Put writes the object to a temporary file and renames it into place, so a reader never sees half.
func (d *LocalDir) Put(_ context.Context, key string, r io.Reader, _ int64, _ string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if strings.HasPrefix(filepath.Base(p), tempPrefix) {
		return fmt.Errorf("%w %q: a name starting with %q is reserved", ErrInvalidKey, key, tempPrefix)
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), tempPrefix+"*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := io.Copy(tmp, r); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), p)
}

// Get opens the object's file.
func (d *LocalDir) Get(_ context.Context, key string) (io.ReadCloser, error) {
	p, err := d.path(key)
	if err != nil {
		return nil, ErrNotFound
	}
	f, err := os.Open(p)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	if st, err := f.Stat(); err != nil || st.IsDir() {
		f.Close()
		return nil, ErrNotFound
	}
	return f, nil
}

// Stat reads the object's file size.
func (d *LocalDir) Stat(_ context.Context, key string) (BlobInfo, error) {
	p, err := d.path(key)
	if err != nil {
		return BlobInfo{}, err
	}
	st, err := os.Stat(p)
	if errors.Is(err, fs.ErrNotExist) || (err == nil && st.IsDir()) {
		return BlobInfo{}, ErrNotFound
	}
	if err != nil {
		return BlobInfo{}, err
	}
	return BlobInfo{Key: key, Size: st.Size()}, nil
}

// List walks the directory that holds the prefix.
func (d *LocalDir) List(_ context.Context, prefix string) ([]BlobInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	dir := ""
	if i := strings.LastIndex(prefix, "/"); i >= 0 {
		dir = prefix[:i]
	}
	start := filepath.Join(d.root, filepath.FromSlash(dir))
	var out []BlobInfo
	err := filepath.WalkDir(start, func(p string, e fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if e.IsDir() || strings.HasPrefix(e.Name(), tempPrefix) {
			return nil
		}
		rel, err := filepath.Rel(d.root, p)
		if err != nil {
			return err
		}
		key := filepath.ToSlash(rel)
		if !strings.HasPrefix(key, prefix) {
			return nil
		}
		info, err := e.Info()
		if err != nil {
			return err
		}
		out = append(out, BlobInfo{Key: key, Size: info.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(out, func(a, b BlobInfo) int { return strings.Compare(a.Key, b.Key) })
	return out, nil
}

// Delete removes the object's file.
func (d *LocalDir) Delete(_ context.Context, key string) error {
	p, err := d.path(key)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}
