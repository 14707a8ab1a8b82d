package payload_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/internal/payload"
	"github.com/cdnflow/cdnflow/internal/s3test"
)

// stores opens one Bucket per backend that every store test runs against:
// a directory (file://) and a real S3 gateway (s3://, versitygw started by
// the test). open opens another Bucket on the same store, as a second
// process would.
func stores(t *testing.T) map[string]func() *payload.Bucket {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "payloads")
	out := map[string]func() *payload.Bucket{"file": func() *payload.Bucket { return open(t, payload.FileURL(dir)) }}
	if testing.Short() {
		t.Log("s3 store: skipped under -short (starts versitygw)")
		return out
	}
	srv := s3test.Start(t)
	srv.CreateBucket("payloads")
	out["s3"] = func() *payload.Bucket { return open(t, srv.URL("payloads")) }
	return out
}

func open(t *testing.T, url string) *payload.Bucket {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	s, err := payload.OpenAndProbe(ctx, url)
	if err != nil {
		t.Fatalf("open %s: %v", url, err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestStore(t *testing.T) {
	for name, openStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore()
			ctx := context.Background()
			if err := s.Put(ctx, "prewarm/abc/urls.json", []byte("one")); err != nil {
				t.Fatal(err)
			}
			got, err := s.Get(ctx, "prewarm/abc/urls.json")
			if err != nil || string(got) != "one" {
				t.Fatalf("get = %q %v", got, err)
			}
			if err := s.PutIfAbsent(ctx, "prewarm/abc/urls.json", []byte("two")); !errors.Is(err, payload.ErrExists) {
				t.Fatalf("put-if-absent on existing = %v", err)
			}
			if got, _ := s.Get(ctx, "prewarm/abc/urls.json"); string(got) != "one" {
				t.Fatalf("a refused put-if-absent changed the payload: %q", got)
			}
			if err := s.Put(ctx, "prewarm/abc/urls.json", []byte("three")); err != nil {
				t.Fatalf("put over an existing key: %v", err)
			}
			if got, _ := s.Get(ctx, "prewarm/abc/urls.json"); string(got) != "three" {
				t.Fatalf("after put = %q", got)
			}
			if err := s.PutIfAbsent(ctx, "prewarm/def/urls.json", []byte("two")); err != nil {
				t.Fatal(err)
			}
			if _, err := s.Get(ctx, "prewarm/none"); !errors.Is(err, payload.ErrNotFound) || errors.Is(err, payload.ErrUnavailable) {
				t.Fatalf("missing = %v", err)
			}
			for _, bad := range []string{"", "/abs", "a/../b", "a//b", "a/b c", "a/./b", "a/b/"} {
				if err := s.Put(ctx, bad, nil); err == nil {
					t.Errorf("key %q accepted", bad)
				}
			}
		})
	}
}

// Payloads of any size a URL list reaches come back byte for byte, through
// both kinds of write (12 MB is past the S3 upload's multipart threshold).
func TestStoreSizes(t *testing.T) {
	for name, openStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore()
			ctx := context.Background()
			for _, n := range []int{0, 1, 64 << 10, 12 << 20} {
				data := bytes.Repeat([]byte("0123456789abcdef"), n/16+1)[:n]
				if err := s.Put(ctx, fmt.Sprintf("size/put-%d", n), data); err != nil {
					t.Fatalf("put %d bytes: %v", n, err)
				}
				if err := s.PutIfAbsent(ctx, fmt.Sprintf("size/new-%d", n), data); err != nil {
					t.Fatalf("put-if-absent %d bytes: %v", n, err)
				}
				for _, k := range []string{"put", "new"} {
					got, err := s.Get(ctx, fmt.Sprintf("size/%s-%d", k, n))
					if err != nil || !bytes.Equal(got, data) {
						t.Fatalf("%s %d bytes: got %d bytes, %v", k, n, len(got), err)
					}
				}
				if err := s.PutIfAbsent(ctx, fmt.Sprintf("size/new-%d", n), []byte("x")); !errors.Is(err, payload.ErrExists) {
					t.Fatalf("put-if-absent over %d bytes = %v", n, err)
				}
			}
		})
	}
}

