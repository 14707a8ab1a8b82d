package payload

import (
	"context"
	"errors"
	"testing"
)

func TestFSStore(t *testing.T) {
	s := FS{Dir: t.TempDir()}
	ctx := context.Background()
	if err := s.Put(ctx, "prewarm/abc/urls.json", []byte("one")); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "prewarm/abc/urls.json")
	if err != nil || string(got) != "one" {
		t.Fatalf("get = %q %v", got, err)
	}
	if err := s.PutIfAbsent(ctx, "prewarm/abc/urls.json", []byte("two")); !errors.Is(err, ErrExists) {
		t.Fatalf("put-if-absent on existing = %v", err)
	}
	if err := s.PutIfAbsent(ctx, "prewarm/def/urls.json", []byte("two")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Get(ctx, "prewarm/none"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing = %v", err)
	}
	for _, bad := range []string{"", "/abs", "a/../b", "a//b", "a/b c", "a/./b"} {
		if err := s.Put(ctx, bad, nil); err == nil {
			t.Errorf("key %q accepted", bad)
		}
	}
}
