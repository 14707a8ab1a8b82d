package activities

import (
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/cdnflow/cdnflow/inventory"
)

// fakeEdge is an HTTP server in place of a Varnish edge: handler answers
// each request, and every request is recorded as "METHOD host path".
type fakeEdge struct {
	mu   sync.Mutex
	seen []string
	srv  *httptest.Server
}

func newFakeEdge(t *testing.T, handler http.HandlerFunc) (*fakeEdge, *inventory.Inventory) {
	t.Helper()
	f := &fakeEdge{}
	f.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.seen = append(f.seen, r.Method+" "+r.Host+" "+r.URL.RequestURI())
		f.mu.Unlock()
		handler(w, r)
	}))
	t.Cleanup(f.srv.Close)
	addr := strings.TrimPrefix(f.srv.URL, "http://")
	inv, err := inventory.New([]inventory.Edge{{ID: "E1", Region: "us", Country: "japan", Address: addr, AdminAddress: "127.0.0.1:1", SecretFile: fakeSecret(t)}})
	if err != nil {
		t.Fatal(err)
	}
	return f, inv
}

// fakeSecret is a CLI secret file for a fake edge: the key of the control
// token its control requests carry.
func fakeSecret(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "edge.secret")
	if err := os.WriteFile(path, []byte("fake edge secret\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// count is how many recorded requests start with prefix.
func (f *fakeEdge) count(prefix string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, s := range f.seen {
		if strings.HasPrefix(s, prefix) {
			n++
		}
	}
	return n
}