// Write-once holds between processes: of many writers racing to create one
// key with different data, exactly one wins and every reader sees its data.
// On S3 each writer has a Bucket of its own (the store's conditional write
// decides); file:// is atomic within one process (one Bucket).
func TestPutIfAbsentRace(t *testing.T) {
	for name, openStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			const writers = 8
			buckets := make([]*payload.Bucket, writers)
			shared := openStore()
			for i := range buckets {
				buckets[i] = shared
				if name == "s3" {
					buckets[i] = openStore()
				}
			}
			for round := range 5 {
				key := fmt.Sprintf("race/%d/urls.json", round)
				var wg sync.WaitGroup
				errs := make([]error, writers)
				for i := range writers {
					wg.Add(1)
					go func() {
						defer wg.Done()
						errs[i] = buckets[i].PutIfAbsent(context.Background(), key, []byte(fmt.Sprintf("writer-%d", i)))
					}()
				}
				wg.Wait()
				winner := -1
				for i, err := range errs {
					switch {
					case err == nil && winner >= 0:
						t.Fatalf("round %d: writers %d and %d both created %s", round, winner, i, key)
					case err == nil:
						winner = i
					case !errors.Is(err, payload.ErrExists):
						t.Fatalf("round %d writer %d: %v", round, i, err)
					}
				}
				got, err := shared.Get(context.Background(), key)
				if winner < 0 || err != nil || string(got) != fmt.Sprintf("writer-%d", winner) {
					t.Fatalf("round %d: winner %d, stored %q %v", round, winner, got, err)
				}
			}
		})
	}
}

// On every store: an Idempotency-Key reused after its job's
// retention gets a URL list of its own, never the old one.
func TestPutPrewarmURLsOnEveryStore(t *testing.T) {
	for name, openStore := range stores(t) {
		t.Run(name, func(t *testing.T) {
			s := openStore()
			ctx := context.Background()
			first, err := payload.PutPrewarmURLs(ctx, s, "req-1", []string{"http://a.example/1"})
			if err != nil || first != payload.PrewarmURLsKey("req-1") {
				t.Fatalf("first list: %s %v", first, err)
			}
			second, err := payload.PutPrewarmURLs(ctx, s, "req-1", []string{"http://a.example/2"})
			if err != nil || second != "prewarm/req-1/urls-2.json" {
				t.Fatalf("second list: %s %v", second, err)
			}
			again, err := payload.PutPrewarmURLs(ctx, s, "req-1", []string{"http://a.example/1"})
			if err != nil || again != first {
				t.Fatalf("first list again: %s %v", again, err)
			}
			got, err := payload.PrewarmURLs(ctx, s, second)
			if err != nil || len(got) != 1 || got[0] != "http://a.example/2" {
				t.Fatalf("second list reads %v %v", got, err)
			}
		})
	}
}

func TestFileStoreLayout(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "payloads")
	s := open(t, payload.FileURL(dir))
	if err := s.Put(context.Background(), "prewarm/a/urls.json", []byte("[]")); err != nil {
		t.Fatal(err)
	}
	// The payload is a plain file at its key, with no sidecar or temp file
	// left beside it.
	entries, err := os.ReadDir(filepath.Join(dir, "prewarm", "a"))
	if err != nil || len(entries) != 1 || entries[0].Name() != "urls.json" {
		t.Fatalf("files beside the payload: %v %v", entries, err)
	}
	if !strings.HasPrefix(s.URL(), "file://") || !strings.Contains(s.URL(), "metadata=skip") {
		t.Fatalf("completed URL %s", s.URL())
	}
}

