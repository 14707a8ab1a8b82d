// Package codec encrypts what cdnflow stores outside its own processes:
// Temporal payloads (workflow inputs and results, memos, heartbeat
// details, update and query arguments; prewarm headers carry origin tokens
// and distribution callbacks carry URLs with tokens) and the objects of the
// payload store (URL lists, per-pair outcomes).
//
// It is a Temporal SDK payload codec (go.temporal.io/sdk/converter
// PayloadCodec) doing AES-256-GCM (crypto/aes, crypto/cipher: NIST SP
// 800-38D) with a random 96-bit nonce per payload. An encrypted payload has
// the metadata encoding "binary/encrypted" and the id of the key that
// sealed it ("encryption-key-id"), so keys rotate: a Ring holds several
// keys, encrypts with its active one and decrypts with any. Payloads that
// are not encrypted (recorded histories, data written before a key was
// configured) are passed through unchanged by Decode.
package codec

import (
	"bufio"
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"os"
	"regexp"
	"strings"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
	"google.golang.org/protobuf/proto"
)

const (
	// Encoding is the metadata "encoding" of an encrypted payload.
	Encoding = "binary/encrypted"
	// MetadataKeyID names the key that sealed a payload.
	MetadataKeyID = "encryption-key-id"
	// KeySize is the length of an AES-256 key in bytes.
	KeySize = 32
)

// ErrUnknownKey means a payload was sealed with a key the Ring does not
// hold (a key removed too early, or another deployment's data).
var ErrUnknownKey = errors.New("payload sealed with an unknown key")

var keyIDPattern = regexp.MustCompile(`^[A-Za-z0-9._-]{1,64}$`)

// Ring is a set of AES-256-GCM keys by id: Active seals, every key opens.
// It is safe for concurrent use. The zero value is not usable; build one
// with ParseRing, LoadRing or NewRing.
type Ring struct {
	active string
	aeads  map[string]cipher.AEAD
	order  []string
}

// NewRing builds a Ring from ids and 32-byte keys, the first one active.
// Errors: no key, a bad id (1-64 of [A-Za-z0-9._-]), a duplicate id, a key
// of another length.
func NewRing(ids []string, keys [][]byte) (*Ring, error) {
	if len(ids) == 0 || len(ids) != len(keys) {
		return nil, errors.New("payload key ring: no key")
	}
	r := &Ring{active: ids[0], aeads: map[string]cipher.AEAD{}}
	for i, id := range ids {
		if !keyIDPattern.MatchString(id) {
			return nil, fmt.Errorf("payload key id %q: want 1-64 of A-Z a-z 0-9 . _ -", id)
		}
		if _, dup := r.aeads[id]; dup {
			return nil, fmt.Errorf("payload key id %q given twice", id)
		}
		if len(keys[i]) != KeySize {
			return nil, fmt.Errorf("payload key %q: %d bytes, want %d (AES-256)", id, len(keys[i]), KeySize)
		}
		block, err := aes.NewCipher(keys[i])
		if err != nil {
			return nil, fmt.Errorf("payload key %q: %w", id, err)
		}
		aead, err := cipher.NewGCM(block)
		if err != nil {
			return nil, fmt.Errorf("payload key %q: %w", id, err)
		}
		r.aeads[id] = aead
		r.order = append(r.order, id)
	}
	return r, nil
}

// ParseRing reads a key ring's text: one key a line, "ID:BASE64" where
// BASE64 is 32 bytes in standard base64 (`openssl rand -base64 32`);
// blank lines and lines starting with # are skipped. The first key is the
// active one; the others only decrypt (rotation: docs/operations.md,
// "Secrets at rest and the codec"). Errors name the line, never the key.
func ParseRing(text []byte) (*Ring, error) {
	var ids []string
	var keys [][]byte
	sc := bufio.NewScanner(bytes.NewReader(text))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		id, b64, ok := strings.Cut(line, ":")
		if !ok {
			return nil, fmt.Errorf("payload key line %d: want ID:BASE64", n)
		}
		key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b64))
		if err != nil {
			return nil, fmt.Errorf("payload key line %d: key is not standard base64", n)
		}
		ids = append(ids, strings.TrimSpace(id))
		keys = append(keys, key)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("payload key ring: %w", err)
	}
	return NewRing(ids, keys)
}

// LoadRing reads a key ring file (ParseRing's format). A file that others
// (not the owner, not its group: a Kubernetes Secret volume with fsGroup)
// may read or write is refused, as ssh refuses such a private key.
func LoadRing(path string) (*Ring, error) {
	st, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("payload key file: %w", err)
	}
	if st.Mode().Perm()&0o007 != 0 {
		return nil, fmt.Errorf("payload key file %s: mode %04o: others may read it; want 0600 or 0640 (chmod 600)", path, st.Mode().Perm())
	}
	text, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("payload key file: %w", err)
	}
	r, err := ParseRing(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return r, nil
}

// NewKeyLine returns a fresh "ID:BASE64" key line (32 random bytes).
func NewKeyLine(id string) (string, error) {
	if !keyIDPattern.MatchString(id) {
		return "", fmt.Errorf("payload key id %q: want 1-64 of A-Z a-z 0-9 . _ -", id)
	}
	key := make([]byte, KeySize)
	if _, err := rand.Read(key); err != nil {
		return "", fmt.Errorf("payload key: %w", err)
	}
	return id + ":" + base64.StdEncoding.EncodeToString(key), nil
}

