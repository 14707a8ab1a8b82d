package inventory

import (
	"net"
	"testing"
)

// Inventory files: never a panic; an accepted inventory has unique ids and
// valid addresses.
func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte(`{"edges":[{"id":"A1","region":"us","country":"canada","address":"h:1","adminAddress":"h:2","secretFile":"s"}]}`))
	f.Add([]byte(`edges: [{id: A1, region: us}]`))
	f.Fuzz(func(t *testing.T, data []byte) {
		inv, err := Parse(data)
		if err != nil {
			return
		}
		seen := map[string]bool{}
		for _, e := range inv.Edges {
			if seen[e.ID] {
				t.Fatalf("duplicate id %s accepted", e.ID)
			}
			seen[e.ID] = true
			if _, _, err := net.SplitHostPort(e.Address); err != nil {
				t.Fatalf("bad address %q accepted", e.Address)
			}
		}
	})
}
