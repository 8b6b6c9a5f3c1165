package archive

import (
	"bytes"
	"context"
	"errors"
	"io"
	"testing"
)

// testBlobs is the conformance suite every Blobs implementation passes.
func testBlobs(t *testing.T, b Blobs) {
	ctx := context.Background()
	data := []byte("hello blob")
	if err := b.Put(ctx, "shop/1/a.txt", bytes.NewReader(data), int64(len(data)), "text/plain"); err != nil {
		t.Fatal(err)
	}
	r, err := b.Get(ctx, "shop/1/a.txt")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(r)
	r.Close()
	if !bytes.Equal(got, data) {
		t.Fatalf("got %q", got)
	}
	if _, err := b.Get(ctx, "shop/1/missing"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing key: %v", err)
	}
	if err := b.Delete(ctx, "shop/1/a.txt"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.Get(ctx, "shop/1/a.txt"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("deleted key: %v", err)
	}
	if err := b.Delete(ctx, "shop/1/a.txt"); err != nil {
		t.Fatalf("second delete: %v", err)
	}
	for _, bad := range []string{"../x", "a/../../x", "/abs", ""} {
		if err := b.Put(ctx, bad, bytes.NewReader(data), 1, ""); err == nil {
			t.Fatalf("key %q accepted", bad)
		}
	}
}

func TestLocalDirConformance(t *testing.T) {
	d, err := NewLocalDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	testBlobs(t, d)
}