// CreateKeyFile writes a key ring file with one fresh key (id "k1") at
// path, mode 0600, unless the file exists. It reports whether it created
// the file; `cdnflow dev` calls it on its first start.
func CreateKeyFile(path string) (bool, error) {
	line, err := NewKeyLine("k1")
	if err != nil {
		return false, err
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, os.ErrExist) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("create payload key file: %w", err)
	}
	text := "# cdnflow payload key ring: ID:BASE64 (32 bytes), the first key encrypts, all decrypt\n" + line + "\n"
	if _, err := f.WriteString(text); err != nil {
		_ = f.Close()
		return false, fmt.Errorf("write payload key file: %w", err)
	}
	if err := f.Close(); err != nil {
		return false, fmt.Errorf("write payload key file: %w", err)
	}
	return true, nil
}

// Active is the id of the key that seals.
func (r *Ring) Active() string { return r.active }

// IDs lists the ring's key ids, the active one first.
func (r *Ring) IDs() []string { return append([]string(nil), r.order...) }

// Seal encrypts plaintext with the active key: nonce || ciphertext+tag,
// the key id bound as additional data.
func (r *Ring) Seal(plaintext []byte) (keyID string, sealed []byte, err error) {
	aead := r.aeads[r.active]
	nonce := make([]byte, aead.NonceSize(), aead.NonceSize()+len(plaintext)+aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", nil, fmt.Errorf("payload nonce: %w", err)
	}
	return r.active, aead.Seal(nonce, nonce, plaintext, []byte(r.active)), nil
}

// Open decrypts what Seal returned under keyID. Errors: ErrUnknownKey, or
// an authentication failure (a changed or truncated payload).
func (r *Ring) Open(keyID string, sealed []byte) ([]byte, error) {
	aead, ok := r.aeads[keyID]
	if !ok {
		return nil, fmt.Errorf("%w %q (the ring holds %s)", ErrUnknownKey, keyID, strings.Join(r.order, ", "))
	}
	if len(sealed) < aead.NonceSize()+aead.Overhead() {
		return nil, fmt.Errorf("sealed payload of %d bytes is too short", len(sealed))
	}
	n := aead.NonceSize()
	plain, err := aead.Open(nil, sealed[:n], sealed[n:], []byte(keyID))
	if err != nil {
		return nil, fmt.Errorf("open payload sealed with key %q: %w", keyID, err)
	}
	return plain, nil
}

// Codec is the Temporal payload codec of a Ring.
type Codec struct{ Ring *Ring }

var _ converter.PayloadCodec = Codec{}

// Encode seals each payload whole (metadata and data) into a new payload
// with encoding Encoding and the key id; payloads already sealed are kept.
func (c Codec) Encode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if IsSealed(p) {
			out[i] = p
			continue
		}
		plain, err := proto.Marshal(p)
		if err != nil {
			return nil, fmt.Errorf("encode payload: %w", err)
		}
		id, sealed, err := c.Ring.Seal(plain)
		if err != nil {
			return nil, err
		}
		out[i] = &commonpb.Payload{
			Metadata: map[string][]byte{converter.MetadataEncoding: []byte(Encoding), MetadataKeyID: []byte(id)},
			Data:     sealed,
		}
	}
	return out, nil
}

// Decode opens sealed payloads and passes every other one through as it
// is (recorded histories, data from before encryption was on).
func (c Codec) Decode(payloads []*commonpb.Payload) ([]*commonpb.Payload, error) {
	out := make([]*commonpb.Payload, len(payloads))
	for i, p := range payloads {
		if !IsSealed(p) {
			out[i] = p
			continue
		}
		plain, err := c.Ring.Open(string(p.GetMetadata()[MetadataKeyID]), p.GetData())
		if err != nil {
			return nil, err
		}
		inner := &commonpb.Payload{}
		if err := proto.Unmarshal(plain, inner); err != nil {
			return nil, fmt.Errorf("decode payload: %w", err)
		}
		out[i] = inner
	}
	return out, nil
}

// IsSealed reports whether p is a payload this package encrypted.
func IsSealed(p *commonpb.Payload) bool {
	return string(p.GetMetadata()[converter.MetadataEncoding]) == Encoding
}

// blobMagic starts every object SealBlob returns; the key id and a
// newline follow, then Seal's output. The payload store's plaintext
// objects are JSON, which never starts so.
const blobMagic = "cdnflow-sealed-v1:"

// SealBlob encrypts an object of the payload store with the active key.
func (r *Ring) SealBlob(plain []byte) ([]byte, error) {
	id, sealed, err := r.Seal(plain)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(blobMagic)+len(id)+1+len(sealed))
	out = append(append(append(append(out, blobMagic...), id...), '\n'), sealed...)
	return out, nil
}

// OpenBlob decrypts what SealBlob returned; an object that does not start
// with its mark (written before encryption was on) is returned unchanged.
func (r *Ring) OpenBlob(data []byte) ([]byte, error) {
	rest, ok := bytes.CutPrefix(data, []byte(blobMagic))
	if !ok {
		return data, nil
	}
	id, sealed, ok := bytes.Cut(rest, []byte{'\n'})
	if !ok {
		return nil, errors.New("sealed object has no key id")
	}
	return r.Open(string(id), sealed)
}
