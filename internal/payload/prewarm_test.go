package payload

import (
	"context"
	"slices"
	"testing"
)

// An Idempotency-Key reused after its job's retention starts a new
// job under the same requestID; its URL list must be its own, never the
// old one the store keeps.
func TestPutPrewarmURLsNeverHandsBackAnotherList(t *testing.T) {
	s, err := Open(context.Background(), FileURL(t.TempDir()))
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	put := func(urls ...string) string {
		t.Helper()
		key, err := PutPrewarmURLs(ctx, s, "req-1", urls)
		if err != nil {
			t.Fatal(err)
		}
		got, err := PrewarmURLs(ctx, s, key)
		if err != nil || !slices.Equal(got, urls) {
			t.Fatalf("list under %s = %v %v, want %v", key, got, err, urls)
		}
		return key
	}
	first := put("http://a.example/1")
	if first != PrewarmURLsKey("req-1") {
		t.Fatalf("first list under %s", first)
	}
	if again := put("http://a.example/1"); again != first {
		t.Fatalf("the same list again: %s, want %s", again, first)
	}
	second := put("http://a.example/2", "http://a.example/3")
	third := put("http://a.example/4")
	if second == first || third == first || third == second {
		t.Fatalf("keys %s %s %s: a different list must get its own key", first, second, third)
	}
	if again := put("http://a.example/2", "http://a.example/3"); again != second {
		t.Fatalf("the second list again: %s, want %s", again, second)
	}
	put("http://a.example/1") // the first is intact
}

// The rows of a job with a list of its own never share keys with an
// earlier job's under the same requestID; the first list keeps the old key.
func TestPrewarmDetailKeyPerList(t *testing.T) {
	first := PrewarmDetailKey("prewarm-r", PrewarmURLsKey("r"), "E1", 3)
	if first != "prewarm/prewarm-r/edges/E1/3.json" {
		t.Fatalf("first list's rows under %s", first)
	}
	if again := PrewarmDetailKey("prewarm-r", "prewarm/r/urls-2.json", "E1", 3); again == first || again != "prewarm/prewarm-r/gen-2/edges/E1/3.json" {
		t.Fatalf("second list's rows under %s", again)
	}
}
