package payload

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/cdnflow/cdnflow/internal/codec"
)

func testRing(t *testing.T, lines ...string) *codec.Ring {
	t.Helper()
	r, err := codec.ParseRing([]byte(joinLines(lines)))
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func joinLines(lines []string) string {
	var b bytes.Buffer
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	return b.String()
}

// Objects are sealed on disk, read back whole, plain objects stay
// readable, and a rotated ring reads the old key's objects and writes with
// the new one.
func TestSealedStoreOnDisk(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	b, err := OpenAndProbe(ctx, FileURL(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = b.Close() }()
	k1, _ := codec.NewKeyLine("k1")
	k2, _ := codec.NewKeyLine("k2")
	old := NewSealed(b, testRing(t, k1))
	const secret = "http://shop.test/private-asset-93bd.js"
	if _, err := PutPrewarmURLs(ctx, old, "job-1", []string{secret}); err != nil {
		t.Fatal(err)
	}
	if err := b.Put(ctx, "legacy/plain.json", []byte(`["`+secret+`"]`)); err != nil {
		t.Fatal(err)
	}
	onDisk, err := os.ReadFile(filepath.Join(dir, PrewarmURLsKey("job-1")))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(onDisk, []byte(secret)) {
		t.Fatalf("object on disk holds the URL in plain text: %q", onDisk)
	}
	rotated := NewSealed(b, testRing(t, k2, k1))
	urls, err := PrewarmURLs(ctx, rotated, PrewarmURLsKey("job-1"))
	if err != nil || len(urls) != 1 || urls[0] != secret {
		t.Fatalf("rotated ring reads k1's object: %v %v", urls, err)
	}
	if got, err := rotated.Get(ctx, "legacy/plain.json"); err != nil || !bytes.Contains(got, []byte(secret)) {
		t.Fatalf("plain object: %q %v", got, err)
	}
	if err := rotated.PutIfAbsent(ctx, "new/obj.json", []byte(secret)); err != nil {
		t.Fatal(err)
	}
	if _, err := old.Get(ctx, "new/obj.json"); err == nil {
		t.Fatal("the old ring opened an object sealed with k2")
	}
	if got, err := rotated.Get(ctx, "new/obj.json"); err != nil || string(got) != secret {
		t.Fatalf("k2 object: %q %v", got, err)
	}
}
