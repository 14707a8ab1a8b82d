package inventory

import (
	"encoding/json"
	"net"
	"reflect"
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
			if got, ok := inv.Get(e.ID); !ok || !reflect.DeepEqual(got, e) {
				t.Fatalf("Get(%s) = %+v, %v; want the parsed edge %+v", e.ID, got, ok, e)
			}
		}
		// What was accepted survives a round trip through the file format.
		out, err := json.Marshal(inv)
		if err != nil {
			t.Fatalf("encode an accepted inventory: %v", err)
		}
		again, err := Parse(out)
		if err != nil {
			t.Fatalf("an accepted inventory, written back, is refused: %v\n%s", err, out)
		}
		if !reflect.DeepEqual(again.Edges, inv.Edges) {
			t.Fatalf("round trip changed the edges:\n%+v\n%+v", inv.Edges, again.Edges)
		}
	})
}
