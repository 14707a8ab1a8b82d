package inventory

import (
	"strings"
	"testing"
)

const tiered = `
edges:
  - {id: SHD01, region: us, country: united_states, address: "127.0.0.1:7001", adminAddress: "127.0.0.1:7002", secretFile: s0}
  - {id: ATL01, region: us, country: united_states, address: "127.0.0.1:7011", adminAddress: "127.0.0.1:7012", secretFile: s1, parent: SHD01}
  - {id: ATL02, region: us, country: united_states, address: "127.0.0.1:7021", adminAddress: "127.0.0.1:7022", secretFile: s2, parent: SHD01}
  - {id: NRT01, region: jp, country: japan, address: "127.0.0.1:7031", adminAddress: "127.0.0.1:7032", secretFile: s3}
`

func TestTiersParentsAndPrewarmOrder(t *testing.T) {
	inv, err := Parse([]byte(tiered))
	if err != nil {
		t.Fatalf("parse: %v", err)
	}
	if p, ok := inv.ParentOf("ATL02"); !ok || p.ID != "SHD01" {
		t.Fatalf("parent of ATL02 = %+v %v", p, ok)
	}
	if _, ok := inv.ParentOf("SHD01"); ok {
		t.Fatal("a shield has a parent")
	}
	if !inv.IsShield("SHD01") || inv.IsShield("ATL01") || inv.IsShield("NRT01") {
		t.Fatal("IsShield wrong")
	}
	chosen, err := inv.Select(TargetPoP, []string{"NRT01", "ATL02", "ATL01"})
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(idsOf(inv.WithShields(chosen)), ","); got != "SHD01,ATL01,ATL02,NRT01" {
		t.Fatalf("prewarm order = %s, want the shield first", got)
	}
	only, _ := inv.Select(TargetPoP, []string{"SHD01"})
	if got := strings.Join(idsOf(inv.WithShields(only)), ","); got != "SHD01" {
		t.Fatalf("a prewarm of the shield alone = %s", got)
	}
	par := inv.Parents([]string{"SHD01", "ATL01", "NRT01"})
	if len(par) != 1 || par["ATL01"] != "SHD01" {
		t.Fatalf("parents = %v", par)
	}
	if par := inv.Parents([]string{"ATL01", "NRT01"}); len(par) != 0 {
		t.Fatalf("parents without the shield in the purge = %v", par)
	}
}

func TestTiersValidation(t *testing.T) {
	edge := func(id, parent string) string {
		return `{id: ` + id + `, region: us, country: canada, address: "h:1", adminAddress: "h:2", secretFile: s, parent: "` + parent + `"}`
	}
	cases := map[string]struct{ doc, want string }{
		"self":       {`edges: [` + edge("A1", "A1") + `]`, "parent is the edge itself"},
		"missing":    {`edges: [` + edge("A1", "B9") + `]`, `parent "B9" is not an edge`},
		"two levels": {`edges: [` + edge("A1", "") + `, ` + edge("B1", "A1") + `, ` + edge("C1", "B1") + `]`, "one tier of shields only"},
		"cycle":      {`edges: [` + edge("A1", "B1") + `, ` + edge("B1", "A1") + `]`, "one tier of shields only"},
		"draining": {`edges: [{id: A1, region: us, country: canada, address: "h:1", adminAddress: "h:2", secretFile: s, drain: true}, ` +
			edge("B1", "A1") + `]`, `parent "A1" is draining`},
	}
	for name, c := range cases {
		t.Run(name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("err = %v, want %q", err, c.want)
			}
		})
	}
}
