package payload

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

	"gocloud.dev/blob"
	"gocloud.dev/gcerrors"
)

// ListAfter answers up to limit keys under prefix that sort after after
// ("" from the first), in the bucket's order: lexicographic by key on
// every driver (S3 ListObjectsV2, GCS, fileblob), which is what a
// time-ordered key layout pages by.
func (s *Bucket) ListAfter(ctx context.Context, prefix, after string, limit int) ([]string, error) {
	it := s.b.List(&blob.ListOptions{Prefix: prefix})
	var out []string
	for len(out) < limit {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("list payloads %s: %w", prefix, s.classify(ctx, err))
		}
		if obj.IsDir || obj.Key <= after {
			continue
		}
		out = append(out, obj.Key)
	}
	return out, nil
}

// Dirs answers the "directories" right under prefix (which ends in
// "/"), each with its trailing "/", sorted.
func (s *Bucket) Dirs(ctx context.Context, prefix string) ([]string, error) {
	it := s.b.List(&blob.ListOptions{Prefix: prefix, Delimiter: "/"})
	var out []string
	for {
		obj, err := it.Next(ctx)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return out, fmt.Errorf("list payload dirs %s: %w", prefix, s.classify(ctx, err))
		}
		if obj.IsDir {
			out = append(out, obj.Key)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Delete removes key; a missing key is not an error.
func (s *Bucket) Delete(ctx context.Context, key string) error {
	if err := CheckKey(key); err != nil {
		return err
	}
	err := s.b.Delete(ctx, key)
	if err == nil || gcerrors.Code(err) == gcerrors.NotFound {
		return nil
	}
	return fmt.Errorf("delete payload %s: %w", key, s.classify(ctx, err))
}
