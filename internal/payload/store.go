// Package payload is the claim-check store: large inputs (URL lists) and
// per-pair results live here, and workflows carry only their keys, which
// keeps every Temporal payload far below its 2 MB limit.
package payload

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// ErrNotFound means no payload has that key.
var ErrNotFound = errors.New("payload not found")

// ErrExists is returned by PutIfAbsent when the key is taken.
var ErrExists = errors.New("payload exists")

// Store keeps immutable blobs by key. Keys are slash-separated paths of
// [A-Za-z0-9._-] segments.
type Store interface {
	Put(ctx context.Context, key string, data []byte) error
	PutIfAbsent(ctx context.Context, key string, data []byte) error
	Get(ctx context.Context, key string) ([]byte, error)
}

// FS stores payloads as files under Dir. In a cluster, Dir must be a volume
// every worker and API process shares.
type FS struct {
	Dir string
}

func (s FS) path(key string) (string, error) {
	if key == "" || strings.HasPrefix(key, "/") {
		return "", fmt.Errorf("invalid payload key %q", key)
	}
	for _, seg := range strings.Split(key, "/") {
		if seg == "" || seg == "." || seg == ".." || strings.Trim(seg, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != "" {
			return "", fmt.Errorf("invalid payload key %q", key)
		}
	}
	return filepath.Join(s.Dir, filepath.FromSlash(key)), nil
}

// Put writes data atomically (temp file + rename), so readers never see a
// partial payload even if the writer crashes.
func (s FS) Put(ctx context.Context, key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("payload dir: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(p), ".tmp-*")
	if err != nil {
		return fmt.Errorf("payload temp: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("write payload %s: %w", key, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("close payload %s: %w", key, err)
	}
	if err := os.Rename(tmp.Name(), p); err != nil {
		return fmt.Errorf("store payload %s: %w", key, err)
	}
	return nil
}

// PutIfAbsent writes data unless key exists (ErrExists then).
func (s FS) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	p, err := s.path(key)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return fmt.Errorf("payload dir: %w", err)
	}
	tmp := p + ".new"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return fmt.Errorf("write payload %s: %w", key, err)
	}
	defer os.Remove(tmp)
	// link fails if the target exists: an atomic create-if-absent.
	if err := os.Link(tmp, p); err != nil {
		if errors.Is(err, os.ErrExist) {
			return ErrExists
		}
		return fmt.Errorf("store payload %s: %w", key, err)
	}
	return nil
}

// Get reads a payload.
func (s FS) Get(ctx context.Context, key string) ([]byte, error) {
	p, err := s.path(key)
	if err != nil {
		return nil, err
	}
	data, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("%s: %w", key, ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("read payload %s: %w", key, err)
	}
	return data, nil
}
