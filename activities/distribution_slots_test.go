package activities

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cdnflow/cdnflow/inventory"
)

// TestSiteChangesShareTheWorkersBound: changes applied at once work on at
// most SiteConcurrency edges together, every edge of each is reached
// once, and two domains start at different edges (the burst spreads).
func TestSiteChangesShareTheWorkersBound(t *testing.T) {
	var edges []inventory.Edge
	for i := range 200 {
		edges = append(edges, inventory.Edge{ID: fmt.Sprintf("E%03d", i), Region: "us", Country: "japan",
			Address: "127.0.0.1:1", AdminAddress: "127.0.0.1:2", SecretFile: "s"})
	}
	inv, err := inventory.New(edges)
	if err != nil {
		t.Fatal(err)
	}
	a := &Distribution{Inventory: inv, SiteConcurrency: 5}
	ids := inv.IDs()
	var inFlight, most atomic.Int64
	var mu sync.Mutex
	reached := map[string]int{}
	first := map[string]string{}
	var wg sync.WaitGroup
	for _, domain := range []string{"a.example.com", "b.example.com", "c.example.com"} {
		wg.Go(func() {
			errs := a.onEdges(context.Background(), ids, domain, func(e inventory.Edge) error {
				n := inFlight.Add(1)
				defer inFlight.Add(-1)
				for m := most.Load(); n > m && !most.CompareAndSwap(m, n); m = most.Load() {
				}
				mu.Lock()
				reached[domain+" "+e.ID]++
				if first[domain] == "" {
					first[domain] = e.ID
				}
				mu.Unlock()
				time.Sleep(100 * time.Microsecond)
				return nil
			})
			for i, err := range errs {
				if err != nil {
					t.Errorf("%s on %s: %v", domain, ids[i], err)
				}
			}
		})
	}
	wg.Wait()
	if m := most.Load(); m > 5 || m < 2 {
		t.Errorf("at most %d edges at once, want 2 to 5 (SiteConcurrency 5)", m)
	}
	if len(reached) != 3*len(ids) {
		t.Errorf("reached %d domain-edge pairs, want %d", len(reached), 3*len(ids))
	}
	for k, n := range reached {
		if n != 1 {
			t.Errorf("%s reached %d times", k, n)
		}
	}
	if first["a.example.com"] == first["b.example.com"] && first["b.example.com"] == first["c.example.com"] {
		t.Errorf("every domain started at %s: a burst would queue on the same edges", first["a.example.com"])
	}
}
