package archive

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"
)

// S3Config says where an S3-compatible bucket is: AWS S3, MinIO, or Alibaba OSS and Tencent COS
// through their S3 APIs.
type S3Config struct {
	// Endpoint is host[:port], or a URL whose http/https scheme sets UseSSL.
	Endpoint  string
	Bucket    string
	AccessKey string
	SecretKey string
	// Region is optional for MinIO; AWS needs the bucket's region.
	Region string
	UseSSL bool
	// Transport replaces the HTTP transport, for tests and custom TLS; nil uses the default.
	Transport http.RoundTripper
}

// S3 keeps blobs in one bucket of an S3-compatible object store.
type S3 struct {
	client *minio.Client
	bucket string
}

// NewS3 connects to the bucket, creating it when it is missing.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	endpoint, secure, err := s3Endpoint(cfg.Endpoint, cfg.UseSSL)
	if err != nil {
		return nil, err
	}
	if err := s3utils.CheckValidBucketName(cfg.Bucket); err != nil {
		return nil, fmt.Errorf("s3: bucket %q: %w", cfg.Bucket, err)
	}
	if (cfg.AccessKey == "") != (cfg.SecretKey == "") {
		return nil, errors.New("s3: access key and secret key are set together or not at all")
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       secure,
		Region:       cfg.Region,
		Transport:    cfg.Transport,
		BucketLookup: minio.BucketLookupPath,
	})
	if err != nil {
		return nil, fmt.Errorf("s3: %w", err)
	}
	s := &S3{client: client, bucket: cfg.Bucket}
	ok, err := client.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("s3: check bucket %s at %s: %w", cfg.Bucket, endpoint, err)
	}
	if !ok {
		err := client.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region})
		if err != nil && !bucketOwned(err) {
			return nil, fmt.Errorf("s3: create bucket %s at %s: %w", cfg.Bucket, endpoint, err)
		}
	}
	return s, nil
}

// s3Endpoint accepts "host:port" or "http(s)://host:port".
func s3Endpoint(raw string, useSSL bool) (string, bool, error) {
	if raw == "" {
		return "", false, errors.New("s3: endpoint is empty")
	}
	if !strings.Contains(raw, "://") {
		if strings.ContainsAny(raw, "/?#") {
			return "", false, fmt.Errorf("s3: endpoint %q: want host[:port] or a URL without a path", raw)
		}
		return raw, useSSL, nil
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("s3: endpoint %q: %w", raw, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.Trim(u.Path, "/") != "" || u.RawQuery != "" {
		return "", false, fmt.Errorf("s3: endpoint %q: want http(s)://host[:port] without a path", raw)
	}
	return u.Host, u.Scheme == "https", nil
}

func bucketOwned(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists"
}

func notFound(err error) bool {
	code := minio.ToErrorResponse(err).Code
	return code == "NoSuchKey" || code == "NotFound"
}

// Put uploads the object. An object of unknown size (-1) is read into memory first: a sized single
// request is what every S3-compatible server accepts alike, where streamed multipart uploads differ.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	if size < 0 {
		data, err := io.ReadAll(r)
		if err != nil {
			return fmt.Errorf("s3: put %s: %w", key, err)
		}
		r, size = bytes.NewReader(data), int64(len(data))
	}
	_, err := s.client.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// Get opens the object; the first request is made here, so a missing key is reported at once.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	if CheckKey(key) != nil {
		return nil, ErrNotFound
	}
	obj, err := s.client.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	}
	if _, err := obj.Stat(); err != nil {
		obj.Close()
		if notFound(err) {
			return nil, ErrNotFound
		}
		return nil, fmt.Errorf("s3: get %s: %w", key, err)
	}
	return obj, nil
}

// Stat asks the store for the object's size.
func (s *S3) Stat(ctx context.Context, key string) (BlobInfo, error) {
	if err := CheckKey(key); err != nil {
		return BlobInfo{}, err
	}
	info, err := s.client.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err != nil {
		if notFound(err) {
			return BlobInfo{}, ErrNotFound
		}
		return BlobInfo{}, fmt.Errorf("s3: stat %s: %w", key, err)
	}
	return BlobInfo{Key: key, Size: info.Size}, nil
}

// List lists the bucket under prefix; S3 returns keys in byte order.
func (s *S3) List(ctx context.Context, prefix string) ([]BlobInfo, error) {
	if err := checkPrefix(prefix); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing goroutine if we return early
	var out []BlobInfo
	for obj := range s.client.ListObjects(ctx, s.bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, fmt.Errorf("s3: list %s: %w", prefix, obj.Err)
		}
		out = append(out, BlobInfo{Key: obj.Key, Size: obj.Size})
	}
	return out, nil
}

// Delete removes the object; S3 answers a delete of a missing key with success.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := s.client.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil && !notFound(err) {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}