// A URL that cannot name a store is refused before anything is opened,
// with an error that names it.
func TestParseURLRefusesBadURLs(t *testing.T) {
	for raw, want := range map[string]string{
		"ftp://bucket":        `scheme "ftp" is not one of file, gs, s3`,
		"azblob://container":  `scheme "azblob" is not one of`,
		"/var/lib/payloads":   `scheme "" is not one of`,
		"s3://":               "no bucket name",
		"s3://b\x7f":          "invalid control character",
		"file://host/dir":     "want file:///absolute/dir",
		"%zz":                 "invalid URL escape",
		"s3://b?region=%zz":   "invalid URL escape",
		"gs://?x=1":           "no bucket name",
		"file:relative/dir":   "want file:///absolute/dir",
		"s3://b?endpoint=%zz": "invalid URL escape",
		"s3://b?colour=blue":  "colour",
	} {
		_, err := payload.Open(context.Background(), raw)
		if err == nil || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "payload-url") {
			t.Errorf("Open(%q) = %v, want an error naming payload-url and %q", raw, err, want)
		}
		if err != nil && strings.Contains(err.Error(), "\n") {
			t.Errorf("Open(%q): error of several lines: %q", raw, err)
		}
	}
}

// A store that does not answer, or a bucket that is not there, fails the
// start probe; a store that goes down makes every call fail with
// ErrUnavailable (never ErrNotFound, which would end a job for good) until
// it is back, with nothing lost.
func TestStoreOutage(t *testing.T) {
	if testing.Short() {
		t.Skip("starts versitygw: skipped under -short")
	}
	srv := s3test.Start(t)
	srv.CreateBucket("payloads")
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := payload.OpenAndProbe(ctx, srv.URL("missing")); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("probe of a missing bucket = %v", err)
	}
	s := open(t, srv.URL("payloads"))
	if err := s.PutIfAbsent(ctx, "prewarm/r/urls.json", []byte(`["u"]`)); err != nil {
		t.Fatal(err)
	}
	srv.Stop()
	if _, err := payload.OpenAndProbe(ctx, srv.URL("payloads")); !errors.Is(err, payload.ErrUnavailable) {
		t.Fatalf("probe of a stopped store = %v, want ErrUnavailable", err)
	}
	if _, err := s.Get(ctx, "prewarm/r/urls.json"); !errors.Is(err, payload.ErrUnavailable) || errors.Is(err, payload.ErrNotFound) {
		t.Fatalf("get while down = %v", err)
	}
	if _, err := s.Get(ctx, "prewarm/none"); !errors.Is(err, payload.ErrUnavailable) || errors.Is(err, payload.ErrNotFound) {
		t.Fatalf("get of a missing key while down = %v", err)
	}
	if err := s.PutIfAbsent(ctx, "prewarm/q/urls.json", []byte("x")); !errors.Is(err, payload.ErrUnavailable) || errors.Is(err, payload.ErrExists) {
		t.Fatalf("put-if-absent while down = %v", err)
	}
	if err := s.Put(ctx, "prewarm/q/edges/E1/0.json", []byte("x")); !errors.Is(err, payload.ErrUnavailable) {
		t.Fatalf("put while down = %v", err)
	}
	srv.Restart()
	got, err := s.Get(ctx, "prewarm/r/urls.json")
	if err != nil || string(got) != `["u"]` {
		t.Fatalf("after restart, same Bucket: %q %v", got, err)
	}
	if err := s.PutIfAbsent(ctx, "prewarm/q/urls.json", []byte("x")); err != nil {
		t.Fatalf("put-if-absent after restart: %v", err)
	}
}

// A directory that cannot be made fails the start probe with its path.
func TestFileStoreUnusableDir(t *testing.T) {
	file := filepath.Join(t.TempDir(), "plain-file")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := payload.OpenAndProbe(context.Background(), payload.FileURL(filepath.Join(file, "payloads")))
	if err == nil || !strings.Contains(err.Error(), "plain-file") {
		t.Fatalf("store under a file = %v", err)
	}
}
