// Package payload is the claim-check store: large inputs (URL lists) and
// per-pair results live here, and workflows carry only their keys, which
// keeps every Temporal payload far below its 2 MB limit.
//
// The store is a gocloud.dev/blob bucket opened from one URL
// (--payload-url, $CDNFLOW_PAYLOAD_URL; see Open): a directory in dev
// (file://), an S3-compatible bucket in a cluster (s3://), or a Google
// Cloud Storage bucket (gs://). Every API and worker process of one
// deployment must name the same bucket.
package payload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ErrNotFound means no payload has that key.
var ErrNotFound = errors.New("payload not found")

// ErrExists is returned by PutIfAbsent when the key is taken.
var ErrExists = errors.New("payload exists")

// ErrUnavailable wraps every store failure that is neither ErrNotFound,
// ErrExists, a bad key nor the caller's context ending: the store did not
// answer (down, unreachable, refused our credentials). It is transient from
// cdnflow's view: the API refuses new jobs with 503 / NHN 50001 and
// activities retry until the store is back.
var ErrUnavailable = errors.New("payload store unavailable")

// Store keeps immutable blobs by key. Keys are slash-separated paths of
// [A-Za-z0-9._-] segments (CheckKey).
type Store interface {
	// Put writes data under key, replacing what is there; readers see the
	// old or the new payload whole, never a part.
	Put(ctx context.Context, key string, data []byte) error
	// PutIfAbsent writes data unless key exists (ErrExists then).
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	// Get reads a payload; a missing key is an error wrapping ErrNotFound.
	Get(ctx context.Context, key string) ([]byte, error)
}

// CheckKey reports a key that is not a relative slash-separated path of
// [A-Za-z0-9._-] segments, without empty, "." or ".." segments.
func CheckKey(key string) error {
	if key == "" || strings.HasPrefix(key, "/") {
		return fmt.Errorf("invalid payload key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return fmt.Errorf("invalid payload key %q", key)
		}
	}
	return nil
}

// Bucket is the Store on a gocloud.dev/blob bucket. Build it with Open;
// it is safe for concurrent use. Close it when done.
type Bucket struct {
	b   *blob.Bucket
	url string
	// create serializes this process's PutIfAbsent calls. S3 and GCS make
	// the conditional write atomic themselves (If-None-Match: *,
	// ifGenerationMatch=0); fileblob checks and renames, which this lock
	// makes atomic within one process (`cdnflow dev` runs its API and
	// worker in one).
	create sync.Mutex
}

// URL is the bucket URL the store was opened with, as Open completed it.
func (s *Bucket) URL() string { return s.url }

// Close releases the bucket's resources.
func (s *Bucket) Close() error {
	if err := s.b.Close(); err != nil {
		return fmt.Errorf("close payload store: %w", err)
	}
	return nil
}

// Probe checks that the bucket exists and answers (an S3 HeadBucket, a
// stat of the directory): what a process checks at start.
func (s *Bucket) Probe(ctx context.Context) error {
	ok, err := s.b.IsAccessible(ctx)
	if err != nil {
		return fmt.Errorf("payload store %s: %w", s.url, s.classify(ctx, err))
	}
	if !ok {
		return fmt.Errorf("payload store %s: the bucket does not exist", s.url)
	}
	return nil
}

// Put writes data under key (an atomic replace: the drivers upload to a
// temporary name or a single PUT).
func (s *Bucket) Put(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	if err := s.b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/json"}); err != nil {
		return fmt.Errorf("store payload %s: %w", key, s.classify(ctx, err))
	}
	return nil
}

// PutIfAbsent writes data unless key exists (ErrExists then): the store's
// conditional write (WriterOptions.IfNotExist).
func (s *Bucket) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	s.create.Lock()
	defer s.create.Unlock()
	err := s.b.WriteAll(ctx, key, data, &blob.WriterOptions{ContentType: "application/json", IfNotExist: true})
	if gcerrors.Code(err) == gcerrors.FailedPrecondition {
		return fmt.Errorf("store payload %s: %w", key, ErrExists)
	}
	if err != nil {
		return fmt.Errorf("store payload %s: %w", key, s.classify(ctx, err))
	}
	return nil
}

// Get reads a payload whole.
func (s *Bucket) Get(ctx context.Context, key string) ([]byte, error) {
	if err := CheckKey(key); err != nil {
		return nil, err
	}
	r, err := s.b.NewReader(ctx, key, nil)
	if err != nil {
		if gcerrors.Code(err) == gcerrors.NotFound {
			return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
		}
		return nil, fmt.Errorf("read payload %s: %w", key, s.classify(ctx, err))
	}
	defer func() { _ = r.Close() }() // read-only: ReadAll's error is the one that counts
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, fmt.Errorf("read payload %s: %w", key, s.classify(ctx, err))
	}
	return data, nil
}

// classify wraps a store failure in ErrUnavailable unless the caller's
// context ended (then the context's error is what happened).
func (s *Bucket) classify(ctx context.Context, err error) error {
	if ctxErr := ctx.Err(); ctxErr != nil {
		return fmt.Errorf("%w (%w)", ctxErr, err)
	}
	return fmt.Errorf("%w: %w", ErrUnavailable, err)
}

// ErrNoStore is the error of every call on Missing.
var ErrNoStore = errors.New("no payload store configured")

// Missing is the Store of a part built without one (a test's API that runs
// no prewarm job): every call fails with ErrNoStore.
var Missing Store = missing{}

type missing struct{}

func (missing) Put(context.Context, string, []byte) error         { return ErrNoStore }
func (missing) PutIfAbsent(context.Context, string, []byte) error { return ErrNoStore }
func (missing) Get(context.Context, string) ([]byte, error)       { return nil, ErrNoStore }
