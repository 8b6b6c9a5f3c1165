package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"os"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/shopdesk/shopdesk/migrations/testdb"
)

// testBlobs is the conformance suite every Blobs implementation passes. newBlobs returns an empty
// store of the implementation under test.
func testBlobs(t *testing.T, newBlobs func(t *testing.T) Blobs) {
	ctx := context.Background()
	put := func(t *testing.T, b Blobs, key, data string) {
		t.Helper()
		if err := b.Put(ctx, key, strings.NewReader(data), int64(len(data)), "text/plain"); err != nil {
			t.Fatalf("put %s: %v", key, err)
		}
	}
	read := func(t *testing.T, b Blobs, key string) string {
		t.Helper()
		r, err := b.Get(ctx, key)
		if err != nil {
			t.Fatalf("get %s: %v", key, err)
		}
		defer r.Close()
		got, err := io.ReadAll(r)
		if err != nil {
			t.Fatalf("read %s: %v", key, err)
		}
		return string(got)
	}

	t.Run("PutGetDelete", func(t *testing.T) {
		b := newBlobs(t)
		put(t, b, "shop/1/a.txt", "hello blob")
		if got := read(t, b, "shop/1/a.txt"); got != "hello blob" {
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
	})

	t.Run("ReplaceAndBinary", func(t *testing.T) {
		b := newBlobs(t)
		put(t, b, "k", "first")
		put(t, b, "k", "second, longer")
		if got := read(t, b, "k"); got != "second, longer" {
			t.Fatalf("after replace: %q", got)
		}
		bin := make([]byte, 300<<10)
		for i := range bin {
			bin[i] = byte(i * 7)
		}
		if err := b.Put(ctx, "bin/x", bytes.NewReader(bin), -1, ""); err != nil {
			t.Fatalf("put of unknown size: %v", err)
		}
		if got := read(t, b, "bin/x"); got != string(bin) {
			t.Fatalf("binary object changed: %d bytes back of %d", len(got), len(bin))
		}
	})

	t.Run("StatAndList", func(t *testing.T) {
		b := newBlobs(t)
		for _, k := range []string{"cold/2/2026-01/p0", "cold/1/2026-02/p0", "cold/1/2026-01/p1", "cold/1/2026-01/p0", "cold/10/x", "up/1/a"} {
			put(t, b, k, k)
		}
		info, err := b.Stat(ctx, "cold/1/2026-01/p1")
		if err != nil || info.Key != "cold/1/2026-01/p1" || info.Size != int64(len("cold/1/2026-01/p1")) {
			t.Fatalf("stat: %+v %v", info, err)
		}
		if _, err := b.Stat(ctx, "cold/1/none"); !errors.Is(err, ErrNotFound) {
			t.Fatalf("stat of missing key: %v", err)
		}
		keys := func(prefix string) string {
			t.Helper()
			list, err := b.List(ctx, prefix)
			if err != nil {
				t.Fatalf("list %q: %v", prefix, err)
			}
			var ks []string
			for _, i := range list {
				if i.Size != int64(len(i.Key)) {
					t.Errorf("list %q: %s has size %d", prefix, i.Key, i.Size)
				}
				ks = append(ks, i.Key)
			}
			return strings.Join(ks, " ")
		}
		for prefix, want := range map[string]string{
			"cold/1/":         "cold/1/2026-01/p0 cold/1/2026-01/p1 cold/1/2026-02/p0",
			"cold/1":          "cold/1/2026-01/p0 cold/1/2026-01/p1 cold/1/2026-02/p0 cold/10/x",
			"cold/1/2026-01/": "cold/1/2026-01/p0 cold/1/2026-01/p1",
			"cold/1/2026-0":   "cold/1/2026-01/p0 cold/1/2026-01/p1 cold/1/2026-02/p0",
			"cold/3/":         "",
			"nothing/here/":   "",
			"":                "cold/1/2026-01/p0 cold/1/2026-01/p1 cold/1/2026-02/p0 cold/10/x cold/2/2026-01/p0 up/1/a",
		} {
			if got := keys(prefix); got != want {
				t.Errorf("list %q:\n got %s\nwant %s", prefix, got, want)
			}
		}
	})

	t.Run("ListPastOnePage", func(t *testing.T) {
		// S3 answers a listing 1000 keys at a time.
		b := newBlobs(t)
		for i := range 1005 {
			put(t, b, fmt.Sprintf("many/%04d", i), "x")
		}
		list, err := b.List(ctx, "many/")
		if err != nil || len(list) != 1005 || list[0].Key != "many/0000" || list[1004].Key != "many/1004" {
			t.Fatalf("list of 1005: %d keys, %v", len(list), err)
		}
	})

	t.Run("InvalidKeys", func(t *testing.T) {
		b := newBlobs(t)
		for _, bad := range []string{"", "../x", "a/../../x", "a/./b", "/abs", "a//b", "a/", "a\\b", "a\x00b", "a\nb", strings.Repeat("k", 1025), "\xff\xfe"} {
			err := b.Put(ctx, bad, strings.NewReader("x"), 1, "")
			if !errors.Is(err, ErrInvalidKey) {
				t.Errorf("put %q: want ErrInvalidKey, got %v", bad, err)
			}
			if err := b.Delete(ctx, bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("delete %q: want ErrInvalidKey, got %v", bad, err)
			}
			if _, err := b.Stat(ctx, bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("stat %q: want ErrInvalidKey, got %v", bad, err)
			}
			if _, err := b.Get(ctx, bad); !errors.Is(err, ErrNotFound) {
				t.Errorf("get %q: want ErrNotFound, got %v", bad, err)
			}
		}
		for _, bad := range []string{"../", "/x", "a//"} {
			if _, err := b.List(ctx, bad); !errors.Is(err, ErrInvalidKey) {
				t.Errorf("list %q: want ErrInvalidKey, got %v", bad, err)
			}
		}
		if list, err := b.List(ctx, ""); err != nil || len(list) != 0 {
			t.Fatalf("rejected keys left objects: %v %v", list, err)
		}
	})
}

func TestLocalDirConformance(t *testing.T) {
	t.Parallel()
	testBlobs(t, func(t *testing.T) Blobs {
		d, err := NewLocalDir(t.TempDir())
		if err != nil {
			t.Fatal(err)
		}
		return d
	})
}

// fakeS3 serves an in-memory S3 on a random port for the test's life.
func fakeS3(t testing.TB) S3Config {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	return S3Config{Endpoint: srv.URL, Bucket: testdb.Name("sdt-"), AccessKey: "test", SecretKey: "testsecret", Region: "us-east-1"}
}

// newTestS3 returns an S3 store over a fresh bucket of the in-process server.
func newTestS3(t testing.TB) *S3 {
	s, err := NewS3(context.Background(), fakeS3(t))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestS3Conformance(t *testing.T) {
	t.Parallel()
	testBlobs(t, func(t *testing.T) Blobs { return newTestS3(t) })
}

// TestS3ConformanceMinIO runs the suite against a real server when SHOPDESK_TEST_S3_ENDPOINT is set,
// each subtest in a fresh bucket of its own that is emptied and removed afterwards.
func TestS3ConformanceMinIO(t *testing.T) {
	endpoint := os.Getenv("SHOPDESK_TEST_S3_ENDPOINT")
	if endpoint == "" {
		t.Skip("SHOPDESK_TEST_S3_ENDPOINT not set: no real S3 server to test against")
	}
	testBlobs(t, func(t *testing.T) Blobs {
		bucket := os.Getenv("SHOPDESK_TEST_S3_BUCKET")
		if bucket == "" {
			bucket = "shopdesk-test"
		}
		ctx := context.Background()
		s, err := NewS3(ctx, S3Config{Endpoint: endpoint, Bucket: bucket,
			AccessKey: os.Getenv("SHOPDESK_TEST_S3_ACCESS_KEY"), SecretKey: os.Getenv("SHOPDESK_TEST_S3_SECRET_KEY"),
			Region: os.Getenv("SHOPDESK_TEST_S3_REGION")})
		if err != nil {
			testdb.Unreachable(t, "S3 at "+endpoint, err)
		}
		// The bucket is shared with other runs, so each subtest works under a prefix of its own.
		return prefixed{Blobs: s, prefix: testdb.Name("sdt") + "/"}
	})
}

// prefixed confines a store to a prefix, so a shared bucket looks empty to each test.
type prefixed struct {
	Blobs
	prefix string
}

func (p prefixed) Put(ctx context.Context, key string, r io.Reader, size int64, ct string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	return p.Blobs.Put(ctx, p.prefix+key, r, size, ct)
}

func (p prefixed) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if CheckKey(key) != nil {
		return nil, ErrNotFound
	}
	return p.Blobs.Get(ctx, p.prefix+key)
}

func (p prefixed) Stat(ctx context.Context, key string) (BlobInfo, error) {
	if err := CheckKey(key); err != nil {
		return BlobInfo{}, err
	}
	i, err := p.Blobs.Stat(ctx, p.prefix+key)
	i.Key = strings.TrimPrefix(i.Key, p.prefix)
	return i, err
}

func (p prefixed) List(ctx context.Context, prefix string) ([]BlobInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	list, err := p.Blobs.List(ctx, p.prefix+prefix)
	for i := range list {
		list[i].Key = strings.TrimPrefix(list[i].Key, p.prefix)
	}
	return list, err
}

func (p prefixed) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	return p.Blobs.Delete(ctx, p.prefix+key)
}

func TestNewS3RejectsBadConfig(t *testing.T) {
	ctx := context.Background()
	good := fakeS3(t)
	for name, mutate := range map[string]func(*S3Config){
		"empty endpoint":  func(c *S3Config) { c.Endpoint = "" },
		"endpoint path":   func(c *S3Config) { c.Endpoint = "http://127.0.0.1:9000/minio" },
		"endpoint scheme": func(c *S3Config) { c.Endpoint = "ftp://127.0.0.1:9000" },
		"empty bucket":    func(c *S3Config) { c.Bucket = "" },
		"bad bucket":      func(c *S3Config) { c.Bucket = "Bad_Bucket" },
		"half keys":       func(c *S3Config) { c.SecretKey = "" },
	} {
		cfg := good
		mutate(&cfg)
		if _, err := NewS3(ctx, cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// The bucket is created once and found the second time.
	for i := 0; i < 2; i++ {
		if _, err := NewS3(ctx, good); err != nil {
			t.Fatalf("open %d: %v", i+1, err)
		}
	}
}
