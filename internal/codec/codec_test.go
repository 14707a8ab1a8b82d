package codec

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	commonpb "go.temporal.io/api/common/v1"
	"go.temporal.io/sdk/converter"
)

const secret = "Bearer origin-token-7f3a"

func ring(t *testing.T, lines ...string) *Ring {
	t.Helper()
	r, err := ParseRing([]byte(strings.Join(lines, "\n")))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func keyLine(t *testing.T, id string) string {
	t.Helper()
	l, err := NewKeyLine(id)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

func TestCodecSealsAndRotates(t *testing.T) {
	k1, k2 := keyLine(t, "k1"), keyLine(t, "k2")
	old := Codec{Ring: ring(t, k1)}
	dc := converter.GetDefaultDataConverter()
	plain, err := dc.ToPayloads(map[string]string{"Authorization": secret})
	if err != nil {
		t.Fatal(err)
	}
	sealed, err := old.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed[0].Data, []byte(secret)) || !IsSealed(sealed[0]) || string(sealed[0].Metadata[MetadataKeyID]) != "k1" {
		t.Fatalf("sealed payload: %v", sealed[0])
	}
	// Rotation: the new ring seals with k2 and still opens k1's payloads.
	rotated := Codec{Ring: ring(t, "# rotated", k2, "", k1)}
	back, err := rotated.Decode(sealed)
	if err != nil {
		t.Fatal(err)
	}
	var got map[string]string
	if err := dc.FromPayload(back[0], &got); err != nil || got["Authorization"] != secret {
		t.Fatalf("decoded %v, %v", got, err)
	}
	again, err := rotated.Encode(plain.Payloads)
	if err != nil {
		t.Fatal(err)
	}
	if id := string(again[0].Metadata[MetadataKeyID]); id != "k2" {
		t.Fatalf("rotated ring sealed with %q, want k2", id)
	}
	// The old ring does not hold k2.
	if _, err := old.Decode(again); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("old ring on k2 payload: %v", err)
	}
	// Two seals of the same payload differ (random nonce).
	twice, _ := rotated.Encode(plain.Payloads)
	if bytes.Equal(twice[0].Data, again[0].Data) {
		t.Fatal("same ciphertext twice: nonce reused")
	}
}

func TestCodecPassesPlainPayloadsThrough(t *testing.T) {
	c := Codec{Ring: ring(t, keyLine(t, "k1"))}
	plain := &commonpb.Payload{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: []byte(`"x"`)}
	out, err := c.Decode([]*commonpb.Payload{plain})
	if err != nil || out[0] != plain {
		t.Fatalf("plain payload not passed through: %v %v", out, err)
	}
}

func TestCodecRefusesTamperedPayload(t *testing.T) {
	c := Codec{Ring: ring(t, keyLine(t, "k1"))}
	sealed, err := c.Encode([]*commonpb.Payload{{Data: []byte("x")}})
	if err != nil {
		t.Fatal(err)
	}
	sealed[0].Data[len(sealed[0].Data)-1] ^= 1
	if _, err := c.Decode(sealed); err == nil {
		t.Fatal("tampered payload decoded")
	}
	sealed[0].Data[len(sealed[0].Data)-1] ^= 1
	sealed[0].Metadata[MetadataKeyID] = []byte("k9")
	if _, err := c.Decode(sealed); !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("unknown key id: %v", err)
	}
}

func TestBlobSealing(t *testing.T) {
	r := ring(t, keyLine(t, "k1"))
	sealed, err := r.SealBlob([]byte(`["http://a/` + secret + `"]`))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, []byte(secret)) {
		t.Fatal("plaintext in sealed blob")
	}
	plain, err := r.OpenBlob(sealed)
	if err != nil || !bytes.Contains(plain, []byte(secret)) {
		t.Fatalf("open: %q %v", plain, err)
	}
	if p, err := r.OpenBlob([]byte(`{"old":1}`)); err != nil || string(p) != `{"old":1}` {
		t.Fatalf("plain blob: %q %v", p, err)
	}
}

func TestParseRingAndKeyFile(t *testing.T) {
	for _, bad := range []string{"", "k1", "k1:notbase64!", "k1:" + strings.Repeat("A", 8), "bad id:" + strings.SplitN(keyLine(t, "x"), ":", 2)[1]} {
		if _, err := ParseRing([]byte(bad)); err == nil {
			t.Errorf("ParseRing(%q) accepted", bad)
		}
	}
	k := keyLine(t, "k1")
	if _, err := ParseRing([]byte(k + "\n" + k)); err == nil {
		t.Error("duplicate id accepted")
	}
	path := filepath.Join(t.TempDir(), "payload.key")
	if created, err := CreateKeyFile(path); err != nil || !created {
		t.Fatalf("create: %v %v", created, err)
	}
	st, err := os.Stat(path)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("key file mode %v %v", st.Mode(), err)
	}
	before, _ := os.ReadFile(path)
	if created, err := CreateKeyFile(path); err != nil || created {
		t.Fatalf("second create: %v %v", created, err)
	}
	after, _ := os.ReadFile(path)
	if !bytes.Equal(before, after) {
		t.Fatal("existing key file overwritten")
	}
	if r, err := LoadRing(path); err != nil || r.Active() != "k1" {
		t.Fatalf("load: %v", err)
	}
	if err := os.Chmod(path, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadRing(path); err == nil {
		t.Fatal("world-readable key file accepted")
	}
}

// BenchmarkSealOpen1KiB is the codec's cost for one 1 KiB payload (a
// prewarm chunk's input is about that size): seal, then open.
func BenchmarkSealOpen1KiB(b *testing.B) {
	line, _ := NewKeyLine("k1")
	r, err := ParseRing([]byte(line))
	if err != nil {
		b.Fatal(err)
	}
	c := Codec{Ring: r}
	in := []*commonpb.Payload{{Metadata: map[string][]byte{"encoding": []byte("json/plain")}, Data: bytes.Repeat([]byte("x"), 1024)}}
	b.SetBytes(1024)
	for b.Loop() {
		sealed, err := c.Encode(in)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := c.Decode(sealed); err != nil {
			b.Fatal(err)
		}
	}
}
