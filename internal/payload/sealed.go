package payload

import (
	"context"
	"fmt"
)

// Sealer encrypts and decrypts the store's objects (internal/codec.Ring):
// OpenBlob returns an object it did not seal unchanged.
type Sealer interface {
	SealBlob(plain []byte) ([]byte, error)
	OpenBlob(data []byte) ([]byte, error)
}

// Sealed is a Bucket whose objects are encrypted at rest: Put and
// PutIfAbsent store what Sealer.SealBlob returns, Get opens it again, and
// objects written in plain text (before a key was configured) stay
// readable. A nil Sealer stores plain text. URL, Probe and Close are the
// Bucket's.
type Sealed struct {
	*Bucket
	Sealer Sealer
}

// NewSealed wraps b; sealer may be nil (no encryption).
func NewSealed(b *Bucket, sealer Sealer) *Sealed { return &Sealed{Bucket: b, Sealer: sealer} }

var _ Store = (*Sealed)(nil)

func (s *Sealed) seal(key string, data []byte) ([]byte, error) {
	if s.Sealer == nil {
		return data, nil
	}
	out, err := s.Sealer.SealBlob(data)
	if err != nil {
		return nil, fmt.Errorf("seal payload %s: %w", key, err)
	}
	return out, nil
}

// Put seals data and writes it under key (Bucket.Put).
func (s *Sealed) Put(ctx context.Context, key string, data []byte) error {
	out, err := s.seal(key, data)
	if err != nil {
		return err
	}
	return s.Bucket.Put(ctx, key, out)
}

// PutIfAbsent seals data and writes it unless key exists (ErrExists then).
func (s *Sealed) PutIfAbsent(ctx context.Context, key string, data []byte) error {
	out, err := s.seal(key, data)
	if err != nil {
		return err
	}
	return s.Bucket.PutIfAbsent(ctx, key, out)
}

// Get reads the object under key and opens it; plain objects are returned
// as they are. A payload sealed with a key the ring lacks is an error (not
// ErrUnavailable: retrying does not help).
func (s *Sealed) Get(ctx context.Context, key string) ([]byte, error) {
	data, err := s.Bucket.Get(ctx, key)
	if err != nil || s.Sealer == nil {
		return data, err
	}
	plain, err := s.Sealer.OpenBlob(data)
	if err != nil {
		return nil, fmt.Errorf("open payload %s: %w", key, err)
	}
	return plain, nil
}
