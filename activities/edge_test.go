package activities

import (
	"net/http"
	"net/http/httptest"
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
	inv, err := inventory.New([]inventory.Edge{{ID: "E1", Region: "us", Country: "japan", Address: addr, AdminAddress: "127.0.0.1:1", SecretFile: "/nonexistent/secret"}})
	if err != nil {
		t.Fatal(err)
	}
	return f, inv
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
